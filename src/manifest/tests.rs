//! Tests of stack.toml parsing: inputs, names, sources and their errors.

use super::*;

const MINIMAL: &str = r#"
[stack]
name = "homelab"
flux = { source = { kind = "GitRepository", name = "flux-system" }, path = "./kubernetes" }
[modules]
enabled = ["loki"]
"#;

fn err(extra: &str) -> String {
    Manifest::parse(&format!("{MINIMAL}{extra}"))
        .unwrap_err()
        .to_string()
}

#[test]
fn modules_are_optional_for_a_stack_that_only_pins_inputs() {
    let m = Manifest::parse(
            "[stack]\nname = \"pins\"\nflux = { source = { kind = \"GitRepository\", name = \"flux-system\" }, path = \"./k\" }\n",
        )
        .unwrap();
    assert!(m.enabled.is_empty());
}

#[test]
fn parses_charts_and_defaults_the_repo_chart_name() {
    let m = Manifest::parse(&format!(
            "{MINIMAL}[charts.alloy]\nrepo = \"https://grafana.github.io/helm-charts/\"\nversion = \"1.1.2\"\n[charts.loki]\noci = \"oci://ghcr.io/grafana/helm-charts/loki\"\nversion = \"~6.49\"\n"
        ))
        .unwrap();
    let alloy = &m.charts[&"alloy".parse().unwrap()];
    assert_eq!(
        alloy.source,
        ChartSource::Repo {
            url: "https://grafana.github.io/helm-charts".into(),
            chart: "alloy".into()
        }
    );
    assert_eq!(
        alloy.source.canonical(),
        "https://grafana.github.io/helm-charts#alloy"
    );
    assert_eq!(
        m.charts[&"loki".parse().unwrap()].source.chart_name(),
        "loki"
    );
    assert_eq!(m.stack.flux.namespace, "flux-system");
}

#[test]
fn chart_with_both_sources_names_line_and_column() {
    let e = err("[charts.x]\noci = \"oci://a/b\"\nrepo = \"https://c\"\n");
    assert!(e.starts_with("stack.toml:7:1: a chart takes either"), "{e}");
}

#[test]
fn chart_with_no_source_is_an_error() {
    let e = err("[charts.x]\nversion = \"1.0.0\"\n");
    assert!(e.contains("a chart needs `oci"), "{e}");
}

#[test]
fn dashboard_without_source_is_an_error() {
    let e = err("[dashboards.d]\nfolder = \"X\"\n");
    assert!(
        e.starts_with("stack.toml:7:1: a dashboard needs `grafana_com"),
        "{e}"
    );
}

#[test]
fn unknown_key_is_an_error_with_location() {
    let e = err("[charts.x]\noci = \"oci://a/b\"\nversoin = \"1\"\n");
    assert!(
        e.starts_with("stack.toml:9:1: unknown field `versoin`"),
        "{e}"
    );
}

#[test]
fn wrong_type_is_an_error_with_location() {
    let e = err("[dashboards.d]\ngrafana_com = \"15757\"\n");
    assert!(
        e.starts_with("stack.toml:8:15: invalid type: string"),
        "{e}"
    );
}

#[test]
fn bad_version_requirement_is_an_error_with_location() {
    let e = err("[charts.x]\noci = \"oci://a/b\"\nversion = \">=abc\"\n");
    assert!(e.starts_with("stack.toml:9:11:"), "{e}");
}

#[test]
fn invalid_name_is_an_error() {
    let e = err("[charts.Bad_Name]\noci = \"oci://a/b\"\n");
    assert!(e.contains("chart `Bad_Name` is not a valid name"), "{e}");
}

#[test]
fn credentials_in_repo_url_are_refused_without_echoing_them() {
    let e = err("[charts.x]\nrepo = \"https://user:hunter2@example.com/charts\"\n");
    assert!(e.contains("credentials do not belong"), "{e}");
    assert!(e.starts_with("stack.toml:7:1: `repo`: credentials"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    let e = err("[charts.x]\noci = \"oci://user:hunter2@ghcr.io/a/b\"\n");
    assert!(
        e.contains("credentials do not belong") && !e.contains("hunter2"),
        "{e}"
    );
    let e =
        err("[mirrors]\n\"ghcr.io\" = { to = \"oci://u:hunter2@r.internal\", cluster = true }\n");
    assert!(
        e.contains("[mirrors]: credentials do not belong") && !e.contains("hunter2"),
        "{e}"
    );
    let e = err("[dashboards.x]\nurl = \"http://user:hunter2@example.com/d.json\"\n");
    assert!(
        e.contains("`url`: credentials do not belong") && !e.contains("hunter2"),
        "{e}"
    );
}
