//! `stack graph`: the component graph of the stack as text, DOT, Mermaid, SVG or `--json` (offline).

#![allow(
    clippy::disallowed_methods,
    reason = "its errors are wrapped with the stack-relative path; fs_err would add the absolute one to output"
)]

use std::path::Path;

use crate::cli::{GraphArgs, GraphFormat};
use crate::diagram::Diagram;
use crate::lock::Lock;

pub fn run(root: &Path, args: &GraphArgs) -> anyhow::Result<()> {
    let (manifest, _modules, plan) = crate::build::load(root)?;
    // The graph is drawn before the first lock too: versions then show as "(not locked)".
    let lock = crate::lock::read_text(root)?
        .as_deref()
        .map(Lock::parse)
        .transpose()?;
    let diagram = Diagram::new(&manifest, &plan, lock.as_ref());
    if args.json {
        crate::json::print("graph", &diagram);
        return Ok(());
    }
    let text = match args.format {
        GraphFormat::Text => diagram.text(),
        GraphFormat::Dot => diagram.dot(),
        GraphFormat::Mermaid => diagram.mermaid(),
        GraphFormat::Svg => diagram.svg().map_err(anyhow::Error::msg)?,
    };
    crate::ui::out(&text);
    Ok(())
}
