//! `stack lock` end to end, through the real binary, against real servers on loopback: Debian's
//! `docker-registry` loaded with Helm charts as OCI artifacts, classic Helm repositories, a grafana.com-shaped
//! API and raw file servers, all from `tests/support/`. The CLI's wording is the implementation's: these
//! tests hold it to exit codes (0 ok, 1 check failed, 2 error), to the lock and vendor/ it writes, to the
//! requests it makes (the servers log them) and to key phrases only.
//!
//! The repo's own stack.lock and vendor/ are written by [`regenerate_repo_lock`] against the snapshot
//! mirror, and [`default_stack_locks_against_the_snapshot_mirror_to_the_committed_lock`] proves that they
//! are what the tool writes.

use std::collections::BTreeMap;

use crate::support::charts::{self, fixture_chart, fixture_versions, runtime_chart, Chart};
use crate::support::registry::{self, registry, Registry, PASSWORD, USER};
use crate::support::stack::{field, oci_chart};
use crate::support::{
    self, blake3, dashboard_bytes, sha256, Fault, GrafanaCom, HttpServer, SnapshotMirror, TestStack,
};

// ----- stack.toml snippets (`oci_chart` is support::stack's, shared with ghcr.rs) ------------------------

fn repo_chart(name: &str, repo: &str, version: &str) -> String {
    format!("[charts.{name}]\nrepo = \"{repo}\"\nversion = \"{version}\"\n\n")
}

fn repo_chart_named(name: &str, repo: &str, chart: &str, version: &str) -> String {
    format!("[charts.{name}]\nrepo = \"{repo}\"\nchart = \"{chart}\"\nversion = \"{version}\"\n\n")
}

fn url_dashboard(name: &str, url: &str) -> String {
    format!("[dashboards.{name}]\nurl = \"{url}\"\nfolder = \"Tests\"\n\n")
}

fn grafana_dashboard(name: &str, id: u64, revision: Option<u64>) -> String {
    match revision {
        Some(rev) => format!(
            "[dashboards.{name}]\ngrafana_com = {id}\nrevision = {rev}\nfolder = \"Tests\"\n\n"
        ),
        None => format!("[dashboards.{name}]\ngrafana_com = {id}\nfolder = \"Tests\"\n\n"),
    }
}

// ----- servers -------------------------------------------------------------------------------------------

/// The classic Helm repository fixture: a generated index.yaml with alloy and tempo and their archives.
fn fixture_helm_repo() -> HttpServer {
    let server = HttpServer::start();
    server.serve("/index.yaml", charts::fixture_index());
    for chart in charts::helm_repo_charts() {
        server.serve(&format!("/{}", chart.file_name()), chart.bytes.clone());
    }
    server
}

/// A static server of real dashboard files at `/<file>`.
fn dashboard_server(files: &[&str]) -> HttpServer {
    let server = HttpServer::start();
    for file in files {
        server.serve(&format!("/{file}"), dashboard_bytes(file));
    }
    server
}

/// Requests that fetched content (anything but index.yaml and API metadata) and got bytes.
fn content_fetches(server: &HttpServer) -> Vec<String> {
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

// ----- OCI -----------------------------------------------------------------------------------------------

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

// ----- classic Helm repositories -------------------------------------------------------------------------

#[test]
fn helm_repo_exact_and_ranged_versions_resolve_through_relative_urls() {
    let server = fixture_helm_repo();
    let repo = server.url();
    let stack = TestStack::with_inputs(&format!(
        "{}{}{}",
        repo_chart("alloy", &repo, "1.1.2"),
        repo_chart("tempo", &repo, "~1.24"),
        repo_chart_named("alloy-next", &repo, "alloy", "^1.1"),
    ));

    stack.lock(&[]).success();

    for (name, chart, version) in [
        ("alloy", "alloy", "1.1.2"),
        ("tempo", "tempo", "1.24.1"),
        ("alloy-next", "alloy", "1.2.0"),
    ] {
        let fixture = fixture_chart(chart, version);
        let locked = stack.locked_chart(name);
        assert_eq!(
            field(&locked, "source"),
            format!("{repo}#{chart}"),
            "{name}"
        );
        assert_eq!(field(&locked, "version"), version, "{name}");
        assert_eq!(
            field(&locked, "digest"),
            fixture.sha256(),
            "{name}: the index's digest, as sha256:<hex>"
        );
        assert_eq!(field(&locked, "blake3"), fixture.blake3(), "{name}");
        assert_eq!(
            field(&locked, "url"),
            format!("{repo}/{}", fixture.file_name()),
            "{name}"
        );
    }
    assert_eq!(server.count("/alloy-1.1.2.tgz"), 1);
    assert_eq!(
        server.count("/alloy-1.1.1.tgz"),
        0,
        "only chosen versions are downloaded"
    );
}

#[test]
fn helm_repo_absolute_chart_urls_are_followed() {
    let files = HttpServer::start();
    let chart = fixture_chart("tempo", "1.24.1");
    files.serve("/releases/tempo-1.24.1.tgz", chart.bytes.clone());
    let index = HttpServer::start();
    let files_url = files.url();
    index.serve(
        "/index.yaml",
        charts::index_yaml_with(
            std::slice::from_ref(&chart),
            |c| format!("{files_url}/releases/{}", c.file_name()),
            |c| c.sha256_hex(),
        ),
    );
    let stack = TestStack::with_inputs(&repo_chart("tempo", &index.url(), "1.24.1"));

    stack.lock(&[]).success();

    let locked = stack.locked_chart("tempo");
    assert_eq!(
        field(&locked, "url"),
        format!("{files_url}/releases/tempo-1.24.1.tgz")
    );
    assert_eq!(field(&locked, "blake3"), chart.blake3());
    assert_eq!(files.count("/releases/tempo-1.24.1.tgz"), 1);
}

#[test]
fn helm_repo_chart_missing_from_the_index_is_an_error_naming_it() {
    let server = fixture_helm_repo();
    let stack = TestStack::with_inputs(&repo_chart("loki", &server.url(), "6.49.0"));

    stack.lock(&[]).code(2).mentions(&["loki"]);
    assert!(!stack.exists("stack.lock"));
}

/// Helm's own test indexes write `digest: "sha256:<hex>"`; Helm tolerates the prefix, so must the lock
/// (and record the digest in one form).
#[test]
fn helm_index_digest_with_a_sha256_prefix_is_accepted() {
    let chart = fixture_chart("tempo", "1.24.0");
    let server = HttpServer::start();
    server.serve(
        "/index.yaml",
        charts::index_yaml_with(
            std::slice::from_ref(&chart),
            |c| c.file_name(),
            |c| format!("\"sha256:{}\"", c.sha256_hex()),
        ),
    );
    server.serve("/tempo-1.24.0.tgz", chart.bytes.clone());
    let stack = TestStack::with_inputs(&repo_chart("tempo", &server.url(), "1.24.0"));

    stack.lock(&[]).success();

    assert_eq!(
        field(&stack.locked_chart("tempo"), "digest"),
        chart.sha256()
    );
}

/// Helm's own index fixture (pkg/repo/testdata/local-index.yaml) has an entry with no `urls`: Helm says
/// "has no downloadable URLs"; a lock must fail the same way, naming the chart.
#[test]
fn helm_index_entry_without_urls_is_an_error_naming_the_chart() {
    let server = HttpServer::start();
    server.serve(
        "/index.yaml",
        support::upstream::bytes("helm-index/local-index.yaml"),
    );
    let stack = TestStack::with_inputs(&repo_chart_named(
        "no-url",
        "https://charts.helm.sh/stable",
        "chartWithNoURL",
        "1.0.0",
    ));

    stack
        .lock(&[
            "--mirror",
            &format!("https://charts.helm.sh/stable={}", server.url()),
        ])
        .code(2)
        .mentions(&["chartWithNoURL"])
        .mentions_any(&["url"]);
    assert!(!stack.exists("stack.lock"));
}

// ----- several sources, mirrors --------------------------------------------------------------------------

/// Upstreams with canonical names, each on loopback, and the `--mirror` pairs that reach them.
struct Upstreams {
    registry: Registry,
    helm: HttpServer,
    grafana: GrafanaCom,
    raw: HttpServer,
}

const RAW_FLUX: &str = "/fluxcd/flux2-monitoring-example/7ab65dc8b90f7a6751d88f18bbb4e1bee33bf334/monitoring/configs/dashboards/cluster.json";

impl Upstreams {
    fn start() -> Option<Upstreams> {
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

    fn mirror_args(&self) -> Vec<String> {
        self.pairs()
            .into_iter()
            .flat_map(|(from, to)| ["--mirror".to_string(), format!("{from}={to}")])
            .collect()
    }

    fn mirrors_table(&self) -> String {
        let mut out = String::from("[mirrors]\n");
        for (from, to) in self.pairs() {
            out.push_str(&format!("\"{from}\" = \"{to}\"\n"));
        }
        out
    }
}

/// stack.toml inputs with the canonical sources of the real world.
fn canonical_inputs() -> String {
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

// ----- credentials ---------------------------------------------------------------------------------------

fn private_registry() -> Option<(Registry, String)> {
    let registry = Registry::start_with_basic_auth()?;
    registry.push_fixture("private/loki", &fixture_chart("loki", "6.49.0"));
    let url = registry.oci_url("private/loki");
    Some((registry, url))
}

#[test]
fn private_registry_credentials_from_stack_registry_auth_never_reach_output_or_files() {
    let Some((registry, url)) = private_registry() else {
        return;
    };
    let mut stack = TestStack::with_inputs(&oci_chart("loki", &url, "6.49.0"));
    stack.env(
        "STACK_REGISTRY_AUTH",
        &format!("{}={USER}:{PASSWORD}", registry.host()),
    );

    stack
        .lock(&[])
        .success()
        .never_shows(PASSWORD)
        .never_shows(USER);

    assert_eq!(field(&stack.locked_chart("loki"), "source"), url);
    assert!(!stack.lock_text().contains(USER));
    stack.assert_no_file_contains(PASSWORD);
}

#[test]
fn private_registry_credentials_from_docker_config() {
    let Some((registry, url)) = private_registry() else {
        return;
    };
    let stack = TestStack::with_inputs(&oci_chart("loki", &url, "6.49.0"));
    fs_err::write(
        stack.docker_config_dir().join("config.json"),
        registry::docker_config_json(&registry.host(), USER, PASSWORD),
    )
    .unwrap();

    stack.lock(&[]).success().never_shows(PASSWORD);

    assert_eq!(field(&stack.locked_chart("loki"), "version"), "6.49.0");
    stack.assert_no_file_contains(PASSWORD);
}

#[test]
fn private_registry_wrong_password_fails_without_showing_it() {
    let Some((registry, url)) = private_registry() else {
        return;
    };
    let wrong = "wrong-password-91c2e";
    let mut stack = TestStack::with_inputs(&oci_chart("loki", &url, "6.49.0"));
    stack.env(
        "STACK_REGISTRY_AUTH",
        &format!("{}={USER}:{wrong}", registry.host()),
    );

    stack
        .lock(&[])
        .code(2)
        .never_shows(wrong)
        .never_shows(PASSWORD)
        .mentions(&["loki"])
        .mentions_any(&["401", "unauthorized", "credentials", "denied"]);

    assert!(!stack.exists("stack.lock"));
    stack.assert_no_file_contains(wrong);
}

#[test]
fn private_registry_without_credentials_says_how_to_give_them() {
    let Some((_registry, url)) = private_registry() else {
        return;
    };
    let stack = TestStack::with_inputs(&oci_chart("loki", &url, "6.49.0"));

    stack
        .lock(&[])
        .code(2)
        .mentions(&["loki"])
        .mentions_any(&["STACK_REGISTRY_AUTH", "docker login"]);
    assert!(!stack.exists("stack.lock"));
}

#[test]
fn private_helm_repo_gets_credentials_and_other_hosts_never_do() {
    let index = HttpServer::start();
    index.require_basic_auth(USER, PASSWORD);
    let files = HttpServer::start();
    let chart = fixture_chart("alloy", "1.1.2");
    files.serve("/alloy-1.1.2.tgz", chart.bytes.clone());
    let files_url = files.url();
    index.serve(
        "/index.yaml",
        charts::index_yaml_with(
            std::slice::from_ref(&chart),
            |c| format!("{files_url}/{}", c.file_name()),
            |c| c.sha256_hex(),
        ),
    );
    let mut stack = TestStack::with_inputs(&repo_chart("alloy", &index.url(), "1.1.2"));
    stack.env(
        "STACK_REGISTRY_AUTH",
        &format!("{}={USER}:{PASSWORD}", index.host()),
    );

    stack.lock(&[]).success().never_shows(PASSWORD);

    assert!(index
        .requests_to("/index.yaml")
        .iter()
        .any(|r| r.status == 200 && r.has_authorization()));
    let downloads = files.requests_to("/alloy-1.1.2.tgz");
    assert_eq!(downloads.len(), 1);
    assert!(
        !downloads[0].has_authorization(),
        "credentials for {} were sent to {}",
        index.host(),
        files.host()
    );
    stack.assert_no_file_contains(PASSWORD);
}

// ----- sticky lock, --update, --check --------------------------------------------------------------------

fn two_oci_charts(registry: &Registry) -> String {
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

fn registry_with_loki_and_vm() -> Option<Registry> {
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

// ----- cache, offline, ETag ------------------------------------------------------------------------------

#[test]
fn relock_with_nothing_changed_downloads_no_content_and_writes_nothing() {
    let Some(registry) = registry_with_loki_and_vm() else {
        return;
    };
    let helm = fixture_helm_repo();
    let dashboards = dashboard_server(&["etcd.json"]);
    let stack = TestStack::with_inputs(&format!(
        "{}{}{}",
        two_oci_charts(&registry),
        repo_chart("alloy", &helm.url(), "~1.1"),
        url_dashboard("etcd", &format!("{}/etcd.json", dashboards.url())),
    ));
    stack.lock(&[]).success();
    let state = stack.locked_state();
    let blob_downloads = registry.blob_downloads();
    assert!(blob_downloads >= 2, "{}", registry.log());
    let lock_mtime = fs_err::metadata(stack.root().join("stack.lock"))
        .unwrap()
        .modified()
        .unwrap();
    helm.clear_log();
    dashboards.clear_log();

    stack.lock(&[]).success();

    assert_eq!(content_fetches(&helm), Vec::<String>::new());
    assert_eq!(content_fetches(&dashboards), Vec::<String>::new());
    assert_eq!(
        registry.blob_downloads(),
        blob_downloads,
        "chart layers were downloaded again"
    );
    assert_eq!(stack.locked_state(), state);
    let mtime_after = fs_err::metadata(stack.root().join("stack.lock"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        mtime_after, lock_mtime,
        "stack.lock was rewritten although nothing changed"
    );
}

#[test]
fn update_revalidates_the_index_with_if_none_match_and_reuses_cached_content() {
    let helm = fixture_helm_repo();
    let stack = TestStack::with_inputs(&repo_chart("alloy", &helm.url(), "~1.1"));
    stack.lock(&[]).success();
    let first = helm.requests_to("/index.yaml");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].status, 200);
    assert_eq!(first[0].if_none_match(), None);
    helm.clear_log();

    stack.lock(&["--update"]).success();

    let second = helm.requests_to("/index.yaml");
    assert_eq!(second.len(), 1, "{second:#?}");
    assert!(
        second[0].if_none_match().is_some(),
        "no If-None-Match on the second index request: {second:#?}"
    );
    assert_eq!(second[0].status, 304);
    assert_eq!(
        helm.count("/alloy-1.1.2.tgz"),
        0,
        "the archive was downloaded again although it is in the cache"
    );
}

#[test]
fn offline_lock_resolves_from_the_cache_when_every_server_is_gone() {
    let Some(up) = Upstreams::start() else { return };
    let args: Vec<String> = up.mirror_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let online = TestStack::with_inputs(&canonical_inputs());
    online.lock(&args).success();
    drop(up);

    // A fresh checkout of the same stack.toml, sharing the cache, with nothing to reach (the mirror
    // flags stay the same: the command is the same one, plus --offline).
    let mut offline = TestStack::with_inputs(&canonical_inputs());
    offline.set_cache_dir(online.cache_dir());
    let mut offline_args = vec!["--offline"];
    offline_args.extend(&args);
    offline.lock(&offline_args).success();

    assert_eq!(offline.lock_text(), online.lock_text());
    assert_eq!(offline.locked_state(), online.locked_state());
}

#[test]
fn offline_on_a_cold_cache_fails_naming_what_is_missing() {
    let helm = fixture_helm_repo();
    let stack = TestStack::with_inputs(&repo_chart("alloy", &helm.url(), "1.1.2"));

    stack
        .lock(&["--offline"])
        .code(2)
        .mentions(&["alloy"])
        .mentions_any(&["offline", "cache"]);

    assert!(
        helm.requests().is_empty(),
        "--offline made requests: {:#?}",
        helm.requests()
    );
    assert!(!stack.exists("stack.lock"));
}

// ----- upstream changes under a pin ----------------------------------------------------------------------

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

// ----- grafana.com -------------------------------------------------------------------------------------

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

// ----- faults --------------------------------------------------------------------------------------------

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

// ----- the repo's own stack ------------------------------------------------------------------------------

fn mirror_args(mirror: &SnapshotMirror) -> Vec<String> {
    let mut args = vec!["lock".to_string()];
    args.extend(mirror.args());
    args
}

/// Lines only in `old` (`-`) and only in `new` (`+`), in order: enough to see which pin moved.
fn line_diff(old: &str, new: &str) -> String {
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let mut out = String::new();
    for line in &old_lines {
        if !new_lines.contains(line) {
            out.push_str(&format!("- {line}\n"));
        }
    }
    for line in &new_lines {
        if !old_lines.contains(line) {
            out.push_str(&format!("+ {line}\n"));
        }
    }
    out
}

/// The repo's default stack, locked against the snapshot mirror, is the committed stack.lock and vendor/
/// byte for byte; it then builds, and `kubectl kustomize` builds what it emits.
#[test]
fn default_stack_locks_against_the_snapshot_mirror_to_the_committed_lock() {
    let repo = support::repo_root();
    if !repo.join("stack.toml").is_file() {
        panic!("the repo has no stack.toml to lock");
    }
    let Some(mirror) = SnapshotMirror::start() else {
        return;
    };
    let stack = TestStack::from_repo();
    let args = mirror_args(&mirror);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    stack.run(&args).success();

    let lock = stack.lock_text();
    assert!(
        !lock.contains("127.0.0.1"),
        "the lock names the mirror:\n{lock}"
    );
    // A missing lock fails: this test is what proves the committed lock is what the tool writes.
    let committed = fs_err::read_to_string(repo.join("stack.lock")).unwrap_or_else(|e| {
        panic!("the repo's stack.lock cannot be read ({e}); write it with `cargo test --test it -- --ignored regenerate_repo_lock`")
    });
    assert!(
        committed == lock,
        "the committed stack.lock is not what `stack lock` writes against the snapshot mirror; regenerate it with `cargo test --test it -- --ignored regenerate_repo_lock`\n{}",
        line_diff(&committed, &lock)
    );
    // vendor/ is not committed here: what `stack lock` vendored are the real upstream bytes
    // the lock pins (the lock was written from scratch, so every dashboard was fetched).
    // vendor/charts/ (the charts' defaults for the values check) comes from the stand-in archives.
    let expected: std::collections::BTreeMap<String, Vec<u8>> =
        support::mirror::locked_dashboard_bytes(&committed)
            .into_iter()
            .map(|(path, bytes)| {
                (
                    path.trim_start_matches("vendor/dashboards/").to_string(),
                    bytes,
                )
            })
            .collect();
    let written_vendor = support::read_tree(&stack.root().join("vendor/dashboards"));
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        written_vendor.keys().collect::<Vec<_>>(),
        "vendor/ differs from what the lock pins"
    );
    assert!(
        expected == written_vendor,
        "vendor/ bytes differ from the pinned upstream bytes"
    );
    stack.lock(&["--check"]).code(0);

    stack.run(&["build"]).success();
    let Some(kubectl) = support::require_tool(
        "kubectl",
        &["/usr/bin/kubectl", "/usr/local/bin/kubectl"],
        "see https://kubernetes.io/docs/tasks/tools/",
    ) else {
        return;
    };
    let kustomize = std::process::Command::new(kubectl)
        .arg("kustomize")
        .arg(stack.root().join("kubernetes"))
        .output()
        .unwrap();
    assert!(
        kustomize.status.success(),
        "kubectl kustomize failed:\n{}",
        String::from_utf8_lossy(&kustomize.stderr)
    );
    let rendered = String::from_utf8(kustomize.stdout).unwrap();
    assert!(rendered.contains("kind: Kustomization"), "{rendered}");
}

/// Writes the repo's stack.lock and vendor/ with the tool itself, against the snapshot mirror: the only
/// way the committed lock is made. Run from the repo root:
/// `cargo test --test it -- --ignored regenerate_repo_lock`
/// (`STACK_REGENERATE_ROOT=<copy of the repo>` to write into a scratch copy instead).
#[test]
#[ignore = "rewrites the repo's stack.lock and vendor/; run by hand"]
fn regenerate_repo_lock() {
    let mirror = SnapshotMirror::start().expect("docker-registry is needed to regenerate the lock");
    // STACK_REGENERATE_ROOT=<dir> writes into a scratch copy instead, to review before committing.
    let repo = std::env::var_os("STACK_REGENERATE_ROOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(support::repo_root);
    let scratch = tempfile::tempdir().unwrap();
    // From scratch: the old lock and vendor/ are moved aside, so no earlier pin (stand-in digests change
    // whenever the fixtures do, and the tool rightly refuses to re-pin changed content under a pin)
    // survives into the committed lock. They are put back if the lock fails.
    let backup = scratch.path().join("backup");
    fs_err::create_dir_all(&backup).unwrap();
    for item in ["stack.lock", "vendor"] {
        if repo.join(item).exists() {
            fs_err::rename(repo.join(item), backup.join(item)).unwrap();
        }
    }
    let mut args = vec!["-C".to_string(), repo.display().to_string()];
    args.extend(mirror_args(&mirror));
    let out = std::process::Command::new(support::stack::BIN)
        .args(&args)
        .env("STACK_CACHE_DIR", scratch.path().join("cache"))
        .env_remove("STACK_REGISTRY_AUTH")
        .env("DOCKER_CONFIG", scratch.path().join("docker"))
        .output()
        .unwrap();
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        for item in ["stack.lock", "vendor"] {
            if backup.join(item).exists() {
                let _ = fs_err::remove_dir_all(repo.join(item));
                let _ = fs_err::remove_file(repo.join(item));
                fs_err::rename(backup.join(item), repo.join(item)).unwrap();
            }
        }
        panic!("stack lock failed; stack.lock and vendor/ are as they were");
    }
}

/// A fresh clone of the repo has a current lock, no vendor/ and an empty cache: `stack lock --offline`
/// (and a plain `stack lock`, which would need no network either) keeps every pin and writes nothing,
/// since the community dashboards are off and their vendored bytes are not needed.
#[test]
fn fresh_clone_with_a_current_lock_relocks_offline_on_a_cold_cache() {
    let stack = TestStack::from_repo();
    let lock = fs_err::read_to_string(support::repo_root().join("stack.lock")).unwrap();
    stack.write("stack.lock", &lock);
    stack
        .lock(&["--offline"])
        .success()
        .mentions(&["up to date"]);
    assert_eq!(stack.lock_text(), lock);
    assert!(!stack.exists("vendor"), "an offline re-lock wrote vendor/");
    stack.lock(&["--check"]).success();
}

#[test]
fn a_malformed_network_setting_in_the_environment_is_an_error_naming_it() {
    for (name, value) in [
        ("STACK_HTTP_TIMEOUT_SECS", "abc"),
        ("STACK_HTTP_TIMEOUT_SECS", "1e30"),
        ("STACK_HTTP_TIMEOUT_SECS", "0"),
        ("STACK_RETRY_BASE_MS", "-1"),
    ] {
        let mut stack = TestStack::with_inputs("");
        stack.env(name, value);
        stack
            .lock(&[])
            .code(2)
            .mentions(&[&format!("{name}=\"{value}\" is not"), "help:"]);
        assert!(!stack.exists("stack.lock"), "{name}={value}");
    }
}

#[test]
fn check_fails_a_lock_that_stack_lock_would_rewrite_reordered_or_crlf() {
    let Some(registry) = registry_with_loki_and_vm() else {
        return;
    };
    let stack = TestStack::with_inputs(&two_oci_charts(&registry));
    stack.lock(&[]).success();
    drop(registry); // --check and a rewrite of the same pins are offline
    let canonical = stack.read("stack.lock");
    let parts: Vec<&str> = canonical.split("\n[[chart]]\n").collect();
    assert_eq!(parts.len(), 3, "{canonical}");
    let first = parts[1].trim_end_matches('\n');
    let second = parts[2].trim_end_matches('\n');
    let reordered = format!("{}\n[[chart]]\n{second}\n\n[[chart]]\n{first}\n", parts[0]);
    let crlf = canonical.replace('\n', "\r\n");
    for (edited, why) in [
        (reordered, "its text differs from what `stack lock` writes"),
        (crlf, "it has CRLF line endings"),
    ] {
        assert_ne!(edited, canonical);
        stack.write("stack.lock", &edited);
        stack.lock(&["--check"]).code(1).mentions(&[
            "stack.lock pins what stack.toml asks for, but is not in canonical form",
            why,
            "help: run `stack lock` (it rewrites stack.lock in canonical form; no pin moves)",
        ]);
        let out = stack.lock(&["--check", "--json"]).code(1);
        crate::cli::assert_schema(&out.stdout);
        assert_eq!(stack.read("stack.lock"), edited, "--check wrote the lock");
        stack.lock(&["--offline"]).success();
        assert_eq!(stack.read("stack.lock"), canonical);
        stack.lock(&["--check"]).code(0);
    }
}
