//! Directory trees as maps of relative path to bytes: read one, copy one; and a FIFO to put in one.

use std::path::Path;

/// Every file under `dir`, by path relative to it (with `/`), with its bytes. Empty when `dir` is missing.
pub fn read_tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = fs_err::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, fs_err::read(&path).unwrap());
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// Copies a directory tree (files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
    fs_err::create_dir_all(to).unwrap_or_else(|e| panic!("creating {}: {e}", to.display()));
    for (rel, bytes) in read_tree(from) {
        let dest = to.join(&rel);
        fs_err::create_dir_all(dest.parent().unwrap()).unwrap();
        fs_err::write(&dest, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", dest.display()));
    }
}

/// Makes a FIFO at `path` (mkfifo(1)): what tests put where a file is expected, since reading one would
/// block forever.
pub fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo").arg(path).status();
    assert!(made.unwrap().success(), "mkfifo {}", path.display());
}
