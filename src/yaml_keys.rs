//! Where each key of a block-style YAML file sits: its path of mapping keys and its line, and whether a
//! helm-docs comment above it documents it as free-form (`# -- (object) …`). serde's YAML parsers drop
//! positions and comments; this reads the text the way values files are written (block mappings, `- `
//! items, `|`/`>` block scalars). Keys inside sequence items are not reported: the values check does not
//! descend into lists.

/// One mapping key of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The mapping keys from the top of the document down to this one.
    pub path: Vec<String>,
    /// 1-based.
    pub line: usize,
    /// The chart documents the key as free-form: see [`free_form`].
    pub free_form: bool,
    /// The key is commented out (`# storageClassName: local-path`): documented, not set.
    pub commented: bool,
}

/// What the comment block right above a key says about it: a helm-docs type of `(object)`, `(dict)` or
/// `(map)`, "Full spec for … CRD", values "converted to" another format, or configuration documented
/// at a URL; and keys named `*_config`, sections of an application's config file passed through whole.
fn free_form(comment: &str, key: &str) -> bool {
    let c = comment.to_lowercase();
    ["(object)", "(dict)", "(map)", "full spec", "converted to"]
        .iter()
        .any(|t| c.contains(t))
        || (c.contains("configuration") && c.contains("http"))
        || key.ends_with("_config")
}

/// The keys of `text` in order, commented-out ones included.
pub fn scan(text: &str) -> Vec<Key> {
    let mut scanner = Scanner::default();
    for (n, raw) in text.lines().enumerate() {
        scanner.line(n + 1, raw);
    }
    scanner.out
}

/// The state of [`scan`] between lines.
#[derive(Default)]
struct Scanner {
    out: Vec<Key>,
    /// The open parents of the current line: (indent, key, or `None` for a sequence item).
    stack: Vec<(usize, Option<String>)>,
    /// The indent of the key whose `|`/`>` block scalar is being skipped.
    block_scalar_at: Option<usize>,
    /// The comment block right above the current line.
    comment: String,
}

impl Scanner {
    /// Reads line `line` (1-based), whose text is `raw`.
    fn line(&mut self, line: usize, raw: &str) {
        let trimmed = raw.trim_start();
        let indent = raw.len() - trimmed.len();
        if trimmed.is_empty() {
            self.comment.clear();
            return;
        }
        if let Some(at) = self.block_scalar_at {
            if indent > at {
                return;
            }
            self.block_scalar_at = None;
        }
        if let Some(body) = trimmed.strip_prefix('#') {
            self.comment_line(line, indent, body);
        } else if trimmed == "---" || trimmed.starts_with("--- ") {
            self.stack.clear();
        } else {
            self.content_line(line, indent, trimmed);
        }
    }

    /// A comment: part of the block above the next key, and a commented-out key when it reads as one.
    fn comment_line(&mut self, line: usize, indent: usize, body: &str) {
        self.comment.push_str(body);
        self.comment.push('\n');
        let body = body.trim_start_matches('#').trim_start();
        let Some((key, _)) = split_key(body).filter(|(k, _)| !k.contains(' ')) else {
            return;
        };
        let mut path: Vec<String> = Vec::new();
        let mut in_sequence = false;
        for (i, k) in &self.stack {
            if *i < indent {
                match k {
                    Some(k) => path.push(k.clone()),
                    None => in_sequence = true,
                }
            }
        }
        path.push(key);
        if !in_sequence {
            self.out.push(Key {
                path,
                line,
                free_form: false,
                commented: true,
            });
        }
    }

    /// A line of content: closes the parents it is not inside, opens its `- ` items, and records its key.
    fn content_line(&mut self, line: usize, indent: usize, trimmed: &str) {
        while self.stack.last().is_some_and(|(i, _)| *i >= indent) {
            self.stack.pop();
        }
        let (at, rest) = self.open_items(indent, trimmed);
        let Some((key, value)) = split_key(rest) else {
            self.comment.clear();
            return;
        };
        let in_sequence = self.stack.iter().any(|(_, k)| k.is_none());
        let mut path: Vec<String> = self.stack.iter().filter_map(|(_, k)| k.clone()).collect();
        path.push(key.clone());
        if !in_sequence {
            self.out.push(Key {
                free_form: free_form(&self.comment, &key),
                path,
                line,
                commented: false,
            });
        }
        self.comment.clear();
        self.stack.push((at, Some(key)));
        let value = value.trim();
        let value = value.split(" #").next().unwrap_or(value).trim();
        if value.starts_with('|') || value.starts_with('>') {
            self.block_scalar_at = Some(at);
        }
    }

    /// Pushes one sequence item per leading `- ` of `trimmed` (at `indent`); returns the column of what
    /// follows them and its text.
    fn open_items<'t>(&mut self, indent: usize, trimmed: &'t str) -> (usize, &'t str) {
        let mut rest = trimmed;
        let mut at = indent;
        while let Some(item) = rest
            .strip_prefix("- ")
            .or_else(|| (rest == "-").then_some(""))
        {
            self.stack.push((at, None));
            let inner = item.trim_start();
            at += rest.len() - inner.len();
            rest = inner;
        }
        (at, rest)
    }
}

/// `key: value` / `"key": value` / `key:` → (key, value).
fn split_key(line: &str) -> Option<(String, &str)> {
    if let Some(q) = line.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let end = line[1..].find(q)? + 1;
        let after = line[end + 1..].strip_prefix(':')?;
        if !(after.is_empty() || after.starts_with(' ')) {
            return None;
        }
        return Some((line[1..end].to_string(), after));
    }
    if line.starts_with(['{', '[', '&', '*', '!', '|', '>', '%', '@', '`']) {
        return None;
    }
    let bytes = line.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b':' && (i + 1 == bytes.len() || bytes[i + 1] == b' ') {
            let key = line[..i].trim_end();
            if key.is_empty() || key.contains(" #") {
                return None;
            }
            return Some((key.to_string(), &line[i + 1..]));
        }
        if *b == b'#' && i > 0 && bytes[i - 1] == b' ' {
            return None;
        }
    }
    None
}

/// The line of `path` in `text`, if the scanner finds it.
pub fn line_of(text: &str, path: &[String]) -> Option<usize> {
    scan(text)
        .into_iter()
        .find(|k| !k.commented && k.path == path)
        .map(|k| k.line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(text: &str) -> Vec<(String, usize, bool)> {
        scan(text)
            .into_iter()
            .filter(|k| !k.commented)
            .map(|k| (k.path.join("."), k.line, k.free_form))
            .collect()
    }

    #[test]
    fn commented_out_keys_are_documented_keys() {
        let text = "persistence:\n  enabled: false\n  # storageClassName: local-path\n  # This is prose: not a key\nb: 1\n";
        let commented: Vec<String> = scan(text)
            .into_iter()
            .filter(|k| k.commented)
            .map(|k| k.path.join("."))
            .collect();
        assert_eq!(commented, vec!["persistence.storageClassName"]);
    }

    #[test]
    fn free_form_is_what_the_comment_says_or_a_config_section() {
        assert!(free_form(
            " -- (object) Full spec for VMAlert CRD\n",
            "spec"
        ));
        assert!(free_form(
            " -- Full spec for VMSingle CRD. Allowed values\n",
            "spec"
        ));
        assert!(free_form(
            "# NOTE: values in map will be converted to ini format\n",
            "grafana.ini"
        ));
        assert!(free_form(
            " more configuration information: https://x\n",
            "receivers"
        ));
        assert!(free_form(" -- Limits config\n", "limits_config"));
        assert!(!free_form(
            "# Configuration for kube-state-metrics subchart\n",
            "kube-state-metrics"
        ));
        assert!(!free_form(" -- Enables validation webhook.\n", "enabled"));
    }

    #[test]
    fn nested_keys_lines_and_free_form_comments() {
        let text = "\
# top comment
a:
  b: 1
  \"grafana.ini\":
    server: {}
  # -- (object) Full spec
  spec:
    x: |
      not: a key
      - neither
    y: 2
list:
  - name: a
    inner: 3
  - b
after: true
";
        assert_eq!(
            paths(text),
            vec![
                ("a".into(), 2, false),
                ("a.b".into(), 3, false),
                ("a.grafana.ini".into(), 4, false),
                ("a.grafana.ini.server".into(), 5, false),
                ("a.spec".into(), 7, true),
                ("a.spec.x".into(), 8, false),
                ("a.spec.y".into(), 11, false),
                ("list".into(), 12, false),
                ("after".into(), 16, false),
            ]
        );
        assert_eq!(
            line_of(text, &["a".into(), "spec".into(), "y".into()]),
            Some(11)
        );
    }

    #[test]
    fn urls_and_comments_in_values_are_not_keys() {
        let text = "url: http://x:3100 # port\nk: v # a: b\nhttp://not-a-key\n";
        assert_eq!(
            paths(text),
            vec![("url".into(), 1, false), ("k".into(), 2, false)]
        );
    }
}
