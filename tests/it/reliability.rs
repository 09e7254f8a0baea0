//! Never lose, mix or leak data: the process lock, `--out` safety, symlink containment and kill -9 at
//! every step of `stack lock`, through the real binary. Pause points (`STACK_TEST_PAUSE_AT`, debug builds
//! only, see src/faults.rs) stop the process at an exact step, so nothing here depends on timing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::{self, dashboard_bytes, HttpServer, Running, TestStack};

/// Two dashboards' bytes: what `old/` and `new/` serve.
const OLD_FILE: &str = "etcd.json";
const NEW_FILE: &str = "flux-cluster.json";

/// A server of `/old/dN.json` and `/new/dN.json` for N in 1..=n.
fn dashboards(n: usize) -> HttpServer {
    let server = HttpServer::start();
    for i in 1..=n {
        server.serve(&format!("/old/d{i}.json"), dashboard_bytes(OLD_FILE));
        server.serve(&format!("/new/d{i}.json"), dashboard_bytes(NEW_FILE));
    }
    server
}

/// stack.toml inputs: dashboards `dN` for N in `range`, from `server`'s `dir`.
fn inputs(server: &HttpServer, dir: &str, range: std::ops::RangeInclusive<usize>) -> String {
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
fn buildable_stack() -> TestStack {
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

// ----- symlinks --------------------------------------------------------------------------------------------

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

// ----- credentials -----------------------------------------------------------------------------------------

const SECRET: &str = "hunter2-planted";

/// Asserts the secret is nowhere but where the test planted it (stack.toml): not in stack.lock, vendor/,
/// out/, `.stack/` or the cache, not in any request a server received.
fn secret_nowhere(stack: &TestStack, servers: &[&HttpServer]) {
    for dir in [stack.root(), stack.cache_dir()] {
        for (path, bytes) in support::read_tree(dir) {
            let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
            assert!(path == "stack.toml" || !found, "{path} holds the secret");
        }
    }
    for server in servers {
        for r in server.requests() {
            let logged = format!("{} {:?}", r.target, r.headers);
            assert!(
                !logged.contains(SECRET),
                "a server saw the secret: {logged}"
            );
        }
    }
}

#[test]
fn userinfo_is_refused_in_every_url_field_with_one_message() {
    let server = dashboards(1);
    let host = server.url().trim_start_matches("http://").to_string();
    let with_secret = format!("http://user:{SECRET}@{host}");
    let cases = [
        (
            "`url`",
            format!("[dashboards.d1]\nurl = \"{with_secret}/old/d1.json\"\nfolder = \"T\"\n"),
            vec![],
        ),
        (
            "[mirrors]",
            format!(
                "{}[mirrors]\n\"{}\" = {{ to = \"{with_secret}\", cluster = true }}\n",
                inputs(&server, "old", 1..=1),
                server.url()
            ),
            vec![],
        ),
        (
            "the target",
            inputs(&server, "old", 1..=1),
            vec![
                "--mirror".to_string(),
                format!("{}={with_secret}", server.url()),
            ],
        ),
        (
            "the target",
            format!("[charts.c]\noci = \"oci://{host}/charts/c\"\nversion = \"1.0.0\"\n"),
            vec![
                "--mirror".to_string(),
                format!("{host}=oci://user:{SECRET}@{host}"),
            ],
        ),
    ];
    for (field, toml, flags) in cases {
        let stack = TestStack::with_inputs(&toml);
        let mut args = vec!["lock"];
        args.extend(flags.iter().map(String::as_str));
        stack
            .run(&args)
            .code(2)
            .mentions(&[
                &format!("{field}: credentials do not belong in a URL"),
                "help:",
            ])
            .never_shows(SECRET);
        stack.run(&["build"]).code(2).never_shows(SECRET);
        assert!(!stack.exists("stack.lock") && !stack.exists("kubernetes"));
        secret_nowhere(&stack, &[&server]);
    }
    assert!(server.requests().is_empty(), "nothing was fetched");
}

#[test]
fn a_registry_auth_entry_that_can_never_match_is_an_error_without_the_secret() {
    let server = dashboards(1);
    let mut stack = TestStack::with_inputs(&inputs(&server, "old", 1..=1));
    stack.env(
        "STACK_REGISTRY_AUTH",
        &format!("127.0.0.1:50x0=user:{SECRET}"),
    );
    stack
        .lock(&[])
        .code(2)
        .mentions(&["STACK_REGISTRY_AUTH: entry 1"])
        .never_shows(SECRET);
    secret_nowhere(&stack, &[&server]);
}

#[test]
fn docker_credential_helpers_are_named_in_a_warning() {
    let server = dashboards(1);
    let stack = TestStack::with_inputs(&inputs(&server, "old", 1..=1));
    fs_err::write(
        stack.docker_config_dir().join("config.json"),
        r#"{"auths": {}, "credsStore": "desktop", "credHelpers": {"ghcr.io": "gcloud"}}"#,
    )
    .unwrap();
    stack.lock(&[]).success().mentions(&[
        "warning:",
        "`credsStore: desktop` is not supported",
        "`credHelpers.ghcr.io: gcloud` is not supported",
    ]);
}

// ----- lock integrity ------------------------------------------------------------------------------------

#[test]
fn check_flags_an_extra_vendored_file_and_a_sha256_that_does_not_match() {
    let server = dashboards(1);
    let stack = TestStack::with_inputs(&inputs(&server, "old", 1..=1));
    stack.lock(&[]).success();
    stack.lock(&["--check"]).success();

    stack.write("vendor/dashboards/extra.json", "{}");
    stack
        .lock(&["--check"])
        .code(1)
        .mentions(&["vendor/dashboards/extra.json is not in stack.lock"]);
    // `stack lock` (offline too) removes it, as the check asks, and the check then passes.
    stack.lock(&["--offline"]).success();
    assert!(!stack.exists("vendor/dashboards/extra.json"));
    stack.lock(&["--check"]).success();

    // The blake3 still matches; only the recorded sha256 is wrong.
    let locked = support::sha256(&dashboard_bytes(OLD_FILE));
    let other = support::sha256(b"other bytes");
    stack.write("stack.lock", stack.lock_text().replace(&locked, &other));
    stack
        .lock(&["--check"])
        .code(1)
        .mentions(&["vendor/dashboards/d1.json does not match stack.lock (sha256"]);
}

#[test]
fn check_remote_compares_upstream_sha256() {
    let server = dashboards(1);
    let stack = TestStack::with_inputs(&inputs(&server, "old", 1..=1));
    stack.lock(&[]).success();
    stack.lock(&["--check", "--remote"]).success();
    server.serve("/old/d1.json", dashboard_bytes(NEW_FILE));
    stack
        .lock(&["--check", "--remote"])
        .code(1)
        .mentions(&["now serves different content (sha256"]);
}

#[test]
fn an_index_entry_without_a_digest_is_locked_with_a_warning_that_it_is_unverified() {
    let server = HttpServer::start();
    let index: String = crate::support::charts::fixture_index()
        .lines()
        .filter(|l| !l.trim_start().starts_with("digest:"))
        .map(|l| format!("{l}\n"))
        .collect();
    server.serve("/index.yaml", index);
    for chart in crate::support::charts::helm_repo_charts() {
        server.serve(&format!("/{}", chart.file_name()), chart.bytes.clone());
    }
    let stack = TestStack::with_inputs(&format!(
        "[charts.alloy]\nrepo = \"{}\"\nversion = \"1.1.1\"\n",
        server.url()
    ));
    stack
        .lock(&[])
        .success()
        .mentions(&["warning:", "states no digest, so the archive is unverified"]);
    let lock = stack.lock_text();
    assert!(lock.contains("\nunverified = true\n"), "{lock}");
    stack.lock(&["--check"]).success().mentions(&[
        "warning: chart `alloy` 1.1.1 is unverified in stack.lock",
        "states no digest",
    ]);
    // Re-locked while the index still states no digest: still marked (the pin is kept as it is).
    stack.lock(&[]).success();
    assert_eq!(stack.lock_text(), lock);
    // Once the index states the digest again, re-resolving the same version drops the mark.
    server.serve("/index.yaml", crate::support::charts::fixture_index());
    stack.lock(&["--update"]).success();
    assert!(
        !stack.lock_text().contains("unverified"),
        "{}",
        stack.lock_text()
    );
}

/// `stack build` repeats the warning for a chart that stack.lock marks unverified; a verified lock has
/// no such line.
#[test]
fn stack_build_mentions_a_chart_locked_unverified() {
    let stack = TestStack::from_repo();
    let committed = fs_err::read_to_string(support::repo_root().join("stack.lock")).unwrap();
    stack.write("stack.lock", &committed);
    let build = stack.run(&["build"]).success();
    assert!(!build.stderr.contains("unverified"), "{}", build.stderr);
    // Where `stack lock` writes the mark (after `url`), so `lock --check` finds the text canonical.
    let marked = committed.replacen(
        "url = \"https://grafana.github.io/helm-charts/alloy-1.1.2.tgz\"\n",
        "url = \"https://grafana.github.io/helm-charts/alloy-1.1.2.tgz\"\nunverified = true\n",
        1,
    );
    assert_ne!(marked, committed);
    stack.write("stack.lock", &marked);
    stack
        .run(&["build"])
        .success()
        .mentions(&["warning: chart `alloy`", "is unverified in stack.lock"]);
    stack
        .lock(&["--check"])
        .success()
        .mentions(&["warning: chart `alloy`", "is unverified in stack.lock"]);
}

// ----- bounded work ----------------------------------------------------------------------------------------

#[test]
fn a_module_file_of_deeply_nested_brackets_is_refused_before_parsing() {
    let stack = buildable_stack();
    let nested = format!("k: {}{}\n", "[".repeat(50_000), "]".repeat(50_000));
    stack.write("modules/alerts/hubble-rules.yaml", &nested);
    stack.run(&["build"]).code(2).mentions(&[
        "modules/alerts/hubble-rules.yaml",
        "line 1: `[`/`{` nested deeper than 64 levels",
    ]);
}

#[test]
fn a_retry_after_longer_than_stack_waits_fails_at_once_and_says_so() {
    let server = dashboards(1);
    server.fail_always(
        "/old/d1.json",
        crate::support::Fault::TooManyRequests {
            retry_after_secs: 100_000,
        },
    );
    let stack = TestStack::with_inputs(&inputs(&server, "old", 1..=1));
    stack.lock(&[]).code(2).mentions(&[
        "asks to retry after 100000 s",
        "help: run `stack lock` again later",
    ]);
    assert_eq!(server.count("/old/d1.json"), 1, "no request was retried");
    assert!(!stack.exists("stack.lock"));
}
