//! `stack.toml`, the user's contract: which charts and dashboards the stack takes from upstream, its
//! settings, which modules it enables and where bytes may be fetched from instead (mirrors).
//!
//! Wire types mirror the file and are validated inside `Deserialize`, so the toml crate reports the line
//! and column of a bad value for free; the domain type [`Manifest`] is valid by construction.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::diag::{toml_error, SpanError};
use crate::settings::Condition;
use crate::version_req::VersionReq;

pub const MANIFEST_FILE: &str = "stack.toml";

/// A name that becomes part of Kubernetes object names (HelmRelease, ConfigMap), so it must be a DNS-1123
/// label short enough for Helm's 53-character release-name limit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Name {
    type Err = String;
    fn from_str(s: &str) -> Result<Name, String> {
        let ok = !s.is_empty()
            && s.len() <= 53
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(Name(s.to_string()))
        } else {
            Err(format!(
                "`{s}` is not a valid name: use 1-53 lowercase letters, digits and '-', starting and ending with a letter or digit (it becomes a Kubernetes object name)"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

// ----- wire -----------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestWire {
    stack: StackSection,
    #[serde(default)]
    settings: BTreeMap<String, toml::Spanned<toml::Value>>,
    #[serde(default)]
    charts: BTreeMap<toml::Spanned<String>, ChartSpec>,
    #[serde(default)]
    dashboards: BTreeMap<toml::Spanned<String>, DashboardSpec>,
    /// Optional: a stack that only pins inputs enables no module.
    #[serde(default)]
    modules: ModulesSection,
    #[serde(default)]
    mirrors: BTreeMap<String, Mirror>,
}

/// `[stack]`: the stack's name and where Flux finds the emitted tree in Git.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StackSection {
    pub name: Name,
    pub flux: FluxSection,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FluxSection {
    /// The Flux source the emitted Kustomizations reconcile from (usually the `flux-system` GitRepository).
    pub source: SourceRef,
    /// Path of the emitted tree inside that source, e.g. `./kubernetes`; every Kustomization's `path` is
    /// under it.
    #[serde(deserialize_with = "crate::kube::flux_path")]
    pub path: String,
    /// Namespace of the Flux Kustomizations and of the source they reference.
    #[serde(
        default = "default_flux_namespace",
        deserialize_with = "crate::kube::dns_label"
    )]
    pub namespace: String,
    /// Reconcile interval of the Kustomizations and sources (a Flux duration).
    #[serde(
        default = "default_interval",
        deserialize_with = "crate::kube::flux_duration"
    )]
    pub interval: String,
    /// Prefix of the emitted Kustomizations' names (they live in flux-system beside the user's own):
    /// `prefix = "stack-"` names them `stack-loki`, …. Lowercase letters, digits and `-`.
    #[serde(default)]
    pub prefix: String,
}

fn default_flux_namespace() -> String {
    "flux-system".into()
}

fn default_interval() -> String {
    "1h".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceRef {
    pub kind: SourceKind,
    #[serde(deserialize_with = "crate::kube::dns_subdomain")]
    pub name: String,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
pub enum SourceKind {
    GitRepository,
    OCIRepository,
    Bucket,
}

impl SourceKind {
    /// The kind as Flux's `sourceRef.kind` spells it (the same as stack.toml).
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::GitRepository => "GitRepository",
            SourceKind::OCIRepository => "OCIRepository",
            SourceKind::Bucket => "Bucket",
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModulesSection {
    #[serde(default)]
    enabled: Vec<toml::Spanned<String>>,
}

/// `[charts.<name>]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChartWire {
    oci: Option<String>,
    repo: Option<String>,
    chart: Option<String>,
    version: Option<VersionReq>,
}

/// A Helm chart input: where it lives upstream and which versions are acceptable.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "ChartWire")]
pub struct ChartSpec {
    pub source: ChartSource,
    /// The requirement as the user wrote it, with Helm's meaning (a bare `1.2.3` is exact).
    pub version: VersionReq,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartSource {
    /// `oci://registry/path/chart`: the chart is the repository at that path; Flux pulls it with an
    /// OCIRepository pinned by digest.
    Oci { url: String },
    /// A classic Helm repository serving `index.yaml`; Flux pulls with a HelmRepository and a version.
    Repo { url: String, chart: String },
}

impl ChartSource {
    /// The canonical source string recorded in the lock: `oci://…` or `<repo url>#<chart>`.
    pub fn canonical(&self) -> String {
        match self {
            ChartSource::Oci { url } => url.clone(),
            ChartSource::Repo { url, chart } => format!("{url}#{chart}"),
        }
    }

    /// The chart's own name (last OCI path segment, or `chart` of a classic repository).
    pub fn chart_name(&self) -> &str {
        match self {
            ChartSource::Oci { url } => url.rsplit('/').next().unwrap_or(url),
            ChartSource::Repo { chart, .. } => chart,
        }
    }
}

impl TryFrom<ChartWire> for ChartSpec {
    type Error = String;
    fn try_from(w: ChartWire) -> Result<ChartSpec, String> {
        let version = match w.version {
            Some(v) => v,
            None => "*".parse().map_err(|e| format!("{e}"))?,
        };
        let source = match (w.oci, w.repo) {
            (Some(_), Some(_)) => {
                return Err("a chart takes either `oci = \"oci://…\"` or `repo = \"https://…\"`, not both".into())
            }
            (None, None) => {
                return Err("a chart needs `oci = \"oci://registry/path/chart\"` or `repo = \"https://…\"` (a Helm repository with index.yaml)".into())
            }
            (Some(oci), None) => {
                if w.chart.is_some() {
                    return Err("`chart` applies to `repo` charts; an OCI chart is named by the last segment of its `oci` URL".into());
                }
                let rest = oci
                    .strip_prefix("oci://")
                    .ok_or_else(|| format!("`oci = \"{oci}\"` must start with oci://"))?;
                if crate::auth::has_userinfo(&oci) {
                    return Err(crate::auth::userinfo_message("`oci`"));
                }
                let parts: Vec<&str> = rest.split('/').collect();
                if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
                    return Err(format!("`oci = \"{oci}\"` must be oci://<registry>/<path>/<chart>"));
                }
                if rest.contains([':', '@']) && parts[1..].iter().any(|p| p.contains([':', '@'])) {
                    return Err(format!(
                        "`oci = \"{oci}\"` must not carry a tag or digest; put the version in `version`"
                    ));
                }
                ChartSource::Oci { url: oci.trim_end_matches('/').to_string() }
            }
            (None, Some(repo)) => {
                let parsed = url::Url::parse(&repo).map_err(|e| format!("`repo = \"{repo}\"` is not a URL: {e}"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(format!("`repo = \"{repo}\"` must be an http(s) Helm repository URL (for OCI use `oci = …`)"));
                }
                if crate::auth::has_userinfo(&repo) {
                    return Err(crate::auth::userinfo_message("`repo`"));
                }
                let chart = w.chart.ok_or_else(|| "internal: chart name defaulting".to_string());
                ChartSource::Repo {
                    url: repo.trim_end_matches('/').to_string(),
                    chart: chart.unwrap_or_default(),
                }
            }
        };
        Ok(ChartSpec { source, version })
    }
}

/// `[dashboards.<name>]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DashboardWire {
    grafana_com: Option<u64>,
    revision: Option<u64>,
    url: Option<String>,
    folder: Option<String>,
    datasource: Option<String>,
    #[serde(default)]
    datasources: BTreeMap<String, String>,
    #[serde(default)]
    inputs: BTreeMap<String, String>,
    #[serde(default)]
    when: Condition,
}

/// A Grafana dashboard input, vendored at lock time and shipped as a ConfigMap.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "DashboardWire")]
pub struct DashboardSpec {
    pub source: DashboardSource,
    /// Grafana folder (the ConfigMap's `grafana_folder` annotation).
    pub folder: String,
    /// The datasource the dashboard's Prometheus-type inputs point at; default: the one the metrics
    /// module provisions.
    pub datasource: Option<String>,
    /// Per-input datasource overrides, by input name (`DS_LOKI = "Loki"`).
    pub datasources: BTreeMap<String, String>,
    /// Values for `__inputs` of type `constant` (`VAR_...`), which Grafana's import dialog would ask for.
    pub inputs: BTreeMap<String, String>,
    /// Shipped only when this holds (Logs dashboards only with Loki); always locked.
    pub when: Condition,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DashboardSource {
    /// grafana.com id and revision; `None` means the latest revision at lock time, then pinned.
    GrafanaCom {
        id: u64,
        revision: Option<u64>,
    },
    Url {
        url: String,
    },
}

impl DashboardSource {
    pub fn canonical(&self) -> String {
        match self {
            DashboardSource::GrafanaCom { id, .. } => {
                format!("https://grafana.com/api/dashboards/{id}")
            }
            DashboardSource::Url { url } => url.clone(),
        }
    }
}

impl TryFrom<DashboardWire> for DashboardSpec {
    type Error = String;
    fn try_from(w: DashboardWire) -> Result<DashboardSpec, String> {
        let source = match (w.grafana_com, w.url) {
            (Some(_), Some(_)) => return Err("a dashboard takes either `grafana_com = <id>` or `url = \"…\"`, not both".into()),
            (None, None) => {
                return Err("a dashboard needs `grafana_com = <id>` (with an optional `revision`) or `url = \"https://…\"`".into())
            }
            (Some(0), None) => return Err("`grafana_com = 0` is not a grafana.com dashboard id; ids start at 1".into()),
            (Some(_), None) if w.revision == Some(0) => {
                return Err("`revision = 0` is not a grafana.com revision: revisions start at 1 (omit `revision` to pin the latest)".into())
            }
            (Some(id), None) => DashboardSource::GrafanaCom { id, revision: w.revision },
            (None, Some(url)) => {
                if w.revision.is_some() {
                    return Err("`revision` applies to `grafana_com` dashboards; a URL dashboard is pinned by its content hash".into());
                }
                if crate::auth::has_userinfo(&url) {
                    return Err(crate::auth::userinfo_message("`url`"));
                }
                let parsed = url::Url::parse(&url).map_err(|e| format!("`url = \"{url}\"` is not a URL: {e}"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(format!("`url = \"{url}\"` must be http(s)"));
                }
                DashboardSource::Url { url }
            }
        };
        Ok(DashboardSpec {
            source,
            folder: w.folder.unwrap_or_else(|| "General".into()),
            datasource: w.datasource,
            datasources: w.datasources,
            inputs: w.inputs,
            when: w.when,
        })
    }
}

/// `[mirrors]` value: a replacement prefix, or a table when plain HTTP must be allowed off loopback or
/// the cluster should pull from the mirror too.
#[derive(Debug, Clone, PartialEq)]
pub enum Mirror {
    To(String),
    Table {
        to: String,
        insecure: bool,
        /// The cluster pulls from this mirror too (air-gapped clusters): the emitted OCIRepository and
        /// HelmRepository point at it. Off by default: a mirror that only `stack lock` reaches (a CI
        /// cache, a laptop proxy) must not leak into what the cluster fetches.
        cluster: bool,
    },
}

/// The table form of a mirror; unknown keys (`insecur`, `clustr`) are errors, not silently ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MirrorTable {
    to: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    cluster: bool,
}

impl<'de> Deserialize<'de> for Mirror {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Mirror, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Mirror;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mirror: a string (\"registry.internal:5000\") or a table { to = \"…\", insecure = true, cluster = true }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Mirror, E> {
                Ok(Mirror::To(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Mirror, A::Error> {
                let t =
                    MirrorTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(Mirror::Table {
                    to: t.to,
                    insecure: t.insecure,
                    cluster: t.cluster,
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Mirror {
    pub fn to(&self) -> &str {
        match self {
            Mirror::To(to) | Mirror::Table { to, .. } => to,
        }
    }

    pub fn insecure(&self) -> bool {
        matches!(self, Mirror::Table { insecure: true, .. })
    }

    pub fn cluster(&self) -> bool {
        matches!(self, Mirror::Table { cluster: true, .. })
    }
}

// ----- domain ---------------------------------------------------------------------------------------

/// A parsed and checked stack.toml. Names are unique and valid, and modules exist (checked by the
/// caller against `modules/` with [`Manifest::enabled_spans`]).
#[derive(Debug, Clone)]
pub struct Manifest {
    pub stack: StackSection,
    pub settings: BTreeMap<String, toml::Spanned<toml::Value>>,
    pub charts: BTreeMap<Name, ChartSpec>,
    pub dashboards: BTreeMap<Name, DashboardSpec>,
    /// Enabled module names, sorted, each with the span it was written at.
    pub enabled: BTreeMap<String, std::ops::Range<usize>>,
    pub mirrors: BTreeMap<String, Mirror>,
    /// The file's text, kept to point errors found later (unknown module, setting) at a line.
    pub text: String,
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Manifest, SpanError> {
        let wire: ManifestWire =
            toml::from_str(text).map_err(|e| toml_error(MANIFEST_FILE, text, &e))?;
        let mut charts = BTreeMap::new();
        for (name, mut spec) in wire.charts {
            let span = name.span();
            let name: Name = name.into_inner().parse().map_err(|e: String| {
                SpanError::new(
                    MANIFEST_FILE,
                    text,
                    Some(span.clone()),
                    format!("chart {e}"),
                )
                .help("rename the table, e.g. [charts.my-chart]; the name is the input's, not the chart's (`oci` and `chart` say which chart)")
            })?;
            if let ChartSource::Repo { chart, .. } = &mut spec.source {
                if chart.is_empty() {
                    *chart = name.to_string();
                }
            }
            charts.insert(name, spec);
        }
        let mut dashboards = BTreeMap::new();
        for (name, spec) in wire.dashboards {
            let span = name.span();
            let name: Name = name.into_inner().parse().map_err(|e: String| {
                SpanError::new(
                    MANIFEST_FILE,
                    text,
                    Some(span.clone()),
                    format!("dashboard {e}"),
                )
                .help("rename the table, e.g. [dashboards.node-exporter]")
            })?;
            dashboards.insert(name, spec);
        }
        let mut enabled = BTreeMap::new();
        for module in wire.modules.enabled {
            let span = module.span();
            let name = module.into_inner();
            if enabled.insert(name.clone(), span.clone()).is_some() {
                return Err(SpanError::new(
                    MANIFEST_FILE,
                    text,
                    Some(span),
                    format!("module `{name}` is listed twice in [modules] enabled"),
                )
                .help(format!("remove the second `\"{name}\"`")));
            }
        }
        for (from, mirror) in &wire.mirrors {
            if from.is_empty() || mirror.to().is_empty() {
                return Err(SpanError::new(
                    MANIFEST_FILE,
                    text,
                    None,
                    "[mirrors] entries need a non-empty prefix and target",
                ));
            }
            if crate::auth::has_userinfo(from) || crate::auth::has_userinfo(mirror.to()) {
                return Err(SpanError::new(
                    MANIFEST_FILE,
                    text,
                    None,
                    crate::auth::userinfo_message("[mirrors]"),
                ));
            }
        }
        Ok(Manifest {
            stack: wire.stack,
            settings: wire.settings,
            charts,
            dashboards,
            enabled,
            mirrors: wire.mirrors,
            text: text.to_string(),
        })
    }

    pub fn error_at(
        &self,
        span: Option<std::ops::Range<usize>>,
        message: impl Into<String>,
    ) -> SpanError {
        SpanError::new(MANIFEST_FILE, &self.text, span, message)
    }
}

#[cfg(test)]
mod tests;
