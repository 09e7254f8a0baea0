//! Charts resolved the way Helm and Flux resolve them, against a real registry (Debian's
//! docker-registry): only tags Helm reads as chart versions are candidates, an artifact that is not a
//! chart is skipped with a warning, the OCI tag spelling of build metadata is accepted in a requirement,
//! and a chart pushed by Helm before 3.7 (layer `application/tar+gzip`) is emitted with the layer media
//! type that was locked.

use crate::support::registry::{HELM_CONFIG_MEDIA_TYPE, OCI_MANIFEST};
use crate::support::{self, sha256, Registry, TestStack};

/// A minimal chart archive of our own: `<name>/Chart.yaml` only.
fn chart_tgz(name: &str, version: &str) -> Vec<u8> {
    let chart_yaml =
        format!("apiVersion: v2\nname: {name}\nversion: {version}\ntype: application\n");
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::best(),
    ));
    let mut header = tar::Header::new_ustar();
    header.set_size(chart_yaml.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder
        .append_data(
            &mut header,
            format!("{name}/Chart.yaml"),
            chart_yaml.as_bytes(),
        )
        .unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

/// Pushes `tgz` under `tag` with the given layer media type; returns the manifest digest.
fn push(registry: &Registry, repo: &str, tag: &str, tgz: &[u8], layer_media_type: &str) -> String {
    let config = b"{\"name\":\"op\"}".to_vec();
    registry.push_blob(repo, &config);
    registry.push_blob(repo, tgz);
    let manifest = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{OCI_MANIFEST}\",\"config\":{{\"mediaType\":\"{HELM_CONFIG_MEDIA_TYPE}\",\"digest\":\"{}\",\"size\":{}}},\"layers\":[{{\"mediaType\":\"{layer_media_type}\",\"digest\":\"{}\",\"size\":{}}}]}}",
        sha256(&config),
        config.len(),
        sha256(tgz),
        tgz.len()
    );
    registry.push_raw_manifest(repo, tag, OCI_MANIFEST, manifest.as_bytes())
}

/// Pushes an image (not a chart) under `tag`.
fn push_image(registry: &Registry, repo: &str, tag: &str) {
    let config = b"{\"architecture\":\"amd64\",\"os\":\"linux\"}".to_vec();
    let layer = b"not a chart".to_vec();
    registry.push_blob(repo, &config);
    registry.push_blob(repo, &layer);
    let manifest = support::registry::image_manifest(&config, &layer);
    registry.push_raw_manifest(repo, tag, OCI_MANIFEST, &manifest);
}

/// A stack with one module releasing chart `op`.
fn stack_with_module(chart_input: &str) -> TestStack {
    let stack = TestStack::with_inputs(chart_input);
    let toml = stack
        .read("stack.toml")
        .replace("enabled = []", "enabled = [\"op\"]");
    stack.write("stack.toml", &toml);
    stack.write(
        "modules/op/module.toml",
        "namespace = \"op-system\"\n[release]\nchart = \"op\"\n",
    );
    stack
}

#[test]
fn image_tags_beside_chart_tags_are_not_candidates_and_a_non_chart_is_skipped() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let repo = "acme/op";
    for tag in ["v1.5.1", "v1.6.0"] {
        push_image(&registry, repo, tag);
    }
    push(
        &registry,
        repo,
        "1.5.1",
        &chart_tgz("op", "1.5.1"),
        support::registry::HELM_CHART_MEDIA_TYPE,
    );
    // 1.6.0 was pushed as an image by mistake: skipped, with a warning.
    push_image(&registry, repo, "1.6.0");
    let stack = TestStack::with_inputs(&support::stack::oci_chart(
        "op",
        &registry.oci_url(repo),
        ">=1.4.1",
    ));
    let out = stack.lock(&[]).success();
    assert!(
        out.stderr.contains("warning: chart `op`: tag 1.6.0")
            && out.stderr.contains("is not a Helm chart"),
        "{out:?}"
    );
    assert_eq!(
        support::stack::field(&stack.locked_chart("op"), "version"),
        "1.5.1"
    );
}

#[test]
fn a_requirement_in_the_oci_tag_spelling_of_build_metadata_is_accepted() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let repo = "rancher/op";
    push(
        &registry,
        repo,
        "104.1.1_up57.0.3",
        &chart_tgz("op", "104.1.1+up57.0.3"),
        support::registry::HELM_CHART_MEDIA_TYPE,
    );
    let stack = TestStack::with_inputs(&support::stack::oci_chart(
        "op",
        &registry.oci_url(repo),
        "104.1.1_up57.0.3",
    ));
    stack.lock(&[]).success();
    assert_eq!(
        support::stack::field(&stack.locked_chart("op"), "version"),
        "104.1.1+up57.0.3"
    );
}

#[test]
fn a_chart_pushed_before_helm_3_7_is_emitted_with_its_layer_media_type() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let repo = "legacy/op";
    let digest = push(
        &registry,
        repo,
        "1.0.0",
        &chart_tgz("op", "1.0.0"),
        "application/tar+gzip",
    );
    let stack = stack_with_module(&support::stack::oci_chart(
        "op",
        &registry.oci_url(repo),
        "1.0.0",
    ));
    stack.lock(&[]).success();
    let locked = stack.locked_chart("op");
    assert_eq!(
        support::stack::field(&locked, "layer_media_type"),
        "application/tar+gzip"
    );
    assert_eq!(support::stack::field(&locked, "digest"), digest);
    stack.run(&["build"]).success();
    let source = stack.read("kubernetes/op/app/ocirepository.yaml");
    assert!(
        source.contains("mediaType: application/tar+gzip"),
        "the layerSelector must name the locked media type:\n{source}"
    );
}
