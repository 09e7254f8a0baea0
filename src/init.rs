//! `stack init`: the files of a starter stack. A full starter pins one chart and enables one module of its
//! own that uses a setting, so `stack lock` then `stack build` show every part of the format; `--minimal`
//! writes a stack.toml that pins nothing yet (valid as it is) and the .gitignore.

#![allow(
    clippy::disallowed_methods,
    reason = "its errors are wrapped with the stack-relative path; fs_err would add the absolute one to output"
)]

use std::path::{Path, PathBuf};

use crate::manifest::{Name, MANIFEST_FILE};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{dir} is not empty (it holds {first})\nhelp: run `stack init` in a new or empty directory, e.g. `stack init my-stack`")]
    NotEmpty { dir: String, first: String },
    #[error("{path} exists and is not a directory\nhelp: name a new or empty directory")]
    NotADirectory { path: String },
    #[error("`--name {name}`: {message}")]
    BadName { name: String, message: String },
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// What to write.
pub struct Starter {
    pub name: Name,
    pub minimal: bool,
}

const GITIGNORE: &str = "\
# stack's staging area for all-or-nothing writes of stack.lock and vendor/ (never commit it).
/.stack/
# vendor/ holds the pinned dashboards that `stack build` reads offline: keep it tracked, like stack.lock.
# kubernetes/ (flux.path in stack.toml) is what `stack build` emits: commit it, Flux reads it from Git.
";

const SETTINGS: &str = r#"# The settings stack.toml may set, with their types and defaults (see docs/modules.md of stack).

[ksm_replicas]
type = "integer"
default = 1
description = "Replicas of kube-state-metrics"
"#;

const MODULE: &str = r#"description = "kube-state-metrics: metrics about the Kubernetes objects of the cluster"
namespace = "monitoring"

[release]
chart = "kube-state-metrics"   # [charts.kube-state-metrics] of stack.toml
values = ["values.yaml"]
"#;

const VALUES: &str = "# Helm values of the release; ${settings.NAME} takes a setting with its type.\nreplicas: ${settings.ksm_replicas}\n";

const EXAMPLES: &str = r#"# More inputs, for example:
#
# [charts.alloy]                                # a classic Helm repository (index.yaml)
# repo = "https://grafana.github.io/helm-charts"
# version = "~1.1"                              # Helm/Flux meaning: "1.1.2" is exact
#
# [dashboards.node-exporter-full]               # a grafana.com dashboard, vendored into vendor/
# grafana_com = 1860
# revision = 41                                 # omitted: the latest revision at lock time
# folder = "Infrastructure"
"#;

impl Starter {
    /// The files, by path relative to the stack's directory, in the order they are written.
    pub fn files(&self) -> Vec<(&'static str, String)> {
        let name = &self.name;
        let header = format!(
            "# The stack: what it pins from upstream, its settings and the modules it enables.\n# `stack lock` pins the inputs in stack.lock; `stack build` writes the Flux manifests into flux.path.\n\n[stack]\nname = \"{name}\"\n# Where Flux finds the built tree in Git (the source and the path inside it); `stack build` writes it there.\nflux = {{ source = {{ kind = \"GitRepository\", name = \"flux-system\" }}, path = \"./kubernetes\" }}\n\n"
        );
        if self.minimal {
            return vec![
                (MANIFEST_FILE, format!("{header}{EXAMPLES}")),
                (".gitignore", GITIGNORE.to_string()),
            ];
        }
        let manifest = format!(
            "{header}[settings]                  # declared in modules/settings.toml\nksm_replicas = 1\n\n[charts.kube-state-metrics]\noci = \"oci://ghcr.io/prometheus-community/charts/kube-state-metrics\"\nversion = \"^6\"             # any 6.x; `stack lock` pins the newest\n\n{EXAMPLES}\n[modules]\nenabled = [\"kube-state-metrics\"]\n"
        );
        vec![
            (MANIFEST_FILE, manifest),
            ("modules/settings.toml", SETTINGS.to_string()),
            ("modules/kube-state-metrics/module.toml", MODULE.to_string()),
            ("modules/kube-state-metrics/values.yaml", VALUES.to_string()),
            (".gitignore", GITIGNORE.to_string()),
        ]
    }
}

/// A valid stack name from a directory name: lowercase, other characters as `-`, at most 53.
pub fn name_from_dir(dir: &Path) -> Name {
    let raw = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mapped: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed: String = mapped.trim_matches('-').chars().take(53).collect();
    trimmed
        .trim_end_matches('-')
        .parse()
        .unwrap_or_else(|_| "stack".parse().expect("a valid name"))
}

/// Parses `--name`.
pub fn parse_name(name: &str) -> Result<Name, InitError> {
    name.parse().map_err(|message| InitError::BadName {
        name: name.to_string(),
        message,
    })
}

/// Writes the starter into `dir`, which must be missing or empty (a `.git` alone is allowed, for a
/// freshly initialised repository). Returns the paths written.
pub fn write(dir: &Path, starter: &Starter) -> Result<Vec<&'static str>, InitError> {
    let io = |path: PathBuf| {
        move |source| InitError::Io {
            path: path.display().to_string(),
            source,
        }
    };
    if dir.exists() {
        if !dir.is_dir() {
            return Err(InitError::NotADirectory {
                path: dir.display().to_string(),
            });
        }
        let mut entries: Vec<String> = std::fs::read_dir(dir)
            .map_err(io(dir.to_path_buf()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".git")
            .collect();
        entries.sort();
        if let Some(first) = entries.into_iter().next() {
            return Err(InitError::NotEmpty {
                dir: dir.display().to_string(),
                first,
            });
        }
    }
    let mut written = Vec::new();
    for (rel, text) in starter.files() {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent.to_path_buf()))?;
        }
        std::fs::write(&path, text).map_err(io(path.clone()))?;
        written.push(rel);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_become_valid_stack_names() {
        assert_eq!(
            name_from_dir(Path::new("/x/My_Homelab")).as_str(),
            "my-homelab"
        );
        assert_eq!(name_from_dir(Path::new("/x/--")).as_str(), "stack");
        assert_eq!(name_from_dir(Path::new("/")).as_str(), "stack");
    }

    #[test]
    fn every_starter_manifest_parses() {
        for minimal in [false, true] {
            let starter = Starter {
                name: "s".parse().unwrap(),
                minimal,
            };
            let files = starter.files();
            let manifest = crate::manifest::Manifest::parse(&files[0].1).unwrap();
            assert_eq!(manifest.charts.len(), usize::from(!minimal));
            assert!(
                !files.iter().any(|(_, t)| t.contains("/vendor")),
                "vendor/ stays tracked"
            );
        }
    }

    #[test]
    fn a_non_empty_directory_is_refused_and_left_alone() {
        let temp = tempfile::tempdir().unwrap();
        fs_err::write(temp.path().join("notes.txt"), "mine").unwrap();
        let starter = Starter {
            name: "s".parse().unwrap(),
            minimal: false,
        };
        let e = write(temp.path(), &starter).unwrap_err().to_string();
        assert!(e.contains("is not empty (it holds notes.txt)"), "{e}");
        assert!(!temp.path().join(MANIFEST_FILE).exists());
    }
}
