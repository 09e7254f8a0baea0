//! Finding the stack, as cargo finds a package: `stack.toml` in the starting directory (the current one,
//! or `-C DIR`) or the nearest parent that has one. Every command that needs a stack goes through here,
//! so a missing stack.toml is one error with one fix whatever the command.

use std::path::{Path, PathBuf};

use crate::manifest::MANIFEST_FILE;

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("-C takes a directory, and `{given}` is a file\nhelp: {help}")]
    NotADirectory { given: String, help: String },
    #[error("-C `{given}`: no such directory\nhelp: point -C at the directory that holds {MANIFEST_FILE}")]
    Missing { given: String },
    #[error("cannot use the current directory: {0}")]
    Cwd(std::io::Error),
    #[error("no {MANIFEST_FILE} in {start} or any parent directory\nhelp: run `stack init` to start a stack here, or point at one with `stack -C DIR`")]
    NoManifest { start: String },
}

/// The directory a command starts from: `-C DIR` (checked to be a directory) or the current directory
/// (`.`, so messages say `.` rather than an absolute path).
pub fn start(directory: Option<&Path>) -> Result<PathBuf, DiscoverError> {
    let Some(dir) = directory else {
        return Ok(PathBuf::from("."));
    };
    let given = dir.display().to_string();
    if dir.is_file() {
        let help = match dir.file_name().and_then(|n| n.to_str()) {
            Some(MANIFEST_FILE) => {
                let parent = dir
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                format!("use `-C {}`, the directory of that file", parent.display())
            }
            _ => format!("point -C at the directory that holds {MANIFEST_FILE}"),
        };
        return Err(DiscoverError::NotADirectory { given, help });
    }
    if !dir.is_dir() {
        return Err(DiscoverError::Missing { given });
    }
    Ok(dir.to_path_buf())
}

/// The stack's root: the nearest of `start` and its parents that holds a `stack.toml`. A relative
/// `start` is walked up from its absolute form; errors show it as given.
pub fn root(start: &Path) -> Result<PathBuf, DiscoverError> {
    if has_manifest(start) {
        return Ok(start.to_path_buf());
    }
    let absolute = std::path::absolute(start).map_err(DiscoverError::Cwd)?;
    absolute
        .ancestors()
        .find(|dir| has_manifest(dir))
        .map(Path::to_path_buf)
        .ok_or_else(|| DiscoverError::NoManifest {
            start: start.display().to_string(),
        })
}

/// Whether `dir` has an entry named stack.toml that is not a directory: a FIFO or a dangling link there is
/// this stack's (and refused when it is read), never a reason to move up to a parent's stack.
fn has_manifest(dir: &Path) -> bool {
    fs_err::symlink_metadata(dir.join(MANIFEST_FILE)).is_ok_and(|m| !m.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_parent_with_a_manifest_is_the_root() {
        let temp = tempfile::tempdir().unwrap();
        let stack = temp.path().join("stack");
        let deep = stack.join("modules/loki");
        fs_err::create_dir_all(&deep).unwrap();
        fs_err::write(stack.join(MANIFEST_FILE), "").unwrap();
        assert_eq!(root(&deep).unwrap(), stack);
        assert_eq!(root(&stack).unwrap(), stack);
        // A stack.toml that is not a file is still this directory's: its stack is not the parent's.
        crate::support::tree::mkfifo(&deep.join(MANIFEST_FILE));
        assert_eq!(root(&deep).unwrap(), deep);
    }

    #[test]
    fn a_file_given_to_dash_c_is_named_with_its_directory_as_the_fix() {
        let temp = tempfile::tempdir().unwrap();
        let file = temp.path().join(MANIFEST_FILE);
        fs_err::write(&file, "").unwrap();
        let e = start(Some(&file)).unwrap_err().to_string();
        assert!(e.contains("-C takes a directory"), "{e}");
        assert!(
            e.contains(&format!("use `-C {}`", temp.path().display())),
            "{e}"
        );
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let e = start(Some(Path::new("/nonexistent/stack-dir")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such directory"), "{e}");
    }
}
