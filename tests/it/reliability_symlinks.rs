//! Symlink containment: a lock entry, vendor/dashboards, a planted journal or a module file that is a
//! symlink out of the stack is never read, written or deleted through.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::reliability::{buildable_stack, dashboards, inputs};
use crate::support::{self, TestStack};

/// A directory outside the stack holding one file, and its contents, to prove nothing there changed.
fn outside(stack: &TestStack) -> (PathBuf, BTreeMap<String, Vec<u8>>) {
    let dir = stack.fresh_dir("outside");
    fs_err::write(dir.join("victim.json"), "precious").unwrap();
    let before = support::read_tree(&dir);
    (dir, before)
}

#[cfg(unix)]
#[test]
fn a_lock_entry_under_a_symlink_out_of_vendor_is_never_deleted_through_it() {
    let server = dashboards(1);
    let stack = TestStack::with_inputs(&inputs(&server, "old", 1..=1));
    stack.lock(&[]).success();
    let (dir, before) = outside(&stack);
    std::os::unix::fs::symlink(&dir, stack.root().join("vendor/link")).unwrap();
    let lock = stack
        .lock_text()
        .replace("vendor/dashboards/d1.json", "vendor/link/victim.json");
    stack.write("stack.lock", lock);
    stack.set_inputs("");
    stack
        .lock(&["--offline"])
        .code(2)
        .mentions(&["vendor/link is a symlink leading outside the stack"]);
    assert_eq!(support::read_tree(&dir), before);
}

#[cfg(unix)]
#[test]
fn a_vendor_dashboards_symlink_out_of_the_stack_is_never_written_through() {
    let server = dashboards(1);
    let stack = TestStack::with_inputs(&inputs(&server, "old", 1..=1));
    let (dir, before) = outside(&stack);
    fs_err::create_dir_all(stack.root().join("vendor")).unwrap();
    std::os::unix::fs::symlink(&dir, stack.root().join("vendor/dashboards")).unwrap();
    stack
        .lock(&[])
        .code(2)
        .mentions(&["vendor/dashboards is a symlink leading outside the stack"]);
    assert_eq!(support::read_tree(&dir), before);
    assert!(!stack.exists("stack.lock"));
}

#[cfg(unix)]
#[test]
fn a_planted_journal_cannot_make_a_build_write_or_delete_outside_the_stack() {
    let stack = buildable_stack();
    let (dir, before) = outside(&stack);
    fs_err::create_dir_all(stack.root().join("vendor")).unwrap();
    std::os::unix::fs::symlink(&dir, stack.root().join("vendor/link")).unwrap();
    stack.write(".stack/txn/staged/vendor/link/new.json", "planted");
    stack.write(
        ".stack/txn/commit.json",
        r#"{"version":1,"writes":["vendor/link/new.json"],"deletes":["vendor/link/victim.json"]}"#,
    );
    stack.run(&["build"]).code(2).mentions(&[
        "vendor/link is a symlink leading outside the stack",
        "help:",
    ]);
    assert_eq!(support::read_tree(&dir), before);
    assert!(!stack.exists("kubernetes"));
}

#[cfg(unix)]
#[test]
fn a_module_file_that_is_a_symlink_out_of_the_stack_is_refused() {
    let stack = buildable_stack();
    let secret = stack.fresh_dir("outside").join("secret.yaml");
    fs_err::write(&secret, "groups: [] # outside-secret\n").unwrap();
    let file = stack.root().join("modules/alerts/hubble-rules.yaml");
    fs_err::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(&secret, &file).unwrap();
    stack
        .run(&["build"])
        .code(2)
        .mentions(&["modules/alerts/hubble-rules.yaml is a symlink leading outside the stack"])
        .never_shows("outside-secret");
    assert!(!stack.exists("kubernetes"));
}
