//! Chart fixtures: stand-in Helm charts with the real names and versions of the default stack (and
//! versions around them for range tests), as real .tgz archives laid out as `helm package` writes them
//! (`<name>/Chart.yaml`, `values.yaml`, `templates/`), and the classic repository `index.yaml` for alloy and
//! tempo as `helm repo index` writes it.
//!
//! The archives are generated once, deterministically (fixed order, mode, owner and mtime; gzip mtime 0),
//! and the bytes are committed under `tests/fixtures/charts/`: digests then never depend on the machine or
//! on the compressor's version. Regenerate with
//! `cargo test --test it -- --ignored regenerate_chart_fixtures` (which rewrites them only if the set changes).

use std::collections::BTreeMap;
use std::io::{Read, Write};

use super::{fixture, fixture_bytes, sha256};

/// Every fixture chart: (name, version, appVersion). appVersions are plausible, not upstream facts: these
/// are stand-ins, and say so in their description.
pub const CHARTS: &[(&str, &str, &str)] = &[
    ("victoria-metrics-k8s-stack", "0.44.0", "v1.121.0"),
    ("victoria-metrics-k8s-stack", "0.45.0", "v1.122.0"),
    ("victoria-metrics-k8s-stack", "0.45.1-rc.1", "v1.122.1"),
    ("kube-prometheus-stack", "80.10.0", "v0.87.1"),
    ("prometheus-operator-crds", "24.0.0", "v0.86.0"),
    ("prometheus-operator-crds", "25.0.0", "v0.87.0"),
    ("loki", "6.48.0", "3.5.7"),
    ("loki", "6.49.0", "3.5.8"),
    ("alloy", "1.1.1", "v1.11.1"),
    ("alloy", "1.1.2", "v1.11.2"),
    ("alloy", "1.2.0", "v1.12.0"),
    ("tempo", "1.23.0", "2.8.1"),
    ("tempo", "1.24.0", "2.8.2"),
    ("tempo", "1.24.1", "2.9.0"),
];

/// Charts of the classic Helm repository fixture (`tests/fixtures/helm-repo/index.yaml`).
pub const HELM_REPO_CHARTS: &[&str] = &["alloy", "tempo"];

/// The fixed time in every archive entry and in index.yaml (2026-01-01T00:00:00Z).
pub const FIXED_MTIME: u64 = 1_767_225_600;
pub const FIXED_CREATED: &str = "2026-01-01T00:00:00Z";

/// A packaged chart: its name, version and archive bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub name: String,
    pub version: String,
    pub app_version: String,
    pub bytes: Vec<u8>,
}

impl Chart {
    /// `<name>-<version>.tgz`, the file name `helm package` gives it.
    pub fn file_name(&self) -> String {
        format!("{}-{}.tgz", self.name, self.version)
    }

    /// `sha256:<hex>` of the archive (the OCI layer digest).
    pub fn sha256(&self) -> String {
        sha256(&self.bytes)
    }

    /// Bare hex sha256, as `helm repo index` writes `digest`.
    pub fn sha256_hex(&self) -> String {
        self.sha256()["sha256:".len()..].to_string()
    }

    pub fn blake3(&self) -> String {
        super::blake3(&self.bytes)
    }
}

/// The committed fixture `tests/fixtures/charts/<name>-<version>.tgz`.
pub fn fixture_chart(name: &str, version: &str) -> Chart {
    let app_version = CHARTS
        .iter()
        .find(|(n, v, _)| *n == name && *v == version)
        .map(|(_, _, a)| a.to_string())
        .unwrap_or_else(|| panic!("{name} {version} is not a chart fixture (see CHARTS)"));
    Chart {
        name: name.into(),
        version: version.into(),
        app_version,
        bytes: fixture_bytes(&format!("charts/{name}-{version}.tgz")),
    }
}

/// Every committed version of `name`.
pub fn fixture_versions(name: &str) -> Vec<Chart> {
    CHARTS
        .iter()
        .filter(|(n, _, _)| *n == name)
        .map(|(n, v, _)| fixture_chart(n, v))
        .collect()
}

/// A chart made at run time (for versions that appear "later" upstream, or content that changes under
/// the same version); `note` goes into values.yaml so different notes give different bytes.
pub fn runtime_chart(name: &str, version: &str, note: &str) -> Chart {
    Chart {
        name: name.into(),
        version: version.into(),
        app_version: "0.0.0-test".into(),
        bytes: package(name, version, "0.0.0-test", note),
    }
}

/// Packages a stand-in chart deterministically.
pub fn package(name: &str, version: &str, app_version: &str, note: &str) -> Vec<u8> {
    let chart_yaml = format!(
        "apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: {app_version}\ndescription: Stand-in for the {name} chart {version} packaged for the tests of stack, not the upstream chart\ntype: application\n"
    );
    let mut values = format!(
        "# Stand-in values of {name} {version}. The real chart comes from upstream when a user runs\n# `stack lock --update` with network access.\nfullnameOverride: \"\"\nreplicaCount: 1\n"
    );
    if !note.is_empty() {
        values.push_str(&format!("note: {note:?}\n"));
    }
    let template = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{{{ .Release.Name }}}}-{name}-stand-in\n  namespace: {{{{ .Release.Namespace }}}}\ndata:\n  chart: {name}-{version}\n  replicaCount: {{{{ .Values.replicaCount | quote }}}}\n"
    );
    let files = [
        (format!("{name}/Chart.yaml"), chart_yaml),
        (format!("{name}/values.yaml"), values),
        (format!("{name}/templates/configmap.yaml"), template),
    ];

    let mut tar = tar::Builder::new(Vec::new());
    for (path, contents) in &files {
        let mut header = tar::Header::new_ustar();
        header.set_path(path).unwrap();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(FIXED_MTIME);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        tar.append(&header, contents.as_bytes()).unwrap();
    }
    let tar_bytes = tar.into_inner().unwrap();
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar_bytes).unwrap();
    gz.finish().unwrap()
}

/// The parsed `<name>/Chart.yaml` inside a chart archive.
pub fn chart_yaml(tgz: &[u8]) -> serde_yaml_ng::Mapping {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    for entry in archive.entries().expect("a tar.gz chart archive") {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if path.split('/').count() == 2 && path.ends_with("/Chart.yaml") {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            return serde_yaml_ng::from_str(&text).unwrap();
        }
    }
    panic!("no <name>/Chart.yaml in the chart archive");
}

/// `index.yaml` as `helm repo index` writes it: apiVersion v1, entries by name with versions newest first,
/// keys of each entry in alphabetical order, relative `urls`, fixed `created`/`generated` times.
pub fn index_yaml(charts: &[Chart]) -> String {
    index_yaml_with(charts, |c| c.file_name(), |c| c.sha256_hex())
}

/// [`index_yaml`] with custom `urls[0]` and `digest` per chart (absolute URLs, wrong digests).
pub fn index_yaml_with(
    charts: &[Chart],
    url: impl Fn(&Chart) -> String,
    digest: impl Fn(&Chart) -> String,
) -> String {
    let mut by_name: BTreeMap<&str, Vec<&Chart>> = BTreeMap::new();
    for chart in charts {
        by_name.entry(&chart.name).or_default().push(chart);
    }
    let mut out = String::from("apiVersion: v1\nentries:\n");
    for (name, mut versions) in by_name {
        versions.sort_by(|a, b| {
            semver::Version::parse(&b.version)
                .unwrap()
                .cmp(&semver::Version::parse(&a.version).unwrap())
        });
        out.push_str(&format!("  {name}:\n"));
        for chart in versions {
            let yaml = chart_yaml(&chart.bytes);
            let description = yaml
                .get("description")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            out.push_str(&format!(
                "  - apiVersion: v2\n    appVersion: {app}\n    created: \"{FIXED_CREATED}\"\n    description: {description}\n    digest: {digest}\n    name: {name}\n    type: application\n    urls:\n    - {url}\n    version: {version}\n",
                app = chart.app_version,
                digest = digest(chart),
                url = url(chart),
                version = chart.version,
            ));
        }
    }
    out.push_str(&format!("generated: \"{FIXED_CREATED}\"\n"));
    out
}

/// The committed `tests/fixtures/helm-repo/index.yaml`.
pub fn fixture_index() -> String {
    String::from_utf8(fixture_bytes("helm-repo/index.yaml")).unwrap()
}

/// Every fixture chart of the classic Helm repository.
pub fn helm_repo_charts() -> Vec<Chart> {
    HELM_REPO_CHARTS
        .iter()
        .flat_map(|name| fixture_versions(name))
        .collect()
}

/// Writes the chart archives and index.yaml under tests/fixtures. Existing archives are kept as they are
/// (their digests are pinned in the repo's stack.lock); only missing ones are written.
pub fn regenerate_fixtures() -> Vec<String> {
    let mut written = Vec::new();
    let dir = fixture("charts");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, version, app_version) in CHARTS {
        let path = dir.join(format!("{name}-{version}.tgz"));
        if !path.exists() {
            std::fs::write(&path, package(name, version, app_version, "")).unwrap();
            written.push(path.display().to_string());
        }
    }
    let index = index_yaml(&helm_repo_charts());
    let index_path = fixture("helm-repo/index.yaml");
    if std::fs::read_to_string(&index_path).ok().as_deref() != Some(index.as_str()) {
        std::fs::create_dir_all(index_path.parent().unwrap()).unwrap();
        std::fs::write(&index_path, index).unwrap();
        written.push(index_path.display().to_string());
    }
    written
}
