//! The command line. Doc comments here are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// A declarative build system with a lockfile for a Flux CD observability stack.
///
/// `stack lock` pins every chart and dashboard of stack.toml into stack.lock and vendor/;
/// `stack build` turns stack.toml, modules/, stack.lock and vendor/ into Flux manifests, offline and
/// byte-for-byte reproducibly.
#[derive(Debug, Parser)]
#[command(name = "stack", version, propagate_version = true)]
pub struct Cli {
    /// The stack's directory (where stack.toml is).
    #[arg(short = 'C', long = "directory", global = true, default_value = ".")]
    pub directory: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Emit the Flux manifests of the stack (offline, deterministic).
    Build(BuildArgs),
    /// Resolve every input of stack.toml and pin it in stack.lock, vendoring dashboards into vendor/.
    Lock(LockArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Output directory, relative to the stack's directory unless absolute.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Build in memory and fail if the output directory differs (for CI).
    #[arg(long)]
    pub check: bool,
    /// Replace the output directory even when it is not empty and `stack build` did not write it (it
    /// has no .stack-build file). The stack's own files and directories are never replaced.
    #[arg(long)]
    pub force_out: bool,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    /// Re-resolve inputs even when their pin still satisfies stack.toml: all of them, or only those named.
    #[arg(long, num_args = 0.., value_name = "NAME")]
    pub update: Option<Vec<String>>,
    /// Exit 1 when stack.lock does not match stack.toml (offline, writes nothing).
    #[arg(long)]
    pub check: bool,
    /// With --check: also ask upstream whether a newer version matches a requirement.
    #[arg(long, requires = "check")]
    pub remote: bool,
    /// Use only the local content cache; fail if anything must be fetched.
    #[arg(long)]
    pub offline: bool,
    /// Fetch from TO instead of FROM (a prefix of a source); repeatable; adds to [mirrors] of stack.toml.
    #[arg(long = "mirror", value_name = "FROM=TO")]
    pub mirrors: Vec<String>,
    /// How many inputs to resolve at once.
    #[arg(long, short = 'j', default_value_t = 8)]
    pub jobs: usize,
    /// No progress bars.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}
