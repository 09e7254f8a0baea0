//! `stack lock` against servers that fail (`Fault`): retries on 500, 429 and truncated bodies, digests that
//! do not match, a server that stops answering, and a kill mid-lock, none of which leaves a half-written
//! lock or vendor/.

use std::collections::BTreeMap;

use crate::lock::{
    dashboard_server, fixture_helm_repo, grafana_dashboard, repo_chart, url_dashboard,
};
use crate::support::charts::fixture_chart;
use crate::support::registry::registry;
use crate::support::stack::{field, oci_chart};
use crate::support::{dashboard_bytes, Fault, GrafanaCom, TestStack};

#[test]
fn a_500_then_success_is_retried() {
    let helm = fixture_helm_repo();
    helm.fail("/index.yaml", [Fault::Status(500)]);
    helm.fail("/alloy-1.1.2.tgz", [Fault::Status(503), Fault::Status(502)]);
    let stack = TestStack::with_inputs(&repo_chart("alloy", &helm.url(), "1.1.2"));

    stack.lock(&[]).success();

    let statuses: Vec<u16> = helm
        .requests_to("/index.yaml")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [500, 200]);
    let statuses: Vec<u16> = helm
        .requests_to("/alloy-1.1.2.tgz")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [503, 502, 200]);
    assert_eq!(
        field(&stack.locked_chart("alloy"), "blake3"),
        fixture_chart("alloy", "1.1.2").blake3()
    );
}

#[test]
fn a_429_with_retry_after_is_retried() {
    let grafana = GrafanaCom::with_fixtures();
    grafana.server.fail(
        "/api/dashboards/15757",
        [Fault::TooManyRequests {
            retry_after_secs: 1,
        }],
    );
    let stack = TestStack::with_inputs(&grafana_dashboard("kubernetes-global", 15757, None));

    stack
        .lock(&[
            "--mirror",
            &format!("https://grafana.com={}", grafana.url()),
        ])
        .success();

    let statuses: Vec<u16> = grafana
        .server
        .requests_to("/api/dashboards/15757")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [429, 200]);
    assert_eq!(
        field(&stack.locked_dashboard("kubernetes-global"), "revision"),
        "43"
    );
}

#[test]
fn a_persistent_500_fails_naming_the_url_after_retrying() {
    let helm = fixture_helm_repo();
    helm.fail_always("/index.yaml", Fault::Status(500));
    let stack = TestStack::with_inputs(&repo_chart("alloy", &helm.url(), "1.1.2"));

    stack.lock(&[]).code(2).mentions(&["500", "index.yaml"]);
    assert!(helm.count("/index.yaml") > 1, "no retry");
    assert!(!stack.exists("stack.lock"));
}

#[test]
fn a_truncated_body_is_retried_and_only_whole_files_are_vendored() {
    let dashboards = dashboard_server(&["node-exporter-full.json"]);
    dashboards.fail("/node-exporter-full.json", [Fault::Truncate { send: 1000 }]);
    let stack = TestStack::with_inputs(&url_dashboard(
        "node-exporter-full",
        &format!("{}/node-exporter-full.json", dashboards.url()),
    ));

    stack.lock(&[]).success();

    assert_eq!(dashboards.count("/node-exporter-full.json"), 2);
    assert_eq!(
        stack.read_bytes("vendor/dashboards/node-exporter-full.json"),
        dashboard_bytes("node-exporter-full.json")
    );
}

#[test]
fn a_body_truncated_every_time_fails_and_writes_nothing() {
    let dashboards = dashboard_server(&["node-exporter-full.json"]);
    dashboards.fail_always("/node-exporter-full.json", Fault::Truncate { send: 1000 });
    let stack = TestStack::with_inputs(&url_dashboard(
        "node-exporter-full",
        &format!("{}/node-exporter-full.json", dashboards.url()),
    ));

    stack
        .lock(&[])
        .code(2)
        .mentions(&["node-exporter-full"])
        .mentions_any(&["truncated", "incomplete", "short", "closed"]);
    assert_eq!(
        stack.locked_state(),
        BTreeMap::new(),
        "something was written"
    );
}

#[test]
fn helm_chart_whose_bytes_do_not_match_the_index_digest_is_refused() {
    let helm = fixture_helm_repo();
    helm.fail_always(
        "/alloy-1.1.2.tgz",
        Fault::Body(fixture_chart("alloy", "1.1.1").bytes),
    );
    let stack = TestStack::with_inputs(&repo_chart("alloy", &helm.url(), "1.1.2"));

    stack
        .lock(&[])
        .code(2)
        .mentions(&["alloy"])
        .mentions_any(&["digest", "sha256", "mismatch"]);
    assert_eq!(stack.locked_state(), BTreeMap::new());
}

#[test]
fn oci_blob_that_does_not_match_its_digest_is_refused() {
    let registry = registry!();
    let chart = fixture_chart("loki", "6.49.0");
    registry.push_fixture("grafana/helm-charts/loki", &chart);
    let mut corrupted = chart.bytes.clone();
    let middle = corrupted.len() / 2;
    corrupted[middle] ^= 0xff;
    registry.corrupt_blob(&chart.sha256(), &corrupted);
    let stack = TestStack::with_inputs(&oci_chart(
        "loki",
        &registry.oci_url("grafana/helm-charts/loki"),
        "6.49.0",
    ));

    stack
        .lock(&[])
        .code(2)
        .mentions(&["loki"])
        .mentions_any(&["digest", "sha256", "mismatch"]);
    assert_eq!(stack.locked_state(), BTreeMap::new());
}

#[test]
fn a_server_that_stops_answering_times_out_with_an_error() {
    let helm = fixture_helm_repo();
    helm.fail_always("/index.yaml", Fault::Hang);
    let stack = TestStack::with_inputs(&repo_chart("alloy", &helm.url(), "1.1.2"));

    // STACK_HTTP_TIMEOUT_SECS=2 (TestStack's default): the run must end by itself, with an error.
    stack
        .lock(&[])
        .code(2)
        .mentions(&["index.yaml"])
        .mentions_any(&["timed out", "timeout"]);
    assert!(!stack.exists("stack.lock"));
}

#[test]
fn killed_mid_lock_leaves_the_old_lock_and_vendor_intact() {
    let dashboards =
        dashboard_server(&["etcd.json", "flux-cluster.json", "node-exporter-full.json"]);
    let helm = fixture_helm_repo();
    let before_inputs = format!(
        "{}{}",
        url_dashboard("etcd", &format!("{}/etcd.json", dashboards.url())),
        repo_chart("alloy", &helm.url(), "1.1.1"),
    );
    let stack = TestStack::with_inputs(&before_inputs);
    stack.lock(&[]).success();
    let old_state = stack.locked_state();

    // The next lock changes every input; one of the new downloads never finishes.
    let after_inputs = format!(
        "{}{}{}",
        url_dashboard("etcd", &format!("{}/etcd.json", dashboards.url())),
        url_dashboard(
            "flux-cluster",
            &format!("{}/flux-cluster.json", dashboards.url())
        ),
        url_dashboard(
            "node-exporter-full",
            &format!("{}/node-exporter-full.json", dashboards.url())
        ),
    ) + &repo_chart("alloy", &helm.url(), "1.1.2");
    stack.set_inputs(&after_inputs);
    dashboards.fail_always("/node-exporter-full.json", Fault::Hang);
    let mut running = stack.spawn(&["lock", "--jobs", "1"]);
    dashboards.wait_for_request("/node-exporter-full.json");
    running.kill();

    assert_eq!(
        stack.locked_state(),
        old_state,
        "a killed lock changed stack.lock or vendor/"
    );
    // The old lock is still a valid lock of the old inputs: --check reads it and calls it stale.
    stack.lock(&["--check"]).code(1);

    dashboards.clear_faults("/node-exporter-full.json");
    stack.lock(&[]).success();
    stack.lock(&["--check"]).code(0);
    let mut top_level: Vec<String> = fs_err::read_dir(stack.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top_level.sort();
    assert_eq!(
        top_level,
        [".stack", "stack.lock", "stack.toml", "vendor"],
        "the interrupted lock left files behind"
    );
    assert_eq!(
        fs_err::read_dir(stack.root().join(".stack"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>(),
        ["lock"],
        "only the process lock stays in .stack/"
    );
    assert_eq!(field(&stack.locked_chart("alloy"), "version"), "1.1.2");
    assert_eq!(
        stack.read_bytes("vendor/dashboards/node-exporter-full.json"),
        dashboard_bytes("node-exporter-full.json")
    );
}
