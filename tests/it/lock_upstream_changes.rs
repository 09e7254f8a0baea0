//! Upstream bytes that change under a pin (a Helm chart, an OCI tag, a grafana.com revision, a URL
//! dashboard) are reported and never re-pinned or vendored over the pin.

use crate::lock::{
    dashboard_server, fixture_helm_repo, grafana_dashboard, repo_chart, url_dashboard,
};
use crate::support::charts::{self, fixture_chart, runtime_chart, Chart};
use crate::support::registry::registry;
use crate::support::stack::{field, oci_chart};
use crate::support::{dashboard_bytes, GrafanaCom, TestStack};

#[test]
fn helm_chart_bytes_changed_under_the_same_version_are_reported_never_repinned() {
    let helm = fixture_helm_repo();
    let stack = TestStack::with_inputs(&repo_chart("alloy", &helm.url(), "1.1.2"));
    stack.lock(&[]).success();
    let state = stack.locked_state();

    // Upstream republishes 1.1.2 with other bytes and an index that states their digest.
    let mut changed: Vec<Chart> = charts::helm_repo_charts();
    for chart in changed
        .iter_mut()
        .filter(|c| c.name == "alloy" && c.version == "1.1.2")
    {
        chart.bytes = runtime_chart("alloy", "1.1.2", "republished").bytes;
        helm.serve("/alloy-1.1.2.tgz", chart.bytes.clone());
    }
    helm.serve("/index.yaml", charts::index_yaml(&changed));

    stack
        .lock(&["--check", "--remote"])
        .code(1)
        .mentions(&["alloy"])
        .mentions_any(&["digest", "hash", "changed", "differ", "mismatch"]);
    assert_eq!(stack.locked_state(), state);

    // A clone with a cold cache and the committed stack.lock and vendor/ keeps the pin without
    // downloading anything (Flux and `--check --remote` verify the bytes; the values check reads
    // vendor/charts/), and its remote check reports the change too.
    let cold = stack.fresh_dir("cold-cache");
    let mut cold_stack = TestStack::with_inputs(&repo_chart("alloy", &helm.url(), "1.1.2"));
    for (rel, bytes) in &state {
        cold_stack.write(rel, bytes);
    }
    cold_stack.set_cache_dir(&cold);
    helm.clear_log();
    cold_stack.lock(&[]).success();
    assert!(
        helm.requests().is_empty(),
        "a sticky pin went to the network: {:#?}",
        helm.requests()
    );
    assert_eq!(
        cold_stack.lock_text().as_bytes(),
        &state["stack.lock"][..],
        "re-pinned silently"
    );
    cold_stack
        .lock(&["--check", "--remote"])
        .code(1)
        .mentions(&["alloy"]);

    // Without vendor/charts/ the chart's defaults must be fetched again at the pinned version: the
    // changed bytes are found and refused, and nothing is re-pinned.
    fs_err::remove_dir_all(cold_stack.root().join("vendor/charts")).unwrap();
    cold_stack.lock(&[]).code(2).mentions(&[
        "alloy",
        "upstream content changed",
        "--accept-changed alloy",
    ]);
    assert_eq!(cold_stack.lock_text().as_bytes(), &state["stack.lock"][..]);

    // Asking for an update of that input does not paper over it either.
    stack
        .lock(&["--update", "alloy"])
        .code(2)
        .mentions(&["alloy"]);
    assert_eq!(stack.locked_state(), state);
}

#[test]
fn oci_tag_moved_to_other_bytes_is_reported_and_the_pin_holds() {
    let registry = registry!();
    let repo = "grafana/helm-charts/loki";
    let pinned = registry.push_fixture(repo, &fixture_chart("loki", "6.49.0"));
    let stack = TestStack::with_inputs(&oci_chart("loki", &registry.oci_url(repo), "6.49.0"));
    stack.lock(&[]).success();
    let state = stack.locked_state();

    let moved = registry.push_chart(
        repo,
        "6.49.0",
        &runtime_chart("loki", "6.49.0", "retagged").bytes,
    );
    assert_ne!(moved, pinned);

    stack
        .lock(&["--check", "--remote"])
        .code(1)
        .mentions(&["loki", "stack lock --accept-changed loki"]);
    // A sticky re-lock asks nothing and keeps the pin.
    stack.lock(&[]).success();
    assert_eq!(stack.locked_state(), state, "the pin moved with the tag");
    // --update re-resolves and refuses the changed content, naming the command that accepts it.
    stack
        .lock(&["--update", "loki"])
        .code(2)
        .mentions(&["content changed", "run `stack lock --accept-changed loki`"]);
    assert_eq!(stack.locked_state(), state, "the pin moved with the tag");
    assert_eq!(field(&stack.locked_chart("loki"), "digest"), pinned);
    // The help line works when run: the pin moves to what upstream serves now.
    stack.lock(&["--accept-changed", "loki"]).success();
    assert_eq!(field(&stack.locked_chart("loki"), "digest"), moved);
    stack.lock(&["--check", "--remote"]).success();
}

#[test]
fn grafana_com_revision_whose_bytes_changed_is_a_red_flag() {
    let grafana = GrafanaCom::with_fixtures();
    let mirror = format!("https://grafana.com={}", grafana.url());
    let stack = TestStack::with_inputs(&grafana_dashboard("kubernetes-global", 15757, Some(43)));
    stack.lock(&["--mirror", &mirror]).success();
    let state = stack.locked_state();

    let mut tampered = dashboard_bytes("k8s-views-global.json");
    tampered.extend_from_slice(b"\n");
    grafana.rewrite_revision(15757, 43, tampered);

    let mut cold = TestStack::with_inputs(&grafana_dashboard("kubernetes-global", 15757, Some(43)));
    cold.write("stack.lock", &state["stack.lock"]);
    cold.set_cache_dir(&stack.fresh_dir("cold-cache"));
    cold.lock(&["--mirror", &mirror])
        .code(2)
        .mentions(&["kubernetes-global"]);
    assert_eq!(cold.lock_text().as_bytes(), &state["stack.lock"][..]);
    assert!(
        !cold.exists("vendor/dashboards/kubernetes-global.json"),
        "tampered bytes were vendored"
    );

    stack
        .lock(&["--mirror", &mirror, "--update", "kubernetes-global"])
        .code(2)
        .mentions(&["kubernetes-global"]);
    assert_eq!(stack.locked_state(), state);
}

#[test]
fn url_dashboard_bytes_changed_upstream_are_not_vendored_over_the_pin() {
    let dashboards = dashboard_server(&["etcd.json"]);
    let url = format!("{}/etcd.json", dashboards.url());
    let stack = TestStack::with_inputs(&url_dashboard("etcd", &url));
    stack.lock(&[]).success();
    let state = stack.locked_state();

    dashboards.serve("/etcd.json", dashboard_bytes("cert-manager-overview.json"));

    let mut cold = TestStack::with_inputs(&url_dashboard("etcd", &url));
    cold.write("stack.lock", &state["stack.lock"]);
    cold.set_cache_dir(&stack.fresh_dir("cold-cache"));
    cold.lock(&[]).code(2).mentions(&["etcd"]);
    assert_eq!(cold.lock_text().as_bytes(), &state["stack.lock"][..]);
    assert!(!cold.exists("vendor/dashboards/etcd.json"));
}
