//! `stack init [PATH] [--minimal]`: write a starter stack into a new or empty directory.

use std::path::Path;

use crate::cli::InitArgs;
use crate::init::{self, Starter};
use crate::ui;

pub fn run(start: &Path, args: &InitArgs) -> anyhow::Result<()> {
    let dir = match &args.path {
        Some(path) => start.join(path),
        None => start.to_path_buf(),
    };
    let absolute = std::path::absolute(&dir).unwrap_or_else(|_| dir.clone());
    let name = match &args.name {
        Some(name) => init::parse_name(name)?,
        None => init::name_from_dir(&absolute),
    };
    let starter = Starter {
        name,
        minimal: args.minimal,
    };
    let written = init::write(&dir, &starter)?;
    for path in &written {
        ui::status(&format!("{:>12} {path}", "Creating"));
    }
    let next = if args.minimal {
        "add [charts.*] or [dashboards.*] to stack.toml, then run `stack lock` and `stack build`"
    } else {
        "run `stack lock` to pin the chart, then `stack build` to write the Flux manifests into flux.path (kubernetes/)"
    };
    ui::status(&format!("note: started stack `{}`; {next}", starter.name));
    Ok(())
}
