//! Dashboards as a fresh clone ships them: the modules' own dashboards always, the community dashboards
//! of stack.toml only with `community_dashboards = true` and their vendored bytes, which `stack lock`
//! restores; and the checks every shipped dashboard passes (uids, titles, recording rules, PromQL).

use std::path::Path;
use std::process::Command;

use crate::build::{build_error, build_tree, kubectl_kustomize, ok, text, yaml_documents, Stack};
use crate::support::{self, SnapshotMirror, TestStack};

/// The modules' own dashboards of the default stack: (ConfigMap name, module file).
pub const OWN_DASHBOARDS: &[(&str, &str)] = &[
    (
        "dashboard-coredns",
        "modules/network-monitoring/dashboards/coredns.json",
    ),
    (
        "dashboard-envoy-gateway",
        "modules/network-monitoring/dashboards/envoy-gateway.json",
    ),
    (
        "dashboard-network-overview",
        "modules/network-monitoring/dashboards/network-overview.json",
    ),
    (
        "dashboard-alerts-overview",
        "modules/alerts/dashboards/alerts-overview.json",
    ),
];

/// A fresh clone (no vendor/) builds, and ships the modules' own dashboards as ConfigMaps that
/// `kubectl kustomize` builds, with the datasource filled in; no community dashboard ships.
#[test]
fn a_fresh_clone_ships_the_modules_own_dashboards() {
    let stack = Stack::default_stack();
    assert!(!stack.path().join("vendor").exists());
    ok(&stack.stack(&["build"]));
    let out = stack.path().join("kubernetes");
    let mut shipped = Vec::new();
    for app in ["network-monitoring/app", "alerts/app", "dashboards/app"] {
        for doc in yaml_documents(&kubectl_kustomize(&out.join(app))) {
            if doc["kind"] == "ConfigMap" && doc["metadata"]["labels"]["grafana_dashboard"] == "1" {
                let json = doc["data"].as_object().unwrap().values().next().unwrap();
                let dashboard: serde_json::Value =
                    serde_json::from_str(json.as_str().unwrap()).unwrap();
                let var = &dashboard["templating"]["list"][0];
                assert_eq!(var["name"], "datasource");
                assert_eq!(var["current"]["value"], "VictoriaMetrics", "{json}");
                shipped.push(doc["metadata"]["name"].as_str().unwrap().to_string());
            }
        }
    }
    shipped.sort();
    let mut expected: Vec<String> = OWN_DASHBOARDS.iter().map(|(n, _)| n.to_string()).collect();
    expected.sort();
    assert_eq!(shipped, expected);
}

/// The release binary of a fresh clone builds with no network at all (`unshare -n`: a new network
/// namespace with only a downed loopback). Needs root or user namespaces, as CI has.
#[test]
fn the_default_stack_builds_with_no_network() {
    let Some(unshare) = support::require_tool(
        "unshare",
        &["/usr/bin/unshare"],
        "apt-get install util-linux",
    ) else {
        return;
    };
    let probe = Command::new(&unshare)
        .args(["-n", "true"])
        .output()
        .unwrap();
    if !probe.status.success() {
        assert!(
            !support::in_ci(),
            "unshare -n is not permitted here: {}",
            text(&probe.stderr)
        );
        eprintln!("SKIPPED: unshare -n is not permitted for this user");
        return;
    }
    let stack = Stack::default_stack();
    let out = Command::new(&unshare)
        .arg("-n")
        .arg(env!("CARGO_BIN_EXE_stack"))
        .args(["build"])
        .current_dir(stack.path())
        // The harness's own cache and HOME: a test never writes the user's cache.
        .env("STACK_CACHE_DIR", stack.harness().cache_dir())
        .env("HOME", stack.harness().fresh_dir("home"))
        .output()
        .unwrap();
    ok(&out);
    assert!(stack
        .path()
        .join("kubernetes/network-monitoring/app/dashboards/coredns.json")
        .is_file());
}

/// Switching the community dashboards on without their vendored bytes fails the build and
/// `lock --check`, both naming `stack lock`; `stack lock` against the snapshot mirror restores exactly
/// the pinned bytes (moving no pin), and the next build ships every one of them.
#[test]
fn community_dashboards_need_their_vendored_bytes_and_stack_lock_restores_them() {
    let Some(mirror) = SnapshotMirror::start() else {
        return;
    };
    let stack = TestStack::from_repo();
    let committed = fs_err::read_to_string(support::repo_root().join("stack.lock")).unwrap();
    stack.write("stack.lock", &committed);
    // Off: nothing to restore, so a cold, offline lock agrees and writes no vendor/.
    stack
        .lock(&["--offline"])
        .success()
        .mentions(&["up to date"]);
    stack.lock(&["--check"]).code(0);
    assert!(!stack.exists("vendor"));

    let toml = stack.read("stack.toml");
    stack.write(
        "stack.toml",
        toml.replacen(
            "community_dashboards = false",
            "community_dashboards = true",
            1,
        ),
    );
    let err = stack.run(&["build"]).code(2).stderr;
    assert!(
        err.contains("is missing (dashboard `") && err.contains("run `stack lock` to restore"),
        "{err}"
    );
    let check = stack.lock(&["--check"]).code(1).stderr;
    assert!(
        check.contains("run `stack lock` to restore its pinned bytes"),
        "{check}"
    );

    let mut args = vec!["lock".to_string()];
    args.extend(mirror.args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    stack.run(&args).success().mentions(&["Restoring"]);
    assert_eq!(stack.lock_text(), committed, "restoring moved a pin");
    let expected = support::mirror::locked_dashboard_bytes(&committed);
    assert_eq!(expected.len(), 22);
    for (path, bytes) in &expected {
        assert!(
            stack.read_bytes(path) == *bytes,
            "{path} is not the pinned upstream bytes"
        );
    }
    stack.lock(&["--check"]).code(0);
    stack.run(&["build"]).success();
    let shipped = fs_err::read_dir(stack.root().join("kubernetes/dashboards/app/dashboards"))
        .unwrap()
        .count();
    assert_eq!(shipped, 22, "every community dashboard ships");
}

/// A module's dashboard may only query recording rules an active module records: the build names the
/// dashboard, the panel and the rule.
#[test]
fn error_own_dashboard_queries_a_missing_recording_rule() {
    let s = Stack::default_stack();
    s.edit(
        "modules/alerts/dashboards/alerts-overview.json",
        "\"expr\": \"type:coredns_dns_requests:rate5m\"",
        "\"expr\": \"type:coredns_dns_requestz:rate5m\"",
    );
    insta::assert_snapshot!(build_error(&s));
    // The same holds when the rule exists but its module is off.
    let s = Stack::default_stack();
    s.set_setting("monitoring_alerts_enabled", "false");
    s.edit(
        "modules/network-monitoring/dashboards/coredns.json",
        "\"expr\": \"sum by (type) (rate(coredns_dns_requests_total{instance=~\\\"$instance\\\"}[$__rate_interval]))\"",
        "\"expr\": \"type:coredns_dns_requests:rate5m\"",
    );
    let err = build_error(&s);
    assert!(
        err.contains("panel `Requests by type`")
            && err.contains("`type:coredns_dns_requests:rate5m`"),
        "{err}"
    );
}

/// Two shipped dashboards with one uid: Grafana would flip between them. Refused, naming both.
#[test]
fn error_two_dashboards_share_a_uid() {
    let s = Stack::default_stack();
    let coredns = s.read("modules/network-monitoring/dashboards/coredns.json");
    s.write(
        "modules/network-monitoring/dashboards/coredns-copy.json",
        &coredns.replacen("\"title\": \"CoreDNS\"", "\"title\": \"CoreDNS copy\"", 1),
    );
    let module = s.read("modules/network-monitoring/module.toml");
    s.write(
        "modules/network-monitoring/module.toml",
        &format!("{module}\n[[dashboard]]\nfile = \"dashboards/coredns-copy.json\"\nfolder = \"Network\"\n"),
    );
    insta::assert_snapshot!(build_error(&s));
}

/// A body that is not a dashboard (no title) is refused, naming the file.
#[test]
fn error_own_dashboard_without_a_title() {
    let s = Stack::default_stack();
    s.edit(
        "modules/alerts/dashboards/alerts-overview.json",
        "\"title\": \"Alerts overview\"",
        "\"titel\": \"Alerts overview\"",
    );
    insta::assert_snapshot!(build_error(&s));
}

/// Every PromQL expression of the modules' own dashboards parses: each is wrapped in a recording rule of
/// a rules file and checked by Prometheus' own `promtool check rules` (Grafana's interval variables
/// stand in as durations). A broken expression fails, naming the dashboard and panel.
#[test]
fn own_dashboard_queries_pass_promtool() {
    let Some(promtool) = support::require_tool(
        "promtool",
        &["/usr/bin/promtool"],
        "apt-get install prometheus",
    ) else {
        return;
    };
    let stack = Stack::default_stack();
    let tree = build_tree(&stack);
    let mut checked = 0;
    for (_, file) in OWN_DASHBOARDS {
        let name = Path::new(file).file_stem().unwrap().to_str().unwrap();
        let app = if file.contains("/alerts/") {
            "alerts"
        } else {
            "network-monitoring"
        };
        let json = text(&tree[&format!("{app}/app/dashboards/{name}.json")]);
        checked += check_queries(&promtool, name, &json).unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(checked >= 30, "only {checked} queries checked");

    let broken = r#"{"title":"T","panels":[{"title":"Broken panel","targets":[{"expr":"sum(rate(x_total[5m])"}]}]}"#;
    let err = check_queries(&promtool, "broken", broken).unwrap_err();
    assert!(
        err.contains("dashboard `broken`, panel `Broken panel`"),
        "{err}"
    );
}

/// Checks each query of a dashboard with promtool; the number checked, or the first failure.
fn check_queries(promtool: &Path, dashboard: &str, json: &str) -> Result<usize, String> {
    let doc: serde_json::Value = serde_json::from_str(json).unwrap();
    let queries = collect_queries(&doc);
    let scratch = tempfile::tempdir().unwrap();
    for (i, (panel, expr)) in queries.iter().enumerate() {
        let expr = expr
            .replace("${__rate_interval}", "5m")
            .replace("$__rate_interval", "5m")
            .replace("$__interval", "1m")
            .replace("$__range", "1h");
        let rules = serde_json::json!({"groups": [{"name": "check", "rules": [{"record": format!("check:query_{i}"), "expr": expr}]}]});
        let file = scratch.path().join(format!("{i}.yaml"));
        fs_err::write(&file, serde_yaml_ng::to_string(&rules).unwrap()).unwrap();
        let out = Command::new(promtool)
            .args(["check", "rules"])
            .arg(&file)
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(format!(
                "dashboard `{dashboard}`, panel `{panel}`: promtool rejects `{expr}`:\n{}{}",
                text(&out.stdout),
                text(&out.stderr)
            ));
        }
    }
    Ok(queries.len())
}

/// (panel title, expr) of every target, rows' nested panels included.
fn collect_queries(doc: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(panels: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for panel in panels.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("untitled").to_string();
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((title.clone(), expr.to_string()));
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&doc["panels"], &mut out);
    out
}

/// Without a Prometheus-type datasource provisioned the modules' dashboards cannot resolve: with the
/// fresh default, the metrics module provisions one, so every own dashboard's variable is defaulted.
#[test]
fn own_dashboards_follow_the_metrics_backend() {
    let s = Stack::default_stack();
    s.set_setting("monitoring_stack", "\"prometheus\"");
    let tree = build_tree(&s);
    let json = text(&tree["network-monitoring/app/dashboards/coredns.json"]);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        doc["templating"]["list"][0]["current"]["value"],
        "Prometheus"
    );
}
