//! The catalogue of bad inputs: one table per kind of input (stack.toml, modules/settings.toml,
//! module.toml, module YAML, dashboards, stack.lock, vendor/, upstream answers), each row a small edit of a
//! base stack that works, the command it breaks, the exit code, and an insta snapshot of the whole stderr.
//! Every row must exit as stated without a panic, and its error must say where and what (the snapshots
//! are the review of that). Upstreams are real servers on loopback (tests/support); their tables are in
//! `catalogue_upstream`.

use crate::support::{self, TestStack};

/// One change to the base stack. Texts may hold `{HTTP}` (the HTTP server's `http://127.0.0.1:PORT`),
/// `{OCI}` (the registry's `oci://127.0.0.1:PORT`) and `{GRAFANA}`, filled in by the group.
pub(crate) enum Edit {
    /// Writes a file (relative to the stack), replacing what was there.
    Write(&'static str, &'static str),
    /// Replaces the first `from` in a file with `to`; `from` must be there.
    Replace(&'static str, &'static str, &'static str),
    /// Appends to a file.
    Append(&'static str, &'static str),
    /// Removes a file.
    Remove(&'static str),
    /// Runs `stack lock`, which must succeed (for a row about what the build does with what was locked).
    Lock,
}
use Edit::{Append, Lock, Remove, Replace, Write};

/// A row: a short name (the snapshot's), the edits, the command and the exit code it must give.
pub(crate) struct Row {
    name: &'static str,
    edits: &'static [Edit],
    args: &'static [&'static str],
    code: i32,
}

pub(crate) const fn row(
    name: &'static str,
    edits: &'static [Edit],
    args: &'static [&'static str],
    code: i32,
) -> Row {
    Row {
        name,
        edits,
        args,
        code,
    }
}

pub(crate) const BUILD: &[&str] = &["build"];
pub(crate) const LOCK: &[&str] = &["lock"];
pub(crate) const CHECK: &[&str] = &["lock", "--check"];

/// The base stack: one module with a manifest and a dashboard of its own, three settings, no inputs.
/// It builds (checked by `the_base_stacks_work`).
const BASE_STACK_TOML: &str = r#"[stack]
name = "catalogue"
flux = { source = { kind = "GitRepository", name = "flux-system" }, path = "./kubernetes" }

[settings]
replicas = 3

[modules]
enabled = ["app"]
"#;

const BASE_SETTINGS: &str = r#"[replicas]
type = "integer"
default = 1

[feature]
type = "bool"
default = false

[mode]
type = "string"
default = "a"
allowed = ["a", "b"]
"#;

const BASE_MODULE: &str = r#"namespace = "apps"

[datasources]
prometheus = "Prometheus"

[[manifests]]
file = "config.yaml"

[[dashboard]]
file = "dashboards/overview.json"
folder = "Apps"
"#;

const BASE_CONFIG: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  replicas: "${settings.replicas}"
  domain: "app.${SECRET_DOMAIN}"
"#;

const BASE_DASHBOARD: &str = r#"{
  "title": "App overview",
  "uid": "app-overview",
  "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]},
  "panels": [
    {"id": 1, "title": "Up", "type": "timeseries",
     "datasource": {"type": "prometheus", "uid": "${datasource}"},
     "targets": [{"expr": "up"}]}
  ],
  "schemaVersion": 39
}
"#;

/// A second module beside `app`, for rows about two modules.
const OTHER_MODULE: &str = "namespace = \"apps\"\n\n[[manifests]]\nfile = \"config.yaml\"\n";

/// The base stack, locked (an empty lock: it has no inputs yet).
pub(crate) fn base() -> TestStack {
    let stack = TestStack::new(BASE_STACK_TOML);
    stack.write("modules/settings.toml", BASE_SETTINGS);
    stack.write("modules/app/module.toml", BASE_MODULE);
    stack.write("modules/app/config.yaml", BASE_CONFIG);
    stack.write("modules/app/dashboards/overview.json", BASE_DASHBOARD);
    stack.lock(&["--offline"]).success();
    stack
}

/// Applies a row's edits with `vars` filled in.
pub(crate) fn apply(stack: &TestStack, edits: &[Edit], vars: &[(&str, String)]) {
    let fill = |text: &str| {
        vars.iter()
            .fold(text.to_string(), |t, (k, v)| t.replace(k, v))
    };
    for edit in edits {
        match edit {
            Write(path, text) => stack.write(path, fill(text)),
            Append(path, text) => {
                let old = if stack.exists(path) {
                    stack.read(path)
                } else {
                    String::new()
                };
                stack.write(path, format!("{old}{}", fill(text)));
            }
            Replace(path, from, to) => {
                let old = stack.read(path);
                let from = fill(from);
                assert!(old.contains(&from), "`{from}` is not in {path}:\n{old}");
                stack.write(path, old.replacen(&from, &fill(to), 1));
            }
            Remove(path) => fs_err::remove_file(stack.root().join(path)).unwrap(),
            Lock => {
                stack.lock(&[]).success();
            }
        }
    }
}

/// Runs every row of a kind on a fresh `base()`, checks the exit code and that nothing panicked, and
/// snapshots `$ stack ARGS`, the exit code and the whole stderr as `catalogue__<kind>-<row>`.
pub(crate) fn run(kind: &str, base: impl Fn() -> TestStack, vars: &[(&str, String)], rows: &[Row]) {
    let mut wrong = Vec::new();
    for row in rows {
        let stack = base();
        apply(&stack, row.edits, vars);
        let out = stack.run(row.args);
        let mut stderr = stack.redact(&out.stderr);
        for (key, value) in vars {
            stderr = stderr.replace(&support::stack::redact_ports(value), key);
        }
        let shown = format!(
            "$ stack {}\nexit {}\n{stderr}",
            row.args.join(" "),
            out.code
        );
        insta::assert_snapshot!(format!("{kind}-{}", row.name), shown);
        let fine = out.code == row.code
            && !out.stderr.contains("panicked")
            && (row.code != 2 || out.stderr.contains("error: "));
        if !fine {
            wrong.push(format!(
                "{kind}/{} (expected exit {}): {out:?}",
                row.name, row.code
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} rows went wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The base stacks build and lock cleanly, so each row's failure is its edit's.
#[test]
fn the_base_stacks_work() {
    let stack = base();
    stack.run(BUILD).success();
    stack.run(CHECK).success();
    let config = stack.read("kubernetes/app/app/config.yaml");
    // A quoted setting stays a string; Flux's own `${VAR}` is left for postBuild.
    assert!(config.contains("replicas: '3'"), "{config}");
    assert!(config.contains("${SECRET_DOMAIN}"), "{config}");
}

// ----- stack.toml -------------------------------------------------------------------------------------

#[rustfmt::skip]
const STACK_TOML: &[Row] = &[
    row("syntax", &[Replace("stack.toml", "name = \"catalogue\"", "name = \"catalogue")], BUILD, 2),
    row("unknown-section", &[Append("stack.toml", "\n[chart.x]\noci = \"oci://example.com/x\"\n")], BUILD, 2),
    row("unknown-stack-key", &[Replace("stack.toml", "name = \"catalogue\"", "name = \"catalogue\"\nnmae = \"x\"")], BUILD, 2),
    row("no-stack-section", &[Write("stack.toml", "[modules]\nenabled = []\n")], BUILD, 2),
    row("stack-name-uppercase", &[Replace("stack.toml", "\"catalogue\"", "\"Catalogue\"")], BUILD, 2),
    row("flux-path-absolute", &[Replace("stack.toml", "\"./kubernetes\"", "\"/kubernetes\"")], BUILD, 2),
    row("flux-path-dotdot", &[Replace("stack.toml", "\"./kubernetes\"", "\"./../kubernetes\"")], BUILD, 2),
    row("flux-source-kind", &[Replace("stack.toml", "GitRepository", "GitRepo")], BUILD, 2),
    row("flux-source-name", &[Replace("stack.toml", "name = \"flux-system\"", "name = \"Flux_System\"")], BUILD, 2),
    row("flux-namespace", &[Replace("stack.toml", "path = \"./kubernetes\"", "path = \"./kubernetes\", namespace = \"flux.system\"")], BUILD, 2),
    row("flux-interval", &[Replace("stack.toml", "path = \"./kubernetes\"", "path = \"./kubernetes\", interval = \"1 hour\"")], BUILD, 2),
    row("flux-interval-days", &[Replace("stack.toml", "path = \"./kubernetes\"", "path = \"./kubernetes\", interval = \"1d\"")], BUILD, 2),
    row("flux-prefix", &[Replace("stack.toml", "path = \"./kubernetes\"", "path = \"./kubernetes\", prefix = \"Stack_\"")], BUILD, 2),
    row("chart-oci-and-repo", &[Append("stack.toml", "\n[charts.x]\noci = \"oci://example.com/x\"\nrepo = \"https://example.com\"\nversion = \"1.0.0\"\n")], BUILD, 2),
    row("chart-no-source", &[Append("stack.toml", "\n[charts.x]\nversion = \"1.0.0\"\n")], BUILD, 2),
    row("chart-name", &[Append("stack.toml", "\n[charts.My_Chart]\noci = \"oci://example.com/x\"\nversion = \"1.0.0\"\n")], BUILD, 2),
    row("chart-version-req", &[Append("stack.toml", "\n[charts.x]\noci = \"oci://example.com/x\"\nversion = \">=1.0 <<2\"\n")], BUILD, 2),
    row("chart-oci-scheme", &[Append("stack.toml", "\n[charts.x]\noci = \"https://example.com/x\"\nversion = \"1.0.0\"\n")], BUILD, 2),
    row("chart-unknown-key", &[Append("stack.toml", "\n[charts.x]\noci = \"oci://example.com/x\"\nverison = \"1.0.0\"\n")], BUILD, 2),
    row("chart-repo-userinfo", &[Append("stack.toml", "\n[charts.x]\nrepo = \"https://user:hunter2@example.com/charts\"\nversion = \"1.0.0\"\n")], BUILD, 2),
    row("dashboard-revision-zero", &[Append("stack.toml", "\n[dashboards.x]\ngrafana_com = 1860\nrevision = 0\n")], LOCK, 2),
    row("dashboard-revision-negative", &[Append("stack.toml", "\n[dashboards.x]\ngrafana_com = 1860\nrevision = -1\n")], LOCK, 2),
    row("dashboard-id-zero", &[Append("stack.toml", "\n[dashboards.x]\ngrafana_com = 0\n")], LOCK, 2),
    row("dashboard-url-and-id", &[Append("stack.toml", "\n[dashboards.x]\ngrafana_com = 1860\nurl = \"https://example.com/d.json\"\n")], LOCK, 2),
    row("dashboard-url-scheme", &[Append("stack.toml", "\n[dashboards.x]\nurl = \"file:///etc/passwd\"\n")], LOCK, 2),
    row("dashboard-url-revision", &[Append("stack.toml", "\n[dashboards.x]\nurl = \"https://example.com/d.json\"\nrevision = 3\n")], LOCK, 2),
    row("dashboard-when-unknown-setting", &[Append("stack.toml", "\n[dashboards.x]\nurl = \"https://example.com/d.json\"\nwhen = { feture = true }\n")], BUILD, 2),
    row("dashboard-when-type", &[Append("stack.toml", "\n[dashboards.x]\nurl = \"https://example.com/d.json\"\nwhen = { feature = \"yes\" }\n")], BUILD, 2),
    row("mirror-insecur", &[Append("stack.toml", "\n[mirrors]\n\"ghcr.io\" = { to = \"registry.internal:5000\", insecur = true }\n")], BUILD, 2),
    row("mirror-clustr", &[Append("stack.toml", "\n[mirrors]\n\"ghcr.io\" = { to = \"registry.internal:5000\", clustr = true }\n")], BUILD, 2),
    row("mirror-integer", &[Append("stack.toml", "\n[mirrors]\n\"ghcr.io\" = 5\n")], BUILD, 2),
    row("setting-unknown", &[Replace("stack.toml", "replicas = 3", "replica = 3")], BUILD, 2),
    row("setting-type", &[Replace("stack.toml", "replicas = 3", "replicas = \"3\"")], BUILD, 2),
    row("setting-not-allowed", &[Replace("stack.toml", "replicas = 3", "replicas = 3\nmode = \"c\"")], BUILD, 2),
    row("module-unknown", &[Replace("stack.toml", "[\"app\"]", "[\"app\", \"ap\"]")], BUILD, 2),
    row("module-twice", &[Replace("stack.toml", "[\"app\"]", "[\"app\", \"app\"]")], BUILD, 2),
    row("duplicate-key", &[Replace("stack.toml", "replicas = 3", "replicas = 3\nreplicas = 4")], BUILD, 2),
];

#[test]
fn stack_toml() {
    run("stack-toml", base, &[], STACK_TOML);
}

// ----- modules/settings.toml --------------------------------------------------------------------------

#[rustfmt::skip]
const SETTINGS: &[Row] = &[
    row("syntax", &[Replace("modules/settings.toml", "type = \"bool\"", "type = bool")], BUILD, 2),
    row("unknown-type", &[Replace("modules/settings.toml", "type = \"bool\"", "type = \"float\"")], BUILD, 2),
    row("default-type", &[Replace("modules/settings.toml", "default = false", "default = \"no\"")], BUILD, 2),
    row("default-not-allowed", &[Replace("modules/settings.toml", "default = \"a\"", "default = \"c\"")], BUILD, 2),
    row("unknown-key", &[Replace("modules/settings.toml", "default = 1", "default = 1\nminimum = 0")], BUILD, 2),
    row("allowed-on-integer", &[Replace("modules/settings.toml", "default = 1", "default = 1\nallowed = [\"1\"]")], BUILD, 2),
    row("required-missing", &[Append("modules/settings.toml", "\n[cluster_name]\ntype = \"string\"\n")], BUILD, 2),
];

#[test]
fn settings_toml() {
    run("settings", base, &[], SETTINGS);
}

// ----- module.toml ------------------------------------------------------------------------------------

pub(crate) const M: &str = "modules/app/module.toml";

#[rustfmt::skip]
const MODULES: &[Row] = &[
    row("syntax", &[Replace(M, "namespace = \"apps\"", "namespace = apps")], BUILD, 2),
    row("unknown-key", &[Replace(M, "namespace = \"apps\"", "namespace = \"apps\"\ndependson = [\"x\"]")], BUILD, 2),
    row("no-namespace", &[Replace(M, "namespace = \"apps\"", "")], BUILD, 2),
    row("namespace-invalid", &[Replace(M, "\"apps\"", "\"Apps\"")], BUILD, 2),
    row("namespace-too-long", &[Replace(M, "\"apps\"", "\"a-namespace-name-that-is-longer-than-sixty-three-characters-long-x\"")], BUILD, 2),
    row("timeout", &[Replace(M, "namespace = \"apps\"", "namespace = \"apps\"\ntimeout = \"10 minutes\"")], BUILD, 2),
    row("when-unknown-setting", &[Replace(M, "namespace = \"apps\"", "namespace = \"apps\"\nwhen = { feture = true }")], BUILD, 2),
    row("when-type", &[Replace(M, "namespace = \"apps\"", "namespace = \"apps\"\nwhen = { feature = \"yes\" }")], BUILD, 2),
    row("when-not-allowed", &[Replace(M, "namespace = \"apps\"", "namespace = \"apps\"\nwhen = { mode = \"c\" }")], BUILD, 2),
    row("manifest-when-type", &[Replace(M, "file = \"config.yaml\"", "file = \"config.yaml\"\nwhen = { replicas = true }")], BUILD, 2),
    row("depends-on-unknown", &[Replace(M, "namespace = \"apps\"", "namespace = \"apps\"\ndepends_on = [\"metrics\"]")], BUILD, 2),
    row("depends-on-not-enabled", &[Write("modules/other/module.toml", OTHER_MODULE), Write("modules/other/config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n"), Replace(M, "namespace = \"apps\"", "namespace = \"apps\"\ndepends_on = [\"other\"]")], BUILD, 2),
    row("cycle", &[Write("modules/other/module.toml", "namespace = \"apps\"\ndepends_on = [\"app\"]\n"), Replace(M, "namespace = \"apps\"", "namespace = \"apps\"\ndepends_on = [\"other\"]"), Replace("stack.toml", "[\"app\"]", "[\"app\", \"other\"]")], BUILD, 2),
    row("two-providers", &[Write("modules/other/module.toml", "namespace = \"other\"\nprovides = [\"grafana\"]\n"), Replace(M, "namespace = \"apps\"", "namespace = \"apps\"\nprovides = [\"grafana\"]"), Replace("stack.toml", "[\"app\"]", "[\"app\", \"other\"]")], BUILD, 2),
    row("manifest-missing", &[Remove("modules/app/config.yaml")], BUILD, 2),
    row("manifest-outside", &[Replace(M, "file = \"config.yaml\"", "file = \"../config.yaml\"")], BUILD, 2),
    row("manifest-absolute", &[Replace(M, "file = \"config.yaml\"", "file = \"/etc/hosts\"")], BUILD, 2),
    row("release-chart-not-declared", &[Append(M, "\n[release]\nchart = \"grafana\"\n")], BUILD, 2),
    row("module-dir-name", &[Write("modules/My_App/module.toml", "namespace = \"apps\"\n")], BUILD, 2),
    row("namespace-label", &[Replace(M, "namespace = \"apps\"", "namespace = \"apps\"\nnamespace_labels = { \"bad key!\" = \"x\" }")], BUILD, 2),
    row("merge-mode", &[Append(M, "\n[release]\nchart = \"x\"\n\n[[release.patch]]\nvalues = \"v.yaml\"\nmerge = \"prepend\"\n")], BUILD, 2),
    row("same-object-twice", &[Write("modules/other/module.toml", OTHER_MODULE), Write("modules/other/config.yaml", BASE_CONFIG), Replace("stack.toml", "[\"app\"]", "[\"app\", \"other\"]")], BUILD, 2),
];

#[test]
fn module_toml() {
    run("module", base, &[], MODULES);
}

// ----- module YAML (manifests; values need a chart, see `upstream_registry`) ---------------------------

const Y: &str = "modules/app/config.yaml";

#[rustfmt::skip]
const YAML: &[Row] = &[
    row("syntax", &[Replace(Y, "  name: app-config", "  name: [app-config")], BUILD, 2),
    row("no-api-version", &[Replace(Y, "apiVersion: v1\n", "")], BUILD, 2),
    row("no-kind", &[Replace(Y, "kind: ConfigMap\n", "")], BUILD, 2),
    row("not-a-map", &[Write(Y, "- apiVersion: v1\n  kind: ConfigMap\n")], BUILD, 2),
    row("name-invalid", &[Replace(Y, "name: app-config", "name: App_Config")], BUILD, 2),
    row("name-too-long", &[Replace(Y, "name: app-config", "name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")], BUILD, 2),
    row("no-name", &[Replace(Y, "  name: app-config\n", "  labels: {}\n")], BUILD, 2),
    row("namespace-invalid", &[Replace(Y, "name: app-config", "name: app-config\n  namespace: Kube_System")], BUILD, 2),
    row("setting-singular", &[Replace(Y, "${settings.replicas}", "${setting.replicas}")], BUILD, 2),
    row("setting-capital", &[Replace(Y, "${settings.replicas}", "${Settings.replicas}")], BUILD, 2),
    row("setting-unknown", &[Replace(Y, "${settings.replicas}", "${settings.replica}")], BUILD, 2),
    row("setting-unclosed", &[Replace(Y, "${settings.replicas}", "${settings.replicas")], BUILD, 2),
    row("deep-nesting", &[Append(Y, "  deep: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n")], BUILD, 2),
    row("alias-bomb", &[Append(Y, "  a: &a [x, x, x, x, x, x, x, x, x]\n  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n  h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n  i: [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n")], BUILD, 2),
    row("duplicate-key", &[Replace(Y, "kind: ConfigMap", "kind: ConfigMap\nkind: Secret")], BUILD, 2),
    row("name-from-setting", &[Append("modules/settings.toml", "\n[suffix]\ntype = \"string\"\ndefault = \"Blue_Green\"\n"), Replace(Y, "name: app-config", "name: app-${settings.suffix}")], BUILD, 2),
    row("namespace-from-setting", &[Append("modules/settings.toml", "\n[target]\ntype = \"string\"\ndefault = \"apps\"\n"), Replace("stack.toml", "replicas = 3", "replicas = 3\ntarget = \"Apps.Prod\""), Replace(Y, "name: app-config", "name: app-config\n  namespace: \"${settings.target}\"")], BUILD, 2),
    row("data-not-string", &[Replace(Y, "domain: \"app.${SECRET_DOMAIN}\"", "enabled: true")], BUILD, 2),
];

#[test]
fn module_yaml() {
    run("yaml", base, &[], YAML);
}

// ----- dashboards of modules ----------------------------------------------------------------------------

const D: &str = "modules/app/dashboards/overview.json";
const SECOND_DASHBOARD: Edit = Replace(
    M,
    "folder = \"Apps\"",
    "folder = \"Apps\"\n\n[[dashboard]]\nfile = \"dashboards/second.json\"\nfolder = \"Apps\"",
);

#[rustfmt::skip]
const DASHBOARDS: &[Row] = &[
    row("not-json", &[Write(D, "{\"title\": \"App overview\",\n \"panels\": [}\n")], BUILD, 2),
    row("array", &[Write(D, "[]\n")], BUILD, 2),
    row("no-title", &[Replace(D, "\"title\": \"App overview\",", "")], BUILD, 2),
    row("api-error-body", &[Write(D, "{\"code\":\"InvalidArgument\",\"message\":\"invalid dashboard id\"}\n")], BUILD, 2),
    row("uid-too-long", &[Replace(D, "\"app-overview\"", "\"app-overview-with-a-uid-longer-than-forty-chars\"")], BUILD, 2),
    row("uid-characters", &[Replace(D, "\"app-overview\"", "\"app/overview\"")], BUILD, 2),
    row("uid-twice", &[SECOND_DASHBOARD, Write("modules/app/dashboards/second.json", "{\"title\": \"Second\", \"uid\": \"app-overview\", \"panels\": []}\n")], BUILD, 2),
    row("title-twice", &[SECOND_DASHBOARD, Write("modules/app/dashboards/second.json", "{\"title\": \"App overview\", \"uid\": \"second\", \"panels\": []}\n")], BUILD, 2),
    row("datasource-unresolved", &[Replace(D, "\"${datasource}\"", "\"${DS_MISSING-METRICS}\"")], BUILD, 2),
    row("datasource-unknown-variable", &[Replace(D, "\"${datasource}\"", "\"$metrics\"")], BUILD, 2),
    row("library-panel", &[Replace(D, "{\"id\": 1,", "{\"id\": 2, \"title\": \"Shared\", \"libraryPanel\": {\"uid\": \"lib-1\", \"name\": \"Shared\"}},\n    {\"id\": 1,")], BUILD, 2),
    row("recording-rule-not-recorded", &[Replace(D, "\"expr\": \"up\"", "\"expr\": \"sum(app:requests:rate5m)\"")], BUILD, 2),
    row("file-not-json-extension", &[Replace(M, "dashboards/overview.json", "dashboards/overview.yaml")], BUILD, 2),
    row("file-name", &[Replace(M, "dashboards/overview.json", "dashboards/Overview_1.json"), Write("modules/app/dashboards/Overview_1.json", BASE_DASHBOARD)], BUILD, 2),
    row("file-missing", &[Remove(D)], BUILD, 2),
    row("deep-nesting", &[Replace(D, "\"schemaVersion\": 39", "\"deep\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]")], BUILD, 2),
];

#[test]
fn module_dashboards() {
    run("dashboard", base, &[], DASHBOARDS);
}

#[test]
fn an_oversized_dashboard_is_refused_naming_the_file() {
    let stack = base();
    let panels: Vec<String> = (0..14_000)
        .map(|i| format!("{{\"id\": {i}, \"title\": \"Panel {i} padding padding padding padding\", \"type\": \"text\"}}"))
        .collect();
    stack.write(
        D,
        format!(
            "{{\"title\": \"Big\", \"uid\": \"big\", \"panels\": [{}]}}",
            panels.join(",")
        ),
    );
    let out = stack.run(BUILD).code(2);
    insta::assert_snapshot!("dashboard-oversized", stack.redact(&out.stderr));
}

// ----- stack.lock -------------------------------------------------------------------------------------

const L: &str = "stack.lock";
/// Drops the empty entry lists of the base lock, so a row can append `[[chart]]` / `[[dashboard]]`.
const NO_ENTRIES: Edit = Replace(L, "chart = []\ndashboard = []\n", "");

#[rustfmt::skip]
const LOCKS: &[Row] = &[
    row("missing", &[Remove(L)], BUILD, 2),
    row("syntax", &[Replace(L, "version = 1", "version = ")], BUILD, 2),
    row("version-2", &[Replace(L, "version = 1", "version = 2")], BUILD, 2),
    row("unknown-key", &[Replace(L, "version = 1", "version = 1\ngenerator = \"me\"")], BUILD, 2),
    row("no-fingerprint", &[Write(L, "version = 1\n")], BUILD, 2),
    row("chart-name", &[NO_ENTRIES, Append(L, "\n[[chart]]\nname = \"Bad_Name\"\nsource = \"oci://example.com/x\"\nrequirement = \"1.0.0\"\nversion = \"1.0.0\"\ndigest = \"sha256:00\"\nblake3 = \"00\"\n")], BUILD, 2),
    row("chart-field-missing", &[NO_ENTRIES, Append(L, "\n[[chart]]\nname = \"x\"\nsource = \"oci://example.com/x\"\n")], BUILD, 2),
    row("dashboard-path", &[NO_ENTRIES, Append(L, "\n[[dashboard]]\nname = \"x\"\nsource = \"https://example.com/x.json\"\ntitle = \"X\"\npath = \"../x.json\"\ndigest = \"sha256:0000000000000000000000000000000000000000000000000000000000000000\"\nblake3 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n")], BUILD, 2),
    row("dashboard-twice", &[NO_ENTRIES, Append(L, "\n[[dashboard]]\nname = \"x\"\nsource = \"https://example.com/x.json\"\ntitle = \"X\"\npath = \"vendor/dashboards/x.json\"\ndigest = \"sha256:0000000000000000000000000000000000000000000000000000000000000000\"\nblake3 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n\n[[dashboard]]\nname = \"x\"\nsource = \"https://example.com/x.json\"\ntitle = \"X\"\npath = \"vendor/dashboards/x.json\"\ndigest = \"sha256:0000000000000000000000000000000000000000000000000000000000000000\"\nblake3 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n")], BUILD, 2),
    row("dashboard-path-twice", &[NO_ENTRIES, Append(L, "\n[[dashboard]]\nname = \"x\"\nsource = \"https://example.com/x.json\"\ntitle = \"X\"\npath = \"vendor/dashboards/x.json\"\ndigest = \"sha256:0000000000000000000000000000000000000000000000000000000000000000\"\nblake3 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n\n[[dashboard]]\nname = \"y\"\nsource = \"https://example.com/y.json\"\ntitle = \"Y\"\npath = \"vendor/dashboards/x.json\"\ndigest = \"sha256:0000000000000000000000000000000000000000000000000000000000000000\"\nblake3 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n")], BUILD, 2),
    row("input-not-locked", &[Append("stack.toml", "\n[dashboards.x]\nurl = \"https://example.com/d.json\"\n")], BUILD, 2),
];

#[test]
fn stack_lock() {
    run("lock", base, &[], LOCKS);
}
