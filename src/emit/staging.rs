//! The output directory made a file at a time: each file the build emits is compared with the one in
//! out/ as it arrives and, when it differs, written to a scratch directory, so a build holds only the
//! files in flight, never the whole tree, and out/ is only ever replaced whole (or left alone).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::emit::tree::{same_file, same_filesystem, walk, Tree};
use crate::outdir::{MARKER, MARKER_TEXT};

/// Where a build puts the files it should not hold all at once (the dashboards' JSON).
pub trait Sink {
    /// Takes the file at `path` (relative, `/`-separated); its bytes may be dropped once it returns.
    fn put(&mut self, path: String, bytes: Vec<u8>) -> std::io::Result<()>;

    /// [`Sink::put`] for a caller that already knows the blake3 of `bytes` (a renderer thread hashed
    /// them), so the sink need not hash them again.
    fn put_hashed(
        &mut self,
        path: String,
        bytes: Vec<u8>,
        blake3: blake3::Hash,
    ) -> std::io::Result<()> {
        let _ = blake3;
        self.put(path, bytes)
    }

    /// The output the sink stages against (out/), whose files a caller that knows a file's digest
    /// (a cached render) may hash with [`hashes_to`], on any thread, and hand to [`Sink::held`]
    /// instead of reading the file's bytes; `None`: nothing is there.
    fn existing(&self) -> Option<&Path> {
        None
    }

    /// Takes the file at `path` without its bytes: the caller found, with [`hashes_to`], that
    /// [`Sink::existing`] already holds exactly its `len` bytes, whose blake3 is `blake3`.
    fn held(&mut self, path: &str, len: u64, blake3: blake3::Hash) {
        let _ = (path, len, blake3);
        debug_assert!(false, "Sink::held on a sink with nothing existing");
    }
}

/// Whether `file` is a file of exactly `len` bytes whose blake3 is `blake3`: read once, only when the
/// length matches. An unreadable file does not match.
pub fn hashes_to(file: &Path, len: u64, blake3: &blake3::Hash) -> bool {
    match fs_err::symlink_metadata(file) {
        Ok(meta) if meta.is_file() && meta.len() == len => {}
        _ => return false,
    }
    let mut hasher = blake3::Hasher::new();
    let read = fs_err::File::open(file).and_then(|f| hasher.update_reader(f).map(|_| ()));
    read.is_ok() && hasher.finalize() == *blake3
}

impl Sink for Tree {
    fn put(&mut self, path: String, bytes: Vec<u8>) -> std::io::Result<()> {
        self.insert(path, bytes);
        Ok(())
    }
}

/// One emitted file as the staging knows it: its length, its blake3 and where its bytes are now.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    len: u64,
    blake3: blake3::Hash,
    place: Place,
}

/// Where an emitted file's bytes are.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    /// out/ already holds exactly these bytes.
    Same,
    /// Written to the scratch directory; `existed`: out/ holds another file (or directory) there.
    New { existed: bool },
}

/// The output tree being staged against `out`.
pub struct Staging {
    out: PathBuf,
    /// Where the new tree is staged (`<scratch>/new`), created on the first file that differs.
    scratch: PathBuf,
    /// A temporary directory beside out/ when the given scratch is on another filesystem (renames and
    /// hard links do not cross filesystems).
    _beside: Option<tempfile::TempDir>,
    entries: BTreeMap<String, Entry>,
    made: BTreeSet<PathBuf>,
    written: usize,
    /// out/'s entries that are not plain files or directories (symlinks, FIFOs, sockets, devices), by
    /// relative path: never taken as holding a file (nothing is read or linked through them).
    odd: BTreeSet<String>,
}

impl Staging {
    /// Stages a tree that [`Staging::finish`] will make `out`. `scratch` is a temporary directory
    /// (under `.stack/`); when it is not on out/'s filesystem a temporary directory beside out/ is used.
    /// Nothing is created beside out/ unless the scratch directory is on another filesystem.
    pub fn for_build(out: &Path, scratch: &Path) -> std::io::Result<Staging> {
        let parent = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let existing = parent.ancestors().find(|p| p.exists()).unwrap_or(parent);
        let (scratch, beside) = if same_filesystem(existing, scratch) {
            (scratch.to_path_buf(), None)
        } else {
            fs_err::create_dir_all(parent)?;
            let beside = tempfile::Builder::new()
                .prefix(".stack-out-")
                .tempdir_in(parent)?;
            (beside.path().to_path_buf(), Some(beside))
        };
        Ok(Staging {
            _beside: beside,
            ..Staging::for_check(out, &scratch)
        })
    }

    /// Stages a tree only to compare it with `out` ([`Staging::differences`]); nothing outside
    /// `scratch` is created or changed.
    pub fn for_check(out: &Path, scratch: &Path) -> Staging {
        let mut odd = BTreeSet::new();
        if fs_err::symlink_metadata(out).is_ok_and(|m| m.is_dir()) {
            // An unreadable out/ shows up where it is read; here it only means nothing is known odd.
            let _ = odd_entries(out, out, &mut odd);
        }
        Staging {
            odd,
            out: out.to_path_buf(),
            scratch: scratch.to_path_buf(),
            _beside: None,
            entries: BTreeMap::new(),
            made: BTreeSet::new(),
            written: 0,
        }
    }

    /// Whether `path` (relative to out/) is, or lies under, one of out/'s odd entries.
    fn through_odd(&self, path: &str) -> bool {
        !self.odd.is_empty()
            && std::iter::successors(Some(path), |p| p.rsplit_once('/').map(|(parent, _)| parent))
                .any(|p| self.odd.contains(p))
    }

    /// out/'s file at `path` as `build --check` shows it: its bytes, or a line saying it is not a
    /// plain file (a FIFO is never opened, a symlink never followed).
    fn read_old(&self, path: &str) -> std::io::Result<Vec<u8>> {
        if self.through_odd(path) {
            return Ok(
                b"(not a plain file in the output directory: a symlink, FIFO or device)\n".to_vec(),
            );
        }
        fs_err::read(self.out.join(path))
    }

    fn staged(&self) -> PathBuf {
        self.scratch.join("new")
    }

    /// Writes `bytes` at `path` under the staged tree, creating each directory once.
    fn write_staged(&mut self, path: &str, bytes: &[u8]) -> std::io::Result<()> {
        let target = self.staged().join(path);
        self.make_parent(&target)?;
        fs_err::write(&target, bytes)?;
        self.written += 1;
        Ok(())
    }

    fn make_parent(&mut self, target: &Path) -> std::io::Result<()> {
        if let Some(p) = target.parent() {
            if self.made.insert(p.to_path_buf()) {
                fs_err::create_dir_all(p)?;
            }
        }
        Ok(())
    }

    /// Where the bytes of an entry are now.
    fn location(&self, path: &str, entry: Entry) -> PathBuf {
        match entry.place {
            Place::Same => self.out.join(path),
            Place::New { .. } => self.staged().join(path),
        }
    }

    /// The number of files staged (the marker not counted).
    pub fn files(&self) -> usize {
        self.entries.len()
    }

    /// Their total size in bytes.
    pub fn bytes(&self) -> usize {
        self.entries.values().map(|e| e.len as usize).sum()
    }

    /// The tree hash every build prints, as [`tree_hash`] defines it, from the digests taken as the
    /// files were staged: nothing is read again.
    pub fn hash(&self) -> String {
        tree_hash(
            self.entries
                .iter()
                .map(|(p, e)| (p.as_str(), e.len, &e.blake3)),
        )
    }

    /// How out/ differs from the staged tree ("missing: …", "differs: …", "unexpected: …"), in the
    /// order of [`Tree::diff`]. `None`: there is no out/.
    pub fn differences(&self) -> std::io::Result<Option<Vec<String>>> {
        if !self.out.exists() {
            return Ok(None);
        }
        let mut out = Vec::new();
        for (path, entry) in &self.entries {
            match entry.place {
                Place::Same => {}
                Place::New { existed: false } => out.push(format!("missing: {path}")),
                Place::New { existed: true } => out.push(format!("differs: {path}")),
            }
        }
        for path in self.unexpected()? {
            out.push(format!("unexpected: {path}"));
        }
        Ok(Some(out))
    }

    /// The files of out/ the staged tree does not have, sorted.
    fn unexpected(&self) -> std::io::Result<Vec<String>> {
        let mut on_disk = Vec::new();
        walk(&self.out, &self.out, &mut on_disk)?;
        on_disk.sort();
        on_disk.retain(|p| !self.entries.contains_key(p));
        Ok(on_disk)
    }

    /// Only the files that differ, as two trees (out/'s and the staged one's), read into memory: what
    /// `build --check` shows as a diff. Equal files are left out of both, so comparing them gives the
    /// same changes as comparing the whole trees.
    pub fn differing_trees(&self) -> std::io::Result<(Tree, Tree)> {
        let (mut old, mut new) = (Tree::default(), Tree::default());
        for (path, &entry) in &self.entries {
            if let Place::New { existed } = entry.place {
                new.insert(path.clone(), fs_err::read(self.location(path, entry))?);
                let file = fs_err::symlink_metadata(self.out.join(path)).is_ok_and(|m| m.is_file());
                if existed && (file || self.through_odd(path)) {
                    old.insert(path.clone(), self.read_old(path)?);
                }
            }
        }
        if self.out.exists() {
            for path in self.unexpected()? {
                old.insert(path.clone(), self.read_old(&path)?);
            }
        }
        Ok((old, new))
    }

    /// Makes out/ the staged tree plus the [`MARKER`] and says how many files were written. When out/
    /// already holds exactly these files nothing is written: every file keeps its inode and modification
    /// time. Otherwise the files out/ already has are hard-linked into the staged tree (so they too keep
    /// inode and mtime) and it is swapped in with renames, so an interrupted build never leaves a
    /// half-written output directory in place of the last good one: on Linux the two trees trade places
    /// in one `renameat2(RENAME_EXCHANGE)`, so there is no moment without an output directory (elsewhere,
    /// or where the filesystem cannot, two renames). Returns how many files were written or removed
    /// (0: out/ was already exactly the tree).
    pub fn finish(mut self) -> std::io::Result<usize> {
        let marker_same = same_file(&self.out.join(MARKER), MARKER_TEXT.as_bytes())? == Some(true);
        let all_same = self.entries.values().all(|e| e.place == Place::Same);
        let unexpected = if self.out.exists() {
            self.unexpected()?.len()
        } else {
            0
        };
        if marker_same && all_same && unexpected == 0 {
            return Ok(0);
        }
        if let Some(parent) = self.out.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs_err::create_dir_all(parent)?;
        }
        fs_err::create_dir_all(self.staged())?;
        let same: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.place == Place::Same)
            .map(|(p, _)| p.clone())
            .collect();
        for path in same
            .iter()
            .map(String::as_str)
            .chain(marker_same.then_some(MARKER))
        {
            let (old, target) = (self.out.join(path), self.staged().join(path));
            self.make_parent(&target)?;
            if fs_err::hard_link(&old, &target).is_err() {
                fs_err::copy(&old, &target)?;
                self.written += 1;
            }
        }
        if !marker_same {
            self.write_staged(MARKER, MARKER_TEXT.as_bytes())?;
        }
        if !self.out.exists() {
            fs_err::rename(self.staged(), &self.out)?;
            return Ok(self.written);
        }
        if exchange(&self.staged(), &self.out)? {
            // The old tree is now where the new one was staged. Removing it is housekeeping: the new
            // output is in place, and the next command clears what is left of `.stack/tmp/`.
            let _ = fs_err::remove_dir_all(self.staged());
        } else {
            let old = self.scratch.join("old");
            fs_err::rename(&self.out, &old)?;
            fs_err::rename(self.staged(), &self.out)?;
            let _ = fs_err::remove_dir_all(&old);
        }
        Ok(self.written + unexpected)
    }
}

impl Sink for Staging {
    /// Compares the file with out/'s and writes it to the scratch directory only when it differs.
    fn put(&mut self, path: String, bytes: Vec<u8>) -> std::io::Result<()> {
        let blake3 = blake3::hash(&bytes);
        self.put_hashed(path, bytes, blake3)
    }

    fn put_hashed(
        &mut self,
        path: String,
        bytes: Vec<u8>,
        blake3: blake3::Hash,
    ) -> std::io::Result<()> {
        let found = if self.through_odd(&path) {
            Some(false)
        } else {
            same_file(&self.out.join(&path), &bytes)?
        };
        let place = match found {
            Some(true) => Place::Same,
            existed => {
                self.write_staged(&path, &bytes)?;
                Place::New {
                    existed: existed.is_some(),
                }
            }
        };
        let len = bytes.len() as u64;
        self.entries.insert(path, Entry { len, blake3, place });
        Ok(())
    }

    fn existing(&self) -> Option<&Path> {
        // With odd entries in out/, a file is only taken as present after `put` checked its path.
        self.odd.is_empty().then_some(self.out.as_path())
    }

    fn held(&mut self, path: &str, len: u64, blake3: blake3::Hash) {
        let place = Place::Same;
        self.entries
            .insert(path.to_string(), Entry { len, blake3, place });
    }
}

/// The tree hash of an output (what every build prints as `tree blake3:`): blake3 over, for each file
/// in the order of its relative path's bytes (`/`-separated, the marker left out; `a-b/x` sorts before
/// `a/x`), `path NUL length NUL blake3(bytes)`
/// (the length in decimal, the file's digest as its 32 raw bytes). Hashing each file's digest rather
/// than its bytes lets a build name its tree from the digests it took once per file, and anyone check
/// it from a listing such as `b3sum`'s.
pub fn tree_hash<'a>(files: impl Iterator<Item = (&'a str, u64, &'a blake3::Hash)>) -> String {
    let mut h = blake3::Hasher::new();
    for (path, len, blake3) in files {
        h.update(path.as_bytes());
        h.update(b"\0");
        h.update(len.to_string().as_bytes());
        h.update(b"\0");
        h.update(blake3.as_bytes());
    }
    h.finalize().to_hex().to_string()
}

/// Swaps directories `a` and `b` in one step (Linux `renameat2(2)` with `RENAME_EXCHANGE`); `Ok(false)`
/// where the kernel or filesystem cannot (the caller then renames twice).
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<bool> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    use rustix::io::Errno;
    match renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(true),
        Err(e) if e == Errno::INVAL || e == Errno::NOSYS || e == Errno::NOTSUP => Ok(false),
        Err(e) => Err(std::io::Error::from(e)),
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> std::io::Result<bool> {
    Ok(false)
}

/// Collects the relative paths of `dir`'s entries (under `root`) that are neither plain files nor
/// directories, descending into real directories only.
fn odd_entries(root: &Path, dir: &Path, odd: &mut BTreeSet<String>) -> std::io::Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            odd_entries(root, &entry.path(), odd)?;
        } else if !kind.is_file() {
            let path = entry.path();
            let rel = path.strip_prefix(root).expect("walked under root");
            let parts: Vec<_> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect();
            odd.insert(parts.join("/"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
