//! The values check end to end: the repo's default stack locked against the snapshot mirror (whose charts
//! carry the real Chart.yaml and defaults of `../shared/upstream/charts/`, subcharts included), so
//! `stack lock` vendors each chart's defaults under vendor/charts/, then `stack build` checks every
//! module's values against them, offline. What the fixes for the real charts emit is `values_emitted`'s.

use crate::support::{SnapshotMirror, TestStack};

/// The repo's stack, locked against the snapshot mirror; `None` when docker-registry is missing outside CI.
fn locked_repo_stack() -> Option<TestStack> {
    let mirror = SnapshotMirror::start()?;
    let stack = TestStack::from_repo();
    let mut args = vec!["lock".to_string()];
    args.extend(mirror.args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    stack.run(&args).success();
    Some(stack)
}

fn set_setting(stack: &TestStack, name: &str, value: &str) {
    let text = stack.read("stack.toml");
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{name} =")))
        .unwrap_or_else(|| panic!("no setting {name}"));
    stack.write(
        "stack.toml",
        text.replacen(line, &format!("{name} = {value}"), 1),
    );
}

/// Replaces exactly one occurrence, so a test breaks precisely what it means to.
fn edit(stack: &TestStack, rel: &str, from: &str, to: &str) {
    let text = stack.read(rel);
    assert_eq!(
        text.matches(from).count(),
        1,
        "{rel} must contain {from:?} once"
    );
    stack.write(rel, text.replacen(from, to, 1));
}

/// The 1-based line of the first line of `rel` equal to `line` (trimmed).
fn line_of(stack: &TestStack, rel: &str, line: &str) -> usize {
    stack
        .read(rel)
        .lines()
        .position(|l| l.trim_end() == line)
        .unwrap_or_else(|| panic!("{rel} has no line {line:?}"))
        + 1
}

#[test]
fn lock_vendors_each_charts_defaults_with_its_subcharts() {
    let Some(stack) = locked_repo_stack() else {
        return;
    };
    let vm = "vendor/charts/victoria-metrics-k8s-stack";
    let upstream = crate::support::upstream::chart_dir("victoria-metrics-k8s-stack", "0.45.0");
    assert_eq!(
        stack.read_bytes(&format!("{vm}/values.yaml")),
        fs_err::read(upstream.join("values.yaml")).unwrap()
    );
    for sub in [
        "grafana",
        "victoria-metrics-operator",
        "kube-state-metrics",
        "prometheus-node-exporter",
        "victoria-metrics-common",
    ] {
        assert!(
            stack.exists(&format!("{vm}/charts/{sub}/values.yaml")),
            "{sub}"
        );
    }
    assert!(stack.exists("vendor/charts/loki/values.schema.json"));
    assert!(!stack.exists(&format!("{vm}/templates")));
}

#[test]
fn default_stack_values_fit_the_real_charts_on_both_backends() {
    let Some(stack) = locked_repo_stack() else {
        return;
    };
    for backend in ["\"victoriametrics\"", "\"prometheus\""] {
        set_setting(&stack, "monitoring_stack", backend);
        let out = stack.run(&["build"]).success();
        assert!(
            !out.stderr.contains("not checked"),
            "{backend}: {}",
            out.stderr
        );
    }
}

#[test]
fn without_vendored_or_cached_defaults_the_values_are_not_checked_until_stack_lock_restores_them() {
    let stack = TestStack::from_repo();
    let lock = fs_err::read_to_string(crate::support::repo_root().join("stack.lock")).unwrap();
    stack.write("stack.lock", &lock);
    let vendor = crate::support::repo_root().join("vendor");
    if vendor.is_dir() {
        crate::build::copy(&vendor, &stack.root().join("vendor"));
    }
    let _ = fs_err::remove_dir_all(stack.root().join("vendor/charts"));
    let out = stack.run(&["build"]).success();
    for chart in ["victoria-metrics-k8s-stack", "loki", "tempo", "alloy"] {
        assert!(
            out.stderr.contains(&format!("defaults of chart `{chart}`"))
                && out.stderr.contains("not checked"),
            "{chart}: {}",
            out.stderr
        );
    }

    // With every upstream unreachable, `stack lock` still succeeds: the pins are kept as they are and it
    // says the archives could not be fetched again (a fresh clone re-locks without network).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut offline = TestStack::from_repo();
    offline.write("stack.lock", &lock);
    offline.env("STACK_RETRY_BASE_MS", "1");
    let out = offline
        .run(&[
            "lock",
            "--mirror",
            &format!("ghcr.io={nowhere}"),
            "--mirror",
            &format!("https://grafana.github.io={nowhere}"),
        ])
        .success();
    assert_eq!(offline.read("stack.lock"), lock, "no pin moved");
    assert!(
        out.stderr.contains("chart `loki`: kept as pinned"),
        "{}",
        out.stderr
    );

    // `stack lock` (a fresh clone's, with a cold cache) fetches the pinned archives again, checks they
    // are the locked bytes and vendors their defaults; no pin moves, and the values are then checked.
    let Some(mirror) = SnapshotMirror::start() else {
        return;
    };
    let mut args = vec!["lock".to_string()];
    args.extend(mirror.args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    stack.run(&args).success();
    assert_eq!(stack.read("stack.lock"), lock, "no pin moved");
    for chart in ["victoria-metrics-k8s-stack", "loki", "tempo", "alloy"] {
        assert!(
            stack.exists(&format!("vendor/charts/{chart}/values.yaml")),
            "{chart}"
        );
    }
    let out = stack.run(&["build"]).success();
    assert!(!out.stderr.contains("not checked"), "{}", out.stderr);
}

#[test]
fn a_typo_fails_with_file_line_path_and_the_nearest_key() {
    let Some(stack) = locked_repo_stack() else {
        return;
    };
    let file = "modules/victoria-metrics/values.yaml";
    edit(
        &stack,
        file,
        "    dashboards:\n      enabled: true\n      # The dashboards module's",
        "    dashboard:\n      enabled: true\n      # The dashboards module's",
    );
    let line = line_of(&stack, file, "    dashboard:");
    let out = stack.run(&["build"]).code(2);
    assert!(
        out.stderr.contains(&format!(
            "{file}:{line}: `grafana.sidecar.dashboard` is not a value of chart victoria-metrics-k8s-stack 0.45.0"
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("help: did you mean `grafana.sidecar.dashboards`?"),
        "{}",
        out.stderr
    );
    assert!(
        !stack.exists("kubernetes"),
        "a failed build wrote kubernetes/"
    );
    insta::assert_snapshot!("values_check_typo", out.stderr);
}

/// Issue 14 item 7: keys that do nothing at the pinned versions.
#[test]
fn keys_that_do_nothing_at_the_pinned_versions_fail() {
    let Some(stack) = locked_repo_stack() else {
        return;
    };
    let vm = "modules/victoria-metrics/values.yaml";
    let text = stack.read(vm);
    stack.write(vm, format!("{text}\nsyncJob:\n  enabled: false\n"));
    edit(
        &stack,
        vm,
        "  plugins: []\n",
        "  plugins: []\n  dashboards: null\n",
    );
    let out = stack.run(&["build"]).code(2);
    let sync = line_of(&stack, vm, "syncJob:");
    let dashboards = line_of(&stack, vm, "  dashboards: null");
    assert!(
        out.stderr.contains(&format!(
            "{vm}:{sync}: `syncJob` is not a value of chart victoria-metrics-k8s-stack 0.45.0"
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "{vm}:{dashboards}: `grafana.dashboards` is null, which deletes the chart's default"
        )),
        "{}",
        out.stderr
    );

    set_setting(&stack, "monitoring_stack", "\"prometheus\"");
    let kps = "modules/kube-prometheus-stack/values.yaml";
    let text = stack.read(kps);
    stack.write(
        kps,
        format!("{text}\nkube-state-metrics:\n  enabled: true\nprometheus-node-exporter:\n  enabled: true\n"),
    );
    let out = stack.run(&["build"]).code(2);
    for (key, want) in [
        ("kube-state-metrics", "kubeStateMetrics.enabled"),
        ("prometheus-node-exporter", "nodeExporter.enabled"),
    ] {
        let line = line_of(&stack, kps, &format!("{key}:")) + 1;
        assert!(
            out.stderr.contains(&format!(
                "{kps}:{line}: `{key}.enabled` is not a value of chart kube-prometheus-stack 80.10.0"
            )) && out.stderr.contains(&format!("did you mean `{want}`?")),
            "{key}: {}",
            out.stderr
        );
    }
}

#[test]
fn lokis_schema_rejects_a_value_of_the_wrong_type() {
    let Some(stack) = locked_repo_stack() else {
        return;
    };
    let file = "modules/loki/values.yaml";
    edit(
        &stack,
        file,
        "  auth_enabled: false\n",
        "  auth_enabled: false\n  rulerConfig: local\n",
    );
    let line = line_of(&stack, file, "  rulerConfig: local");
    let out = stack.run(&["build"]).code(2);
    assert!(
        out.stderr.contains(&format!(
            "{file}:{line}: `loki.rulerConfig` is rejected by values.schema.json of chart loki 6.49.0"
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn lock_keeps_vendored_defaults_in_step_with_the_pins() {
    let Some(registry) = crate::support::Registry::start() else {
        return;
    };
    for chart in crate::support::charts::fixture_versions("loki") {
        registry.push_fixture("grafana/helm-charts/loki", &chart);
    }
    let url = registry.oci_url("grafana/helm-charts/loki");
    let stack = TestStack::with_inputs(&crate::support::stack::oci_chart("loki", &url, "6.48.0"));
    stack.lock(&[]).success();
    assert!(stack
        .read("vendor/charts/loki/Chart.yaml")
        .contains("version: 6.48.0"));

    stack.set_inputs(&crate::support::stack::oci_chart("loki", &url, "6.49.0"));
    stack.lock(&[]).success();
    assert!(stack
        .read("vendor/charts/loki/Chart.yaml")
        .contains("version: 6.49.0"));
    assert!(stack.exists("vendor/charts/loki/values.schema.json"));

    stack.set_inputs("");
    stack.lock(&[]).success();
    assert!(!stack.exists("vendor/charts/loki/Chart.yaml"));
    assert!(!stack.exists("vendor/charts/loki/values.yaml"));
}

#[cfg(unix)]
#[test]
fn build_refuses_vendored_defaults_behind_a_symlink_out_of_the_stack() {
    let Some(stack) = locked_repo_stack() else {
        return;
    };
    for link in ["vendor/charts/loki", "vendor"] {
        let outside = stack.fresh_dir("outside").join("moved");
        fs_err::rename(stack.root().join(link), &outside).unwrap();
        std::os::unix::fs::symlink(&outside, stack.root().join(link)).unwrap();
        stack
            .run(&["build"])
            .code(2)
            .mentions(&[&format!("{link} is a symlink leading outside the stack")]);
        fs_err::remove_file(stack.root().join(link)).unwrap();
        fs_err::rename(&outside, stack.root().join(link)).unwrap();
    }
    stack.run(&["build"]).success();
}

#[test]
fn lock_restores_a_removed_charts_defaults_and_says_so_without_rewriting_stack_lock() {
    let Some(stack) = locked_repo_stack() else {
        return;
    };
    let lock_path = stack.root().join("stack.lock");
    let before = fs_err::metadata(&lock_path).unwrap();
    let text = stack.read("stack.lock");
    let loki = stack.read_bytes("vendor/charts/loki/values.yaml");
    fs_err::remove_dir_all(stack.root().join("vendor/charts/loki")).unwrap();
    let out = stack.run(&["lock", "--offline"]).success();
    assert!(
        out.stderr.contains("Restoring loki vendor/charts/loki/"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("Rewrote"), "{}", out.stderr);
    assert_eq!(stack.read_bytes("vendor/charts/loki/values.yaml"), loki);
    assert_eq!(stack.read("stack.lock"), text);
    let after = fs_err::metadata(&lock_path).unwrap();
    assert_eq!(after.modified().unwrap(), before.modified().unwrap());

    fs_err::remove_dir_all(stack.root().join("vendor/charts/loki")).unwrap();
    let out = stack.run(&["lock", "--offline", "--json"]).success();
    crate::cli::assert_schema(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["written"], true);
    assert_eq!(json["lock_written"], false);
    assert_eq!(json["up_to_date"], false);
    assert_eq!(
        json["changes"],
        serde_json::json!([{"action": "restored", "name": "loki", "detail": "vendor/charts/loki/"}])
    );
    assert_eq!(stack.read_bytes("vendor/charts/loki/values.yaml"), loki);
}
