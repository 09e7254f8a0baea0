//! `stack lock` and the cache: a re-lock downloads no content, `--update` revalidates with `If-None-Match`,
//! `--offline` answers from the cache or names what is missing.

use crate::lock::{
    canonical_inputs, content_fetches, dashboard_server, fixture_helm_repo,
    registry_with_loki_and_vm, repo_chart, two_oci_charts, url_dashboard, Upstreams,
};
use crate::support::TestStack;

#[test]
fn relock_with_nothing_changed_downloads_no_content_and_writes_nothing() {
    let Some(registry) = registry_with_loki_and_vm() else {
        return;
    };
    let helm = fixture_helm_repo();
    let dashboards = dashboard_server(&["etcd.json"]);
    let stack = TestStack::with_inputs(&format!(
        "{}{}{}",
        two_oci_charts(&registry),
        repo_chart("alloy", &helm.url(), "~1.1"),
        url_dashboard("etcd", &format!("{}/etcd.json", dashboards.url())),
    ));
    stack.lock(&[]).success();
    let state = stack.locked_state();
    let blob_downloads = registry.blob_downloads();
    assert!(blob_downloads >= 2, "{}", registry.log());
    let lock_mtime = fs_err::metadata(stack.root().join("stack.lock"))
        .unwrap()
        .modified()
        .unwrap();
    helm.clear_log();
    dashboards.clear_log();

    stack.lock(&[]).success();

    assert_eq!(content_fetches(&helm), Vec::<String>::new());
    assert_eq!(content_fetches(&dashboards), Vec::<String>::new());
    assert_eq!(
        registry.blob_downloads(),
        blob_downloads,
        "chart layers were downloaded again"
    );
    assert_eq!(stack.locked_state(), state);
    let mtime_after = fs_err::metadata(stack.root().join("stack.lock"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        mtime_after, lock_mtime,
        "stack.lock was rewritten although nothing changed"
    );
}

#[test]
fn update_revalidates_the_index_with_if_none_match_and_reuses_cached_content() {
    let helm = fixture_helm_repo();
    let stack = TestStack::with_inputs(&repo_chart("alloy", &helm.url(), "~1.1"));
    stack.lock(&[]).success();
    let first = helm.requests_to("/index.yaml");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].status, 200);
    assert_eq!(first[0].if_none_match(), None);
    helm.clear_log();

    stack.lock(&["--update"]).success();

    let second = helm.requests_to("/index.yaml");
    assert_eq!(second.len(), 1, "{second:#?}");
    assert!(
        second[0].if_none_match().is_some(),
        "no If-None-Match on the second index request: {second:#?}"
    );
    assert_eq!(second[0].status, 304);
    assert_eq!(
        helm.count("/alloy-1.1.2.tgz"),
        0,
        "the archive was downloaded again although it is in the cache"
    );
}

#[test]
fn offline_lock_resolves_from_the_cache_when_every_server_is_gone() {
    let Some(up) = Upstreams::start() else { return };
    let args: Vec<String> = up.mirror_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let online = TestStack::with_inputs(&canonical_inputs());
    online.lock(&args).success();
    drop(up);

    // A fresh checkout of the same stack.toml, sharing the cache, with nothing to reach (the mirror
    // flags stay the same: the command is the same one, plus --offline).
    let mut offline = TestStack::with_inputs(&canonical_inputs());
    offline.set_cache_dir(online.cache_dir());
    let mut offline_args = vec!["--offline"];
    offline_args.extend(&args);
    offline.lock(&offline_args).success();

    assert_eq!(offline.lock_text(), online.lock_text());
    assert_eq!(offline.locked_state(), online.locked_state());
}

#[test]
fn offline_on_a_cold_cache_fails_naming_what_is_missing() {
    let helm = fixture_helm_repo();
    let stack = TestStack::with_inputs(&repo_chart("alloy", &helm.url(), "1.1.2"));

    stack
        .lock(&["--offline"])
        .code(2)
        .mentions(&["alloy"])
        .mentions_any(&["offline", "cache"]);

    assert!(
        helm.requests().is_empty(),
        "--offline made requests: {:#?}",
        helm.requests()
    );
    assert!(!stack.exists("stack.lock"));
}
