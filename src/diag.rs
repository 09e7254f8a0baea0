//! Source locations for errors: turning a byte span of a file the user wrote into `file:line:column` and
//! a quoted line with a caret, so every complaint about stack.toml or a module points at the text to fix.

use std::ops::Range;

/// A located complaint about a user-written file, rendered like a compiler diagnostic. Boxed, so the
/// error enums that carry it stay small on the happy path.
#[derive(Debug, thiserror::Error)]
#[error("{}", render(&.0.file, &.0.source_text, .0.span.clone(), &.0.message, .0.help.as_deref(), .0.quote))]
pub struct SpanError(Box<Located>);

#[derive(Debug)]
pub struct Located {
    pub file: String,
    pub source_text: String,
    pub span: Option<Range<usize>>,
    pub message: String,
    pub help: Option<String>,
    /// False when the line may hold a secret.
    pub quote: bool,
}

impl std::ops::Deref for SpanError {
    type Target = Located;
    fn deref(&self) -> &Located {
        &self.0
    }
}

impl std::ops::DerefMut for SpanError {
    fn deref_mut(&mut self) -> &mut Located {
        &mut self.0
    }
}

impl SpanError {
    pub fn new(
        file: &str,
        text: &str,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        SpanError(Box::new(Located {
            file: file.to_string(),
            source_text: text.to_string(),
            span,
            message: message.into(),
            help: None,
            quote: true,
        }))
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// 1-based line and column of a byte offset (columns count characters, as editors do).
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn render(
    file: &str,
    text: &str,
    span: Option<Range<usize>>,
    message: &str,
    help: Option<&str>,
    quote: bool,
) -> String {
    let mut out = String::new();
    match span {
        Some(span) => {
            let (line, col) = line_col(text, span.start);
            out.push_str(&format!("{file}:{line}:{col}: {message}"));
            if let Some(src_line) = text.lines().nth(line - 1).filter(|_| quote) {
                let width = text[floor_char_boundary(text, span.start)
                    ..floor_char_boundary(text, span.end.max(span.start))]
                    .lines()
                    .next()
                    .map(|s| s.chars().count())
                    .unwrap_or(1)
                    .max(1);
                let gutter = line.to_string().len();
                out.push_str(&format!(
                    "\n{:gutter$} |\n{line} | {src_line}\n{:gutter$} | {}{}",
                    "",
                    "",
                    " ".repeat(col - 1),
                    "^".repeat(width)
                ));
            }
        }
        None => out.push_str(&format!("{file}: {message}")),
    }
    if let Some(help) = help {
        out.push_str(&format!("\nhelp: {help}"));
    }
    out
}

/// Renders a `toml` deserialisation error with the file name in front, keeping toml's own line/column
/// and snippet.
pub fn toml_error(file: &str, text: &str, err: &toml::de::Error) -> SpanError {
    let message = err.message().to_string();
    let mut e = SpanError::new(file, text, err.span(), message.clone());
    // Where the file's keys and values are described; callers with a better fix replace it.
    e.help = if message.contains("help:") {
        None
    } else if file == "stack.toml" {
        Some(
            "README.md, section \"stack.toml\", lists every key stack.toml takes and its values"
                .into(),
        )
    } else if file.starts_with("modules/") {
        Some(format!(
            "docs/modules.md describes every key {file} takes and its values"
        ))
    } else {
        None
    };
    // The offending line may hold a password the user pasted into a URL, or wrote under a key named
    // like one: name the place, never quote it.
    if SecretBearing::marks(&message) || unknown_secret_key(&message) {
        e.source_text = text
            .get(..err.span().map(|s| s.start).unwrap_or(0))
            .unwrap_or("")
            .to_string()
            + "\n";
        e.span = e.span.clone().map(|s| s.start..s.start);
        e.quote = false;
    }
    e
}

/// Text that holds a secret (a URL with `user:password@`), and the one way to say so in an error
/// message. A parser such as toml keeps only an error's text, so the mark travels in the text: every
/// message built by [`SecretBearing::message`] ends with [`SecretBearing::MARK`], and [`toml_error`]
/// names the line of such an error without quoting it. No other message is taken for one, whatever
/// words it uses.
pub struct SecretBearing;

impl SecretBearing {
    /// The closing words of a message about secret-bearing text.
    pub const MARK: &'static str = "(the `user:password@` part is refused and not shown)";

    /// `<what> <MARK>`, followed by `help`.
    pub fn message(what: &str, help: &str) -> String {
        format!("{what} {}\nhelp: {help}", Self::MARK)
    }

    /// Whether `message` was built by [`SecretBearing::message`].
    pub fn marks(message: &str) -> bool {
        message.contains(Self::MARK)
    }
}

/// toml's "unknown field `x`" where `x` is named like a secret (`password`, `token`, `credentials`,
/// `secret`): its value is what the user meant to keep secret, so the line is not quoted either.
fn unknown_secret_key(message: &str) -> bool {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return false;
    };
    let key = rest.split('`').next().unwrap_or("").to_ascii_lowercase();
    ["password", "token", "credential", "secret", "auth"]
        .iter()
        .any(|word| key.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 8), (2, 3));
    }

    #[test]
    fn render_points_at_the_span() {
        let text = "[modules]\nenabled = [\"nope\"]\n";
        let start = text.find("\"nope\"").unwrap();
        let err = SpanError::new(
            "stack.toml",
            text,
            Some(start..start + 6),
            "unknown module `nope`",
        )
        .help("pick one");
        let shown = err.to_string();
        assert!(
            shown.starts_with("stack.toml:2:12: unknown module `nope`"),
            "{shown}"
        );
        assert!(shown.contains("2 | enabled = [\"nope\"]"), "{shown}");
        assert!(shown.contains("^^^^^^"), "{shown}");
        assert!(shown.ends_with("help: pick one"), "{shown}");
    }

    #[test]
    fn only_a_secret_bearing_message_hides_its_line() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Jobs {
            jobs: u8,
        }
        // toml's message quotes the value, word "credentials" and all; it is no secret, so the line
        // is shown as for any other error (a word search used to hide it).
        let text = "jobs = \"no credentials here\"\n";
        let err = toml::from_str::<Jobs>(text).unwrap_err();
        assert!(err.message().contains("credentials"), "{err}");
        let shown = toml_error("stack.toml", text, &err).to_string();
        assert!(
            shown.contains("1 | jobs = \"no credentials here\""),
            "{shown}"
        );
        let marked =
            SecretBearing::message("`repo`: credentials do not belong in a URL", "remove them");
        assert!(SecretBearing::marks(&marked));
        assert!(
            marked.ends_with("not shown)\nhelp: remove them"),
            "{marked}"
        );
        assert!(!SecretBearing::marks(
            "`repo`: credentials do not belong in a URL"
        ));
    }

    #[test]
    fn an_unknown_key_named_like_a_secret_is_not_quoted() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Chart {
            oci: String,
        }
        let text = "oci = \"oci://a/b\"\npassword = \"hunter2\"\n";
        let err = toml::from_str::<Chart>(text).unwrap_err();
        let shown = toml_error("stack.toml", text, &err).to_string();
        assert!(
            shown.starts_with("stack.toml:2:1: unknown field `password`"),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        let text = text
            .replace("password", "passwd_file_path")
            .replace("hunter2", "x");
        let err = toml::from_str::<Chart>(&text).unwrap_err();
        assert!(toml_error("stack.toml", &text, &err)
            .to_string()
            .contains("passwd_file_path = \"x\""));
    }
}
