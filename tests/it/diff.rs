//! `stack diff`: the effect of a lock change on the emitted tree, against the last build and against a
//! git revision (built in a temporary `git worktree`), through the real binary and a real registry.

use crate::support::charts::standin_chart;
use crate::support::registry::registry;
use crate::support::{Registry, TestStack};

const KSM_REPO: &str = "prometheus-community/charts/kube-state-metrics";
/// The real kube-state-metrics chart whose Chart.yaml and defaults the stand-ins carry.
pub const KSM_BASE: &str = "7.0.0";

fn push(registry: &Registry, version: &str) {
    let chart = standin_chart("kube-state-metrics", version, KSM_BASE);
    registry.push_chart(KSM_REPO, version, &chart.bytes);
}

/// `stack init`'s starter, locked (kube-state-metrics 6.1.0) and built.
fn starter(registry: &Registry) -> (TestStack, String) {
    push(registry, "6.1.0");
    let stack = TestStack::empty();
    stack.run(&["init", "--name", "starter"]).success();
    let mirror = format!("ghcr.io={}", registry.host());
    stack.lock(&["--mirror", &mirror]).success();
    stack.run(&["build"]).success();
    (stack, mirror)
}

#[test]
fn diff_after_updating_one_chart_shows_exactly_its_changed_lines() {
    let registry = registry!();
    let (stack, mirror) = starter(&registry);
    push(&registry, "6.2.0");
    stack
        .lock(&["--update", "kube-state-metrics", "--mirror", &mirror])
        .success()
        .mentions(&["6.1.0 -> 6.2.0"]);

    let diff = stack.run(&["diff"]).success().stdout;
    insta::assert_snapshot!("diff_update_one_chart", diff);
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('-') || l.starts_with('+'))
                && !l.starts_with("---")
                && !l.starts_with("+++")
        })
        .collect();
    assert!(
        changed
            .iter()
            .all(|l| l.contains("6.1.0") || l.contains("6.2.0") || l.contains("digest: sha256:")),
        "only the version and digest lines move: {changed:#?}"
    );
    stack.run(&["diff", "--exit-code"]).code(1);
    let stat = stack.run(&["diff", "--stat"]).success().stdout;
    assert_eq!(stat, "changed: kube-state-metrics/app/ocirepository.yaml\n");

    // `build --check` fails with the same diff.
    let check = stack.run(&["build", "--check"]).code(1);
    assert!(
        check.stderr.contains(diff.split_once('\n').unwrap().1),
        "{check:?}"
    );
}

#[test]
fn diff_against_a_git_revision_builds_it_in_a_temporary_worktree() {
    let Some(git) = crate::support::require_tool("git", &["/usr/bin/git"], "apt-get install git")
    else {
        return;
    };
    let registry = registry!();
    let (stack, _) = starter(&registry);
    let run_git = |args: &[&str]| {
        let out = std::process::Command::new(&git)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(stack.root())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run_git(&["init", "-q"]);
    run_git(&["add", "-A"]);
    run_git(&["commit", "-qm", "starter"]);
    stack.write(
        "stack.toml",
        stack
            .read("stack.toml")
            .replace("ksm_replicas = 1", "ksm_replicas = 2"),
    );

    let diff = stack.run(&["diff", "--base", "main"]).success().stdout;
    insta::assert_snapshot!("diff_base_main", diff);
    assert_eq!(
        run_git(&["worktree", "list"]).lines().count(),
        1,
        "the temporary worktree is removed"
    );
    assert_eq!(run_git(&["status", "--porcelain"]), " M stack.toml\n");

    stack
        .run(&["diff", "--base", "no-such-rev"])
        .code(2)
        .mentions(&["no-such-rev", "is not a commit"]);
}

#[test]
fn diff_without_a_previous_build_says_what_to_do() {
    let stack = TestStack::empty();
    stack.run(&["init", "--minimal"]).success();
    stack.lock(&[]).success();
    stack
        .run(&["diff"])
        .code(2)
        .mentions(&["kubernetes does not exist", "stack build", "--base"]);
}
