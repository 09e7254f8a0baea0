//! Containment: every path `stack` reads or writes on behalf of stack.lock, the journal, modules/ and
//! vendor/ stays inside the stack's directory after symlinks are resolved. A symlink leading out is an
//! error that names it; symlinks that stay inside the stack are followed.

#![allow(
    clippy::disallowed_methods,
    reason = "its errors are wrapped with the stack-relative path; fs_err would add the absolute one to output"
)]

use std::path::{Component, Path, PathBuf};

/// Why a stack-relative path was refused.
#[derive(Debug, thiserror::Error)]
pub enum ContainError {
    #[error("{link} is a symlink leading outside the stack (to {target}); `stack` reads and writes only inside the stack's directory\nhelp: replace the symlink with the files themselves")]
    Escapes { link: String, target: String },
    #[error("{link} is a symlink to nothing ({target})\nhelp: remove it or make it point inside the stack")]
    Dangling { link: String, target: String },
    #[error("{path:?} is not a plain relative path inside the stack")]
    NotRelative { path: String },
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
}

impl From<ContainError> for std::io::Error {
    fn from(e: ContainError) -> std::io::Error {
        match e {
            ContainError::Io { err, .. } => err,
            other => std::io::Error::new(std::io::ErrorKind::InvalidInput, other.to_string()),
        }
    }
}

fn io(path: &str) -> impl FnOnce(std::io::Error) -> ContainError {
    let path = path.to_string();
    move |err| ContainError::Io { path, err }
}

/// The real location of `rel` (a `/`-separated path relative to `root`), with every symlink on the way
/// resolved and checked to stay inside `root`. The path itself need not exist.
pub fn resolve(root: &Path, rel: &str) -> Result<PathBuf, ContainError> {
    resolve_in(&Canonical::new(root)?.0, rel)
}

/// A stack's directory resolved once (symlinks and all), for a command that reads many files in it
/// (a build reads every vendored dashboard): [`resolve`] without resolving the directory each time.
pub struct Canonical(PathBuf);

impl Canonical {
    /// `root`, canonicalized; the error names "the stack's directory".
    pub fn new(root: &Path) -> Result<Canonical, ContainError> {
        root.canonicalize()
            .map(Canonical)
            .map_err(io("the stack's directory"))
    }

    /// Reads `rel` under the directory, refusing a symlink that leads out of the stack ([`read`]).
    pub fn read(&self, rel: &str) -> std::io::Result<Vec<u8>> {
        read_file(&resolve_in(&self.0, rel)?)
    }
}

/// [`resolve`] under a `root` that is already canonical.
fn resolve_in(root: &Path, rel: &str) -> Result<PathBuf, ContainError> {
    let mut cur = root.to_path_buf();
    let mut shown = String::new();
    let mut parts = Path::new(rel).components().peekable();
    while let Some(part) = parts.next() {
        let Component::Normal(name) = part else {
            return Err(ContainError::NotRelative {
                path: rel.to_string(),
            });
        };
        if !shown.is_empty() {
            shown.push('/');
        }
        shown.push_str(&name.to_string_lossy());
        let next = cur.join(name);
        match std::fs::symlink_metadata(&next) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                cur = next;
                cur.extend(parts);
                return Ok(cur);
            }
            Err(e) => return Err(io(&shown)(e)),
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&next).map_err(io(&shown))?;
                let real = match next.canonicalize() {
                    Ok(real) => real,
                    Err(_) => {
                        return Err(ContainError::Dangling {
                            link: shown,
                            target: target.display().to_string(),
                        })
                    }
                };
                if !real.starts_with(root) {
                    return Err(ContainError::Escapes {
                        link: shown,
                        target: target.display().to_string(),
                    });
                }
                cur = real;
            }
            Ok(_) => cur = next,
        }
    }
    Ok(cur)
}

/// Reads `rel` under `root`, refusing a symlink that leads out of the stack and what is not a file
/// ([`read_file`]).
pub fn read(root: &Path, rel: &str) -> std::io::Result<Vec<u8>> {
    read_file(&resolve(root, rel)?)
}

/// Reads `rel` under `root` as UTF-8, as [`read`] does.
pub fn read_to_string(root: &Path, rel: &str) -> std::io::Result<String> {
    String::from_utf8(read(root, rel)?).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

/// Reads the file at `path` whole; a FIFO, socket or device is refused before it is opened (a FIFO
/// would block the read forever, `/dev/zero` never end it). A directory gives the system's error.
fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() && !meta.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, socket or device)",
        ));
    }
    std::fs::read(path)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_inside_are_followed_and_outside_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("vendor/real")).unwrap();
        std::fs::write(root.join("vendor/real/a.json"), "a").unwrap();
        symlink(root.join("vendor/real"), root.join("vendor/inside")).unwrap();
        symlink(outside.path(), root.join("vendor/out")).unwrap();
        symlink(root.join("nowhere"), root.join("vendor/dangling")).unwrap();
        assert_eq!(read(root, "vendor/inside/a.json").unwrap(), b"a");
        assert!(resolve(root, "vendor/new/b.json").is_ok());
        let err = resolve(root, "vendor/out/secret").unwrap_err().to_string();
        assert!(
            err.contains("vendor/out is a symlink leading outside"),
            "{err}"
        );
        let err = resolve(root, "vendor/dangling/x").unwrap_err().to_string();
        assert!(
            err.contains("vendor/dangling is a symlink to nothing"),
            "{err}"
        );
        let canonical = Canonical::new(root).unwrap();
        assert_eq!(canonical.read("vendor/inside/a.json").unwrap(), b"a");
        let err = canonical.read("vendor/out/secret").unwrap_err().to_string();
        assert!(err.contains("leading outside"), "resolved once: {err}");
        crate::support::tree::mkfifo(&root.join("vendor/fifo.json"));
        let err = read(root, "vendor/fifo.json").unwrap_err().to_string();
        assert!(
            err.contains("not a regular file"),
            "refused, not opened: {err}"
        );
        assert!(resolve(root, "../x").is_err());
        assert!(resolve(root, "/etc/passwd").is_err());
    }
}
