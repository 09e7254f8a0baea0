//! `stack build` end to end: the repo's own default stack, copied into a temp dir, built by the real
//! binary, checked by real consumers (`kubectl kustomize`, the Flux CRD schemas), snapshotted, rebuilt
//! under other directories and environments, and broken on purpose once per error the build promises.
//! This module holds the shared `Stack` harness, the real consumers and the tree snapshots;
//! `build_determinism`, `build_errors` and `build_mirrors` prove the rest.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use crate::support::TestStack;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// A copy of the repo's default stack (stack.toml, modules/, stack.lock) in a [`TestStack`] (the one
/// harness: its temp dir and isolated environment): what a fresh clone has (this repository does not
/// commit vendor/). Adds the edits the build tests make and runs `stack` from the stack's directory.
pub struct Stack {
    inner: TestStack,
}

impl Stack {
    pub fn default_stack() -> Stack {
        let inner = TestStack::empty();
        for item in ["stack.toml", "stack.lock", "modules"] {
            copy(&Path::new(REPO).join(item), &inner.root().join(item));
        }
        Stack { inner }
    }

    /// The default stack with `community_dashboards = true` and every locked dashboard's vendored bytes
    /// in vendor/, as `stack lock` restores them (here from the real upstream files in
    /// ../shared/upstream, the bytes the snapshot mirror serves).
    pub fn with_community_dashboards() -> Stack {
        let stack = Stack::default_stack();
        stack.set_setting("community_dashboards", "true");
        for (path, bytes) in
            crate::support::mirror::locked_dashboard_bytes(&stack.read("stack.lock"))
        {
            stack.write_bytes(&path, &bytes);
        }
        stack
    }

    pub fn write_bytes(&self, rel: &str, bytes: &[u8]) {
        let p = self.path().join(rel);
        fs_err::create_dir_all(p.parent().unwrap()).unwrap();
        fs_err::write(p, bytes).unwrap();
    }

    pub fn path(&self) -> &Path {
        self.inner.root()
    }

    /// The harness under this stack (its cache, HOME and temp dirs), for a test that runs `stack` itself.
    pub fn harness(&self) -> &TestStack {
        &self.inner
    }

    pub fn read(&self, rel: &str) -> String {
        fs_err::read_to_string(self.path().join(rel)).unwrap()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        fs_err::create_dir_all(p.parent().unwrap()).unwrap();
        fs_err::write(p, text).unwrap();
    }

    /// Replaces exactly one occurrence of `from` in a file, so a test breaks precisely what it means to.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert_eq!(
            text.matches(from).count(),
            1,
            "{rel} must contain {from:?} exactly once"
        );
        self.write(rel, &text.replacen(from, to, 1));
    }

    pub fn set_setting(&self, name: &str, value: &str) {
        let text = self.read("stack.toml");
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name} =")))
            .unwrap_or_else(|| panic!("no setting {name}"));
        let new = format!("{name} = {value}");
        self.write("stack.toml", &text.replacen(line, &new, 1));
    }

    /// Runs `stack <args>` in the stack's directory.
    pub fn stack(&self, args: &[&str]) -> Output {
        self.inner.output_in(self.path(), args)
    }
}

pub fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        fs_err::create_dir_all(to).unwrap();
        for e in fs_err::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy(&e.path(), &to.join(e.file_name()));
        }
    } else {
        fs_err::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
pub(crate) fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The error text of a failed run with exit code 2.
#[track_caller]
pub(crate) fn fails(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
    text(&out.stderr)
}

pub(crate) fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs_err::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if dir == root && p.ends_with(".stack-build") {
                // The marker that says `stack build` owns the directory; not part of the tree.
                continue;
            } else {
                out.insert(
                    p.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                    fs_err::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The whole output as one reviewable text: YAML in full, dashboard JSON by size and hash (they are
/// upstream's bytes with datasources filled in; their rewriting has its own unit tests).
fn tree_snapshot(tree: &BTreeMap<String, Vec<u8>>) -> String {
    let mut s = String::new();
    for (path, bytes) in tree {
        if path.ends_with(".json") {
            s.push_str(&format!(
                "### {path} ({} bytes, blake3 {})\n",
                bytes.len(),
                blake3::hash(bytes).to_hex()
            ));
        } else {
            s.push_str(&format!("### {path}\n{}", text(bytes)));
        }
    }
    s
}

pub(crate) fn build_tree(stack: &Stack) -> BTreeMap<String, Vec<u8>> {
    ok(&stack.stack(&["build"]));
    read_tree(&stack.path().join("kubernetes"))
}

// ----- real consumers ------------------------------------------------------------------------------

pub(crate) fn kubectl_kustomize(dir: &Path) -> String {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl must be installed (it is on the CI machine); see .ci/run");
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed:\n{}",
        dir.display(),
        text(&out.stderr)
    );
    text(&out.stdout)
}

pub(crate) fn yaml_documents(s: &str) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(s)
        .map(|d| serde_json::Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// The openAPIV3Schema of each served version of each Flux CRD, by (apiVersion, kind).
pub(crate) fn flux_schemas() -> BTreeMap<(String, String), serde_json::Value> {
    let dir = crate::support::upstream::path("flux-crds");
    let mut out = BTreeMap::new();
    for e in fs_err::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("yaml") {
            continue;
        }
        for crd in yaml_documents(&fs_err::read_to_string(&p).unwrap()) {
            let group = crd["spec"]["group"].as_str().unwrap();
            let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
            for v in crd["spec"]["versions"].as_array().unwrap() {
                let api = format!("{group}/{}", v["name"].as_str().unwrap());
                out.insert(
                    (api, kind.to_string()),
                    v["schema"]["openAPIV3Schema"].clone(),
                );
            }
        }
    }
    out
}

/// Validates every Flux object in `docs` against its CRD schema; returns how many were validated.
pub(crate) fn validate_flux(
    docs: &[serde_json::Value],
    schemas: &BTreeMap<(String, String), serde_json::Value>,
) -> usize {
    let mut n = 0;
    for doc in docs {
        let api = doc["apiVersion"].as_str().unwrap_or_default();
        if !api.contains("toolkit.fluxcd.io") {
            continue;
        }
        let key = (
            api.to_string(),
            doc["kind"].as_str().unwrap_or_default().to_string(),
        );
        let schema = schemas.get(&key).unwrap_or_else(|| {
            panic!("no CRD schema for {key:?}: an API version Flux does not serve")
        });
        let validator = jsonschema::validator_for(schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(doc)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "{} {} does not validate:\n{}",
            key.1,
            doc["metadata"]["name"],
            errors.join("\n")
        );
        n += 1;
    }
    n
}

#[test]
fn default_stack_builds_and_real_consumers_accept_it() {
    let stack = Stack::with_community_dashboards();
    let summary = ok(&stack.stack(&["build"]));
    assert!(summary.contains("tree blake3:"), "{summary}");
    let out = stack.path().join("kubernetes");
    let schemas = flux_schemas();

    // The top level: what the flux-system Kustomization applies.
    let top = yaml_documents(&kubectl_kustomize(&out));
    assert_top_level_components(&top);
    let mut validated = validate_flux(&top, &schemas);

    // Each component's app, as the Flux Kustomization pointing at it builds it.
    let mut all = Vec::new();
    for ks in top.iter().filter(|d| d["kind"] == "Kustomization") {
        let path = ks["spec"]["path"]
            .as_str()
            .unwrap()
            .trim_start_matches("./kubernetes/");
        let docs = yaml_documents(&kubectl_kustomize(&out.join(path)));
        assert!(!docs.is_empty(), "{path} builds to nothing");
        validated += validate_flux(&docs, &schemas);
        all.extend(docs);
    }
    assert!(
        // Kustomizations, 5 HelmReleases, 4 sources (alloy and tempo share one HelmRepository).
        validated >= 8 + 5 + 4,
        "validated only {validated} Flux objects"
    );
    assert_dashboards_reach_grafana(&all);
    assert_oci_charts_pinned(&all, &stack.read("stack.lock"));
}

/// The top level holds every component's Kustomization of the default settings, and never both
/// metrics backends.
fn assert_top_level_components(top: &[serde_json::Value]) {
    let kinds: Vec<String> = top
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    for expected in [
        "Namespace/monitoring",
        "Kustomization/victoria-metrics",
        "Kustomization/loki",
        "Kustomization/tempo",
        "Kustomization/alloy",
        "Kustomization/network-monitoring",
        "Kustomization/alerts",
        "Kustomization/dashboards",
    ] {
        assert!(
            kinds.contains(&expected.to_string()),
            "{expected} missing from {kinds:?}"
        );
    }
    assert!(
        !kinds.iter().any(|k| k.ends_with("/kube-prometheus-stack")),
        "never both metrics backends: {kinds:?}"
    );
}

/// Dashboards reach Grafana through its sidecar, untouched by Flux substitution, every community
/// dashboard and the modules' own.
fn assert_dashboards_reach_grafana(all: &[serde_json::Value]) {
    let dashboards: Vec<&serde_json::Value> = all
        .iter()
        .filter(|d| d["kind"] == "ConfigMap" && d["metadata"]["labels"]["grafana_dashboard"] == "1")
        .collect();
    assert_eq!(
        dashboards.len(),
        22 + crate::dashboards::OWN_DASHBOARDS.len(),
        "every community dashboard and the modules' own ship"
    );
    for d in &dashboards {
        let ann = &d["metadata"]["annotations"];
        assert!(
            ann["grafana_folder"].is_string(),
            "{}",
            d["metadata"]["name"]
        );
        assert_eq!(ann["kustomize.toolkit.fluxcd.io/substitute"], "disabled");
        let (_, json) = d["data"].as_object().unwrap().iter().next().unwrap();
        let json = json.as_str().unwrap();
        assert!(
            !json.contains("${DS_PROMETHEUS}") || json.contains("\"name\": \"DS_PROMETHEUS\""),
            "{}: unresolved datasource input",
            d["metadata"]["name"]
        );
        assert!(!json.contains("\"__inputs\""), "{}", d["metadata"]["name"]);
    }
}

/// OCI charts are pinned by the lock's digest and pick the Helm chart layer.
fn assert_oci_charts_pinned(all: &[serde_json::Value], lock_text: &str) {
    let lock: toml::Value = toml::from_str(lock_text).unwrap();
    for oci in all.iter().filter(|d| d["kind"] == "OCIRepository") {
        let name = oci["metadata"]["name"].as_str().unwrap();
        let locked = lock["chart"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"].as_str() == Some(name))
            .unwrap();
        assert_eq!(
            oci["spec"]["ref"]["digest"].as_str(),
            locked["digest"].as_str()
        );
        assert_eq!(
            oci["spec"]["layerSelector"]["mediaType"],
            "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
        );
    }
}

#[test]
fn dependson_follows_the_module_graph() {
    let stack = Stack::default_stack();
    let tree = build_tree(&stack);
    let ks = |name: &str| yaml_documents(&text(&tree[&format!("{name}/ks.yaml")])).remove(0);
    let deps = |name: &str| -> Vec<String> {
        ks(name)["spec"]["dependsOn"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|d| d["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(deps("prometheus-operator-crds"), Vec::<String>::new());
    assert_eq!(deps("victoria-metrics"), ["prometheus-operator-crds"]);
    assert_eq!(
        deps("alerts"),
        ["prometheus-operator-crds", "victoria-metrics"]
    );
    assert_eq!(deps("alloy"), ["loki", "tempo", "victoria-metrics"]);
    assert_eq!(deps("loki"), ["victoria-metrics"]);
    assert_eq!(deps("dashboards"), ["victoria-metrics"]);

    // Optional dependencies disappear with the module they name.
    stack.set_setting("loki_enabled", "false");
    stack.set_setting("tracing_enabled", "false");
    let tree = build_tree(&stack);
    assert!(!tree.contains_key("loki/ks.yaml") && !tree.contains_key("tempo/ks.yaml"));
    let alloy = yaml_documents(&text(&tree["alloy/ks.yaml"])).remove(0);
    assert_eq!(
        alloy["spec"]["dependsOn"],
        serde_json::json!([{ "name": "victoria-metrics" }])
    );
}

/// The alert and recording rules the alerts module ships parse and check with Prometheus' own
/// `promtool` (Debian's prometheus package; scripts/test installs it), thresholds substituted.
#[test]
fn alert_rules_pass_promtool() {
    if Command::new("promtool").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is missing in CI: scripts/test installs the prometheus package"
        );
        eprintln!("SKIPPED alert_rules_pass_promtool: promtool is not installed (apt-get install prometheus)");
        return;
    }
    let stack = Stack::default_stack();
    stack.set_setting("node_memory_threshold", "85");
    let tree = build_tree(&stack);
    let scratch = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (path, bytes) in tree
        .iter()
        .filter(|(p, _)| p.starts_with("alerts/app/") && p.ends_with("-rules.yaml"))
    {
        for doc in yaml_documents(&text(bytes))
            .into_iter()
            .filter(|d| d["kind"] == "PrometheusRule")
        {
            let file = scratch.path().join(format!(
                "{}.yaml",
                doc["metadata"]["name"].as_str().unwrap()
            ));
            fs_err::write(
                &file,
                serde_yaml_ng::to_string(&serde_json::json!({ "groups": doc["spec"]["groups"] }))
                    .unwrap(),
            )
            .unwrap();
            let out = Command::new("promtool")
                .arg("check")
                .arg("rules")
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{path}: promtool check rules failed:\n{}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "only {checked} PrometheusRules checked");
    let rules = text(&tree["alerts/app/infrastructure-rules.yaml"]);
    assert!(
        rules.contains("> 85"),
        "node_memory_threshold reaches the expression"
    );
}
// ----- snapshots -------------------------------------------------------------------------------------

#[test]
fn snapshot_default_stack() {
    let stack = Stack::default_stack();
    insta::assert_snapshot!("default", tree_snapshot(&build_tree(&stack)));
}

/// The default stack as a user's repository ships it: community dashboards on, vendor/ committed.
#[test]
fn snapshot_with_community_dashboards() {
    let stack = Stack::with_community_dashboards();
    insta::assert_snapshot!("community", tree_snapshot(&build_tree(&stack)));
}

#[test]
fn snapshot_minimal_settings() {
    let stack = Stack::default_stack();
    stack.set_setting("loki_enabled", "false");
    stack.set_setting("tracing_enabled", "false");
    stack.set_setting("hubble_enabled", "false");
    stack.set_setting("hubble_ui_enabled", "false");
    insta::assert_snapshot!("minimal", tree_snapshot(&build_tree(&stack)));
}

#[test]
fn snapshot_prometheus_backend_with_logs_only() {
    let stack = Stack::default_stack();
    stack.set_setting("monitoring_stack", "\"prometheus\"");
    stack.set_setting("tracing_enabled", "false");
    let tree = build_tree(&stack);
    assert!(
        tree.contains_key("kube-prometheus-stack/ks.yaml")
            && !tree.contains_key("victoria-metrics/ks.yaml")
    );
    insta::assert_snapshot!("prometheus-logs", tree_snapshot(&tree));
}

// ----- shared by build_errors, build_mirrors and dashboards -----------------------------------------

pub(crate) fn build_error(stack: &Stack) -> String {
    let err = fails(&stack.stack(&["build"]));
    assert!(
        !stack.path().join("kubernetes").exists(),
        "a failed build must not write out/"
    );
    err
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
