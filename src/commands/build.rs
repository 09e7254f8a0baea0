//! `stack build`: build in memory, then write `out/` (or compare with it for `--check`) and print a
//! summary with the tree hash.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::BuildArgs;

pub fn run(root: &Path, args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let guard = crate::transaction::guard(root)?;
    crate::transaction::recover(&guard).context("finishing an interrupted `stack lock`")?;
    let out = if args.check {
        root.join(&args.out)
    } else {
        // Checked before building, so a refused --out costs nothing and deletes nothing.
        crate::outdir::check(root, &args.out, args.force_out)?
    };
    let shown = args.out.display();
    let built = crate::build::build(root)?;
    for w in &built.warnings {
        eprintln!("warning: {w}");
    }
    let summary = format!(
        "{} components ({}), {} dashboards, {} files, {} bytes\ntree blake3:{}",
        built.components.len(),
        built.components.join(", "),
        built.dashboards,
        built.tree.files.len(),
        built.tree.bytes(),
        built.tree.hash()
    );
    if args.check {
        let diff = built
            .tree
            .diff_dir(&out)
            .with_context(|| format!("reading {shown}"))?;
        let Some(diff) = diff else {
            eprintln!(
                "error: {shown} does not exist\nhelp: run `stack build` and commit the output"
            );
            return Ok(ExitCode::from(1));
        };
        if !diff.is_empty() {
            eprintln!("error: {shown} is not what `stack build` produces:");
            for d in &diff {
                eprintln!("  {d}");
            }
            eprintln!("help: run `stack build` and commit the output");
            return Ok(ExitCode::from(1));
        }
        println!("{shown} is up to date: {summary}");
        return Ok(ExitCode::SUCCESS);
    }
    let scratch = guard.temp_dir("build-")?;
    built
        .tree
        .write(&out, scratch.path())
        .with_context(|| format!("writing {shown}"))?;
    println!("built {shown}: {summary}");
    Ok(ExitCode::SUCCESS)
}
