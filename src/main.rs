//! `stack`: the binary. Parses the command line, runs a command, and prints errors as
//! `error: …` with the cause chain and a hint. Exit codes: 0 success, 1 a check failed (the lock or the
//! output is not current), 2 an error (bad input, network, I/O); see [`cli::EXIT_CODES`].

mod address;
mod auth;
mod build;
mod chart_values;
mod cli;
mod commands;
mod contain;
mod diag;
mod diagram;
mod digest;
mod discover;
mod emit;
mod faults;
#[cfg(test)]
mod fuzz;
mod graph;
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
mod plan;
mod resolve;
mod settings;
mod source;
mod store;
mod transaction;
mod treediff;
mod ui;
mod values_check;
mod version_req;
mod yaml_depth;
mod yaml_keys;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    // clap's own errors and help follow --color too, so it is read before clap parses.
    let color = ui::color_from_args(std::env::args_os());
    let matches = cli::Cli::command()
        .color(ui::clap_color(color))
        .get_matches();
    let cli = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    ui::init(cli.color, cli.quiet);
    match run(&cli) {
        Ok(code) => code,
        Err(err) => {
            let top = err.to_string();
            let mut text = format!("error: {top}");
            // Errors that already quote their cause (`cannot read x: …`) do not repeat it.
            for cause in err
                .chain()
                .skip(1)
                .map(|c| c.to_string())
                .filter(|c| !top.contains(c.as_str()))
            {
                text.push_str(&format!("\n  caused by: {cause}"));
            }
            ui::diag(&text);
            ExitCode::from(2)
        }
    }
}

fn run(cli: &cli::Cli) -> anyhow::Result<ExitCode> {
    use cli::Command;
    let start = || discover::start(cli.directory.as_deref());
    let root = || -> anyhow::Result<std::path::PathBuf> { Ok(discover::root(&start()?)?) };
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
