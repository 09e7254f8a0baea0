//! `lock()` end to end against a loopback HTTP server: first lock, stickiness, offline, removals.

use super::*;
use crate::digest;
use crate::http::test_server::{ok, serve_routes, status, Server};
use crate::source::{Mirrors, Net};
use crate::store::Store;

const CHART: &[u8] = b"pretend this is alloy-1.1.2.tgz";
const CHART_OLD: &[u8] = b"pretend this is alloy-1.1.1.tgz";
const GRAFANA_META: &[u8] =
    br#"{"id": 15757, "name": "Kubernetes / Views / Global", "revision": 43}"#;
const GRAFANA_JSON: &[u8] = br#"{"title": "Kubernetes / Views / Global", "panels": []}"#;
const FLUX_JSON: &[u8] = br#"{"title": "Flux Cluster Stats", "panels": []}"#;

fn index(chart_digest: &str) -> Vec<u8> {
    format!(
        "apiVersion: v1\nentries:\n  alloy:\n    - version: 1.1.1\n      urls: [alloy-1.1.1.tgz]\n      digest: {}\n    - version: 1.1.2\n      urls: [alloy-1.1.2.tgz]\n      digest: {chart_digest}\n    - not-an-entry\n",
        &digest::sha256(CHART_OLD)["sha256:".len()..]
    )
    .into_bytes()
}

const INPUTS: &str = r#"
[stack]
name = "t"
flux = { source = { kind = "GitRepository", name = "flux-system" }, path = "./k" }

[modules]
enabled = []

[charts.alloy]
repo = "https://charts.example/helm"
version = "~1.1"

[dashboards.kubernetes-global]
grafana_com = 15757

[dashboards.flux-cluster]
url = "https://dash.example/flux/cluster.json"
"#;

struct Fixture {
    server: Server,
    root: tempfile::TempDir,
    cache: tempfile::TempDir,
    manifest: Manifest,
}

impl Fixture {
    fn new(index_answers: Vec<crate::http::test_server::Answer>) -> Fixture {
        let server = serve_routes(vec![
            ("/helm/index.yaml", index_answers),
            ("/helm/alloy-1.1.2.tgz", vec![ok(CHART, "")]),
            ("/api/dashboards/15757", vec![ok(GRAFANA_META, "")]),
            (
                "/api/dashboards/15757/revisions/43/download",
                vec![ok(GRAFANA_JSON, "")],
            ),
            ("/flux/cluster.json", vec![ok(FLUX_JSON, "")]),
        ]);
        Fixture {
            server,
            root: tempfile::tempdir().unwrap(),
            cache: tempfile::tempdir().unwrap(),
            manifest: Manifest::parse(INPUTS).unwrap(),
        }
    }

    fn mirrors(&self) -> Mirrors {
        let b = &self.server.base;
        let flags = [
            format!("https://charts.example={b}"),
            format!("https://grafana.com={b}"),
            format!("https://dash.example={b}"),
        ];
        Mirrors::new(&BTreeMap::new(), &flags).unwrap()
    }

    fn run(
        &self,
        old: Option<&Lock>,
        update: Update,
        offline: bool,
    ) -> Result<Outcome, ResolveError> {
        let store = Store::at(self.cache.path().to_path_buf());
        let mirrors = self.mirrors();
        let http = crate::http::Http::for_tests();
        let net = Net::new(
            http,
            Default::default(),
            mirrors.clone(),
            store.clone(),
            vec![],
        )
        .unwrap();
        let access = if offline {
            Access::Offline {
                store: &store,
                mirrors: &mirrors,
            }
        } else {
            Access::Online(&net)
        };
        let options = Options {
            update,
            progress: false,
            unshipped: BTreeSet::new(),
            accept_changed: BTreeSet::new(),
            staging: None,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(lock(
            self.root.path(),
            &self.manifest,
            old,
            access,
            &options,
        ))
    }

    /// Writes an outcome as `stack lock` would.
    fn commit(&self, outcome: &Outcome) {
        let guard = crate::transaction::guard(self.root.path()).unwrap();
        let mut txn = crate::transaction::Transaction::begin(&guard).unwrap();
        for (path, bytes) in &outcome.writes {
            txn.write(path, bytes).unwrap();
        }
        for path in &outcome.deletes {
            txn.delete(path).unwrap();
        }
        txn.write("stack.lock", outcome.lock.to_toml().as_bytes())
            .unwrap();
        txn.commit().unwrap();
    }

    fn requests(&self) -> usize {
        self.server.requests.lock().unwrap().len()
    }
}

fn chart_digest_hex() -> String {
    digest::sha256(CHART)["sha256:".len()..].to_string()
}

#[test]
fn first_lock_pins_everything_then_relock_is_sticky_and_offline_agrees() {
    let fx = Fixture::new(vec![
        ok(&index(&chart_digest_hex()), "ETag: \"v1\"\r\n"),
        status(304, ""),
    ]);
    let first = fx.run(None, Update::Sticky, false).unwrap();
    first_lock_pins_everything(&first);
    fx.commit(&first);
    assert_eq!(fx.server.count("/helm/alloy-1.1.1.tgz"), 0);
    let lock =
        Lock::parse(&fs_err::read_to_string(fx.root.path().join("stack.lock")).unwrap()).unwrap();
    relock_is_sticky(&fx, &lock);
    update_revalidates_the_index_and_reuses_the_archive(&fx, &lock);
    a_deleted_vendored_file_comes_back_from_the_cache(&fx, &lock);
    offline_from_a_fresh_checkout_agrees(fx, &lock);
}

/// The first lock: every entry pinned, the dashboards vendored, the change table.
fn first_lock_pins_everything(first: &Outcome) {
    let alloy = &first.lock.charts()[&"alloy".parse().unwrap()];
    assert_eq!(alloy.version, "1.1.2");
    assert_eq!(alloy.source, "https://charts.example/helm#alloy");
    assert_eq!(
        alloy.url.as_deref(),
        Some("https://charts.example/helm/alloy-1.1.2.tgz")
    );
    assert_eq!(alloy.digest, digest::sha256(CHART));
    assert_eq!(alloy.blake3, digest::blake3(CHART));
    let global = &first.lock.dashboards()[&"kubernetes-global".parse().unwrap()];
    assert_eq!(
        (global.revision, global.title.as_str()),
        (Some(43), "Kubernetes / Views / Global")
    );
    assert_eq!(global.source, "https://grafana.com/api/dashboards/15757");
    assert_eq!(
        first.lock.dashboards()[&"flux-cluster".parse().unwrap()].title,
        "Flux Cluster Stats"
    );
    assert_eq!(
        first.writes["vendor/dashboards/kubernetes-global.json"],
        GRAFANA_JSON
    );
    assert_eq!(
        first.writes["vendor/dashboards/flux-cluster.json"],
        FLUX_JSON
    );
    // The index's bad entry, and the stand-in archive bytes (not a .tgz) whose defaults are not vendored.
    assert_eq!(first.warnings.len(), 2, "{:?}", first.warnings);
    assert!(first.warnings[1].contains("default values are not vendored"));
    let table: Vec<String> = first
        .changes
        .iter()
        .map(|c| c.to_string().trim_start().to_string())
        .collect();
    assert_eq!(
        table,
        [
            "Adding alloy 1.1.2",
            "Adding flux-cluster \"Flux Cluster Stats\"",
            "Adding kubernetes-global revision 43 \"Kubernetes / Views / Global\""
        ]
    );
}

/// Sticky: nothing is asked, nothing changes.
fn relock_is_sticky(fx: &Fixture, lock: &Lock) {
    let before = fx.requests();
    let again = fx.run(Some(lock), Update::Sticky, false).unwrap();
    assert_eq!(
        fx.requests(),
        before,
        "a sticky re-lock went to the network"
    );
    assert_eq!(&again.lock, lock);
    assert!(again.writes.is_empty() && again.deletes.is_empty() && again.changes.is_empty());
}

/// --update: the index is revalidated (304) and the cached archive reused.
fn update_revalidates_the_index_and_reuses_the_archive(fx: &Fixture, lock: &Lock) {
    let updated = fx.run(Some(lock), Update::All, false).unwrap();
    assert_eq!(&updated.lock, lock);
    assert_eq!(fx.server.count("/helm/index.yaml"), 2);
    let revalidation = fx
        .server
        .requests
        .lock()
        .unwrap()
        .iter()
        .rfind(|head| head.starts_with("GET /helm/index.yaml "))
        .cloned()
        .expect("index.yaml was asked for");
    assert!(
        revalidation
            .to_ascii_lowercase()
            .contains("if-none-match: \"v1\""),
        "the second index request did not revalidate: {revalidation}"
    );
    assert_eq!(
        fx.server.count("/helm/alloy-1.1.2.tgz"),
        1,
        "the cached archive was downloaded again"
    );
}

/// A vendored file deleted by hand comes back from the cache, without the network.
fn a_deleted_vendored_file_comes_back_from_the_cache(fx: &Fixture, lock: &Lock) {
    fs_err::remove_file(fx.root.path().join("vendor/dashboards/flux-cluster.json")).unwrap();
    let before = fx.requests();
    let restored = fx.run(Some(lock), Update::Sticky, false).unwrap();
    assert_eq!(fx.requests(), before);
    assert_eq!(
        restored.writes.keys().collect::<Vec<_>>(),
        ["vendor/dashboards/flux-cluster.json"]
    );
    assert!(
        restored.changes[0]
            .to_string()
            .contains("Restoring flux-cluster"),
        "{:?}",
        restored.changes
    );
}

/// Offline, from a fresh checkout (no lock, no vendor/), the cache alone gives the same lock.
fn offline_from_a_fresh_checkout_agrees(fx: Fixture, lock: &Lock) {
    let fresh = Fixture {
        root: tempfile::tempdir().unwrap(),
        ..fx
    };
    let before = fresh.requests();
    let offline = fresh.run(None, Update::Sticky, true).unwrap();
    assert_eq!(fresh.requests(), before);
    assert_eq!(&offline.lock, lock);
    assert_eq!(offline.writes.len(), 2);
}

#[test]
fn content_changed_under_the_same_version_is_refused_even_with_update() {
    let other = digest::sha256(b"republished")["sha256:".len()..].to_string();
    let fx = Fixture::new(vec![
        ok(&index(&chart_digest_hex()), ""),
        ok(&index(&other), ""),
    ]);
    let first = fx.run(None, Update::Sticky, false).unwrap();
    fx.commit(&first);
    let err = fx
        .run(
            Some(&first.lock),
            Update::Only(["alloy".to_string()].into()),
            false,
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("chart `alloy`: upstream content changed under the same version 1.1.2"),
        "{err}"
    );
    assert!(
        err.contains(&other) && err.contains("Nothing was re-pinned"),
        "{err}"
    );
}

#[test]
fn sticky_pin_whose_upstream_bytes_changed_fails_on_a_cold_cache() {
    let fx = Fixture::new(vec![ok(&index(&chart_digest_hex()), "")]);
    let first = fx.run(None, Update::Sticky, false).unwrap();
    fx.commit(&first);
    let cold = Fixture {
        cache: tempfile::tempdir().unwrap(),
        root: tempfile::tempdir().unwrap(),
        server: serve_routes(vec![(
            "/flux/cluster.json",
            vec![ok(br#"{"title": "Changed", "panels": []}"#, "")],
        )]),
        manifest: Manifest::parse(&format!(
            "{}\n[dashboards.flux-cluster]\nurl = \"https://dash.example/flux/cluster.json\"\n",
            &INPUTS[..INPUTS.find("[charts.alloy]").unwrap()]
        ))
        .unwrap(),
    };
    let lock = Lock::new(
        first.lock.fingerprint().to_string(),
        [],
        first
            .lock
            .dashboards()
            .values()
            .filter(|d| d.name.as_str() == "flux-cluster")
            .cloned(),
    )
    .unwrap();
    let err = cold
        .run(Some(&lock), Update::Sticky, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dashboard `flux-cluster`: upstream content changed"),
        "{err}"
    );
}

#[test]
fn offline_on_a_cold_cache_names_what_is_missing_and_asks_nothing() {
    let fx = Fixture::new(vec![ok(&index(&chart_digest_hex()), "")]);
    let err = fx.run(None, Update::Sticky, true).unwrap_err().to_string();
    // Each input runs straight through, so every one that cannot be locked is named, the URL
    // dashboard (which needs no resolving) included.
    assert!(err.contains("3 inputs failed"), "{err}");
    assert!(
        err.contains("chart `alloy`")
            && err.contains("dashboard `flux-cluster`")
            && err.contains("without --offline"),
        "{err}"
    );
    assert_eq!(fx.requests(), 0);
}

#[test]
fn unknown_update_name_is_an_error() {
    let fx = Fixture::new(vec![ok(&index(&chart_digest_hex()), "")]);
    let err = fx
        .run(None, Update::Only(["lokii".to_string()].into()), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--update lokii"), "{err}");
}

#[test]
fn removed_inputs_leave_the_lock_and_vendor() {
    let fx = Fixture::new(vec![ok(&index(&chart_digest_hex()), "")]);
    let first = fx.run(None, Update::Sticky, false).unwrap();
    fx.commit(&first);
    let fewer = Fixture {
        manifest: Manifest::parse(&INPUTS.replace(
            "[dashboards.flux-cluster]\nurl = \"https://dash.example/flux/cluster.json\"\n",
            "",
        ))
        .unwrap(),
        ..fx
    };
    let out = fewer.run(Some(&first.lock), Update::Sticky, false).unwrap();
    assert_eq!(
        out.deletes.iter().collect::<Vec<_>>(),
        ["vendor/dashboards/flux-cluster.json"]
    );
    assert_eq!(out.changes.len(), 1);
    assert_eq!(
        out.changes[0].to_string(),
        "    Removing flux-cluster \"Flux Cluster Stats\""
    );
}

/// An index.yaml that answers 304 is not parsed again: the wanted entries remembered under its blake3
/// are read instead (issue 15). Offline, the same.
#[test]
fn an_index_answering_304_is_not_parsed_again() {
    use crate::source::helm_repo::index_parses as parses;
    let fx = Fixture::new(vec![
        ok(&index(&chart_digest_hex()), "ETag: \"v1\"\r\n"),
        status(304, ""),
    ]);
    let before = parses();
    let first = fx.run(None, Update::All, false).unwrap();
    assert_eq!(parses() - before, 1, "the first answer is parsed");
    let again = fx.run(Some(&first.lock), Update::All, false).unwrap();
    assert_eq!(fx.server.count("/helm/index.yaml"), 2);
    assert_eq!(parses() - before, 1, "the 304 answer was parsed again");
    assert_eq!(again.lock, first.lock);
    let offline = fx.run(None, Update::All, true).unwrap();
    assert_eq!(
        parses() - before,
        1,
        "the cached index was parsed again offline"
    );
    assert_eq!(offline.lock, first.lock);
}

/// A cache written in a previous format (here: the `http` and `blobs` buckets renamed to their previous
/// version's folders) is not used: offline there is nothing to lock from, and online everything is fetched
/// again, unconditionally.
#[test]
fn a_cache_of_a_previous_bucket_version_is_ignored_and_refetched() {
    use crate::store::Bucket;
    let fx = Fixture::new(vec![ok(&index(&chart_digest_hex()), "ETag: \"v1\"\r\n")]);
    let first = fx.run(None, Update::Sticky, false).unwrap();
    for bucket in [Bucket::Http, Bucket::Blobs, Bucket::HelmIndex] {
        let current = fx.cache.path().join(bucket.folder());
        let previous = fx.cache.path().join(bucket.folder_at(bucket.version() - 1));
        fs_err::rename(current, previous).unwrap();
    }
    let err = fx.run(None, Update::Sticky, true).unwrap_err().to_string();
    assert!(err.contains("3 inputs failed"), "{err}");
    let before = fx.requests();
    let again = fx.run(None, Update::Sticky, false).unwrap();
    assert_eq!(again.lock, first.lock);
    let heads = fx.server.requests.lock().unwrap()[before..].to_vec();
    assert_eq!(heads.len(), 5, "{heads:#?}");
    assert!(
        heads
            .iter()
            .all(|h| !h.to_ascii_lowercase().contains("if-none-match")),
        "{heads:#?}"
    );
}
