//! Tests of the transaction: all-or-nothing writes, the lock guard, recovery after a crash.

use super::*;

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("stack.toml"), "").unwrap();
    fs_err::write(dir.path().join("stack.lock"), "old lock").unwrap();
    fs_err::create_dir_all(dir.path().join("vendor/dashboards")).unwrap();
    fs_err::write(dir.path().join("vendor/dashboards/a.json"), "old a").unwrap();
    fs_err::write(dir.path().join("vendor/dashboards/gone.json"), "old gone").unwrap();
    dir
}

fn read(root: &Path, rel: &str) -> Option<String> {
    fs_err::read_to_string(root.join(rel)).ok()
}

fn stage(g: &Guard) -> Transaction {
    let mut t = Transaction::begin(g).unwrap();
    t.write("stack.lock", b"new lock").unwrap();
    t.write("vendor/dashboards/a.json", b"new a").unwrap();
    t.write("vendor/dashboards/b.json", b"new b").unwrap();
    t.delete("vendor/dashboards/gone.json").unwrap();
    t
}

fn assert_old(r: &Path) {
    assert_eq!(read(r, "stack.lock").unwrap(), "old lock");
    assert_eq!(read(r, "vendor/dashboards/a.json").unwrap(), "old a");
    assert_eq!(read(r, "vendor/dashboards/gone.json").unwrap(), "old gone");
    assert_eq!(read(r, "vendor/dashboards/b.json"), None);
}

#[test]
fn guard_is_exclusive_and_released_on_drop() {
    let dir = setup();
    let held = guard(dir.path()).unwrap();
    let other = fs_err::File::open(dir.path().join(".stack/lock")).unwrap();
    assert!(matches!(
        other.try_lock(),
        Err(std::fs::TryLockError::WouldBlock)
    ));
    drop(held);
    other.try_lock().unwrap();
}

#[test]
fn guard_holds_when_stack_toml_is_replaced_by_rename() {
    let dir = setup();
    let held = guard(dir.path()).unwrap();
    fs_err::write(dir.path().join("new.toml"), "# edited").unwrap();
    fs_err::rename(dir.path().join("new.toml"), dir.path().join("stack.toml")).unwrap();
    let other = fs_err::File::open(dir.path().join(".stack/lock")).unwrap();
    assert!(matches!(
        other.try_lock(),
        Err(std::fs::TryLockError::WouldBlock)
    ));
    drop(held);
}

#[test]
fn guard_cleans_temporary_directories_of_killed_commands() {
    let dir = setup();
    let g = guard(dir.path()).unwrap();
    let tmp = g.temp_dir("out-").unwrap().keep();
    fs_err::write(tmp.join("x"), "x").unwrap();
    fs_err::create_dir(dir.path().join(".stack-old-abc")).unwrap();
    drop(g);
    let _g = guard(dir.path()).unwrap();
    assert!(!tmp.exists());
    assert!(!dir.path().join(".stack-old-abc").exists());
}

#[test]
fn commit_replaces_everything() {
    let dir = setup();
    let g = guard(dir.path()).unwrap();
    stage(&g).commit().unwrap();
    let r = dir.path();
    assert_eq!(read(r, "stack.lock").unwrap(), "new lock");
    assert_eq!(read(r, "vendor/dashboards/a.json").unwrap(), "new a");
    assert_eq!(read(r, "vendor/dashboards/b.json").unwrap(), "new b");
    assert_eq!(read(r, "vendor/dashboards/gone.json"), None);
    assert!(!r.join(".stack/txn").exists());
    assert_eq!(recover(&g).unwrap(), Recovery::Clean);
}

#[test]
fn killed_before_the_commit_point_keeps_the_old_state() {
    let dir = setup();
    let g = guard(dir.path()).unwrap();
    let t = stage(&g);
    std::mem::forget(t); // as if killed: no Drop, staged files left behind
    assert!(dir.path().join(".stack/txn/staged/stack.lock").exists());
    assert_eq!(recover(&g).unwrap(), Recovery::Discarded);
    assert_old(dir.path());
    assert!(!dir.path().join(".stack/txn").exists());
}

#[test]
fn killed_after_the_commit_point_rolls_forward_even_half_applied() {
    let dir = setup();
    let r = dir.path();
    let g = guard(r).unwrap();
    let t = stage(&g);
    // Simulate the commit point, then a kill after moving only one file.
    let journal = Journal {
        version: JOURNAL_VERSION,
        writes: t.writes.iter().cloned().collect(),
        deletes: t.deletes.iter().cloned().collect(),
    };
    fs_err::write(t.dir.join(COMMIT), serde_json::to_string(&journal).unwrap()).unwrap();
    fs_err::rename(t.dir.join("staged/stack.lock"), r.join("stack.lock")).unwrap();
    std::mem::forget(t);
    assert_eq!(recover(&g).unwrap(), Recovery::RolledForward);
    assert_eq!(read(r, "stack.lock").unwrap(), "new lock");
    assert_eq!(read(r, "vendor/dashboards/a.json").unwrap(), "new a");
    assert_eq!(read(r, "vendor/dashboards/b.json").unwrap(), "new b");
    assert_eq!(read(r, "vendor/dashboards/gone.json"), None);
    assert!(!r.join(".stack/txn").exists());
}

#[test]
fn dropped_transaction_leaves_nothing() {
    let dir = setup();
    let g = guard(dir.path()).unwrap();
    drop(stage(&g));
    assert!(!dir.path().join(".stack/txn").exists());
    assert_eq!(read(dir.path(), "stack.lock").unwrap(), "old lock");
}

#[test]
fn paths_outside_lock_and_vendor_are_refused() {
    let dir = setup();
    let g = guard(dir.path()).unwrap();
    let mut t = Transaction::begin(&g).unwrap();
    assert!(t.write("stack.toml", b"x").is_err());
    assert!(t.write("vendor/../stack.toml", b"x").is_err());
    assert!(t.delete("/etc/passwd").is_err());
}

#[test]
fn a_damaged_journal_is_reported_not_guessed() {
    let dir = setup();
    let g = guard(dir.path()).unwrap();
    let txn = dir.path().join(".stack/txn");
    fs_err::create_dir_all(&txn).unwrap();
    fs_err::write(
        txn.join(COMMIT),
        r#"{"version":1,"writes":["../../etc/x"],"deletes":[]}"#,
    )
    .unwrap();
    let err = recover(&g).unwrap_err().to_string();
    assert!(err.contains("damaged"), "{err}");
    assert!(err.contains("help: "), "{err}");
}

#[test]
fn a_journal_entry_without_its_staged_file_is_refused_before_the_commit_point() {
    let dir = setup();
    let g = guard(dir.path()).unwrap();
    let t = stage(&g);
    // Another process's recovery (before the guard was a real lock) deleted the staging.
    fs_err::remove_file(t.dir.join("staged/vendor/dashboards/b.json")).unwrap();
    let err = t.commit().unwrap_err().to_string();
    assert!(
        err.contains("vendor/dashboards/b.json was never staged"),
        "{err}"
    );
    assert_old(dir.path());
    assert_eq!(recover(&g).unwrap(), Recovery::Clean);
}

#[test]
fn a_target_that_is_a_directory_fails_before_the_commit_point() {
    let dir = setup();
    let r = dir.path();
    fs_err::create_dir_all(r.join("vendor/dashboards/b.json/inner")).unwrap();
    let g = guard(r).unwrap();
    let err = stage(&g).commit().unwrap_err().to_string();
    assert!(
        err.contains("vendor/dashboards/b.json: it is a directory"),
        "{err}"
    );
    assert!(err.contains("run `stack lock` again"), "{err}");
    assert_old(r);
    // Nothing is stuck: the next command starts clean.
    assert_eq!(recover(&g).unwrap(), Recovery::Clean);
}

#[cfg(unix)]
#[test]
fn a_read_only_vendor_directory_fails_before_the_commit_point() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = setup();
    let r = dir.path();
    let vd = r.join("vendor/dashboards");
    fs_err::set_permissions(&vd, std::fs::Permissions::from_mode(0o555)).unwrap();
    if tempfile::tempfile_in(&vd).is_ok() {
        // Running as root: permissions do not stop writes, so there is nothing to test.
        fs_err::set_permissions(&vd, std::fs::Permissions::from_mode(0o755)).unwrap();
        return;
    }
    let g = guard(r).unwrap();
    let err = stage(&g).commit().unwrap_err().to_string();
    fs_err::set_permissions(&vd, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(err.contains("not writable"), "{err}");
    assert_old(r);
    assert_eq!(recover(&g).unwrap(), Recovery::Clean);
}

#[cfg(unix)]
#[test]
fn a_planted_journal_cannot_write_or_delete_through_a_symlink_out_of_the_stack() {
    let outside = tempfile::tempdir().unwrap();
    fs_err::write(outside.path().join("victim.json"), "precious").unwrap();
    let dir = setup();
    let r = dir.path();
    std::os::unix::fs::symlink(outside.path(), r.join("vendor/link")).unwrap();
    let g = guard(r).unwrap();
    let txn = r.join(".stack/txn");
    fs_err::create_dir_all(txn.join("staged/vendor/link")).unwrap();
    fs_err::write(txn.join("staged/vendor/link/new.json"), "planted").unwrap();
    fs_err::write(
        txn.join(COMMIT),
        r#"{"version":1,"writes":["vendor/link/new.json"],"deletes":["vendor/link/victim.json"]}"#,
    )
    .unwrap();
    let err = recover(&g).unwrap_err().to_string();
    assert!(
        err.contains("vendor/link is a symlink leading outside"),
        "{err}"
    );
    assert!(err.contains("run `stack lock`"), "{err}");
    assert_eq!(
        fs_err::read_to_string(outside.path().join("victim.json")).unwrap(),
        "precious"
    );
    assert!(!outside.path().join("new.json").exists());
}

#[cfg(unix)]
#[test]
fn a_vendor_symlink_out_of_the_stack_is_refused_before_the_commit_point() {
    let outside = tempfile::tempdir().unwrap();
    let dir = setup();
    let r = dir.path();
    fs_err::remove_dir_all(r.join("vendor/dashboards")).unwrap();
    std::os::unix::fs::symlink(outside.path(), r.join("vendor/dashboards")).unwrap();
    let g = guard(r).unwrap();
    let mut t = Transaction::begin(&g).unwrap();
    t.write("vendor/dashboards/b.json", b"new b").unwrap();
    let err = t.commit().unwrap_err().to_string();
    assert!(
        err.contains("vendor/dashboards is a symlink leading outside"),
        "{err}"
    );
    assert_eq!(fs_err::read_dir(outside.path()).unwrap().count(), 0);
}

/// A file a task staged early counts only when the commit names it with the same bytes: other bytes are
/// staged again, an early file never named is not written, and the finished transaction leaves neither
/// `.stack/txn/` nor its staging area behind once the next command has taken the guard.
#[test]
fn early_staged_files_count_only_with_the_bytes_the_commit_names() {
    let dir = setup();
    let r = dir.path();
    let g = guard(r).unwrap();
    let mut t = Transaction::begin(&g).unwrap();
    let staging = t.staging();
    staging.stage("vendor/dashboards/b.json", b"new b").unwrap();
    staging
        .stage("vendor/dashboards/a.json", b"early a")
        .unwrap();
    staging
        .stage("vendor/dashboards/unnamed.json", b"x")
        .unwrap();
    assert!(staging.stage("../escape", b"x").is_err());
    t.write("stack.lock", b"new lock").unwrap();
    t.write("vendor/dashboards/a.json", b"new a").unwrap();
    t.write("vendor/dashboards/b.json", b"new b").unwrap();
    t.delete("vendor/dashboards/gone.json").unwrap();
    assert!(t.flushed.contains("vendor/dashboards/b.json"));
    assert!(!t.flushed.contains("vendor/dashboards/a.json"));
    t.commit().unwrap();
    assert_eq!(read(r, "stack.lock").unwrap(), "new lock");
    assert_eq!(read(r, "vendor/dashboards/a.json").unwrap(), "new a");
    assert_eq!(read(r, "vendor/dashboards/b.json").unwrap(), "new b");
    assert_eq!(read(r, "vendor/dashboards/unnamed.json"), None);
    assert_eq!(read(r, "vendor/dashboards/gone.json"), None);
    assert!(!r.join(".stack/txn").exists());
    drop(g);
    let g = guard(r).unwrap();
    assert!(!r.join(".stack/tmp").exists());
    assert_eq!(recover(&g).unwrap(), Recovery::Clean);
}

#[test]
fn a_charts_files_are_staged_with_each_directory_flushed_once() {
    let dir = setup();
    let r = dir.path();
    let g = guard(r).unwrap();
    let mut t = Transaction::begin(&g).unwrap();
    let staging = t.staging();
    let files: [(&str, &[u8]); 3] = [
        ("vendor/charts/x/Chart.yaml", b"name: x"),
        ("vendor/charts/x/values.yaml", b"a: 1"),
        ("vendor/charts/x/charts/y/values.yaml", b"b: 2"),
    ];
    let before = super::staging::dir_syncs();
    staging
        .stage_all(files.iter().map(|(rel, bytes)| (rel.to_string(), *bytes)))
        .unwrap();
    // staged/, vendor/, charts/, x/, x/charts/ and x/charts/y/: once each (flushing every file's
    // directories up to the root after each file made it 4 + 4 + 6).
    assert_eq!(super::staging::dir_syncs() - before, 6);
    for (rel, bytes) in files {
        t.write(rel, bytes).unwrap();
        assert!(t.flushed.contains(rel), "{rel} was staged and flushed");
    }
    t.commit().unwrap();
    assert_eq!(
        read(r, "vendor/charts/x/charts/y/values.yaml").unwrap(),
        "b: 2"
    );
}
