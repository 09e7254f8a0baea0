//! `stack lock` of every kind of source at once, each reached through a `--mirror` on loopback: the lock
//! records the canonical sources, never the mirrors.

use crate::lock::{canonical_inputs, Upstreams};
use crate::support::stack::field;
use crate::support::{dashboard_bytes, TestStack};

#[test]
fn several_sources_lock_through_mirrors_and_the_lock_records_canonical_sources() {
    let Some(up) = Upstreams::start() else { return };
    let stack = TestStack::with_inputs(&canonical_inputs());
    let args: Vec<String> = up.mirror_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    stack.lock(&args).success();

    let lock = stack.lock_text();
    assert!(
        !lock.contains("127.0.0.1"),
        "the lock names mirrors:\n{lock}"
    );
    assert_eq!(
        stack.locked_names("chart"),
        ["alloy", "loki", "tempo", "victoria-metrics-k8s-stack"],
        "sorted by name"
    );
    assert_eq!(
        field(&stack.locked_chart("loki"), "source"),
        "oci://ghcr.io/grafana/helm-charts/loki"
    );
    // Helm's tilde: ~6.48 is >=6.48.0 <6.49.0, so 6.49.0 is out of range.
    assert_eq!(field(&stack.locked_chart("loki"), "version"), "6.48.0");
    assert_eq!(field(&stack.locked_chart("tempo"), "version"), "1.24.1");
    assert_eq!(
        field(&stack.locked_chart("alloy"), "source"),
        "https://grafana.github.io/helm-charts#alloy"
    );
    assert_eq!(
        field(&stack.locked_chart("alloy"), "url"),
        "https://grafana.github.io/helm-charts/alloy-1.1.2.tgz"
    );
    let global = stack.locked_dashboard("kubernetes-global");
    assert_eq!(
        field(&global, "source"),
        "https://grafana.com/api/dashboards/15757"
    );
    assert_eq!(field(&global, "title"), "Kubernetes / Views / Global");
    assert_eq!(
        field(&stack.locked_dashboard("flux-cluster"), "title"),
        "Flux Cluster Stats"
    );
    assert_eq!(
        stack.read_bytes("vendor/dashboards/kubernetes-global.json"),
        dashboard_bytes("k8s-views-global.json")
    );
    assert_eq!(
        stack.read_bytes("vendor/dashboards/node-exporter-full.json"),
        dashboard_bytes("node-exporter-full.json")
    );
    assert_eq!(
        stack.read_bytes("vendor/dashboards/flux-cluster.json"),
        dashboard_bytes("flux-cluster.json")
    );
    // Every byte of the lock is deterministic here: committed chart archives, deterministic manifests,
    // real dashboards.
    insta::assert_snapshot!("several_sources_lock", lock);

    // Resolving one input at a time gives the same bytes as resolving them in parallel.
    let serial = TestStack::with_inputs(&canonical_inputs());
    let mut serial_args = vec!["--jobs", "1"];
    serial_args.extend(&args);
    serial.lock(&serial_args).success();
    assert_eq!(serial.locked_state(), stack.locked_state());

    // [mirrors] in stack.toml does what --mirror does.
    let from_table =
        TestStack::with_inputs(&format!("{}\n{}", canonical_inputs(), up.mirrors_table()));
    from_table.lock(&[]).success();
    assert_eq!(from_table.lock_text(), lock);
    assert_eq!(from_table.locked_state(), stack.locked_state());
}
