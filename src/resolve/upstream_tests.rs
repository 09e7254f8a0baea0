//! Planning and stickiness against the in-memory upstream (`memory.rs`): which inputs are asked for,
//! and what the next lock pins, with no server in between.

use super::memory::Memory;
use super::*;
use crate::digest;
use crate::store::Store;

const INPUTS: &str = r#"
[stack]
name = "t"
flux = { source = { kind = "GitRepository", name = "flux-system" }, path = "./k" }

[modules]
enabled = []

[charts.alloy]
repo = "https://charts.example/helm"
version = "~1.1"

[dashboards.global]
grafana_com = 15757

[dashboards.flux]
url = "https://dash.example/flux.json"
"#;

fn dashboard(title: &str) -> Vec<u8> {
    format!(r#"{{"title": "{title}", "panels": []}}"#).into_bytes()
}

struct Stack {
    root: tempfile::TempDir,
    cache: tempfile::TempDir,
    upstream: Memory,
    manifest: Manifest,
}

impl Stack {
    fn new() -> Stack {
        let cache = tempfile::tempdir().unwrap();
        let mut upstream = Memory::new(Store::at(cache.path().to_path_buf()));
        for version in ["1.1.0", "1.1.2", "1.2.0"] {
            upstream.publish("alloy", version, format!("alloy {version}").as_bytes());
        }
        upstream
            .grafana
            .insert(15757, BTreeMap::from([(43, dashboard("Global"))]));
        upstream
            .urls
            .insert("https://dash.example/flux.json".into(), dashboard("Flux"));
        Stack {
            root: tempfile::tempdir().unwrap(),
            cache,
            upstream,
            manifest: Manifest::parse(INPUTS).unwrap(),
        }
    }

    fn lock(&self, old: Option<&Lock>, update: Update) -> Result<Outcome, ResolveError> {
        self.lock_accepting(old, update, &[])
    }

    fn lock_accepting(
        &self,
        old: Option<&Lock>,
        update: Update,
        accept: &[&str],
    ) -> Result<Outcome, ResolveError> {
        let options = Options {
            update,
            progress: false,
            unshipped: BTreeSet::new(),
            accept_changed: accept.iter().map(|s| s.to_string()).collect(),
            staging: None,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(lock_with(
            self.root.path(),
            &self.manifest,
            old,
            &self.upstream,
            &options,
        ))
    }

    /// The first lock, with what it asked for taken off the log.
    fn first(&self) -> Lock {
        let lock = self.lock(None, Update::Sticky).unwrap().lock;
        self.upstream.take_asked();
        lock
    }
}

fn version(lock: &Lock, chart: &str) -> String {
    lock.charts()[&chart.parse::<Name>().unwrap()]
        .version
        .clone()
}

fn revision(lock: &Lock, dashboard: &str) -> Option<u64> {
    lock.dashboards()[&dashboard.parse::<Name>().unwrap()].revision
}

#[test]
fn a_first_lock_asks_for_everything_and_pins_the_newest_match() {
    let stack = Stack::new();
    let lock = stack.lock(None, Update::Sticky).unwrap().lock;
    assert_eq!(version(&lock, "alloy"), "1.1.2");
    assert_eq!(revision(&lock, "global"), Some(43));
    let mut asked = stack.upstream.take_asked();
    asked.sort();
    assert_eq!(
        asked,
        [
            "archive alloy 1.1.2",
            "latest 15757",
            "revision 15757 43",
            "url https://dash.example/flux.json",
            "versions alloy",
        ]
    );
}

#[test]
fn a_sticky_pin_is_kept_without_asking_though_upstream_has_newer() {
    let mut stack = Stack::new();
    let first = stack.first();
    stack.upstream.publish("alloy", "1.1.3", b"alloy 1.1.3");
    stack
        .upstream
        .grafana
        .get_mut(&15757)
        .unwrap()
        .insert(44, dashboard("Global v44"));
    let again = stack.lock(Some(&first), Update::Sticky).unwrap();
    assert_eq!(again.lock, first);
    assert_eq!(stack.upstream.take_asked(), Vec::<String>::new());
    // vendor/ was never written here, so its files come back from the cache; no pin moves.
    assert!(
        again
            .changes
            .iter()
            .all(|c| matches!(c, Change::Restored { .. })),
        "{:?}",
        again.changes
    );
}

#[test]
fn update_moves_only_the_named_pins_and_all_of_them_without_names() {
    let mut stack = Stack::new();
    let first = stack.first();
    stack.upstream.publish("alloy", "1.1.3", b"alloy 1.1.3");
    stack
        .upstream
        .grafana
        .get_mut(&15757)
        .unwrap()
        .insert(44, dashboard("Global v44"));
    let only = Update::Only(BTreeSet::from(["global".to_string()]));
    let some = stack.lock(Some(&first), only).unwrap().lock;
    assert_eq!(
        (version(&some, "alloy"), revision(&some, "global")),
        ("1.1.2".to_string(), Some(44))
    );
    assert!(
        !stack
            .upstream
            .take_asked()
            .iter()
            .any(|a| a.contains("alloy")),
        "alloy was asked for though only `global` was updated"
    );
    let all = stack.lock(Some(&some), Update::All).unwrap().lock;
    assert_eq!(version(&all, "alloy"), "1.1.3");
}

#[test]
fn a_widened_range_is_resolved_again_to_its_newest_match() {
    let mut stack = Stack::new();
    let first = stack.first();
    stack.manifest = Manifest::parse(&INPUTS.replace("\"~1.1\"", "\"^1\"")).unwrap();
    let widened = stack.lock(Some(&first), Update::Sticky).unwrap();
    assert_eq!(version(&widened.lock, "alloy"), "1.2.0");
    assert_eq!(
        widened.lock.charts()[&"alloy".parse::<Name>().unwrap()].requirement,
        "^1"
    );
    // Only the chart whose requirement changed is asked for; the dashboards keep their pins.
    let asked = stack.upstream.take_asked();
    assert_eq!(asked, ["versions alloy", "archive alloy 1.2.0"]);
}

#[test]
fn content_changed_under_the_same_version_is_refused_unless_accepted() {
    let mut stack = Stack::new();
    let first = stack.first();
    stack
        .upstream
        .publish("alloy", "1.1.2", b"other bytes, same version");
    let err = stack
        .lock(Some(&first), Update::All)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("chart `alloy`: upstream content changed under the same version 1.1.2"),
        "{err}"
    );
    let accepted = stack
        .lock_accepting(Some(&first), Update::All, &["alloy"])
        .unwrap()
        .lock;
    let alloy = &accepted.charts()[&"alloy".parse::<Name>().unwrap()];
    assert_eq!(alloy.digest, digest::sha256(b"other bytes, same version"));

    // A grafana.com revision's bytes are pinned the same way.
    stack
        .upstream
        .grafana
        .insert(15757, BTreeMap::from([(43, dashboard("Rewritten"))]));
    let err = stack
        .lock(
            Some(&first),
            Update::Only(BTreeSet::from(["global".to_string()])),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "dashboard `global`: upstream content changed under the same grafana.com revision 43"
        ),
        "{err}"
    );
}

#[test]
fn an_archive_whose_digest_the_index_does_not_state_is_locked_unverified() {
    let mut stack = Stack::new();
    stack
        .upstream
        .charts
        .get_mut("alloy")
        .unwrap()
        .get_mut("1.1.2")
        .unwrap()
        .stated = false;
    let lock = stack.lock(None, Update::Sticky).unwrap().lock;
    assert!(lock.charts()[&"alloy".parse::<Name>().unwrap()].unverified);
    stack
        .upstream
        .charts
        .get_mut("alloy")
        .unwrap()
        .get_mut("1.1.2")
        .unwrap()
        .stated = true;
    let verified = stack.lock(Some(&lock), Update::All).unwrap().lock;
    assert!(!verified.charts()[&"alloy".parse::<Name>().unwrap()].unverified);
}

#[test]
fn offline_with_the_cache_a_fresh_checkout_relocks_without_asking() {
    let mut stack = Stack::new();
    let first = stack.first();
    stack.upstream.online = false;
    let fresh = Stack {
        root: tempfile::tempdir().unwrap(),
        ..stack
    };
    let again = fresh.lock(Some(&first), Update::Sticky).unwrap();
    assert_eq!(again.lock, first);
    assert_eq!(
        again.writes.keys().collect::<Vec<_>>(),
        [
            "vendor/dashboards/flux.json",
            "vendor/dashboards/global.json"
        ],
        "vendor/ is restored from the cache"
    );
    assert_eq!(fresh.upstream.take_asked(), Vec::<String>::new());
}

#[test]
fn offline_without_the_cache_names_every_input_it_cannot_restore() {
    let stack = Stack::new();
    let first = stack.first();
    let mut cold = Stack::new();
    cold.upstream.online = false;
    drop(stack.cache);
    let err = cold
        .lock(Some(&first), Update::Sticky)
        .unwrap_err()
        .to_string();
    // The chart keeps its pin (Flux pulls it by digest); the dashboards' bytes are nowhere.
    assert!(err.contains("2 inputs failed"), "{err}");
    assert!(
        err.contains("dashboard `flux`") && err.contains("dashboard `global`"),
        "{err}"
    );
    assert!(err.contains("--offline"), "{err}");
    let err = cold.lock(None, Update::Sticky).unwrap_err().to_string();
    assert!(
        err.contains("3 inputs failed") && err.contains("chart `alloy`"),
        "{err}"
    );
}
