//! Datasource references in a provisioned dashboard, in every form Grafana accepts: a panel's or
//! target's or variable's `datasource` may be null (the default datasource), a plain name, a uid object
//! `{"type": …, "uid": …}`, or a template variable written `$var`, `${var}`, `${var:fmt}` or `[[var]]`.
//! After the build has filled in inputs, every reference must resolve: to a template variable the
//! dashboard defines, to a datasource the stack provisions (by name, which is also its uid in our
//! modules), or to one of Grafana's own (`-- Mixed --`, `-- Grafana --`, `-- Dashboard --`). Anything
//! else shows as "datasource not found" in Grafana, so it is refused, naming the dashboard and panel.

use std::collections::BTreeSet;

use serde_json::Value;

/// Grafana's built-in datasources, by name and uid.
const BUILTIN: &[&str] = &["-- Mixed --", "-- Grafana --", "-- Dashboard --", "grafana"];

/// A datasource reference nothing resolves: (panel, reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub panel: String,
    pub reference: String,
}

/// The template variable a reference names, in any of Grafana's spellings, or None for a literal.
pub fn variable_name(reference: &str) -> Option<&str> {
    let inner = if let Some(rest) = reference.strip_prefix("${") {
        rest.strip_suffix('}')?.split(':').next()?
    } else if let Some(rest) = reference.strip_prefix("[[") {
        rest.strip_suffix("]]")?.split(':').next()?
    } else {
        reference.strip_prefix('$')?
    };
    (!inner.is_empty()).then_some(inner)
}

/// Checks every datasource reference of `doc`; `known` holds the datasource names and uids the stack
/// provisions or the user named. Returns the first reference nothing resolves.
pub fn check(doc: &Value, known: &BTreeSet<String>) -> Result<(), Unresolved> {
    let variables: BTreeSet<&str> = doc
        .pointer("/templating/list")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .collect();
    let resolves = |reference: &str| match variable_name(reference) {
        Some(var) => variables.contains(var) || var.starts_with("__"),
        None => known.contains(reference) || BUILTIN.contains(&reference),
    };
    let check_one = |owner: &str, ds: Option<&Value>| -> Result<(), Unresolved> {
        let reference = match ds {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::String(s)) if s.is_empty() => return Ok(()),
            Some(Value::String(s)) => s.as_str(),
            Some(Value::Object(o)) => match o.get("uid") {
                None | Some(Value::Null) => return Ok(()),
                Some(Value::String(uid)) => uid.as_str(),
                Some(other) => {
                    return Err(Unresolved {
                        panel: owner.into(),
                        reference: other.to_string(),
                    })
                }
            },
            Some(other) => {
                return Err(Unresolved {
                    panel: owner.into(),
                    reference: other.to_string(),
                })
            }
        };
        if resolves(reference) {
            Ok(())
        } else {
            Err(Unresolved {
                panel: owner.into(),
                reference: reference.into(),
            })
        }
    };
    for var in doc
        .pointer("/templating/list")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = var.get("name").and_then(Value::as_str).unwrap_or("?");
        check_one(&format!("variable `{name}`"), var.get("datasource"))?;
    }
    let mut panels = Vec::new();
    collect_panels(doc, &mut panels);
    for panel in panels {
        let label = panel_label(panel);
        check_one(&label, panel.get("datasource"))?;
        for target in panel
            .get("targets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            check_one(&label, target.get("datasource"))?;
        }
    }
    Ok(())
}

/// Replaces literal datasource references (a name, or a uid object's `uid`) found in `map` with the
/// mapped datasource, in panels, targets and template variables. Variable references are left alone.
/// Returns how many references it changed (a reference mapped to itself is not a change).
pub fn remap(doc: &mut Value, map: &std::collections::BTreeMap<String, String>) -> usize {
    type Map = std::collections::BTreeMap<String, String>;
    fn fix(ds: Option<&mut Value>, map: &Map) -> usize {
        let slot = match ds {
            Some(Value::String(s)) => s,
            Some(Value::Object(o)) => match o.get_mut("uid") {
                Some(Value::String(uid)) => uid,
                _ => return 0,
            },
            _ => return 0,
        };
        match map.get(slot.as_str()) {
            Some(to) if to != slot => {
                *slot = to.clone();
                1
            }
            _ => 0,
        }
    }
    fn walk(panels: Option<&mut Value>, map: &Map) -> usize {
        let mut changed = 0;
        for panel in panels.and_then(Value::as_array_mut).into_iter().flatten() {
            changed += fix(panel.get_mut("datasource"), map);
            for target in panel
                .get_mut("targets")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                changed += fix(target.get_mut("datasource"), map);
            }
            changed += walk(panel.get_mut("panels"), map);
        }
        changed
    }
    if map.is_empty() {
        return 0;
    }
    let mut changed = walk(doc.get_mut("panels"), map);
    for row in doc
        .get_mut("rows")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        changed += walk(row.get_mut("panels"), map);
    }
    for var in doc
        .pointer_mut("/templating/list")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        changed += fix(var.get_mut("datasource"), map);
    }
    changed
}

/// Every panel, rows' nested panels and old-style `rows[].panels` included.
pub fn collect_panels<'a>(doc: &'a Value, out: &mut Vec<&'a Value>) {
    fn walk<'a>(panels: Option<&'a Value>, out: &mut Vec<&'a Value>) {
        for panel in panels.and_then(Value::as_array).into_iter().flatten() {
            out.push(panel);
            walk(panel.get("panels"), out);
        }
    }
    walk(doc.get("panels"), out);
    for row in doc
        .get("rows")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        walk(row.get("panels"), out);
    }
}

/// `panel "Title"` or `panel 7` for messages.
pub fn panel_label(panel: &Value) -> String {
    match panel
        .get("title")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        Some(title) => format!("panel `{title}`"),
        None => format!("panel {}", panel.get("id").unwrap_or(&Value::Null)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> BTreeSet<String> {
        ["VictoriaMetrics".to_string(), "Loki".to_string()].into()
    }

    fn doc(json: &str) -> Value {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn every_spelling_of_a_variable_reference_resolves_to_a_defined_variable() {
        for form in [
            "$datasource",
            "${datasource}",
            "${datasource:text}",
            "[[datasource]]",
        ] {
            let d = doc(&format!(
                r#"{{"templating":{{"list":[{{"name":"datasource","type":"datasource"}}]}},"panels":[{{"title":"P","datasource":"{form}"}},{{"title":"Q","datasource":{{"type":"prometheus","uid":"{form}"}}}}]}}"#
            ));
            assert_eq!(check(&d, &known()), Ok(()), "{form}");
            let without = doc(&format!(
                r#"{{"panels":[{{"title":"P","datasource":"{form}"}}]}}"#
            ));
            assert_eq!(
                check(&without, &known()),
                Err(Unresolved {
                    panel: "panel `P`".into(),
                    reference: form.into()
                })
            );
        }
    }

    #[test]
    fn names_uids_and_builtins_resolve_and_unknown_ones_do_not() {
        let ok = doc(
            r#"{"panels":[{"datasource":null},{"datasource":"VictoriaMetrics"},{"datasource":{"type":"loki","uid":"Loki"}},
                {"datasource":{"uid":"-- Mixed --"},"targets":[{"datasource":{"type":"prometheus"}}]},{"datasource":"-- Grafana --"}]}"#,
        );
        assert_eq!(check(&ok, &known()), Ok(()));
        let bad = doc(
            r#"{"panels":[{"type":"row","title":"R","panels":[{"id":4,"targets":[{"datasource":{"uid":"P1809F7CD0C75ACF3"}}]}]}]}"#,
        );
        assert_eq!(
            check(&bad, &known()),
            Err(Unresolved {
                panel: "panel 4".into(),
                reference: "P1809F7CD0C75ACF3".into()
            })
        );
        let var = doc(r#"{"templating":{"list":[{"name":"job","datasource":"${DS_GONE}"}]}}"#);
        assert!(check(&var, &known())
            .unwrap_err()
            .panel
            .contains("variable `job`"));
    }

    #[test]
    fn remap_counts_only_references_it_changed() {
        let mut d = doc(
            r#"{"panels":[{"datasource":"A","targets":[{"datasource":{"uid":"B"}},{"datasource":"$ds"}]}],
                "templating":{"list":[{"name":"v","datasource":"A"}]}}"#,
        );
        let map = [("A", "X"), ("B", "B")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        assert_eq!(remap(&mut d, &map), 2);
        assert_eq!(d["panels"][0]["datasource"], "X");
        assert_eq!(d["panels"][0]["targets"][0]["datasource"]["uid"], "B");
        assert_eq!(d["templating"]["list"][0]["datasource"], "X");
    }
}
