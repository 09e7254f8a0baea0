//! `modules/`: the components of the stack. Each `modules/<name>/module.toml` declares a component's
//! namespace, chart, Helm values, extra manifests, the settings-driven pieces that apply only when a
//! condition holds, and what it depends on. The format is declarative on purpose (no template language):
//! every module can be checked, diffed and built without running anything. See docs/modules.md.

#![allow(
    clippy::disallowed_methods,
    reason = "its errors are wrapped with the stack-relative path; fs_err would add the absolute one to output"
)]

use std::collections::BTreeMap;
use std::path::{Component, Path};

use serde::Deserialize;

use crate::diag::{toml_error, SpanError};
use crate::manifest::Name;
use crate::settings::{Condition, Schema, SCHEMA_FILE};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleWire {
    /// For people reading modules/; not emitted.
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
    #[serde(deserialize_with = "crate::kube::dns_label")]
    namespace: String,
    #[serde(default)]
    when: Condition,
    #[serde(default)]
    provides: Vec<String>,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    optional_depends_on: Vec<String>,
    #[serde(
        default = "default_timeout",
        deserialize_with = "crate::kube::flux_duration"
    )]
    timeout: String,
    #[serde(default = "default_true")]
    wait: bool,
    #[serde(default)]
    dashboards: bool,
    #[serde(default)]
    datasources: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "crate::kube::labels")]
    namespace_labels: BTreeMap<String, String>,
    release: Option<ReleaseWire>,
    #[serde(default)]
    manifests: Vec<ManifestFileWire>,
    #[serde(default, rename = "dashboard")]
    own_dashboards: Vec<OwnDashboardWire>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnDashboardWire {
    file: String,
    folder: String,
    #[serde(default)]
    when: Condition,
}

fn default_timeout() -> String {
    "10m".into()
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseWire {
    chart: Name,
    name: Option<Name>,
    #[serde(default)]
    values: Vec<String>,
    #[serde(default)]
    patch: Vec<PatchWire>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchWire {
    #[serde(default)]
    when: Condition,
    values: String,
    #[serde(default)]
    merge: Merge,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFileWire {
    file: String,
    #[serde(default)]
    when: Condition,
}

/// How a conditional values file combines with what came before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Merge {
    /// Maps merge key by key; lists and scalars replace (Helm's own rule for `-f a.yaml -f b.yaml`).
    #[default]
    Replace,
    /// Lists are extended and strings joined with a newline: how an optional pipeline joins a config
    /// string, or an optional datasource joins a list, without a template language.
    Append,
}

/// A module as loaded: every file it names has been read and parsed as YAML.
#[derive(Debug, Clone)]
pub struct Module {
    pub name: String,
    pub namespace: String,
    pub when: Condition,
    pub provides: Vec<String>,
    pub depends_on: Vec<String>,
    pub optional_depends_on: Vec<String>,
    pub timeout: String,
    pub wait: bool,
    pub dashboards: bool,
    pub datasources: BTreeMap<String, String>,
    /// Labels the module needs on its namespace (e.g. Pod Security `privileged` for node-exporter's host
    /// access); merged over all active modules sharing the namespace.
    pub namespace_labels: BTreeMap<String, String>,
    pub release: Option<Release>,
    pub manifests: Vec<ManifestFile>,
    /// Dashboards this module owns (`[[dashboard]]`): written by us for the metrics the module scrapes or
    /// records, shipped with the module's app through the same checks and ConfigMap scheme as vendored
    /// ones.
    pub own_dashboards: Vec<OwnDashboard>,
}

/// A dashboard file of a module (`modules/<module>/<file>`), read but not parsed: the build renders and
/// checks it like a vendored one.
#[derive(Debug, Clone)]
pub struct OwnDashboard {
    /// The file's stem (`coredns` for `dashboards/coredns.json`): the ConfigMap is `dashboard-<name>`.
    pub name: String,
    /// `modules/<module>/<file>`, always with `/`.
    pub path: String,
    pub bytes: Vec<u8>,
    /// Grafana folder (the ConfigMap's `grafana_folder` annotation).
    pub folder: String,
    pub when: Condition,
}

#[derive(Debug, Clone)]
pub struct Release {
    pub chart: Name,
    pub name: String,
    pub values: Vec<YamlFile>,
    pub patches: Vec<Patch>,
}

#[derive(Debug, Clone)]
pub struct Patch {
    pub when: Condition,
    pub file: YamlFile,
    pub merge: Merge,
}

#[derive(Debug, Clone)]
pub struct ManifestFile {
    pub file: YamlFile,
    pub when: Condition,
}

/// A YAML file of a module, parsed, with its repo-relative path for error messages.
#[derive(Debug, Clone)]
pub struct YamlFile {
    /// `modules/<module>/<file>`, always with `/`.
    pub path: String,
    /// One entry per YAML document (manifests may hold several; values files hold one).
    pub documents: Vec<serde_yaml_ng::Value>,
}

/// All modules of `modules/` and the settings schema, keyed by name.
#[derive(Debug, Clone)]
pub struct ModuleSet {
    pub schema: Schema,
    pub modules: BTreeMap<String, Module>,
}

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error(transparent)]
    Located(#[from] SpanError),
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("cannot read {path}: {source}\nhelp: create {path}, or correct the file name that module.toml gives for it")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn file_error(path: &str, message: impl Into<String>) -> ModuleError {
    ModuleError::File {
        path: path.to_string(),
        message: message.into(),
    }
}

fn read(root: &Path, rel: &str) -> Result<String, ModuleError> {
    crate::contain::read_to_string(root, rel).map_err(|source| ModuleError::Io {
        path: rel.to_string(),
        source,
    })
}

impl ModuleSet {
    /// Loads `modules/` under `root` (the stack's directory). Directory order never matters: names are
    /// sorted.
    /// Both modules/ and modules/settings.toml are optional: a stack that only pins inputs has neither.
    pub fn load(root: &Path) -> Result<ModuleSet, ModuleError> {
        // Through containment like every module file: a symlink out of the stack is refused, and a
        // FIFO or device is never opened.
        let schema = match read(root, SCHEMA_FILE) {
            Ok(text) => Schema::parse(&text)?,
            Err(ModuleError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Schema::default()
            }
            Err(e) => return Err(e),
        };
        let dir = root.join("modules");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ModuleSet {
                    schema,
                    modules: BTreeMap::new(),
                })
            }
            Err(source) => {
                return Err(ModuleError::Io {
                    path: "modules/".into(),
                    source,
                })
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| ModuleError::Io {
                path: "modules/".into(),
                source,
            })?;
            // A module.toml that is there but not a file (a FIFO, a link to a device) is read, and
            // refused with its name, rather than leaving the module unknown.
            if std::fs::symlink_metadata(entry.path().join("module.toml")).is_ok() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        let mut modules = BTreeMap::new();
        // Parsing the modules' YAML is most of reading a stack: on every core, the first error in name
        // order reported as when loading them one by one.
        let workers = std::thread::available_parallelism().map_or(1, usize::from);
        crate::parallel::ordered(
            &names,
            workers,
            names.len(),
            |name| load_module(root, name, &schema),
            |i, module| {
                modules.insert(names[i].clone(), module?);
                Ok::<_, ModuleError>(())
            },
        )?;
        let set = ModuleSet { schema, modules };
        set.check_references()?;
        Ok(set)
    }

    /// Every dependency names a module or a capability some module provides.
    fn check_references(&self) -> Result<(), ModuleError> {
        for module in self.modules.values() {
            for dep in module.depends_on.iter().chain(&module.optional_depends_on) {
                if !self.modules.contains_key(dep)
                    && !self.modules.values().any(|m| m.provides.contains(dep))
                {
                    return Err(file_error(
                        &format!("modules/{}/module.toml", module.name),
                        format!("depends on `{dep}`, which is neither a module nor a capability any module provides\nhelp: modules in modules/: {}", self.modules.keys().cloned().collect::<Vec<_>>().join(", ")),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn load_module(root: &Path, name: &str, schema: &Schema) -> Result<Module, ModuleError> {
    let toml_path = format!("modules/{name}/module.toml");
    name.parse::<Name>()
        .map_err(|e| {
            file_error(
                &toml_path,
                format!("module name {e}\nhelp: rename the directory modules/{name}/ (and its entry in [modules] enabled)"),
            )
        })?;
    let text = read(root, &toml_path)?;
    let wire: ModuleWire = toml::from_str(&text).map_err(|e| toml_error(&toml_path, &text, &e))?;
    let loader = ModuleLoader {
        root,
        name,
        schema,
        toml_path: &toml_path,
        text: &text,
    };
    loader.check(&wire.when)?;
    let release = wire.release.map(|r| loader.release(r)).transpose()?;
    let manifests = loader.manifests(&wire.manifests)?;
    let own_dashboards = loader.own_dashboards(&wire.own_dashboards)?;
    Ok(Module {
        name: name.to_string(),
        namespace: wire.namespace,
        when: wire.when,
        provides: wire.provides,
        depends_on: wire.depends_on,
        optional_depends_on: wire.optional_depends_on,
        timeout: wire.timeout,
        wait: wire.wait,
        dashboards: wire.dashboards,
        datasources: wire.datasources,
        namespace_labels: wire.namespace_labels,
        release,
        manifests,
        own_dashboards,
    })
}

/// One module's module.toml being loaded: what its parts are read and checked against.
struct ModuleLoader<'a> {
    root: &'a Path,
    name: &'a str,
    schema: &'a Schema,
    /// `modules/<name>/module.toml`.
    toml_path: &'a str,
    /// Its text, for errors that point at a line.
    text: &'a str,
}

impl ModuleLoader<'_> {
    /// A `when` names only settings that exist, with values of their type.
    fn check(&self, cond: &Condition) -> Result<(), ModuleError> {
        Ok(cond.check_located(self.schema, self.toml_path, self.text)?)
    }

    /// A YAML file of the module, parsed, its `${settings.*}` references checked.
    fn yaml(&self, file: &str) -> Result<YamlFile, ModuleError> {
        let rel = module_file(self.name, file).map_err(|m| file_error(self.toml_path, m))?;
        let text = read(self.root, &rel)?;
        let documents = parse_documents(&text)
            .map_err(|m| file_error(&rel, format!("{m}\nhelp: fix the YAML of {rel}")))?;
        for doc in &documents {
            self.schema
                .check_references(doc)
                .map_err(|m| file_error(&rel, m))?;
        }
        Ok(YamlFile {
            path: rel,
            documents,
        })
    }

    /// `[release]`: its values files and conditional patches.
    fn release(&self, r: ReleaseWire) -> Result<Release, ModuleError> {
        let mut values = Vec::new();
        for file in &r.values {
            values.push(single_document(self.yaml(file)?)?);
        }
        let mut patches = Vec::new();
        for p in &r.patch {
            self.check(&p.when)?;
            patches.push(Patch {
                when: p.when.clone(),
                file: single_document(self.yaml(&p.values)?)?,
                merge: p.merge,
            });
        }
        Ok(Release {
            chart: r.chart,
            name: r
                .name
                .map(|n| n.to_string())
                .unwrap_or_else(|| self.name.to_string()),
            values,
            patches,
        })
    }

    /// `[[manifests]]`.
    fn manifests(&self, wire: &[ManifestFileWire]) -> Result<Vec<ManifestFile>, ModuleError> {
        let mut manifests = Vec::new();
        for m in wire {
            self.check(&m.when)?;
            manifests.push(ManifestFile {
                file: self.yaml(&m.file)?,
                when: m.when.clone(),
            });
        }
        Ok(manifests)
    }

    /// `[[dashboard]]`: the module's own dashboards.
    fn own_dashboards(&self, wire: &[OwnDashboardWire]) -> Result<Vec<OwnDashboard>, ModuleError> {
        let mut own = Vec::new();
        for d in wire {
            self.check(&d.when)?;
            own.push(own_dashboard(self.root, self.name, self.toml_path, d)?);
        }
        Ok(own)
    }
}

fn own_dashboard(
    root: &Path,
    module: &str,
    toml_path: &str,
    wire: &OwnDashboardWire,
) -> Result<OwnDashboard, ModuleError> {
    let rel = module_file(module, &wire.file).map_err(|m| file_error(toml_path, m))?;
    let stem = Path::new(&wire.file)
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|_| wire.file.ends_with(".json"))
        .ok_or_else(|| {
            file_error(
                toml_path,
                format!(
                    "dashboard `{}` must be a .json file\nhelp: save the dashboard as JSON with a .json name, and name that file in `file`",
                    wire.file
                ),
            )
        })?;
    stem.parse::<Name>().map_err(|e| {
        file_error(
            toml_path,
            format!("dashboard file name: {e}; the file name is the ConfigMap's (`dashboard-<name>`)\nhelp: rename the file, e.g. dashboards/{}.json", stem.to_lowercase().replace(['_', ' ', '.'], "-")),
        )
    })?;
    let bytes = crate::contain::read(root, &rel).map_err(|source| ModuleError::Io {
        path: rel.clone(),
        source,
    })?;
    Ok(OwnDashboard {
        name: stem.to_string(),
        path: rel,
        bytes,
        folder: wire.folder.clone(),
        when: wire.when.clone(),
    })
}

/// A module may only name files inside its own directory, so a build reads nothing outside the stack.
fn module_file(module: &str, file: &str) -> Result<String, String> {
    let path = Path::new(file);
    if file.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(format!(
            "`{file}` must be a relative path inside modules/{module}/\nhelp: move the file into modules/{module}/ and name it relative to that directory"
        ));
    }
    Ok(format!("modules/{module}/{file}"))
}

fn parse_documents(text: &str) -> Result<Vec<serde_yaml_ng::Value>, String> {
    crate::yaml_depth::check(text.as_bytes())?;
    let text = crate::settings::mark_quoted_references(text);
    let mut documents = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = serde_yaml_ng::Value::deserialize(doc).map_err(|e| e.to_string())?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

fn single_document(mut file: YamlFile) -> Result<YamlFile, ModuleError> {
    match file.documents.len() {
        0 => file
            .documents
            .push(serde_yaml_ng::Value::Mapping(Default::default())),
        1 if file.documents[0].is_mapping() => {}
        1 => {
            return Err(file_error(
                &file.path,
                "Helm values must be a YAML mapping\nhelp: write the values as `key: value` lines at the top level",
            ))
        }
        _ => {
            return Err(file_error(
                &file.path,
                "Helm values must be one YAML document",
            ))
        }
    }
    Ok(file)
}

/// Deep-merges `overlay` into `base` (see [`Merge`]).
pub fn merge_values(base: &mut serde_yaml_ng::Value, overlay: &serde_yaml_ng::Value, mode: Merge) {
    use serde_yaml_ng::Value;
    match (base, overlay) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => merge_values(existing, v, mode),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Sequence(b), Value::Sequence(o)) if mode == Merge::Append => {
            b.extend(o.iter().cloned())
        }
        (Value::String(b), Value::String(o)) if mode == Merge::Append => {
            if !b.is_empty() && !b.ends_with('\n') {
                b.push('\n');
            }
            b.push_str(o);
        }
        (b, o) => *b = o.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> serde_yaml_ng::Value {
        serde_yaml_ng::from_str(s).unwrap()
    }

    #[test]
    fn replace_merges_maps_and_replaces_lists() {
        let mut base = y("a: {b: 1, c: [1]}\nd: x");
        merge_values(&mut base, &y("a: {c: [2], e: 3}"), Merge::Replace);
        assert_eq!(base, y("a: {b: 1, c: [2], e: 3}\nd: x"));
    }

    #[test]
    fn append_extends_lists_and_joins_strings() {
        let mut base = y("l: [1]\ns: \"one\\n\"");
        merge_values(&mut base, &y("l: [2]\ns: two\n"), Merge::Append);
        assert_eq!(base, y("l: [1, 2]\ns: \"one\\ntwo\""));
    }

    #[test]
    fn settings_and_module_files_that_are_not_files_or_lead_out_are_refused_not_read() {
        let fifo = crate::support::tree::mkfifo;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("modules/x")).unwrap();
        // Reading either FIFO would block this test forever.
        fifo(&root.join(SCHEMA_FILE));
        let err = ModuleSet::load(root).unwrap_err().to_string();
        assert!(
            err.contains("settings.toml") && err.contains("not a regular file"),
            "{err}"
        );
        std::fs::remove_file(root.join(SCHEMA_FILE)).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("settings.toml"), "").unwrap();
        std::os::unix::fs::symlink(outside.path().join("settings.toml"), root.join(SCHEMA_FILE))
            .unwrap();
        let err = ModuleSet::load(root).unwrap_err().to_string();
        assert!(err.contains("leading outside the stack"), "{err}");
        std::fs::remove_file(root.join(SCHEMA_FILE)).unwrap();
        fifo(&root.join("modules/x/module.toml"));
        let err = ModuleSet::load(root).unwrap_err().to_string();
        assert!(
            err.contains("modules/x/module.toml") && err.contains("not a regular file"),
            "{err}"
        );
    }

    #[test]
    fn module_files_cannot_escape_their_directory() {
        assert!(module_file("loki", "../alloy/values.yaml").is_err());
        assert!(module_file("loki", "/etc/passwd").is_err());
        assert_eq!(
            module_file("loki", "rules/a.yaml").unwrap(),
            "modules/loki/rules/a.yaml"
        );
    }
}
