//! `stack`: the binary. Parses the command line, runs a command, and prints errors as
//! `error: …` with the cause chain and a hint. Exit codes: 0 success, 1 a check failed (the lock or the
//! output is not current), 2 an error (bad input, network, I/O).

mod auth;
mod build;
mod chart_values;
mod cli;
mod commands;
mod diag;
mod digest;
mod emit;
mod graph;
mod http;
mod lock;
mod manifest;
mod module;
mod plan;
mod resolve;
mod settings;
mod source;
mod store;
mod transaction;
mod values_check;
mod version_req;
mod yaml_keys;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match &cli.command {
        cli::Command::Build(args) => commands::build::run(&cli.directory, args),
        cli::Command::Lock(args) => commands::lock::run(&cli.directory, args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            let top = err.to_string();
            eprintln!("error: {top}");
            // Errors that already quote their cause (`cannot read x: …`) do not repeat it.
            for cause in err
                .chain()
                .skip(1)
                .map(|c| c.to_string())
                .filter(|c| !top.contains(c.as_str()))
            {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(2)
        }
    }
}
