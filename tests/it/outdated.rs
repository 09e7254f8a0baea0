//! `stack outdated` against real upstreams on loopback: the snapshot mirror of the default stack with
//! newer chart versions pushed to its registry, and a grafana.com-shaped server with a newer revision.

use crate::support::charts::runtime_chart;
use crate::support::{repo_root, GrafanaCom, SnapshotMirror, TestStack};

fn with_mirror<'a>(args: &[&'a str], mirror: &'a [String]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(mirror.iter().map(String::as_str));
    all
}

#[test]
fn outdated_reports_newer_versions_pushed_to_the_snapshot_mirror() {
    let Some(mirror) = SnapshotMirror::start() else {
        return;
    };
    let stack = TestStack::from_repo();
    stack.write(
        "stack.lock",
        fs_err::read(repo_root().join("stack.lock")).unwrap(),
    );
    let flags = mirror.args();

    let before = stack.run(&with_mirror(&["outdated"], &flags)).success();
    insta::assert_snapshot!("outdated_default_before", before.stdout);

    for (repo, chart, version) in [
        ("grafana/helm-charts/loki", "loki", "6.50.0"),
        ("grafana/helm-charts/loki", "loki", "7.0.0"),
        (
            "prometheus-community/charts/prometheus-operator-crds",
            "prometheus-operator-crds",
            "25.1.0",
        ),
        (
            "prometheus-community/charts/prometheus-operator-crds",
            "prometheus-operator-crds",
            "26.0.0",
        ),
        (
            "victoriametrics/helm-charts/victoria-metrics-k8s-stack",
            "victoria-metrics-k8s-stack",
            "0.46.0-rc.1",
        ),
    ] {
        let bytes = runtime_chart(chart, version, "").bytes;
        mirror.registry.push_chart(repo, version, &bytes);
    }

    let after = stack.run(&with_mirror(&["outdated"], &flags)).success();
    insta::assert_snapshot!("outdated_default_after", after.stdout);
    let json = stack
        .run(&with_mirror(&["outdated", "--json"], &flags))
        .success();
    crate::cli::assert_schema(&json.stdout);
    insta::assert_snapshot!("outdated_default_after_json", json.stdout);
    stack
        .run(&with_mirror(&["outdated", "--exit-code"], &flags))
        .code(1);
    assert_eq!(
        stack.lock_text(),
        fs_err::read_to_string(repo_root().join("stack.lock")).unwrap(),
        "outdated writes nothing"
    );
}

#[test]
fn outdated_reports_the_newest_grafana_com_revision() {
    let grafana = GrafanaCom::with_fixtures();
    let stack = TestStack::with_inputs(
        "[dashboards.global]\ngrafana_com = 15757\nfolder = \"T\"\n\n[dashboards.node]\ngrafana_com = 1860\nrevision = 37\nfolder = \"T\"\n",
    );
    let mirror = format!("https://grafana.com={}", grafana.url());
    stack.lock(&["--mirror", &mirror]).success();
    let current = stack.run(&["outdated", "--mirror", &mirror]).success();
    assert_eq!(current.stdout, "all 2 inputs are up to date\n");

    let newer =
        crate::support::grafana::previous_revision(&grafana.published(15757).revisions[&43]);
    grafana.add_revision(15757, 44, newer.clone());
    grafana.add_revision(
        1860,
        38,
        crate::support::dashboard_bytes("node-exporter-full.json"),
    );
    let out = stack
        .run(&["outdated", "--mirror", &mirror, "--json"])
        .success();
    crate::cli::assert_schema(&out.stdout);
    insta::assert_snapshot!("outdated_grafana_json", out.stdout);
    let out = stack.run(&["outdated", "--mirror", &mirror]).success();
    insta::assert_snapshot!("outdated_grafana", out.stdout);
}

#[test]
fn every_unreachable_input_is_reported_in_a_stable_order() {
    // A loopback port nothing listens on: every chart fails; the report names them all, sorted, the same
    // on every run whichever answer comes first.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let inputs: String = ["zeta", "alpha", "mid"]
        .iter()
        .map(|n| {
            crate::support::stack::oci_chart(
                n,
                &format!("oci://127.0.0.1:{port}/charts/{n}"),
                "1.0.0",
            )
        })
        .collect();
    let mut stack = TestStack::with_inputs(&inputs);
    stack.env("STACK_RETRY_BASE_MS", "1");
    let first = stack.run(&["outdated"]).code(2).stderr;
    assert!(first.contains("3 inputs could not be asked"), "{first}");
    let at = |name: &str| {
        first
            .find(&format!("chart `{name}`"))
            .unwrap_or_else(|| panic!("{name}: {first}"))
    };
    assert!(at("alpha") < at("mid") && at("mid") < at("zeta"), "{first}");
    assert_eq!(stack.run(&["outdated"]).code(2).stderr, first);
}
