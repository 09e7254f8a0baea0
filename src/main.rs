//! `stack`: the binary. Parses the command line, runs it through the library ([`stack::run`]), and
//! prints a failed check's report (exit 1) or an error as `error: …` with its cause chain (exit 2). Exit codes: 0 success, 1 a check failed (the
//! lock or the output is not current), 2 an error (bad input, network, I/O); see
//! [`stack::cli::EXIT_CODES`].

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use stack::{cli, ui};

fn main() -> ExitCode {
    // clap's own errors and help follow --color too, so it is read before clap parses.
    let color = ui::color_from_args(std::env::args_os());
    let matches = cli::Cli::command()
        .color(ui::clap_color(color))
        .get_matches();
    let cli = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    ui::init(cli.color, cli.quiet);
    match stack::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<stack::CheckFailed>() {
            Some(check) => {
                if let Some(report) = check.report() {
                    ui::diag(report);
                }
                ExitCode::from(1)
            }
            None => {
                ui::diag(&error_text(&err));
                ExitCode::from(2)
            }
        },
    }
}

/// `error: <err>` and one `caused by:` line per cause it does not already quote.
fn error_text(err: &anyhow::Error) -> String {
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
    text
}
