//! How many requests `stack lock` makes, counted by a [`CountingProxy`] in front of each real server
//! (Debian's docker-registry, a classic Helm repository, a plain file server, a grafana.com-shaped API):
//! a cold lock makes no more than the minimum each input kind needs, a warm re-lock makes none, and
//! `--update` revalidates with conditional GETs instead of downloading again.

use std::time::Duration;

use crate::support::charts::{self, fixture_versions};
use crate::support::stack::oci_chart;
use crate::support::{
    dashboard_bytes, CountingProxy, Fault, GrafanaCom, HttpServer, ProxiedRequest, Registry,
    TestStack,
};

/// The real servers and a counting proxy in front of each.
struct Upstreams {
    _registry: Registry,
    _helm: HttpServer,
    dashboards: HttpServer,
    _grafana: GrafanaCom,
    oci: CountingProxy,
    repo: CountingProxy,
    files: CountingProxy,
    api: CountingProxy,
}

impl Upstreams {
    fn start() -> Option<Upstreams> {
        let registry = Registry::start()?;
        for chart in fixture_versions("loki") {
            registry.push_fixture("grafana/helm-charts/loki", &chart);
        }
        for chart in fixture_versions("victoria-metrics-k8s-stack") {
            registry.push_fixture(
                "victoriametrics/helm-charts/victoria-metrics-k8s-stack",
                &chart,
            );
        }
        let helm = HttpServer::start();
        helm.serve("/index.yaml", charts::fixture_index());
        for chart in charts::helm_repo_charts() {
            helm.serve(&format!("/{}", chart.file_name()), chart.bytes.clone());
        }
        let dashboards = HttpServer::start();
        for file in ["etcd.json", "cilium-agent.json"] {
            dashboards.serve(&format!("/{file}"), dashboard_bytes(file));
        }
        let grafana = GrafanaCom::with_fixtures();
        let proxy = |url: &str| CountingProxy::start(url, Duration::ZERO);
        Some(Upstreams {
            oci: proxy(&registry.http_url()),
            repo: proxy(&helm.url()),
            files: proxy(&dashboards.url()),
            api: proxy(&grafana.url()),
            _registry: registry,
            _helm: helm,
            dashboards,
            _grafana: grafana,
        })
    }

    /// Two OCI charts (an exact version and a range), two charts of one Helm repository (a range and an
    /// exact version), two URL dashboards and a grafana.com dashboard at its latest revision.
    fn stack(&self) -> TestStack {
        let repo = self.repo.url();
        let files = self.files.url();
        let mut inputs = oci_chart(
            "loki",
            &self.oci.oci_url("grafana/helm-charts/loki"),
            "6.49.0",
        );
        inputs += &oci_chart(
            "victoria-metrics-k8s-stack",
            &self
                .oci
                .oci_url("victoriametrics/helm-charts/victoria-metrics-k8s-stack"),
            "~0.45",
        );
        inputs += &format!("[charts.alloy]\nrepo = \"{repo}\"\nversion = \"~1.1\"\n\n");
        inputs += &format!("[charts.tempo]\nrepo = \"{repo}\"\nversion = \"1.24.1\"\n\n");
        for (name, file) in [("etcd", "etcd.json"), ("cilium", "cilium-agent.json")] {
            inputs +=
                &format!("[dashboards.{name}]\nurl = \"{files}/{file}\"\nfolder = \"Tests\"\n\n");
        }
        inputs += "[dashboards.kubernetes-global]\ngrafana_com = 15757\nfolder = \"Tests\"\n\n";
        TestStack::with_inputs(&inputs)
    }

    fn mirror(&self) -> String {
        format!("https://grafana.com={}", self.api.url())
    }

    fn clear_logs(&self) {
        for proxy in [&self.oci, &self.repo, &self.files, &self.api] {
            proxy.clear_log();
        }
    }

    /// Every request through any proxy, as `METHOD /path` (with the query and, when conditional, the
    /// answer's status), sorted: order depends on scheduling, the multiset does not.
    fn all(&self) -> Vec<String> {
        let mut all: Vec<String> = [&self.oci, &self.repo, &self.files, &self.api]
            .iter()
            .flat_map(|p| p.requests())
            .map(|r| show(&r))
            .collect();
        all.sort();
        all
    }
}

fn show(r: &ProxiedRequest) -> String {
    let query = if r.query.is_empty() {
        String::new()
    } else {
        format!("?{}", r.query)
    };
    format!("{} {}{query} -> {}", r.method, r.path, r.status)
}

fn count(requests: &[ProxiedRequest], pred: impl Fn(&ProxiedRequest) -> bool) -> usize {
    requests.iter().filter(|r| pred(r)).count()
}

#[test]
fn a_cold_lock_makes_no_more_than_the_minimum_requests_and_a_warm_one_none() {
    let Some(up) = Upstreams::start() else {
        return;
    };
    let stack = up.stack();
    stack.lock(&["--mirror", &up.mirror()]).success();

    // A classic Helm repository: one index.yaml per repository URL, however many charts come from it,
    // and one archive per chart.
    let repo = up.repo.requests();
    assert_eq!(
        count(&repo, |r| r.path == "/index.yaml"),
        1,
        "{:#?}",
        up.all()
    );
    assert_eq!(
        count(&repo, |r| r.path.ends_with(".tgz")),
        2,
        "{:#?}",
        up.all()
    );
    assert_eq!(repo.len(), 3, "{:#?}", up.all());

    // URL dashboards: one GET each. grafana.com: the metadata (for the latest revision) and the download.
    let files = up.files.requests();
    assert_eq!(files.len(), 2, "{:#?}", up.all());
    let api = up.api.requests();
    assert_eq!(api.len(), 2, "{:#?}", up.all());

    // An OCI registry without auth: one manifest and one layer per chart, and one tag list per ranged
    // chart (docker-registry sends every tag on the first page and no `Link`: that page is the whole
    // list). Pings (`GET /v2/`) and token requests carry nothing a lock needs.
    let oci = up.oci.requests();
    let manifests = count(&oci, |r| r.path.contains("/manifests/"));
    let blobs = count(&oci, |r| r.path.contains("/blobs/"));
    let tag_pages = count(&oci, |r| r.path.ends_with("/tags/list"));
    assert_eq!((manifests, blobs), (2, 2), "{:#?}", up.all());
    assert!(tag_pages >= 1, "{:#?}", up.all());
    assert_eq!(
        count(&oci, |r| r.path.contains("token")),
        0,
        "{:#?}",
        up.all()
    );

    // A warm re-lock with everything pinned and cached makes no request at all.
    up.clear_logs();
    stack.lock(&["--mirror", &up.mirror()]).success();
    assert_eq!(up.all(), Vec::<String>::new());
}

/// The minimum an OCI registry without auth needs (issue 15): no `GET /v2/` ping (a registry is asked
/// anonymously until it challenges, and what it wants is remembered for the run), and one tag page per
/// ranged chart (the list ends where the registry sends no `Link` to a next page).
#[test]
fn an_oci_lock_pings_at_most_once_per_registry_and_lists_tags_once_per_range() {
    let Some(up) = Upstreams::start() else {
        return;
    };
    let stack = up.stack();
    stack.lock(&["--mirror", &up.mirror()]).success();
    let oci = up.oci.requests();
    assert!(count(&oci, |r| r.path == "/v2/") <= 1, "{:#?}", up.all());
    assert_eq!(
        count(&oci, |r| r.path.ends_with("/tags/list")),
        1,
        "{:#?}",
        up.all()
    );
    assert_eq!(oci.len(), 5, "{:#?}", up.all());
}

#[test]
fn update_revalidates_dashboards_and_indexes_with_conditional_gets() {
    let Some(up) = Upstreams::start() else {
        return;
    };
    let stack = up.stack();
    stack.lock(&["--mirror", &up.mirror()]).success();
    let locked = stack.lock_text();
    up.clear_logs();

    stack
        .lock(&["--update", "--mirror", &up.mirror()])
        .success();

    // The index and the URL dashboards are asked for with the ETag of the cached answer, and 304s are
    // honoured: nothing changed, so the lock is the same and no body came back.
    let index = up.repo.requests();
    let index: Vec<_> = index.iter().filter(|r| r.path == "/index.yaml").collect();
    assert_eq!(index.len(), 1, "{:#?}", up.all());
    assert!(index[0].if_none_match.is_some(), "{:#?}", up.all());
    assert_eq!(index[0].status, 304);
    let files = up.files.requests();
    assert_eq!(files.len(), 2, "{:#?}", up.all());
    for r in &files {
        assert!(r.if_none_match.is_some(), "not conditional: {r:#?}");
        assert_eq!(r.status, 304, "{r:#?}");
    }
    assert_eq!(stack.lock_text(), locked);

    // A changed dashboard gets a new ETag: the conditional GET brings the new body, and `--update`
    // pins it.
    let mut changed = dashboard_bytes("etcd.json");
    changed.splice(
        1..1,
        b"\"description\": \"changed upstream\",".iter().copied(),
    );
    up.dashboards.serve("/etcd.json", changed.clone());
    up.clear_logs();
    stack
        .lock(&["--update", "etcd", "--mirror", &up.mirror()])
        .success();
    let etcd: Vec<_> = up
        .files
        .requests()
        .into_iter()
        .filter(|r| r.path == "/etcd.json")
        .collect();
    assert_eq!(etcd.len(), 1, "{:#?}", up.all());
    assert!(etcd[0].if_none_match.is_some());
    assert_eq!(etcd[0].status, 200);
    assert_eq!(stack.read_bytes("vendor/dashboards/etcd.json"), changed);
}

#[test]
fn a_server_without_etags_is_revalidated_with_if_modified_since() {
    let dashboards = HttpServer::start();
    dashboards.etags(false);
    dashboards.serve("/etcd.json", dashboard_bytes("etcd.json"));
    let stack = TestStack::with_inputs(&format!(
        "[dashboards.etcd]\nurl = \"{}/etcd.json\"\nfolder = \"Tests\"\n\n",
        dashboards.url()
    ));
    stack.lock(&[]).success();
    let first = dashboards.requests_to("/etcd.json");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].header("if-modified-since"), None);
    dashboards.clear_log();

    stack.lock(&["--update"]).success();
    let second = dashboards.requests_to("/etcd.json");
    assert_eq!(second.len(), 1, "{second:#?}");
    assert!(
        second[0].header("if-modified-since").is_some(),
        "{second:#?}"
    );
    assert_eq!(second[0].if_none_match(), None);
    assert_eq!(second[0].status, 304, "{second:#?}");
    assert_eq!(
        stack.read_bytes("vendor/dashboards/etcd.json"),
        dashboard_bytes("etcd.json"),
        "a 304 reuses the cached body"
    );
}

#[test]
fn a_dashboard_is_fetched_while_a_chart_is_still_resolving() {
    let helm = HttpServer::start();
    helm.fail_always("/index.yaml", Fault::Hang);
    let dashboards = HttpServer::start();
    dashboards.serve("/etcd.json", dashboard_bytes("etcd.json"));
    let mut stack = TestStack::with_inputs(&format!(
        "[charts.alloy]\nrepo = \"{}\"\nversion = \"~1.1\"\n\n[dashboards.etcd]\nurl = \"{}/etcd.json\"\nfolder = \"Tests\"\n\n",
        helm.url(),
        dashboards.url()
    ));
    stack.env("STACK_HTTP_TIMEOUT_SECS", "300");
    let mut running = stack.spawn(&["lock"]);
    helm.wait_for_request("/index.yaml");

    // Each input runs straight through: the dashboard does not wait for the chart's resolution, whose
    // index.yaml is still unanswered when the dashboard is asked for.
    dashboards.wait_for_request("/etcd.json");
    let index = helm.requests_to("/index.yaml");
    assert!(index.iter().all(|r| r.status == 0), "{index:#?}");
    running.kill();
}

/// `--jobs N` bounds the requests in flight, across inputs: eight dashboards behind one delaying proxy
/// are never asked for more than N at a time, and with a larger N more are (so the bound is what holds
/// them back, not the server or the machine).
#[test]
fn jobs_bounds_the_requests_in_flight() {
    let files = HttpServer::start();
    let mut inputs = String::new();
    for i in 0..8 {
        files.serve(&format!("/d{i}.json"), dashboard_bytes("etcd.json"));
        inputs.push_str(&format!(
            "[dashboards.d{i}]\nurl = \"{{URL}}/d{i}.json\"\nfolder = \"Tests\"\n\n"
        ));
    }
    for (jobs, bound) in [("2", 2), ("8", 8)] {
        let proxy = CountingProxy::start(&files.url(), Duration::from_millis(300));
        let stack = TestStack::with_inputs(&inputs.replace("{URL}", &proxy.url()));
        stack.lock(&["--jobs", jobs]).success();
        assert_eq!(proxy.count(), 8);
        let most = proxy.most_in_flight();
        assert!(
            most <= bound,
            "--jobs {jobs}: {most} requests in flight at once"
        );
        assert!(
            most >= 2,
            "--jobs {jobs}: the requests never overlapped ({most})"
        );
        if jobs == "8" {
            assert!(most > 2, "--jobs 8 held to {most} requests at once");
        }
    }
}
