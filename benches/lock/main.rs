//! `cargo bench --bench lock` (or `scripts/bench`): issue 15's lock figures, measured end to end through
//! the release binary on the 40-input latency stack: 10 OCI charts (5 exact versions, 5 ranges) in
//! Debian's docker-registry, 10 charts from 5 classic Helm repositories and 20 URL dashboards (real
//! upstream files), every server behind a [`CountingProxy`] that adds a fixed delay to each request (100 ms
//! unless `STACK_BENCH_DELAY_MS` says otherwise) and counts it.
//!
//! Cold locks (empty cache, no stack.lock) of the 40 inputs and of the longest single input alone (a
//! ranged OCI chart: tag list, manifest, layer) run interleaved; then a cold `--jobs 1`, a warm re-lock,
//! `--update` and `--check --remote`, counting requests and the body bytes that came back. Prints the
//! issue's lock rows with now and goal; asserts nothing about time (timings belong here, never in
//! tests). `STACK_BENCH_TIMELINE=1` also prints every input's requests of the last cold lock (when each
//! arrived and was answered) and the time between the last answer and the exit. `STACK_BENCH_JOBS=N` runs
//! the cold locks (both sides) with `--jobs N`, to measure another bound than the default.
//! `STACK_BENCH_ROUNDS=N` sets the number of interleaved cold rounds (5), and `STACK_BENCH_COLD_ONLY=1`
//! prints only their line (no `--jobs 1`, warm or `--update` runs): for comparing two binaries many
//! times over on a busy machine.

#[path = "../../tests/support/mod.rs"]
#[allow(unused_imports, unused_macros)]
mod support;

use std::time::{Duration, Instant};

use support::charts::{self, fixture_versions};
use support::stack::oci_chart;
use support::{dashboard_bytes, CountingProxy, HttpServer, ProxiedRequest, Registry, TestStack};

const OCI_EXACT: usize = 5;
const OCI_RANGE: usize = 5;
const HELM_REPOS: usize = 5;
const DASHBOARDS: usize = 20;
const DASHBOARD_FILES: &[&str] = &[
    "etcd.json",
    "cilium-agent.json",
    "k8s-views-global.json",
    "node-exporter-full.json",
];

/// The real servers, each behind its counting, delaying proxy.
struct Upstreams {
    _registry: Registry,
    _helm: HttpServer,
    _files: HttpServer,
    proxies: [CountingProxy; 3],
}

impl Upstreams {
    fn start(delay: Duration) -> Upstreams {
        let registry =
            Registry::start().expect("Debian's docker-registry (apt-get install docker-registry)");
        for i in 0..OCI_EXACT.max(OCI_RANGE) {
            for chart in fixture_versions("loki") {
                registry.push_fixture(&format!("bench/c{i}/loki"), &chart);
            }
            for chart in fixture_versions("victoria-metrics-k8s-stack") {
                registry.push_fixture(&format!("bench/c{i}/victoria-metrics-k8s-stack"), &chart);
            }
        }
        let helm = HttpServer::start();
        for r in 0..HELM_REPOS {
            helm.serve(&format!("/r{r}/index.yaml"), charts::fixture_index());
            for chart in charts::helm_repo_charts() {
                helm.serve(&format!("/r{r}/{}", chart.file_name()), chart.bytes.clone());
            }
        }
        let files = HttpServer::start();
        for d in 0..DASHBOARDS {
            let file = DASHBOARD_FILES[d % DASHBOARD_FILES.len()];
            files.serve(&format!("/d{d}/{file}"), dashboard_bytes(file));
        }
        let proxies = [&registry.http_url(), &helm.url(), &files.url()]
            .map(|url| CountingProxy::start(url, delay));
        Upstreams {
            _registry: registry,
            _helm: helm,
            _files: files,
            proxies,
        }
    }

    fn oci(&self) -> &CountingProxy {
        &self.proxies[0]
    }

    /// The 40 inputs' stack.toml body.
    fn all_inputs(&self) -> String {
        let mut inputs = String::new();
        for i in 0..OCI_EXACT {
            let url = self.oci().oci_url(&format!("bench/c{i}/loki"));
            inputs += &oci_chart(&format!("loki-{i}"), &url, "6.49.0");
        }
        for i in 0..OCI_RANGE {
            inputs += &self.ranged_oci(i);
        }
        let helm = self.proxies[1].url();
        for r in 0..HELM_REPOS {
            for (chart, version) in [("alloy", "~1.1"), ("tempo", "1.24.1")] {
                inputs += &format!(
                    "[charts.{chart}-{r}]\nrepo = \"{helm}/r{r}\"\nchart = \"{chart}\"\nversion = \"{version}\"\n\n"
                );
            }
        }
        let files = self.proxies[2].url();
        for d in 0..DASHBOARDS {
            let file = DASHBOARD_FILES[d % DASHBOARD_FILES.len()];
            inputs += &format!(
                "[dashboards.d{d}]\nurl = \"{files}/d{d}/{file}\"\nfolder = \"Bench\"\n\n"
            );
        }
        inputs
    }

    /// The longest single input: a ranged OCI chart (tag list, then manifest, then layer).
    fn ranged_oci(&self, i: usize) -> String {
        let url = self
            .oci()
            .oci_url(&format!("bench/c{i}/victoria-metrics-k8s-stack"));
        oci_chart(&format!("victoria-metrics-{i}"), &url, "~0.45")
    }

    fn requests(&self) -> Vec<ProxiedRequest> {
        self.proxies.iter().flat_map(|p| p.requests()).collect()
    }

    fn clear(&self) {
        self.proxies.iter().for_each(CountingProxy::clear_log);
    }
}

/// The fewest requests the 40 inputs need: a manifest and a layer per OCI chart and a tag list per
/// ranged one; an index per Helm repository and an archive per chart; a GET per dashboard.
fn minimum() -> usize {
    OCI_EXACT * 2 + OCI_RANGE * 3 + HELM_REPOS * 3 + DASHBOARDS
}

/// Forgets the lock, vendor/ and the content cache: the next lock is cold.
fn make_cold(stack: &TestStack) {
    for dir in [stack.cache_dir().to_path_buf(), stack.root().join("vendor")] {
        if dir.exists() {
            fs_err::remove_dir_all(&dir).unwrap();
        }
    }
    fs_err::create_dir_all(stack.cache_dir()).unwrap();
    let _ = fs_err::remove_file(stack.root().join("stack.lock"));
}

/// Runs `stack lock <args>`, which must succeed, and returns its wall time.
fn lock(stack: &TestStack, args: &[&str]) -> Duration {
    lock_from(stack, args).1
}

/// Same, and when it started.
fn lock_from(stack: &TestStack, args: &[&str]) -> (Instant, Duration) {
    let mut all = vec!["lock"];
    all.extend_from_slice(args);
    let start = Instant::now();
    let out = stack.command(&all).output().unwrap();
    let took = start.elapsed();
    assert!(
        out.status.code() == Some(0) || (args.contains(&"--check") && out.status.code() == Some(1)),
        "stack {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (start, took)
}

/// When the first request of each kind arrived, after the lock started: shows what waits for what.
fn timeline(start: Instant, requests: &[ProxiedRequest]) -> String {
    let first = |pred: &dyn Fn(&ProxiedRequest) -> bool| {
        requests
            .iter()
            .filter(|r| pred(r))
            .map(|r| r.arrived.saturating_duration_since(start))
            .min()
            .map_or("-".to_string(), |d| format!("{:.2} s", d.as_secs_f64()))
    };
    format!(
        "first ping {}, tag page {}, manifest {}, index {}, dashboard {}, layer {}, archive {}",
        first(&|r| r.path == "/v2/"),
        first(&|r| r.path.ends_with("/tags/list")),
        first(&|r| r.path.contains("/manifests/")),
        first(&|r| r.path.ends_with("/index.yaml")),
        first(&|r| r.path.ends_with(".json")),
        first(&|r| r.path.contains("/blobs/")),
        first(&|r| r.path.ends_with(".tgz")),
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// What the requests of one run were, by kind.
fn breakdown(requests: &[ProxiedRequest]) -> String {
    let count =
        |pred: &dyn Fn(&ProxiedRequest) -> bool| requests.iter().filter(|r| pred(r)).count();
    format!(
        "{} pings, {} tag pages, {} manifests, {} layers, {} indexes, {} archives, {} dashboards; {} conditional, {} answered 304; {:.1} KB of bodies",
        count(&|r| r.path == "/v2/"),
        count(&|r| r.path.ends_with("/tags/list")),
        count(&|r| r.path.contains("/manifests/")),
        count(&|r| r.path.contains("/blobs/")),
        count(&|r| r.path.ends_with("/index.yaml")),
        count(&|r| r.path.ends_with(".tgz")),
        count(&|r| r.path.ends_with(".json")),
        count(&|r| r.conditional()),
        count(&|r| r.status == 304),
        requests.iter().map(|r| r.bytes).sum::<usize>() as f64 / 1e3,
    )
}

/// Which input a request served: `victoria-metrics-3`, `alloy-1` or `d7`; an index.yaml is shared by
/// a repository's two charts (`index r2`).
fn input_of(path: &str) -> String {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["v2", "bench", c, chart, ..] => format!("{chart}-{}", c.trim_start_matches('c'))
            .replace("victoria-metrics-k8s-stack", "victoria-metrics"),
        [r, "index.yaml"] => format!("index {r}"),
        [r, file] if r.starts_with('r') => {
            let chart = file.split('-').next().unwrap_or(file);
            format!("{chart}-{}", r.trim_start_matches('r'))
        }
        [d, _] => d.to_string(),
        _ => path.to_string(),
    }
}

/// Every input's requests, `arrived->answered` in seconds after the lock started, inputs in the order
/// of their first request; then when the last answer came and when the lock exited. Where the time of
/// a cold lock goes: queueing shows as an arrival well after the previous answer of the same input,
/// the writing of vendor/ and stack.lock as the gap between the last answer and the exit.
fn per_input(start: Instant, took: Duration, requests: &[ProxiedRequest]) -> String {
    let at = |t: Instant| t.saturating_duration_since(start).as_secs_f64();
    let mut inputs: Vec<(String, Vec<&ProxiedRequest>)> = Vec::new();
    let mut sorted: Vec<&ProxiedRequest> = requests.iter().collect();
    sorted.sort_by_key(|r| r.arrived);
    for r in sorted {
        let input = input_of(&r.path);
        match inputs.iter_mut().find(|(i, _)| *i == input) {
            Some((_, list)) => list.push(r),
            None => inputs.push((input, vec![r])),
        }
    }
    let mut out = String::new();
    for (input, list) in &inputs {
        let spans: Vec<String> = list
            .iter()
            .map(|r| format!("{:.2}->{:.2}", at(r.arrived), at(r.answered)))
            .collect();
        out += &format!("    {input:<20} {}\n", spans.join("  "));
    }
    let last = requests.iter().map(|r| r.answered).max().map_or(0.0, at);
    out += &format!(
        "    last answer {last:.2} s, exit {:.2} s: {:.2} s after the last answer (vendor/, stack.lock, commit)\n",
        took.as_secs_f64(),
        took.as_secs_f64() - last
    );
    out
}

/// The interleaved cold locks: the 40 inputs and the longest single input, `rounds` times each.
struct ColdRuns {
    all: Duration,
    single: Duration,
    /// The last round's requests, its timeline and its per-input detail.
    requests: Vec<ProxiedRequest>,
    timeline: String,
    detail: String,
}

fn cold_rounds(up: &Upstreams, all: &TestStack, single: &TestStack, rounds: usize) -> ColdRuns {
    let (mut t_all, mut t_single) = (Vec::new(), Vec::new());
    let mut last = (String::new(), String::new(), Vec::new());
    let jobs = std::env::var("STACK_BENCH_JOBS").ok();
    let args: Vec<&str> = match &jobs {
        Some(n) => vec!["--jobs", n.as_str()],
        None => Vec::new(),
    };
    for _ in 0..rounds {
        make_cold(all);
        up.clear();
        let (start, took) = lock_from(all, &args);
        t_all.push(took);
        let requests = up.requests();
        last = (
            timeline(start, &requests),
            per_input(start, took, &requests),
            requests,
        );
        make_cold(single);
        t_single.push(lock(single, &args));
    }
    let (timeline, detail, requests) = last;
    ColdRuns {
        all: median(t_all),
        single: median(t_single),
        requests,
        timeline,
        detail,
    }
}

/// A run after the cold ones: its time and its requests.
struct Run {
    took: Duration,
    requests: Vec<ProxiedRequest>,
}

fn run(up: &Upstreams, stack: &TestStack, args: &[&str]) -> Run {
    up.clear();
    let took = lock(stack, args);
    Run {
        took,
        requests: up.requests(),
    }
}

fn print_runs(
    delay_ms: u64,
    cold: &ColdRuns,
    jobs1: Duration,
    warm: &Run,
    update: &Run,
    check: &Run,
) {
    println!(
        "delay per request: {delay_ms} ms; {} inputs",
        OCI_EXACT + OCI_RANGE + HELM_REPOS * 2 + DASHBOARDS
    );
    println!(
        "cold lock     {:>7.3} s, {} requests: {}",
        secs(cold.all),
        cold.requests.len(),
        breakdown(&cold.requests)
    );
    println!("              {} (last round)", cold.timeline);
    if std::env::var_os("STACK_BENCH_TIMELINE").is_some() {
        print!("{}", cold.detail);
    }
    println!(
        "single input  {:>7.3} s (a ranged OCI chart, cold)",
        secs(cold.single)
    );
    println!("--jobs 1      {:>7.3} s", secs(jobs1));
    println!(
        "warm re-lock  {:>7.3} s, {} requests",
        secs(warm.took),
        warm.requests.len()
    );
    println!(
        "--update      {:>7.3} s, {} requests: {}",
        secs(update.took),
        update.requests.len(),
        breakdown(&update.requests)
    );
    println!(
        "--check --remote {:>4.3} s, {} requests: {}",
        secs(check.took),
        check.requests.len(),
        breakdown(&check.requests)
    );
}

fn print_table(delay_ms: u64, cold: &ColdRuns, jobs1: Duration, warm: &Run, check: &Run) {
    let cold_bytes: usize = cold.requests.iter().map(|r| r.bytes).sum();
    println!("\n| figure | now | goal |\n| --- | --- | --- |");
    println!(
        "| lock, 40 inputs, {delay_ms} ms per request / longest single input's chain | {:.1}x ({:.2} s / {:.2} s) | <= 1.5x |",
        secs(cold.all) / secs(cold.single),
        secs(cold.all),
        secs(cold.single)
    );
    println!(
        "| requests in that lock / the minimum it needs | {} / {} = {:.2}x | <= 1.1x |",
        cold.requests.len(),
        minimum(),
        cold.requests.len() as f64 / minimum() as f64
    );
    println!(
        "| `lock --jobs 1` / default | {:.1}x ({:.2} s) | keep >= 6x (parallelism stays) |",
        secs(jobs1) / secs(cold.all),
        secs(jobs1)
    );
    println!(
        "| warm re-lock: requests | {} | 0 (keep) |",
        warm.requests.len()
    );
    println!(
        "| `--check --remote`, {DASHBOARDS} unchanged URL dashboards among the 40: body bytes downloaded / a cold lock's | {:.1} KB / {:.1} KB | ~0 (conditional GETs) |",
        check.requests.iter().map(|r| r.bytes).sum::<usize>() as f64 / 1e3,
        cold_bytes as f64 / 1e3
    );
}

/// `STACK_BENCH_COLD_ONLY=1`: one line of the cold rounds (ratio, medians, the last round's tail), to
/// compare two binaries many times in a row on a busy machine.
fn print_cold_only(cold: &ColdRuns) {
    let tail = cold.detail.lines().last().unwrap_or_default().trim();
    println!(
        "cold: {:.2}x ({:.3} s / {:.3} s); last round: {tail}",
        secs(cold.all) / secs(cold.single),
        secs(cold.all),
        secs(cold.single)
    );
}

fn main() {
    // `cargo test --all-targets` runs this file without `--bench`: one cold lock without delay as a
    // smoke test, no figures.
    let bench = std::env::args().any(|a| a == "--bench");
    let delay_ms: u64 = std::env::var("STACK_BENCH_DELAY_MS")
        .ok()
        .map(|v| v.parse().expect("STACK_BENCH_DELAY_MS: milliseconds"))
        .unwrap_or(if bench { 100 } else { 0 });
    let up = Upstreams::start(Duration::from_millis(delay_ms));
    let all = TestStack::with_inputs(&up.all_inputs());
    if !bench {
        lock(&all, &[]);
        return;
    }
    let single = TestStack::with_inputs(&up.ranged_oci(0));
    let rounds: usize = std::env::var("STACK_BENCH_ROUNDS")
        .ok()
        .map(|v| v.parse().expect("STACK_BENCH_ROUNDS: a count"))
        .unwrap_or(5);
    let cold = cold_rounds(&up, &all, &single, rounds);
    if std::env::var_os("STACK_BENCH_COLD_ONLY").is_some() {
        print_cold_only(&cold);
        return;
    }

    make_cold(&all);
    let jobs1 = lock(&all, &["--jobs", "1"]);
    let warm = run(&up, &all, &[]);
    let update = run(&up, &all, &["--update"]);
    let check = run(&up, &all, &["--check", "--remote"]);

    print_runs(delay_ms, &cold, jobs1, &warm, &update, &check);
    print_table(delay_ms, &cold, jobs1, &warm, &check);
}
