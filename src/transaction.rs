//! All-or-nothing writes of stack.lock and vendor/: a kill at any instant leaves either the old lock and
//! vendor files or the new ones, never a mix.
//!
//! A transaction stages every new file under `<root>/.stack/txn/staged/` (fsynced), then commits by
//! atomically renaming a journal into `<root>/.stack/txn/commit.json`: that rename is the commit point.
//! Only then are staged files renamed into place and removed files deleted, and the directory removed.
//! [`recover`], run at the start of `stack lock` and `stack build`, finishes a committed transaction (every
//! step is idempotent) and discards an uncommitted one. `.stack/` belongs in .gitignore.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::lock::{valid_vendor_path, LOCK_FILE};

pub const STATE_DIR: &str = ".stack";
const TXN: &str = "txn";
const STAGED: &str = "staged";
const COMMIT: &str = "commit.json";
const JOURNAL_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{path} is damaged ({message}); the interrupted `stack lock` cannot be finished: check stack.lock and vendor/ (e.g. with `git status`), then delete {dir}")]
    Journal {
        path: PathBuf,
        dir: PathBuf,
        message: String,
    },
    #[error(
        "refusing to write {path:?}: a transaction writes only stack.lock and files under vendor/"
    )]
    Path { path: String },
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

/// Held while a `stack` command reads or writes a stack: an exclusive advisory lock on its stack.toml.
/// Two `stack lock` runs on one stack would otherwise discard each other's staging, and a build could
/// read stack.lock and vendor/ halfway through a commit. Released when dropped (or when the process dies).
pub struct Guard {
    _file: Option<std::fs::File>,
}

/// Takes the stack's [`Guard`], waiting (and saying so) while another `stack` process holds it. A stack
/// without stack.toml gets an empty guard: the command reports the missing file itself.
pub fn guard(root: &Path) -> Result<Guard, TxnError> {
    let path = root.join(crate::manifest::MANIFEST_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Guard { _file: None }),
        Err(e) => return Err(io(&path)(e)),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!("waiting for another `stack` process working on this stack…");
            file.lock().map_err(io(&path))?;
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
    }
    Ok(Guard { _file: Some(file) })
}

/// Finishes or discards a transaction a killed `stack lock` left behind.
pub fn recover(root: &Path) -> Result<Recovery, TxnError> {
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
            Ok(Recovery::RolledForward)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
            Ok(Recovery::Discarded)
        }
        Err(e) => Err(io(&commit)(e)),
    }
}

/// Renames the staged files into place and deletes the removed ones; each step can be repeated.
fn apply(root: &Path, dir: &Path, journal: &Journal) -> Result<(), TxnError> {
    let staged = dir.join(STAGED);
    let mut touched_dirs = BTreeSet::new();
    for rel in &journal.writes {
        let from = staged.join(rel);
        let to = root.join(rel);
        if !from.exists() {
            // Moved by an earlier, interrupted recovery.
            continue;
        }
        let parent = to
            .parent()
            .expect("a relative path under root")
            .to_path_buf();
        std::fs::create_dir_all(&parent).map_err(io(&parent))?;
        std::fs::rename(&from, &to).map_err(io(&to))?;
        touched_dirs.insert(parent);
    }
    for rel in &journal.deletes {
        let path = root.join(rel);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                touched_dirs.insert(path.parent().expect("under root").to_path_buf());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
    }
    for d in &touched_dirs {
        sync_dir(d)?;
    }
    std::fs::remove_dir_all(dir).map_err(io(dir))?;
    if let Some(state) = dir.parent() {
        // Leave no empty .stack/ behind; another user of it keeps it non-empty.
        let _ = std::fs::remove_dir(state);
    }
    Ok(())
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

/// A set of writes and deletions under a stack root that happen together or not at all.
#[derive(Debug)]
pub struct Transaction {
    root: PathBuf,
    dir: PathBuf,
    writes: BTreeSet<String>,
    deletes: BTreeSet<String>,
    done: bool,
}

impl Transaction {
    /// Starts a transaction, first finishing or discarding any interrupted one.
    pub fn begin(root: &Path) -> Result<Transaction, TxnError> {
        recover(root)?;
        let dir = txn_dir(root);
        let staged = dir.join(STAGED);
        std::fs::create_dir_all(&staged).map_err(io(&staged))?;
        Ok(Transaction {
            root: root.to_path_buf(),
            dir,
            writes: BTreeSet::new(),
            deletes: BTreeSet::new(),
            done: false,
        })
    }

    /// Stages `bytes` to become `rel` (stack.lock or a path under vendor/) on commit.
    pub fn write(&mut self, rel: &str, bytes: &[u8]) -> Result<(), TxnError> {
        check_path(rel)?;
        let path = self.dir.join(STAGED).join(rel);
        let parent = path.parent().expect("under the staging dir");
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        let mut file = std::fs::File::create(&path).map_err(io(&path))?;
        file.write_all(bytes).map_err(io(&path))?;
        file.sync_all().map_err(io(&path))?;
        self.deletes.remove(rel);
        self.writes.insert(rel.to_string());
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

    /// Commits: after this returns, the new files are in place; if the process dies inside it, the next
    /// [`recover`] finishes the job (past the commit point) or discards it (before).
    pub fn commit(mut self) -> Result<(), TxnError> {
        let staged = self.dir.join(STAGED);
        let mut dirs: BTreeSet<PathBuf> = BTreeSet::from([staged.clone()]);
        for rel in &self.writes {
            let mut p = staged.join(rel);
            while let Some(parent) = p.parent() {
                if !parent.starts_with(&staged) {
                    break;
                }
                dirs.insert(parent.to_path_buf());
                p = parent.to_path_buf();
            }
        }
        for d in &dirs {
            sync_dir(d)?;
        }
        let journal = Journal {
            version: JOURNAL_VERSION,
            writes: self.writes.iter().cloned().collect(),
            deletes: self.deletes.iter().cloned().collect(),
        };
        let tmp = self.dir.join("commit.json.tmp");
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
        std::fs::rename(&tmp, &commit).map_err(io(&commit))?;
        sync_dir(&self.dir)?;
        // Committed. From here on a failure is finished by the next `recover`.
        self.done = true;
        apply(&self.root, &self.dir, &journal)
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.done {
            // Not committed: throw the staged files away (recover would do it next time anyway).
            let _ = std::fs::remove_dir_all(&self.dir);
            if let Some(state) = self.dir.parent() {
                let _ = std::fs::remove_dir(state);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn guard_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stack.toml"), "").unwrap();
        let held = super::guard(dir.path()).unwrap();
        let other = std::fs::File::open(dir.path().join("stack.toml")).unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(held);
        other.try_lock().unwrap();
    }

    use super::*;

    fn setup() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stack.lock"), "old lock").unwrap();
        std::fs::create_dir_all(dir.path().join("vendor/dashboards")).unwrap();
        std::fs::write(dir.path().join("vendor/dashboards/a.json"), "old a").unwrap();
        std::fs::write(dir.path().join("vendor/dashboards/gone.json"), "old gone").unwrap();
        dir
    }

    fn read(root: &Path, rel: &str) -> Option<String> {
        std::fs::read_to_string(root.join(rel)).ok()
    }

    fn stage(root: &Path) -> Transaction {
        let mut t = Transaction::begin(root).unwrap();
        t.write("stack.lock", b"new lock").unwrap();
        t.write("vendor/dashboards/a.json", b"new a").unwrap();
        t.write("vendor/dashboards/b.json", b"new b").unwrap();
        t.delete("vendor/dashboards/gone.json").unwrap();
        t
    }

    #[test]
    fn commit_replaces_everything() {
        let dir = setup();
        stage(dir.path()).commit().unwrap();
        let r = dir.path();
        assert_eq!(read(r, "stack.lock").unwrap(), "new lock");
        assert_eq!(read(r, "vendor/dashboards/a.json").unwrap(), "new a");
        assert_eq!(read(r, "vendor/dashboards/b.json").unwrap(), "new b");
        assert_eq!(read(r, "vendor/dashboards/gone.json"), None);
        assert!(!r.join(".stack").exists());
        assert_eq!(recover(r).unwrap(), Recovery::Clean);
    }

    #[test]
    fn killed_before_the_commit_point_keeps_the_old_state() {
        let dir = setup();
        let t = stage(dir.path());
        std::mem::forget(t); // as if killed: no Drop, staged files left behind
        assert!(dir.path().join(".stack/txn/staged/stack.lock").exists());
        assert_eq!(recover(dir.path()).unwrap(), Recovery::Discarded);
        let r = dir.path();
        assert_eq!(read(r, "stack.lock").unwrap(), "old lock");
        assert_eq!(read(r, "vendor/dashboards/a.json").unwrap(), "old a");
        assert_eq!(read(r, "vendor/dashboards/gone.json").unwrap(), "old gone");
        assert_eq!(read(r, "vendor/dashboards/b.json"), None);
        assert!(!r.join(".stack/txn").exists());
    }

    #[test]
    fn killed_after_the_commit_point_rolls_forward_even_half_applied() {
        let dir = setup();
        let r = dir.path();
        let t = stage(r);
        // Simulate the commit point, then a kill after moving only one file.
        let journal = Journal {
            version: JOURNAL_VERSION,
            writes: t.writes.iter().cloned().collect(),
            deletes: t.deletes.iter().cloned().collect(),
        };
        std::fs::write(t.dir.join(COMMIT), serde_json::to_string(&journal).unwrap()).unwrap();
        std::fs::rename(t.dir.join("staged/stack.lock"), r.join("stack.lock")).unwrap();
        std::mem::forget(t);
        assert_eq!(recover(r).unwrap(), Recovery::RolledForward);
        assert_eq!(read(r, "stack.lock").unwrap(), "new lock");
        assert_eq!(read(r, "vendor/dashboards/a.json").unwrap(), "new a");
        assert_eq!(read(r, "vendor/dashboards/b.json").unwrap(), "new b");
        assert_eq!(read(r, "vendor/dashboards/gone.json"), None);
        assert!(!r.join(".stack").exists());
    }

    #[test]
    fn dropped_transaction_leaves_nothing() {
        let dir = setup();
        drop(stage(dir.path()));
        assert!(!dir.path().join(".stack").exists());
        assert_eq!(read(dir.path(), "stack.lock").unwrap(), "old lock");
    }

    #[test]
    fn paths_outside_lock_and_vendor_are_refused() {
        let dir = setup();
        let mut t = Transaction::begin(dir.path()).unwrap();
        assert!(t.write("stack.toml", b"x").is_err());
        assert!(t.write("vendor/../stack.toml", b"x").is_err());
        assert!(t.delete("/etc/passwd").is_err());
    }

    #[test]
    fn a_damaged_journal_is_reported_not_guessed() {
        let dir = setup();
        let txn = dir.path().join(".stack/txn");
        std::fs::create_dir_all(&txn).unwrap();
        std::fs::write(
            txn.join(COMMIT),
            r#"{"version":1,"writes":["../../etc/x"],"deletes":[]}"#,
        )
        .unwrap();
        let err = recover(dir.path()).unwrap_err().to_string();
        assert!(err.contains("damaged"), "{err}");
    }
}
