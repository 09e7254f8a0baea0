//! `stack build` is deterministic: byte-identical output across directories, environments and the key
//! order of stack.toml; `build --check` passes on fresh output and fails on drift.

use std::path::PathBuf;
use std::process::Command;

use crate::build::{build_tree, ok, read_tree, text, Stack};

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
