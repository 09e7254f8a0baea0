//! What the user sees on the terminal besides results: `error:`/`warning:`/`help:`/`note:` lines
//! (coloured on a terminal, never when piped, with `--color never` or `NO_COLOR`), status lines that
//! `--quiet` silences, and whether progress bars may be drawn.
//!
//! Colour goes through `anstream`, which strips the escape codes when the stream is not a terminal or
//! `NO_COLOR` is set (unless `--color always`), so the rest of the program writes one kind of text.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};

use anstyle::{AnsiColor, Style};

static QUIET: AtomicBool = AtomicBool::new(false);

/// `--color`: when to colour diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorWhen {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    /// Always, even when piped or with `NO_COLOR` set.
    Always,
    /// Never, even on a terminal.
    Never,
}

/// `--color` as written on the command line, read before clap parses it so clap's own errors and help
/// follow it too. The last occurrence wins, as clap's does; an invalid value is left for clap to report.
pub fn color_from_args<I: IntoIterator<Item = std::ffi::OsString>>(args: I) -> ColorWhen {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut found = ColorWhen::Auto;
    for (i, arg) in args.iter().enumerate() {
        if arg == "--" {
            break;
        }
        let value = match arg.strip_prefix("--color") {
            Some("") => args.get(i + 1).map(String::as_str),
            Some(rest) => rest.strip_prefix('='),
            None => None,
        };
        match value {
            Some("always") => found = ColorWhen::Always,
            Some("never") => found = ColorWhen::Never,
            Some("auto") => found = ColorWhen::Auto,
            _ => {}
        }
    }
    found
}

/// clap's colour setting for the same choice.
pub fn clap_color(color: ColorWhen) -> clap::ColorChoice {
    match color {
        ColorWhen::Auto => clap::ColorChoice::Auto,
        ColorWhen::Always => clap::ColorChoice::Always,
        ColorWhen::Never => clap::ColorChoice::Never,
    }
}

/// Applies the global flags; called once, before any output.
pub fn init(color: ColorWhen, quiet: bool) {
    let choice = match color {
        ColorWhen::Auto => anstream::ColorChoice::Auto,
        ColorWhen::Always => anstream::ColorChoice::Always,
        ColorWhen::Never => anstream::ColorChoice::Never,
    };
    choice.write_global();
    QUIET.store(quiet, Ordering::Relaxed);
}

/// True with `--quiet`.
pub(crate) fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Progress bars: only on a terminal and without `--quiet`.
pub(crate) fn progress() -> bool {
    !quiet() && std::io::stderr().is_terminal()
}

const LABELS: &[(&str, Style)] = &[
    (
        "error:",
        Style::new()
            .bold()
            .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red))),
    ),
    (
        "warning:",
        Style::new()
            .bold()
            .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Yellow))),
    ),
    (
        "help:",
        Style::new()
            .bold()
            .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Cyan))),
    ),
    (
        "note:",
        Style::new()
            .bold()
            .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Green))),
    ),
];

/// Colours the label of every line that starts with one (`error:`, `warning:`, `help:`, `note:`), so the
/// `help:` lines inside an error's text are coloured too.
pub(crate) fn styled(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match LABELS.iter().find(|(label, _)| line.starts_with(label)) {
            Some((label, style)) => {
                out.push_str(&format!("{style}{label}{style:#}"));
                out.push_str(&line[label.len()..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// A diagnostic block on stderr (always shown, even with `--quiet`).
pub fn diag(text: &str) {
    anstream::eprintln!("{}", styled(text));
}

/// `warning: …` on stderr.
pub(crate) fn warning(text: &str) {
    diag(&format!("warning: {text}"));
}

/// A status line on stderr (what changed, notes), silenced by `--quiet`.
pub(crate) fn status(text: &str) {
    if !quiet() {
        diag(text);
    }
}

/// A result line on stdout (the summary of a command), silenced by `--quiet`.
pub(crate) fn result(text: &str) {
    if !quiet() {
        out(&format!("{text}\n"));
    }
}

/// Writes what a command was asked for (JSON, a graph, a diff) to stdout. A closed pipe
/// (`stack graph | head`) is not an error worth a panic: the reader has what it wanted.
pub(crate) fn out(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn color_is_read_before_parsing_and_the_last_one_wins() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(color_from_args(args(&["stack", "build"])), ColorWhen::Auto);
        assert_eq!(
            color_from_args(args(&["stack", "--color", "never", "build"])),
            ColorWhen::Never
        );
        assert_eq!(
            color_from_args(args(&["stack", "--color=never", "lock", "--color=always"])),
            ColorWhen::Always
        );
        assert_eq!(
            color_from_args(args(&["stack", "--", "--color=never"])),
            ColorWhen::Auto
        );
    }

    #[test]
    fn labels_at_line_starts_are_styled_and_others_are_not() {
        let shown = styled("error: bad\n  caused by: error: inner\nhelp: run it");
        assert!(shown.starts_with("\u{1b}["), "{shown:?}");
        assert!(shown.contains("  caused by: error: inner"), "{shown:?}");
        assert!(shown.contains("help:\u{1b}[0m run it"), "{shown:?}");
        let plain = anstream::adapter::strip_str(&shown).to_string();
        assert_eq!(plain, "error: bad\n  caused by: error: inner\nhelp: run it");
    }
}
