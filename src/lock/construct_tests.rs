//! Unit tests of [`Lock::new`] and of reading and writing stack.lock: entries sorted, names and paths
//! refused, a missing or unreadable file, writing only when the text changes.

use super::*;

fn chart(name: &str) -> LockedChart {
    let mut c = tests_sample_chart();
    c.name = name.parse().unwrap();
    c
}

fn dashboard(name: &str) -> LockedDashboard {
    LockedDashboard {
        name: name.parse().unwrap(),
        source: format!("https://example.com/{name}.json"),
        grafana_com: None,
        revision: None,
        requested_revision: None,
        title: name.to_string(),
        path: format!("vendor/dashboards/{name}.json"),
        digest: crate::digest::sha256(b"d").parse().unwrap(),
        blake3: crate::digest::blake3(b"d").parse().unwrap(),
    }
}

fn tests_sample_chart() -> LockedChart {
    LockedChart {
        name: "loki".parse().unwrap(),
        source: "oci://ghcr.io/grafana/helm-charts/loki".into(),
        requirement: "^6".into(),
        version: "6.49.0".into(),
        digest: crate::digest::sha256(b"m").parse().unwrap(),
        layer_digest: None,
        layer_media_type: None,
        url: None,
        unverified: false,
        blake3: crate::digest::blake3(b"c").parse().unwrap(),
    }
}

#[test]
fn new_sorts_entries_by_name_whatever_the_order_given() {
    let lock = Lock::new("blake3:00".into(), [chart("tempo"), chart("alloy")], []).unwrap();
    let names: Vec<&str> = lock.charts().keys().map(|n| n.as_str()).collect();
    assert_eq!(names, ["alloy", "tempo"]);
    let reversed = Lock::new("blake3:00".into(), [chart("alloy"), chart("tempo")], []).unwrap();
    assert_eq!(lock.to_toml(), reversed.to_toml());
}

/// A hand-edited or badly merged lock with two dashboards on one file would let `stack lock` delete
/// the other's vendored file (found by a trial): it is refused, whatever the case of the paths.
#[test]
fn new_refuses_two_dashboards_on_one_path() {
    let locked = |name: &str, path: &str| LockedDashboard {
        path: path.to_string(),
        ..dashboard(name)
    };
    let err = Lock::new(
        "f".into(),
        [],
        [
            locked("nodes", "vendor/dashboards/Flux.json"),
            locked("flux", "vendor/dashboards/flux.json"),
        ],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "dashboards `flux` and `nodes` are both locked at path `vendor/dashboards/Flux.json`"
    );
    let apart = [
        locked("nodes", "vendor/dashboards/nodes.json"),
        locked("flux", "vendor/dashboards/flux.json"),
    ];
    assert!(Lock::new("f".into(), [], apart).is_ok());
}

#[test]
fn new_refuses_a_name_locked_twice_and_a_path_outside_vendor() {
    let err = Lock::new("f".into(), [chart("loki"), chart("loki")], []).unwrap_err();
    assert_eq!(err.to_string(), "chart `loki` is locked twice");
    let sample = Lock::parse(&Lock::new("f".into(), [], []).unwrap().to_toml()).unwrap();
    assert!(sample.dashboards().is_empty());
    let text = "version = 1\nfingerprint = \"f\"\n\n[[dashboard]]\nname = \"a\"\nsource = \"https://e.com/a.json\"\ntitle = \"A\"\npath = \"modules/a.json\"\ndigest = \"sha256:0000000000000000000000000000000000000000000000000000000000000000\"\nblake3 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n";
    let err = Lock::parse(text).unwrap_err().to_string();
    assert!(
        err.contains("dashboard `a`: path `modules/a.json` must be under vendor/"),
        "{err}"
    );
    assert!(err.contains("help: stack.lock is generated"), "{err}");
}

#[test]
fn reading_a_missing_lock_is_none_and_an_unreadable_one_names_it_relatively() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(read_text(dir.path()).unwrap(), None);
    fs_err::create_dir(dir.path().join(LOCK_FILE)).unwrap();
    let err = read_text(dir.path()).unwrap_err();
    assert_eq!(err.to_string(), "reading stack.lock");
    assert!(std::error::Error::source(&err).is_some());
    fs_err::remove_dir(dir.path().join(LOCK_FILE)).unwrap();
    fs_err::write(dir.path().join(LOCK_FILE), "x").unwrap();
    assert_eq!(read_text(dir.path()).unwrap().as_deref(), Some("x"));
}

#[test]
fn writing_is_unchanged_only_when_the_text_is_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let lock = Lock::new("blake3:00".into(), [chart("loki")], []).unwrap();
    let text = lock.to_toml();
    let guard = crate::transaction::guard(dir.path()).unwrap();
    let mut txn = Transaction::begin(&guard).unwrap();
    assert_eq!(lock.compare(Some(&text)), Written::Unchanged);
    assert_eq!(
        lock.write(Some(&text), &mut txn).unwrap(),
        Written::Unchanged
    );
    let edited = text.replace("^6", "^5");
    assert_eq!(lock.compare(Some(&edited)), Written::Changed);
    assert_eq!(lock.compare(None), Written::Changed);
    assert_eq!(lock.write(None, &mut txn).unwrap(), Written::Changed);
    txn.commit().unwrap();
    let written = fs_err::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
    assert_eq!(written, text);
}
