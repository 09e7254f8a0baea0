//! `${NAME}` references in a dashboard's tree: finding them, telling Grafana's own variables and
//! datasource inputs apart, replacing them, and starting datasource variables on the configured
//! datasource. The text path (`json_text`) does the same edits on the text; this is the tree path.

use std::collections::BTreeMap;

use serde_json::Value;

/// Grafana's own variables (`${__rate_interval}`, `${__from}`) are never inputs.
pub(super) fn is_builtin(reference: &str) -> bool {
    reference.starts_with("__")
}

/// `DS_PROMETHEUS` -> prometheus, `DS_LOKI` -> loki, `DS_VICTORIAMETRICS` -> prometheus.
pub(super) fn plugin_of_input_name(reference: &str) -> Option<String> {
    let rest = reference.strip_prefix("DS_")?.to_ascii_lowercase();
    Some(
        if rest.contains("prometheus")
            || rest.contains("victoria")
            || rest.contains("thanos")
            || rest.contains("mimir")
        {
            "prometheus".into()
        } else if rest.contains("loki") {
            "loki".into()
        } else if rest.contains("tempo") {
            "tempo".into()
        } else {
            rest
        },
    )
}

/// Every `${NAME}` / `${NAME:fmt}` in every string of the document.
pub(super) fn collect_references(value: &Value, out: &mut std::collections::BTreeSet<String>) {
    match value {
        Value::String(s) => references_in(s, out),
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_references(v, out)),
        _ => {}
    }
}

/// Every `${NAME}` / `${NAME:fmt}` of one string.
pub(super) fn references_in(s: &str, out: &mut std::collections::BTreeSet<String>) {
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = after[..end].split(':').next().unwrap_or("");
        // Grafana derives input names from datasource names, which may hold `-` and `.`.
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if !name.is_empty() && name.chars().all(allowed) {
            out.insert(name.to_string());
        }
        rest = &after[end + 1..];
    }
}

pub(super) fn replace_references(value: &mut Value, replacements: &BTreeMap<String, String>) {
    match value {
        Value::String(s) => {
            if let Some(replaced) = replaced_string(s, replacements) {
                *s = replaced;
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| replace_references(v, replacements)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|v| replace_references(v, replacements)),
        _ => {}
    }
}

/// `s` with each `${NAME}` of `replacements` replaced, name by name; `None` when nothing changed.
pub(super) fn replaced_string(s: &str, replacements: &BTreeMap<String, String>) -> Option<String> {
    if !s.contains("${") {
        return None;
    }
    let mut out: Option<String> = None;
    for (name, to) in replacements {
        let pattern = format!("${{{name}}}");
        let current = out.as_deref().unwrap_or(s);
        if current.contains(&pattern) {
            out = Some(current.replace(&pattern, to));
        }
    }
    out
}

/// A `datasource`-type template variable (`$datasource`, or one named `DS_PROMETHEUS`) starts on the
/// configured datasource instead of whatever was current on the author's Grafana.
pub(super) fn default_datasource_variables(
    doc: &mut Value,
    target: &dyn Fn(&str) -> Option<String>,
) {
    let Some(list) = doc
        .pointer_mut("/templating/list")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for var in list {
        if var.get("type").and_then(Value::as_str) != Some("datasource") {
            continue;
        }
        let Some(plugin) = var.get("query").and_then(Value::as_str).map(str::to_string) else {
            continue;
        };
        let Some(ds) = target(&plugin) else { continue };
        if let Some(obj) = var.as_object_mut() {
            obj.insert(
                "current".into(),
                serde_json::json!({ "selected": true, "text": ds, "value": ds }),
            );
        }
    }
}
