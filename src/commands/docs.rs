//! `stack completions <shell>` and `stack man`: generated from the clap definitions of `src/cli.rs`, so
//! they never drift from `--help`.

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::Cli;

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "stack", &mut std::io::stdout());
    Ok(())
}

/// The man page of `stack`, with a section per subcommand, as roff.
pub fn man_page() -> anyhow::Result<Vec<u8>> {
    let command = Cli::command();
    let mut out = Vec::new();
    let man = clap_mangen::Man::new(command.clone());
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    man.render_subcommands_section(&mut out)?;
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = sub.get_name();
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        let mut section = Vec::new();
        clap_mangen::Man::new(sub.clone()).render_options_section(&mut section)?;
        out.extend_from_slice(
            format!(
                ".SH \"STACK {}\"\n{}\n",
                name.to_uppercase(),
                roff_text(&about)
            )
            .as_bytes(),
        );
        // The subcommand's options section, retitled under the subcommand's heading.
        let section = String::from_utf8(section).context("roff is text")?;
        out.extend_from_slice(section.replacen(".SH OPTIONS", ".SS Options", 1).as_bytes());
    }
    out.extend_from_slice(definitions("EXIT STATUS", crate::cli::EXIT_CODES).as_bytes());
    out.extend_from_slice(definitions("ENVIRONMENT", crate::cli::ENVIRONMENT).as_bytes());
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// A roff section of tagged paragraphs (`.TP`), one per term.
fn definitions(title: &str, items: &[(&str, &str)]) -> String {
    let mut out = format!(".SH \"{title}\"\n");
    for (term, meaning) in items {
        out.push_str(&format!(
            ".TP\n\\fB{}\\fR\n{}\n",
            roff_text(term),
            roff_text(meaning)
        ));
    }
    out
}

fn roff_text(text: &str) -> String {
    text.replace('\\', "\\\\").replace('-', "\\-")
}

/// Prints the man page on stdout.
pub fn man() -> anyhow::Result<()> {
    use std::io::Write as _;
    std::io::stdout()
        .write_all(&man_page()?)
        .context("writing the man page")?;
    Ok(())
}
