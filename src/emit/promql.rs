//! Just enough PromQL to check a module's own dashboards against the stack's rules: the queries of every
//! panel (rows' nested panels included), and the recording rules a query names. By Prometheus'
//! convention (docs: "Recording rules — naming"), a recorded series is named `level:metric:operations`,
//! and only recorded series carry a `:`; a `:` in a query outside strings, label matchers and `[…]`
//! ranges is therefore a recording rule the stack must define.

use std::collections::BTreeSet;

use serde_json::Value;

/// One query of a dashboard: the panel's title (or `panel <id>`) and the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanelQuery {
    pub panel: String,
    pub expr: String,
}

/// Every `targets[].expr` of every panel, rows' nested `panels` included, in document order.
pub fn panel_queries(dashboard: &Value) -> Vec<PanelQuery> {
    let mut out = Vec::new();
    if let Some(panels) = dashboard.get("panels").and_then(Value::as_array) {
        collect(panels, &mut out);
    }
    // Old-style dashboards keep panels under `rows[].panels`.
    if let Some(rows) = dashboard.get("rows").and_then(Value::as_array) {
        for row in rows {
            if let Some(panels) = row.get("panels").and_then(Value::as_array) {
                collect(panels, &mut out);
            }
        }
    }
    out
}

fn collect(panels: &[Value], out: &mut Vec<PanelQuery>) {
    for panel in panels {
        let label = panel
            .get("title")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| format!("panel {}", panel.get("id").unwrap_or(&Value::Null)));
        for target in panel
            .get("targets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(expr) = target.get("expr").and_then(Value::as_str) {
                out.push(PanelQuery {
                    panel: label.clone(),
                    expr: expr.to_string(),
                });
            }
        }
        if let Some(nested) = panel.get("panels").and_then(Value::as_array) {
            collect(nested, out);
        }
    }
}

/// The recording rules an expression reads: identifiers holding a `:`, outside quoted strings, label
/// matchers (`{…}`) and ranges (`[5m:1m]` is a subquery, not a name).
pub fn recording_rules(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let (mut i, mut braces, mut brackets) = (0, 0usize, 0usize);
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'"' | b'\'' | b'`' => i = skip_string(bytes, i),
            b'{' => braces += 1,
            b'}' => braces = braces.saturating_sub(1),
            b'[' => brackets += 1,
            b']' => brackets = brackets.saturating_sub(1),
            _ if c.is_ascii_digit() || c == b'$' => {
                // Numbers, durations (`5m`) and Grafana variables (`$__rate_interval`) are no names.
                while i + 1 < bytes.len() && is_word(bytes[i + 1]) {
                    i += 1;
                }
            }
            _ if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i + 1 < bytes.len() && (is_word(bytes[i + 1]) || bytes[i + 1] == b':') {
                    i += 1;
                }
                let word = &expr[start..=i];
                if braces == 0 && brackets == 0 && word.contains(':') {
                    out.insert(word.to_string());
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The index of the closing quote of the string opening at `start` (or the end).
fn skip_string(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() && bytes[i] != quote {
        if bytes[i] == b'\\' && quote != b'`' {
            i += 1;
        }
        i += 1;
    }
    i
}

/// The series a PrometheusRule object records (`spec.groups[].rules[].record`).
pub fn recorded_series(rule_object: &serde_yaml_ng::Value) -> Vec<String> {
    if rule_object.get("kind").and_then(|k| k.as_str()) != Some("PrometheusRule") {
        return Vec::new();
    }
    let groups = rule_object
        .get("spec")
        .and_then(|s| s.get("groups"))
        .and_then(|g| g.as_sequence());
    groups
        .into_iter()
        .flatten()
        .filter_map(|g| g.get("rules").and_then(|r| r.as_sequence()))
        .flatten()
        .filter_map(|r| r.get("record").and_then(|r| r.as_str()))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_a_colon_are_recording_rules_and_nothing_else_is() {
        let expr = r#"sum by (namespace) (envoy:upstream_rq:rate5m{cluster=~"a:b", job="x"}) / on() group_left max_over_time(up[5m:1m]) + rate(coredns_dns_requests_total[$__rate_interval]) * 2e3 + "lit:eral""#;
        assert_eq!(
            recording_rules(expr).into_iter().collect::<Vec<_>>(),
            ["envoy:upstream_rq:rate5m"]
        );
        assert!(recording_rules("rate(x_total[5m])").is_empty());
        assert_eq!(
            recording_rules(":leading:colon")
                .into_iter()
                .collect::<Vec<_>>(),
            [":leading:colon"]
        );
    }

    #[test]
    fn queries_of_nested_row_panels_are_found() {
        let d: Value = serde_json::from_str(
            r#"{"panels":[{"type":"row","title":"R","panels":[{"title":"Inner","targets":[{"expr":"a"}]}]},
                          {"id":7,"targets":[{"expr":"b"},{"refId":"no expr"}]}],
                "rows":[{"panels":[{"title":"Old","targets":[{"expr":"c"}]}]}]}"#,
        )
        .unwrap();
        let got: Vec<(String, String)> = panel_queries(&d)
            .into_iter()
            .map(|q| (q.panel, q.expr))
            .collect();
        assert_eq!(
            got,
            [
                ("Inner".to_string(), "a".to_string()),
                ("panel 7".to_string(), "b".to_string()),
                ("Old".to_string(), "c".to_string())
            ]
        );
    }

    #[test]
    fn recorded_series_are_read_from_prometheus_rules_only() {
        let rule: serde_yaml_ng::Value = serde_yaml_ng::from_str(
            "kind: PrometheusRule\nspec:\n  groups:\n  - rules:\n    - record: a:b:c\n    - alert: X\n",
        )
        .unwrap();
        assert_eq!(recorded_series(&rule), ["a:b:c"]);
        let cm: serde_yaml_ng::Value =
            serde_yaml_ng::from_str("kind: ConfigMap\nspec: {groups: [{rules: [{record: x:y}]}]}")
                .unwrap();
        assert!(recorded_series(&cm).is_empty());
    }
}
