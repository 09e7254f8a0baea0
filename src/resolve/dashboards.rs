//! Dashboards: which grafana.com revision (or URL) a dashboard is pinned to, and its bytes, which must
//! be the locked ones when the lock pins the same revision or URL.

use super::plan::requested_revision;
use super::upstream::Upstream;
use super::{changed, put_off_runtime, typed, ResolveError, Run};
use crate::digest;
use crate::lock::{vendor_path, LockedDashboard};
use crate::manifest::{DashboardSource, DashboardSpec, Name};

/// What to download for a dashboard.
pub(super) enum DashStep {
    Grafana {
        id: u64,
        revision: u64,
    },
    /// `verify`: a sticky pin whose bytes must be fetched again and must not have changed.
    Url {
        url: String,
        verify: Option<LockedDashboard>,
    },
}

impl<U: Upstream> Run<'_, U> {
    /// Which revision (or URL) to download; `refetch` is a sticky pin whose bytes are needed again.
    pub(super) async fn resolve_dashboard(
        &self,
        name: &Name,
        spec: &DashboardSpec,
        refetch: Option<LockedDashboard>,
    ) -> Result<DashStep, ResolveError> {
        match &spec.source {
            DashboardSource::GrafanaCom { id, revision } => {
                // A sticky pin keeps its revision; otherwise the metadata says which revision is the
                // latest. The title is read from the downloaded revision itself.
                let pinned = refetch.and_then(|l| l.revision).or(*revision);
                let revision = match pinned {
                    Some(r) => r,
                    None => self.upstream.latest_revision(name, *id).await?,
                };
                Ok(DashStep::Grafana { id: *id, revision })
            }
            DashboardSource::Url { url } => Ok(DashStep::Url {
                url: url.clone(),
                verify: refetch,
            }),
        }
    }

    /// Returns the entry and its bytes. A grafana.com revision or a sticky URL pin whose
    /// bytes differ from the lock is an error.
    pub(super) async fn finish_dashboard(
        &self,
        name: &Name,
        spec: &DashboardSpec,
        step: DashStep,
    ) -> Result<(LockedDashboard, Vec<u8>), ResolveError> {
        let store = self.upstream.store();
        let canonical = spec.source.canonical();
        let path = vendor_path(name);
        let (bytes, grafana_com, revision, title) = match step {
            DashStep::Grafana { id, revision } => {
                // The title of the pinned revision, not of the latest (grafana.com's `name`).
                let (bytes, title) = self.upstream.grafana_revision(name, id, revision).await?;
                let blake3 = digest::blake3(&bytes);
                let same = self
                    .old_dashboard(name)
                    .filter(|o| o.source == canonical && o.revision == Some(revision))
                    .filter(|_| !self.accepts_changed(name));
                if let Some(o) = same.filter(|o| o.blake3 != blake3) {
                    return Err(changed(
                        "dashboard",
                        name,
                        format!("grafana.com revision {revision}"),
                        format!("blake3 {}", o.blake3),
                        format!("blake3 {blake3}"),
                    ));
                }
                (bytes, Some(id), Some(revision), title)
            }
            DashStep::Url { url, verify } => {
                let (bytes, title) = self.upstream.url_dashboard(name, &url).await?;
                let blake3 = digest::blake3(&bytes);
                if let Some(o) = verify.filter(|o| o.blake3 != blake3) {
                    return Err(changed(
                        "dashboard",
                        name,
                        format!("URL {}", crate::http::redact_str(&url)),
                        format!("blake3 {}", o.blake3),
                        format!("blake3 {blake3}"),
                    ));
                }
                (bytes, None, None, title)
            }
        };
        let (blake3, bytes) = put_off_runtime(store, bytes).await?;
        let entry = LockedDashboard {
            name: name.clone(),
            source: canonical,
            grafana_com,
            revision,
            requested_revision: requested_revision(spec),
            title,
            path,
            digest: typed(name, digest::sha256(&bytes))?,
            blake3: typed(name, blake3)?,
        };
        Ok((entry, bytes))
    }
}
