//! Mirrors in `stack build`: cluster mirrors redirect what Flux pulls; lock-only mirrors do not reach the
//! emitted objects.

use crate::build::{build_tree, flux_schemas, text, validate_flux, yaml_documents, Stack};

#[test]
fn cluster_mirrors_redirect_what_flux_pulls_and_lock_only_mirrors_do_not() {
    let s = Stack::default_stack();
    s.write(
        "stack.toml",
        &format!(
            "{}\n[mirrors]\n\"ghcr.io\" = {{ to = \"http://registry.internal:5000\", insecure = true, cluster = true }}\n\"https://grafana.github.io/helm-charts\" = {{ to = \"https://charts.internal/grafana\", cluster = true }}\n\"https://raw.githubusercontent.com\" = \"https://github-cache.internal\"\n",
            s.read("stack.toml")
        ),
    );
    let tree = build_tree(&s);
    let doc = |path: &str| yaml_documents(&text(&tree[path])).remove(0);
    let loki = doc("loki/app/ocirepository.yaml");
    assert_eq!(
        loki["spec"]["url"],
        "oci://registry.internal:5000/grafana/helm-charts/loki"
    );
    assert_eq!(loki["spec"]["insecure"], true);
    let lock: toml::Value = toml::from_str(&s.read("stack.lock")).unwrap();
    let locked_loki = lock["chart"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str() == Some("loki"))
        .unwrap();
    assert_eq!(
        loki["spec"]["ref"]["digest"].as_str(),
        locked_loki["digest"].as_str(),
        "a mirror serves the same digest"
    );
    assert_eq!(
        doc("tempo/app/helmrepository.yaml")["spec"]["url"],
        "https://charts.internal/grafana"
    );
    let schemas = flux_schemas();
    assert_eq!(
        validate_flux(&[loki, doc("tempo/app/helmrepository.yaml")], &schemas),
        2
    );

    // Without `cluster = true`, a mirror is only where `stack lock` fetches from.
    let plain = Stack::default_stack();
    plain.write(
        "stack.toml",
        &format!(
            "{}\n[mirrors]\n\"ghcr.io\" = \"registry.internal:5000\"\n",
            plain.read("stack.toml")
        ),
    );
    let tree = build_tree(&plain);
    let loki = yaml_documents(&text(&tree["loki/app/ocirepository.yaml"])).remove(0);
    assert_eq!(
        loki["spec"]["url"],
        "oci://ghcr.io/grafana/helm-charts/loki"
    );
    assert!(loki["spec"].get("insecure").is_none());
}
