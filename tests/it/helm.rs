//! Helm itself renders every emitted HelmRelease: the stand-in chart of its pinned version (the real
//! Chart.yaml, defaults and values.schema.json, subcharts included, from `../shared/upstream/charts/`)
//! with the release's values, through Helm v4's library (`helm-python-sdk`, see `support::helm`), so
//! Helm applies the schemas and its own checks to exactly what Flux would hand it.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml_ng::Value;

use crate::build::Stack;
use crate::support::{charts, helm};

/// The default stack with `settings`, built: the parsed YAML files of out/.
fn build(settings: &[(&str, &str)]) -> (Stack, BTreeMap<String, Value>) {
    let stack = Stack::default_stack();
    for (name, value) in settings {
        stack.set_setting(name, value);
    }
    let out = stack.stack(&["build"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files = BTreeMap::new();
    let root = stack.path().join("kubernetes");
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in fs_err::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                let rel = path.strip_prefix(&root).unwrap().display().to_string();
                let text = fs_err::read_to_string(&path).unwrap();
                if let Ok(v) = serde_yaml_ng::from_str::<Value>(&text) {
                    files.insert(rel, v);
                }
            }
        }
    }
    (stack, files)
}

/// One emitted release: chart name and version, release name, namespace and values.
struct Release {
    component: String,
    chart: String,
    version: String,
    name: String,
    namespace: String,
    values: Value,
}

fn releases(out: &BTreeMap<String, Value>) -> Vec<Release> {
    let mut found = Vec::new();
    for (path, hr) in out {
        let Some(component) = path.strip_suffix("/app/helmrelease.yaml") else {
            continue;
        };
        let spec = &hr["spec"];
        let (chart, version) = if spec.get("chartRef").is_some() {
            let oci = &out[&format!("{component}/app/ocirepository.yaml")]["spec"];
            let url = oci["url"].as_str().unwrap();
            (
                url.rsplit('/').next().unwrap().to_string(),
                oci["ref"]["tag"].as_str().unwrap().to_string(),
            )
        } else {
            let c = &spec["chart"]["spec"];
            (
                c["chart"].as_str().unwrap().to_string(),
                c["version"].as_str().unwrap().to_string(),
            )
        };
        found.push(Release {
            component: component.to_string(),
            chart,
            version,
            name: spec["releaseName"].as_str().unwrap().to_string(),
            namespace: hr["metadata"]["namespace"].as_str().unwrap().to_string(),
            values: spec.get("values").cloned().unwrap_or(Value::Null),
        });
    }
    found
}

/// The stand-in chart of `name` `version`, unpacked under `dir`; its directory.
fn unpack(name: &str, version: &str, dir: &Path) -> std::path::PathBuf {
    let chart = charts::fixture_chart(name, version);
    charts::unpack(&chart.bytes, dir);
    dir.join(name)
}

fn render_all(python: &Path, settings: &[(&str, &str)]) -> usize {
    let (_stack, out) = build(settings);
    let releases = releases(&out);
    assert!(releases.len() >= 4, "{settings:?}: too few releases");
    for r in &releases {
        let tmp = tempfile::tempdir().unwrap();
        let dir = unpack(&r.chart, &r.version, tmp.path());
        let values = serde_json::to_value(&r.values).unwrap();
        let rendered =
            helm::render(python, &dir, &values, &r.name, &r.namespace).unwrap_or_else(|e| {
                panic!(
                    "{settings:?}: Helm refused {} ({} {}): {e}",
                    r.component, r.chart, r.version
                )
            });
        let ours = rendered
            .get(&format!("{}/templates/configmap.yaml", r.chart))
            .unwrap_or_else(|| panic!("{}: {:?}", r.component, rendered.keys()));
        assert!(
            ours.contains(&format!("chart: {}-{}", r.chart, r.version)),
            "{ours}"
        );
    }
    releases.len()
}

#[test]
fn helm_renders_every_release_of_both_backends_with_its_values() {
    let Some(python) = helm::python() else {
        return;
    };
    let vm = render_all(&python, &[]);
    let kps = render_all(&python, &[("monitoring_stack", "\"prometheus\"")]);
    assert!(vm >= 5 && kps >= 4, "{vm} {kps}");
}

#[test]
fn helm_applies_lokis_values_schema() {
    let Some(python) = helm::python() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = unpack("loki", "6.49.0", tmp.path());
    let bad = serde_json::json!({"loki": {"rulerConfig": "local"}});
    let err = helm::render(&python, &dir, &bad, "loki", "monitoring").unwrap_err();
    assert!(
        err.contains("HelmValuesError") && err.contains("/loki/rulerConfig"),
        "{err}"
    );
}
