//! `stack outdated [--json] [--exit-code]`: which inputs have newer versions upstream (reads only).

#![allow(
    clippy::disallowed_methods,
    reason = "its errors are wrapped with the stack-relative path; fs_err would add the absolute one to output"
)]

use std::path::Path;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::cli::OutdatedArgs;
use crate::commands::lock::{connect, runtime};
use crate::lock::Lock;
use crate::manifest::{Manifest, MANIFEST_FILE};
use crate::outdated::{self, Row};
use crate::source::{Access, Mirrors};
use crate::store::Store;

#[derive(Debug, Serialize)]
struct OutdatedJson {
    inputs: Vec<Row>,
}

pub fn run(root: &Path, args: &OutdatedArgs) -> anyhow::Result<()> {
    if args.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let text =
        fs_err::read_to_string(root.join(MANIFEST_FILE)).context("reading the stack's manifest")?;
    let manifest = Manifest::parse(&text)?;
    let lock = crate::lock::read_text(root)?
        .as_deref()
        .map(Lock::parse)
        .transpose()?;
    let mirrors = Mirrors::new(&manifest.mirrors, &args.mirrors)?;
    let store = Store::open_default()?;
    let net = connect(&manifest, &mirrors, &store, args.jobs)?;
    let rows = runtime()?.block_on(outdated::check(
        &manifest,
        lock.as_ref(),
        Access::Online(&net),
        args.jobs,
    ))?;
    let any = rows.iter().any(|r| r.outdated);
    if args.json {
        crate::json::print("outdated", OutdatedJson { inputs: rows });
    } else {
        crate::ui::out(&outdated::table(&rows));
    }
    if any && args.exit_code {
        return Err(crate::CheckFailed::reported().into());
    }
    Ok(())
}
