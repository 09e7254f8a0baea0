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
    /// Removes the files of `bucket` last written more than `older_than` ago, and temporary files
    /// (`.tmp-*`) older than a day that a killed writer left, unless the bucket was pruned in the last
    /// day (the [`MARKER`] file's modification time says when). Best effort: a file that cannot be
    /// removed stays, and nothing here is an error. Returns how many files were removed; `None` when the
    /// bucket was pruned less than a day ago or does not exist.
    pub fn prune(&self, bucket: Bucket, older_than: Duration) -> Option<usize> {
        let dir = self.bucket(bucket);
        let now = SystemTime::now();
        let age = |meta: &std::fs::Metadata| {
            meta.modified()
                .ok()
                .and_then(|t| now.duration_since(t).ok())
        };
        let marker = dir.join(MARKER);
        // A marker dated in the future (the clock was set back) does not stop pruning.
        if std::fs::symlink_metadata(&marker).is_ok_and(|m| age(&m).is_some_and(|a| a < DAY)) {
            return None;
        }
        let entries = std::fs::read_dir(&dir).ok()?;
        // Marked first: another build starting now does not prune the same bucket again.
        let _ = std::fs::write(&marker, b"");
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let limit = match name.as_ref() {
                MARKER => continue,
                n if n.starts_with(".tmp-") => DAY,
                _ => older_than,
            };
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_file() && age(&meta).is_some_and(|a| a > limit) && remove(&entry.path()) {
                removed += 1;
            }
        }
        Some(removed)
    }
}

fn remove(path: &Path) -> bool {
    std::fs::remove_file(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sets `path`'s modification time `ago` in the past.
    fn age(path: &Path, ago: Duration) {
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
        age(&store.keyed_path(Bucket::Rendered, "old"), 31 * DAY);
        age(&store.keyed_path(Bucket::Rendered, "recent"), 29 * DAY);
        let (stale_tmp, fresh_tmp) = (bucket.join(".tmp-stale"), bucket.join(".tmp-fresh"));
        std::fs::write(&stale_tmp, b"torn").unwrap();
        std::fs::write(&fresh_tmp, b"being written").unwrap();
        age(&stale_tmp, 2 * DAY);

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

        age(&store.keyed_path(Bucket::Rendered, "recent"), 31 * DAY);
        assert_eq!(
            store.prune(Bucket::Rendered, 30 * DAY),
            None,
            "pruned today already"
        );
        age(&bucket.join(MARKER), DAY + Duration::from_secs(60));
        assert_eq!(
            store.prune(Bucket::Rendered, 30 * DAY),
            Some(1),
            "a day later"
        );
        assert_eq!(store.get_keyed(Bucket::Rendered, "recent").unwrap(), None);
    }
}
