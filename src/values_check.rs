//! The check Helm lacks: every key path a module's values files set must exist in the chart's defaults
//! (subcharts under their name or alias), or lie under a map the chart leaves open (a default of `{}` or
//! null, or a key helm-docs documents as `(object)`); `global` is always allowed. A null must delete a
//! default that is there. The merged values must satisfy the chart's `values.schema.json` (JSON Schema
//! draft-07), as Helm would on install. Findings name the file, the line and the key path, with the
//! nearest existing key as a suggestion.

use std::fmt;
use std::path::Path;

use serde_yaml_ng::Value;

use crate::chart_values::{from_archive, overlay, read_vendored, Defaults, VENDOR_DIR};
use crate::lock::LockedChart;
use crate::module::{Release, YamlFile};

/// One problem in a module's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `modules/<module>/<file>`.
    pub file: String,
    pub line: Option<usize>,
    pub path: String,
    pub message: String,
    pub help: Option<String>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: ", self.file)?,
            None => write!(f, "{}: ", self.file)?,
        }
        write!(f, "`{}` {}", self.path, self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// A values file of a release: its path, its text (for lines) and its parsed document.
pub struct Source<'a> {
    pub path: &'a str,
    pub text: &'a str,
    pub values: &'a Value,
}

/// Checks each file's keys against the defaults. Every file is checked, whether or not its patch applies
/// with the current settings: a typo in a switched-off patch is still a typo.
pub fn check_keys(defaults: &Defaults, sources: &[Source]) -> Vec<Finding> {
    let known = known_paths(&defaults.values);
    let mut out = Vec::new();
    for source in sources {
        let mut walk = Walk {
            defaults,
            known: &known,
            source,
            out: &mut out,
        };
        walk.map(source.values, &defaults.values, &mut Vec::new());
    }
    out
}

struct Walk<'a, 'b> {
    defaults: &'a Defaults,
    known: &'a [String],
    source: &'a Source<'a>,
    out: &'b mut Vec<Finding>,
}

impl Walk<'_, '_> {
    fn map(&mut self, user: &Value, default: &Value, path: &mut Vec<String>) {
        let Value::Mapping(user) = user else {
            return;
        };
        for (key, value) in user {
            let Some(key) = key.as_str() else {
                continue;
            };
            if key == "global" {
                continue;
            }
            path.push(key.to_string());
            match default.get(key) {
                None if self.documented(path) => {}
                None => self.unknown(path),
                Some(d) => self.value(value, d, path),
            }
            path.pop();
        }
    }

    fn value(&mut self, value: &Value, default: &Value, path: &mut Vec<String>) {
        let empty = match default {
            Value::Null => true,
            Value::Mapping(m) => m.is_empty(),
            Value::Sequence(s) => s.is_empty(),
            _ => false,
        };
        if value.is_null() && empty {
            self.push(
                path,
                format!(
                    "is null, which deletes the chart's default, but {} has none here (`{}`): it does nothing",
                    self.chart(),
                    short(default)
                ),
                Some("remove it".into()),
            );
            return;
        }
        let open = empty || self.defaults.open.contains(path.as_slice());
        if value.is_mapping() && default.is_mapping() && !open {
            self.map(value, default, path);
        }
    }

    /// The chart documents `path`, or a key above it, in a comment only.
    fn documented(&self, path: &[String]) -> bool {
        (1..=path.len()).any(|n| self.defaults.documented.contains(&path[..n]))
    }

    fn unknown(&mut self, path: &[String]) {
        let help = nearest(&path.join("."), self.known)
            .map(|k| format!("did you mean `{k}`?"))
            .or_else(|| Some(format!("see the default values of {}", self.chart())));
        self.push(
            path,
            format!("is not a value of {}: Helm would ignore it", self.chart()),
            help,
        );
    }

    fn chart(&self) -> String {
        format!("chart {} {}", self.defaults.chart, self.defaults.version)
    }

    fn push(&mut self, path: &[String], message: String, help: Option<String>) {
        self.out.push(Finding {
            file: self.source.path.to_string(),
            line: crate::yaml_keys::line_of(self.source.text, path),
            path: path.join("."),
            message,
            help,
        });
    }
}

fn short(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Mapping(_) => "{}".into(),
        Value::Sequence(_) => "[]".into(),
        other => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Every key path of the defaults' maps, dotted.
fn known_paths(defaults: &Value) -> Vec<String> {
    fn walk(v: &Value, prefix: &str, out: &mut Vec<String>) {
        if let Value::Mapping(m) = v {
            for (k, child) in m {
                if let Some(k) = k.as_str() {
                    let p = if prefix.is_empty() {
                        k.to_string()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(child, &p, out);
                    out.push(p);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(defaults, "", &mut out);
    out.sort();
    out
}

/// The existing key path closest to `path` (case, `-` and `_` ignored), if any is close enough.
fn nearest(path: &str, known: &[String]) -> Option<String> {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let want = norm(path);
    // The same key under a parent named alike: `prometheus-node-exporter.enabled` is
    // `nodeExporter.enabled` in kube-prometheus-stack.
    if let Some((parent, last)) = want.rsplit_once('.') {
        let alike = known
            .iter()
            .filter(|k| {
                let k = norm(k);
                k.rsplit_once('.').is_some_and(|(kp, kl)| {
                    kl == last && !kp.is_empty() && (parent.ends_with(kp) || kp.ends_with(parent))
                })
            })
            .min_by_key(|k| (k.len(), k.as_str()));
        if let Some(k) = alike {
            return Some(k.clone());
        }
    }
    let limit = (want.len() / 4).max(2);
    known
        .iter()
        .map(|k| (strsim::levenshtein(&want, &norm(k)), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, k)| (*d, k.len()))
        .map(|(_, k)| k.clone())
}

/// Where a key path was set: the file and, when found, the line.
pub type Locate<'a> = dyn Fn(&[String]) -> (String, Option<usize>) + 'a;

/// Validates the chart's defaults coalesced with the release's values against its `values.schema.json`.
/// `locate` gives the file and line that set a key path (for the message).
pub fn check_schema(
    defaults: &Defaults,
    values: &Value,
    locate: &Locate,
) -> Result<Vec<Finding>, String> {
    let Some(schema) = &defaults.schema else {
        return Ok(Vec::new());
    };
    // Validated as draft-07 whatever `$schema` says (Helm's validator does the same for a schema without
    // one): loki's names `https://json-schema.org/draft-07/schema#`, which is no meta-schema URL a
    // validator knows, and fetching one would be network access.
    let mut schema = schema.clone();
    if let Some(object) = schema.as_object_mut() {
        object.remove("$schema");
    }
    let validator = jsonschema::draft7::new(&schema).map_err(|e| {
        format!(
            "values.schema.json of chart {} {} is not a valid JSON Schema: {e}",
            defaults.chart, defaults.version
        )
    })?;
    let mut merged = defaults.values.clone();
    overlay(&mut merged, values);
    let instance = serde_json::to_value(&merged).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for error in validator.iter_errors(&instance) {
        let path: Vec<String> = error
            .instance_path
            .to_string()
            .split('/')
            .skip(1)
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect();
        let (file, line) = locate(&path);
        out.push(Finding {
            file,
            line,
            path: path.join("."),
            message: format!(
                "is rejected by values.schema.json of chart {} {}: {error}",
                defaults.chart, defaults.version
            ),
            help: None,
        });
    }
    Ok(out)
}

/// What the check of one release found.
pub enum Checked {
    Findings(Vec<Finding>),
    /// The chart's defaults are neither vendored nor in the content store: a warning, never a pass.
    NotChecked(String),
}

/// The chart's defaults for a locked chart: `vendor/charts/<input>/` when it holds the locked version,
/// else the archive in the content store (by the lock's blake3).
pub fn locked_defaults(
    root: &Path,
    locked: &LockedChart,
) -> Result<Option<Defaults>, crate::build::BuildError> {
    let input = locked.name.as_str();
    let shown = format!("{VENDOR_DIR}/{input}");
    let bad = |message: String| crate::build::BuildError::Values {
        path: shown.clone(),
        message,
    };
    let vendored = read_vendored(root, input).map_err(|e| crate::build::BuildError::Read {
        path: shown.clone(),
        source: e.into(),
    })?;
    if let Some(files) = vendored {
        let defaults = Defaults::from_files(&files).map_err(|e| bad(e.to_string()))?;
        if defaults.version == locked.version {
            return Ok(Some(defaults));
        }
    }
    let archive = crate::store::Store::open_default()
        .ok()
        .and_then(|store| store.get(&locked.blake3).ok().flatten());
    let Some(archive) = archive else {
        return Ok(None);
    };
    let files = from_archive(&archive).map_err(|e| bad(e.to_string()))?;
    Defaults::from_files(&files)
        .map(Some)
        .map_err(|e| bad(e.to_string()))
}

/// Checks a release's values files (every one, patches included) and its merged `values` against the
/// locked chart's defaults and schema.
pub fn check_release(
    root: &Path,
    release: &Release,
    locked: &LockedChart,
    values: &Value,
) -> Result<Checked, crate::build::BuildError> {
    let Some(defaults) = locked_defaults(root, locked)? else {
        return Ok(Checked::NotChecked(format!(
            "values of release `{}` not checked: the defaults of chart `{}` {} are neither in {VENDOR_DIR}/{}/ nor in the content cache (`stack lock` fetches the pinned archive again and vendors them; the pin does not move)",
            release.name, locked.name, locked.version, locked.name
        )));
    };
    let files: Vec<&YamlFile> = release
        .values
        .iter()
        .chain(release.patches.iter().map(|p| &p.file))
        .collect();
    let mut texts = Vec::new();
    for file in &files {
        let text = fs_err::read_to_string(root.join(&file.path)).map_err(|source| {
            crate::build::BuildError::Read {
                path: file.path.clone(),
                source,
            }
        })?;
        texts.push(text);
    }
    let sources: Vec<Source> = files
        .iter()
        .zip(&texts)
        .map(|(f, text)| Source {
            path: &f.path,
            text,
            values: &f.documents[0],
        })
        .collect();
    let mut findings = check_keys(&defaults, &sources);
    // A schema error points at the last file that sets the key (or its nearest parent).
    let locate = |path: &[String]| -> (String, Option<usize>) {
        for len in (1..=path.len()).rev() {
            for s in sources.iter().rev() {
                if let Some(line) = crate::yaml_keys::line_of(s.text, &path[..len]) {
                    return (s.path.to_string(), Some(line));
                }
            }
        }
        (sources[0].path.to_string(), None)
    };
    let schema = check_schema(&defaults, values, &locate).map_err(|message| {
        crate::build::BuildError::Values {
            path: format!("{VENDOR_DIR}/{}", locked.name),
            message,
        }
    })?;
    findings.extend(schema);
    Ok(Checked::Findings(findings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart_values::ChartFiles;

    fn defaults(values: &str, schema: Option<&str>) -> Defaults {
        let mut files = ChartFiles::new();
        files.insert(
            "Chart.yaml".into(),
            b"name: demo\nversion: 1.0.0\n".to_vec(),
        );
        files.insert("values.yaml".into(), values.as_bytes().to_vec());
        if let Some(s) = schema {
            files.insert("values.schema.json".into(), s.as_bytes().to_vec());
        }
        Defaults::from_files(&files).unwrap()
    }

    fn check(d: &Defaults, text: &str) -> Vec<String> {
        let values: Value = serde_yaml_ng::from_str(text).unwrap();
        check_keys(
            d,
            &[Source {
                path: "modules/demo/values.yaml",
                text,
                values: &values,
            }],
        )
        .iter()
        .map(ToString::to_string)
        .collect()
    }

    const DEFAULTS: &str = "\
sidecar:
  dashboards:
    enabled: false
    label: grafana_dashboard
podAnnotations: {}
# -- (object) Full spec
spec:
  port: 80
nodeSelector: null
dashboards: {}
";

    #[test]
    fn a_typo_names_file_line_path_and_the_nearest_key() {
        let d = defaults(DEFAULTS, None);
        let got = check(&d, "sidecar:\n  dashboard:\n    enabled: true\n");
        assert_eq!(
            got,
            vec!["modules/demo/values.yaml:2: `sidecar.dashboard` is not a value of chart demo 1.0.0: Helm would ignore it\n  help: did you mean `sidecar.dashboards`?"]
        );
    }

    #[test]
    fn open_maps_documented_objects_null_defaults_and_global_pass() {
        let d = defaults(DEFAULTS, None);
        let text = "global:\n  x: 1\npodAnnotations:\n  a: b\nspec:\n  extra: 1\nnodeSelector:\n  os: linux\nsidecar:\n  dashboards:\n    label: x\n";
        assert_eq!(check(&d, text), Vec::<String>::new());
    }

    #[test]
    fn null_over_an_empty_default_does_nothing() {
        let d = defaults(DEFAULTS, None);
        let got = check(&d, "dashboards: null\n");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("modules/demo/values.yaml:1: `dashboards` is null"),
            "{got:?}"
        );
        assert_eq!(
            check(&d, "podAnnotations: {}\nsidecar:\n  dashboards: null\n"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_schema_rejects_a_wrong_type_at_its_path() {
        let schema = r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"spec":{"type":"object","properties":{"port":{"type":"integer"}}}}}"#;
        let d = defaults(DEFAULTS, Some(schema));
        let values: Value = serde_yaml_ng::from_str("spec:\n  port: eighty\n").unwrap();
        let got = check_schema(&d, &values, &|p| {
            ("modules/demo/values.yaml".into(), Some(p.len()))
        })
        .unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].path, "spec.port");
        assert!(
            got[0]
                .message
                .contains("\"eighty\" is not of type \"integer\""),
            "{}",
            got[0]
        );
        let ok: Value = serde_yaml_ng::from_str("spec:\n  port: 81\n").unwrap();
        assert!(check_schema(&d, &ok, &|_| (String::new(), None))
            .unwrap()
            .is_empty());
    }
}
