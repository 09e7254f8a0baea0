//! Charts: which version answers a requirement (an OCI registry's tags, a Helm repository's
//! index.yaml), and its archive, which must be the locked bytes when the lock pins the same version.

use super::upstream::{ChartPin, Upstream};
use super::{cached_off_runtime, changed, put_off_runtime, typed, ResolveError, Run};
use crate::digest;
use crate::lock::LockedChart;
use crate::manifest::{ChartSpec, Name};
use crate::source::helm_repo::HelmPin;
use crate::source::oci::{self, OciPin};
use crate::source::InputErrorKind;
use crate::version_req::VersionReq;

impl<U: Upstream> Run<'_, U> {
    /// The version of `spec`'s source that meets `req`.
    pub(super) async fn resolve_chart(
        &self,
        name: &Name,
        spec: &ChartSpec,
        req: &VersionReq,
    ) -> Result<ChartPin, ResolveError> {
        self.upstream
            .chart_pin(name, spec, req, &self.warnings)
            .await
    }

    /// The chart's entry. When the lock already pins the same version from the same source, the bytes
    /// must be the locked ones (and are not downloaded at all when cached); a difference is an error, even
    /// under `--update`: a version's content must never change.
    pub(super) async fn finish_chart(
        &self,
        name: &Name,
        spec: &ChartSpec,
        pin: ChartPin,
    ) -> Result<LockedChart, ResolveError> {
        match &pin {
            ChartPin::Oci(oci) => self.finish_oci(name, spec, oci, &pin).await,
            ChartPin::Helm(helm) => self.finish_helm(name, spec, helm, &pin).await,
        }
    }

    /// The locked entry of `name` that pins `version` from the same source, unless its content may
    /// change (`--accept-changed`).
    fn same_pin(&self, name: &Name, spec: &ChartSpec, version: &str) -> Option<&LockedChart> {
        let canonical = spec.source.canonical();
        self.old_chart(name)
            .filter(|o| o.source == canonical && o.version == version)
            .filter(|_| !self.accepts_changed(name))
    }

    /// `pin` is `oci` as the upstream takes it back for the download.
    async fn finish_oci(
        &self,
        name: &Name,
        spec: &ChartSpec,
        oci: &OciPin,
        pin: &ChartPin,
    ) -> Result<LockedChart, ResolveError> {
        let store = self.upstream.store();
        let requirement = spec.version.as_str().to_string();
        let version = &oci.version;
        // Content that differs from the lock under the same version: never re-pinned silently.
        let changed_under_pin = |locked: String, fetched: String| {
            changed("chart", name, format!("version {version}"), locked, fetched)
        };
        if let Some(o) = self.same_pin(name, spec, version) {
            if o.digest != oci.digest {
                return Err(changed_under_pin(
                    format!("manifest digest {}", o.digest),
                    format!("manifest digest {}", oci.digest),
                ));
            }
            let kept = LockedChart {
                requirement,
                layer_digest: Some(typed(name, oci.layer_digest.clone())?),
                ..o.clone()
            };
            if !cached_off_runtime(store, &o.blake3).await? {
                let archive = self.upstream.chart_archive(name, spec, pin).await?;
                let (blake3, _) = put_off_runtime(store, archive).await?;
                if blake3 != o.blake3 {
                    return Err(changed_under_pin(
                        format!("blake3 {}", o.blake3),
                        format!("blake3 {blake3}"),
                    ));
                }
            }
            return Ok(kept);
        }
        let archive = self.upstream.chart_archive(name, spec, pin).await?;
        let (blake3, _) = put_off_runtime(store, archive).await?;
        Ok(LockedChart {
            name: name.clone(),
            source: spec.source.canonical(),
            requirement,
            version: oci.version.clone(),
            digest: typed(name, oci.digest.clone())?,
            layer_digest: Some(typed(name, oci.layer_digest.clone())?),
            layer_media_type: (oci.layer_media_type != oci::HELM_CHART_MEDIA_TYPE)
                .then(|| oci.layer_media_type.clone()),
            url: None,
            unverified: false,
            blake3: typed(name, blake3)?,
        })
    }

    /// `pin` is `helm` as the upstream takes it back for the download.
    async fn finish_helm(
        &self,
        name: &Name,
        spec: &ChartSpec,
        helm: &HelmPin,
        pin: &ChartPin,
    ) -> Result<LockedChart, ResolveError> {
        let store = self.upstream.store();
        let requirement = spec.version.as_str().to_string();
        let version = &helm.version;
        // Content that differs from the lock under the same version: never re-pinned silently.
        let changed_under_pin = |locked: String, fetched: String| {
            changed("chart", name, format!("version {version}"), locked, fetched)
        };
        let unverified = helm.stated_digest.is_none();
        if let Some(o) = self.same_pin(name, spec, version) {
            if let Some(stated) = helm.stated_digest.as_deref().filter(|d| *d != o.digest) {
                return Err(changed_under_pin(
                    o.digest.to_string(),
                    format!("{stated} (as its index.yaml states)"),
                ));
            }
            let kept = LockedChart {
                requirement,
                url: Some(helm.canonical_url.clone()),
                unverified,
                ..o.clone()
            };
            if !cached_off_runtime(store, &o.blake3).await? {
                let bytes = match self.upstream.chart_archive(name, spec, pin).await {
                    Err(ResolveError::Input(e)) => match *e.kind {
                        InputErrorKind::DigestMismatch { actual, .. } => {
                            return Err(changed_under_pin(o.digest.to_string(), actual))
                        }
                        _ => return Err(ResolveError::Input(e)),
                    },
                    other => other?,
                };
                let sha256 = digest::sha256(&bytes);
                let (blake3, _) = put_off_runtime(store, bytes).await?;
                if blake3 != o.blake3 || sha256 != o.digest {
                    return Err(changed_under_pin(
                        format!("blake3 {}", o.blake3),
                        format!("blake3 {blake3}"),
                    ));
                }
            }
            return Ok(kept);
        }
        let bytes = self.upstream.chart_archive(name, spec, pin).await?;
        let sha256 = digest::sha256(&bytes);
        let (blake3, _) = put_off_runtime(store, bytes).await?;
        Ok(LockedChart {
            name: name.clone(),
            source: spec.source.canonical(),
            requirement,
            version: helm.version.clone(),
            digest: typed(name, sha256)?,
            layer_digest: None,
            layer_media_type: None,
            url: Some(helm.canonical_url.clone()),
            unverified,
            blake3: typed(name, blake3)?,
        })
    }
}
