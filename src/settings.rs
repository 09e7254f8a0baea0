//! Settings: the typed knobs a stack sets (`[settings]` in stack.toml), the schema that declares them
//! (`modules/settings.toml`), the conditions modules write over them (`when = { loki_enabled = true }`) and
//! the typed `${settings.NAME}` substitution into YAML. Settings are the only way a stack varies its modules,
//! so every name and type is checked before anything is built.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::diag::SpanError;

/// A setting's value. Integers stay integers in Helm values; that is why substitution is typed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SettingValue {
    Bool(bool),
    Integer(i64),
    String(String),
}

impl SettingValue {
    pub fn kind(&self) -> SettingType {
        match self {
            SettingValue::Bool(_) => SettingType::Bool,
            SettingValue::Integer(_) => SettingType::Integer,
            SettingValue::String(_) => SettingType::String,
        }
    }

    pub fn to_yaml(&self) -> serde_yaml_ng::Value {
        match self {
            SettingValue::Bool(b) => serde_yaml_ng::Value::Bool(*b),
            SettingValue::Integer(i) => serde_yaml_ng::Value::Number((*i).into()),
            SettingValue::String(s) => serde_yaml_ng::Value::String(s.clone()),
        }
    }
}

impl fmt::Display for SettingValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingValue::Bool(b) => write!(f, "{b}"),
            SettingValue::Integer(i) => write!(f, "{i}"),
            SettingValue::String(s) => write!(f, "{s}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SettingType {
    String,
    Integer,
    Bool,
}

impl fmt::Display for SettingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SettingType::String => "a string",
            SettingType::Integer => "an integer",
            SettingType::Bool => "a boolean",
        })
    }
}

/// One entry of `modules/settings.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingDecl {
    #[serde(rename = "type")]
    pub kind: SettingType,
    /// Omitted: the stack must set it (e.g. `cluster_name`, which has no sensible default).
    pub default: Option<SettingValue>,
    /// For strings: the only values accepted (e.g. the two metrics backends).
    #[serde(default)]
    pub allowed: Vec<String>,
    #[serde(default)]
    pub description: String,
}

/// The declared settings, by name.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub decls: BTreeMap<String, SettingDecl>,
}

pub const SCHEMA_FILE: &str = "modules/settings.toml";

impl Schema {
    pub fn parse(text: &str) -> Result<Schema, SpanError> {
        let decls: BTreeMap<String, SettingDecl> =
            toml::from_str(text).map_err(|e| crate::diag::toml_error(SCHEMA_FILE, text, &e))?;
        for (name, decl) in &decls {
            // The table's header, for the line of the error.
            let header = format!("[{name}]");
            let span = text.find(&header).map(|at| at..at + header.len());
            let error = |message: String, help: String| {
                SpanError::new(SCHEMA_FILE, text, span.clone(), message).help(help)
            };
            if let Some(default) = &decl.default {
                if default.kind() != decl.kind {
                    return Err(error(
                        format!("setting `{name}`: default `{default}` is not {}", decl.kind),
                        format!("give `default` {} value, or change `type`", decl.kind),
                    ));
                }
                if let SettingValue::String(s) = default {
                    if !decl.allowed.is_empty() && !decl.allowed.contains(s) {
                        return Err(error(
                            format!("setting `{name}`: default \"{s}\" is not one of its `allowed` values"),
                            format!("use one of {} as the default, or add it to `allowed`", quoted_list(&decl.allowed)),
                        ));
                    }
                }
            }
            if !decl.allowed.is_empty() && decl.kind != SettingType::String {
                return Err(error(
                    format!(
                        "setting `{name}`: `allowed` applies to strings, and the setting is {}",
                        decl.kind
                    ),
                    "remove `allowed`, or make the setting `type = \"string\"`".into(),
                ));
            }
        }
        Ok(Schema { decls })
    }

    /// Checks the stack's `[settings]` against the schema and fills in defaults. Each error points at the
    /// offending line of stack.toml.
    pub fn resolve(
        &self,
        given: &BTreeMap<String, toml::Spanned<toml::Value>>,
        file: &str,
        text: &str,
    ) -> Result<Settings, SpanError> {
        let mut values = BTreeMap::new();
        for (name, spanned) in given {
            values.insert(name.clone(), self.given_value(name, spanned, file, text)?);
        }
        for (name, decl) in &self.decls {
            if values.contains_key(name) {
                continue;
            }
            let Some(default) = &decl.default else {
                return Err(SpanError::new(
                    file,
                    text,
                    None,
                    format!("setting `{name}` is required"),
                )
                .help(format!(
                    "add `{name} = ...` ({}) under [settings]: {}",
                    decl.kind, decl.description
                )));
            };
            values.insert(name.clone(), default.clone());
        }
        Ok(Settings { values })
    }

    /// One setting of `[settings]`: declared, of its declared type, and one of `allowed` when it lists
    /// any.
    fn given_value(
        &self,
        name: &str,
        spanned: &toml::Spanned<toml::Value>,
        file: &str,
        text: &str,
    ) -> Result<SettingValue, SpanError> {
        let span = Some(spanned.span());
        let Some(decl) = self.decls.get(name) else {
            return Err(
                SpanError::new(file, text, span, format!("unknown setting `{name}`")).help(
                    format!("settings declared in {SCHEMA_FILE}: {}", self.names()),
                ),
            );
        };
        let value = match spanned.get_ref() {
            toml::Value::String(s) => SettingValue::String(s.clone()),
            toml::Value::Integer(i) => SettingValue::Integer(*i),
            toml::Value::Boolean(b) => SettingValue::Bool(*b),
            other => {
                return Err(SpanError::new(
                    file,
                    text,
                    span,
                    format!(
                        "setting `{name}` must be {}, found a {}",
                        decl.kind,
                        other.type_str()
                    ),
                ))
            }
        };
        if value.kind() != decl.kind {
            return Err(SpanError::new(
                file,
                text,
                span,
                format!("setting `{name}` must be {}, found `{value}`", decl.kind),
            )
            .help(format!(
                "{SCHEMA_FILE} declares `{name}` as {}; write the value so",
                decl.kind
            )));
        }
        if let SettingValue::String(s) = &value {
            if !decl.allowed.is_empty() && !decl.allowed.contains(s) {
                return Err(SpanError::new(
                    file,
                    text,
                    span,
                    format!(
                        "setting `{name}` must be one of {}, found \"{s}\"",
                        quoted(&decl.allowed)
                    ),
                )
                .help(format!("set `{name}` to one of {}", quoted(&decl.allowed))));
            }
        }
        Ok(value)
    }

    fn names(&self) -> String {
        self.decls.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The stack's settings after defaults: every declared setting has a value of its declared type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub values: BTreeMap<String, SettingValue>,
}

/// `when = { loki_enabled = true, monitoring_stack = "victoriametrics" }`: holds when every setting has the
/// given value. A table, not an expression language, so conditions stay declarative and checkable.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Condition(pub BTreeMap<String, SettingValue>);

impl Condition {
    /// Checks names, types and allowed values against the schema, so a typo in a module is an error, not a
    /// silently false condition. The condition is written in `file` (whose text is `text`): the error
    /// points at the setting's name inside the `when = { … }` table that holds it, and says what fixes it.
    pub fn check_located(&self, schema: &Schema, file: &str, text: &str) -> Result<(), SpanError> {
        for (name, value) in &self.0 {
            check_one(name, value, schema).map_err(|(message, help)| {
                SpanError::new(file, text, condition_span(text, name), message).help(help)
            })?;
        }
        Ok(())
    }
    pub fn holds(&self, settings: &Settings) -> bool {
        self.0
            .iter()
            .all(|(name, want)| settings.values.get(name) == Some(want))
    }
}

/// One `name = value` of a condition against the schema: the message and a `help:` when it is wrong.
fn check_one(name: &str, value: &SettingValue, schema: &Schema) -> Result<(), (String, String)> {
    let Some(decl) = schema.decls.get(name) else {
        let known: Vec<&str> = schema.decls.keys().map(String::as_str).collect();
        return Err((
            format!("condition names unknown setting `{name}`"),
            format!("settings declared in {SCHEMA_FILE}: {}", known.join(", ")),
        ));
    };
    if value.kind() != decl.kind {
        return Err((
            format!(
                "condition on `{name}` compares with `{value}`, but the setting is {}",
                decl.kind
            ),
            format!("compare `{name}` with {} value", decl.kind),
        ));
    }
    if let SettingValue::String(s) = value {
        if !decl.allowed.is_empty() && !decl.allowed.contains(s) {
            return Err((
                format!("condition on `{name}` compares with \"{s}\", a value the setting never takes, so it never holds"),
                format!("use one of {}", quoted_list(&decl.allowed)),
            ));
        }
    }
    Ok(())
}

/// `"a", "b"`.
fn quoted_list(values: &[String]) -> String {
    values
        .iter()
        .map(|v| format!("\"{v}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where `setting` is written as a key of a `when = { … }` inline table in `text`, for an error's line
/// and column; `None` when no such table names it (the error then names the file alone).
fn condition_span(text: &str, setting: &str) -> Option<std::ops::Range<usize>> {
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    for (at, _) in text.match_indices("when") {
        let rest = text[at + 4..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            continue;
        };
        let rest = rest.trim_start();
        if !rest.starts_with('{') {
            continue;
        }
        let open = text.len() - rest.len();
        let close = open + text[open..].find('}')?;
        for (k, _) in text[open..close].match_indices(setting) {
            let (a, b) = (open + k, open + k + setting.len());
            let alone = !text[..a].chars().next_back().is_some_and(is_key_char)
                && !text[b..].chars().next().is_some_and(is_key_char);
            if alone {
                return Some(a..b);
            }
        }
    }
    None
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| match v {
                SettingValue::String(s) => format!("{k} = \"{s}\""),
                other => format!("{k} = {other}"),
            })
            .collect();
        write!(f, "{}", parts.join(", "))
    }
}

/// Replaces `${settings.NAME}` in every string of a YAML tree. A scalar that is exactly the reference takes
/// the setting's type; inside a longer string the value's text is spliced in. Other `${...}` are left for
/// Flux's postBuild substitution.
pub fn substitute(value: &mut serde_yaml_ng::Value, settings: &Settings) -> Result<(), String> {
    use serde_yaml_ng::Value;
    match value {
        Value::String(s) => {
            check_misspelled(s)?;
            if let Some(name) = whole_reference(s) {
                *value = lookup(settings, name)?.to_yaml();
            } else if s.contains("${settings") {
                *s = substitute_str(s, settings)?;
            }
        }
        Value::Sequence(items) => {
            for item in items {
                substitute(item, settings)?;
            }
        }
        Value::Mapping(map) => {
            for (_, v) in map.iter_mut() {
                substitute(v, settings)?;
            }
        }
        Value::Tagged(tagged) => substitute(&mut tagged.value, settings)?,
        _ => {}
    }
    Ok(())
}

/// A whole scalar written in quotes (`replicas: "${settings.n}"`) is a string in YAML, and must stay one
/// after substitution (the API server refuses an integer where a ConfigMap wants a string). The parsed
/// value no longer says it was quoted, so before parsing, such a reference is rewritten to
/// `${settings:quoted.NAME}`, which substitution splices as text instead of typing it.
pub fn mark_quoted_references(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("${settings.") {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(start) = rest.find("${settings.") {
        let (before, after) = rest.split_at(start);
        out.push_str(before);
        let quote = before
            .chars()
            .next_back()
            .filter(|c| *c == '"' || *c == '\'');
        let end = after.find('}');
        let closes = match (quote, end) {
            (Some(q), Some(end)) => after[end + 1..].starts_with(q),
            _ => false,
        };
        match end {
            Some(end) if closes => {
                out.push_str(QUOTED_OPEN);
                out.push_str(&after["${settings.".len()..=end]);
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("${settings.");
                rest = &after["${settings.".len()..];
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// The marked form of a quoted whole reference (see [`mark_quoted_references`]).
const QUOTED_OPEN: &str = "${settings:quoted.";

fn whole_reference(s: &str) -> Option<&str> {
    let name = s.strip_prefix("${settings.")?.strip_suffix('}')?;
    (!name.contains('}')).then_some(name)
}

fn lookup<'a>(settings: &'a Settings, name: &str) -> Result<&'a SettingValue, String> {
    settings
        .values
        .get(name)
        .ok_or_else(|| format!("`${{settings.{name}}}` names an unknown setting `{name}`"))
}

/// String form of [`substitute`], for text that is not YAML.
pub fn substitute_str(s: &str, settings: &Settings) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    for part in split_references(s)? {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Setting(name) => out.push_str(&lookup(settings, name)?.to_string()),
        }
    }
    Ok(out)
}

/// A piece of a string: literal text, or the name in a `${settings.NAME}` reference.
enum Part<'a> {
    Text(&'a str),
    Setting(&'a str),
}

/// The one reader of the `${settings.NAME}` syntax, shared by substitution and by [`Schema::check_references`].
/// A `${…}` that looks like a mistyped settings reference (`${setting.x}`, `${Settings.x}`) is an error
/// with the right spelling; Flux's own `${VAR}` (no dot) passes through untouched.
fn split_references(s: &str) -> Result<Vec<Part<'_>>, String> {
    const OPEN: &str = "${settings.";
    check_misspelled(s)?;
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("${settings") {
        let Some(open) = [OPEN, QUOTED_OPEN]
            .into_iter()
            .find(|o| rest[start..].starts_with(o))
        else {
            parts.push(Part::Text(&rest[..start + 2]));
            rest = &rest[start + 2..];
            continue;
        };
        parts.push(Part::Text(&rest[..start]));
        let after = &rest[start + open.len()..];
        let Some(end) = after.find('}') else {
            return Err(format!(
                "unterminated `{OPEN}` reference\nhelp: close it with `}}`: `{OPEN}NAME}}`"
            ));
        };
        parts.push(Part::Setting(&after[..end]));
        rest = &after[end + 1..];
    }
    parts.push(Part::Text(rest));
    Ok(parts)
}

/// `${setting.x}`, `${Settings.x}`, `${SETTINGS:x}`: a reference to a setting, mistyped.
fn check_misspelled(s: &str) -> Result<(), String> {
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after.find('}').unwrap_or(after.len());
        let inner = &after[..end];
        if let Some(split) = inner.find(['.', ':']) {
            let (head, tail) = (&inner[..split], &inner[split + 1..]);
            let settings_like =
                matches!(head.to_ascii_lowercase().as_str(), "setting" | "settings");
            let written_right = head == "settings"
                && (inner.as_bytes()[split] == b'.' || tail.starts_with("quoted."));
            if settings_like && !written_right {
                let name = tail.trim_start_matches("quoted.");
                return Err(format!(
                    "`${{{inner}}}` looks like a mistyped setting reference: did you mean `${{settings.{name}}}`? (Flux's own variables are `${{NAME}}`, without a dot)\nhelp: write `${{settings.{name}}}`"
                ));
            }
        }
        rest = &after[end.min(after.len())..];
    }
    Ok(())
}

impl Schema {
    /// Every `${settings.NAME}` in a YAML tree names a declared setting, so a typo is reported against
    /// the file that holds it, whether or not the piece is active.
    pub fn check_references(&self, value: &serde_yaml_ng::Value) -> Result<(), String> {
        use serde_yaml_ng::Value;
        match value {
            Value::String(s) => {
                for part in split_references(s)? {
                    if let Part::Setting(name) = part {
                        if !self.decls.contains_key(name) {
                            return Err(format!(
                                "`${{settings.{name}}}` names an unknown setting `{name}`\nhelp: declare it in {SCHEMA_FILE}, or use one of: {}",
                                self.decls.keys().cloned().collect::<Vec<_>>().join(", ")
                            ));
                        }
                    }
                }
                Ok(())
            }
            Value::Sequence(items) => items.iter().try_for_each(|v| self.check_references(v)),
            Value::Mapping(map) => map.values().try_for_each(|v| self.check_references(v)),
            Value::Tagged(t) => self.check_references(&t.value),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
