//! `stack build`'s output with the cache of rendered dashboards (`rendered-v1/` of `STACK_CACHE_DIR`):
//! the same bytes from a cold, a warm, a torn and an unwritable cache, and `--check` still comparing
//! out/'s bytes when every dashboard comes from the cache (an entry's stored digest is never trusted
//! unless its header checks).

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

/// The tree hash as README defines it, computed here from out/'s files alone: blake3 over
/// `path NUL length NUL blake3(file)` of every file in path order, the output marker left out.
fn tree_hash_of(out: &Path) -> String {
    let mut h = blake3::Hasher::new();
    for (path, bytes) in read_tree(out).iter().filter(|(p, _)| *p != ".stack-build") {
        h.update(path.as_bytes());
        h.update(b"\0");
        h.update(bytes.len().to_string().as_bytes());
        h.update(b"\0");
        h.update(blake3::hash(bytes).as_bytes());
    }
    format!("tree blake3:{}", h.finalize().to_hex())
}

#[test]
fn the_printed_tree_hash_is_the_documented_one_from_a_cold_or_warm_cache() {
    let stack = Stack::with_community_dashboards();
    let out = stack.path().join("kubernetes");
    let cold = tree_line(&ok(&stack.stack(&["build"])));
    assert_eq!(
        cold,
        tree_hash_of(&out),
        "cold cache: digests of rendered text"
    );
    let warm = tree_line(&ok(&stack.stack(&["build", "--check"])));
    assert_eq!(warm, cold, "warm cache: digests from the entries");
    fs_err::write(out.join("namespaces.yaml"), "edited: true\n").unwrap();
    let rebuilt = tree_line(&ok(&stack.stack(&["build"])));
    assert_eq!(rebuilt, cold, "a rebuild over an edited out/");
}

#[test]
fn a_build_prunes_rendered_dashboards_no_build_wrote_for_30_days_once_a_day() {
    let stack = Stack::with_community_dashboards();
    let rendered = cache_dir(&stack).join("rendered-v1");
    fs_err::create_dir_all(&rendered).unwrap();
    let stale = |name: &str| {
        let path = rendered.join(name);
        fs_err::write(&path, "an entry of an older stack binary").unwrap();
        let file = fs_err::OpenOptions::new().write(true).open(&path).unwrap();
        let month = std::time::Duration::from_secs(31 * 24 * 60 * 60);
        let then = std::time::SystemTime::now() - month;
        file.file().set_modified(then).unwrap();
        path
    };
    let first = stale(&"a".repeat(64));
    ok(&stack.stack(&["build"]));
    assert!(!first.exists(), "pruned");
    assert!(rendered.join(".pruned").is_file());
    assert!(
        !entries(&cache_dir(&stack)).is_empty(),
        "this build's entries stay"
    );
    let second = stale(&"b".repeat(64));
    ok(&stack.stack(&["build"]));
    assert!(second.exists(), "not pruned twice in a day");
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
    let (rel, _, _) = edit_a_dashboard(&stack);
    check_names_a_change(&stack, &rel);
}

#[test]
fn check_does_not_trust_a_cache_entry_whose_digest_was_edited() {
    let stack = Stack::with_community_dashboards();
    ok(&stack.stack(&["build"]));
    let (rel, bytes, edited) = edit_a_dashboard(&stack);
    // The entry's header now states the edited file's digest: trusted, it would make out/ look right.
    let (was, now) = (
        blake3::hash(&bytes).to_hex().to_string(),
        blake3::hash(&edited).to_hex().to_string(),
    );
    let mut forged = 0;
    for (entry, _) in entries(&cache_dir(&stack)) {
        let text = fs_err::read(&entry).unwrap();
        let Some(at) = text.windows(64).position(|w| w == was.as_bytes()) else {
            continue;
        };
        let mut text = text;
        text[at..at + 64].copy_from_slice(now.as_bytes());
        fs_err::write(&entry, &text).unwrap();
        forged += 1;
    }
    assert_eq!(forged, 1, "one entry renders {rel}");
    check_names_a_change(&stack, &rel);
}

/// Changes one byte of the first dashboard in out/ (same length: only a comparison of the bytes can see
/// it); returns its path, its bytes before and after.
fn edit_a_dashboard(stack: &Stack) -> (String, Vec<u8>, Vec<u8>) {
    let tree = read_tree(&stack.path().join("kubernetes"));
    let (rel, bytes) = tree
        .into_iter()
        .find(|(p, _)| p.contains("/dashboards/"))
        .expect("a dashboard in the tree");
    let mut edited = bytes.clone();
    let at = edited.iter().position(|b| *b == b'"').unwrap();
    edited[at] = b' ';
    fs_err::write(stack.path().join("kubernetes").join(&rel), &edited).unwrap();
    (rel, bytes, edited)
}

/// `build --check` exits 1 naming `rel` as changed.
#[track_caller]
fn check_names_a_change(stack: &Stack, rel: &str) {
    let out = stack.stack(&["build", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("changed: {rel}")),
        "{}",
        text(&out.stderr)
    );
}
