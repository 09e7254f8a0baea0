//! A linear pre-check of YAML (and JSON) before it reaches the parser: flow collections (`[` and `{`)
//! nested deeper than [`MAX_DEPTH`] are refused. The YAML parser's work grows with the square of the
//! nesting depth (a 100 KB index.yaml of nested `[` took 23.5 s); no Helm index, values file or
//! manifest nests flow collections anywhere near this deep.
//!
//! The scan follows YAML just enough to count only real flow collections: quoted scalars, comments and
//! block scalars (`|`, `>`) are skipped, and outside a flow collection a `[` or `{` counts only where a
//! value starts (line start, after `- `, `? ` or `: `), so `msg: see [docs` is plain text, not nesting.

/// The deepest flow nesting accepted.
pub const MAX_DEPTH: usize = 64;

/// Fails, naming the line, when `text` nests flow collections deeper than [`MAX_DEPTH`].
pub fn check(text: &[u8]) -> Result<(), String> {
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut i = 0usize;
    let mut at_value = true; // a value may start here
    let mut block_indent: Option<usize> = None; // inside a block scalar more indented than this
    let mut indent = 0usize;
    let mut line_start = true;
    while i < text.len() {
        let c = text[i];
        if line_start {
            indent = text[i..].iter().take_while(|&&b| b == b' ').count();
            let rest = &text[i + indent..];
            let blank = rest.first().is_none_or(|&b| b == b'\n' || b == b'\r');
            if let Some(b) = block_indent {
                if blank || indent > b {
                    i = skip_line(text, i, &mut line);
                    continue;
                }
                block_indent = None;
            }
            line_start = false;
            i += indent;
            continue;
        }
        match c {
            b'\n' => {
                line += 1;
                i += 1;
                line_start = true;
                if depth == 0 {
                    at_value = true;
                }
                continue;
            }
            b'#' if i == 0 || matches!(text[i - 1], b' ' | b'\t' | b'\n') => {
                i = skip_to_eol(text, i);
                continue;
            }
            b'"' | b'\'' if at_value || depth > 0 => {
                i = skip_quoted(text, i, &mut line);
                at_value = false;
                continue;
            }
            b'[' | b'{' if at_value || depth > 0 => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(format!(
                        "line {line}: `[`/`{{` nested deeper than {MAX_DEPTH} levels; no Helm index, values file or manifest needs that"
                    ));
                }
                at_value = true;
            }
            b']' | b'}' if depth > 0 => {
                depth -= 1;
                at_value = false;
            }
            b',' if depth > 0 => at_value = true,
            b'|' | b'>' if at_value && depth == 0 => {
                block_indent = Some(indent);
                i = skip_to_eol(text, i);
                continue;
            }
            b'-' | b'?' | b':' if depth == 0 && next_is_space(text, i) => at_value = true,
            b':' if depth > 0 => at_value = true,
            b' ' | b'\t' | b'\r' => {}
            _ => {
                if depth == 0 {
                    at_value = false;
                }
            }
        }
        i += 1;
    }
    Ok(())
}

fn next_is_space(text: &[u8], i: usize) -> bool {
    text.get(i + 1)
        .is_none_or(|&b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

fn skip_to_eol(text: &[u8], i: usize) -> usize {
    text[i..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |p| i + p)
}

fn skip_line(text: &[u8], i: usize, line: &mut usize) -> usize {
    let eol = skip_to_eol(text, i);
    if eol < text.len() {
        *line += 1;
        eol + 1
    } else {
        eol
    }
}

/// Past the closing quote of the scalar opening at `i` (`\` escapes in `"`, `''` in `'`).
fn skip_quoted(text: &[u8], i: usize, line: &mut usize) -> usize {
    let quote = text[i];
    let mut j = i + 1;
    while j < text.len() {
        match text[j] {
            b'\\' if quote == b'"' => j += 1,
            b'\'' if quote == b'\'' && text.get(j + 1) == Some(&b'\'') => j += 1,
            b'\n' => *line += 1,
            b if b == quote => return j + 1,
            _ => {}
        }
        j += 1;
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_refused_with_its_line() {
        let deep = format!("a: 1\nb: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let err = check(deep.as_bytes()).unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
        let json = format!("{}{}", "{\"a\":".repeat(100), "1}".repeat(100));
        assert!(check(json.as_bytes()).is_err());
    }

    #[test]
    fn ordinary_yaml_and_json_pass() {
        let ok = [
            "entries:\n  alloy:\n    - version: 1.0.0\n      urls: [a.tgz, b.tgz]\n",
            "msg: see [docs and {more\nother: '[[[[' \nq: \"{{{{ \\\" [\"\n",
            "script: |\n  [[[[[[[[\n  {{{{{{\nnext: [1, [2, {a: [3]}]]\n",
            "# [[[[[[\nk: v # [[[[[\n",
            "{\"apiVersion\": \"v1\", \"entries\": {\"a\": [{\"version\": \"1\", \"urls\": [\"x\"]}]}}",
            "expr: sum(rate(x[5m])) by (a)\nre: ^\\[WARN\n",
        ];
        for text in ok {
            assert_eq!(check(text.as_bytes()), Ok(()), "{text}");
        }
        let many = "k: [[[[x]]]]\n".repeat(1000);
        assert_eq!(check(many.as_bytes()), Ok(()));
        let just_deep_enough = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(check(just_deep_enough.as_bytes()), Ok(()));
    }
}
