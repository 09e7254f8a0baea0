//! Unit tests of the lock's text form: the round trip both ways, the stable text, versions and paths
//! refused, digests checked with line and column.

use super::*;

fn sample() -> Lock {
    let name: Name = "loki".parse().unwrap();
    let chart = LockedChart {
        name,
        source: "oci://ghcr.io/grafana/helm-charts/loki".into(),
        requirement: "6.49.0".into(),
        version: "6.49.0".into(),
        digest: format!("sha256:{}", "a".repeat(64)).parse().unwrap(),
        layer_digest: Some(format!("sha256:{}", "b".repeat(64)).parse().unwrap()),
        layer_media_type: None,
        url: None,
        unverified: false,
        blake3: "c".repeat(64).parse().unwrap(),
    };
    let name: Name = "flux-cluster".parse().unwrap();
    let dashboard = LockedDashboard {
        name: name.clone(),
        source: "https://example.com/cluster.json".into(),
        grafana_com: None,
        revision: None,
        requested_revision: None,
        title: "Flux Cluster Stats".into(),
        path: vendor_path(&name),
        digest: format!("sha256:{}", "d".repeat(64)).parse().unwrap(),
        blake3: "e".repeat(64).parse().unwrap(),
    };
    Lock::new("blake3:00".into(), [chart], [dashboard]).unwrap()
}

#[test]
fn round_trip_both_ways() {
    let lock = sample();
    let text = lock.to_toml();
    let back = Lock::parse(&text).unwrap();
    assert_eq!(back, lock);
    assert_eq!(back.to_toml(), text);
}

#[test]
fn text_form_is_stable() {
    insta::assert_snapshot!(sample().to_toml());
}

#[test]
fn unknown_version_is_refused_with_a_hint() {
    let text = sample().to_toml().replace("version = 1", "version = 9");
    let err = Lock::parse(&text).unwrap_err().to_string();
    assert!(
        err.contains("lock format version 9 is not supported"),
        "{err}"
    );
    // Not "run `stack lock`" alone: `stack lock` reads the same lock and stops the same way.
    assert!(
        err.contains("remove stack.lock and run `stack lock`"),
        "{err}"
    );
}

#[test]
fn vendor_paths_cannot_escape() {
    assert!(valid_vendor_path("vendor/dashboards/a.json"));
    assert!(!valid_vendor_path("vendor/../stack.toml"));
    assert!(!valid_vendor_path("/etc/passwd"));
    assert!(!valid_vendor_path("modules/x.json"));
}

#[test]
fn a_digest_that_is_not_one_is_an_error_with_line_and_column() {
    let text = sample().to_toml();
    let sha = format!("\"sha256:{}\"", "a".repeat(64));
    let err = Lock::parse(&text.replacen(&sha, "\"nope\"", 1))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("stack.lock:11:10: `nope` is not a sha256 digest"),
        "{err}"
    );
    assert!(err.contains("digest = \"nope\""), "{err}");
    let blake = format!("\"{}\"", "e".repeat(64));
    let err = Lock::parse(&text.replacen(&blake, "\"e0\"", 1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`e0` is not a blake3 digest"), "{err}");
    assert!(err.starts_with("stack.lock:"), "{err}");
}
