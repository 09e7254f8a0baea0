//! `stack build`: build in memory, then write `out/` (or compare with it for `--check`) and print a
//! summary with the tree hash.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::BuildArgs;

pub fn run(root: &Path, args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let _guard = crate::transaction::guard(root)?;
    crate::transaction::recover(root).context("finishing an interrupted `stack lock`")?;
    let built = crate::build::build(root)?;
    let out = root.join(&args.out);
    let shown = args.out.display();
    for w in &built.warnings {
        eprintln!("warning: {w}");
    }
    // Every Kustomization's `path` is under flux.path: a tree written elsewhere is not what Flux applies.
    let norm = |p: &str| p.trim_start_matches("./").trim_end_matches('/').to_string();
    if norm(&args.out.to_string_lossy()) != norm(&built.flux_path) {
        eprintln!(
            "warning: --out {} is not [stack] flux.path {:?}: the emitted Kustomizations point at {:?} in their Git source, so commit the tree there (or set flux.path to where it goes)",
            args.out.display(),
            built.flux_path,
            built.flux_path
        );
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
        let existing =
            crate::emit::tree::Tree::read(&out).with_context(|| format!("reading {shown}"))?;
        let Some(existing) = existing else {
            eprintln!(
                "error: {shown} does not exist\nhelp: run `stack build` and commit the output"
            );
            return Ok(ExitCode::from(1));
        };
        let diff = built.tree.diff(&existing);
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
    built
        .tree
        .write(&out)
        .with_context(|| format!("writing {shown}"))?;
    println!("built {shown}: {summary}");
    Ok(ExitCode::SUCCESS)
}
