//! `stack build`: build in memory, then write `out/` (or compare with it for `--check`, printing the diff)
//! and print a summary with the tree hash, as text or `--json`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use crate::cli::BuildArgs;
use crate::treediff::{self, FileChange};
use crate::ui;

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

pub fn run(root: &Path, args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let guard = crate::transaction::guard(root)?;
    crate::transaction::recover(&guard).context("finishing an interrupted `stack lock`")?;
    let out = if args.check {
        root.join(&args.out)
    } else {
        // Checked before building, so a refused --out costs nothing and deletes nothing.
        crate::outdir::check(root, &args.out, args.force_out)?
    };
    let shown = args.out.display().to_string();
    let built = crate::build::build(root)?;
    for w in &built.warnings {
        ui::warning(w);
    }
    let mut json = BuildJson {
        out: shown.clone(),
        check: args.check,
        up_to_date: true,
        components: &built.components,
        dashboards: built.dashboards,
        files: built.tree.files.len(),
        bytes: built.tree.bytes(),
        tree_blake3: built.tree.hash(),
        warnings: &built.warnings,
        changes: Vec::new(),
    };
    let summary = format!(
        "{} components ({}), {} dashboards, {} files, {} bytes\ntree blake3:{}",
        built.components.len(),
        built.components.join(", "),
        built.dashboards,
        json.files,
        json.bytes,
        json.tree_blake3
    );
    if args.check {
        let existing =
            crate::emit::tree::Tree::read(&out).with_context(|| format!("reading {shown}"))?;
        if existing.is_none() && !args.json {
            ui::diag(&format!(
                "error: {shown} does not exist\nhelp: run `stack build` and commit the output"
            ));
            return Ok(ExitCode::from(1));
        }
        let existing = existing.unwrap_or_default();
        let diff = treediff::compare(&existing, &built.tree);
        if !diff.is_empty() {
            json.up_to_date = false;
            if args.json {
                json.changes = diff.files;
                crate::json::print("build", &json);
            } else {
                ui::error(&format!(
                    "{shown} is not what `stack build` produces (- {shown}, + the build):"
                ));
                eprint!("{}", diff.render());
                ui::diag("help: run `stack build` and commit the output");
            }
            return Ok(ExitCode::from(1));
        }
        if args.json {
            crate::json::print("build", &json);
        } else {
            ui::result(&format!("{shown} is up to date: {summary}"));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let scratch = guard.temp_dir("build-")?;
    built
        .tree
        .write(&out, scratch.path())
        .with_context(|| format!("writing {shown}"))?;
    if args.json {
        crate::json::print("build", &json);
    } else {
        ui::result(&format!("built {shown}: {summary}"));
    }
    Ok(ExitCode::SUCCESS)
}
