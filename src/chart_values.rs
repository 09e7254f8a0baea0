//! A chart's default values, as `stack lock` keeps them for the values check: the chart's `Chart.yaml`,
//! `values.yaml` and `values.schema.json`, and those of every subchart it packages, taken out of the
//! chart archive. They live in the content store (inside the archive, keyed by its blake3) and under
//! `vendor/charts/<input>/` (the same relative paths, without templates), so `stack build` checks values
//! offline. [`Defaults`] is what the check reads: every subchart's defaults under its name or alias, with
//! the parent's values over them (as Helm coalesces them), the keys the chart documents as free-form, and
//! the chart's JSON Schema.

#![allow(
    clippy::disallowed_methods,
    reason = "its errors are wrapped with the stack-relative path; fs_err would add the absolute one to output"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;

use serde_yaml_ng::{Mapping, Value};

/// Where `stack lock` keeps a chart's defaults: `vendor/charts/<input>/`.
pub const VENDOR_DIR: &str = "vendor/charts";
/// The most bytes of the kept files taken from one archive (a chart's metadata and defaults are far
/// smaller; a bigger archive is refused rather than read without bound).
const MAX_KEPT_BYTES: u64 = 32 * 1024 * 1024;
/// The files kept of each chart and subchart.
const KEPT: &[&str] = &["Chart.yaml", "values.yaml", "values.schema.json"];

/// The longest directory name a kept file may sit under (NAME_MAX of Linux and macOS file systems): a
/// longer one cannot be written into vendor/, so its entry is skipped like any other name that cannot be
/// written as it is (a lock must not fail on what a chart carries).
const NAME_MAX: usize = 255;

/// The longest path (under the chart's directory) a kept file may have, well under PATH_MAX (4096) with
/// the stack's own path before it; a deeper one is skipped.
const PATH_MAX_KEPT: usize = 1024;

/// A chart's kept files by path relative to the chart's directory (`Chart.yaml`, `charts/grafana/values.yaml`).
pub type ChartFiles = BTreeMap<String, Vec<u8>>;

#[derive(Debug, thiserror::Error)]
pub enum ChartValuesError {
    #[error("the chart archive cannot be read: {0}")]
    Archive(String),
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

#[cfg(test)]
thread_local! {
    /// How many archives this thread unpacked: tests show that `stack lock` unpacks each once.
    static UNPACKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many chart archives this thread has unpacked so far.
#[cfg(test)]
pub fn unpacked() -> usize {
    UNPACKED.with(|n| n.get())
}

/// The kept files of a chart archive (`<chart>/…` entries; subcharts packaged as directories or as
/// nested `.tgz` under `charts/`).
pub fn from_archive(tgz: &[u8]) -> Result<ChartFiles, ChartValuesError> {
    #[cfg(test)]
    UNPACKED.with(|n| n.set(n.get() + 1));
    let mut out = ChartFiles::new();
    let mut budget = MAX_KEPT_BYTES;
    read_archive(tgz, "", &mut out, &mut budget)?;
    if !out.contains_key("Chart.yaml") {
        return Err(ChartValuesError::Archive(
            "no <chart>/Chart.yaml in it".into(),
        ));
    }
    Ok(out)
}

/// Checks that the archive is the chart asked for: its Chart.yaml `name` is `name` and its `version` is
/// `version` (compared as semver when both parse, as Helm compares them; `+` build metadata included).
/// Returns what differs, for the caller's message: a repository or tag that serves another chart would
/// have Flux install something stack.toml never named.
pub fn check_identity(files: &ChartFiles, name: &str, version: &str) -> Result<(), String> {
    let chart: Value = files
        .get("Chart.yaml")
        .and_then(|bytes| serde_yaml_ng::from_slice(bytes).ok())
        .unwrap_or(Value::Null);
    let field = |key: &str| match chart.get(key) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let (found_name, found_version) = (field("name"), field("version"));
    let same_version = match (
        semver::Version::parse(found_version.trim_start_matches('v')),
        semver::Version::parse(version.trim_start_matches('v')),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => found_version == version,
    };
    let mut wrong = Vec::new();
    if found_name != name {
        wrong.push(format!("name `{found_name}` (expected `{name}`)"));
    }
    if !same_version {
        wrong.push(format!("version `{found_version}` (expected `{version}`)"));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("its Chart.yaml has {}", wrong.join(" and ")))
    }
}

fn read_archive(
    tgz: &[u8],
    prefix: &str,
    out: &mut ChartFiles,
    budget: &mut u64,
) -> Result<(), ChartValuesError> {
    let err = |e: std::io::Error| ChartValuesError::Archive(e.to_string());
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    for entry in archive.entries().map_err(err)? {
        let entry = entry.map_err(err)?;
        let path = entry.path().map_err(err)?.to_string_lossy().into_owned();
        // `<chart>/<rest>`: the top directory is the chart's name.
        let Some((_, rest)) = path.split_once('/') else {
            continue;
        };
        let nested = is_nested_archive(rest);
        if !nested && !is_kept(rest) {
            continue;
        }
        let size = entry.header().size().map_err(err)?;
        if size > *budget {
            return Err(ChartValuesError::Archive(format!(
                "its metadata and defaults exceed {MAX_KEPT_BYTES} bytes"
            )));
        }
        *budget -= size;
        let mut bytes = Vec::with_capacity(size as usize);
        entry.take(size).read_to_end(&mut bytes).map_err(err)?;
        if nested {
            let dir = rest.trim_end_matches(".tgz");
            let mut sub = ChartFiles::new();
            read_archive(&bytes, "", &mut sub, budget)?;
            // A nested archive's directory is its chart's name, not its file name.
            let name = chart_name(&sub)
                .filter(|n| plain_name(n))
                .unwrap_or_else(|| dir.rsplit('/').next().unwrap_or(dir).into());
            if !plain_name(&name) {
                continue;
            }
            let parent = dir.rsplit_once('/').map(|(p, _)| p).unwrap_or("charts");
            for (p, b) in sub {
                keep(out, format!("{prefix}{parent}/{name}/{p}"), b);
            }
        } else {
            keep(out, format!("{prefix}{rest}"), bytes);
        }
    }
    Ok(())
}

/// Keeps a file unless its path is too long to write under vendor/ ([`PATH_MAX_KEPT`]).
fn keep(out: &mut ChartFiles, path: String, bytes: Vec<u8>) {
    if path.len() <= PATH_MAX_KEPT {
        out.insert(path, bytes);
    }
}

/// `Chart.yaml`, `charts/<sub>/Chart.yaml`, `charts/<sub>/charts/<subsub>/values.yaml`, …
fn is_kept(rest: &str) -> bool {
    let parts: Vec<&str> = rest.split('/').collect();
    parts.len() % 2 == 1
        && KEPT.contains(parts.last().unwrap())
        && parts
            .chunks(2)
            .take(parts.len() / 2)
            .all(|c| c[0] == "charts" && plain_name(c[1]))
}

/// A directory name that stays where it is written: not empty, `.` or `..`, no separator, at most
/// [`NAME_MAX`] bytes.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
}

/// `charts/<sub>.tgz` (at any subchart depth).
fn is_nested_archive(rest: &str) -> bool {
    let parts: Vec<&str> = rest.split('/').collect();
    parts.len().is_multiple_of(2)
        && parts.last().unwrap().ends_with(".tgz")
        && parts
            .chunks(2)
            .all(|c| c[0] == "charts" && plain_name(c[1]))
}

fn chart_name(files: &ChartFiles) -> Option<String> {
    let meta: ChartMeta = serde_yaml_ng::from_slice(files.get("Chart.yaml")?).ok()?;
    Some(meta.name)
}

/// The fields of Chart.yaml the check reads.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ChartMeta {
    pub name: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
}

/// A `dependencies` entry of Chart.yaml.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Dependency {
    pub name: String,
    #[serde(default)]
    pub alias: Option<String>,
}

/// What the values check compares a release's values with.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub chart: String,
    pub version: String,
    /// The chart's values with each subchart's under its name or alias.
    pub values: Value,
    /// Key paths the chart documents as free-form (see [`crate::yaml_keys::Key::free_form`]): anything
    /// under them is accepted.
    pub open: BTreeSet<Vec<String>>,
    /// Key paths the chart documents only in a comment (`# storageClassName: …`): accepted, with anything
    /// under them, where the defaults do not have the key.
    pub documented: BTreeSet<Vec<String>>,
    /// The chart's own `values.schema.json`, parsed.
    pub schema: Option<serde_json::Value>,
}

impl Defaults {
    /// Reads a chart's kept files. `files` paths are relative to the chart directory.
    pub fn from_files(files: &ChartFiles) -> Result<Defaults, ChartValuesError> {
        let meta = parse_meta(files, "")?;
        let mut open = BTreeSet::new();
        let mut documented = BTreeSet::new();
        let values = combined(files, "", &meta, &[], &mut open, &mut documented)?;
        let schema = match files.get("values.schema.json") {
            None => None,
            Some(bytes) => {
                Some(
                    serde_json::from_slice(bytes).map_err(|e| ChartValuesError::File {
                        path: "values.schema.json".into(),
                        message: e.to_string(),
                    })?,
                )
            }
        };
        Ok(Defaults {
            chart: meta.name,
            version: meta.version,
            values,
            open,
            documented,
            schema,
        })
    }
}

fn parse_meta(files: &ChartFiles, dir: &str) -> Result<ChartMeta, ChartValuesError> {
    let path = format!("{dir}Chart.yaml");
    let bytes = files.get(&path).ok_or_else(|| ChartValuesError::File {
        path: path.clone(),
        message: "missing".into(),
    })?;
    serde_yaml_ng::from_slice(bytes).map_err(|e| ChartValuesError::File {
        path,
        message: e.to_string(),
    })
}

/// The defaults of the chart in `dir` (`""` or `charts/<sub>/…`), subcharts coalesced under their keys.
fn combined(
    files: &ChartFiles,
    dir: &str,
    meta: &ChartMeta,
    at: &[String],
    open: &mut BTreeSet<Vec<String>>,
    documented: &mut BTreeSet<Vec<String>>,
) -> Result<Value, ChartValuesError> {
    let path = format!("{dir}values.yaml");
    let mut values = match files.get(&path) {
        None => Value::Mapping(Mapping::new()),
        Some(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            for key in crate::yaml_keys::scan(&text) {
                let path = at.iter().cloned().chain(key.path).collect();
                if key.commented {
                    documented.insert(path);
                } else if key.free_form {
                    open.insert(path);
                }
            }
            match serde_yaml_ng::from_str::<Value>(&text) {
                Ok(Value::Null) => Value::Mapping(Mapping::new()),
                Ok(v) => v,
                Err(e) => {
                    return Err(ChartValuesError::File {
                        path,
                        message: e.to_string(),
                    })
                }
            }
        }
    };
    let subdirs: BTreeSet<String> = files
        .keys()
        .filter_map(|p| p.strip_prefix(&format!("{dir}charts/")))
        .filter_map(|rest| rest.split_once('/').map(|(d, _)| d.to_string()))
        .collect();
    for sub in subdirs {
        let sub_dir = format!("{dir}charts/{sub}/");
        let sub_meta = parse_meta(files, &sub_dir)?;
        let key = meta
            .dependencies
            .iter()
            .find(|d| d.name == sub_meta.name)
            .and_then(|d| d.alias.clone())
            .unwrap_or_else(|| sub_meta.name.clone());
        let mut sub_at = at.to_vec();
        sub_at.push(key.clone());
        // The subchart's own defaults say what its values are, whatever the parent's comment calls them
        // (victoria-metrics-k8s-stack documents `grafana` as "(object) Grafana dependency chart
        // configuration").
        open.remove(&sub_at);
        let mut sub_values = combined(files, &sub_dir, &sub_meta, &sub_at, open, documented)?;
        if let Value::Mapping(parent) = &mut values {
            let k = Value::String(key);
            if let Some(over) = parent.get(&k) {
                overlay(&mut sub_values, over);
            }
            parent.insert(k, sub_values);
        }
    }
    Ok(values)
}

/// Helm's coalescing of two value trees: maps merge key by key, `over` wins, and a null in `over`
/// deletes the key.
pub fn overlay(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(k);
                    continue;
                }
                match b.get_mut(k) {
                    Some(existing) => overlay(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// The kept files of `vendor/charts/<input>/` under `root`, if that directory holds a Chart.yaml. A
/// symlink on the way (vendor/, vendor/charts/, the chart's directory) leading out of the stack is
/// refused, as `stack lock` refuses it; symlinks inside the directory are not followed.
pub fn read_vendored(
    root: &std::path::Path,
    input: &str,
) -> Result<Option<ChartFiles>, crate::contain::ContainError> {
    let dir = crate::contain::resolve(root, &format!("{VENDOR_DIR}/{input}"))?;
    read_vendored_dir(&dir).map_err(|err| crate::contain::ContainError::Io {
        path: format!("{VENDOR_DIR}/{input}"),
        err,
    })
}

/// The kept files under `dir` (already contained), if it holds a Chart.yaml.
fn read_vendored_dir(dir: &std::path::Path) -> Result<Option<ChartFiles>, std::io::Error> {
    let dir = dir.to_path_buf();
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut files = ChartFiles::new();
    let mut stack = vec![(dir.clone(), String::new())];
    while let Some((d, rel)) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                stack.push((entry.path(), format!("{rel}{name}/")));
            } else if file_type.is_file() && is_kept(&format!("{rel}{name}")) {
                files.insert(format!("{rel}{name}"), std::fs::read(entry.path())?);
            }
        }
    }
    // An emptied directory (a removed chart's files are deleted, not its directory) holds nothing.
    Ok(files.contains_key("Chart.yaml").then_some(files))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn vendored_defaults_behind_a_symlink_out_of_the_stack_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(
            outside.path().join("Chart.yaml"),
            "name: x\nversion: 1.0.0\n",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("vendor/charts")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("vendor/charts/x")).unwrap();
        let err = read_vendored(root, "x").unwrap_err().to_string();
        assert!(
            err.contains("vendor/charts/x is a symlink leading outside the stack"),
            "{err}"
        );
        std::fs::remove_file(root.join("vendor/charts/x")).unwrap();
        std::fs::remove_dir_all(root.join("vendor")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("vendor")).unwrap();
        let err = read_vendored(root, "x").unwrap_err().to_string();
        assert!(err.contains("vendor is a symlink leading outside"), "{err}");
    }

    fn chart_yaml(text: &str) -> ChartFiles {
        ChartFiles::from([("Chart.yaml".to_string(), text.as_bytes().to_vec())])
    }

    #[test]
    fn the_archive_must_hold_the_chart_and_version_asked_for() {
        let files = chart_yaml("apiVersion: v2\nname: op\nversion: 104.1.1+up57.0.3\n");
        assert_eq!(check_identity(&files, "op", "104.1.1+up57.0.3"), Ok(()));
        let err = check_identity(&files, "other", "104.1.1+up57.0.3").unwrap_err();
        assert!(err.contains("name `op` (expected `other`)"), "{err}");
        let err = check_identity(&files, "op", "104.1.1").unwrap_err();
        assert!(
            err.contains("version `104.1.1+up57.0.3` (expected `104.1.1`)"),
            "{err}"
        );
        // Helm reads a leading `v` as the same version.
        let v = chart_yaml("name: op\nversion: v1.2.0\n");
        assert_eq!(check_identity(&v, "op", "1.2.0"), Ok(()));
        let err = check_identity(&ChartFiles::new(), "op", "1.2.0").unwrap_err();
        assert!(err.contains("name `` (expected `op`)"), "{err}");
    }

    fn yaml(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap()
    }

    fn files(entries: &[(&str, &str)]) -> ChartFiles {
        entries
            .iter()
            .map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn subcharts_sit_under_their_alias_with_the_parents_values_over_them() {
        let f = files(&[
            (
                "Chart.yaml",
                "name: top\nversion: 1.0.0\ndependencies:\n- name: grafana\n- name: rollout-operator\n  alias: rollout_operator\n",
            ),
            ("values.yaml", "grafana:\n  enabled: true\n  adminUser: me\n# -- (object) anything\nextra:\n  a: 1\n"),
            ("charts/grafana/Chart.yaml", "name: grafana\nversion: 8.0.0\n"),
            ("charts/grafana/values.yaml", "adminUser: admin\nsidecar:\n  dashboards:\n    enabled: false\n"),
            ("charts/rollout-operator/Chart.yaml", "name: rollout-operator\nversion: 0.1.0\n"),
            ("charts/rollout-operator/values.yaml", "replicas: 1\n"),
        ]);
        let d = Defaults::from_files(&f).unwrap();
        assert_eq!(d.values["grafana"]["adminUser"], yaml("me"));
        assert_eq!(
            d.values["grafana"]["sidecar"]["dashboards"]["enabled"],
            yaml("false")
        );
        assert_eq!(d.values["grafana"]["enabled"], yaml("true"));
        assert_eq!(d.values["rollout_operator"]["replicas"], yaml("1"));
        assert!(d.open.contains(&vec!["extra".to_string()]));
        assert_eq!((d.chart.as_str(), d.version.as_str()), ("top", "1.0.0"));
    }

    #[test]
    fn archives_keep_metadata_and_defaults_of_nested_charts_only() {
        assert!(is_kept("Chart.yaml"));
        assert!(is_kept("charts/grafana/values.yaml"));
        assert!(is_kept("charts/a/charts/b/values.schema.json"));
        assert!(!is_kept("templates/values.yaml"));
        assert!(!is_kept("charts/grafana/templates/x.yaml"));
        assert!(!is_kept("charts/values.yaml"));
        assert!(!is_kept("charts/../values.yaml"));
        assert!(!is_kept("charts/./charts/../Chart.yaml"));
        assert!(is_nested_archive("charts/grafana-8.11.4.tgz"));
        assert!(!is_nested_archive("files/x.tgz"));
    }

    /// A gzipped tar of `entries` (GNU headers, so a name may be longer than 100 bytes).
    pub(crate) fn tgz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, bytes) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            tar.append_data(&mut header, path, *bytes).unwrap();
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar.into_inner().unwrap()).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn an_archive_gives_its_defaults_and_those_of_nested_subchart_archives() {
        let sub = tgz(&[
            ("sub/Chart.yaml", b"name: sub\nversion: 1.0.0\n"),
            ("sub/values.yaml", b"replicas: 1\n"),
            ("sub/templates/d.yaml", b"kind: Deployment\n"),
        ]);
        let top = tgz(&[
            ("demo/Chart.yaml", b"name: demo\nversion: 2.0.0\n"),
            ("demo/values.yaml", b"a: 1\n"),
            ("demo/templates/cm.yaml", b"kind: ConfigMap\n"),
            ("demo/charts/sub-1.0.0.tgz", &sub),
        ]);
        let files = from_archive(&top).unwrap();
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            [
                "Chart.yaml",
                "charts/sub/Chart.yaml",
                "charts/sub/values.yaml",
                "values.yaml"
            ]
        );
        let d = Defaults::from_files(&files).unwrap();
        assert_eq!(d.values["sub"]["replicas"], yaml("1"));
        assert!(from_archive(b"not a tgz").is_err());
    }

    #[test]
    fn names_too_long_to_write_are_skipped_not_fatal() {
        let long = format!("demo/charts/{}/values.yaml", "a".repeat(300));
        let deep = format!("demo/{}values.yaml", "charts/b/".repeat(120));
        let archive = tgz(&[
            ("demo/Chart.yaml", b"name: demo\nversion: 1.0.0\n"),
            ("demo/values.yaml", b"a: 1\n"),
            (&long, b"x: 1\n"),
            (&deep, b"y: 1\n"),
        ]);
        let files = from_archive(&archive).unwrap();
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            ["Chart.yaml", "values.yaml"]
        );
    }

    #[test]
    fn null_over_a_default_deletes_it() {
        let mut base = yaml("a: 1\nb: {c: 2}\n");
        overlay(&mut base, &yaml("a: null\nb: {d: 3}\n"));
        assert_eq!(base, yaml("b: {c: 2, d: 3}\n"));
    }
}
