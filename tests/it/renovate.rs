//! The Renovate preset (docs/renovate.json): its `customManagers` regular expressions, exactly as
//! Renovate reads them, applied the way Renovate's regex manager applies them (every match of each
//! `matchStrings` entry over the whole file, named groups giving depName, packageName, registryUrl and
//! currentValue) to a sample stack.toml and to the repo's own. The `regex` crate (>= 1.9) accepts
//! JavaScript's `(?<name>…)` group syntax, so the expressions are used unchanged.

use std::collections::BTreeMap;

use crate::support::{fixture, repo_root};

/// What Renovate would extract: (manager index, depName) -> named groups plus the datasource.
type Extracted = BTreeMap<(usize, String), BTreeMap<String, String>>;

fn preset() -> serde_json::Value {
    let text = fs_err::read_to_string(repo_root().join("docs/renovate.json")).unwrap();
    serde_json::from_str(&text).expect("docs/renovate.json is JSON")
}

/// Renovate writes JavaScript regex literals as `/…/` in managerFilePatterns.
fn file_pattern(literal: &str) -> regex::Regex {
    let inner = literal
        .strip_prefix('/')
        .and_then(|s| s.strip_suffix('/'))
        .expect("a /regex/ literal");
    regex::Regex::new(inner).unwrap()
}

fn extract(file: &str, text: &str) -> Extracted {
    let preset = preset();
    let mut out = Extracted::new();
    for (i, manager) in preset["customManagers"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        assert_eq!(manager["customType"], "regex");
        let applies = manager["managerFilePatterns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| file_pattern(p.as_str().unwrap()).is_match(file));
        if !applies {
            continue;
        }
        for pattern in manager["matchStrings"].as_array().unwrap() {
            let re = regex::Regex::new(pattern.as_str().unwrap()).unwrap();
            for caps in re.captures_iter(text) {
                let mut groups = BTreeMap::new();
                for name in re.capture_names().flatten() {
                    if let Some(m) = caps.name(name) {
                        groups.insert(name.to_string(), m.as_str().to_string());
                    }
                }
                groups.insert(
                    "datasource".into(),
                    manager["datasourceTemplate"].as_str().unwrap().to_string(),
                );
                let dep = groups["depName"].clone();
                assert!(
                    out.insert((i, dep.clone()), groups).is_none(),
                    "{dep} matched twice"
                );
            }
        }
    }
    out
}

fn row(extracted: &Extracted, dep: &str) -> Vec<(String, String)> {
    let (_, groups) = extracted
        .iter()
        .find(|((_, d), _)| d == dep)
        .unwrap_or_else(|| panic!("{dep} was not extracted: {extracted:#?}"));
    groups.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn preset_finds_every_pinned_chart_and_revision_of_the_sample_with_the_right_datasource() {
    let text = fs_err::read_to_string(fixture("renovate/stack.toml")).unwrap();
    let found = extract("clusters/home/stack.toml", &text);
    let deps: Vec<&str> = found.keys().map(|(_, d)| d.as_str()).collect();
    assert_eq!(
        deps,
        [
            "loki",
            "vm",
            "alloy",
            "tempo-distributed",
            "kubernetes-global",
            "node-exporter"
        ],
        "unpinned charts, dashboards without a revision and URL dashboards have nothing to bump"
    );
    assert_eq!(
        row(&found, "loki"),
        pairs(&[
            ("depName", "loki"),
            ("packageName", "ghcr.io/grafana/helm-charts/loki"),
            ("currentValue", "6.49.0"),
            ("datasource", "docker"),
        ])
    );
    assert_eq!(
        row(&found, "vm"),
        pairs(&[
            ("depName", "vm"),
            (
                "packageName",
                "ghcr.io/victoriametrics/helm-charts/victoria-metrics-k8s-stack"
            ),
            ("currentValue", "~0.45"),
            ("datasource", "docker"),
        ])
    );
    assert_eq!(
        row(&found, "alloy"),
        pairs(&[
            ("depName", "alloy"),
            ("registryUrl", "https://grafana.github.io/helm-charts"),
            ("currentValue", "1.1.2"),
            ("datasource", "helm"),
        ]),
        "no `chart`: packageNameTemplate falls back to depName"
    );
    assert_eq!(
        row(&found, "tempo-distributed"),
        pairs(&[
            ("depName", "tempo-distributed"),
            ("registryUrl", "https://grafana.github.io/helm-charts"),
            ("packageName", "tempo"),
            ("currentValue", "1.24.1"),
            ("datasource", "helm"),
        ])
    );
    assert_eq!(
        row(&found, "node-exporter"),
        pairs(&[
            ("depName", "node-exporter"),
            ("packageName", "1860"),
            ("currentValue", "37"),
            ("datasource", "custom.grafana-dashboards"),
        ])
    );
}

#[test]
fn preset_finds_every_chart_of_the_repos_own_stack() {
    let text = fs_err::read_to_string(repo_root().join("stack.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    let found = extract("stack.toml", &text);
    for (name, chart) in manifest["charts"].as_table().unwrap() {
        let groups = row(&found, name);
        let value = groups
            .iter()
            .find(|(k, _)| k == "currentValue")
            .map(|(_, v)| v.as_str());
        assert_eq!(value, chart["version"].as_str(), "{name}");
    }
}

#[test]
fn preset_applies_only_to_stack_toml() {
    let preset = preset();
    let pattern = file_pattern(
        preset["customManagers"][0]["managerFilePatterns"][0]
            .as_str()
            .unwrap(),
    );
    for yes in ["stack.toml", "clusters/prod/stack.toml"] {
        assert!(pattern.is_match(yes), "{yes}");
    }
    for no in ["mystack.toml", "stack.toml.bak", "stack.lock"] {
        assert!(!pattern.is_match(no), "{no}");
    }
    let versioning = preset["customManagers"][2]["versioningTemplate"]
        .as_str()
        .unwrap();
    let re = regex::Regex::new(versioning.strip_prefix("regex:").unwrap()).unwrap();
    assert!(re.is_match("43") && !re.is_match("43.1"));
}
