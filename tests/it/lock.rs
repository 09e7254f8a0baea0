//! `stack lock` end to end, through the real binary, against real servers on loopback: Debian's
//! `docker-registry` loaded with Helm charts as OCI artifacts, classic Helm repositories, a grafana.com-shaped
//! API and raw file servers, all from `tests/support/`. The CLI's wording is the implementation's: these
//! tests hold it to exit codes (0 ok, 1 check failed, 2 error), to the lock and vendor/ it writes, to the
//! requests it makes (the servers log them) and to key phrases only.
//!
//! This module holds the stack.toml snippets and servers the `lock_*` modules share, and the tests of the
//! chart fixtures themselves; each `lock_*` module proves one behaviour (`lock_oci`, `lock_helm_repo`,
//! `lock_mirrors`, `lock_credentials`, `lock_sticky`, `lock_cache`, `lock_upstream_changes`,
//! `lock_grafana`, `lock_faults`, `lock_repo_stack`, `lock_requests`).
use crate::support::charts::{self, fixture_chart, fixture_versions};
use crate::support::registry::{self, Registry};
use crate::support::stack::oci_chart;
use crate::support::{self, dashboard_bytes, sha256, GrafanaCom, HttpServer, SnapshotMirror};

// ----- stack.toml snippets (`oci_chart` is support::stack's, shared with ghcr.rs) ------------------------

pub(crate) fn repo_chart(name: &str, repo: &str, version: &str) -> String {
    format!("[charts.{name}]\nrepo = \"{repo}\"\nversion = \"{version}\"\n\n")
}

pub(crate) fn repo_chart_named(name: &str, repo: &str, chart: &str, version: &str) -> String {
    format!("[charts.{name}]\nrepo = \"{repo}\"\nchart = \"{chart}\"\nversion = \"{version}\"\n\n")
}

pub(crate) fn url_dashboard(name: &str, url: &str) -> String {
    format!("[dashboards.{name}]\nurl = \"{url}\"\nfolder = \"Tests\"\n\n")
}

pub(crate) fn grafana_dashboard(name: &str, id: u64, revision: Option<u64>) -> String {
    match revision {
        Some(rev) => format!(
            "[dashboards.{name}]\ngrafana_com = {id}\nrevision = {rev}\nfolder = \"Tests\"\n\n"
        ),
        None => format!("[dashboards.{name}]\ngrafana_com = {id}\nfolder = \"Tests\"\n\n"),
    }
}

// ----- servers -------------------------------------------------------------------------------------------

/// The classic Helm repository fixture: a generated index.yaml with alloy and tempo and their archives.
pub(crate) fn fixture_helm_repo() -> HttpServer {
    let server = HttpServer::start();
    server.serve("/index.yaml", charts::fixture_index());
    for chart in charts::helm_repo_charts() {
        server.serve(&format!("/{}", chart.file_name()), chart.bytes.clone());
    }
    server
}

/// A static server of real dashboard files at `/<file>`.
pub(crate) fn dashboard_server(files: &[&str]) -> HttpServer {
    let server = HttpServer::start();
    for file in files {
        server.serve(&format!("/{file}"), dashboard_bytes(file));
    }
    server
}

/// Requests that fetched content (anything but index.yaml and API metadata) and got bytes.
pub(crate) fn content_fetches(server: &HttpServer) -> Vec<String> {
    server
        .requests()
        .into_iter()
        .filter(|r| {
            r.status == 200
                && (r.path.ends_with(".tgz")
                    || r.path.ends_with(".json")
                    || r.path.ends_with("/download"))
        })
        .map(|r| r.target)
        .collect()
}

// ----- several sources through mirrors (lock_mirrors, lock_cache) -------------------------------------------

/// Upstreams with canonical names, each on loopback, and the `--mirror` pairs that reach them.
pub(crate) struct Upstreams {
    registry: Registry,
    helm: HttpServer,
    grafana: GrafanaCom,
    raw: HttpServer,
}

const RAW_FLUX: &str = "/fluxcd/flux2-monitoring-example/7ab65dc8b90f7a6751d88f18bbb4e1bee33bf334/monitoring/configs/dashboards/cluster.json";

impl Upstreams {
    pub(crate) fn start() -> Option<Upstreams> {
        let registry = Registry::start()?;
        for chart in fixture_versions("victoria-metrics-k8s-stack") {
            registry.push_fixture(
                "victoriametrics/helm-charts/victoria-metrics-k8s-stack",
                &chart,
            );
        }
        for chart in fixture_versions("loki") {
            registry.push_fixture("grafana/helm-charts/loki", &chart);
        }
        let raw = HttpServer::start();
        raw.serve(RAW_FLUX, dashboard_bytes("flux-cluster.json"));
        Some(Upstreams {
            registry,
            helm: fixture_helm_repo(),
            grafana: GrafanaCom::with_fixtures(),
            raw,
        })
    }

    fn pairs(&self) -> Vec<(String, String)> {
        vec![
            ("ghcr.io".into(), self.registry.host()),
            (
                "https://grafana.github.io/helm-charts".into(),
                self.helm.url(),
            ),
            ("https://grafana.com".into(), self.grafana.url()),
            ("https://raw.githubusercontent.com".into(), self.raw.url()),
        ]
    }

    pub(crate) fn mirror_args(&self) -> Vec<String> {
        self.pairs()
            .into_iter()
            .flat_map(|(from, to)| ["--mirror".to_string(), format!("{from}={to}")])
            .collect()
    }

    pub(crate) fn mirrors_table(&self) -> String {
        let mut out = String::from("[mirrors]\n");
        for (from, to) in self.pairs() {
            out.push_str(&format!("\"{from}\" = \"{to}\"\n"));
        }
        out
    }
}

/// stack.toml inputs with the canonical sources of the real world.
pub(crate) fn canonical_inputs() -> String {
    [
        oci_chart(
            "victoria-metrics-k8s-stack",
            "oci://ghcr.io/victoriametrics/helm-charts/victoria-metrics-k8s-stack",
            "0.45.0",
        ),
        oci_chart("loki", "oci://ghcr.io/grafana/helm-charts/loki", "~6.48"),
        repo_chart("alloy", "https://grafana.github.io/helm-charts", "1.1.2"),
        repo_chart(
            "tempo",
            "https://grafana.github.io/helm-charts",
            ">=1.23, <1.25",
        ),
        grafana_dashboard("kubernetes-global", 15757, Some(43)),
        grafana_dashboard("node-exporter-full", 1860, None),
        url_dashboard(
            "flux-cluster",
            &format!("https://raw.githubusercontent.com{RAW_FLUX}"),
        ),
    ]
    .concat()
}

// ----- two OCI charts (lock_sticky, lock_cache, lock_repo_stack) --------------------------------------------

pub(crate) fn two_oci_charts(registry: &Registry) -> String {
    format!(
        "{}{}",
        oci_chart(
            "loki",
            &registry.oci_url("grafana/helm-charts/loki"),
            ">=6.48, <7"
        ),
        oci_chart(
            "victoria-metrics-k8s-stack",
            &registry.oci_url("victoriametrics/helm-charts/victoria-metrics-k8s-stack"),
            "~0.45"
        )
    )
}

pub(crate) fn registry_with_loki_and_vm() -> Option<Registry> {
    let registry = Registry::start()?;
    for chart in fixture_versions("loki") {
        registry.push_fixture("grafana/helm-charts/loki", &chart);
    }
    for chart in fixture_versions("victoria-metrics-k8s-stack") {
        registry.push_fixture(
            "victoriametrics/helm-charts/victoria-metrics-k8s-stack",
            &chart,
        );
    }
    Some(registry)
}

// ----- the snapshot mirror's arguments ----------------------------------------------------------------------

pub(crate) fn mirror_args(mirror: &SnapshotMirror) -> Vec<String> {
    let mut args = vec!["lock".to_string()];
    args.extend(mirror.args());
    args
}

// ----- fixtures ------------------------------------------------------------------------------------------

#[test]
fn chart_fixtures_are_the_real_charts_metadata_and_defaults_with_their_subcharts() {
    for (name, version, base) in charts::CHARTS {
        let chart = fixture_chart(name, version);
        let yaml = charts::chart_yaml(&chart.bytes);
        assert_eq!(yaml.get("name").and_then(|v| v.as_str()), Some(*name));
        assert_eq!(yaml.get("version").and_then(|v| v.as_str()), Some(*version));
        // Assembled twice, the bytes are the same (no clock, no machine in the archive).
        assert_eq!(
            charts::tgz(&charts::standin_files(name, version, base)),
            chart.bytes,
            "{name} {version}"
        );
        let files = charts::standin_files(name, version, base);
        let real = support::upstream::chart_dir(name, base);
        assert_eq!(
            files[&format!("{name}/values.yaml")],
            fs_err::read(real.join("values.yaml")).unwrap(),
            "{name} {version}: values.yaml is upstream's"
        );
    }
    // The subcharts victoria-metrics-k8s-stack 0.45.0 packages (its Chart.lock), from their shared copies.
    let files = charts::standin_files("victoria-metrics-k8s-stack", "0.45.0", "0.45.0");
    for (sub, version) in [
        ("grafana", "8.11.4"),
        ("victoria-metrics-operator", "0.45.0"),
        ("kube-state-metrics", "5.31.2"),
        ("prometheus-node-exporter", "4.45.2"),
        ("victoria-metrics-common", "0.0.42"),
    ] {
        let real = support::upstream::chart_dir(sub, version);
        assert_eq!(
            files[&format!("victoria-metrics-k8s-stack/charts/{sub}/values.yaml")],
            fs_err::read(real.join("values.yaml")).unwrap(),
            "{sub}"
        );
    }
    // Subcharts of subcharts too: the operator's own victoria-metrics-common.
    assert!(files.contains_key(
        "victoria-metrics-k8s-stack/charts/victoria-metrics-operator/charts/victoria-metrics-common/values.yaml"
    ));
    let files = charts::standin_files("loki", "6.49.0", "6.49.0");
    assert!(files.contains_key("loki/values.schema.json"));

    let index = charts::fixture_index();
    let parsed: serde_yaml_ng::Value = serde_yaml_ng::from_str(&index).unwrap();
    for chart in charts::helm_repo_charts() {
        let entries = parsed["entries"][chart.name.as_str()]
            .as_sequence()
            .unwrap();
        let entry = entries
            .iter()
            .find(|e| e["version"].as_str() == Some(chart.version.as_str()))
            .unwrap();
        assert_eq!(
            entry["digest"].as_str(),
            Some(chart.sha256_hex().as_str()),
            "{}",
            chart.file_name()
        );
        assert_eq!(entry["urls"][0].as_str(), Some(chart.file_name().as_str()));
    }
}

#[test]
fn chart_manifests_are_deterministic_so_digests_are_stable() {
    let chart = fixture_chart("loki", "6.49.0");
    assert_eq!(
        registry::chart_manifest(&chart.bytes),
        registry::chart_manifest(&chart.bytes)
    );
    let (config, manifest) = registry::chart_manifest(&chart.bytes);
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        registry::HELM_CONFIG_MEDIA_TYPE
    );
    assert_eq!(manifest["config"]["digest"], sha256(&config));
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        registry::HELM_CHART_MEDIA_TYPE
    );
    assert_eq!(manifest["layers"][0]["digest"], chart.sha256());
    assert_eq!(manifest["layers"][0]["size"], chart.bytes.len());
}
