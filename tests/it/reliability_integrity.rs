//! Lock integrity and bounded work: `--check` flags an extra vendored file and a sha256 that does not
//! match, `--check --remote` compares upstream's sha256, an index entry without a digest is locked
//! unverified with a warning, and deeply nested input or a long Retry-After fails at once.

use crate::reliability::{buildable_stack, dashboards, inputs, NEW_FILE, OLD_FILE};
use crate::support::{self, dashboard_bytes, HttpServer, TestStack};

#[test]
fn check_flags_an_extra_vendored_file_and_a_sha256_that_does_not_match() {
    let server = dashboards(1);
    let stack = TestStack::with_inputs(&inputs(&server, "old", 1..=1));
    stack.lock(&[]).success();
    stack.lock(&["--check"]).success();

    stack.write("vendor/dashboards/extra.json", "{}");
    stack
        .lock(&["--check"])
        .code(1)
        .mentions(&["vendor/dashboards/extra.json is not in stack.lock"]);
    // `stack lock` (offline too) removes it, as the check asks, and the check then passes.
    stack.lock(&["--offline"]).success();
    assert!(!stack.exists("vendor/dashboards/extra.json"));
    stack.lock(&["--check"]).success();

    // The blake3 still matches; only the recorded sha256 is wrong.
    let locked = support::sha256(&dashboard_bytes(OLD_FILE));
    let other = support::sha256(b"other bytes");
    stack.write("stack.lock", stack.lock_text().replace(&locked, &other));
    stack
        .lock(&["--check"])
        .code(1)
        .mentions(&["vendor/dashboards/d1.json does not match stack.lock (sha256"]);
}

#[test]
fn check_remote_compares_upstream_sha256() {
    let server = dashboards(1);
    let stack = TestStack::with_inputs(&inputs(&server, "old", 1..=1));
    stack.lock(&[]).success();
    stack.lock(&["--check", "--remote"]).success();
    server.serve("/old/d1.json", dashboard_bytes(NEW_FILE));
    stack
        .lock(&["--check", "--remote"])
        .code(1)
        .mentions(&["now serves different content (sha256"]);
}

#[test]
fn an_index_entry_without_a_digest_is_locked_with_a_warning_that_it_is_unverified() {
    let server = HttpServer::start();
    let index: String = crate::support::charts::fixture_index()
        .lines()
        .filter(|l| !l.trim_start().starts_with("digest:"))
        .map(|l| format!("{l}\n"))
        .collect();
    server.serve("/index.yaml", index);
    for chart in crate::support::charts::helm_repo_charts() {
        server.serve(&format!("/{}", chart.file_name()), chart.bytes.clone());
    }
    let stack = TestStack::with_inputs(&format!(
        "[charts.alloy]\nrepo = \"{}\"\nversion = \"1.1.1\"\n",
        server.url()
    ));
    stack
        .lock(&[])
        .success()
        .mentions(&["warning:", "states no digest, so the archive is unverified"]);
    let lock = stack.lock_text();
    assert!(lock.contains("\nunverified = true\n"), "{lock}");
    stack.lock(&["--check"]).success().mentions(&[
        "warning: chart `alloy` 1.1.1 is unverified in stack.lock",
        "states no digest",
    ]);
    // Re-locked while the index still states no digest: still marked (the pin is kept as it is).
    stack.lock(&[]).success();
    assert_eq!(stack.lock_text(), lock);
    // Once the index states the digest again, re-resolving the same version drops the mark.
    server.serve("/index.yaml", crate::support::charts::fixture_index());
    stack.lock(&["--update"]).success();
    assert!(
        !stack.lock_text().contains("unverified"),
        "{}",
        stack.lock_text()
    );
}

/// `stack build` repeats the warning for a chart that stack.lock marks unverified; a verified lock has
/// no such line.
#[test]
fn stack_build_mentions_a_chart_locked_unverified() {
    let stack = TestStack::from_repo();
    let committed = fs_err::read_to_string(support::repo_root().join("stack.lock")).unwrap();
    stack.write("stack.lock", &committed);
    let build = stack.run(&["build"]).success();
    assert!(!build.stderr.contains("unverified"), "{}", build.stderr);
    // Where `stack lock` writes the mark (after `url`), so `lock --check` finds the text canonical.
    let marked = committed.replacen(
        "url = \"https://grafana.github.io/helm-charts/alloy-1.1.2.tgz\"\n",
        "url = \"https://grafana.github.io/helm-charts/alloy-1.1.2.tgz\"\nunverified = true\n",
        1,
    );
    assert_ne!(marked, committed);
    stack.write("stack.lock", &marked);
    stack
        .run(&["build"])
        .success()
        .mentions(&["warning: chart `alloy`", "is unverified in stack.lock"]);
    stack
        .lock(&["--check"])
        .success()
        .mentions(&["warning: chart `alloy`", "is unverified in stack.lock"]);
}

// ----- bounded work ----------------------------------------------------------------------------------------

#[test]
fn a_module_file_of_deeply_nested_brackets_is_refused_before_parsing() {
    let stack = buildable_stack();
    let nested = format!("k: {}{}\n", "[".repeat(50_000), "]".repeat(50_000));
    stack.write("modules/alerts/hubble-rules.yaml", &nested);
    stack.run(&["build"]).code(2).mentions(&[
        "modules/alerts/hubble-rules.yaml",
        "line 1: `[`/`{` nested deeper than 64 levels",
    ]);
}

#[test]
fn a_retry_after_longer_than_stack_waits_fails_at_once_and_says_so() {
    let server = dashboards(1);
    server.fail_always(
        "/old/d1.json",
        crate::support::Fault::TooManyRequests {
            retry_after_secs: 100_000,
        },
    );
    let stack = TestStack::with_inputs(&inputs(&server, "old", 1..=1));
    stack.lock(&[]).code(2).mentions(&[
        "asks to retry after 100000 s",
        "help: run `stack lock` again later",
    ]);
    assert_eq!(server.count("/old/d1.json"), 1, "no request was retried");
    assert!(!stack.exists("stack.lock"));
}
