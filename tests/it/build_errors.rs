//! `stack build` broken on purpose once per error it promises (unknown keys, wrong types, bad durations
//! and names, a stale or hand-edited lock, a vendored file that differs, cycles, oversized dashboards,
//! missing inputs): each exits 2, writes no out/, and says where and what to do.

use crate::build::{build_error, fails, ok, sha256_hex, text, Stack};
use crate::support::TestStack;

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

/// A module's own dashboard has no `[dashboards.NAME]` table: its error names the module's file and
/// says to fix it there, instead of advising a stack.toml table that would be refused.
#[test]
fn error_in_a_modules_own_dashboard_names_its_file_not_a_stack_toml_table() {
    let stack = Stack::default_stack();
    let path = "modules/network-monitoring/dashboards/coredns.json";
    let text = stack.read(path);
    let at = text.find("\"title\"").expect("the dashboard has a title");
    stack.write(
        path,
        &format!(
            "{}\"description\": \"${{DS_NOPE}}\",\n  {}",
            &text[..at],
            &text[at..]
        ),
    );
    let err = build_error(&stack);
    assert!(
        err.contains(&format!(
            "error: {path}: dashboard `coredns`: input `DS_NOPE`"
        )),
        "{err}"
    );
    assert!(
        err.contains("help: this is a module's own dashboard"),
        "{err}"
    );
    assert!(!err.contains("[dashboards.coredns]"), "{err}");
}
