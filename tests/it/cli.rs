//! The commands around `lock` and `build`, end to end through the real binary: `stack init` then `stack
//! lock` (against a real registry on loopback) then `stack build` with no file written by hand,
//! stack.toml discovery, `--quiet`, `--color`, `NO_COLOR`, `--help`, completions, the man page, `stack
//! graph` in every format, and the `--json` results (schema `stack/v1`), snapshotted on a small stack.

use crate::support::charts::standin_chart;
use crate::support::registry::registry;
use crate::support::{repo_root, Registry, TestStack};

const KSM_REPO: &str = "prometheus-community/charts/kube-state-metrics";
/// The real kube-state-metrics chart whose Chart.yaml and defaults the stand-ins carry.
pub const KSM_BASE: &str = "7.0.0";

/// A registry standing in for ghcr.io with kube-state-metrics 5.30.0, 6.0.0 and 6.1.0 (what `stack init`'s
/// starter asks for: `^6`).
fn ksm_registry(registry: &Registry) {
    for version in ["5.30.0", "6.0.0", "6.1.0"] {
        let chart = standin_chart("kube-state-metrics", version, KSM_BASE);
        registry.push_chart(KSM_REPO, version, &chart.bytes);
    }
}

fn mirror(registry: &Registry) -> String {
    format!("ghcr.io={}", registry.host())
}

/// The starter stack, locked against `registry` and built.
fn started(registry: &Registry) -> TestStack {
    ksm_registry(registry);
    let stack = TestStack::empty();
    stack.run(&["init"]).success();
    stack.lock(&["--mirror", &mirror(registry)]).success();
    stack.run(&["build"]).success();
    stack
}

#[test]
fn init_then_lock_then_build_needs_no_hand_written_file() {
    let registry = registry!();
    ksm_registry(&registry);
    let stack = TestStack::empty();

    let init = stack.run(&["init", "--name", "starter"]).success();
    insta::assert_snapshot!("init_stderr", stack.redact(&init.stderr));
    for file in [
        "stack.toml",
        "modules/settings.toml",
        "modules/kube-state-metrics/module.toml",
        "modules/kube-state-metrics/values.yaml",
        ".gitignore",
    ] {
        insta::assert_snapshot!(format!("init_{}", file.replace('/', "_")), stack.read(file));
    }
    assert!(
        !stack
            .read(".gitignore")
            .lines()
            .any(|l| l.trim_start_matches('/').starts_with("vendor")),
        "vendor/ stays tracked"
    );

    let lock = stack.lock(&["--mirror", &mirror(&registry)]).success();
    assert!(!lock.stderr.contains("Rewrote"), "{lock:?}");
    insta::assert_snapshot!("init_lock_stderr", stack.redact(&lock.stderr));
    assert_eq!(
        crate::support::stack::field(&stack.locked_chart("kube-state-metrics"), "version"),
        "6.1.0"
    );

    let build = stack.run(&["build"]).success();
    assert!(
        build
            .stdout
            .starts_with("built kubernetes: 1 component (kube-state-metrics)"),
        "{build:?}"
    );
    let release = stack.read("kubernetes/kube-state-metrics/app/helmrelease.yaml");
    assert!(release.contains("replicas: 1\n"), "{release}");
    assert!(
        release.contains("app.kubernetes.io/part-of: starter"),
        "{release}"
    );
}

#[test]
fn init_minimal_locks_and_builds_a_stack_without_modules() {
    let stack = TestStack::empty();
    stack.run(&["init", "--minimal"]).success();
    assert!(
        !stack.exists("modules"),
        "no modules/ for a stack that uses none"
    );
    let lock = stack.lock(&[]).success();
    assert!(!lock.stderr.contains("Rewrote"), "{lock:?}");
    assert!(
        lock.stderr
            .contains("Creating stack.lock (0 charts, 0 dashboards)"),
        "{lock:?}"
    );
    stack.run(&["build"]).success().mentions(&["0 components"]);
    stack.lock(&["--check"]).success();
}

#[test]
fn init_refuses_a_non_empty_directory_and_writes_nothing() {
    let stack = TestStack::empty();
    stack.write("notes.md", "mine");
    let out = stack.run(&["init"]).code(2);
    insta::assert_snapshot!("init_non_empty", stack.redact(&out.stderr));
    assert!(!stack.exists("stack.toml"));
}

#[test]
fn stack_toml_is_found_in_a_parent_directory() {
    let stack = TestStack::empty();
    stack.run(&["init", "--minimal"]).success();
    stack.write("nested/deeper/.keep", "");
    stack
        .run_in(&stack.root().join("nested/deeper"), &["lock"])
        .success();
    assert!(
        stack.exists("stack.lock"),
        "the lock is written beside stack.toml"
    );
    assert!(!stack.exists("nested/deeper/stack.lock"));
}

#[test]
fn a_missing_stack_toml_is_one_error_for_every_command() {
    let stack = TestStack::empty();
    let errors: Vec<String> = ["build", "lock", "graph", "outdated", "diff"]
        .iter()
        .map(|cmd| stack.run_in(stack.root(), &[cmd]).code(2).stderr)
        .collect();
    for e in &errors {
        assert_eq!(e, &errors[0]);
    }
    insta::assert_snapshot!("no_manifest", stack.redact(&errors[0]));
}

#[test]
fn dash_c_with_a_file_says_it_takes_a_directory() {
    let stack = TestStack::empty();
    stack.run(&["init", "--minimal"]).success();
    let file = stack.root().join("stack.toml");
    let out = stack
        .run_in(stack.root(), &["-C", &file.display().to_string(), "build"])
        .code(2);
    insta::assert_snapshot!("dash_c_file", stack.redact(&out.stderr));
}

#[test]
fn quiet_silences_summaries_but_not_errors() {
    let stack = TestStack::empty();
    stack.run(&["init", "--minimal"]).success();
    let lock = stack.run(&["--quiet", "lock"]).success();
    assert_eq!((lock.stdout.as_str(), lock.stderr.as_str()), ("", ""));
    let build = stack.run(&["build", "-q"]).success();
    assert_eq!((build.stdout.as_str(), build.stderr.as_str()), ("", ""));
    fs_err::remove_file(stack.root().join("stack.lock")).unwrap();
    stack
        .run(&["-q", "build"])
        .code(2)
        .mentions(&["error: stack.lock is missing"]);
}

#[test]
fn color_always_colours_labels_and_never_or_no_color_does_not() {
    let mut stack = TestStack::empty();
    stack.run(&["init", "--minimal"]).success();
    let red_error = "\u{1b}[1m\u{1b}[31merror:";
    let out = stack.run(&["--color", "always", "build"]).code(2);
    assert!(out.stderr.starts_with(red_error), "{:?}", out.stderr);
    assert!(out.stderr.contains("\u{1b}[36mhelp:"), "{:?}", out.stderr);
    let out = stack.run(&["--color", "never", "build"]).code(2);
    assert!(!out.stderr.contains('\u{1b}'), "{:?}", out.stderr);
    // clap's own usage errors follow --color as well.
    let out = stack.run(&["--color=always", "bild"]).code(2);
    assert!(out.stderr.starts_with(red_error), "{:?}", out.stderr);
    // Not a terminal, NO_COLOR unset: auto is plain; NO_COLOR with auto is plain too.
    stack.remove_env("NO_COLOR");
    assert!(!stack.run(&["build"]).code(2).stderr.contains('\u{1b}'));
    stack.env("NO_COLOR", "1");
    assert!(!stack
        .run(&["--color", "auto", "build"])
        .code(2)
        .stderr
        .contains('\u{1b}'));
}

#[test]
fn help_lists_exit_codes_and_environment_and_the_mirror_flag_wins() {
    let stack = TestStack::empty();
    let help = stack.run(&["--help"]).success().stdout;
    for needle in [
        "Exit codes:",
        "STACK_CACHE_DIR",
        "STACK_REGISTRY_AUTH",
        "NO_COLOR",
        "--color <WHEN>",
        "--quiet",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
    // The README documents the same environment variables as --help.
    let readme = fs_err::read_to_string(repo_root().join("README.md")).unwrap();
    let env_section = help.split("Environment:").nth(1).unwrap();
    for name in env_section
        .lines()
        .filter_map(|l| l.split_whitespace().next())
    {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README lacks `{name}`"
        );
    }
    let lock_help = stack.run(&["lock", "--help"]).success().stdout;
    assert!(lock_help.contains("wins over [mirrors]"), "{lock_help}");
    assert!(!lock_help.contains("adds to [mirrors]"), "{lock_help}");
}

#[test]
fn completions_and_man_page_cover_every_command() {
    let stack = TestStack::empty();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stack.run(&["completions", shell]).success().stdout;
        for command in ["init", "graph", "outdated", "diff", "completions"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    let man = stack.run(&["man"]).success().stdout;
    assert!(
        man.starts_with(".ie \\n(.g .ds Aq"),
        "{}",
        &man[..200.min(man.len())]
    );
    for section in [
        ".SH NAME",
        "STACK GRAPH",
        "STACK OUTDATED",
        ".SH \"EXIT STATUS\"",
        ".SH \"ENVIRONMENT\"",
        "STACK_CACHE_DIR",
    ] {
        assert!(man.contains(section), "{section}");
    }
    if let Some(man_tool) =
        crate::support::require_tool("man", &["/usr/bin/man"], "apt-get install man-db")
    {
        let page = stack.fresh_dir("man").join("stack.1");
        fs_err::write(&page, &man).unwrap();
        let shown = std::process::Command::new(man_tool)
            .args(["-l", "-P", "cat"])
            .arg(&page)
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        assert!(
            shown.status.success(),
            "{}",
            String::from_utf8_lossy(&shown.stderr)
        );
        assert!(
            String::from_utf8_lossy(&shown.stdout).contains("stack-outdated")
                || String::from_utf8_lossy(&shown.stdout).contains("STACK OUTDATED")
        );
    }
}

// ----- graph ---------------------------------------------------------------------------------------------

/// The repo's default stack with its lock (no network needed).
fn default_stack() -> TestStack {
    let stack = TestStack::from_repo();
    stack.write(
        "stack.lock",
        fs_err::read(repo_root().join("stack.lock")).unwrap(),
    );
    stack
}

#[test]
fn graph_of_the_default_stack_in_every_format() {
    let stack = default_stack();
    insta::assert_snapshot!("graph_default_text", stack.run(&["graph"]).success().stdout);
    insta::assert_snapshot!(
        "graph_default_dot",
        stack.run(&["graph", "--format", "dot"]).success().stdout
    );
    insta::assert_snapshot!(
        "graph_default_mermaid",
        stack
            .run(&["graph", "--format", "mermaid"])
            .success()
            .stdout
    );
    insta::assert_snapshot!(
        "graph_default_json",
        stack.run(&["graph", "--json"]).success().stdout
    );
    let svg = stack.run(&["graph", "--format", "svg"]).success().stdout;
    assert!(svg.contains("<svg") && svg.contains("victoria-metrics-k8s-stack 0.45.0"));
    assert_eq!(
        svg,
        stack.run(&["graph", "--format", "svg"]).success().stdout,
        "deterministic"
    );
}

/// docs/graph.svg (shown in the README) is what `stack graph --format svg` draws for the repo's stack.
/// Regenerate: `cargo run -- graph --format svg > docs/graph.svg`.
#[test]
fn docs_graph_svg_is_what_the_tool_draws_for_the_default_stack() {
    let stack = default_stack();
    let svg = stack.run(&["graph", "--format", "svg"]).success().stdout;
    let committed = fs_err::read_to_string(repo_root().join("docs/graph.svg")).unwrap_or_default();
    assert!(
        committed == svg,
        "docs/graph.svg is stale: run `cargo run -- graph --format svg > docs/graph.svg`"
    );
}

#[test]
fn graph_before_the_first_lock_shows_requirements() {
    let stack = TestStack::empty();
    stack.run(&["init", "--name", "starter"]).success();
    insta::assert_snapshot!(
        "graph_starter_unlocked",
        stack.run(&["graph"]).success().stdout
    );
}

// ----- JSON ----------------------------------------------------------------------------------------------

/// Checks a `--json` result against docs/json-schema.json (the documented `stack/v1` schema).
pub fn assert_schema(out: &str) {
    let value: serde_json::Value =
        serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(value["schema"], "stack/v1");
    let schema: serde_json::Value = serde_json::from_str(
        &fs_err::read_to_string(repo_root().join("docs/json-schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{out}");
}

/// The JSON text with values that vary by run (temp paths, ports) redacted, after checking it against
/// the schema.
fn json(stack: &TestStack, out: &str) -> String {
    assert_schema(out);
    stack.redact(out)
}

#[test]
fn json_results_of_lock_and_build_on_a_small_stack() {
    let registry = registry!();
    ksm_registry(&registry);
    let stack = TestStack::empty();
    stack.run(&["init", "--name", "starter"]).success();
    let m = mirror(&registry);

    let out = stack.lock(&["--json", "--mirror", &m]).success();
    insta::assert_snapshot!("json_lock", json(&stack, &out.stdout));
    let out = stack.lock(&["--json", "--mirror", &m]).success();
    insta::assert_snapshot!("json_lock_unchanged", json(&stack, &out.stdout));
    let out = stack.lock(&["--check", "--json"]).success();
    insta::assert_snapshot!("json_lock_check", json(&stack, &out.stdout));
    let out = stack.run(&["build", "--json"]).success();
    insta::assert_snapshot!("json_build", json(&stack, &out.stdout));
    let out = stack.run(&["build", "--check", "--json"]).success();
    insta::assert_snapshot!("json_build_check", json(&stack, &out.stdout));
    insta::assert_snapshot!(
        "json_graph",
        json(&stack, &stack.run(&["graph", "--json"]).success().stdout)
    );

    stack.write(
        "stack.toml",
        stack
            .read("stack.toml")
            .replace("ksm_replicas = 1", "ksm_replicas = 3"),
    );
    let out = stack.run(&["build", "--check", "--json"]).code(1);
    insta::assert_snapshot!("json_build_check_failed", json(&stack, &out.stdout));
    let text = stack.run(&["build", "--check"]).code(1);
    insta::assert_snapshot!("build_check_failed_diff", stack.redact(&text.stderr));

    stack.write(
        "stack.toml",
        stack
            .read("stack.toml")
            .replace("version = \"^6\"", "version = \"~6.0\""),
    );
    let out = stack.lock(&["--check", "--json"]).code(1);
    insta::assert_snapshot!("json_lock_check_failed", json(&stack, &out.stdout));
}

#[test]
fn starter_stack_text_outputs() {
    let registry = registry!();
    let stack = started(&registry);
    insta::assert_snapshot!("starter_graph", stack.run(&["graph"]).success().stdout);
    insta::assert_snapshot!(
        "starter_build_check",
        stack.run(&["build", "--check"]).success().stdout
    );
    insta::assert_snapshot!(
        "starter_lock_check",
        stack.lock(&["--check"]).success().stdout
    );
    insta::assert_snapshot!(
        "starter_diff_unchanged",
        stack.run(&["diff"]).success().stdout
    );
}

#[test]
fn default_stack_text_and_json_results() {
    let stack = default_stack();
    crate::support::copy_tree(&repo_root().join("vendor"), &stack.root().join("vendor"));
    insta::assert_snapshot!(
        "default_lock_check",
        stack.lock(&["--check"]).success().stdout
    );
    insta::assert_snapshot!(
        "default_lock_check_json",
        json(&stack, &stack.lock(&["--check", "--json"]).success().stdout)
    );
    let build = stack.run(&["build", "--json"]).success();
    insta::assert_snapshot!("default_build_json", json(&stack, &build.stdout));
    insta::assert_snapshot!(
        "default_build_check",
        stack.run(&["build", "--check"]).success().stdout
    );
}

#[test]
fn the_json_schema_rejects_what_v1_does_not_promise() {
    let ok = r#"{"schema": "stack/v1", "command": "graph", "nodes": []}"#;
    assert_schema(ok);
    for bad in [
        r#"{"schema": "stack/v2", "command": "graph", "nodes": []}"#,
        r#"{"schema": "stack/v1", "command": "graph", "nodes": [{"name": 1}]}"#,
        r#"{"schema": "stack/v1", "command": "lock", "nodes": []}"#,
        r#"{"schema": "stack/v1", "command": "graph", "nodes": [], "extra": true}"#,
    ] {
        assert!(
            std::panic::catch_unwind(|| assert_schema(bad)).is_err(),
            "accepted {bad}"
        );
    }
}
