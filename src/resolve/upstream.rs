//! What resolution asks of upstreams, behind one trait (as uv's `ResolverProvider`): which version of a
//! chart meets a requirement, a chart's archive, grafana.com's latest revision, a dashboard's bytes. The
//! planning, stickiness and "same version, other bytes" rules of `resolve/` see only this trait, so they
//! are unit-tested against an in-memory upstream (`resolve/memory.rs`); [`Live`] is the real one, over
//! `source/` (OCI registries, Helm repositories, grafana.com and URLs) and its cached-fetch layer.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use super::ResolveError;
use crate::manifest::{ChartSource, ChartSpec, Manifest, Name};
use crate::source::helm_repo::{self, HelmPin, RepoIndex};
use crate::source::oci::{self, OciPin};
use crate::source::{grafana, Access};
use crate::source::{InputError, InputErrorKind, Location};
use crate::store::Store;
use crate::version_req::VersionReq;

/// Warnings gathered while a run's tasks interleave; pushed with short borrows only.
pub(super) type Warnings = RefCell<Vec<String>>;

/// The version a requirement resolved to, with what its source says about it.
pub(super) enum ChartPin {
    Oci(OciPin),
    Helm(HelmPin),
}

/// The upstreams as resolution sees them. Every method names the input it works for, so its errors do.
pub(super) trait Upstream {
    /// The content cache: chart archives and dashboards by blake3.
    fn store(&self) -> &Store;

    /// Whether the network may be asked (`false` under `--offline`: answers come from the cache alone).
    fn online(&self) -> bool;

    /// The version of `spec`'s source that meets `req`; warnings about what was skipped go to `warnings`
    /// (also when nothing matched: they often explain why).
    async fn chart_pin(
        &self,
        name: &Name,
        spec: &ChartSpec,
        req: &VersionReq,
        warnings: &Warnings,
    ) -> Result<ChartPin, ResolveError>;

    /// The archive of `pin`, checked against the digest its source states.
    async fn chart_archive(
        &self,
        name: &Name,
        spec: &ChartSpec,
        pin: &ChartPin,
    ) -> Result<Vec<u8>, ResolveError>;

    /// grafana.com's latest revision of dashboard `id`.
    async fn latest_revision(&self, name: &Name, id: u64) -> Result<u64, ResolveError>;

    /// The JSON of one grafana.com revision, and that revision's title.
    async fn grafana_revision(
        &self,
        name: &Name,
        id: u64,
        revision: u64,
    ) -> Result<(Vec<u8>, String), ResolveError>;

    /// A URL dashboard's JSON and title.
    async fn url_dashboard(
        &self,
        name: &Name,
        url: &str,
    ) -> Result<(Vec<u8>, String), ResolveError>;
}

/// A repository's index.yaml, fetched by whichever chart asks first; the error is shared as text.
type IndexCell = Rc<tokio::sync::OnceCell<Result<Rc<RepoIndex>, String>>>;

/// The real upstreams, through [`Access`] (the network with the cache, or the cache alone).
pub(super) struct Live<'a> {
    access: Access<'a>,
    /// Each repository's index.yaml is fetched once per run, however many charts come from it.
    indexes: RefCell<BTreeMap<String, IndexCell>>,
    /// The charts stack.toml takes from each Helm repository: the only entries of its index kept.
    repo_charts: BTreeMap<String, BTreeSet<String>>,
}

impl<'a> Live<'a> {
    pub(super) fn new(access: Access<'a>, manifest: &Manifest) -> Live<'a> {
        let mut repo_charts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for spec in manifest.charts.values() {
            if let ChartSource::Repo { url, chart } = &spec.source {
                repo_charts
                    .entry(url.clone())
                    .or_default()
                    .insert(chart.clone());
            }
        }
        Live {
            access,
            indexes: RefCell::default(),
            repo_charts,
        }
    }

    async fn index(&self, repo: &str) -> Result<Rc<RepoIndex>, String> {
        let cell = self
            .indexes
            .borrow_mut()
            .entry(repo.to_string())
            .or_default()
            .clone();
        let wanted = self.repo_charts.get(repo).cloned().unwrap_or_default();
        cell.get_or_init(|| async {
            helm_repo::fetch_index(&self.access, repo, &wanted)
                .await
                .map(Rc::new)
        })
        .await
        .clone()
    }

    async fn select_helm(
        &self,
        name: &Name,
        repo: &str,
        spec: &ChartSpec,
        req: &VersionReq,
        warnings: &Warnings,
    ) -> Result<HelmPin, ResolveError> {
        let input = name.as_str();
        let index = self.index(repo).await.map_err(|message| {
            let kind = InputErrorKind::Index { message };
            InputError::chart(input, Location::Repository(repo.into()), kind)
        })?;
        let chart = spec.source.chart_name();
        let selected = helm_repo::select(&self.access, input, repo, chart, &index, req);
        // The skipped entries matter most when nothing matched: they are printed with the error too.
        let skipped = match &selected {
            Ok((_, skipped)) => skipped.clone(),
            Err(_) => index.entries(chart).map(|(_, w)| w).unwrap_or_default(),
        };
        warnings.borrow_mut().extend(
            skipped
                .into_iter()
                .map(|w| format!("chart `{input}`: {repo}/{w}")),
        );
        Ok(selected?.0)
    }
}

fn oci_url(spec: &ChartSpec) -> Option<&str> {
    match &spec.source {
        ChartSource::Oci { url } => Some(url),
        ChartSource::Repo { .. } => None,
    }
}

impl Upstream for Live<'_> {
    fn store(&self) -> &Store {
        self.access.store()
    }

    fn online(&self) -> bool {
        self.access.net().is_some()
    }

    async fn chart_pin(
        &self,
        name: &Name,
        spec: &ChartSpec,
        req: &VersionReq,
        warnings: &Warnings,
    ) -> Result<ChartPin, ResolveError> {
        match &spec.source {
            ChartSource::Oci { url } => {
                let ctx = oci::Ctx::new(self.access, name.as_str(), url);
                let (pin, skipped) = ctx.resolve(req).await?;
                warnings.borrow_mut().extend(skipped);
                Ok(ChartPin::Oci(pin))
            }
            ChartSource::Repo { url, .. } => Ok(ChartPin::Helm(
                self.select_helm(name, url, spec, req, warnings).await?,
            )),
        }
    }

    async fn chart_archive(
        &self,
        name: &Name,
        spec: &ChartSpec,
        pin: &ChartPin,
    ) -> Result<Vec<u8>, ResolveError> {
        let input = name.as_str();
        match pin {
            ChartPin::Oci(pin) => {
                let url = oci_url(spec).expect("an OCI pin comes from an OCI chart");
                Ok(oci::Ctx::new(self.access, input, url).download(pin).await?)
            }
            ChartPin::Helm(pin) => Ok(helm_repo::download(&self.access, input, pin).await?.0),
        }
    }

    async fn latest_revision(&self, name: &Name, id: u64) -> Result<u64, ResolveError> {
        Ok(grafana::meta(&self.access, name.as_str(), id)
            .await?
            .latest_revision)
    }

    async fn grafana_revision(
        &self,
        name: &Name,
        id: u64,
        revision: u64,
    ) -> Result<(Vec<u8>, String), ResolveError> {
        Ok(grafana::download_revision(&self.access, name.as_str(), id, revision).await?)
    }

    async fn url_dashboard(
        &self,
        name: &Name,
        url: &str,
    ) -> Result<(Vec<u8>, String), ResolveError> {
        Ok(grafana::download_plain(&self.access, name.as_str(), url).await?)
    }
}
