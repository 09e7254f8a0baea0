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
    // The offending line may hold a password the user pasted into a URL: name the place, never quote it.
    if message.contains("credentials") {
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
}
