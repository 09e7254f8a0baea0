//! The output tree in memory: relative path -> bytes, sorted (what `stack diff` compares and tests
//! inspect). A build streams its large files through [`crate::emit::staging`] instead of holding them.

use std::collections::BTreeMap;
use std::path::Path;

#[cfg(test)]
use crate::emit::staging::{Sink as _, Staging};
use crate::outdir::MARKER;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tree {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Tree {
    pub fn insert(&mut self, path: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.files.insert(path.into(), bytes.into());
    }

    #[cfg(test)]
    /// The tree hash of these files ([`crate::emit::staging::tree_hash`]): one hash that names the
    /// whole output, the value every build prints.
    pub fn hash(&self) -> String {
        let digests: Vec<_> = self.files.values().map(|b| blake3::hash(b)).collect();
        let lens = self.files.iter().map(|(p, b)| (p.as_str(), b.len() as u64));
        crate::emit::staging::tree_hash(lens.zip(&digests).map(|((p, l), d)| (p, l, d)))
    }

    /// Reads a directory as a tree; `None` when it does not exist.
    pub fn read(dir: &Path) -> std::io::Result<Option<Tree>> {
        if !dir.exists() {
            return Ok(None);
        }
        let mut paths = Vec::new();
        walk(dir, dir, &mut paths)?;
        let mut tree = Tree::default();
        for path in paths {
            let bytes = fs_err::read(dir.join(&path))?;
            tree.insert(path, bytes);
        }
        Ok(Some(tree))
    }

    /// Paths that differ between two trees (added, removed or changed), sorted.
    #[cfg(test)]
    pub fn diff(&self, other: &Tree) -> Vec<String> {
        let mut out = Vec::new();
        for (path, bytes) in &self.files {
            match other.files.get(path) {
                None => out.push(format!("missing: {path}")),
                Some(b) if b != bytes => out.push(format!("differs: {path}")),
                _ => {}
            }
        }
        for path in other.files.keys().filter(|p| !self.files.contains_key(*p)) {
            out.push(format!("unexpected: {path}"));
        }
        out
    }

    /// Makes `dir` exactly this tree plus the [`MARKER`] file and says how many files it wrote; see
    /// [`Staging::finish`]: nothing is written when `dir` already holds exactly these bytes, and `dir`
    /// is otherwise replaced whole, never left half-written.
    #[cfg(test)]
    pub fn write(&self, dir: &Path, scratch: &Path) -> std::io::Result<usize> {
        let mut staging = Staging::for_build(dir, scratch)?;
        for (path, bytes) in &self.files {
            staging.put(path.clone(), bytes.clone())?;
        }
        staging.finish()
    }
}

/// Whether the file at `path` holds exactly `bytes` (`None`: there is no file). A file of another
/// length is not read.
pub(crate) fn same_file(path: &Path, bytes: &[u8]) -> std::io::Result<Option<bool>> {
    // The entry itself, not what a symlink names: a symlink never holds an output file.
    let meta = match fs_err::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Ok(None),
        Err(e) => return Err(e),
    };
    if !meta.is_file() || meta.len() != bytes.len() as u64 {
        return Ok(Some(false));
    }
    Ok(Some(fs_err::read(path)? == bytes))
}

/// The relative paths (`/`-separated) of every file under `dir`, but the root's [`MARKER`].
pub(crate) fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(root, &path, out)?;
        } else if !(dir == root && entry.file_name() == MARKER) {
            let rel = path.strip_prefix(root).expect("walked under root");
            out.push(
                rel.components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/"),
            );
        }
    }
    Ok(())
}

#[cfg(unix)]
pub(crate) fn same_filesystem(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (fs_err::metadata(a), fs_err::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => false,
    }
}

#[cfg(not(unix))]
pub(crate) fn same_filesystem(_a: &Path, _b: &Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit::staging::hashes_to;

    #[test]
    fn write_replaces_stale_files_and_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        fs_err::create_dir_all(out.join("old")).unwrap();
        fs_err::write(out.join("old/stale.yaml"), "x").unwrap();
        let mut tree = Tree::default();
        tree.insert("a/b.yaml", "b");
        tree.insert("c.yaml", "c");
        let scratch = tempfile::tempdir_in(dir.path()).unwrap();
        tree.write(&out, scratch.path()).unwrap();
        let back = Tree::read(&out).unwrap().unwrap();
        assert_eq!(back, tree);
        assert!(out.join(MARKER).is_file());
        assert_eq!(
            fs_err::read_dir(scratch.path()).unwrap().count(),
            0,
            "nothing is left in the scratch directory"
        );
    }

    #[test]
    fn hash_depends_on_paths_and_bytes() {
        let mut a = Tree::default();
        a.insert("x", "1");
        let mut b = Tree::default();
        b.insert("y", "1");
        assert_ne!(a.hash(), b.hash());
        let mut c = Tree::default();
        c.insert("x", "1");
        assert_eq!(a.hash(), c.hash());
    }

    fn stamps(dir: &Path) -> BTreeMap<String, (u64, std::time::SystemTime)> {
        use std::os::unix::fs::MetadataExt as _;
        let mut paths = Vec::new();
        walk(dir, dir, &mut paths).unwrap();
        paths.push(MARKER.into());
        paths
            .into_iter()
            .map(|p| {
                let m = fs_err::metadata(dir.join(&p)).unwrap();
                (p, (m.ino(), m.modified().unwrap()))
            })
            .collect()
    }

    #[test]
    fn a_rebuild_with_nothing_changed_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut tree = Tree::default();
        tree.insert("a/b.yaml", "b");
        tree.insert("a/c/d.json", "{}");
        tree.insert("e.yaml", "e");
        let scratch = tempfile::tempdir_in(dir.path()).unwrap();
        assert_eq!(
            tree.write(&out, scratch.path()).unwrap(),
            4,
            "3 files and the marker"
        );
        let before = stamps(&out);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(tree.write(&out, scratch.path()).unwrap(), 0);
        assert_eq!(stamps(&out), before, "every inode and mtime is kept");
        assert_eq!(fs_err::read_dir(scratch.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_partial_change_rewrites_only_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let scratch = tempfile::tempdir_in(dir.path()).unwrap();
        let mut tree = Tree::default();
        tree.insert("a/b.yaml", "b");
        tree.insert("c.yaml", "c");
        tree.write(&out, scratch.path()).unwrap();
        fs_err::write(out.join("stray.yaml"), "x").unwrap();
        let before = stamps(&out);
        tree.insert("c.yaml", "changed");
        assert_eq!(
            tree.write(&out, scratch.path()).unwrap(),
            2,
            "c.yaml written, stray.yaml removed"
        );
        let after = stamps(&out);
        assert_eq!(after["a/b.yaml"], before["a/b.yaml"]);
        assert_eq!(after[MARKER], before[MARKER]);
        assert!(!out.join("stray.yaml").exists());
        assert_eq!(Tree::read(&out).unwrap().unwrap(), tree);
    }

    #[test]
    fn staging_names_every_difference_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let differences = |tree: &Tree, out: &Path| {
            let scratch = tempfile::tempdir_in(dir.path()).unwrap();
            let mut staging = Staging::for_check(out, scratch.path());
            for (path, bytes) in &tree.files {
                staging.put(path.clone(), bytes.clone()).unwrap();
            }
            let (old, new) = staging.differing_trees().unwrap();
            assert_eq!(
                crate::treediff::compare(&old, &new),
                crate::treediff::compare(&Tree::read(out).unwrap().unwrap_or_default(), tree),
                "the differing files alone show the same changes as the whole trees"
            );
            assert_eq!(staging.hash(), tree.hash(), "the same tree hash");
            staging.differences().unwrap()
        };
        assert_eq!(differences(&Tree::default(), &out), None);
        let mut tree = Tree::default();
        tree.insert("a.yaml", "a");
        tree.insert("b.yaml", "b");
        tree.insert("d/e.yaml", "e");
        let scratch = tempfile::tempdir_in(dir.path()).unwrap();
        tree.write(&out, scratch.path()).unwrap();
        assert_eq!(differences(&tree, &out), Some(vec![]));
        fs_err::write(out.join("a.yaml"), "A").unwrap();
        fs_err::remove_file(out.join("b.yaml")).unwrap();
        fs_err::write(out.join("d/x.yaml"), "x").unwrap();
        let on_disk = Tree::read(&out).unwrap().unwrap();
        let diff = differences(&tree, &out).unwrap();
        assert_eq!(
            diff,
            ["differs: a.yaml", "missing: b.yaml", "unexpected: d/x.yaml"]
        );
        assert_eq!(
            diff,
            tree.diff(&on_disk),
            "the same report as comparing whole trees"
        );
    }

    #[test]
    fn staging_takes_a_file_by_its_digest_only_when_out_holds_those_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut tree = Tree::default();
        tree.insert("a.json", "{\"a\": 1}");
        tree.insert("b.json", "{\"b\": 2}");
        let scratch = tempfile::tempdir_in(dir.path()).unwrap();
        tree.write(&out, scratch.path()).unwrap();
        fs_err::write(out.join("b.json"), "{\"b\": 3}").unwrap();
        let mut staging = Staging::for_check(&out, scratch.path());
        let digest = |b: &[u8]| blake3::hash(b);
        let existing = staging.existing().unwrap().to_path_buf();
        for (path, bytes) in &tree.files {
            let len = bytes.len() as u64;
            match hashes_to(&existing.join(path), len, &digest(bytes)) {
                true => staging.held(path, len, digest(bytes)),
                false => staging.put(path.clone(), bytes.clone()).unwrap(),
            }
        }
        assert!(
            !hashes_to(&out.join("c.json"), 2, &digest(b"{}")),
            "missing"
        );
        assert!(
            !hashes_to(&out.join("a.json"), 3, &digest(b"{\"a\": 1}")),
            "another length"
        );
        assert_eq!(
            staging.differences().unwrap(),
            Some(vec!["differs: b.json".to_string()]),
            "the edited file (same length) is not taken by its digest"
        );
        assert_eq!(staging.hash(), tree.hash());
    }
}
