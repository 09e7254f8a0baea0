//! The command line. Doc comments here are the `--help` text; `stack man` and `stack completions` are
//! generated from the same definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::ui::ColorWhen;

/// Exit codes: one list for `--help`, the man page and the README.
pub const EXIT_CODES: &[(&str, &str)] = &[
    ("0", "success"),
    (
        "1",
        "a check failed: the lock or the output is not current (lock --check, build --check), `stack outdated --exit-code` found something newer, or `stack diff --exit-code` found a change",
    ),
    (
        "2",
        "an error: bad input, unreachable upstream, digest mismatch, I/O",
    ),
];

/// Environment variables `stack` reads.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "STACK_CACHE_DIR",
        "content cache (default: the user cache directory, ~/.cache/stack on Linux)",
    ),
    (
        "STACK_REGISTRY_AUTH",
        "credentials, \"host[:port]=user:password,...\" (never written anywhere)",
    ),
    (
        "DOCKER_CONFIG",
        "directory of config.json with registry `auths` (default ~/.docker)",
    ),
    (
        "STACK_HTTP_TIMEOUT_SECS",
        "connect and request timeout of `stack lock`",
    ),
    (
        "STACK_RETRY_BASE_MS",
        "retry backoff base of `stack lock` (default 500)",
    ),
    (
        "NO_COLOR",
        "no colour, as --color never (--color always overrides it)",
    ),
];

/// The text after `--help`: exit codes and environment variables.
pub fn after_help() -> String {
    let mut out = String::from("Exit codes:\n");
    for (code, meaning) in EXIT_CODES {
        out.push_str(&format!("  {code}  {meaning}\n"));
    }
    out.push_str("\nEnvironment:\n");
    for (name, meaning) in ENVIRONMENT {
        out.push_str(&format!("  {name:<24} {meaning}\n"));
    }
    out.trim_end().to_string()
}

/// A declarative build system with a lockfile for a Flux CD observability stack.
///
/// `stack lock` pins every chart and dashboard of stack.toml into stack.lock and vendor/;
/// `stack build` turns stack.toml, modules/, stack.lock and vendor/ into Flux manifests, offline and
/// byte-for-byte reproducibly. stack.toml is looked for in the current directory and its parents.
#[derive(Debug, Parser)]
#[command(name = "stack", version, propagate_version = true, after_help = after_help())]
pub struct Cli {
    /// Run as if started in DIR (stack.toml is looked for there and in its parents).
    #[arg(short = 'C', long = "directory", global = true, value_name = "DIR")]
    pub directory: Option<PathBuf>,
    /// Print only errors and warnings: no progress bars, summaries or change tables.
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
    /// When to colour `error:`, `warning:` and `help:`.
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `stack`; each variant's doc comment is its line in `stack --help`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a stack in an empty directory: stack.toml, a module, modules/settings.toml, .gitignore.
    Init(InitArgs),
    /// Emit the Flux manifests of the stack (offline, deterministic).
    Build(BuildArgs),
    /// Resolve every input of stack.toml and pin it in stack.lock, vendoring dashboards into vendor/.
    Lock(LockArgs),
    /// Draw the component graph: each component with its chart, locked version and condition.
    Graph(GraphArgs),
    /// List inputs with newer versions upstream: the locked one, the newest the requirement accepts, the newest.
    Outdated(OutdatedArgs),
    /// Show what the current stack.toml, modules and stack.lock change in the emitted tree.
    Diff(DiffArgs),
    /// Print a shell completion script (e.g. `stack completions bash > /etc/bash_completion.d/stack`).
    Completions(CompletionsArgs),
    /// Print the man page (roff) of stack, e.g. `stack man | man -l -`.
    Man,
}

/// The arguments of `stack init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The directory to create the stack in (default: -C DIR, or the current directory).
    pub path: Option<PathBuf>,
    /// Only stack.toml (with commented examples) and .gitignore: no module, no settings.
    #[arg(long)]
    pub minimal: bool,
    /// The stack's name (default: the directory's name, made a valid name).
    #[arg(long)]
    pub name: Option<String>,
}

/// The arguments of `stack build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Output directory, relative to the stack's directory unless absolute. Default: `[stack]
    /// flux.path`, where the emitted Kustomizations expect the tree in their Git source.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Build in memory and fail if the output directory differs (for CI); prints the diff.
    #[arg(long)]
    pub check: bool,
    /// Print the result as JSON on stdout (schema `stack/v1`, see docs/json.md).
    #[arg(long)]
    pub json: bool,
    /// Replace the output directory even when it is not empty and `stack build` did not write it (it
    /// has no .stack-build file). The stack's own files and directories are never replaced.
    #[arg(long)]
    pub force_out: bool,
}

/// The arguments of `stack lock`.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// Re-resolve inputs even when their pin still satisfies stack.toml: all of them, or only those named.
    #[arg(long, num_args = 0.., value_name = "NAME")]
    pub update: Option<Vec<String>>,
    /// Re-pin the named inputs even though upstream changed their content under the same version,
    /// tag or revision (which is otherwise refused). Only after finding out why upstream changed.
    #[arg(long = "accept-changed", num_args = 1.., value_name = "NAME")]
    pub accept_changed: Vec<String>,
    /// Exit 1 when stack.lock does not match stack.toml (offline, writes nothing).
    #[arg(long)]
    pub check: bool,
    /// With --check: also ask upstream whether a newer version matches a requirement.
    #[arg(long, requires = "check")]
    pub remote: bool,
    /// Use only the local content cache; fail if anything must be fetched.
    #[arg(long)]
    pub offline: bool,
    /// Fetch from TO instead of FROM (a prefix of a source); repeatable; wins over [mirrors] of
    /// stack.toml for the same prefix.
    #[arg(long = "mirror", value_name = "FROM=TO")]
    pub mirrors: Vec<String>,
    /// How many requests to have in flight at once (every input is resolved at the same time; this
    /// bounds the connections a server sees).
    #[arg(long, short = 'j', default_value_t = crate::http::DEFAULT_REQUESTS_IN_FLIGHT)]
    pub jobs: usize,
    /// Print the result as JSON on stdout (schema `stack/v1`, see docs/json.md).
    #[arg(long)]
    pub json: bool,
}

/// `stack graph --format`: how the component graph is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// An indented list of components and what they depend on.
    Text,
    /// Graphviz DOT.
    Dot,
    /// A Mermaid flowchart (renders on GitHub in a ```mermaid block).
    Mermaid,
    /// SVG, laid out in-process (no Graphviz needed).
    Svg,
}

/// The arguments of `stack graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
    pub format: GraphFormat,
    /// Print the graph as JSON on stdout (schema `stack/v1`, see docs/json.md).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

/// The arguments of `stack outdated`.
#[derive(Debug, Args)]
pub struct OutdatedArgs {
    /// Print the result as JSON on stdout (schema `stack/v1`, see docs/json.md).
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when some input has a newer version (for CI).
    #[arg(long)]
    pub exit_code: bool,
    /// Fetch from TO instead of FROM, as for `stack lock`.
    #[arg(long = "mirror", value_name = "FROM=TO")]
    pub mirrors: Vec<String>,
    /// How many inputs to ask about at once.
    #[arg(long, short = 'j', default_value_t = 8)]
    pub jobs: usize,
}

/// The arguments of `stack diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Compare with the tree built from this git revision (e.g. `main`) instead of the output directory.
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// The output directory compared with when there is no --base. Default: `[stack] flux.path`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Only the list of added, removed and changed files.
    #[arg(long)]
    pub stat: bool,
    /// Exit 1 when the tree changes (as `git diff --exit-code`).
    #[arg(long)]
    pub exit_code: bool,
}

/// The arguments of `stack completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: clap_complete::Shell,
}
