//! What the staging does with an output directory that holds more than plain files and directories,
//! how it reports a rebuild that only removes, and the one-step swap.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use super::*;

/// A tree of two files written to `<dir>/out` once, and the scratch directory for the next build.
fn built(dir: &Path) -> (Tree, PathBuf, tempfile::TempDir) {
    let mut tree = Tree::default();
    tree.insert("a/b.yaml", "b\n");
    tree.insert("c.yaml", "c\n");
    let out = dir.join("out");
    let scratch = tempfile::tempdir_in(dir).unwrap();
    tree.write(&out, scratch.path()).unwrap();
    (tree, out, scratch)
}

fn check(tree: &Tree, out: &Path, scratch: &Path) -> Vec<String> {
    let mut staging = Staging::for_check(out, scratch);
    for (path, bytes) in &tree.files {
        staging.put(path.clone(), bytes.clone()).unwrap();
    }
    staging.differing_trees().unwrap();
    staging.differences().unwrap().unwrap()
}

#[test]
fn a_symlinked_file_with_the_right_bytes_is_replaced_by_a_plain_file() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, out, scratch) = built(dir.path());
    let outside = dir.path().join("outside.yaml");
    fs_err::write(&outside, "c\n").unwrap();
    fs_err::remove_file(out.join("c.yaml")).unwrap();
    std::os::unix::fs::symlink(&outside, out.join("c.yaml")).unwrap();

    assert_eq!(check(&tree, &out, scratch.path()), ["differs: c.yaml"]);
    assert!(tree.write(&out, scratch.path()).unwrap() > 0);
    let meta = fs_err::symlink_metadata(out.join("c.yaml")).unwrap();
    assert!(meta.is_file(), "a plain file now");
    assert_eq!(fs_err::metadata(&outside).unwrap().nlink(), 1);
}

#[test]
fn a_symlinked_directory_is_never_read_through_or_linked_from() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, out, scratch) = built(dir.path());
    let outside = dir.path().join("outside");
    fs_err::create_dir_all(&outside).unwrap();
    fs_err::write(outside.join("b.yaml"), "b\n").unwrap();
    fs_err::remove_dir_all(out.join("a")).unwrap();
    std::os::unix::fs::symlink(&outside, out.join("a")).unwrap();

    assert_eq!(
        check(&tree, &out, scratch.path()),
        ["differs: a/b.yaml", "unexpected: a"]
    );
    tree.write(&out, scratch.path()).unwrap();
    assert!(fs_err::symlink_metadata(out.join("a")).unwrap().is_dir());
    assert_eq!(
        fs_err::metadata(outside.join("b.yaml")).unwrap().nlink(),
        1,
        "the outside file was not hard-linked into the output"
    );
}

#[test]
fn a_fifo_in_out_is_reported_without_being_opened() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, out, scratch) = built(dir.path());
    let fifo = out.join("extra.fifo");
    crate::support::tree::mkfifo(&fifo);
    // Opening the FIFO would block this test forever; reading it as "odd" returns at once.
    assert_eq!(
        check(&tree, &out, scratch.path()),
        ["unexpected: extra.fifo"]
    );
    assert_eq!(tree.write(&out, scratch.path()).unwrap(), 1, "one removed");
    assert!(!fifo.exists());
}

#[test]
fn a_rebuild_that_only_removes_a_file_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, out, scratch) = built(dir.path());
    fs_err::write(out.join("notes.txt"), "mine").unwrap();
    assert_eq!(tree.write(&out, scratch.path()).unwrap(), 1);
    assert!(!out.join("notes.txt").exists());
    assert_eq!(tree.write(&out, scratch.path()).unwrap(), 0);
}

#[cfg(target_os = "linux")]
#[test]
fn exchange_swaps_two_directories_in_one_step() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    fs_err::create_dir_all(&a).unwrap();
    fs_err::create_dir_all(&b).unwrap();
    fs_err::write(a.join("from-a"), "").unwrap();
    fs_err::write(b.join("from-b"), "").unwrap();
    if !exchange(&a, &b).unwrap() {
        eprintln!("this filesystem cannot exchange; the build renames twice here");
        return;
    }
    assert!(a.join("from-b").is_file() && b.join("from-a").is_file());
}
