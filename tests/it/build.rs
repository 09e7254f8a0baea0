//! `stack build` end to end: the repo's own default stack, copied into a temp dir, built by the real
//! binary, checked by real consumers (`kubectl kustomize`, the Flux CRD schemas), snapshotted, rebuilt
//! under other directories and environments, and broken on purpose once per error the build promises.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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

fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
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
fn flux_schemas() -> BTreeMap<(String, String), serde_json::Value> {
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
fn validate_flux(
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

// ----- determinism -----------------------------------------------------------------------------------

/// stack.toml with the order of its tables and of the keys inside [settings] reversed.
fn reorder(manifest: &str) -> String {
    let mut blocks: Vec<Vec<&str>> = vec![Vec::new()];
    for line in manifest.lines() {
        if line.starts_with('[') {
            blocks.push(Vec::new());
        }
        blocks.last_mut().unwrap().push(line);
    }
    let head = blocks.remove(0);
    blocks.reverse();
    let mut out: Vec<String> = head.iter().map(|s| s.to_string()).collect();
    for block in blocks {
        if block[0] == "[settings]" {
            out.push(block[0].to_string());
            let mut keys: Vec<&str> = block[1..]
                .iter()
                .copied()
                .filter(|l| l.contains(" = "))
                .collect();
            keys.reverse();
            out.extend(keys.iter().map(|s| s.to_string()));
        } else {
            out.extend(block.iter().map(|s| s.to_string()));
        }
    }
    out.join("\n") + "\n"
}

#[test]
fn builds_are_byte_identical_across_directories_environments_and_key_order() {
    let a = Stack::default_stack();
    let first = build_tree(&a);
    let summary_a = ok(&a.stack(&["build", "--check"]));

    let b = Stack::default_stack();
    let reordered = reorder(&b.read("stack.toml"));
    assert_ne!(reordered, b.read("stack.toml"));
    b.write("stack.toml", &reordered);
    // Run from another cwd with -C, a different TZ, locale, HOME and umask, and an absolute --out.
    let elsewhere = tempfile::tempdir().unwrap();
    let out_dir: PathBuf = elsewhere.path().join("emitted");
    let script = format!(
        "umask 077 && exec {} -C {} build --out {}",
        env!("CARGO_BIN_EXE_stack"),
        b.path().display(),
        out_dir.display()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(elsewhere.path())
        .env("TZ", "Pacific/Kiritimati")
        .env("LANG", "tr_TR.UTF-8")
        .env("LC_ALL", "tr_TR.UTF-8")
        .env("HOME", elsewhere.path())
        .output()
        .unwrap();
    let summary_b = ok(&out);
    let second = read_tree(&out_dir);
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        second.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &first {
        assert!(
            bytes == &second[path],
            "{path} differs between the two builds"
        );
    }
    let hash = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("tree blake3:"))
            .unwrap()
            .to_string()
    };
    assert_eq!(hash(&summary_a), hash(&summary_b));
}

#[test]
fn check_passes_on_fresh_output_and_fails_on_drift() {
    let stack = Stack::default_stack();
    let out = stack.stack(&["build", "--check"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "no out/ yet: {}",
        text(&out.stderr)
    );
    ok(&stack.stack(&["build"]));
    ok(&stack.stack(&["build", "--check"]));
    stack.edit(
        "kubernetes/loki/app/helmrelease.yaml",
        "kind: HelmRelease",
        "kind: HelmRelease\n# drift",
    );
    let out = stack.stack(&["build", "--check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("changed: loki/app/helmrelease.yaml")
            && text(&out.stderr).contains("-# drift\n"),
        "{}",
        text(&out.stderr)
    );
    fs_err::write(stack.path().join("kubernetes/extra.yaml"), "x").unwrap();
    let out = stack.stack(&["build", "--check"]);
    assert!(
        text(&out.stderr).contains("removed: extra.yaml"),
        "{}",
        text(&out.stderr)
    );
}

// ----- errors ------------------------------------------------------------------------------------------

pub(crate) fn build_error(stack: &Stack) -> String {
    let err = fails(&stack.stack(&["build"]));
    assert!(
        !stack.path().join("kubernetes").exists(),
        "a failed build must not write out/"
    );
    err
}

#[test]
fn error_unknown_key() {
    let s = Stack::default_stack();
    s.edit(
        "stack.toml",
        "folder = \"GitOps\"\nwhen = { community_dashboards = true }\n\n# Logs",
        "folder = \"GitOps\"\nwhen = { community_dashboards = true }\nfoldr = \"x\"\n\n# Logs",
    );
    insta::assert_snapshot!(build_error(&s));
}

#[test]
fn error_wrong_type() {
    let s = Stack::default_stack();
    s.edit("stack.toml", "version = \"6.49.0\"", "version = 6.49");
    insta::assert_snapshot!(build_error(&s));
}

#[test]
fn error_chart_with_both_oci_and_repo() {
    let s = Stack::default_stack();
    s.edit("stack.toml", "repo = \"https://grafana.github.io/helm-charts\"   # not published as OCI\nversion = \"1.1.2\"", "repo = \"https://grafana.github.io/helm-charts\"\noci = \"oci://ghcr.io/grafana/helm-charts/alloy\"\nversion = \"1.1.2\"");
    insta::assert_snapshot!(build_error(&s));
}

#[test]
fn error_dashboard_with_neither_grafana_com_nor_url() {
    let s = Stack::default_stack();
    s.write(
        "stack.toml",
        &format!(
            "{}\n[dashboards.orphan]\nfolder = \"X\"\n",
            s.read("stack.toml")
        ),
    );
    let err = build_error(&s);
    assert!(
        err.contains("a dashboard needs `grafana_com = <id>`"),
        "{err}"
    );
    assert!(err.contains("stack.toml:"), "{err}");
}

#[test]
fn error_unknown_module() {
    let s = Stack::default_stack();
    s.edit("stack.toml", "  \"alerts\",\n", "  \"alertz\",\n");
    let err = build_error(&s);
    insta::assert_snapshot!(err);
    // `stack lock` loads stack.toml, modules and settings as `stack build` does: the same error, and the
    // lock is left as it was.
    let locked = s.read("stack.lock");
    for args in [["lock", "--check"], ["lock", "--offline"]] {
        assert_eq!(fails(&s.stack(&args)), err, "stack {}", args.join(" "));
    }
    assert_eq!(s.read("stack.lock"), locked);
}

/// Values that reach Flux are refused where they are written, with line and column, by build and lock.
#[test]
fn error_bad_flux_interval_and_namespace_name_line_and_column() {
    let s = Stack::default_stack();
    s.edit(
        "stack.toml",
        "namespace = \"flux-system\" }",
        "namespace = \"flux-system\", interval = \"one hour\" }",
    );
    let err = build_error(&s);
    assert!(err.starts_with("error: stack.toml:8:"), "{err}");
    assert!(err.contains("one hour"), "{err}");
    insta::assert_snapshot!("bad_interval", err);
    assert_eq!(fails(&s.stack(&["lock", "--check"])), err);

    let s = Stack::default_stack();
    s.edit(
        "stack.toml",
        "namespace = \"flux-system\" }",
        "namespace = \"Flux System\" }",
    );
    let err = build_error(&s);
    assert!(err.starts_with("error: stack.toml:8:"), "{err}");
    assert!(err.contains("Flux System"), "{err}");
    insta::assert_snapshot!("bad_namespace", err);
    assert_eq!(fails(&s.stack(&["lock", "--check"])), err);
}

/// A hand-edited digest is refused when stack.lock is read, with line and column, so it never reaches Flux.
#[test]
fn error_lock_digest_that_is_not_a_digest_names_line_and_column() {
    let s = Stack::default_stack();
    let lock = s.read("stack.lock");
    let digest = lock
        .lines()
        .find_map(|l| l.strip_prefix("digest = "))
        .expect("the committed lock pins a digest")
        .to_string();
    s.write("stack.lock", &lock.replacen(&digest, "\"nope\"", 1));
    let err = build_error(&s);
    insta::assert_snapshot!("lock_digest_nope", err);
    assert_eq!(fails(&s.stack(&["lock", "--check"])), err);

    let s = Stack::default_stack();
    let blake3 = lock
        .lines()
        .find_map(|l| l.strip_prefix("blake3 = "))
        .expect("the committed lock pins a blake3")
        .to_string();
    s.write("stack.lock", &lock.replacen(&blake3, "\"0123\"", 1));
    let err = build_error(&s);
    assert!(err.starts_with("error: stack.lock:"), "{err}");
    assert!(err.contains("`0123` is not a blake3 digest"), "{err}");
}

#[test]
fn a_hand_edited_lock_whose_fingerprint_still_matches_is_refused_naming_the_pin() {
    // The fingerprint is computed from stack.toml, so editing an entry leaves it matching: each pin must
    // still be asked whether it answers its input.
    let s = Stack::default_stack();
    let lock = s.read("stack.lock");
    let at = lock.find("name = \"alloy\"").expect("alloy is locked");
    let version = lock[at..]
        .lines()
        .find(|l| l.starts_with("version = "))
        .expect("alloy has a version")
        .to_string();
    let edited = format!(
        "{}{}",
        &lock[..at],
        lock[at..].replacen(&version, "version = \"1.0.0\"", 1)
    );
    s.write("stack.lock", &edited);
    let err = build_error(&s);
    assert!(
        err.contains("chart `alloy`") && err.contains("the pinned version \"1.0.0\""),
        "{err}"
    );
    assert_eq!(s.stack(&["lock", "--check"]).status.code(), Some(1));

    // An entry removed by hand is named, never a panic.
    let s = Stack::default_stack();
    let start = lock
        .find("[[chart]]\nname = \"loki\"")
        .expect("loki is locked");
    let end = lock[start + 1..]
        .find("\n[[")
        .map_or(lock.len(), |e| start + 1 + e + 1);
    s.write("stack.lock", &format!("{}{}", &lock[..start], &lock[end..]));
    let err = build_error(&s);
    assert!(err.contains("chart `loki` is not in the lock"), "{err}");
    assert_eq!(s.stack(&["lock", "--check"]).status.code(), Some(1));
}

#[test]
fn error_unknown_setting_and_wrong_setting_type() {
    let s = Stack::default_stack();
    s.edit(
        "stack.toml",
        "\nloki_enabled = true",
        "\nloki_enable = true",
    );
    let err = build_error(&s);
    assert!(
        err.contains("unknown setting `loki_enable`") && err.contains("stack.toml:"),
        "{err}"
    );
    let s = Stack::default_stack();
    s.set_setting("node_memory_threshold", "\"90%\"");
    let err = build_error(&s);
    assert!(
        err.contains("setting `node_memory_threshold` must be an integer"),
        "{err}"
    );
}

#[test]
fn error_missing_lock_names_the_command() {
    let s = Stack::default_stack();
    fs_err::remove_file(s.path().join("stack.lock")).unwrap();
    insta::assert_snapshot!(build_error(&s));
}

#[test]
fn error_stale_lock_names_the_input_and_the_command() {
    let s = Stack::default_stack();
    s.edit("stack.toml", "version = \"1.24.1\"", "version = \"~1.24\"");
    insta::assert_snapshot!(build_error(&s));
}

#[test]
fn error_vendored_file_differs_from_the_lock() {
    let s = Stack::with_community_dashboards();
    let path = "vendor/dashboards/flux-cluster.json";
    let mut bytes = fs_err::read(s.path().join(path)).unwrap();
    bytes.push(b'\n');
    fs_err::write(s.path().join(path), bytes).unwrap();
    let err = build_error(&s);
    assert!(
        err.contains("vendor/dashboards/flux-cluster.json does not match stack.lock"),
        "{err}"
    );
    assert!(err.contains("stack lock --update flux-cluster"), "{err}");
}

#[test]
fn error_dependency_cycle_prints_the_cycle() {
    let s = Stack::default_stack();
    s.edit(
        "modules/victoria-metrics/module.toml",
        "depends_on = [\"monitoring-crds\"]",
        "depends_on = [\"monitoring-crds\", \"alerts\"]",
    );
    let err = build_error(&s);
    assert!(
        err.contains("dependency cycle: alerts -> victoria-metrics -> alerts"),
        "{err}"
    );
}

#[test]
fn error_required_dependency_on_a_disabled_module() {
    let s = Stack::default_stack();
    let module = s.read("modules/alerts/module.toml");
    s.write(
        "modules/alerts/module.toml",
        &format!(
            "optional_depends_on = []\n{}",
            module.replacen("depends_on = [", "depends_on = [\"loki\", ", 1)
        ),
    );
    s.set_setting("loki_enabled", "false");
    let err = build_error(&s);
    assert!(err.contains("module `alerts` depends on `loki`, which is inactive because its condition `loki_enabled = true` does not hold"), "{err}");
}

#[test]
fn error_dashboard_too_large_for_a_configmap() {
    let s = Stack::with_community_dashboards();
    let path = "vendor/dashboards/etcd.json";
    let original = s.read(path);
    let big = original.replacen(
        '{',
        &format!("{{\"padding\": \"{}\",", "x".repeat(1_100_000)),
        1,
    );
    s.write(path, &big);
    // Re-pin the grown file in the lock, so the size check (not the hash check) is what fails.
    let lock = s.read("stack.lock");
    let old = blake3::hash(original.as_bytes()).to_hex().to_string();
    assert!(lock.contains(&old));
    s.write(
        "stack.lock",
        &lock.replace(&old, blake3::hash(big.as_bytes()).to_hex().as_ref()),
    );
    let err = build_error(&s);
    assert!(
        err.contains("dashboard `etcd` is") && err.contains("over the 1 MiB limit of a ConfigMap"),
        "{err}"
    );
}

#[test]
fn large_dashboards_warn_about_client_side_apply() {
    let s = Stack::with_community_dashboards();
    let out = s.stack(&["build"]);
    ok(&out);
    assert!(
        text(&out.stderr).contains("warning: dashboard `node-exporter-full` is"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn error_missing_constant_input_names_it() {
    let s = Stack::default_stack();
    s.write_bytes(
        "vendor/dashboards/hubble-observer-flows.json",
        &crate::support::upstream::dashboard("hubble-observer-flows.json"),
    );
    let bytes = fs_err::read(
        s.path()
            .join("vendor/dashboards/hubble-observer-flows.json"),
    )
    .unwrap();
    let url = "https://raw.githubusercontent.com/onzack/hubble-observer/021a412c8aa4c46cb9deed37d1f612569121cd1b/helm/hubble-observer/dashboard/cilium-hubble-flows.json";
    s.write(
        "stack.toml",
        &format!(
            "{}\n[dashboards.hubble-observer-flows]\nurl = \"{url}\"\nfolder = \"Network\"\n",
            s.read("stack.toml")
        ),
    );
    // Pin it the way `stack lock` would; the fingerprint is left stale: every pin answers its input, so
    // the build goes on.
    let mut lock = s.read("stack.lock");
    lock.push_str(&format!(
        "\n[[dashboard]]\nname = \"hubble-observer-flows\"\nsource = \"{url}\"\ntitle = \"Hubble Observer Flows\"\npath = \"vendor/dashboards/hubble-observer-flows.json\"\ndigest = \"sha256:{}\"\nblake3 = \"{}\"\n",
        sha256_hex(&bytes),
        blake3::hash(&bytes).to_hex()
    ));
    s.write("stack.lock", &lock);
    let err = build_error(&s);
    assert!(
        err.contains("constant input `VAR_HUBBLEOBSERVERNAMESPACE`"),
        "{err}"
    );
    s.edit(
        "stack.toml",
        "cilium-hubble-flows.json\"\nfolder = \"Network\"\n",
        "cilium-hubble-flows.json\"\nfolder = \"Network\"\ninputs = { VAR_HUBBLEOBSERVERNAMESPACE = \"kube-system\", VAR_HUBBLEOBSERVERCF2CNPURL = \"https://cf2cnp.example\" }\n",
    );
    ok(&s.stack(&["build"]));
    let json = s.read("kubernetes/dashboards/app/dashboards/hubble-observer-flows.json");
    assert!(
        !json.contains("${VAR_")
            && json.contains("https://cf2cnp.example")
            && json.contains("\"Loki\""),
        "constants and the Loki datasource are filled in"
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

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

#[test]
fn error_unknown_setting_in_a_module_names_the_file() {
    let s = Stack::default_stack();
    s.edit(
        "modules/tempo/values.yaml",
        "${settings.trace_retention}",
        "${settings.trace_retentoin}",
    );
    insta::assert_snapshot!(build_error(&s));
}

#[test]
fn error_no_manifest_names_the_directory_flag() {
    let empty = TestStack::empty();
    let err = fails(&empty.output_in(empty.root(), &["build"]));
    assert!(
        err.starts_with("error: no stack.toml in . or any parent directory")
            && err.contains("stack -C DIR")
            && err.contains("stack init"),
        "{err}"
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
