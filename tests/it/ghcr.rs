//! `stack lock` against a registry that behaves like ghcr.io, through the real binary: Debian's
//! `docker-registry` behind [`GhcrProxy`] (anonymous bearer tokens from a realm, lexically sorted tag pages
//! of `n` after `last` with `Link` headers), reached with `--mirror ghcr.io=127.0.0.1:<proxy port>` from a
//! stack.toml that names `oci://ghcr.io/…` as users write it.

use crate::support::charts::{fixture_chart, fixture_versions, runtime_chart};
use crate::support::ghcr::GhcrProxy;
use crate::support::registry::{registry, PASSWORD, USER};
use crate::support::stack::{field, oci_chart};
use crate::support::TestStack;

/// Every `/v2/<repository>/…` request the proxy served (200) carried a token it issued: nothing reached
/// the registry without the token flow.
#[track_caller]
fn assert_served_only_with_issued_tokens(proxy: &GhcrProxy) {
    let issued = proxy.issued_tokens();
    let served: Vec<_> = proxy
        .registry_requests()
        .into_iter()
        .filter(|r| r.status == 200 && r.path.len() > "/v2/".len())
        .collect();
    assert!(
        !served.is_empty(),
        "nothing was served: {:#?}",
        proxy.requests()
    );
    for r in served {
        let token = r.bearer_token().unwrap_or_else(|| {
            panic!(
                "{} {} was served without a bearer token",
                r.method, r.target
            )
        });
        assert!(issued.iter().any(|t| t == token), "{r:#?}");
    }
}

const LOKI: &str = "grafana/helm-charts/loki";

/// The token flow happened: a challenge, then the realm asked anonymously (no credentials) for the pull
/// scope of each of `repositories` and of nothing else.
#[track_caller]
fn assert_anonymous_token_flow(proxy: &GhcrProxy, repositories: &[&str]) {
    assert!(
        !proxy.challenges().is_empty(),
        "no request was challenged: {:#?}",
        proxy.requests()
    );
    let tokens = proxy.token_requests();
    assert!(
        !tokens.is_empty(),
        "no token request: {:#?}",
        proxy.requests()
    );
    let scopes: std::collections::BTreeSet<String> = tokens
        .iter()
        .filter_map(|t| t.query_value("scope"))
        .map(str::to_string)
        .collect();
    let wanted: std::collections::BTreeSet<String> = repositories
        .iter()
        .map(|r| format!("repository:{r}:pull"))
        .collect();
    assert_eq!(scopes, wanted, "{tokens:#?}");
    for t in &tokens {
        assert_eq!(t.status, 200, "{t:#?}");
        assert_eq!(t.query_value("service"), Some("ghcr.io"), "{t:#?}");
        assert!(
            t.header("authorization").is_none(),
            "an anonymous token request carried credentials: {t:#?}"
        );
    }
}

/// The lock records `loki` and `loki-range` at their versions and the registry's digests, `vm` too, all
/// under their canonical `oci://ghcr.io/…` sources: no mirror address, no token, in the lock or any file.
#[track_caller]
fn assert_locked_with_canonical_sources(
    stack: &TestStack,
    proxy: &GhcrProxy,
    digests: &std::collections::BTreeMap<String, String>,
    vm: &str,
    vm_digest: &str,
) {
    let canonical = format!("oci://ghcr.io/{LOKI}");
    let chart = fixture_chart("loki", "6.49.0");
    for (name, version) in [("loki", "6.49.0"), ("loki-range", "6.48.0")] {
        let locked = stack.locked_chart(name);
        assert_eq!(field(&locked, "source"), canonical, "{name}");
        assert_eq!(field(&locked, "version"), version, "{name}");
        assert_eq!(field(&locked, "digest"), digests[version], "{name}");
    }
    assert_eq!(
        field(&stack.locked_chart("loki"), "layer_digest"),
        chart.sha256()
    );
    let locked_vm = stack.locked_chart("vm");
    assert_eq!(field(&locked_vm, "source"), format!("oci://ghcr.io/{vm}"));
    assert_eq!(field(&locked_vm, "digest"), vm_digest);
    let lock = stack.lock_text();
    assert!(
        !lock.contains("127.0.0.1"),
        "the lock names the mirror:\n{lock}"
    );
    for token in proxy.issued_tokens() {
        assert!(!lock.contains(&token), "the lock holds a token:\n{lock}");
        stack.assert_no_file_contains(&token);
    }
}

#[test]
fn ghcr_anonymous_bearer_token_flow_locks_with_the_canonical_source() {
    let registry = registry!();
    let mut digests = std::collections::BTreeMap::new();
    for chart in fixture_versions("loki") {
        digests.insert(chart.version.clone(), registry.push_fixture(LOKI, &chart));
    }
    // A second repository on the same registry: tokens are scoped per repository.
    let vm = "victoriametrics/helm-charts/victoria-metrics-k8s-stack";
    let vm_digest =
        registry.push_fixture(vm, &fixture_chart("victoria-metrics-k8s-stack", "0.45.0"));
    let proxy = GhcrProxy::start(&registry);
    let canonical = format!("oci://ghcr.io/{LOKI}");
    let stack = TestStack::with_inputs(&format!(
        "{}{}{}",
        oci_chart("loki", &canonical, "6.49.0"),
        oci_chart("loki-range", &canonical, "~6.48"),
        oci_chart("vm", &format!("oci://ghcr.io/{vm}"), "0.45.0"),
    ));

    stack.lock(&["--mirror", &proxy.mirror_arg()]).success();

    assert_anonymous_token_flow(&proxy, &[LOKI, vm]);
    assert_served_only_with_issued_tokens(&proxy);
    let chart = fixture_chart("loki", "6.49.0");
    assert!(
        proxy
            .registry_requests()
            .iter()
            .any(|r| r.status == 200 && r.path == format!("/v2/{LOKI}/blobs/{}", chart.sha256())),
        "the chart layer came through the proxy: {:#?}",
        proxy.requests()
    );

    assert_locked_with_canonical_sources(&stack, &proxy, &digests, vm, &vm_digest);
}

/// ghcr sends at most `n` tags a page, in byte order, after `last`. The versions are chosen so byte
/// order and version order disagree (`1.10.0` < `1.9.0`): the highest version a range accepts is on the
/// last page, the highest of all on a middle one. The proxy caps pages at 2 whatever `n` asks for, so a
/// client that reads one page, or stops early, picks the wrong version.
#[test]
fn ghcr_tag_pages_are_all_read_and_the_highest_match_wins() {
    let registry = registry!();
    let repo = "example/charts/demo";
    let versions = [
        "1.7.0", "1.8.0", "1.9.0", "1.9.1", "1.10.0", "1.11.0", "1.12.0",
    ];
    let mut digests = std::collections::BTreeMap::new();
    for v in versions {
        let chart = runtime_chart("demo", v, "");
        digests.insert(v, registry.push_chart(repo, v, &chart.bytes));
    }
    let proxy = GhcrProxy::start(&registry);
    proxy.set_page_size(2).set_max_page_size(2);
    let canonical = format!("oci://ghcr.io/{repo}");
    let stack = TestStack::with_inputs(&format!(
        "{}{}",
        oci_chart("below-1-10", &canonical, ">=1.7, <1.10"),
        oci_chart("newest", &canonical, "^1"),
    ));

    stack.lock(&["--mirror", &proxy.mirror_arg()]).success();

    for (name, version) in [("below-1-10", "1.9.1"), ("newest", "1.12.0")] {
        let locked = stack.locked_chart(name);
        assert_eq!(field(&locked, "version"), version, "{name}");
        assert_eq!(field(&locked, "digest"), digests[version], "{name}");
        assert_eq!(field(&locked, "source"), canonical, "{name}");
    }
    let pages = proxy.tag_pages(repo);
    let served: std::collections::BTreeSet<String> = pages
        .iter()
        .flat_map(|p| p.page.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        served.len(),
        versions.len(),
        "every tag was fetched: {pages:#?}"
    );
    assert!(
        pages.len() >= 4,
        "7 tags in pages of 2 take at least 4 pages, got {}: {pages:#?}",
        pages.len()
    );
    assert!(
        pages.iter().any(|p| p.query_value("last") == Some("1.9.0")
            && p.page.as_deref() == Some(&["1.9.1".to_string()][..])),
        "the last page (1.9.1, after 1.9.0) was fetched: {pages:#?}"
    );
    assert!(pages.iter().all(|p| p.page.as_ref().unwrap().len() <= 2));
    assert_served_only_with_issued_tokens(&proxy);

    // The remote check pages the same way: nothing newer, then a 1.9.2 that sorts last of all.
    let mirror = proxy.mirror_arg();
    stack
        .lock(&["--check", "--remote", "--mirror", &mirror])
        .code(0);
    let before = stack.locked_state();
    let newer = runtime_chart("demo", "1.9.2", "");
    let newer_digest = registry.push_chart(repo, "1.9.2", &newer.bytes);
    stack
        .lock(&["--check", "--remote", "--mirror", &mirror])
        .code(1)
        .mentions(&["below-1-10", "1.9.2"]);
    assert_eq!(stack.locked_state(), before);
    stack
        .lock(&["--update", "below-1-10", "--mirror", &mirror])
        .success();
    let locked = stack.locked_chart("below-1-10");
    assert_eq!(field(&locked, "version"), "1.9.2");
    assert_eq!(field(&locked, "digest"), newer_digest);
    assert_eq!(field(&stack.locked_chart("newest"), "version"), "1.12.0");
}

/// A private package: ghcr's token endpoint wants Basic credentials; STACK_REGISTRY_AUTH for the host
/// contacted (the proxy) gives them. The password goes to the realm only, never to `/v2/`, and is never
/// shown or written.
#[test]
fn ghcr_token_request_carries_stack_registry_auth_and_the_password_never_shows() {
    let registry = registry!();
    let digest = registry.push_fixture(LOKI, &fixture_chart("loki", "6.49.0"));
    let proxy = GhcrProxy::start(&registry);
    proxy.require_basic_auth(USER, PASSWORD);
    let canonical = format!("oci://ghcr.io/{LOKI}");
    let mut stack = TestStack::with_inputs(&oci_chart("loki", &canonical, "6.49.0"));
    stack.env(
        "STACK_REGISTRY_AUTH",
        &format!("{}={USER}:{PASSWORD}", proxy.host()),
    );

    stack
        .lock(&["--mirror", &proxy.mirror_arg()])
        .success()
        .never_shows(PASSWORD);

    let tokens = proxy.token_requests();
    assert!(
        !tokens.is_empty(),
        "no token request: {:#?}",
        proxy.requests()
    );
    for t in &tokens {
        assert_eq!(
            t.basic_credentials(),
            Some((USER.to_string(), PASSWORD.to_string())),
            "{t:#?}"
        );
        assert_eq!(t.status, 200, "{t:#?}");
        assert_eq!(
            t.query_value("scope"),
            Some(format!("repository:{LOKI}:pull").as_str())
        );
    }
    for r in proxy.registry_requests() {
        assert!(
            r.basic_credentials().is_none(),
            "the password was sent to {} {}",
            r.method,
            r.target
        );
    }
    assert_served_only_with_issued_tokens(&proxy);
    let locked = stack.locked_chart("loki");
    assert_eq!(field(&locked, "source"), canonical);
    assert_eq!(field(&locked, "digest"), digest);
    let lock = stack.lock_text();
    assert!(!lock.contains(USER), "{lock}");
    stack.assert_no_file_contains(PASSWORD);
}

/// ghcr answers a blob GET with a 307 to its blob storage on another host: the chart is fetched from
/// there, verified as usual, and the bearer token stays with the registry.
#[test]
fn ghcr_blob_redirect_to_storage_is_followed_without_the_token() {
    let registry = registry!();
    let chart = fixture_chart("loki", "6.49.0");
    let digest = registry.push_fixture(LOKI, &chart);
    let proxy = GhcrProxy::start(&registry);
    proxy.redirect_blobs(true);
    let stack = TestStack::with_inputs(&oci_chart(
        "loki",
        &format!("oci://ghcr.io/{LOKI}"),
        "6.49.0",
    ));

    stack.lock(&["--mirror", &proxy.mirror_arg()]).success();

    let blob_path = format!("/v2/{LOKI}/blobs/{}", chart.sha256());
    assert!(
        proxy
            .registry_requests()
            .iter()
            .any(|r| r.path == blob_path && r.status == 307),
        "{:#?}",
        proxy.requests()
    );
    let stored = proxy.storage_requests();
    assert_eq!(stored.len(), 1, "{:#?}", proxy.requests());
    assert_eq!(stored[0].status, 200);
    assert!(
        stored[0].header("authorization").is_none(),
        "the token went to blob storage on another host: {:#?}",
        stored[0]
    );
    let locked = stack.locked_chart("loki");
    assert_eq!(field(&locked, "digest"), digest);
    assert_eq!(field(&locked, "layer_digest"), chart.sha256());
    assert_eq!(field(&locked, "blake3"), chart.blake3());
}

#[test]
fn ghcr_token_endpoint_refusing_the_password_fails_without_showing_it() {
    let registry = registry!();
    registry.push_fixture(LOKI, &fixture_chart("loki", "6.49.0"));
    let proxy = GhcrProxy::start(&registry);
    proxy.require_basic_auth(USER, PASSWORD);
    let wrong = "wrong-password-5be1d";
    let mut stack = TestStack::with_inputs(&oci_chart(
        "loki",
        &format!("oci://ghcr.io/{LOKI}"),
        "6.49.0",
    ));
    stack.env(
        "STACK_REGISTRY_AUTH",
        &format!("{}={USER}:{wrong}", proxy.host()),
    );

    stack
        .lock(&["--mirror", &proxy.mirror_arg()])
        .code(2)
        .never_shows(wrong)
        .never_shows(PASSWORD)
        .mentions(&["loki"])
        .mentions_any(&["credentials", "unauthorized", "401", "denied"]);

    assert!(!stack.exists("stack.lock"));
    assert!(proxy
        .token_requests()
        .iter()
        .all(|t| t.status == 401 && t.basic_credentials().is_some()));
    stack.assert_no_file_contains(wrong);
}

#[test]
fn ghcr_private_package_without_credentials_says_how_to_give_them() {
    let registry = registry!();
    registry.push_fixture(LOKI, &fixture_chart("loki", "6.49.0"));
    let proxy = GhcrProxy::start(&registry);
    proxy.require_basic_auth(USER, PASSWORD);
    let stack = TestStack::with_inputs(&oci_chart(
        "loki",
        &format!("oci://ghcr.io/{LOKI}"),
        "6.49.0",
    ));

    stack
        .lock(&["--mirror", &proxy.mirror_arg()])
        .code(2)
        .mentions(&["loki"])
        .mentions_any(&["STACK_REGISTRY_AUTH", "docker login"]);
    assert!(!stack.exists("stack.lock"));
    assert!(!proxy.token_requests().is_empty());
}

/// A registry whose pages are smaller than the client asks for (this proxy caps them at 1 tag; registries
/// that cap `n` at 100 do the same at a larger scale) must still be listed to the end; a resolver
/// must never pin from a partial list. 101 tags in byte order put
/// `1.0.99`, the highest version below 1.0.100, on page 101.
#[test]
fn ghcr_tag_listing_is_never_silently_cut_short() {
    let registry = registry!();
    let repo = "example/charts/many";
    let chart = runtime_chart("many", "1.0.0", "");
    let (config, manifest) = crate::support::registry::chart_manifest(&chart.bytes);
    registry.push_blob(repo, &config);
    registry.push_blob(repo, &chart.bytes);
    for patch in 0..=100 {
        registry.push_raw_manifest(
            repo,
            &format!("1.0.{patch}"),
            crate::support::registry::OCI_MANIFEST,
            &manifest,
        );
    }
    // The tag that is pinned holds its own version (the lock refuses a Chart.yaml of another version).
    let pinned = runtime_chart("many", "1.0.99", "");
    let (config, manifest) = crate::support::registry::chart_manifest(&pinned.bytes);
    registry.push_blob(repo, &config);
    registry.push_blob(repo, &pinned.bytes);
    registry.push_raw_manifest(
        repo,
        "1.0.99",
        crate::support::registry::OCI_MANIFEST,
        &manifest,
    );
    let proxy = GhcrProxy::start(&registry);
    proxy.set_page_size(1).set_max_page_size(1);
    let stack = TestStack::with_inputs(&oci_chart(
        "many",
        &format!("oci://ghcr.io/{repo}"),
        "<1.0.100",
    ));

    let out = stack.lock(&["--mirror", &proxy.mirror_arg()]);

    let pages = proxy.tag_pages(repo).len();
    out.success();
    assert_eq!(
        field(&stack.locked_chart("many"), "version"),
        "1.0.99",
        "pinned from a partial tag list ({pages} pages read)"
    );
    assert!(pages >= 101, "only {pages} tag pages read");
}
