//! grafana.com dashboards in `stack lock`: latest or explicit revisions, the pinned title, stickiness, and
//! errors that name an unknown id or revision.

use crate::lock::grafana_dashboard;
use crate::support::stack::field;
use crate::support::{self, blake3, dashboard_bytes, sha256, GrafanaCom, TestStack};

#[test]
fn grafana_com_latest_revision_and_title_are_pinned() {
    let grafana = GrafanaCom::with_fixtures();
    let stack = TestStack::with_inputs(&grafana_dashboard("kubernetes-global", 15757, None));

    stack
        .lock(&[
            "--mirror",
            &format!("https://grafana.com={}", grafana.url()),
        ])
        .success();

    let bytes = dashboard_bytes("k8s-views-global.json");
    let locked = stack.locked_dashboard("kubernetes-global");
    assert_eq!(
        field(&locked, "source"),
        "https://grafana.com/api/dashboards/15757"
    );
    assert_eq!(field(&locked, "grafana_com"), "15757");
    assert_eq!(field(&locked, "revision"), "43");
    assert_eq!(field(&locked, "title"), "Kubernetes / Views / Global");
    assert_eq!(
        field(&locked, "path"),
        "vendor/dashboards/kubernetes-global.json"
    );
    assert_eq!(field(&locked, "digest"), sha256(&bytes));
    assert_eq!(field(&locked, "blake3"), blake3(&bytes));
    assert_eq!(
        stack.read_bytes("vendor/dashboards/kubernetes-global.json"),
        bytes,
        "vendored as served"
    );
    assert!(
        grafana.server.count("/api/dashboards/15757") >= 1,
        "the latest revision comes from the metadata"
    );
}

/// Removing `revision = 43` asks for the latest instead: the pin no longer answers its input, and every
/// command says which input and which field, not just that a fingerprint differs.
#[test]
fn removing_a_grafana_com_revision_is_named_by_check_build_and_relocked() {
    let grafana = GrafanaCom::with_fixtures();
    let mirror = format!("https://grafana.com={}", grafana.url());
    let stack = TestStack::with_inputs(&grafana_dashboard("global", 15757, Some(43)));
    stack.lock(&["--mirror", &mirror]).success();
    assert_eq!(
        field(&stack.locked_dashboard("global"), "requested_revision"),
        "43"
    );
    stack.lock(&["--check"]).success();

    stack.set_inputs(&grafana_dashboard("global", 15757, None));
    let check = stack.lock(&["--check"]).code(1);
    insta::assert_snapshot!("revision_removed_check", stack.redact(&check.stderr));
    assert!(!check.stderr.contains("blake3:"), "{}", check.stderr);
    let build = stack.run(&["build"]).code(2);
    assert!(
        build
            .stderr
            .contains("dashboard `global`: `revision` is not set"),
        "{}",
        build.stderr
    );

    // `stack lock` follows the new request: it asks grafana.com for the latest revision (43 still).
    let before = grafana.server.count("/api/dashboards/15757");
    stack.lock(&["--mirror", &mirror]).success();
    assert!(
        grafana.server.count("/api/dashboards/15757") > before,
        "the latest was not asked for"
    );
    let locked = stack.locked_dashboard("global");
    assert_eq!(field(&locked, "revision"), "43");
    assert!(!locked.contains_key("requested_revision"), "{locked:?}");
    stack.lock(&["--check"]).success();
}

/// A lock written before requested revisions were recorded (no `requested_revision`) stays current while
/// its fingerprint holds, gains the field from an offline `stack lock`, and then names a removed revision.
#[test]
fn a_lock_without_requested_revisions_is_kept_and_completed_offline() {
    let grafana = GrafanaCom::with_fixtures();
    let mirror = format!("https://grafana.com={}", grafana.url());
    let stack = TestStack::with_inputs(&grafana_dashboard("global", 15757, Some(43)));
    stack.lock(&["--mirror", &mirror]).success();
    let written = stack.lock_text();
    let legacy = written.replace("requested_revision = 43\n", "");
    assert_ne!(legacy, written);
    stack.write("stack.lock", &legacy);

    stack.lock(&["--check"]).success();
    stack.run(&["build"]).success();
    drop(grafana); // the pin is kept without asking
    stack.lock(&["--offline"]).success();
    assert_eq!(stack.lock_text(), written);

    stack.set_inputs(&grafana_dashboard("global", 15757, None));
    let check = stack.lock(&["--check"]).code(1);
    assert!(
        check
            .stderr
            .contains("dashboard `global`: `revision` is not set"),
        "{}",
        check.stderr
    );
}

#[test]
fn grafana_com_explicit_revision_is_downloaded_as_is() {
    let grafana = GrafanaCom::with_fixtures();
    let stack = TestStack::with_inputs(&grafana_dashboard("kubernetes-global", 15757, Some(42)));

    stack
        .lock(&[
            "--mirror",
            &format!("https://grafana.com={}", grafana.url()),
        ])
        .success();

    let bytes = grafana.published(15757).revisions[&42].clone();
    let locked = stack.locked_dashboard("kubernetes-global");
    assert_eq!(field(&locked, "revision"), "42");
    assert_eq!(field(&locked, "blake3"), blake3(&bytes));
    assert_eq!(
        stack.read_bytes("vendor/dashboards/kubernetes-global.json"),
        bytes
    );
    assert_eq!(
        grafana
            .server
            .count("/api/dashboards/15757/revisions/42/download"),
        1
    );
    assert_eq!(
        grafana
            .server
            .count("/api/dashboards/15757/revisions/43/download"),
        0
    );
}

#[test]
fn grafana_com_latest_pin_is_sticky_until_updated() {
    let grafana = GrafanaCom::with_fixtures();
    let mirror = format!("https://grafana.com={}", grafana.url());
    let stack = TestStack::with_inputs(&grafana_dashboard("cilium-agent", 16611, None));
    stack.lock(&["--mirror", &mirror]).success();
    assert_eq!(
        field(&stack.locked_dashboard("cilium-agent"), "revision"),
        "1"
    );

    // A second, different upload of the dashboard.
    let newer = support::grafana::previous_revision(&dashboard_bytes("cilium-agent.json"));
    grafana.add_revision(16611, 2, newer.clone());
    stack.lock(&["--mirror", &mirror]).success();
    assert_eq!(
        field(&stack.locked_dashboard("cilium-agent"), "revision"),
        "1",
        "moved without --update"
    );

    stack
        .lock(&["--mirror", &mirror, "--update", "cilium-agent"])
        .success()
        .mentions(&["cilium-agent"]);
    assert_eq!(
        field(&stack.locked_dashboard("cilium-agent"), "revision"),
        "2"
    );
    assert_eq!(
        stack.read_bytes("vendor/dashboards/cilium-agent.json"),
        newer
    );
}

#[test]
fn grafana_com_unknown_id_is_an_error_naming_it() {
    let grafana = GrafanaCom::with_fixtures();
    let stack = TestStack::with_inputs(&grafana_dashboard("nothing-here", 999_999_999, None));

    stack
        .lock(&[
            "--mirror",
            &format!("https://grafana.com={}", grafana.url()),
        ])
        .code(2)
        .mentions(&["999999999"]);
    assert!(!stack.exists("stack.lock"));
}

#[test]
fn grafana_com_unknown_revision_is_an_error_naming_it() {
    let grafana = GrafanaCom::with_fixtures();
    let stack = TestStack::with_inputs(&grafana_dashboard("kubernetes-global", 15757, Some(99)));

    stack
        .lock(&[
            "--mirror",
            &format!("https://grafana.com={}", grafana.url()),
        ])
        .code(2)
        .mentions(&["15757"]);
    assert!(!stack.exists("stack.lock"));
}
