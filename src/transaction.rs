//! All-or-nothing writes of stack.lock and vendor/: a kill at any instant leaves either the old lock and
//! vendor files or the new ones, never a mix.
//!
//! Every command first takes the stack's [`Guard`], an exclusive lock of `<root>/.stack/lock` (as Cargo
//! locks its package cache): a file `stack` never replaces, so editors or `git checkout` renaming
//! stack.toml cannot let two commands in at once. A transaction stages every new file under
//! `<root>/.stack/txn/staged/` (each flushed before the commit point: by the task that fetched it, through
//! [`Staging`], or all at once in [`Transaction::commit`]), checks that every step after the commit point can succeed
//! (targets inside the stack, no directory in the way, writable, same filesystem), then commits by
//! atomically renaming a journal into `<root>/.stack/txn/commit.json`: that rename is the commit point.
//! Only then are staged files renamed into place and removed files deleted, and the directory moved into
//! `.stack/tmp/` in one rename, to be removed off the critical path (or by the next command).
//! [`recover`], run under the guard at the start of every command, finishes a committed transaction
//! (every step is idempotent) and discards an uncommitted one, which under the guard can only be the
//! leftover of a killed process. `.stack/` belongs in .gitignore.

#![allow(
    clippy::disallowed_methods,
    reason = "its errors are wrapped with the stack-relative path; fs_err would add the absolute one to output"
)]

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::contain::{self, ContainError};
use crate::faults::point;
use crate::lock::{valid_vendor_path, LOCK_FILE};

mod resolver;
mod staging;
use resolver::Resolver;
pub use staging::Staging;

pub const STATE_DIR: &str = ".stack";
const LOCK: &str = "lock";
const TMP: &str = "tmp";
const TXN: &str = "txn";
const STAGED: &str = "staged";
const COMMIT: &str = "commit.json";
const JOURNAL_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{path} is damaged ({message}); the interrupted `stack lock` cannot be finished\nhelp: check stack.lock and vendor/ (e.g. with `git status`), then run `rm -r {dir}` and `stack lock`")]
    Journal {
        path: PathBuf,
        dir: PathBuf,
        message: String,
    },
    #[error(
        "refusing to write {path:?}: a transaction writes only stack.lock and files under vendor/"
    )]
    Path { path: String },
    #[error(transparent)]
    Contain(#[from] ContainError),
    #[error("cannot write {path}: {why}; nothing was changed\nhelp: {help}")]
    Preflight {
        path: String,
        why: String,
        help: String,
    },
    #[error("refusing to commit: {path} was never staged (its staged copy is gone); nothing was changed\nhelp: run `stack lock` again")]
    Unstaged { path: String },
    #[error("stack.lock is new but {path} could not be written yet: {err}\nhelp: fix that, then run `stack lock` to finish writing stack.lock and vendor/")]
    Finish { path: String, err: Box<TxnError> },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TxnError + '_ {
    move |err| TxnError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// What [`recover`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// No interrupted transaction.
    Clean,
    /// A committed transaction was finished: the new lock and vendor files are in place.
    RolledForward,
    /// An uncommitted transaction was thrown away: the old lock and vendor files are untouched.
    Discarded,
}

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    version: u32,
    writes: Vec<String>,
    deletes: Vec<String>,
}

fn txn_dir(root: &Path) -> PathBuf {
    root.join(STATE_DIR).join(TXN)
}

fn check_path(rel: &str) -> Result<(), TxnError> {
    if rel == LOCK_FILE || valid_vendor_path(rel) {
        Ok(())
    } else {
        Err(TxnError::Path {
            path: rel.to_string(),
        })
    }
}

/// Held while a `stack` command reads or writes a stack: an exclusive advisory lock on `.stack/lock`.
/// Two `stack lock` runs on one stack would otherwise discard each other's staging, and a build could
/// read stack.lock and vendor/ halfway through a commit. Released when dropped (or when the process dies).
pub struct Guard {
    _file: Option<std::fs::File>,
    root: PathBuf,
}

impl Guard {
    /// A directory under `.stack/tmp/` for a command's temporary files: removed by the next command
    /// that takes the guard, if this one is killed before removing it.
    pub fn temp_dir(&self, prefix: &str) -> Result<tempfile::TempDir, TxnError> {
        let tmp = self.root.join(STATE_DIR).join(TMP);
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&tmp)
            .map_err(io(&tmp))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Temporary directories are dropped before the guard; leave no empty .stack/tmp/ behind.
        let _ = std::fs::remove_dir(self.root.join(STATE_DIR).join(TMP));
    }
}

/// Takes the stack's [`Guard`], waiting (and saying so) while another `stack` process holds it, then
/// removes what a killed command left in `.stack/tmp/`. A stack without stack.toml gets an empty guard:
/// the command reports the missing file itself.
pub fn guard(root: &Path) -> Result<Guard, TxnError> {
    if !root.join(crate::manifest::MANIFEST_FILE).exists() {
        return Ok(Guard {
            _file: None,
            root: root.to_path_buf(),
        });
    }
    let state = contain::resolve(root, STATE_DIR)?;
    std::fs::create_dir_all(&state).map_err(io(&state))?;
    let path = state.join(LOCK);
    let mut said = false;
    let file = loop {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                if !said {
                    crate::ui::status("waiting for another `stack` process working on this stack…");
                    said = true;
                }
                file.lock().map_err(io(&path))?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        // Someone may have deleted .stack/ while we waited: then the lock we hold is on a file no one
        // else will open. Lock the file that is there now instead.
        if same_file(&file, &path) {
            break file;
        }
    };
    let guard = Guard {
        _file: Some(file),
        root: root.to_path_buf(),
    };
    clean_temp(root)?;
    Ok(guard)
}

#[cfg(unix)]
fn same_file(file: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &std::fs::File, path: &Path) -> bool {
    path.exists()
}

/// Removes `.stack/tmp/` (temporary directories of killed commands) and the `.stack-out-*` and
/// `.stack-old-*` directories that builds of earlier versions left beside the output.
fn clean_temp(root: &Path) -> Result<(), TxnError> {
    let tmp = root.join(STATE_DIR).join(TMP);
    // Best effort: what cannot be removed (a directory a user made read-only inside an old output tree)
    // is left for a later run; every command that needs a temporary directory makes a new one, so a
    // leftover never blocks the stack.
    let _ = std::fs::remove_dir_all(&tmp);
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let legacy = name.starts_with(".stack-out-") || name.starts_with(".stack-old-");
            if legacy && entry.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(())
}

/// Finishes or discards a transaction a killed `stack lock` left behind. Needs the stack's guard: no
/// other process can be in the middle of a transaction then.
pub fn recover(guard: &Guard) -> Result<Recovery, TxnError> {
    let root = guard.root.as_path();
    let dir = txn_dir(root);
    if !dir.exists() {
        return Ok(Recovery::Clean);
    }
    let commit = dir.join(COMMIT);
    match std::fs::read_to_string(&commit) {
        Ok(text) => {
            let damaged = |message: String| TxnError::Journal {
                path: commit.clone(),
                dir: dir.clone(),
                message,
            };
            let journal: Journal =
                serde_json::from_str(&text).map_err(|e| damaged(e.to_string()))?;
            if journal.version != JOURNAL_VERSION {
                return Err(damaged(format!(
                    "journal version {} is not {JOURNAL_VERSION}",
                    journal.version
                )));
            }
            for p in journal.writes.iter().chain(&journal.deletes) {
                check_path(p).map_err(|e| damaged(e.to_string()))?;
            }
            apply(root, &dir, &journal)?;
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
            Ok(Recovery::RolledForward)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
            Ok(Recovery::Discarded)
        }
        Err(e) => Err(io(&commit)(e)),
    }
}

/// Renames the staged files into place and deletes the removed ones; each step can be repeated. A step
/// that fails leaves the journal in place and says which command finishes the job.
fn apply(root: &Path, dir: &Path, journal: &Journal) -> Result<(), TxnError> {
    let finish = |rel: &str| {
        let path = rel.to_string();
        move |err: TxnError| TxnError::Finish {
            path,
            err: Box::new(err),
        }
    };
    let staged = dir.join(STAGED);
    let mut touched_dirs = BTreeSet::new();
    let mut resolver = Resolver::default();
    for rel in &journal.writes {
        let from = staged.join(rel);
        if !from.exists() {
            // Moved by an earlier, interrupted recovery.
            continue;
        }
        let to = resolver
            .resolve(root, rel)
            .map_err(|e| finish(rel)(e.into()))?;
        let parent = to.parent().expect("a path under root").to_path_buf();
        if !touched_dirs.contains(&parent) {
            std::fs::create_dir_all(&parent).map_err(|e| finish(rel)(io(&parent)(e)))?;
        }
        point("apply-write");
        std::fs::rename(&from, &to).map_err(|e| finish(rel)(io(&to)(e)))?;
        touched_dirs.insert(parent);
    }
    for rel in &journal.deletes {
        let path = resolver
            .resolve(root, rel)
            .map_err(|e| finish(rel)(e.into()))?;
        point("apply-delete");
        match std::fs::remove_file(&path) {
            Ok(()) => {
                touched_dirs.insert(path.parent().expect("under root").to_path_buf());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(finish(rel)(io(&path)(e))),
        }
    }
    sync_dirs(&touched_dirs.into_iter().collect::<Vec<_>>())?;
    point("before-cleanup");
    Ok(())
}

/// Moves a finished transaction's directory into `.stack/tmp/` (one rename: its journal leaves `.stack/txn/`
/// at once) and removes it on a thread of its own, off the critical path (issue 15); what is left at exit
/// is removed by the next command's [`guard`] (a journal there is never replayed).
fn retire(root: &Path, dir: &Path) -> Result<(), TxnError> {
    let tmp = root.join(STATE_DIR).join(TMP);
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let retired = tmp.join(format!("txn-done-{}", std::process::id()));
    match std::fs::rename(dir, &retired) {
        Ok(()) => {
            std::thread::spawn(move || {
                let _ = std::fs::remove_dir_all(&retired);
            });
            Ok(())
        }
        Err(_) => std::fs::remove_dir_all(dir).map_err(io(dir)), // something in the way
    }
}

/// Flushes every staged file to disk before the commit point, a few at a time on their own threads: one
/// fsync per file in a row cost a cold lock of five charts 0.6 s (issue 15), while the filesystem's
/// journal serves concurrent flushes together.
fn sync_staged(staged: &Path, writes: &BTreeSet<String>) -> Result<(), TxnError> {
    let paths: Vec<PathBuf> = writes.iter().map(|rel| staged.join(rel)).collect();
    sync_in_parallel(&paths)
}

/// Flushes directories (their entries: files created, renamed or deleted in them) the same way. A cold
/// lock of ten charts touches ~100 directories twice, in the staging area and in vendor/: their fsyncs
/// one after another took ~3.5 ms each on this project's busy machine, together ~0.3 ms each.
fn sync_dirs(dirs: &[PathBuf]) -> Result<(), TxnError> {
    if cfg!(unix) {
        sync_in_parallel(dirs)
    } else {
        Ok(())
    }
}

fn sync_in_parallel(paths: &[PathBuf]) -> Result<(), TxnError> {
    let threads = std::thread::available_parallelism().map_or(4, |n| n.get().max(4));
    let chunk = paths.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = paths
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter().try_for_each(|path| {
                        std::fs::File::open(path)
                            .and_then(|f| f.sync_all())
                            .map_err(io(path))
                    })
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("an fsync thread does not panic"))
    })
}

fn sync_dir(dir: &Path) -> Result<(), TxnError> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(io(dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(unix)]
fn device(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| m.dev())
}

#[cfg(not(unix))]
fn device(_path: &Path) -> Option<u64> {
    None
}

/// Checks, before the commit point, that replacing or deleting `rel` will work: it resolves inside the
/// stack, is not a directory, and its directory exists (created here), is writable and is on the same
/// filesystem as the staging directory (a rename cannot cross filesystems).
///
/// The directory checks run once per directory (`checked`), and a directory created here is not
/// probed for writing: a cold lock of ten charts writes ~150 files into ~100 new directories, and a
/// probe file created and deleted for each file cost more than every other step of the commit on a
/// busy disk (issue 15).
fn preflight(
    root: &Path,
    staged: &Path,
    rel: &str,
    checked: &mut BTreeSet<PathBuf>,
    resolver: &mut Resolver,
) -> Result<(), TxnError> {
    let refuse = |why: String, help: String| TxnError::Preflight {
        path: rel.to_string(),
        why,
        help,
    };
    let target = resolver.resolve(root, rel)?;
    if std::fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
        return Err(refuse(
            "it is a directory".into(),
            format!("move the directory {rel} out of the way, then run `stack lock` again"),
        ));
    }
    let parent = target.parent().expect("a path under root");
    if checked.contains(parent) {
        return Ok(());
    }
    let existed = parent.is_dir();
    std::fs::create_dir_all(parent).map_err(|e| {
        refuse(
            format!("its directory cannot be created ({e})"),
            "make the stack's directory writable, then run `stack lock` again".into(),
        )
    })?;
    if device(parent) != device(staged) {
        return Err(refuse(
            format!(
                "its directory is on another filesystem than {STATE_DIR}/, so it cannot be replaced atomically"
            ),
            format!("keep {STATE_DIR}/ and vendor/ on one filesystem (e.g. do not mount or symlink one of them elsewhere), then run `stack lock` again"),
        ));
    }
    if existed {
        tempfile::Builder::new()
            .prefix(".stack-probe-")
            .tempfile_in(parent)
            .map_err(|e| {
                refuse(
                    format!("its directory is not writable ({e})"),
                    "make it writable (chmod u+w), then run `stack lock` again".into(),
                )
            })?;
    }
    checked.insert(parent.to_path_buf());
    Ok(())
}

/// A set of writes and deletions under a stack root that happen together or not at all.
#[derive(Debug)]
pub struct Transaction {
    root: PathBuf,
    dir: PathBuf,
    writes: BTreeSet<String>,
    deletes: BTreeSet<String>,
    /// Directories of the staging area made so far (one `mkdir` per directory, not per file).
    staged_dirs: BTreeSet<PathBuf>,
    /// Files the tasks staged and flushed while resolving, shared with them.
    staging: Arc<Staging>,
    /// Writes whose staged copy is already flushed (file and directories): the commit skips them.
    flushed: BTreeSet<String>,
    done: bool,
}

impl Transaction {
    /// Starts a transaction under the stack's guard, first finishing or discarding any interrupted one.
    pub fn begin(guard: &Guard) -> Result<Transaction, TxnError> {
        recover(guard)?;
        let root = guard.root.as_path();
        contain::resolve(root, &format!("{STATE_DIR}/{TXN}/{STAGED}"))?;
        let dir = txn_dir(root);
        let staged = dir.join(STAGED);
        std::fs::create_dir_all(&staged).map_err(io(&staged))?;
        Ok(Transaction {
            root: root.to_path_buf(),
            dir,
            writes: BTreeSet::new(),
            deletes: BTreeSet::new(),
            staged_dirs: BTreeSet::new(),
            staging: Arc::new(Staging::new(staged)),
            flushed: BTreeSet::new(),
            done: false,
        })
    }

    /// The staging area, for tasks that stage files before the transaction knows what it will write.
    pub fn staging(&self) -> Arc<Staging> {
        Arc::clone(&self.staging)
    }

    /// Stages `bytes` to become `rel` (stack.lock or a path under vendor/) on commit.
    pub fn write(&mut self, rel: &str, bytes: &[u8]) -> Result<(), TxnError> {
        check_path(rel)?;
        self.deletes.remove(rel);
        self.writes.insert(rel.to_string());
        if self.staging.take(rel, bytes) {
            self.flushed.insert(rel.to_string());
            return Ok(());
        }
        self.flushed.remove(rel);
        let path = self.dir.join(STAGED).join(rel);
        let parent = path.parent().expect("under the staging dir");
        if !self.staged_dirs.contains(parent) {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
            self.staged_dirs.insert(parent.to_path_buf());
        }
        point("stage");
        let mut file = std::fs::File::create(&path).map_err(io(&path))?;
        file.write_all(bytes).map_err(io(&path))?;
        Ok(())
    }

    /// Deletes `rel` on commit.
    pub fn delete(&mut self, rel: &str) -> Result<(), TxnError> {
        check_path(rel)?;
        if !self.writes.contains(rel) {
            self.deletes.insert(rel.to_string());
        }
        Ok(())
    }

    /// Everything that could fail after the commit point, checked before it: each write has its staged
    /// file, and each target can be replaced or deleted.
    fn check(&self) -> Result<(), TxnError> {
        let staged = self.dir.join(STAGED);
        for rel in &self.writes {
            let is_file = std::fs::symlink_metadata(staged.join(rel)).is_ok_and(|m| m.is_file());
            if !is_file {
                return Err(TxnError::Unstaged { path: rel.clone() });
            }
        }
        let (mut checked, mut resolver) = (BTreeSet::new(), Resolver::default());
        for rel in self.writes.iter().chain(&self.deletes) {
            preflight(&self.root, &staged, rel, &mut checked, &mut resolver)?;
        }
        Ok(())
    }

    /// Commits: after this returns, the new files are in place; if the process dies inside it, the next
    /// [`recover`] finishes the job (past the commit point) or discards it (before).
    pub fn commit(mut self) -> Result<(), TxnError> {
        self.check()?;
        let staged = self.dir.join(STAGED);
        let mut dirs: BTreeSet<PathBuf> = BTreeSet::from([staged.clone()]);
        let unflushed: BTreeSet<String> = self.writes.difference(&self.flushed).cloned().collect();
        for rel in &unflushed {
            let mut p = staged.join(rel);
            while let Some(parent) = p.parent() {
                if !parent.starts_with(&staged) {
                    break;
                }
                dirs.insert(parent.to_path_buf());
                p = parent.to_path_buf();
            }
        }
        sync_staged(&staged, &unflushed)?;
        sync_dirs(&dirs.into_iter().collect::<Vec<_>>())?;
        let journal = Journal {
            version: JOURNAL_VERSION,
            writes: self.writes.iter().cloned().collect(),
            deletes: self.deletes.iter().cloned().collect(),
        };
        let tmp = self.dir.join("commit.json.tmp");
        point("journal");
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(
            serde_json::to_string_pretty(&journal)
                .expect("strings")
                .as_bytes(),
        )
        .map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        let commit = self.dir.join(COMMIT);
        point("before-commit");
        std::fs::rename(&tmp, &commit).map_err(io(&commit))?;
        // Committed. From here on a failure is finished by the next `recover`.
        self.done = true;
        point("after-commit");
        sync_dir(&self.dir)?;
        apply(&self.root, &self.dir, &journal)?;
        retire(&self.root, &self.dir)
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.done {
            // Not committed: throw the staged files away (recover would do it next time anyway).
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests;
