//! `stack build`'s output with the cache of rendered dashboards (`rendered-v1/` of `STACK_CACHE_DIR`):
//! the same bytes from a cold, a warm, a torn and an unwritable cache, and `--check` still comparing
//! out/'s bytes when every dashboard comes from the cache.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use crate::build::{ok, text, Stack};
use crate::support::tree::read_tree;

/// The stack's `STACK_CACHE_DIR` (the test harness puts it beside the stack's directory).
fn cache_dir(stack: &Stack) -> PathBuf {
    stack.path().parent().unwrap().join("cache")
}

/// The rendered-dashboard entries of the cache, with their inodes (an entry written again gets a new
/// one: entries are renamed into place).
fn entries(cache: &Path) -> Vec<(PathBuf, u64)> {
    let mut out: Vec<_> = fs_err::read_dir(cache.join("rendered-v1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| {
            let ino = fs_err::metadata(&p).unwrap().ino();
            (p, ino)
        })
        .collect();
    out.sort();
    out
}

fn tree_line(summary: &str) -> String {
    let line = summary.lines().find(|l| l.contains("tree blake3:"));
    line.unwrap_or_else(|| panic!("no tree hash in {summary}"))
        .to_string()
}

#[test]
fn the_render_cache_never_changes_the_output() {
    let stack = Stack::with_community_dashboards();
    let (out, cache) = (stack.path().join("kubernetes"), cache_dir(&stack));
    let cold = tree_line(&ok(&stack.stack(&["build"])));
    let tree = read_tree(&out);
    let before = entries(&cache);
    let dashboards = tree.keys().filter(|p| p.contains("/dashboards/")).count();
    assert_eq!(before.len(), dashboards, "one entry per rendered dashboard");

    fs_err::remove_dir_all(&out).unwrap();
    assert_eq!(tree_line(&ok(&stack.stack(&["build"]))), cold, "warm cache");
    assert_eq!(read_tree(&out), tree);
    assert_eq!(
        entries(&cache),
        before,
        "every dashboard came from the cache"
    );

    for (entry, _) in &before {
        let bytes = fs_err::read(entry).unwrap();
        fs_err::write(entry, &bytes[..bytes.len() / 2]).unwrap();
    }
    fs_err::remove_dir_all(&out).unwrap();
    assert_eq!(
        tree_line(&ok(&stack.stack(&["build"]))),
        cold,
        "torn entries"
    );
    assert_eq!(read_tree(&out), tree);

    fs_err::remove_dir_all(&cache).unwrap();
    fs_err::write(&cache, "not a directory").unwrap();
    fs_err::remove_dir_all(&out).unwrap();
    assert_eq!(
        tree_line(&ok(&stack.stack(&["build"]))),
        cold,
        "unwritable cache"
    );
    assert_eq!(read_tree(&out), tree);
}

#[test]
fn check_finds_an_edited_dashboard_when_the_cache_is_warm() {
    let stack = Stack::with_community_dashboards();
    ok(&stack.stack(&["build"]));
    ok(&stack.stack(&["build", "--check"]));
    let tree = read_tree(&stack.path().join("kubernetes"));
    let (rel, bytes) = tree
        .iter()
        .find(|(p, _)| p.contains("/dashboards/"))
        .expect("a dashboard in the tree");
    // Same length, one byte changed: only a comparison of the bytes can see it.
    let mut edited = bytes.clone();
    let at = edited.iter().position(|b| *b == b'"').unwrap();
    edited[at] = b' ';
    fs_err::write(stack.path().join("kubernetes").join(rel), &edited).unwrap();
    let out = stack.stack(&["build", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("changed: {rel}")),
        "{}",
        text(&out.stderr)
    );
}
