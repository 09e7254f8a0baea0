//! `stack build`: build the tree, staging it file by file against `[stack] flux.path` or `--out`, then
//! swap it in (or only compare with it for `--check`) and print a summary with the tree hash, as text or
//! `--json`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::cli::BuildArgs;
use crate::emit::staging::{Sink as _, Staging};
use crate::treediff::{self, FileChange};
use crate::ui;
use crate::CheckFailed;

/// The `--json` result of `stack build` and `stack build --check`.
#[derive(Debug, Serialize)]
struct BuildJson<'a> {
    out: String,
    check: bool,
    /// False only for a `--check` that found differences (exit 1).
    up_to_date: bool,
    components: &'a [String],
    dashboards: usize,
    files: usize,
    bytes: usize,
    tree_blake3: String,
    warnings: &'a [String],
    /// `--check` only: the files that differ from what the build produces.
    changes: Vec<FileChange>,
}

pub fn run(root: &Path, args: &BuildArgs) -> anyhow::Result<()> {
    let guard = crate::transaction::guard(root)?;
    crate::transaction::recover(&guard).context("finishing an interrupted `stack lock`")?;
    // A given --out is checked before building, so a refused one costs nothing; the default (flux.path)
    // once the stack is read. Either way before anything is written, so a refused one deletes nothing.
    let writable = |out: &Path| match args.check {
        true => Ok(root.join(out)),
        false => crate::outdir::check(root, out, args.force_out),
    };
    let early = args.out.as_deref().map(writable).transpose()?;
    let loaded = crate::build::open(root)?;
    let out_arg = out_dir(args.out.as_deref(), loaded.flux_path());
    let out = match early {
        Some(out) => out,
        None => writable(&out_arg)?,
    };
    let shown = out_arg.display().to_string();
    // The tree is staged against out/ as it is built (dashboards a window at a time), so the build holds
    // only the files in flight; out/ itself changes only in `finish`, whole or not at all.
    let scratch = guard.temp_dir("build-")?;
    let mut staging = match args.check {
        true => Staging::for_check(&out, scratch.path()),
        false => {
            Staging::for_build(&out, scratch.path()).with_context(|| format!("writing {shown}"))?
        }
    };
    let mut built = loaded.build(root, &mut staging)?;
    for (path, bytes) in std::mem::take(&mut built.tree.files) {
        staging
            .put(path, bytes)
            .with_context(|| format!("writing {shown}"))?;
    }
    for w in &built.warnings {
        ui::warning(w);
    }
    // Every Kustomization's `path` is under flux.path: a tree written elsewhere is not what Flux applies.
    if !same_dir(&out_arg, &built.flux_path) {
        ui::warning(&format!(
            "--out {shown} is not [stack] flux.path {:?}: the emitted Kustomizations point at {:?} in their Git source, so commit the tree there (or set flux.path to where it goes)",
            built.flux_path, built.flux_path
        ));
    }
    let json = BuildJson {
        out: shown.clone(),
        check: args.check,
        up_to_date: true,
        components: &built.components,
        dashboards: built.dashboards,
        files: staging.files(),
        bytes: staging.bytes(),
        tree_blake3: staging.hash(),
        warnings: &built.warnings,
        changes: Vec::new(),
    };
    let components = match built.components.as_slice() {
        [] => "0 components".to_string(),
        [one] => format!("1 component ({one})"),
        names => format!("{} components ({})", names.len(), names.join(", ")),
    };
    let summary = format!(
        "{components}, {} dashboards, {} files, {} bytes\ntree blake3:{}",
        built.dashboards, json.files, json.bytes, json.tree_blake3
    );
    if args.check {
        return check(args, &staging, &shown, json, &summary);
    }
    let written = staging
        .finish()
        .with_context(|| format!("writing {shown}"))?;
    if args.json {
        crate::json::print("build", &json);
    } else if written == 0 {
        ui::result(&format!(
            "built {shown}, already up to date (nothing written): {summary}"
        ));
    } else {
        ui::result(&format!("built {shown}: {summary}"));
    }
    Ok(())
}

/// `stack build --check`: whether the tree at `out` is what the build produces (exit 1 when not).
fn check(
    args: &BuildArgs,
    staging: &Staging,
    shown: &str,
    mut json: BuildJson<'_>,
    summary: &str,
) -> anyhow::Result<()> {
    // Each file was compared with out/'s as it was built; only the differing ones are read to show
    // the diff, so an up-to-date tree is never held in memory.
    let differences = staging
        .differences()
        .with_context(|| format!("reading {shown}"))?;
    if differences.as_ref().is_some_and(|d| d.is_empty()) {
        if args.json {
            crate::json::print("build", &json);
        } else {
            ui::result(&format!("{shown} is up to date: {summary}"));
        }
        return Ok(());
    }
    if differences.is_none() && !args.json {
        return Err(CheckFailed::with_report(format!(
            "error: {shown} does not exist\nhelp: run `stack build` and commit the output"
        ))
        .into());
    }
    let (existing, new) = staging
        .differing_trees()
        .with_context(|| format!("reading {shown}"))?;
    let diff = treediff::compare(&existing, &new);
    if !diff.is_empty() {
        json.up_to_date = false;
        if args.json {
            json.changes = diff.files;
            crate::json::print("build", &json);
            return Err(CheckFailed::reported().into());
        }
        return Err(CheckFailed::with_report(format!(
            "error: {shown} is not what `stack build` produces (- {shown}, + the build):\n{}help: run `stack build` and commit the output",
            diff.render()
        ))
        .into());
    }
    if args.json {
        crate::json::print("build", &json);
    } else {
        ui::result(&format!("{shown} is up to date: {summary}"));
    }
    Ok(())
}

/// The output directory: `--out` when given, else `[stack] flux.path` (where the emitted Kustomizations
/// expect the tree in their Git source), relative to the stack's directory.
pub fn out_dir(given: Option<&Path>, flux_path: &str) -> PathBuf {
    match given {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from(normal(flux_path)),
    }
}

/// `./kubernetes/` and `kubernetes` name one directory; `./` and `.` the stack's own.
fn normal(path: &str) -> String {
    let p = path.trim_start_matches("./").trim_end_matches('/');
    if p.is_empty() {
        ".".to_string()
    } else {
        p.to_string()
    }
}

fn same_dir(out: &Path, flux_path: &str) -> bool {
    normal(&out.to_string_lossy()) == normal(flux_path)
}
