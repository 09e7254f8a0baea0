//! Stack-relative paths resolved to real ones for a transaction's preflight and apply steps, each
//! directory once.

#![allow(
    clippy::disallowed_methods,
    reason = "symlink_metadata only; its errors fall back to the full resolution"
)]

use std::path::{Path, PathBuf};

use crate::contain::{self, ContainError};

/// [`contain::resolve`] with each directory resolved once: the ~150 files a cold lock of ten charts
/// writes live in ~100 directories, and a full resolution canonicalises the stack's root and stats every
/// component again, for each file and twice per commit (issue 15). Only the last component is looked at
/// per file; a symlink there (or anything unexpected) gets the full resolution and its checks.
#[derive(Default)]
pub(super) struct Resolver {
    dirs: std::collections::BTreeMap<String, PathBuf>,
}

impl Resolver {
    pub(super) fn resolve(&mut self, root: &Path, rel: &str) -> Result<PathBuf, ContainError> {
        let Some((dir, name)) = rel.rsplit_once('/') else {
            return contain::resolve(root, rel);
        };
        if matches!(name, "" | "." | "..") {
            return contain::resolve(root, rel);
        }
        let real_dir = match self.dirs.get(dir) {
            Some(real) => real.clone(),
            None => {
                let real = contain::resolve(root, dir)?;
                self.dirs.insert(dir.to_string(), real.clone());
                real
            }
        };
        let path = real_dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if !meta.file_type().is_symlink() => Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(path),
            _ => contain::resolve(root, rel),
        }
    }
}
