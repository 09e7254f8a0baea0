//! `stack diff [--base REV]`: what the current stack.toml, modules/ and stack.lock change in the emitted
//! tree, against the last build (`[stack] flux.path`, or `--out`) or the tree built from a git revision. The revision is checked
//! out with the git CLI (`git worktree add --detach`) into a temp dir, built there, and the worktree
//! removed again; nothing in the user's checkout is touched.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::cli::DiffArgs;
use crate::emit::tree::Tree;
use crate::treediff;
use crate::ui;

pub fn run(root: &Path, args: &DiffArgs) -> anyhow::Result<()> {
    let built = {
        let guard = crate::transaction::guard(root)?;
        crate::transaction::recover(&guard).context("finishing an interrupted `stack lock`")?;
        crate::build::build(root)?
    };
    let current = built.tree;
    let (base, label) = match &args.base {
        None => {
            let out = super::build::out_dir(args.out.as_deref(), &built.flux_path);
            let shown = out.display().to_string();
            let Some(tree) =
                Tree::read(&root.join(&out)).with_context(|| format!("reading {shown}"))?
            else {
                bail!("{shown} does not exist, so there is no last build to compare with\nhelp: run `stack build` first, or compare with a git revision: `stack diff --base main`");
            };
            (tree, shown)
        }
        Some(rev) => (build_at_revision(root, rev)?, rev.clone()),
    };
    let diff = treediff::compare(&base, &current);
    if diff.is_empty() {
        ui::result(&format!(
            "no change to the emitted tree (compared with {label})"
        ));
        return Ok(());
    }
    if args.stat {
        ui::out(&diff.stat());
    } else {
        ui::out(&diff.render());
    }
    if args.exit_code {
        return Err(crate::CheckFailed::reported().into());
    }
    Ok(())
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .context("running git (needed for --base)\nhelp: install git, or compare with the last build: `stack diff` without --base")?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
        // `--quiet` git commands say nothing: their exit status is then all there is to show.
        let why = if said.is_empty() {
            out.status.to_string()
        } else {
            said
        };
        bail!("git {} failed: {why}", args.join(" "));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// A detached worktree in a temp dir, removed on drop.
struct Worktree {
    repo: PathBuf,
    path: PathBuf,
    _temp: tempfile::TempDir,
}

impl Drop for Worktree {
    fn drop(&mut self) {
        let path = self.path.display().to_string();
        let _ = git(&self.repo, &["worktree", "remove", "--force", &path]);
        let _ = git(&self.repo, &["worktree", "prune"]);
    }
}

/// Builds the stack as it is at `rev` of the git repository that holds `root`.
fn build_at_revision(root: &Path, rev: &str) -> anyhow::Result<Tree> {
    let top = PathBuf::from(
        git(root, &["rev-parse", "--show-toplevel"])
            .context("--base needs the stack to be in a git repository")?,
    );
    let prefix = git(root, &["rev-parse", "--show-prefix"])?;
    let commit = git(
        root,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .with_context(|| format!("`{rev}` is not a commit of {}", top.display()))?;
    let temp = tempfile::Builder::new().prefix("stack-diff-").tempdir()?;
    let path = temp.path().join("base");
    let shown = path.display().to_string();
    git(
        &top,
        &["worktree", "add", "--detach", "--quiet", &shown, &commit],
    )?;
    let worktree = Worktree {
        repo: top,
        path,
        _temp: temp,
    };
    let base_root = worktree.path.join(prefix);
    let built = crate::build::build(&base_root)
        .with_context(|| format!("building the stack as of `{rev}`"))?;
    Ok(built.tree)
}
