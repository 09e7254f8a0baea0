//! In which order `stack lock` sends its requests when the `--jobs` bound makes them wait: the inputs
//! whose requests must go one after another (a ranged OCI chart: tag list, manifest, layer) first, at
//! every step, so the longest input sets the time of a lock rather than the number of inputs (issue 15).
//! Order, not time: with `--jobs 1` one request is in flight at a time, so the order in which they arrive
//! at the counting proxies is the order in which the bound let them go. The proxies hold each request
//! [`HOLD`], long enough for the input whose answer just came to ask for its next request while another
//! is in flight: a freed slot goes to whoever waits at that instant (the bound does not keep a slot idle
//! for a request not yet asked), and without the hold a dashboard would sometimes be the only one
//! waiting. And when the vendor/ files are written: by each input's task as its bytes come in, not after
//! the last answer.

use std::time::Duration;

use crate::support::charts::{self, fixture_versions};
use crate::support::stack::oci_chart;
use crate::support::{
    dashboard_bytes, CountingProxy, Fault, HttpServer, ProxiedRequest, Registry, TestStack,
};

const DASHBOARDS: usize = 6;
const HOLD: Duration = Duration::from_millis(250);

/// A ranged OCI chart (3 requests in a row) named to sort last, a Helm repository chart (index.yaml,
/// then the archive: 2) named to sort first, and URL dashboards (1 each), all cold, at `--jobs 1`.
#[test]
fn the_longest_chains_get_the_free_slots_first() {
    let Some(registry) = Registry::start() else {
        return;
    };
    for chart in fixture_versions("victoria-metrics-k8s-stack") {
        registry.push_fixture("charts/victoria-metrics-k8s-stack", &chart);
    }
    let helm = HttpServer::start();
    helm.serve("/index.yaml", charts::fixture_index());
    for chart in charts::helm_repo_charts() {
        helm.serve(&format!("/{}", chart.file_name()), chart.bytes.clone());
    }
    let files = HttpServer::start();
    for d in 0..DASHBOARDS {
        files.serve(&format!("/d{d}.json"), dashboard_bytes("etcd.json"));
    }
    let proxies =
        [registry.http_url(), helm.url(), files.url()].map(|url| CountingProxy::start(&url, HOLD));
    let [oci, repo, web] = &proxies;

    let mut inputs = oci_chart(
        "z-victoria-metrics",
        &oci.oci_url("charts/victoria-metrics-k8s-stack"),
        "~0.45",
    );
    inputs += &format!(
        "[charts.a-alloy]\nrepo = \"{}\"\nchart = \"alloy\"\nversion = \"~1.1\"\n\n",
        repo.url()
    );
    for d in 0..DASHBOARDS {
        inputs += &format!(
            "[dashboards.d{d}]\nurl = \"{}/d{d}.json\"\nfolder = \"Tests\"\n\n",
            web.url()
        );
    }
    let stack = TestStack::with_inputs(&inputs);
    stack.lock(&["--jobs", "1"]).success();

    // Sent one at a time, so arrival order is the order the bound chose.
    let mut sent: Vec<ProxiedRequest> = proxies.iter().flat_map(|p| p.requests()).collect();
    sent.sort_by_key(|r| r.arrived);
    let order: Vec<&str> = sent.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(sent.len(), 3 + 2 + DASHBOARDS, "{order:#?}");
    assert!(
        order[0].ends_with("/tags/list"),
        "the longest chain's first request did not go first: {order:#?}"
    );
    let is_dashboard = |p: &&str| p.starts_with("/d") && p.ends_with(".json");
    assert!(
        order[..5].iter().all(|p| !is_dashboard(p)) && order[5..].iter().all(is_dashboard),
        "a single-request dashboard took a slot while a chart's next request waited: {order:#?}"
    );
}

/// A Helm chart's vendored defaults are staged (written into the transaction's staging area) while a
/// dashboard's request still hangs: the commit after the last answer then only renames (issue 15). Before,
/// vendor/ was staged only once every input was resolved, so nothing appeared while one hung. Killed there,
/// the lock leaves vendor/ and stack.lock as they were.
#[test]
fn a_charts_vendor_files_are_staged_before_the_last_answer() {
    let helm = HttpServer::start();
    helm.serve("/index.yaml", charts::fixture_index());
    for chart in charts::helm_repo_charts() {
        helm.serve(&format!("/{}", chart.file_name()), chart.bytes.clone());
    }
    let files = HttpServer::start();
    files.fail_always("/slow.json", Fault::Hang);
    let inputs = format!(
        "[charts.alloy]\nrepo = \"{}\"\nchart = \"alloy\"\nversion = \"~1.1\"\n\n\
         [dashboards.slow]\nurl = \"{}/slow.json\"\nfolder = \"Tests\"\n",
        helm.url(),
        files.url()
    );
    let stack = TestStack::with_inputs(&inputs);
    let mut running = stack.spawn(&["lock"]);
    files.wait_for_request("/slow.json");
    let staged = stack
        .root()
        .join(".stack/txn/staged/vendor/charts/alloy/Chart.yaml");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !staged.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let staged_early = staged.exists();
    let answered = files
        .requests_to("/slow.json")
        .iter()
        .any(|r| r.status != 0);
    running.kill();
    assert!(
        staged_early,
        "vendor/charts/alloy/ was not staged while the dashboard's request hung"
    );
    assert!(!answered, "the dashboard's request was answered");
    assert!(!stack.exists("vendor") && !stack.exists("stack.lock"));
}
