//! `stack lock` of charts in classic Helm repositories: relative and absolute chart URLs, digests with or
//! without a `sha256:` prefix, and errors naming a chart missing from the index or without URLs.

use crate::lock::{fixture_helm_repo, repo_chart, repo_chart_named};
use crate::support::charts::{self, fixture_chart};
use crate::support::stack::field;
use crate::support::{self, HttpServer, TestStack};

#[test]
fn helm_repo_exact_and_ranged_versions_resolve_through_relative_urls() {
    let server = fixture_helm_repo();
    let repo = server.url();
    let stack = TestStack::with_inputs(&format!(
        "{}{}{}",
        repo_chart("alloy", &repo, "1.1.2"),
        repo_chart("tempo", &repo, "~1.24"),
        repo_chart_named("alloy-next", &repo, "alloy", "^1.1"),
    ));

    stack.lock(&[]).success();

    for (name, chart, version) in [
        ("alloy", "alloy", "1.1.2"),
        ("tempo", "tempo", "1.24.1"),
        ("alloy-next", "alloy", "1.2.0"),
    ] {
        let fixture = fixture_chart(chart, version);
        let locked = stack.locked_chart(name);
        assert_eq!(
            field(&locked, "source"),
            format!("{repo}#{chart}"),
            "{name}"
        );
        assert_eq!(field(&locked, "version"), version, "{name}");
        assert_eq!(
            field(&locked, "digest"),
            fixture.sha256(),
            "{name}: the index's digest, as sha256:<hex>"
        );
        assert_eq!(field(&locked, "blake3"), fixture.blake3(), "{name}");
        assert_eq!(
            field(&locked, "url"),
            format!("{repo}/{}", fixture.file_name()),
            "{name}"
        );
    }
    assert_eq!(server.count("/alloy-1.1.2.tgz"), 1);
    assert_eq!(
        server.count("/alloy-1.1.1.tgz"),
        0,
        "only chosen versions are downloaded"
    );
}

#[test]
fn helm_repo_absolute_chart_urls_are_followed() {
    let files = HttpServer::start();
    let chart = fixture_chart("tempo", "1.24.1");
    files.serve("/releases/tempo-1.24.1.tgz", chart.bytes.clone());
    let index = HttpServer::start();
    let files_url = files.url();
    index.serve(
        "/index.yaml",
        charts::index_yaml_with(
            std::slice::from_ref(&chart),
            |c| format!("{files_url}/releases/{}", c.file_name()),
            |c| c.sha256_hex(),
        ),
    );
    let stack = TestStack::with_inputs(&repo_chart("tempo", &index.url(), "1.24.1"));

    stack.lock(&[]).success();

    let locked = stack.locked_chart("tempo");
    assert_eq!(
        field(&locked, "url"),
        format!("{files_url}/releases/tempo-1.24.1.tgz")
    );
    assert_eq!(field(&locked, "blake3"), chart.blake3());
    assert_eq!(files.count("/releases/tempo-1.24.1.tgz"), 1);
}

#[test]
fn helm_repo_chart_missing_from_the_index_is_an_error_naming_it() {
    let server = fixture_helm_repo();
    let stack = TestStack::with_inputs(&repo_chart("loki", &server.url(), "6.49.0"));

    stack.lock(&[]).code(2).mentions(&["loki"]);
    assert!(!stack.exists("stack.lock"));
}

/// Helm's own test indexes write `digest: "sha256:<hex>"`; Helm tolerates the prefix, so must the lock
/// (and record the digest in one form).
#[test]
fn helm_index_digest_with_a_sha256_prefix_is_accepted() {
    let chart = fixture_chart("tempo", "1.24.0");
    let server = HttpServer::start();
    server.serve(
        "/index.yaml",
        charts::index_yaml_with(
            std::slice::from_ref(&chart),
            |c| c.file_name(),
            |c| format!("\"sha256:{}\"", c.sha256_hex()),
        ),
    );
    server.serve("/tempo-1.24.0.tgz", chart.bytes.clone());
    let stack = TestStack::with_inputs(&repo_chart("tempo", &server.url(), "1.24.0"));

    stack.lock(&[]).success();

    assert_eq!(
        field(&stack.locked_chart("tempo"), "digest"),
        chart.sha256()
    );
}

/// Helm's own index fixture (pkg/repo/testdata/local-index.yaml) has an entry with no `urls`: Helm says
/// "has no downloadable URLs"; a lock must fail the same way, naming the chart.
#[test]
fn helm_index_entry_without_urls_is_an_error_naming_the_chart() {
    let server = HttpServer::start();
    server.serve(
        "/index.yaml",
        support::upstream::bytes("helm-index/local-index.yaml"),
    );
    let stack = TestStack::with_inputs(&repo_chart_named(
        "no-url",
        "https://charts.helm.sh/stable",
        "chartWithNoURL",
        "1.0.0",
    ));

    stack
        .lock(&[
            "--mirror",
            &format!("https://charts.helm.sh/stable={}", server.url()),
        ])
        .code(2)
        .mentions(&["chartWithNoURL"])
        .mentions_any(&["url"]);
    assert!(!stack.exists("stack.lock"));
}
