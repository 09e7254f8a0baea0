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

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{check_path, io, sync_dir, TxnError};
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

    /// Writes `bytes` as the staged copy of `rel` and flushes it and every directory from its own up to
    /// the staging root (so its entry survives a crash once the journal names it). A path already claimed
    /// is left alone: the commit stages it again if its bytes differ.
    pub fn stage(&self, rel: &str, bytes: &[u8]) -> Result<(), TxnError> {
        check_path(rel)?;
        {
            let mut staged = self.staged.lock().expect("no panic while holding it");
            if staged.contains_key(rel) {
                return Ok(());
            }
            staged.insert(rel.to_string(), None);
        }
        let path = self.dir.join(rel);
        let parent = path.parent().expect("under the staging dir");
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        point("stage-early");
        let mut file = std::fs::File::create(&path).map_err(io(&path))?;
        file.write_all(bytes).map_err(io(&path))?;
        file.sync_all().map_err(io(&path))?;
        drop(file);
        self.sync_up(parent)?;
        let blake3 = crate::digest::blake3(bytes);
        self.staged
            .lock()
            .expect("no panic while holding it")
            .insert(rel.to_string(), Some(blake3));
        Ok(())
    }

    /// Flushes `dir` and its parents up to the staging root. Every directory entry a task creates is in
    /// one of them, and that task flushes it afterwards, so the entries of concurrent tasks are covered.
    fn sync_up(&self, mut dir: &Path) -> Result<(), TxnError> {
        loop {
            sync_dir(dir)?;
            if dir == self.dir {
                return Ok(());
            }
            match dir.parent() {
                Some(parent) if parent.starts_with(&self.dir) => dir = parent,
                _ => return Ok(()),
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
