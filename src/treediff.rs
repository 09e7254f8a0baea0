//! What changed between two emitted trees: files added, removed and changed, with a unified diff of each
//! changed text file (via `similar`). `stack diff` and `stack build --check` print it, so a pull request
//! that moves a pin shows exactly which lines of which manifests move with it.

use serde::Serialize;

use crate::emit::tree::Tree;

/// How a file differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Added,
    Removed,
    Changed,
}

/// One differing file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileChange {
    pub path: String,
    pub kind: Kind,
    /// The unified diff (`--- a/…`, `+++ b/…`, hunks with 3 lines of context); `None` for a file that is
    /// not UTF-8.
    pub diff: Option<String>,
}

/// Every differing file of two trees, sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TreeDiff {
    pub files: Vec<FileChange>,
}

/// Compares `old` (e.g. the last build, or the base revision's) with `new`.
pub fn compare(old: &Tree, new: &Tree) -> TreeDiff {
    let mut paths: Vec<&String> = old.files.keys().chain(new.files.keys()).collect();
    paths.sort();
    paths.dedup();
    let files = paths
        .into_iter()
        .filter_map(|path| {
            let (a, b) = (old.files.get(path), new.files.get(path));
            let kind = match (a, b) {
                (None, Some(_)) => Kind::Added,
                (Some(_), None) => Kind::Removed,
                (Some(a), Some(b)) if a != b => Kind::Changed,
                _ => return None,
            };
            fn text(bytes: Option<&Vec<u8>>) -> Option<&str> {
                match bytes {
                    None => Some(""),
                    Some(b) => std::str::from_utf8(b).ok(),
                }
            }
            let diff = match (text(a), text(b)) {
                (Some(a_text), Some(b_text)) => {
                    Some(unified(path, a.is_some(), a_text, b.is_some(), b_text))
                }
                _ => None,
            };
            Some(FileChange {
                path: path.clone(),
                kind,
                diff,
            })
        })
        .collect();
    TreeDiff { files }
}

fn unified(path: &str, had: bool, old: &str, has: bool, new: &str) -> String {
    let a = if had {
        format!("a/{path}")
    } else {
        "/dev/null".into()
    };
    let b = if has {
        format!("b/{path}")
    } else {
        "/dev/null".into()
    };
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&a, &b)
        .to_string()
}

impl TreeDiff {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// `added: x`, `removed: y`, `changed: z`, one per line.
    pub fn stat(&self) -> String {
        self.files
            .iter()
            .map(|f| {
                let kind = match f.kind {
                    Kind::Added => "added",
                    Kind::Removed => "removed",
                    Kind::Changed => "changed",
                };
                format!("{kind}: {}\n", f.path)
            })
            .collect()
    }

    /// The stat, then every file's unified diff.
    pub fn render(&self) -> String {
        let mut out = self.stat();
        for f in &self.files {
            out.push('\n');
            match &f.diff {
                Some(diff) => out.push_str(diff),
                None => out.push_str(&format!("Binary file {} differs\n", f.path)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> Tree {
        let mut t = Tree::default();
        for (p, b) in files {
            t.insert(*p, b.as_bytes().to_vec());
        }
        t
    }

    #[test]
    fn added_removed_and_changed_files_with_only_the_changed_lines() {
        let old = tree(&[
            ("a.yaml", "x: 1\ny: 2\nz: 3\n"),
            ("gone.yaml", "g: 1\n"),
            ("same", "s\n"),
        ]);
        let new = tree(&[
            ("a.yaml", "x: 1\ny: 5\nz: 3\n"),
            ("new.yaml", "n: 1\n"),
            ("same", "s\n"),
        ]);
        let diff = compare(&old, &new);
        assert_eq!(
            diff.stat(),
            "changed: a.yaml\nremoved: gone.yaml\nadded: new.yaml\n"
        );
        let a = diff.files[0].diff.as_deref().unwrap();
        assert_eq!(
            a,
            "--- a/a.yaml\n+++ b/a.yaml\n@@ -1,3 +1,3 @@\n x: 1\n-y: 2\n+y: 5\n z: 3\n"
        );
        assert!(diff.files[2]
            .diff
            .as_deref()
            .unwrap()
            .starts_with("--- /dev/null\n+++ b/new.yaml\n"));
        assert!(compare(&old, &old).is_empty());
    }
}
