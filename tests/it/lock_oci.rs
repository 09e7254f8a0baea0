//! `stack lock` of charts in OCI registries (Debian's docker-registry on loopback): exact and ranged
//! versions pin the manifest and layer digests; a tag with `_` is build metadata; what is not a Helm chart,
//! an unknown repository and an unmet requirement are errors naming the chart.

use std::collections::BTreeMap;

use crate::support::charts::{fixture_chart, fixture_versions, runtime_chart};
use crate::support::registry::{self, registry};
use crate::support::stack::{field, oci_chart};
use crate::support::TestStack;

#[test]
fn oci_exact_version_pins_the_manifest_and_layer_digests() {
    let registry = registry!();
    let mut digests = BTreeMap::new();
    for chart in fixture_versions("loki") {
        digests.insert(
            chart.version.clone(),
            registry.push_fixture("grafana/helm-charts/loki", &chart),
        );
    }
    let url = registry.oci_url("grafana/helm-charts/loki");
    let stack = TestStack::with_inputs(&oci_chart("loki", &url, "6.49.0"));

    stack.lock(&[]).success();

    let chart = fixture_chart("loki", "6.49.0");
    let locked = stack.locked_chart("loki");
    assert_eq!(field(&locked, "source"), url);
    assert_eq!(field(&locked, "requirement"), "6.49.0");
    assert_eq!(field(&locked, "version"), "6.49.0");
    assert_eq!(
        field(&locked, "digest"),
        digests["6.49.0"],
        "the manifest digest Flux pins"
    );
    assert_eq!(field(&locked, "layer_digest"), chart.sha256());
    assert_eq!(field(&locked, "blake3"), chart.blake3());
    assert!(
        stack.lock_text().starts_with("# @generated"),
        "{}",
        stack.lock_text()
    );
}

#[test]
fn oci_range_picks_the_highest_stable_match_and_ignores_non_semver_tags() {
    let registry = registry!();
    let repo = "victoriametrics/helm-charts/victoria-metrics-k8s-stack";
    let mut digests = BTreeMap::new();
    for chart in fixture_versions("victoria-metrics-k8s-stack") {
        digests.insert(chart.version.clone(), registry.push_fixture(repo, &chart));
    }
    // Tags real registries carry besides versions: a moving `latest` and a cosign signature tag.
    let (_, rc_manifest) =
        registry::chart_manifest(&fixture_chart("victoria-metrics-k8s-stack", "0.45.1-rc.1").bytes);
    registry.push_raw_manifest(repo, "latest", registry::OCI_MANIFEST, &rc_manifest);
    let sig_config = b"{}".to_vec();
    let sig_layer = b"not a chart".to_vec();
    registry.push_blob(repo, &sig_config);
    registry.push_blob(repo, &sig_layer);
    let sig_tag = format!("sha256-{}.sig", &digests["0.45.0"]["sha256:".len()..]);
    registry.push_raw_manifest(
        repo,
        &sig_tag,
        registry::OCI_MANIFEST,
        &registry::image_manifest(&sig_config, &sig_layer),
    );
    assert_eq!(registry.tags(repo).len(), 5);

    let url = registry.oci_url(repo);
    let stack = TestStack::with_inputs(&format!(
        "{}{}{}",
        oci_chart("stable", &url, "~0.45"),
        oci_chart("with-prereleases", &url, ">=0.45.0-0, <0.46.0"),
        oci_chart("older", &url, "<0.45"),
    ));

    stack.lock(&[]).success();

    for (name, version) in [
        ("stable", "0.45.0"),
        ("with-prereleases", "0.45.1-rc.1"),
        ("older", "0.44.0"),
    ] {
        let locked = stack.locked_chart(name);
        assert_eq!(field(&locked, "version"), version, "{name}");
        assert_eq!(field(&locked, "digest"), digests[version], "{name}");
    }
    assert_eq!(field(&stack.locked_chart("stable"), "requirement"), "~0.45");
}

#[test]
fn oci_tag_with_underscore_is_the_version_with_build_metadata() {
    let registry = registry!();
    let chart = runtime_chart("loki", "6.50.0+build.7", "");
    let digest = registry.push_chart("grafana/helm-charts/loki", "6.50.0_build.7", &chart.bytes);
    let stack = TestStack::with_inputs(&oci_chart(
        "loki",
        &registry.oci_url("grafana/helm-charts/loki"),
        "~6.50",
    ));

    stack.lock(&[]).success();

    let locked = stack.locked_chart("loki");
    assert_eq!(field(&locked, "version"), "6.50.0+build.7");
    assert_eq!(field(&locked, "digest"), digest);
}

#[test]
fn oci_artifact_that_is_not_a_helm_chart_is_refused() {
    let registry = registry!();
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = b"an image layer, not a chart".to_vec();
    registry.push_blob("library/app", &config);
    registry.push_blob("library/app", &layer);
    registry.push_raw_manifest(
        "library/app",
        "1.0.0",
        registry::OCI_MANIFEST,
        &registry::image_manifest(&config, &layer),
    );
    let stack =
        TestStack::with_inputs(&oci_chart("app", &registry.oci_url("library/app"), "1.0.0"));

    stack
        .lock(&[])
        .code(2)
        .mentions(&["app"])
        .mentions_any(&["helm", "media type", "mediatype"]);
    assert!(!stack.exists("stack.lock"));
}

#[test]
fn oci_unknown_repository_is_an_error_naming_the_chart() {
    let registry = registry!();
    let stack = TestStack::with_inputs(&oci_chart(
        "ghost",
        &registry.oci_url("nobody/ghost"),
        "1.0.0",
    ));

    stack.lock(&[]).code(2).mentions(&["ghost"]);
    assert!(!stack.exists("stack.lock"));
}

#[test]
fn oci_requirement_that_nothing_meets_is_an_error_naming_it() {
    let registry = registry!();
    for chart in fixture_versions("loki") {
        registry.push_fixture("grafana/helm-charts/loki", &chart);
    }
    let stack = TestStack::with_inputs(&oci_chart(
        "loki",
        &registry.oci_url("grafana/helm-charts/loki"),
        "~7.1",
    ));

    stack.lock(&[]).code(2).mentions(&["loki", "~7.1"]);
    assert!(!stack.exists("stack.lock"));
}
