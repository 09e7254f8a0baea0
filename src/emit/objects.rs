//! The Kubernetes objects a build emits, as the API server and Flux see them: every object has an
//! `apiVersion`, a `kind` and a valid name (and namespace), and no two components emit the same object
//! (kind, namespace, name) — Flux would have two Kustomizations fight over it, each pruning it when the
//! other changes.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

use crate::kube;

/// A rule of the Kubernetes API broken by an object the build would emit.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ObjectError {
    #[error("{path}: document {index} has no `{field}`; every Kubernetes object needs `apiVersion` and `kind`\nhelp: add `{field}` to it, or remove the document")]
    Missing {
        path: String,
        index: usize,
        field: &'static str,
    },
    #[error(
        "{path}: {kind} `{name}`: {message}{}",
        help_unless_given(message, path)
    )]
    Invalid {
        path: String,
        kind: String,
        name: String,
        message: String,
    },
    #[error("{kind} `{namespace}/{name}` is emitted by both {first} and {second}; Flux would apply it twice and prune it with either\nhelp: emit it from one component only (give one of them another name or namespace)")]
    Twice {
        kind: String,
        namespace: String,
        name: String,
        first: String,
        second: String,
    },
}

/// A `help:` line for an invalid object, unless its message already carries one.
fn help_unless_given(message: &str, path: &str) -> String {
    if message.contains("help:") {
        String::new()
    } else {
        format!("\nhelp: correct it in {path}, or the setting a `${{settings.…}}` there takes it from; the API server refuses the object as it is")
    }
}

/// Checks a document of a module's manifest (settings already substituted): `apiVersion`, `kind`, and a
/// name and namespace Kubernetes accepts. `index` counts from 1, for the message.
pub fn check_manifest_object(path: &str, index: usize, doc: &Value) -> Result<(), ObjectError> {
    let text = |field: &str| {
        doc.get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    for field in ["apiVersion", "kind"] {
        if text(field).is_none() {
            return Err(ObjectError::Missing {
                path: path.into(),
                index,
                field: if field == "kind" {
                    "kind"
                } else {
                    "apiVersion"
                },
            });
        }
    }
    let kind = text("kind").unwrap_or_default().to_string();
    let meta = doc.get("metadata");
    let get = |field: &str| meta.and_then(|m| m.get(field)).and_then(Value::as_str);
    let name = get("name").unwrap_or_default().to_string();
    let invalid = |message: String| ObjectError::Invalid {
        path: path.into(),
        kind: kind.clone(),
        name: name.clone(),
        message,
    };
    if name.is_empty() {
        return Err(invalid("has no `metadata.name`".into()));
    }
    kube::check_dns_subdomain(&name).map_err(invalid)?;
    if let Some(ns) = get("namespace") {
        kube::check_dns_label(ns).map_err(invalid)?;
    }
    if kind == "ConfigMap" || kind == "Secret" {
        check_string_data(doc).map_err(invalid)?;
    }
    Ok(())
}

/// A ConfigMap's `data` and a Secret's `stringData` hold strings only: the API server refuses `3` or
/// `true` there (a setting substituted unquoted, or a YAML scalar left bare).
fn check_string_data(doc: &Value) -> Result<(), String> {
    for field in ["data", "stringData"] {
        let Some(Value::Mapping(map)) = doc.get(field) else {
            continue;
        };
        for (key, value) in map {
            let what = match value {
                Value::String(_) => continue,
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::Null => "empty (null)",
                _ => "not a string",
            };
            let key = key.as_str().unwrap_or("?");
            return Err(format!(
                "`{field}.{key}` is {what}, and the API server accepts only strings there\nhelp: quote the value (`{key}: \"…\"`)"
            ));
        }
    }
    Ok(())
}

/// Every object emitted so far, by (kind, namespace, name), with the component that emitted it.
#[derive(Debug, Default)]
pub struct Emitted {
    owners: BTreeMap<(String, String, String), String>,
}

impl Emitted {
    /// Records an object of `owner` (a component); an error when another component emitted it.
    pub fn add(
        &mut self,
        owner: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<(), ObjectError> {
        let key = (kind.to_string(), namespace.to_string(), name.to_string());
        match self.owners.get(&key) {
            Some(first) if first != owner => Err(ObjectError::Twice {
                kind: kind.into(),
                namespace: namespace.into(),
                name: name.into(),
                first: first.clone(),
                second: owner.into(),
            }),
            _ => {
                self.owners.insert(key, owner.to_string());
                Ok(())
            }
        }
    }

    /// Records every object of a YAML document list (kind, metadata.namespace or `default_namespace`,
    /// metadata.name).
    pub fn add_documents(
        &mut self,
        owner: &str,
        docs: &[Value],
        default_namespace: &str,
    ) -> Result<(), ObjectError> {
        for doc in docs {
            let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
            let meta = doc.get("metadata");
            let get = |f: &str| meta.and_then(|m| m.get(f)).and_then(Value::as_str);
            let namespace = get("namespace").unwrap_or(default_namespace);
            self.add(owner, kind, namespace, get("name").unwrap_or_default())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configmap_holds_strings_only() {
        let doc: Value = serde_yaml_ng::from_str(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: \"3\", b: 3}\n",
        )
        .unwrap();
        let err = check_manifest_object("m.yaml", 1, &doc)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`data.b` is a number"), "{err}");
        let quoted: Value = serde_yaml_ng::from_str(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: \"3\"}\n",
        )
        .unwrap();
        assert_eq!(check_manifest_object("m.yaml", 1, &quoted), Ok(()));
    }

    fn y(s: &str) -> Value {
        serde_yaml_ng::from_str(s).unwrap()
    }

    #[test]
    fn objects_need_api_version_kind_and_valid_names() {
        let ok =
            y("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a.b, namespace: kube-system}");
        assert!(check_manifest_object("f", 1, &ok).is_ok());
        let no_kind = y("apiVersion: v1\nmetadata: {name: a}");
        assert!(matches!(
            check_manifest_object("f", 1, &no_kind),
            Err(ObjectError::Missing { field: "kind", .. })
        ));
        let no_api = y("kind: ConfigMap\nmetadata: {name: a}");
        assert!(matches!(
            check_manifest_object("f", 2, &no_api),
            Err(ObjectError::Missing {
                field: "apiVersion",
                index: 2,
                ..
            })
        ));
        for bad in [
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: Flux System}",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {}",
        ] {
            assert!(matches!(
                check_manifest_object("f", 1, &y(bad)),
                Err(ObjectError::Invalid { .. })
            ));
        }
    }

    #[test]
    fn two_components_may_not_emit_one_object() {
        let mut e = Emitted::default();
        e.add("loki", "HelmRelease", "monitoring", "loki").unwrap();
        e.add("loki", "HelmRelease", "monitoring", "loki").unwrap();
        e.add("logs", "HelmRelease", "other", "loki").unwrap();
        let err = e
            .add("logs", "HelmRelease", "monitoring", "loki")
            .unwrap_err();
        assert!(err.to_string().contains("both loki and logs"), "{err}");
    }
}
