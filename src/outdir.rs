//! Where `stack build --out` may write. A build replaces its output directory whole, so it writes only
//! where `stack` owns the directory: never the stack's own files (the root, stack.toml, stack.lock,
//! modules/, vendor/, `.stack/`, or a directory holding the stack), never version-control metadata or a
//! repository's working tree, and never an existing non-empty
//! directory without the [`MARKER`] file every build writes, unless `--force-out` says so.

#![allow(
    clippy::disallowed_methods,
    reason = "its errors are wrapped with the stack-relative path; fs_err would add the absolute one to output"
)]

use std::path::{Component, Path, PathBuf};

/// The file every build writes at the top of its output directory: the proof that `stack` owns it.
pub const MARKER: &str = ".stack-build";

/// What the marker file says.
pub const MARKER_TEXT: &str =
    "This directory is written by `stack build`, which replaces all of it on every build.\n";

/// Version-control metadata directories: an output directory can never be one, be inside one, or hold
/// one (it would be a repository's working tree), whatever `--force-out` says.
const VCS: [&str; 4] = [".git", ".hg", ".svn", ".jj"];

/// The stack's own paths, which an output directory can never be nor be inside.
const OWN: [&str; 6] = [
    "",
    "stack.toml",
    "stack.lock",
    "modules",
    "vendor",
    ".stack",
];

#[derive(Debug, thiserror::Error)]
pub enum OutError {
    #[error("refusing to write the build into {shown}: it is {what}, and a build replaces its output directory whole; nothing was changed\nhelp: choose another --out (the default is `[stack] flux.path`); --force-out does not override this")]
    Own { shown: String, what: String },
    #[error("refusing to write the build into {shown}: it is a file, not a directory; nothing was changed\nhelp: choose another --out (the default is `[stack] flux.path`)")]
    File { shown: String },
    #[error("refusing to write the build into {shown}: it is a symlink, and a build replaces its output directory whole (the link, not what it points to); nothing was changed\nhelp: give the directory itself as --out")]
    Symlink { shown: String },
    #[error("refusing to write the build into {shown}: it is a non-empty directory that `stack build` did not write (it has no {MARKER} file), and a build replaces its output directory whole; nothing was changed\nhelp: choose another --out, or pass --force-out to replace {shown} and everything in it")]
    NotOurs { shown: String },
    #[error("{shown}: {err}")]
    Io { shown: String, err: std::io::Error },
}

/// Checks that a build may replace `out` (as given on the command line, relative to `root` unless
/// absolute) and returns the directory to write.
pub fn check(root: &Path, out: &Path, force: bool) -> Result<PathBuf, OutError> {
    let shown = out.display().to_string();
    let io = |err| OutError::Io {
        shown: shown.clone(),
        err,
    };
    let path = root.join(out);
    let real = real_path(&path).map_err(io)?;
    let root_real = root.canonicalize().map_err(io)?;
    if root_real.starts_with(&real) {
        let what = if real == root_real {
            "the stack's directory".to_string()
        } else {
            "a directory holding the stack".to_string()
        };
        return Err(OutError::Own { shown, what });
    }
    for own in OWN.iter().filter(|o| !o.is_empty()) {
        let p = root_real.join(own);
        if real.starts_with(&p) {
            let what = if real == p {
                format!("the stack's {own}")
            } else {
                format!("inside the stack's {own}")
            };
            return Err(OutError::Own { shown, what });
        }
    }
    if let Some(what) = version_control(&real) {
        return Err(OutError::Own { shown, what });
    }
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(path),
        Err(e) => return Err(io(e)),
        Ok(m) if m.file_type().is_symlink() => return Err(OutError::Symlink { shown }),
        Ok(m) if !m.is_dir() => return Err(OutError::File { shown }),
        Ok(_) => {}
    }
    let mut entries = std::fs::read_dir(&path).map_err(io)?;
    let empty = entries.next().is_none();
    if empty || force || path.join(MARKER).is_file() {
        Ok(path)
    } else {
        Err(OutError::NotOurs { shown })
    }
}

/// Why `real` is version-control territory: a VCS metadata directory, inside one, or holding one.
fn version_control(real: &Path) -> Option<String> {
    let named = |c: Component| VCS.iter().any(|v| c.as_os_str() == *v);
    if real.components().any(named) {
        return Some("version-control metadata (a .git, .hg, .svn or .jj directory)".into());
    }
    VCS.iter()
        .find(|v| real.join(v).exists())
        .map(|v| format!("a repository's working tree (it holds {v})"))
}

/// `path` with symlinks resolved as far as it exists, and `.`/`..` folded in the rest.
fn real_path(path: &Path) -> std::io::Result<PathBuf> {
    let mut existing = path.to_path_buf();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(mut real) => {
                for part in rest.iter().rev() {
                    if part == ".." {
                        real.pop();
                    } else if part != "." {
                        real.push(part);
                    }
                }
                return Ok(real);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let Some(last) = existing.components().next_back() else {
                    return Err(e);
                };
                if matches!(last, Component::RootDir | Component::Prefix(_)) {
                    return Err(e);
                }
                rest.push(last.as_os_str().to_owned());
                existing.pop();
                if existing.as_os_str().is_empty() {
                    existing = PathBuf::from(".");
                }
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs_err::write(r.join("stack.toml"), "").unwrap();
        fs_err::create_dir_all(r.join("modules/loki")).unwrap();
        fs_err::create_dir_all(r.join("vendor/dashboards")).unwrap();
        fs_err::create_dir_all(r.join(".stack")).unwrap();
        dir
    }

    #[test]
    fn the_stacks_own_paths_are_refused_even_with_force() {
        let dir = stack();
        for out in [
            ".",
            "",
            "stack.toml",
            "stack.lock",
            "modules",
            "modules/",
            "vendor",
            ".stack",
            "modules/loki",
            "vendor/new",
            "./modules/../vendor",
            "..",
        ] {
            for force in [false, true] {
                let err = check(dir.path(), Path::new(out), force).unwrap_err();
                assert!(matches!(err, OutError::Own { .. }), "{out}: {err}");
                assert!(err.to_string().contains(&format!("into {out}:")), "{err}");
            }
        }
    }

    #[test]
    fn version_control_directories_and_working_trees_are_refused_even_with_force() {
        let dir = stack();
        let r = dir.path();
        std::fs::create_dir_all(r.join(".git/objects")).unwrap();
        std::fs::create_dir_all(r.join("elsewhere/.hg")).unwrap();
        for out in [
            ".git",
            ".git/objects",
            ".git/new",
            "elsewhere",
            "elsewhere/.hg",
        ] {
            let err = check(r, Path::new(out), true).unwrap_err();
            assert!(matches!(err, OutError::Own { .. }), "{out}: {err}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_out_is_refused_as_a_symlink() {
        let dir = stack();
        let r = dir.path();
        let target = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(target.path(), r.join("link")).unwrap();
        let err = check(r, Path::new("link"), true).unwrap_err();
        assert!(matches!(err, OutError::Symlink { .. }), "{err}");
    }

    #[test]
    fn unmarked_non_empty_directories_need_force_files_never() {
        let dir = stack();
        let r = dir.path();
        fs_err::create_dir_all(r.join("mine")).unwrap();
        fs_err::write(r.join("mine/notes.txt"), "x").unwrap();
        let err = check(r, Path::new("mine"), false).unwrap_err().to_string();
        assert!(
            err.contains("into mine:") && err.contains("--force-out"),
            "{err}"
        );
        assert!(check(r, Path::new("mine"), true).is_ok());
        fs_err::write(r.join("file"), "x").unwrap();
        assert!(check(r, Path::new("file"), true).is_err());
        fs_err::write(r.join("mine").join(MARKER), MARKER_TEXT).unwrap();
        assert!(check(r, Path::new("mine"), false).is_ok());
        fs_err::create_dir_all(r.join("empty")).unwrap();
        assert!(check(r, Path::new("empty"), false).is_ok());
        assert!(check(r, Path::new("out"), false).is_ok());
        assert!(check(r, Path::new("new/deeper/out"), false).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_to_a_protected_directory_is_refused() {
        let dir = stack();
        let r = dir.path();
        std::os::unix::fs::symlink(r.join("modules"), r.join("out")).unwrap();
        assert!(check(r, Path::new("out"), true).is_err());
    }
}
