//! An in-memory [`Upstream`] for unit tests of planning and stickiness: a Helm repository of charts by
//! version, grafana.com revisions and URL dashboards held in maps, and a log of what was asked, so a test
//! states exactly which inputs went "to the network". Offline, it answers nothing (what `--offline`
//! leaves to the content cache and vendor/ is the planning's business, which is what these tests test).

use std::cell::RefCell;
use std::collections::BTreeMap;

use super::upstream::{ChartPin, Upstream, Warnings};
use super::ResolveError;
use crate::digest;
use crate::manifest::{ChartSpec, Name};
use crate::source::helm_repo::HelmPin;
use crate::store::Store;
use crate::version_req::VersionReq;

/// One version of a chart: its archive, and whether the index states its digest.
pub(super) struct Archive {
    pub bytes: Vec<u8>,
    pub stated: bool,
}

pub(super) struct Memory {
    pub store: Store,
    pub online: bool,
    /// By chart name (the input's), then version.
    pub charts: BTreeMap<String, BTreeMap<String, Archive>>,
    /// By grafana.com id, then revision: the JSON.
    pub grafana: BTreeMap<u64, BTreeMap<u64, Vec<u8>>>,
    /// By URL: the JSON.
    pub urls: BTreeMap<String, Vec<u8>>,
    /// What was asked, in order: `versions NAME`, `archive NAME VERSION`, `latest ID`,
    /// `revision ID REV`, `url URL`.
    pub asked: RefCell<Vec<String>>,
}

impl Memory {
    pub fn new(store: Store) -> Memory {
        Memory {
            store,
            online: true,
            charts: BTreeMap::new(),
            grafana: BTreeMap::new(),
            urls: BTreeMap::new(),
            asked: RefCell::default(),
        }
    }

    /// Publishes `bytes` as `version` of chart `name`, its digest stated in the index.
    pub fn publish(&mut self, name: &str, version: &str, bytes: &[u8]) {
        let archive = Archive {
            bytes: bytes.to_vec(),
            stated: true,
        };
        self.charts
            .entry(name.into())
            .or_default()
            .insert(version.into(), archive);
    }

    /// Takes the log of what was asked.
    pub fn take_asked(&self) -> Vec<String> {
        std::mem::take(&mut self.asked.borrow_mut())
    }

    fn ask(&self, kind: &'static str, name: &Name, what: String) -> Result<(), ResolveError> {
        if !self.online {
            return Err(ResolveError::Offline {
                kind,
                input: name.to_string(),
                why: format!("{what} is not at hand"),
            });
        }
        self.asked.borrow_mut().push(what);
        Ok(())
    }
}

fn title(bytes: &[u8]) -> String {
    let json: serde_json::Value = serde_json::from_slice(bytes).expect("test dashboards are JSON");
    json["title"].as_str().unwrap_or_default().to_string()
}

fn missing(kind: &'static str, name: &Name, what: &str) -> ResolveError {
    ResolveError::Offline {
        kind,
        input: name.to_string(),
        why: format!("the in-memory upstream has no {what}"),
    }
}

impl Upstream for Memory {
    fn store(&self) -> &Store {
        &self.store
    }

    fn online(&self) -> bool {
        self.online
    }

    async fn chart_pin(
        &self,
        name: &Name,
        spec: &ChartSpec,
        req: &VersionReq,
        _warnings: &Warnings,
    ) -> Result<ChartPin, ResolveError> {
        self.ask("chart", name, format!("versions {name}"))?;
        let versions = self
            .charts
            .get(name.as_str())
            .ok_or_else(|| missing("chart", name, "such chart"))?;
        let (version, _) = req
            .select(versions.keys().map(String::as_str))
            .ok_or_else(|| missing("chart", name, "matching version"))?;
        let archive = &versions[version];
        Ok(ChartPin::Helm(HelmPin {
            version: version.to_string(),
            stated_digest: archive.stated.then(|| digest::sha256(&archive.bytes)),
            canonical_url: format!("{}/{name}-{version}.tgz", spec.source.canonical()),
        }))
    }

    async fn chart_archive(
        &self,
        name: &Name,
        _spec: &ChartSpec,
        pin: &ChartPin,
    ) -> Result<Vec<u8>, ResolveError> {
        let ChartPin::Helm(pin) = pin else {
            return Err(missing("chart", name, "OCI registry"));
        };
        self.ask("chart", name, format!("archive {name} {}", pin.version))?;
        self.charts
            .get(name.as_str())
            .and_then(|v| v.get(&pin.version))
            .map(|a| a.bytes.clone())
            .ok_or_else(|| missing("chart", name, "such archive"))
    }

    async fn latest_revision(&self, name: &Name, id: u64) -> Result<u64, ResolveError> {
        self.ask("dashboard", name, format!("latest {id}"))?;
        self.grafana
            .get(&id)
            .and_then(|revs| revs.keys().max().copied())
            .ok_or_else(|| missing("dashboard", name, "such grafana.com dashboard"))
    }

    async fn grafana_revision(
        &self,
        name: &Name,
        id: u64,
        revision: u64,
    ) -> Result<(Vec<u8>, String), ResolveError> {
        self.ask("dashboard", name, format!("revision {id} {revision}"))?;
        let bytes = self
            .grafana
            .get(&id)
            .and_then(|revs| revs.get(&revision))
            .ok_or_else(|| missing("dashboard", name, "such revision"))?;
        Ok((bytes.clone(), title(bytes)))
    }

    async fn url_dashboard(
        &self,
        name: &Name,
        url: &str,
    ) -> Result<(Vec<u8>, String), ResolveError> {
        self.ask("dashboard", name, format!("url {url}"))?;
        let bytes = self
            .urls
            .get(url)
            .ok_or_else(|| missing("dashboard", name, "such URL"))?;
        Ok((bytes.clone(), title(bytes)))
    }
}
