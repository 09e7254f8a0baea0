//! `SnapshotMirror`: the upstream of the repo's default stack on loopback, as `tests/mirror/mirror.toml`
//! describes it: a real `docker-registry` with the OCI charts (standing in for ghcr.io), a classic Helm
//! repository (standing in for https://grafana.github.io/helm-charts) and a static server with the real
//! dashboard files at their raw.githubusercontent.com paths. [`SnapshotMirror::args`] gives the
//! `--mirror FROM=TO` flags that point `stack lock` at it; the lock still records the canonical sources.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::charts::{fixture_chart, fixture_versions, index_yaml};
use super::{dashboard_bytes, repo_root, HttpServer, Registry};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorSpec {
    pub oci: Vec<OciSpec>,
    pub helm_repo: HelmRepoSpec,
    pub raw: RawSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OciSpec {
    pub upstream: String,
    pub repository: String,
    pub chart: String,
    pub versions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelmRepoSpec {
    pub upstream: String,
    pub charts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    pub upstream: String,
    pub file: Vec<RawFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    /// A file of ../shared/upstream/dashboards/ (read in place, see `support::upstream`).
    pub file: String,
    pub repo: String,
    pub commit: String,
    pub path: String,
}

impl RawFile {
    /// `/<repo>/<commit>/<path>`.
    pub fn url_path(&self) -> String {
        format!("/{}/{}/{}", self.repo, self.commit, self.path)
    }
}

/// `tests/mirror/mirror.toml`, parsed.
pub fn spec() -> MirrorSpec {
    let path = repo_root().join("tests/mirror/mirror.toml");
    let text =
        fs_err::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub struct SnapshotMirror {
    pub registry: Registry,
    pub helm_repo: HttpServer,
    pub raw: HttpServer,
    pub spec: MirrorSpec,
    /// Manifest digest of each pushed chart, by `<repository>:<version>`.
    pub manifest_digests: BTreeMap<String, String>,
}

impl SnapshotMirror {
    /// Starts all three servers and loads them. `None` when docker-registry is missing outside CI.
    pub fn start() -> Option<SnapshotMirror> {
        let spec = spec();
        let registry = Registry::start()?;
        let mut manifest_digests = BTreeMap::new();
        for oci in &spec.oci {
            for version in &oci.versions {
                let chart = fixture_chart(&oci.chart, version);
                let digest = registry.push_fixture(&oci.repository, &chart);
                manifest_digests.insert(format!("{}:{version}", oci.repository), digest);
            }
        }

        let helm_repo = HttpServer::start();
        let charts: Vec<_> = spec
            .helm_repo
            .charts
            .iter()
            .flat_map(|name| fixture_versions(name))
            .collect();
        helm_repo.serve("/index.yaml", index_yaml(&charts));
        for chart in &charts {
            helm_repo.serve(&format!("/{}", chart.file_name()), chart.bytes.clone());
        }

        let raw = HttpServer::start();
        for file in &spec.raw.file {
            raw.serve_with(
                &file.url_path(),
                "text/plain; charset=utf-8",
                dashboard_bytes(&file.file),
            );
        }
        Some(SnapshotMirror {
            registry,
            helm_repo,
            raw,
            spec,
            manifest_digests,
        })
    }

    /// The `--mirror FROM=TO` pairs (each without the flag), OCI hosts first.
    pub fn pairs(&self) -> Vec<String> {
        let mut pairs: Vec<String> = Vec::new();
        for oci in &self.spec.oci {
            let pair = format!("{}={}", oci.upstream, self.registry.host());
            if !pairs.contains(&pair) {
                pairs.push(pair);
            }
        }
        pairs.push(format!(
            "{}={}",
            self.spec.helm_repo.upstream,
            self.helm_repo.url()
        ));
        pairs.push(format!("{}={}", self.spec.raw.upstream, self.raw.url()));
        pairs
    }

    /// `["--mirror", "ghcr.io=127.0.0.1:P1", "--mirror", "https://grafana.github.io/helm-charts=http://127.0.0.1:P2", …]`.
    pub fn args(&self) -> Vec<String> {
        self.pairs()
            .into_iter()
            .flat_map(|p| ["--mirror".to_string(), p])
            .collect()
    }

    /// The canonical raw.githubusercontent.com URL of a fixture dashboard file served by the mirror.
    pub fn raw_url(&self, file: &str) -> String {
        let entry = self
            .spec
            .raw
            .file
            .iter()
            .find(|f| f.file == file)
            .unwrap_or_else(|| panic!("{file} is not in tests/mirror/mirror.toml"));
        format!("{}{}", self.spec.raw.upstream, entry.url_path())
    }
}

/// For each `[[dashboard]]` of a stack.lock pinned at a raw.githubusercontent.com URL the snapshot mirror
/// serves: its vendored path and the real upstream bytes (from ../shared/upstream), which must hash to
/// the lock's blake3. What `stack lock` restores into vendor/ when the community dashboards are on.
pub fn locked_dashboard_bytes(lock_text: &str) -> Vec<(String, Vec<u8>)> {
    let lock: toml::Value = toml::from_str(lock_text).expect("stack.lock parses");
    let spec = spec();
    let mut out = Vec::new();
    for entry in lock
        .get("dashboard")
        .and_then(|d| d.as_array())
        .into_iter()
        .flatten()
    {
        let field = |k: &str| entry[k].as_str().unwrap().to_string();
        let source = field("source");
        let Some(file) = spec
            .raw
            .file
            .iter()
            .find(|f| source == format!("{}{}", spec.raw.upstream, f.url_path()))
        else {
            panic!("the snapshot mirror serves no file for {source} (tests/mirror/mirror.toml)");
        };
        let bytes = dashboard_bytes(&file.file);
        assert_eq!(
            super::blake3(&bytes),
            field("blake3"),
            "../shared/upstream/dashboards/{} does not hash to the lock's pin of {}",
            file.file,
            field("name")
        );
        out.push((field("path"), bytes));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::http_client::request;

    #[test]
    fn the_mirror_serves_every_input_of_the_default_stack() {
        let Some(mirror) = SnapshotMirror::start() else {
            return;
        };
        for file in &mirror.spec.raw.file {
            let got = request(
                "GET",
                &format!("{}{}", mirror.raw.url(), file.url_path()),
                &[],
                b"",
            )
            .unwrap();
            assert_eq!(got.body, dashboard_bytes(&file.file), "{}", file.file);
        }
        for oci in &mirror.spec.oci {
            let mut want = oci.versions.clone();
            want.sort();
            assert_eq!(mirror.registry.tags(&oci.repository), want);
        }
        assert_eq!(
            request(
                "GET",
                &format!("{}/tempo-1.24.1.tgz", mirror.helm_repo.url()),
                &[],
                b""
            )
            .unwrap()
            .status,
            200
        );
        let pairs = mirror.pairs();
        assert_eq!(pairs.len(), 3, "{pairs:?}");
        assert!(pairs[0].starts_with("ghcr.io=127.0.0.1:"));

        // Every URL input of the repo's stack.toml is served by the mirror.
        let Ok(text) = fs_err::read_to_string(repo_root().join("stack.toml")) else {
            return;
        };
        let manifest: toml::Table = toml::from_str(&text).unwrap();
        let served: Vec<String> = mirror
            .spec
            .raw
            .file
            .iter()
            .map(|f| mirror.raw_url(&f.file))
            .collect();
        for (name, dashboard) in manifest
            .get("dashboards")
            .and_then(|d| d.as_table())
            .into_iter()
            .flatten()
        {
            if let Some(url) = dashboard.get("url").and_then(|u| u.as_str()) {
                assert!(
                    served.iter().any(|s| s == url),
                    "dashboard `{name}`: {url} is not in tests/mirror/mirror.toml"
                );
            }
        }
    }
}
