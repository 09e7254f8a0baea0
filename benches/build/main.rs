//! `cargo bench --bench build` (or `scripts/bench`): issue 15's build figures, measured end to end
//! through the release binary on the repo's default stack with its community dashboards on (~1.8 MB of
//! output) and on generated stacks of 250, 500, 1,000 and 2,000 URL dashboards. Each pair runs
//! interleaved (build vs `cp -r` of its output, no-op rebuild vs `cp -r`, `build --check` vs `diff -r`);
//! peak RSS comes from GNU time. Builds and checks are measured twice, honestly labelled: with an empty
//! cache of rendered dashboards (cold: every dashboard rendered) and with the cache the runs before left
//! (warm: every dashboard a hit); `STACK_CACHE_DIR` points at a directory of the bench's own. Prints the
//! issue's table with the goal beside each figure; asserts nothing about time (timings belong here,
//! never in tests).
//!
//! `STACK_BENCH_DIR=DIR` keeps the generated stacks there (scripts/bench hands them to hyperfine);
//! `STACK_BENCH_SIZES=250,500` picks the generated sizes; `STACK_BENCH_BIN=PATH` measures another
//! `stack` binary (a release build of an older commit) on the same stacks.

mod measure;
mod stacks;

use std::path::{Path, PathBuf};
use std::time::Duration;

use measure::Step;

/// What one stack's runs showed.
struct Figures {
    files: usize,
    bytes: u64,
    /// Build into a new out/ with an empty cache of rendered dashboards (every dashboard rendered).
    build_cold: Duration,
    cp_cold: Duration,
    /// `build --check` with an empty cache.
    check_cold: Duration,
    diff_cold: Duration,
    /// Peak RSS of a build into a new out/ with an empty cache.
    rss_build_cold: u64,
    /// Build into a new out/ with the cache of an earlier build (every dashboard a hit).
    build: Duration,
    cp: Duration,
    noop: Duration,
    noop_cp: Duration,
    noop_rewritten: usize,
    check: Duration,
    diff: Duration,
    rss_build: u64,
    rss_check: u64,
    /// CPU time (user + system) of a build into a new out/ with an empty cache.
    cpu_build: Duration,
    /// `stack graph`: reading stack.toml, modules/ and stack.lock and planning, building nothing (the
    /// floor under every build and check), and the `diff -r` run beside it.
    load: Duration,
    load_diff: Duration,
}

/// The binary measured: this build's, or `STACK_BENCH_BIN` (an older build, for before/after figures).
fn bin() -> PathBuf {
    std::env::var_os("STACK_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_stack")))
}

fn argv(dir: &Path, args: &[&str]) -> Vec<String> {
    let mut v = vec![
        bin().display().to_string(),
        "-C".into(),
        dir.display().to_string(),
    ];
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

fn rm(p: &Path) {
    if p.exists() {
        fs_err::remove_dir_all(p).unwrap();
    }
}

fn measure(dir: &Path, rounds: usize) -> Figures {
    // The bench stacks keep the repo's flux.path, where `stack build` writes by default.
    let (out, copy) = (dir.join("kubernetes"), dir.join("kubernetes-copy"));
    let build = argv(dir, &["build"]);
    let check = argv(dir, &["build", "--check"]);
    let cp = vec![
        "cp".into(),
        "-r".into(),
        out.display().to_string(),
        copy.display().to_string(),
    ];
    let diff = vec![
        "diff".into(),
        "-r".into(),
        out.display().to_string(),
        copy.display().to_string(),
    ];
    let (rm_out, rm_copy, nothing) = (|| rm(&out), || rm(&copy), || {});
    // The cache of rendered dashboards, apart from the user's: emptied before each cold run, kept
    // (filled by the runs before) for the warm ones.
    let cache = dir.join(".bench-cache");
    std::env::set_var("STACK_CACHE_DIR", &cache);
    let (rm_cache, rm_cache_out) = (
        || rm(&cache),
        || {
            rm(&cache);
            rm(&out);
        },
    );
    let pair = |a: &[String], a_before: &dyn Fn(), b: &[String], b_before: &dyn Fn()| {
        let step = |argv: &[String], before| Step {
            argv: argv.to_vec(),
            before,
        };
        measure::pair(rounds, &step(a, a_before), &step(b, b_before))
    };
    let (t_build_cold, t_cp_cold) = pair(&build, &rm_cache_out, &cp, &rm_copy);
    let (t_check_cold, t_diff_cold) = pair(&check, &rm_cache, &diff, &nothing);
    rm_cache_out();
    let rss_build_cold = measure::peak_rss(&build);
    let cpu_build = measure::cpu(
        rounds.min(5),
        &Step {
            argv: build.clone(),
            before: &rm_cache_out,
        },
    );
    let (t_build, t_cp) = pair(&build, &rm_out, &cp, &rm_copy);
    let (t_noop, t_noop_cp) = pair(&build, &nothing, &cp, &rm_copy);
    let before = measure::stamps(&out);
    measure::time(&build);
    let noop_rewritten = measure::rewritten(&before, &measure::stamps(&out));
    let (t_check, t_diff) = pair(&check, &nothing, &diff, &nothing);
    let (load, load_diff) = pair(&argv(dir, &["graph"]), &nothing, &diff, &nothing);
    let rss_check = measure::peak_rss(&check);
    rm(&out);
    let rss_build = measure::peak_rss(&build);
    Figures {
        files: measure::stamps(&out).len(),
        bytes: measure::size(&out),
        build_cold: t_build_cold,
        cp_cold: t_cp_cold,
        check_cold: t_check_cold,
        diff_cold: t_diff_cold,
        rss_build_cold,
        build: t_build,
        cp: t_cp,
        noop: t_noop,
        noop_cp: t_noop_cp,
        noop_rewritten,
        check: t_check,
        diff: t_diff,
        rss_build,
        rss_check,
        cpu_build,
        load,
        load_diff,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn detail(label: &str, f: &Figures) {
    println!(
        "{label:<10} {:>5} files {:>7.1} MB | cold cache: build {:>8.1} ms, cp -r {:>7.1} ms ({:>5.2}x); --check {:>8.1} ms, diff -r {:>7.1} ms ({:>5.2}x); RSS build {:>6.1} MiB; build CPU {:>8.1} ms",
        f.files,
        f.bytes as f64 / 1e6,
        ms(f.build_cold),
        ms(f.cp_cold),
        ratio(f.build_cold, f.cp_cold),
        ms(f.check_cold),
        ms(f.diff_cold),
        ratio(f.check_cold, f.diff_cold),
        mib(f.rss_build_cold),
        ms(f.cpu_build),
    );
    println!(
        "{:<10} {:>5}       {:>7}    | reading the stack alone (`stack graph`) {:>7.1} ms, diff -r {:>7.1} ms ({:>5.2}x)",
        "",
        "",
        "",
        ms(f.load),
        ms(f.load_diff),
        ratio(f.load, f.load_diff),
    );
    println!(
        "{:<10} {:>5}       {:>7}    | warm cache: build {:>8.1} ms, cp -r {:>7.1} ms ({:>5.2}x); --check {:>8.1} ms, diff -r {:>7.1} ms ({:>5.2}x); RSS build {:>6.1} MiB, --check {:>6.1} MiB; no-op {:>8.1} ms ({:>5.2}x, {} rewritten)",
        "",
        "",
        "",
        ms(f.build),
        ms(f.cp),
        ratio(f.build, f.cp),
        ms(f.check),
        ms(f.diff),
        ratio(f.check, f.diff),
        mib(f.rss_build),
        mib(f.rss_check),
        ms(f.noop),
        ratio(f.noop, f.noop_cp),
        f.noop_rewritten,
    );
}

/// Builds the minified ~900 KiB dashboard's stack: "ships" or the build's refusal.
fn minified(root: &Path, repo: &Path) -> String {
    let dir = root.join("minified");
    rm(&dir);
    stacks::minified_stack(repo, &dir);
    stacks::fix_fingerprint(&bin(), &dir);
    let out = std::process::Command::new(bin())
        .arg("-C")
        .arg(&dir)
        .arg("build")
        .output()
        .unwrap();
    rm(&dir);
    if out.status.success() {
        "ships".into()
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        format!(
            "refused ({})",
            err.lines().next().unwrap_or_default().trim()
        )
    }
}

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    // `cargo test --all-targets` runs this file without `--bench`: build the default stack once as a
    // smoke test, no figures.
    if !std::env::args().any(|a| a == "--bench") {
        let dir = tempfile::tempdir().unwrap();
        // Never the user's cache: the rendered dashboards go to the temporary directory.
        std::env::set_var("STACK_CACHE_DIR", dir.path().join(".cache"));
        stacks::default_stack(repo, dir.path());
        measure::time(&argv(dir.path(), &["build"]));
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let root = std::env::var_os("STACK_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| temp.path().to_path_buf());
    let sizes: Vec<usize> = std::env::var("STACK_BENCH_SIZES")
        .unwrap_or_else(|_| "250,500,1000,2000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("STACK_BENCH_SIZES: numbers"))
        .collect();
    let default_dir = root.join("default");
    rm(&default_dir);
    stacks::default_stack(repo, &default_dir);
    let default = measure(&default_dir, 21);
    detail("default", &default);
    let mut generated = Vec::new();
    for &n in &sizes {
        let dir = root.join(format!("n{n}"));
        rm(&dir);
        stacks::generated_stack(repo, &dir, n);
        stacks::fix_fingerprint(&bin(), &dir);
        let f = measure(&dir, (5000 / n).clamp(3, 11));
        detail(&format!("{n}"), &f);
        if std::env::var_os("STACK_BENCH_DIR").is_none() || n != sizes[sizes.len() - 1] {
            rm(&dir);
        }
        generated.push((n, f));
    }
    let minified = minified(&root, repo);
    table(&default, &generated, &minified);
}

fn table(default: &Figures, generated: &[(usize, Figures)], minified: &str) {
    println!("\n| figure | now | goal |\n| --- | --- | --- |");
    println!(
        "| build, default stack, new out/ / `cp -r` of that output, cold cache | {:.1}x ({:.1} ms / {:.1} ms) | <= 2x |",
        ratio(default.build_cold, default.cp_cold),
        ms(default.build_cold),
        ms(default.cp_cold)
    );
    println!(
        "| build, default stack, new out/ / `cp -r` of that output, warm cache | {:.1}x ({:.1} ms / {:.1} ms) | <= 2x |",
        ratio(default.build, default.cp),
        ms(default.build),
        ms(default.cp)
    );
    println!(
        "| rebuild, nothing changed / `cp -r` | {:.1}x, rewrites {} of {} files | <= 1x, writes 0 files (inode and mtime kept) |",
        ratio(default.noop, default.noop_cp),
        default.noop_rewritten,
        default.files
    );
    println!(
        "| `build --check` / `diff -r` of the two trees, cold / warm cache | {:.1}x / {:.1}x | <= 1.5x |",
        ratio(default.check_cold, default.diff_cold),
        ratio(default.check, default.diff)
    );
    println!(
        "| (floor under both) reading the stack alone, `stack graph` / `diff -r`, default stack | {:.1}x ({:.1} ms / {:.1} ms) | |",
        ratio(default.load, default.load_diff),
        ms(default.load),
        ms(default.load_diff)
    );
    if let Some((n, f)) = generated.last() {
        println!(
            "| peak RSS, {n} dashboards: build cold cache / build warm / `--check` warm | {:.0} / {:.0} / {:.0} MiB | <= 64 MiB each |",
            mib(f.rss_build_cold),
            mib(f.rss_build),
            mib(f.rss_check)
        );
    }
    let steps: Vec<String> = generated
        .windows(2)
        .map(|w| {
            format!(
                "{}->{}: {:.2}",
                w[0].0,
                w[1].0,
                ratio(w[1].1.build_cold, w[0].1.build_cold)
            )
        })
        .collect();
    let cpu_steps: Vec<String> = generated
        .windows(2)
        .map(|w| {
            format!(
                "{}->{}: {:.2}",
                w[0].0,
                w[1].0,
                ratio(w[1].1.cpu_build, w[0].1.cpu_build)
            )
        })
        .collect();
    println!(
        "| t(2N)/t(N), build, cold cache, wall | {} | <= 2.1 at every step |",
        steps.join(", ")
    );
    println!(
        "| t(2N)/t(N), build, cold cache, CPU time (user + system) | {} | <= 2.1 at every step |",
        cpu_steps.join(", ")
    );
    println!(
        "| minified 900 KiB dashboard | {minified} | ships (formatting kept, or compact JSON) |"
    );
    println!("| lock rows (40 inputs at 100 ms, requests, --jobs 1, conditional GETs) | `cargo bench --bench lock` | see docs/PERFORMANCE.md |");
}
