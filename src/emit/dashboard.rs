//! Dashboards for file provisioning. Grafana's import dialog fills a dashboard's `__inputs` (datasources
//! and constants); the sidecar that loads ConfigMaps does not, so the build does it here: every
//! `${DS_…}` / `${VAR_…}` reference is resolved to the configured datasource or constant, datasource
//! template variables default to the configured datasource, and a reference nothing resolves is an error,
//! never a dashboard that renders "datasource not found".

use std::collections::BTreeMap;

use serde_json::Value;

use crate::emit::{datasource_refs, json_text, library_panels};

mod references;
mod skeleton;
use crate::manifest::DashboardSpec;
use references::{
    collect_references, default_datasource_variables, is_builtin, plugin_of_input_name,
    replace_references, replaced_string,
};

/// A ConfigMap's data is limited to 1 MiB by the API server (etcd's object size limit).
pub const CONFIGMAP_LIMIT: usize = 1024 * 1024;
/// Client-side `kubectl apply` copies the object into the `last-applied-configuration` annotation,
/// which is limited to 256 KiB. Flux applies server-side, so only hand-applied stacks hit this.
pub const CLIENT_SIDE_APPLY_LIMIT: usize = 262_144;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DashboardError {
    #[error("dashboard `{name}`: {path} is not a JSON object: {reason}\nhelp: a dashboard is one JSON object with a `title` and `panels`; fix {path}, or export it again from Grafana (Share > Export > Save to file)")]
    NotJson {
        name: String,
        path: String,
        reason: String,
    },
    #[error("dashboard `{name}`: input `{input}` needs a `{plugin}` datasource, and no active module provisions one\nhelp: set `datasources = {{ {input} = \"<datasource name>\" }}` under [dashboards.{name}], or enable the module that provides it")]
    NoDatasource {
        name: String,
        input: String,
        plugin: String,
    },
    #[error("dashboard `{name}`: constant input `{input}` ({label}) has no value\nhelp: set `inputs = {{ {input} = \"…\" }}` under [dashboards.{name}] in stack.toml (upstream's suggestion: {suggested})")]
    MissingConstant {
        name: String,
        input: String,
        label: String,
        suggested: String,
    },
    #[error("dashboard `{name}`: `inputs.{input}` in stack.toml names no constant input of the dashboard (it has: {known})")]
    UnknownInput {
        name: String,
        input: String,
        known: String,
    },
    #[error("dashboard `{name}`: `${{{reference}}}` is used but neither an input nor a template variable defines it\nhelp: set `datasources = {{ {reference} = \"…\" }}` or `inputs = {{ {reference} = \"…\" }}` under [dashboards.{name}]")]
    Unresolved { name: String, reference: String },
    #[error("dashboard `{name}`: {path} has no `title`, and Grafana provisions no dashboard without one\nhelp: is {path} a dashboard? Give it a title")]
    NoTitle { name: String, path: String },
    #[error("dashboard `{name}`: uid {uid} is not a Grafana dashboard uid (at most 40 characters of A-Z, a-z, 0-9, '-' and '_')\nhelp: give the dashboard a uid Grafana accepts")]
    BadUid { name: String, uid: String },
    #[error("dashboard `{name}`, {panel}: datasource `{reference}` resolves to nothing: no template variable of that name, and the stack provisions no such datasource (it provisions: {known})\nhelp: map it with `datasources = {{ … = \"<datasource>\" }}` under [dashboards.{name}] when it is an input, or fix the dashboard")]
    UnresolvedDatasource {
        name: String,
        panel: String,
        reference: String,
        known: String,
    },
    #[error("dashboard `{name}`, {panel}: refers to library panel `{uid}`, which the dashboard's `__elements` does not hold; file provisioning cannot load library panels\nhelp: export the dashboard with \"Export for sharing externally\" (which includes `__elements`), or replace the panel")]
    LibraryPanel {
        name: String,
        panel: String,
        uid: String,
    },
    #[error("dashboard `{name}` is {size} bytes, over the 1 MiB limit of a ConfigMap\nhelp: pick a smaller dashboard or revision; Kubernetes cannot store this one as a ConfigMap")]
    TooLarge { name: String, size: usize },
}

/// How one dashboard is provisioned: what stack.toml says of it (a vendored dashboard), or nothing (a
/// module's own dashboard, which resolves by the provisioned datasources alone).
#[derive(Debug, Clone, Copy)]
pub struct Provision<'a> {
    /// The datasource of its Prometheus-type inputs; `None`: the one the metrics module provisions.
    pub datasource: Option<&'a str>,
    /// Per-input datasources, by input name (`DS_LOKI = "Loki"`).
    pub datasources: &'a BTreeMap<String, String>,
    /// Values for `constant` inputs, by input name.
    pub inputs: &'a BTreeMap<String, String>,
}

impl<'a> From<&'a DashboardSpec> for Provision<'a> {
    fn from(spec: &'a DashboardSpec) -> Self {
        Provision {
            datasource: spec.datasource.as_deref(),
            datasources: &spec.datasources,
            inputs: &spec.inputs,
        }
    }
}

/// A dashboard ready to ship, with what Grafana's provisioning keys it by.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The JSON text to ship.
    pub text: String,
    /// `uid`, when the dashboard has one (Grafana makes one up otherwise).
    pub uid: Option<String>,
    /// `title` (required: Grafana refuses to provision a dashboard without one).
    pub title: String,
}

/// What the provisioned dashboard's datasources resolve to.
pub struct Datasources<'a> {
    /// Provisioned by active modules, by plugin id (`prometheus` -> `VictoriaMetrics`).
    pub provisioned: &'a BTreeMap<String, String>,
}

/// Rewrites a vendored dashboard for provisioning and returns the JSON text to ship.
pub fn render(
    name: &str,
    path: &str,
    bytes: &[u8],
    spec: &Provision,
    ds: &Datasources,
) -> Result<Rendered, DashboardError> {
    let by = Resolve { name, spec, ds };
    match by.on_text(path, bytes) {
        Some(rendered) => Ok(rendered),
        None => by.on_tree(path, bytes),
    }
}

/// What the rules made of a dashboard (its tree, or its skeleton).
struct Applied {
    replacements: BTreeMap<String, String>,
    title: String,
    uid: Option<String>,
    /// Literal datasource references remapped to another value (a change the text edit does not make).
    remapped: usize,
}

impl Resolve<'_> {
    /// The common case, without building the dashboard's tree: its text validated in one pass, the rules
    /// run on its skeleton (the members they read), one borrowed walk for `${…}` references, and the
    /// text edited in place. `None` (the caller then works on the tree, which also gives any error its
    /// exact wording) unless the edited text is provably the document the tree path ships: no API export,
    /// library panels, duplicate keys, remapped literals, `${` in a key, or `\u` escape that could
    /// spell a reference; every replaced name one the text scan finds; and each string holding `${`
    /// replaced alike by the scan and by the tree's `str::replace` (tests: `skeleton_and_tree_agree_*`).
    fn on_text(&self, path: &str, bytes: &[u8]) -> Option<Rendered> {
        let text = std::str::from_utf8(bytes).ok()?;
        let object = json_text::Object::parse(text).ok()?;
        let skeleton::Read {
            skeleton: mut doc,
            strings,
        } = skeleton::read(&object)?;
        if !escapes_spell_no_reference(text) {
            return None;
        }
        library_panels::inline(&mut doc).ok()?;
        let applied = self.apply(path, &mut doc, strings.referenced).ok()?;
        if applied.remapped > 0 || !scan_agrees(&applied.replacements, &strings.templated) {
            return None;
        }
        let text = json_text::edits(&object, doc.get("templating"), &applied.replacements)?;
        (text.len() <= CONFIGMAP_LIMIT - 4096).then_some(Rendered {
            text,
            uid: applied.uid,
            title: applied.title,
        })
    }

    /// Every case: the dashboard parsed into its tree, the rules run on it, and the text edit checked
    /// against it (the document pretty-printed where the edit cannot give it).
    fn on_tree(&self, path: &str, bytes: &[u8]) -> Result<Rendered, DashboardError> {
        let name = self.name;
        let mut doc: Value =
            serde_json::from_slice(bytes).map_err(|e| DashboardError::NotJson {
                name: name.into(),
                path: path.into(),
                reason: e.to_string(),
            })?;
        if doc.as_object().is_some_and(is_api_export) {
            doc = doc["dashboard"].take();
        }
        library_panels::inline(&mut doc).map_err(|m| DashboardError::LibraryPanel {
            name: name.into(),
            panel: m.panel,
            uid: m.uid,
        })?;
        let mut referenced = std::collections::BTreeSet::new();
        if let Some(obj) = doc.as_object() {
            obj.values()
                .for_each(|v| collect_references(v, &mut referenced));
        }
        let applied = self.apply(path, &mut doc, referenced)?;
        // A remapped literal is a change the text edit does not make: its check would only fail.
        let editable = applied.remapped == 0;
        let text = shipped_text(name, bytes, &doc, &applied.replacements, editable)?;
        Ok(Rendered {
            text,
            uid: applied.uid,
            title: applied.title,
        })
    }

    /// The rules on `doc` (a tree or a skeleton) with the `${…}` references found in it: inputs and
    /// references resolved and replaced, `__inputs` removed, datasource variables defaulted, literals
    /// remapped and every datasource reference checked.
    fn apply(
        &self,
        path: &str,
        doc: &mut Value,
        referenced: std::collections::BTreeSet<String>,
    ) -> Result<Applied, DashboardError> {
        let (name, spec, ds) = (self.name, self.spec, self.ds);
        let Some(obj) = doc.as_object_mut() else {
            return Err(DashboardError::NotJson {
                name: name.into(),
                path: path.into(),
                reason: "top level is not an object".into(),
            });
        };
        let variables = template_variables(obj);
        let mut replacements = self.input_replacements(obj, &variables)?;
        self.reference_replacements(referenced, &variables, &mut replacements)?;

        // `shift_remove`, not `remove`: with serde_json's preserve_order, `remove` swaps the last key into
        // the hole, reordering upstream's document.
        obj.shift_remove("__inputs");
        let (title, uid) = title_and_uid(name, path, obj)?;
        replace_references(doc, &replacements);
        default_datasource_variables(doc, &|plugin: &str| {
            if plugin == "prometheus" {
                spec.datasource
                    .map(str::to_string)
                    .or_else(|| ds.provisioned.get(plugin).cloned())
            } else {
                ds.provisioned.get(plugin).cloned()
            }
        });
        let remapped = self.remap_literals(doc)?;
        Ok(Applied {
            replacements,
            title,
            uid,
            remapped,
        })
    }
}

/// Whether no `\uXXXX` escape of `text` spells a character of a reference (`$`, `{`, `}` or a name
/// character): the text scan, which reads escapes as they are written, then sees the references the
/// tree holds.
fn escapes_spell_no_reference(text: &str) -> bool {
    text.match_indices("\\u").all(|(at, _)| {
        let spelled = text
            .get(at + 2..at + 6)
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .and_then(char::from_u32);
        !spelled.is_some_and(|c| {
            matches!(c, '$' | '{' | '}' | '_' | '-' | '.') || c.is_ascii_alphanumeric()
        })
    })
}

/// Whether the text scan replaces references as the tree does: every name is one the scan finds, and each
/// string holding `${` comes out the same from both (the tree replaces name by name, the scan in one pass).
fn scan_agrees(replacements: &BTreeMap<String, String>, templated: &[String]) -> bool {
    if !replacements.keys().all(|k| json_text::is_scanned_name(k)) {
        return false;
    }
    let plain: BTreeMap<&str, String> = replacements
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    templated.iter().all(|s| {
        let mut scanned = String::with_capacity(s.len());
        json_text::replace_with(s, &plain, &mut scanned);
        scanned == replaced_string(s, replacements).unwrap_or_else(|| s.clone())
    })
}

/// The template variables of a dashboard, by name. They resolve their own references; they are never
/// overwritten, only defaulted.
fn template_variables(obj: &serde_json::Map<String, Value>) -> BTreeMap<String, Value> {
    obj.get("templating")
        .and_then(|t| t.get("list"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|v| Some((v.get("name")?.as_str()?.to_string(), v.clone())))
                .collect()
        })
        .unwrap_or_default()
}

/// The dashboard's title (required) and uid (optional, checked).
fn title_and_uid(
    name: &str,
    path: &str,
    obj: &serde_json::Map<String, Value>,
) -> Result<(String, Option<String>), DashboardError> {
    let title = obj
        .get("title")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| DashboardError::NoTitle {
            name: name.into(),
            path: path.into(),
        })?
        .to_string();
    let uid = match obj.get("uid") {
        None | Some(Value::Null) => None,
        Some(Value::String(uid)) => Some(check_uid(name, uid)?),
        Some(other) => {
            return Err(DashboardError::BadUid {
                name: name.into(),
                uid: other.to_string(),
            })
        }
    };
    Ok((title, uid))
}

/// The JSON text to ship: upstream's bytes with the fewest edits where that gives the same document
/// (its formatting kept, a minified file stays minified); else the document pretty-printed. `editable`
/// false: the build changed what the text edit cannot (a remapped literal), so it is not tried.
fn shipped_text(
    name: &str,
    bytes: &[u8],
    doc: &Value,
    replacements: &BTreeMap<String, String>,
    editable: bool,
) -> Result<String, DashboardError> {
    let text = std::str::from_utf8(bytes)
        .ok()
        .filter(|_| editable)
        .and_then(|text| json_text::edited(text, doc, replacements))
        .unwrap_or_else(|| {
            let mut text =
                serde_json::to_string_pretty(doc).expect("a parsed JSON value serialises");
            text.push('\n');
            text
        });
    if text.len() > CONFIGMAP_LIMIT - 4096 {
        return Err(DashboardError::TooLarge {
            name: name.into(),
            size: text.len(),
        });
    }
    Ok(text)
}

/// How one dashboard's datasource references resolve: its stack.toml settings and what the active
/// modules provision.
struct Resolve<'a> {
    name: &'a str,
    spec: &'a Provision<'a>,
    ds: &'a Datasources<'a>,
}

impl Resolve<'_> {
    /// A `datasources` value that is a plugin id (`prometheus`, `loki`) means the datasource the active
    /// modules provision for it, so one stack.toml works with either metrics backend.
    fn mapped(&self, key: &str) -> Option<String> {
        let value = self.spec.datasources.get(key)?;
        Some(self.ds.provisioned.get(value).unwrap_or(value).clone())
    }

    /// The datasource for an input of `plugin`.
    fn datasource_for(&self, input: &str, plugin: &str) -> Result<String, DashboardError> {
        if let Some(v) = self.mapped(input) {
            return Ok(v);
        }
        if plugin == "prometheus" {
            if let Some(v) = self.spec.datasource {
                return Ok(v.to_string());
            }
        }
        self.ds
            .provisioned
            .get(plugin)
            .cloned()
            .ok_or_else(|| DashboardError::NoDatasource {
                name: self.name.into(),
                input: input.into(),
                plugin: plugin.into(),
            })
    }

    /// Replacements for the `__inputs` (datasources and constants); every constant stack.toml gives
    /// must be one of them.
    fn input_replacements(
        &self,
        obj: &serde_json::Map<String, Value>,
        variables: &BTreeMap<String, Value>,
    ) -> Result<BTreeMap<String, String>, DashboardError> {
        let mut replacements: BTreeMap<String, String> = BTreeMap::new();
        let mut constants = Vec::new();
        if let Some(inputs) = obj.get("__inputs").and_then(Value::as_array) {
            for input in inputs {
                let Some(input_name) = input.get("name").and_then(Value::as_str) else {
                    continue;
                };
                match input.get("type").and_then(Value::as_str) {
                    Some("datasource") => {
                        if variables.contains_key(input_name) {
                            continue;
                        }
                        let plugin = input
                            .get("pluginId")
                            .and_then(Value::as_str)
                            .unwrap_or("prometheus");
                        replacements.insert(
                            input_name.to_string(),
                            self.datasource_for(input_name, plugin)?,
                        );
                    }
                    Some("constant") => {
                        constants.push(input_name.to_string());
                        let value = self.spec.inputs.get(input_name).ok_or_else(|| {
                            DashboardError::MissingConstant {
                                name: self.name.into(),
                                input: input_name.into(),
                                label: input
                                    .get("label")
                                    .and_then(Value::as_str)
                                    .unwrap_or(input_name)
                                    .into(),
                                suggested: input
                                    .get("value")
                                    .map(|v| v.to_string())
                                    .unwrap_or_else(|| "none".into()),
                            }
                        })?;
                        replacements.insert(input_name.to_string(), value.clone());
                    }
                    _ => {}
                }
            }
        }
        for given in self.spec.inputs.keys() {
            if !constants.contains(given) {
                return Err(DashboardError::UnknownInput {
                    name: self.name.into(),
                    input: given.clone(),
                    known: if constants.is_empty() {
                        "none".into()
                    } else {
                        constants.join(", ")
                    },
                });
            }
        }

        Ok(replacements)
    }

    /// `${DS_…}` references with no `__inputs` (flux-cluster, cilium-agent): resolved by the name's
    /// plugin.
    fn reference_replacements(
        &self,
        referenced: std::collections::BTreeSet<String>,
        variables: &BTreeMap<String, Value>,
        replacements: &mut BTreeMap<String, String>,
    ) -> Result<(), DashboardError> {
        for reference in referenced {
            if replacements.contains_key(&reference)
                || variables.contains_key(&reference)
                || is_builtin(&reference)
            {
                continue;
            }
            if let Some(plugin) = plugin_of_input_name(&reference) {
                if let Some(explicit) = self.mapped(&reference) {
                    replacements.insert(reference, explicit);
                } else {
                    replacements
                        .insert(reference.clone(), self.datasource_for(&reference, &plugin)?);
                }
            } else if reference.starts_with("VAR_") {
                return Err(DashboardError::Unresolved {
                    name: self.name.into(),
                    reference,
                });
            }
        }

        Ok(())
    }

    /// Literal references to the author's datasources (`{"uid": "P1809F7CD0C75ACF3"}`, `"prometheus"`)
    /// are remapped where stack.toml says so: `datasources = { P1809F7CD0C75ACF3 = "prometheus" }`;
    /// then every reference must be a known datasource.
    /// Returns how many references it remapped.
    fn remap_literals(&self, doc: &mut Value) -> Result<usize, DashboardError> {
        let literal: BTreeMap<String, String> = self
            .spec
            .datasources
            .keys()
            .filter_map(|k| Some((k.clone(), self.mapped(k)?)))
            .collect();
        let remapped = datasource_refs::remap(doc, &literal);
        let known: std::collections::BTreeSet<String> = self
            .ds
            .provisioned
            .values()
            .cloned()
            .chain(self.spec.datasource.map(str::to_string))
            .chain(literal.values().cloned())
            .collect();
        datasource_refs::check(doc, &known).map_err(|u| DashboardError::UnresolvedDatasource {
            name: self.name.into(),
            panel: u.panel,
            reference: u.reference,
            known: known.iter().cloned().collect::<Vec<_>>().join(", "),
        })?;

        Ok(remapped)
    }
}

/// A dashboard saved from Grafana's HTTP API (`GET /api/dashboards/uid/…`): `{"dashboard": {…}, "meta":
/// {…}}`. Grafana's file provisioning wants the inner object.
fn is_api_export(object: &serde_json::Map<String, Value>) -> bool {
    object.get("dashboard").is_some_and(Value::is_object)
        && object.contains_key("meta")
        && !object.contains_key("panels")
}

/// The dashboard itself: the inner `dashboard` of an HTTP API export, or the object as it is.
pub fn unwrap_api_export(
    object: &serde_json::Map<String, Value>,
) -> &serde_json::Map<String, Value> {
    if is_api_export(object) {
        object["dashboard"].as_object().expect("checked")
    } else {
        object
    }
}

/// Grafana's rule for a dashboard uid: at most 40 characters of `[A-Za-z0-9_-]` (Grafana's
/// `util.IsValidShortUID` and `MaxUIDLength`); provisioning refuses any other.
fn check_uid(name: &str, uid: &str) -> Result<String, DashboardError> {
    let valid = !uid.is_empty()
        && uid.len() <= 40
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(uid.to_string())
    } else {
        Err(DashboardError::BadUid {
            name: name.into(),
            uid: format!("{uid:?}"),
        })
    }
}

#[cfg(test)]
mod tests;
