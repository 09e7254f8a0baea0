//! `cargo bench --bench build`: how long `stack build` of the repo's default stack takes, end to end
//! through the binary (process start, parsing, hashing every vendored dashboard, emitting ~1.8 MB), with
//! the community dashboards on: their vendored bytes are the real upstream files of ../shared/upstream
//! (as tests/mirror/mirror.toml maps them), which this repository does not commit.
//! Prints figures; asserts nothing about time (timings belong here, never in tests).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy(&e.path(), &to.join(e.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    for item in ["stack.toml", "stack.lock", "modules"] {
        copy(&repo.join(item), &dir.path().join(item));
    }
    vendor_community_dashboards(repo, dir.path());
    let run = |args: &[&str]| {
        let start = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_stack"))
            .arg("-C")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        start.elapsed()
    };
    // `cargo test --all-targets` runs this file without `--bench`: build once as a smoke test, no figures.
    if !std::env::args().any(|a| a == "--bench") {
        run(&["build"]);
        return;
    }
    for (label, args) in [
        ("stack build", &["build"][..]),
        ("stack build --check", &["build", "--check"][..]),
    ] {
        run(args); // warm the page cache
        let mut times: Vec<Duration> = (0..20).map(|_| run(args)).collect();
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{label:<22} runs=20  min={:.1} ms  median={:.1} ms  max={:.1} ms",
            ms(times[0]),
            ms(times[10]),
            ms(times[19])
        );
    }
    let bytes: u64 = walk(&dir.path().join("out"));
    println!("output: {bytes} bytes");
}

fn walk(p: &Path) -> u64 {
    if p.is_dir() {
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| walk(&e.unwrap().path()))
            .sum()
    } else {
        std::fs::metadata(p).unwrap().len()
    }
}

/// Turns `community_dashboards` on and writes each locked dashboard's upstream bytes into vendor/.
fn vendor_community_dashboards(repo: &Path, stack: &Path) {
    let upstream = std::env::var_os("STACK_UPSTREAM_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo.join("../shared/upstream"));
    let read =
        |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mirror: toml::Value =
        toml::from_str(&read(&repo.join("tests/mirror/mirror.toml"))).unwrap();
    let lock: toml::Value = toml::from_str(&read(&stack.join("stack.lock"))).unwrap();
    let files = mirror["raw"]["file"].as_array().unwrap();
    for entry in lock["dashboard"].as_array().unwrap() {
        let source = entry["source"].as_str().unwrap();
        let file = files
            .iter()
            .find(|f| {
                let [repo, commit, path] =
                    ["repo", "commit", "path"].map(|k| f[k].as_str().unwrap());
                source.ends_with(&format!("/{repo}/{commit}/{path}"))
            })
            .unwrap_or_else(|| panic!("tests/mirror/mirror.toml serves no file for {source}"));
        let bytes = std::fs::read(
            upstream
                .join("dashboards")
                .join(file["file"].as_str().unwrap()),
        )
        .unwrap_or_else(|e| {
            panic!(
                "the upstream dashboards are missing under {}: {e}",
                upstream.display()
            )
        });
        let dest = stack.join(entry["path"].as_str().unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(dest, bytes).unwrap();
    }
    let toml_path = stack.join("stack.toml");
    let text = read(&toml_path).replacen(
        "community_dashboards = false",
        "community_dashboards = true",
        1,
    );
    std::fs::write(toml_path, text).unwrap();
}
