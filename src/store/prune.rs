//! Pruning a bucket of the content cache: what no build has written for a long time goes, at most once
//! a day, so a cache that gains entries with every `stack` binary (the rendered dashboards' key names the
//! binary) does not grow without bound.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{Bucket, Store};

/// The file whose modification time is when its bucket was last pruned.
const MARKER: &str = ".pruned";

/// A day: how often a bucket is pruned at most, and the age of a writer's temporary file that counts
/// as left behind by a killed process.
pub const DAY: Duration = Duration::from_secs(24 * 60 * 60);

impl Store {
    /// Removes the entries of `bucket` no build has written or used for more than `older_than` (see
    /// [`mark_used`]), and temporary files (`.tmp-*`) older than a day that a killed writer left, unless
    /// the bucket was pruned in the last day (the [`MARKER`] file's modification time says when). Only
    /// plain files named as the store names them (64 hex digits, or `.tmp-…`) directly in the bucket's own
    /// directory are removed: a bucket that is a symlink is not pruned, and nothing is followed or
    /// opened but the marker, which is made anew (never written through). Best effort: a file that
    /// cannot be removed stays, and nothing here is an error. Returns how many files were removed; `None`
    /// when the bucket was pruned less than a day ago, is not a directory, or another build is pruning it.
    pub fn prune(&self, bucket: Bucket, older_than: Duration) -> Option<usize> {
        let dir = self.bucket(bucket);
        let now = SystemTime::now();
        let age = |meta: &std::fs::Metadata| age(meta, now);
        if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            return None;
        }
        let marker = dir.join(MARKER);
        // A marker dated in the future (the clock was set back), or that is not a plain file, does not
        // stop pruning.
        let recent = |m: &std::fs::Metadata| m.is_file() && age(m).is_some_and(|a| a < DAY);
        if std::fs::symlink_metadata(&marker).is_ok_and(|m| recent(&m)) {
            return None;
        }
        // Marked first, by a file made anew (`create_new` neither follows a symlink nor opens a FIFO):
        // of two builds starting now, one prunes.
        let _ = std::fs::remove_file(&marker);
        let made = std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(&marker);
        made.ok()?;
        let mut removed = 0;
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let name = entry.file_name();
            let limit = match name.to_str() {
                Some(n) if n.starts_with(".tmp-") => DAY,
                Some(n) if n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()) => older_than,
                _ => continue,
            };
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_file() && age(&meta).is_some_and(|a| a > limit) && remove(&entry.path()) {
                removed += 1;
            }
        }
        Some(removed)
    }
}

/// Marks the entry open as `file` (whose metadata the caller has as `meta`) as used now, so [`Store::prune`] keeps it: its modification time is
/// set at most once a day (a hit costs no write otherwise). Best effort.
pub fn mark_used(file: &std::fs::File, meta: &std::fs::Metadata) {
    let now = SystemTime::now();
    if age(meta, now).is_some_and(|age| age > DAY) {
        let _ = file.set_modified(now);
    }
}

/// How long before `now` the file was last modified; `None` when unknown or in the future.
fn age(meta: &std::fs::Metadata, now: SystemTime) -> Option<Duration> {
    let modified = meta.modified().ok()?;
    now.duration_since(modified).ok()
}

fn remove(path: &Path) -> bool {
    std::fs::remove_file(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sets `path`'s modification time `ago` in the past.
    fn set_age(path: &Path, ago: Duration) {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - ago).unwrap();
    }

    #[test]
    fn old_entries_and_left_temporary_files_go_at_most_once_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().to_path_buf());
        assert_eq!(
            store.prune(Bucket::Rendered, 30 * DAY),
            None,
            "no bucket yet"
        );
        for key in ["old", "recent", "used-today"] {
            store.put_keyed(Bucket::Rendered, key, b"x").unwrap();
        }
        let bucket = store.bucket(Bucket::Rendered);
        set_age(&store.keyed_path(Bucket::Rendered, "old"), 31 * DAY);
        set_age(&store.keyed_path(Bucket::Rendered, "recent"), 29 * DAY);
        let (stale_tmp, fresh_tmp) = (bucket.join(".tmp-stale"), bucket.join(".tmp-fresh"));
        std::fs::write(&stale_tmp, b"torn").unwrap();
        std::fs::write(&fresh_tmp, b"being written").unwrap();
        set_age(&stale_tmp, 2 * DAY);

        assert_eq!(store.prune(Bucket::Rendered, 30 * DAY), Some(2));
        assert_eq!(store.get_keyed(Bucket::Rendered, "old").unwrap(), None);
        assert!(store
            .get_keyed(Bucket::Rendered, "recent")
            .unwrap()
            .is_some());
        assert!(store
            .get_keyed(Bucket::Rendered, "used-today")
            .unwrap()
            .is_some());
        assert!(!stale_tmp.exists() && fresh_tmp.exists());

        set_age(&store.keyed_path(Bucket::Rendered, "recent"), 31 * DAY);
        assert_eq!(
            store.prune(Bucket::Rendered, 30 * DAY),
            None,
            "pruned today already"
        );
        set_age(&bucket.join(MARKER), DAY + Duration::from_secs(60));
        assert_eq!(
            store.prune(Bucket::Rendered, 30 * DAY),
            Some(1),
            "a day later"
        );
        assert_eq!(store.get_keyed(Bucket::Rendered, "recent").unwrap(), None);
    }

    #[test]
    fn an_odd_marker_is_replaced_never_written_through_or_opened() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().to_path_buf());
        store.put_keyed(Bucket::Rendered, "old", b"x").unwrap();
        let bucket = store.bucket(Bucket::Rendered);
        let marker = bucket.join(MARKER);
        // A symlink to a file outside the cache: never truncated through.
        let precious = dir.path().join("precious");
        std::fs::write(&precious, b"data").unwrap();
        std::os::unix::fs::symlink(&precious, &marker).unwrap();
        set_age(&store.keyed_path(Bucket::Rendered, "old"), 31 * DAY);
        assert_eq!(store.prune(Bucket::Rendered, 30 * DAY), Some(1));
        assert_eq!(std::fs::read(&precious).unwrap(), b"data");
        assert!(std::fs::symlink_metadata(&marker).unwrap().is_file());
        // A FIFO (opening it for writing would block forever): replaced.
        std::fs::remove_file(&marker).unwrap();
        crate::support::tree::mkfifo(&marker);
        assert_eq!(store.prune(Bucket::Rendered, 30 * DAY), Some(0));
        assert!(std::fs::symlink_metadata(&marker).unwrap().is_file());
    }

    #[test]
    fn only_the_stores_own_names_go_and_a_symlinked_bucket_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("cache"));
        store.put_keyed(Bucket::Rendered, "old", b"x").unwrap();
        let bucket = store.bucket(Bucket::Rendered);
        let notes = bucket.join("notes.txt");
        std::fs::write(&notes, b"mine").unwrap();
        set_age(&notes, 90 * DAY);
        set_age(&store.keyed_path(Bucket::Rendered, "old"), 31 * DAY);
        assert_eq!(store.prune(Bucket::Rendered, 30 * DAY), Some(1));
        assert!(notes.exists(), "not a name the store gives");

        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let victim = elsewhere.join("a".repeat(64));
        std::fs::write(&victim, b"x").unwrap();
        set_age(&victim, 90 * DAY);
        let linked = Store::at(dir.path().join("linked"));
        std::fs::create_dir(dir.path().join("linked")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, linked.bucket(Bucket::Rendered)).unwrap();
        assert_eq!(linked.prune(Bucket::Rendered, 30 * DAY), None);
        assert!(victim.exists(), "nothing pruned through a symlinked bucket");
    }

    #[test]
    fn a_used_entry_is_kept_by_marking_it_at_most_once_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().to_path_buf());
        store.put_keyed(Bucket::Rendered, "used", b"x").unwrap();
        let path = store.keyed_path(Bucket::Rendered, "used");
        set_age(&path, 31 * DAY);
        let used = |path: &Path| {
            let file = std::fs::File::open(path).unwrap();
            mark_used(&file, &file.metadata().unwrap());
        };
        used(&path);
        assert_eq!(store.prune(Bucket::Rendered, 30 * DAY), Some(0));
        let fresh = std::fs::metadata(&path).unwrap().modified().unwrap();
        used(&path);
        let again = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert_eq!(fresh, again, "a second use the same day writes nothing");
    }
}
