//! The repo's own stack: its stack.lock and vendor/ are written by [`regenerate_repo_lock`] against the
//! snapshot mirror, and [`default_stack_locks_against_the_snapshot_mirror_to_the_committed_lock`] proves
//! that they are what the tool writes; a fresh clone re-locks offline; `--check` fails a lock in another
//! form than `stack lock` writes.

use crate::lock::{mirror_args, registry_with_loki_and_vm, two_oci_charts};
use crate::support::{self, SnapshotMirror, TestStack};

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
