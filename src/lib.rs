//! `stack` as a library: everything the `stack` binary does, behind [`run`].
//!
//! The binary (src/main.rs) only parses the command line with [`cli::Cli`], calls [`run`] and prints
//! the error it returns. The public API is kept narrow on purpose: the command line ([`cli`]), the
//! terminal conventions ([`ui`]), and the few facts the integration tests must agree on with the tool
//! rather than define a second time: the digests ([`digest`]), how Helm stores a chart in an OCI
//! registry ([`helm_oci`]), and the lock ([`lock`]). Everything else is a private module; README.md,
//! section "How the code is laid out", walks through them in data-flow order.

#![deny(missing_docs)]

mod address;
mod auth;
mod build;
mod chart_values;
mod check;
pub mod cli;
mod commands;
mod contain;
mod diag;
mod diagram;
pub mod digest;
mod discover;
mod emit;
mod faults;
#[cfg(test)]
mod fuzz;
mod graph;
pub mod helm_oci;
mod http;
mod init;
mod integrity;
mod json;
mod kube;
mod lock;
mod manifest;
mod module;
mod outdated;
mod outdir;
mod parallel;
mod plan;
mod resolve;
mod settings;
mod source;
mod store;
/// The loopback test servers of tests/support/, compiled into the unit tests too, so src/ and tests/
/// share one HTTP test server (src/http/test_server.rs scripts answers through it).
#[cfg(test)]
#[path = "../tests/support"]
#[allow(dead_code, unused_imports)]
mod support {
    pub mod http_server;
    pub mod tree;
    pub mod wire;
    pub use crate::digest::sha256;
    pub use tree::read_tree;
}
mod transaction;
mod treediff;
pub mod ui;
mod values_check;
mod version_req;
mod yaml_depth;
mod yaml_keys;

use std::path::PathBuf;

pub use check::CheckFailed;

/// Runs the command `cli` names, from the directory `--directory` gives (else the current one).
///
/// # Errors
/// [`CheckFailed`] when a check found the lock or the output not current, or (with `--exit-code`)
/// something newer or changed: the binary prints its report and exits 1. Any other error (bad input,
/// network, I/O) is for the caller to print with its cause chain; the binary exits 2 on them. The codes
/// are listed in [`cli::EXIT_CODES`].
pub fn run(cli: &cli::Cli) -> anyhow::Result<()> {
    use cli::Command;
    let start = || discover::start(cli.directory.as_deref());
    let root = || -> anyhow::Result<PathBuf> { Ok(discover::root(&start()?)?) };
    match &cli.command {
        Command::Init(args) => commands::init::run(&start()?, args),
        Command::Build(args) => commands::build::run(&root()?, args),
        Command::Lock(args) => commands::lock::run(&root()?, args),
        Command::Graph(args) => commands::graph::run(&root()?, args),
        Command::Outdated(args) => commands::outdated::run(&root()?, args),
        Command::Diff(args) => commands::diff::run(&root()?, args),
        Command::Completions(args) => commands::docs::completions(args.shell),
        Command::Man => commands::docs::man(),
    }
}
