//! Never lose, mix or leak data: the process lock, `--out` safety, symlink containment and kill -9 at
//! every step of `stack lock`, through the real binary. Pause points (`STACK_TEST_PAUSE_AT`, debug builds
//! only, see src/faults.rs) stop the process at an exact step, so nothing here depends on timing.
//! Symlinks, credentials and lock integrity are in `reliability_symlinks`, `reliability_credentials` and
//! `reliability_integrity`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::{self, dashboard_bytes, HttpServer, Running, TestStack};

/// Two dashboards' bytes: what `old/` and `new/` serve.
pub(crate) const OLD_FILE: &str = "etcd.json";
pub(crate) const NEW_FILE: &str = "flux-cluster.json";

/// A server of `/old/dN.json` and `/new/dN.json` for N in 1..=n.
pub(crate) fn dashboards(n: usize) -> HttpServer {
    let server = HttpServer::start();
    for i in 1..=n {
        server.serve(&format!("/old/d{i}.json"), dashboard_bytes(OLD_FILE));
        server.serve(&format!("/new/d{i}.json"), dashboard_bytes(NEW_FILE));
    }
    server
}

/// stack.toml inputs: dashboards `dN` for N in `range`, from `server`'s `dir`.
pub(crate) fn inputs(
    server: &HttpServer,
    dir: &str,
    range: std::ops::RangeInclusive<usize>,
) -> String {
    range
        .map(|i| {
            format!(
                "[dashboards.d{i}]\nurl = \"{}/{dir}/d{i}.json\"\nfolder = \"Tests\"\n\n",
                server.url()
            )
        })
        .collect()
}

/// Replaces stack.toml by rename, as `sed -i`, `git checkout` and most editors do.
fn replace_by_rename(stack: &TestStack, inputs: &str) {
    let text = format!("{}\n{inputs}", crate::support::stack::MINIMAL_HEADER);
    let tmp = stack.root().join("stack.toml.new");
    fs_err::write(&tmp, text).unwrap();
    fs_err::rename(&tmp, stack.root().join("stack.toml")).unwrap();
}

/// Waits until `running` paused at its pause point (the file appeared) or exited; true when paused.
fn paused(running: &mut Running, file: &Path) -> bool {
    support::wait_until("the process to pause or exit", || {
        file.exists() || !running.is_running()
    });
    file.exists()
}

fn pause_env(stack: &mut TestStack, at: &str, file: &Path) {
    stack.env("STACK_TEST_PAUSE_AT", at);
    stack.env("STACK_TEST_PAUSE_FILE", &file.display().to_string());
}

fn no_pause(stack: &mut TestStack) {
    stack.remove_env("STACK_TEST_PAUSE_AT");
    stack.remove_env("STACK_TEST_PAUSE_FILE");
}

#[test]
fn two_locks_with_stack_toml_replaced_by_rename_between_them_end_consistent() {
    let server = dashboards(7);
    let mut stack = TestStack::with_inputs(&inputs(&server, "old", 1..=5));
    stack.lock(&[]).success();

    // First lock: the new inputs, stopped with everything staged, just before its commit point.
    let pause = stack.fresh_dir("pause").join("first");
    replace_by_rename(
        &stack,
        &(inputs(&server, "new", 1..=5) + &inputs(&server, "new", 6..=6)),
    );
    pause_env(&mut stack, "before-commit", &pause);
    let mut first = stack.spawn(&["lock"]);
    assert!(paused(&mut first, &pause), "{:?}", first.output_so_far());

    // stack.toml is replaced by rename (a new inode), and a second lock starts: it must wait.
    no_pause(&mut stack);
    let second_inputs = inputs(&server, "new", 1..=5) + &inputs(&server, "new", 7..=7);
    replace_by_rename(&stack, &second_inputs);
    let mut second = stack.spawn(&["lock"]);
    support::wait_until("the second lock to wait or finish", || {
        second.output_so_far().1.contains("waiting for another") || !second.is_running()
    });
    assert!(
        second.is_running(),
        "the second lock did not wait for the first: {:?}",
        second.output_so_far()
    );

    fs_err::remove_file(&pause).unwrap();
    first.wait().success();
    second.wait().success();
    stack.lock(&["--check"]).success();
    let locked = stack.locked_names("dashboard");
    assert!(locked.contains(&"d7".to_string()), "{locked:?}");
    assert!(!locked.contains(&"d6".to_string()), "{locked:?}");
    for i in [1, 2, 3, 4, 5, 7] {
        assert_eq!(
            stack.read_bytes(&format!("vendor/dashboards/d{i}.json")),
            dashboard_bytes(NEW_FILE)
        );
    }
    assert!(!stack.exists("vendor/dashboards/d6.json"));
}

/// Writes `state` (as [`TestStack::locked_state`] returns it) back as stack.lock and vendor/.
fn restore(stack: &TestStack, state: &BTreeMap<String, Vec<u8>>) {
    let _ = fs_err::remove_dir_all(stack.root().join("vendor"));
    let _ = fs_err::remove_file(stack.root().join("stack.lock"));
    for (rel, bytes) in state {
        stack.write(rel, bytes);
    }
}

/// The state as the next command leaves it. That command (`stack lock --check`) finishes or discards the
/// interrupted lock first, then says up to date (exit 0) exactly when the state is the new one.
fn after_next_command(
    stack: &TestStack,
    new: &BTreeMap<String, Vec<u8>>,
) -> BTreeMap<String, Vec<u8>> {
    let out = stack.lock(&["--check"]);
    assert!(!stack.exists(".stack/txn"), "{out:?}");
    let state = stack.locked_state();
    let expected = if state == *new { 0 } else { 1 };
    assert_eq!(out.code, expected, "{out:?}");
    state
}

#[test]
fn kill_9_at_every_step_of_a_lock_leaves_the_old_or_the_new_state() {
    // 24 dashboards change bytes, 3 are removed, 3 are added: more than 50 steps to stop at.
    let server = dashboards(30);
    let old_inputs = inputs(&server, "old", 1..=27);
    let new_inputs = inputs(&server, "new", 1..=24) + &inputs(&server, "new", 28..=30);
    let mut stack = TestStack::with_inputs(&old_inputs);
    stack.lock(&[]).success();
    let old = stack.locked_state();
    stack.set_inputs(&new_inputs);
    stack.lock(&[]).success();
    let new = stack.locked_state();
    assert_ne!(old, new);

    let pause = stack.fresh_dir("pause").join("point");
    let (mut killed, mut at_old, mut at_new) = (0, 0, 0);
    let mut steps = BTreeMap::<String, usize>::new();
    for n in 1.. {
        restore(&stack, &old);
        pause_env(&mut stack, &n.to_string(), &pause);
        let mut running = stack.spawn(&["lock", "--jobs", "1"]);
        if !paused(&mut running, &pause) {
            running.wait().success();
            no_pause(&mut stack);
            assert_eq!(stack.locked_state(), new, "an uninterrupted lock");
            break;
        }
        let step = fs_err::read_to_string(&pause).unwrap();
        running.kill();
        fs_err::remove_file(&pause).unwrap();
        killed += 1;
        *steps
            .entry(step.split_whitespace().nth(1).unwrap().to_string())
            .or_default() += 1;
        no_pause(&mut stack);
        let state = after_next_command(&stack, &new);
        if state == old {
            at_old += 1;
        } else if state == new {
            at_new += 1;
        } else {
            panic!("killed at step {step}: neither the old nor the new state");
        }
        // And the next lock always gets to the new state.
        if n % 10 == 0 {
            stack.lock(&[]).success();
            assert_eq!(stack.locked_state(), new);
        }
    }
    println!("kill -9 at {killed} points {steps:?}: {at_old} left the old state, {at_new} the new");
    assert!(killed >= 50, "only {killed} kill points: {steps:?}");
    assert!(steps.contains_key("before-commit") && steps.contains_key("after-commit"));
    assert!(at_old > 0 && at_new > 0);
}

// ----- --out ---------------------------------------------------------------------------------------------

/// A stack from the repo's modules with a user file in each place a build must never replace.
fn stack_with_user_files() -> TestStack {
    let stack = TestStack::from_repo();
    stack.write("vendor/dashboards/mine.json", "{}");
    stack.write(".stack/keep", "state");
    stack.write("docs/notes.md", "my notes");
    stack
}

/// Every file of the stack but the process lock (which the first command creates).
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut tree = support::read_tree(root);
    tree.remove(".stack/lock");
    tree
}

/// The paths that differ between two snapshots (not their bytes: they can be large).
fn changed(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

#[test]
fn out_into_the_stacks_own_places_exits_2_and_deletes_nothing() {
    let stack = stack_with_user_files();
    let before = snapshot(stack.root());
    let parent = stack.root().parent().unwrap().display().to_string();
    for out in [
        ".",
        "stack.toml",
        "stack.lock",
        "modules",
        "modules/loki",
        "vendor",
        ".stack",
        &parent,
    ] {
        for force in [false, true] {
            let mut args = vec!["build", "--out", out];
            if force {
                args.push("--force-out");
            }
            stack
                .run(&args)
                .code(2)
                .mentions(&[&format!("into {out}:"), "nothing was changed"]);
            let after = snapshot(stack.root());
            assert!(
                after == before,
                "--out {out} changed {:?}",
                changed(&before, &after)
            );
        }
    }
    stack
        .run(&["build", "--out", "docs"])
        .code(2)
        .mentions(&["into docs:", "--force-out"]);
    let after = snapshot(stack.root());
    assert!(after == before, "changed {:?}", changed(&before, &after));
}

/// A stack that builds without inputs: the repo's modules, nothing enabled, an empty lock.
pub(crate) fn buildable_stack() -> TestStack {
    let stack = TestStack::with_inputs("[settings]\ncluster_name = \"test\"\n");
    stack.copy_repo_modules();
    stack.lock(&["--offline"]).success();
    stack
}

fn top_level(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs_err::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn out_writes_its_marker_replaces_only_its_own_directory_and_cleans_temporaries() {
    let stack = buildable_stack();
    // What killed builds of earlier versions left beside out/, and a killed build's scratch directory.
    stack.write(".stack-old-x1/out/a.yaml", "old");
    stack.write(".stack-out-x2/a.yaml", "staged");
    stack.write(".stack/tmp/build-x3/new/a.yaml", "staged");
    stack.run(&["build"]).success();
    assert!(stack.exists("kubernetes/.stack-build"));
    // A rebuild with nothing changed says it wrote nothing.
    let again = stack.run(&["build"]).success();
    assert!(
        again
            .stdout
            .starts_with("built kubernetes, already up to date (nothing written)"),
        "{}",
        again.stdout
    );
    assert_eq!(
        top_level(stack.root()),
        [
            ".stack",
            "kubernetes",
            "modules",
            "stack.lock",
            "stack.toml"
        ]
    );
    assert_eq!(top_level(&stack.root().join(".stack")), ["lock"]);
    // Its own directory is replaced; --check ignores the marker.
    stack.write("kubernetes/stale.yaml", "x");
    stack.run(&["build"]).success();
    assert!(!stack.exists("kubernetes/stale.yaml"));
    stack.run(&["build", "--check"]).success();
    // An empty directory is fine; a user's directory needs --force-out, and then gets the marker.
    fs_err::create_dir_all(stack.root().join("empty")).unwrap();
    stack.run(&["build", "--out", "empty"]).success();
    let elsewhere = stack.fresh_dir("elsewhere");
    fs_err::write(elsewhere.join("notes.md"), "mine").unwrap();
    let shown = elsewhere.display().to_string();
    stack
        .run(&["build", "--out", &shown])
        .code(2)
        .mentions(&["--force-out"]);
    assert_eq!(
        fs_err::read_to_string(elsewhere.join("notes.md")).unwrap(),
        "mine"
    );
    stack
        .run(&["build", "--out", &shown, "--force-out"])
        .success();
    assert!(elsewhere.join(".stack-build").is_file());
    stack.run(&["build", "--out", &shown]).success();
}
