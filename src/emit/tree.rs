//! The output tree: relative path -> bytes, sorted. Holding the whole build in memory is what makes
//! `--check` exact and the tree hash cheap, and writing it is one swap of directories.

use std::collections::BTreeMap;
use std::path::Path;

use crate::outdir::{MARKER, MARKER_TEXT};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tree {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Tree {
    pub fn insert(&mut self, path: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.files.insert(path.into(), bytes.into());
    }

    pub fn bytes(&self) -> usize {
        self.files.values().map(Vec::len).sum()
    }

    /// blake3 over `path\0len\0bytes` of every file in path order: one hash that names the whole output,
    /// printed by every build so two machines can compare a single line.
    pub fn hash(&self) -> String {
        let mut h = blake3::Hasher::new();
        for (path, bytes) in &self.files {
            h.update(path.as_bytes());
            h.update(b"\0");
            h.update(bytes.len().to_string().as_bytes());
            h.update(b"\0");
            h.update(bytes);
        }
        h.finalize().to_hex().to_string()
    }

    /// Reads a directory as a tree (for `--check`); `None` when it does not exist.
    pub fn read(dir: &Path) -> std::io::Result<Option<Tree>> {
        if !dir.exists() {
            return Ok(None);
        }
        let mut tree = Tree::default();
        read_into(dir, dir, &mut tree)?;
        Ok(Some(tree))
    }

    /// Replaces `dir` with exactly this tree plus the [`MARKER`] file: written into `scratch` (a
    /// temporary directory under `.stack/`, used when it is on the same filesystem as `dir`, else a
    /// temporary directory beside `dir`), then swapped in with renames, so an interrupted build never
    /// leaves a half-written output directory in place of the last good one.
    pub fn write(&self, dir: &Path, scratch: &Path) -> std::io::Result<()> {
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs_err::create_dir_all(parent)?;
        let beside;
        let scratch = if same_filesystem(parent, scratch) {
            scratch
        } else {
            beside = tempfile::Builder::new()
                .prefix(".stack-out-")
                .tempdir_in(parent)?;
            beside.path()
        };
        let staged = scratch.join("new");
        fs_err::create_dir(&staged)?;
        for (path, bytes) in &self.files {
            let target = staged.join(path);
            if let Some(p) = target.parent() {
                fs_err::create_dir_all(p)?;
            }
            fs_err::write(&target, bytes)?;
        }
        fs_err::write(staged.join(MARKER), MARKER_TEXT)?;
        if dir.exists() {
            let old = scratch.join("old");
            fs_err::rename(dir, &old)?;
            fs_err::rename(&staged, dir)?;
            fs_err::remove_dir_all(&old)?;
        } else {
            fs_err::rename(&staged, dir)?;
        }
        Ok(())
    }
}

#[cfg(unix)]
fn same_filesystem(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_filesystem(_a: &Path, _b: &Path) -> bool {
    false
}

fn read_into(root: &Path, dir: &Path, tree: &mut Tree) -> std::io::Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            read_into(root, &path, tree)?;
        } else {
            if dir == root && entry.file_name() == MARKER {
                continue;
            }
            let rel = path.strip_prefix(root).expect("walked under root");
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            tree.insert(rel, fs_err::read(&path)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
