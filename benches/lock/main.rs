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
//! tests).

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
    let rounds = 5;
    let (mut t_all, mut t_single) = (Vec::new(), Vec::new());
    let mut cold_requests = Vec::new();
    let mut cold_timeline = String::new();
    for _ in 0..rounds {
        make_cold(&all);
        up.clear();
        let (start, took) = lock_from(&all, &[]);
        t_all.push(took);
        cold_requests = up.requests();
        cold_timeline = timeline(start, &cold_requests);
        make_cold(&single);
        t_single.push(lock(&single, &[]));
    }
    let (t_all, t_single) = (median(t_all), median(t_single));

    make_cold(&all);
    let t_jobs1 = lock(&all, &["--jobs", "1"]);

    up.clear();
    let t_warm = lock(&all, &[]);
    let warm = up.requests();

    up.clear();
    let t_update = lock(&all, &["--update"]);
    let update = up.requests();

    up.clear();
    let t_check = lock(&all, &["--check", "--remote"]);
    let check = up.requests();

    let cold_bytes: usize = cold_requests.iter().map(|r| r.bytes).sum();
    println!(
        "delay per request: {delay_ms} ms; {} inputs",
        OCI_EXACT + OCI_RANGE + HELM_REPOS * 2 + DASHBOARDS
    );
    println!(
        "cold lock     {:>7.3} s, {} requests: {}",
        secs(t_all),
        cold_requests.len(),
        breakdown(&cold_requests)
    );
    println!("              {cold_timeline} (last round)");
    println!(
        "single input  {:>7.3} s (a ranged OCI chart, cold)",
        secs(t_single)
    );
    println!("--jobs 1      {:>7.3} s", secs(t_jobs1));
    println!(
        "warm re-lock  {:>7.3} s, {} requests",
        secs(t_warm),
        warm.len()
    );
    println!(
        "--update      {:>7.3} s, {} requests: {}",
        secs(t_update),
        update.len(),
        breakdown(&update)
    );
    println!(
        "--check --remote {:>4.3} s, {} requests: {}",
        secs(t_check),
        check.len(),
        breakdown(&check)
    );

    println!("\n| figure | now | goal |\n| --- | --- | --- |");
    println!(
        "| lock, 40 inputs, {delay_ms} ms per request / longest single input's chain | {:.1}x ({:.2} s / {:.2} s) | <= 1.5x |",
        secs(t_all) / secs(t_single),
        secs(t_all),
        secs(t_single)
    );
    println!(
        "| requests in that lock / the minimum it needs | {} / {} = {:.2}x | <= 1.1x |",
        cold_requests.len(),
        minimum(),
        cold_requests.len() as f64 / minimum() as f64
    );
    println!(
        "| `lock --jobs 1` / default | {:.1}x ({:.2} s) | keep >= 6x (parallelism stays) |",
        secs(t_jobs1) / secs(t_all),
        secs(t_jobs1)
    );
    println!("| warm re-lock: requests | {} | 0 (keep) |", warm.len());
    println!(
        "| `--check --remote`, {DASHBOARDS} unchanged URL dashboards among the 40: body bytes downloaded / a cold lock's | {:.1} KB / {:.1} KB | ~0 (conditional GETs) |",
        check.iter().map(|r| r.bytes).sum::<usize>() as f64 / 1e3,
        cold_bytes as f64 / 1e3
    );
}
