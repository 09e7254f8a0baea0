//! Running commands for the benchmark: pairs interleaved (A, B, A, B, …) so that noise from other work
//! on a shared machine hits both sides alike, peak RSS through GNU time, and which files a run rewrote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A command and what must happen (untimed) before each run of it.
pub struct Step<'a> {
    pub argv: Vec<String>,
    pub before: &'a dyn Fn(),
}

/// Runs `argv`, which must succeed; returns its wall time.
pub fn time(argv: &[String]) -> Duration {
    let start = Instant::now();
    let out = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// Medians of `a` and `b` run `rounds` times each, interleaved, after one untimed warm-up of each.
pub fn pair(rounds: usize, a: &Step, b: &Step) -> (Duration, Duration) {
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for i in 0..=rounds {
        (a.before)();
        let x = time(&a.argv);
        (b.before)();
        let y = time(&b.argv);
        if i > 0 {
            ta.push(x);
            tb.push(y);
        }
    }
    (median(ta), median(tb))
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Peak resident set size of one run, in bytes (GNU time's `%M`).
pub fn peak_rss(argv: &[String]) -> u64 {
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("maxrss=%M")
        .args(argv)
        .output()
        .expect("GNU time at /usr/bin/time (Debian package `time`)");
    assert!(out.status.success(), "{argv:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let kb: u64 = err
        .rsplit("maxrss=")
        .next()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no maxrss in {err}"));
    kb * 1024
}

/// Median CPU time (user + system, GNU time's `%U` + `%S`) of `rounds` runs of `step`: the figure
/// that other work on a shared machine moves least, for the t(2N)/t(N) row.
pub fn cpu(rounds: usize, step: &Step) -> Duration {
    let mut all = Vec::new();
    for _ in 0..rounds {
        (step.before)();
        let out = Command::new("/usr/bin/time")
            .arg("-f")
            .arg("cpu=%U %S")
            .args(&step.argv)
            .output()
            .expect("GNU time at /usr/bin/time (Debian package `time`)");
        assert!(out.status.success(), "{:?}", step.argv);
        let err = String::from_utf8_lossy(&out.stderr);
        let secs: f64 = err
            .rsplit("cpu=")
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .map(|s| {
                s.parse::<f64>()
                    .unwrap_or_else(|_| panic!("no cpu= in {err}"))
            })
            .sum();
        all.push(Duration::from_secs_f64(secs));
    }
    median(all)
}

/// Every file under `dir` with its inode and modification time.
pub fn stamps(dir: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs_err::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                todo.push(e.path());
            } else {
                out.insert(e.path(), (meta.ino(), meta.modified().unwrap()));
            }
        }
    }
    out
}

/// Files of `after` that are new or whose inode or mtime changed since `before`.
pub fn rewritten(
    before: &BTreeMap<PathBuf, (u64, std::time::SystemTime)>,
    after: &BTreeMap<PathBuf, (u64, std::time::SystemTime)>,
) -> usize {
    after
        .iter()
        .filter(|(p, s)| before.get(*p) != Some(*s))
        .count()
}

/// Total bytes of the files under `p`.
pub fn size(p: &Path) -> u64 {
    if p.is_dir() {
        fs_err::read_dir(p)
            .unwrap()
            .map(|e| size(&e.unwrap().path()))
            .sum()
    } else {
        fs_err::metadata(p).unwrap().len()
    }
}
