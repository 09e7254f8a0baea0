//! The lock is sticky: a pin moves only when its requirement changes or `--update` names it; `--check`
//! (and `--check --remote`) report without writing; a removed input leaves the lock and vendor/ alone.

use crate::lock::{
    dashboard_server, fixture_helm_repo, registry_with_loki_and_vm, repo_chart, two_oci_charts,
    url_dashboard,
};
use crate::support::charts::{fixture_versions, runtime_chart};
use crate::support::registry::Registry;
use crate::support::stack::{field, oci_chart};
use crate::support::{dashboard_bytes, TestStack};

/// Pushes versions that appear upstream after the first lock: loki 6.50.0, victoria-metrics-k8s-stack 0.45.2.
fn push_newer(registry: &Registry) -> (String, String) {
    let loki = registry.push_chart(
        "grafana/helm-charts/loki",
        "6.50.0",
        &runtime_chart("loki", "6.50.0", "").bytes,
    );
    let vm = registry.push_chart(
        "victoriametrics/helm-charts/victoria-metrics-k8s-stack",
        "0.45.2",
        &runtime_chart("victoria-metrics-k8s-stack", "0.45.2", "").bytes,
    );
    (loki, vm)
}

#[test]
fn lock_is_sticky_a_version_published_later_is_not_picked() {
    let Some(registry) = registry_with_loki_and_vm() else {
        return;
    };
    let stack = TestStack::with_inputs(&two_oci_charts(&registry));
    stack.lock(&[]).success();
    let before = stack.lock_text();
    assert_eq!(field(&stack.locked_chart("loki"), "version"), "6.49.0");

    push_newer(&registry);
    stack.lock(&[]).success();

    assert_eq!(
        stack.lock_text(),
        before,
        "a plain `stack lock` moved a pin whose requirement still holds"
    );
}

#[test]
fn changed_requirement_moves_only_that_entry() {
    let Some(registry) = registry_with_loki_and_vm() else {
        return;
    };
    let stack = TestStack::with_inputs(&two_oci_charts(&registry));
    stack.lock(&[]).success();
    let vm_before = stack.locked_chart("victoria-metrics-k8s-stack");
    let (loki_digest, _) = push_newer(&registry);

    stack.set_inputs(&two_oci_charts(&registry).replace(">=6.48, <7", "6.50.0"));
    stack.lock(&[]).success();

    let loki = stack.locked_chart("loki");
    assert_eq!(field(&loki, "version"), "6.50.0");
    assert_eq!(field(&loki, "requirement"), "6.50.0");
    assert_eq!(field(&loki, "digest"), loki_digest);
    assert_eq!(
        stack.locked_chart("victoria-metrics-k8s-stack"),
        vm_before,
        "an untouched entry moved"
    );
    stack.lock(&["--check"]).code(0);
}

#[test]
fn update_named_input_moves_only_that_one_and_prints_what_changed() {
    let Some(registry) = registry_with_loki_and_vm() else {
        return;
    };
    let stack = TestStack::with_inputs(&two_oci_charts(&registry));
    stack.lock(&[]).success();
    let vm_before = stack.locked_chart("victoria-metrics-k8s-stack");
    let (loki_digest, _) = push_newer(&registry);

    let out = stack
        .lock(&["--update", "loki"])
        .success()
        .mentions(&["loki", "6.49.0", "6.50.0"]);

    assert_eq!(field(&stack.locked_chart("loki"), "version"), "6.50.0");
    assert_eq!(field(&stack.locked_chart("loki"), "digest"), loki_digest);
    assert_eq!(stack.locked_chart("victoria-metrics-k8s-stack"), vm_before);
    insta::assert_snapshot!(
        "update_named_change_table",
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            out.code,
            stack.redact(&out.stdout),
            stack.redact(&out.stderr)
        )
    );
}

#[test]
fn update_without_names_moves_every_input() {
    let Some(registry) = registry_with_loki_and_vm() else {
        return;
    };
    let stack = TestStack::with_inputs(&two_oci_charts(&registry));
    stack.lock(&[]).success();
    let (loki_digest, vm_digest) = push_newer(&registry);

    stack
        .lock(&["--update"])
        .success()
        .mentions(&["loki", "victoria-metrics-k8s-stack"]);

    assert_eq!(field(&stack.locked_chart("loki"), "digest"), loki_digest);
    assert_eq!(
        field(&stack.locked_chart("victoria-metrics-k8s-stack"), "version"),
        "0.45.2"
    );
    assert_eq!(
        field(&stack.locked_chart("victoria-metrics-k8s-stack"), "digest"),
        vm_digest
    );
}

#[test]
fn update_of_an_unknown_name_is_an_error() {
    let Some(registry) = registry_with_loki_and_vm() else {
        return;
    };
    let stack = TestStack::with_inputs(&two_oci_charts(&registry));
    stack.lock(&[]).success();
    let before = stack.locked_state();

    stack
        .lock(&["--update", "lokii"])
        .code(2)
        .mentions(&["lokii"]);
    assert_eq!(stack.locked_state(), before);
}

/// `--mirror 'ghcr.io=http://[::1]:PORT'` is loopback, so plain HTTP needs no `insecure`: the chart is
/// locked from a real registry that listens on IPv6 loopback only, and the lock keeps the ghcr.io source.
#[test]
fn ipv6_loopback_mirror_is_accepted_and_used() {
    let Some(registry) = Registry::start_on_ipv6_loopback() else {
        return;
    };
    let chart = fixture_versions("loki").remove(0);
    let digest = registry.push_fixture("grafana/helm-charts/loki", &chart);
    let canonical = "oci://ghcr.io/grafana/helm-charts/loki";
    let stack = TestStack::with_inputs(&oci_chart("loki", canonical, &chart.version));
    let mirror = format!("ghcr.io=http://{}", registry.host());
    assert!(mirror.starts_with("ghcr.io=http://[::1]:"), "{mirror}");

    stack.lock(&["--mirror", &mirror]).success();
    let locked = stack.locked_chart("loki");
    assert_eq!(field(&locked, "source"), canonical);
    assert_eq!(field(&locked, "digest"), digest);
    assert!(
        registry.blob_downloads() >= 1,
        "the chart did not come from the [::1] registry: {:?}",
        registry.requests()
    );
}

#[test]
fn check_exits_1_when_the_lock_is_missing_or_stale_0_when_current_and_never_writes() {
    let Some(registry) = registry_with_loki_and_vm() else {
        return;
    };
    let inputs = two_oci_charts(&registry);
    let stack = TestStack::with_inputs(&inputs);

    stack.lock(&["--check"]).code(1);
    assert!(!stack.exists("stack.lock"), "--check wrote a lock");

    stack.lock(&[]).success();
    let locked = stack.locked_state();
    drop(registry); // --check is offline: no server is needed
    stack.lock(&["--check"]).code(0);

    stack.set_inputs(&inputs.replace("~0.45", "~0.44"));
    let out = stack.lock(&["--check"]).code(1);
    insta::assert_snapshot!("check_requirement_changed", stack.redact(&out.stderr));
    stack.set_inputs(&format!(
        "{inputs}{}",
        url_dashboard("new-one", "http://127.0.0.1:9/x.json")
    ));
    let out = stack.lock(&["--check"]).code(1);
    insta::assert_snapshot!("check_input_added", stack.redact(&out.stderr));
    assert_eq!(
        stack.locked_state(),
        locked,
        "--check changed the lock or vendor/"
    );
}

#[test]
fn check_remote_reports_a_newer_matching_version_without_writing() {
    let Some(registry) = registry_with_loki_and_vm() else {
        return;
    };
    let stack = TestStack::with_inputs(&two_oci_charts(&registry));
    stack.lock(&[]).success();
    stack.lock(&["--check", "--remote"]).code(0);
    let before = stack.locked_state();

    push_newer(&registry);

    stack
        .lock(&["--check", "--remote"])
        .code(1)
        .mentions(&["loki", "6.50.0"]);
    assert_eq!(stack.locked_state(), before);
}

#[test]
fn removed_input_leaves_the_lock_and_vendor() {
    let dashboards = dashboard_server(&["flux-cluster.json", "flux-control-plane.json"]);
    let helm = fixture_helm_repo();
    let keep = format!(
        "{}{}",
        url_dashboard(
            "flux-cluster",
            &format!("{}/flux-cluster.json", dashboards.url())
        ),
        repo_chart("tempo", &helm.url(), "1.24.1")
    );
    let stack = TestStack::with_inputs(&format!(
        "{keep}{}{}",
        url_dashboard(
            "flux-control-plane",
            &format!("{}/flux-control-plane.json", dashboards.url())
        ),
        repo_chart("alloy", &helm.url(), "1.1.2"),
    ));
    stack.lock(&[]).success();
    assert!(stack.exists("vendor/dashboards/flux-control-plane.json"));
    let kept_dashboard = stack.locked_dashboard("flux-cluster");

    stack.set_inputs(&keep);
    stack
        .lock(&[])
        .success()
        .mentions(&["flux-control-plane", "alloy"]);

    assert_eq!(stack.locked_names("dashboard"), ["flux-cluster"]);
    assert_eq!(stack.locked_names("chart"), ["tempo"]);
    assert!(
        !stack.exists("vendor/dashboards/flux-control-plane.json"),
        "a removed dashboard stayed in vendor/"
    );
    assert_eq!(stack.locked_dashboard("flux-cluster"), kept_dashboard);
    assert_eq!(
        stack.read_bytes("vendor/dashboards/flux-cluster.json"),
        dashboard_bytes("flux-cluster.json")
    );
    stack.lock(&["--check"]).code(0);
}
