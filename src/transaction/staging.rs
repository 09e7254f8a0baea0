//! Early staging: a vendor/ file written and flushed into the transaction's staging area by the task that
//! fetched it, while other inputs are still being resolved, so the commit after the last answer only
//! checks, renames and flushes directories (issue 15).
//!
//! Staging early changes nothing the transaction promises: a staged file is only a candidate until
//! [`super::Transaction::write`] names it with the same bytes, and nothing reaches vendor/ before the
//! commit point. A file staged early and never named stays in the staging area, which is thrown away
//! with it.

#![allow(
    clippy::disallowed_methods,
    reason = "its errors are wrapped with the stack-relative path, as in the transaction module"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{check_path, io, TxnError};
use crate::faults::point;

/// The staging area of a [`super::Transaction`], shared with the tasks that fetch what it will write.
#[derive(Debug)]
pub struct Staging {
    /// `<root>/.stack/txn/staged`.
    dir: PathBuf,
    /// Paths claimed by a task, with the blake3 of their bytes once written and flushed (`None` while
    /// being written, or when writing failed): a path is staged by one task at most.
    staged: Mutex<BTreeMap<String, Option<String>>>,
}

impl Staging {
    pub(super) fn new(dir: PathBuf) -> Staging {
        Staging {
            dir,
            staged: Mutex::default(),
        }
    }

    /// Writes `bytes` as the staged copy of `rel` and flushes it; see [`Staging::stage_all`].
    pub fn stage(&self, rel: &str, bytes: &[u8]) -> Result<(), TxnError> {
        self.stage_all([(rel.to_string(), bytes)])
    }

    /// Writes and flushes each file as the staged copy of its path, then flushes every directory from
    /// theirs up to the staging root, each once (so their entries survive a crash once
    /// the journal names them). A path already claimed is left alone: the commit stages it again if its
    /// bytes differ.
    ///
    /// One task stages a whole chart's files at once: flushing each file's directories up to the root
    /// after each file made a cold lock of ten charts ~5 directory fsyncs per file, ~700 after the last
    /// answer (issue 15). Flushed one after another: the caller is one of a few threads staging charts
    /// at once (threads of its own per chart cost more system time than they saved).
    pub fn stage_all<'b>(
        &self,
        files: impl IntoIterator<Item = (String, &'b [u8])>,
    ) -> Result<(), TxnError> {
        let files: Vec<(String, &[u8])> = files.into_iter().collect();
        for (rel, _) in &files {
            check_path(rel)?;
        }
        let mine: Vec<(String, &[u8])> = {
            let mut staged = self.staged.lock().expect("no panic while holding it");
            files
                .into_iter()
                .filter(|(rel, _)| staged.insert(rel.clone(), None).is_none())
                .collect()
        };
        let mut dirs = BTreeSet::new();
        for (rel, bytes) in &mine {
            let path = self.dir.join(rel);
            let parent = path.parent().expect("under the staging dir");
            if !dirs.contains(parent) {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
                self.up_to_root(parent, &mut dirs);
            }
            point("stage-early");
            let mut file = std::fs::File::create(&path).map_err(io(&path))?;
            file.write_all(bytes).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
        }
        if cfg!(unix) {
            dirs.iter().try_for_each(|dir| sync(dir))?;
        }
        let mut staged = self.staged.lock().expect("no panic while holding it");
        for (rel, bytes) in mine {
            staged.insert(rel, Some(crate::digest::blake3(bytes)));
        }
        Ok(())
    }

    /// Adds `dir` and its parents up to the staging root to `dirs`. Every directory entry a task creates
    /// is in one of them, and that task flushes them all afterwards, so the entries of concurrent tasks
    /// are covered.
    fn up_to_root(&self, mut dir: &Path, dirs: &mut BTreeSet<PathBuf>) {
        loop {
            dirs.insert(dir.to_path_buf());
            if dir == self.dir {
                return;
            }
            match dir.parent() {
                Some(parent) if parent.starts_with(&self.dir) => dir = parent,
                _ => return,
            }
        }
    }

    /// Whether `rel` is staged with exactly `bytes`, written and flushed; the claim is dropped either way,
    /// so the caller's own write (when the answer is no) is the one that counts.
    pub(super) fn take(&self, rel: &str, bytes: &[u8]) -> bool {
        let claim = self
            .staged
            .lock()
            .expect("no panic while holding it")
            .remove(rel);
        matches!(claim, Some(Some(blake3)) if blake3 == crate::digest::blake3(bytes))
    }
}

#[cfg(test)]
thread_local! {
    /// How many directories this thread flushed while staging.
    static DIR_SYNCS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many directories this thread has flushed while staging so far.
#[cfg(test)]
pub(super) fn dir_syncs() -> usize {
    DIR_SYNCS.with(|n| n.get())
}

/// Flushes a directory (its entries) to disk.
fn sync(path: &Path) -> Result<(), TxnError> {
    #[cfg(test)]
    DIR_SYNCS.with(|n| n.set(n.get() + 1));
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}
