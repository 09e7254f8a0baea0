//! Charts: which version answers a requirement (an OCI registry's tags, a Helm repository's
//! index.yaml), and its archive, which must be the locked bytes when the lock pins the same version.

use std::rc::Rc;

use super::{changed, typed, ResolveError, Run};
use crate::lock::LockedChart;
use crate::manifest::{ChartSource, ChartSpec, Name};
use crate::source::helm_repo::{self, HelmError, HelmPin, RepoIndex};
use crate::source::oci::{self, OciPin};
use crate::version_req::VersionReq;

/// A repository's index.yaml, fetched by whichever chart asks first; the error is shared as text.
pub(super) type IndexCell = Rc<tokio::sync::OnceCell<Result<Rc<RepoIndex>, String>>>;

/// The version a requirement resolved to, with what its source says about it.
pub(super) enum ChartPin {
    Oci(OciPin),
    Helm(HelmPin),
}

fn oci_url(spec: &ChartSpec) -> Option<&str> {
    match &spec.source {
        ChartSource::Oci { url } => Some(url),
        ChartSource::Repo { .. } => None,
    }
}

impl Run<'_> {
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

    /// The version of `spec`'s source that meets `req`.
    pub(super) async fn resolve_chart(
        &self,
        name: &Name,
        spec: &ChartSpec,
        req: &VersionReq,
    ) -> Result<ChartPin, ResolveError> {
        let input = name.as_str();
        match &spec.source {
            ChartSource::Oci { url } => {
                let ctx = oci::Ctx::new(self.access, input, url);
                let (pin, warnings) = ctx.resolve(req).await?;
                self.warnings.borrow_mut().extend(warnings);
                Ok(ChartPin::Oci(pin))
            }
            ChartSource::Repo { url, .. } => Ok(ChartPin::Helm(
                self.select_helm(name, url, spec, req).await?,
            )),
        }
    }

    async fn select_helm(
        &self,
        name: &Name,
        repo: &str,
        spec: &ChartSpec,
        req: &VersionReq,
    ) -> Result<HelmPin, ResolveError> {
        let input = name.as_str();
        let index = self.index(repo).await.map_err(|err| HelmError::Index {
            input: input.into(),
            err,
        })?;
        let chart = spec.source.chart_name();
        let selected = helm_repo::select(&self.access, input, repo, chart, &index, req);
        // The skipped entries matter most when nothing matched: they are printed with the error too.
        let warnings = match &selected {
            Ok((_, warnings)) => warnings.clone(),
            Err(_) => index.entries(chart).map(|(_, w)| w).unwrap_or_default(),
        };
        self.warnings.borrow_mut().extend(
            warnings
                .into_iter()
                .map(|w| format!("chart `{input}`: {repo}/{w}")),
        );
        Ok(selected?.0)
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
        match pin {
            ChartPin::Oci(pin) => self.finish_oci(name, spec, pin).await,
            ChartPin::Helm(pin) => self.finish_helm(name, spec, pin).await,
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

    async fn finish_oci(
        &self,
        name: &Name,
        spec: &ChartSpec,
        pin: OciPin,
    ) -> Result<LockedChart, ResolveError> {
        let input = name.as_str();
        let store = self.access.store();
        let canonical = spec.source.canonical();
        let requirement = spec.version.as_str().to_string();
        let version = pin.version.clone();
        // Content that differs from the lock under the same version: never re-pinned silently.
        let changed_under_pin = |locked: String, fetched: String| {
            changed("chart", name, format!("version {version}"), locked, fetched)
        };
        let same = self.same_pin(name, spec, &version);
        let ctx = oci::Ctx::new(self.access, input, oci_url(spec).expect("an OCI chart"));
        if let Some(o) = same {
            if o.digest != pin.digest {
                return Err(changed_under_pin(
                    format!("manifest digest {}", o.digest),
                    format!("manifest digest {}", pin.digest),
                ));
            }
            let kept = LockedChart {
                requirement,
                layer_digest: Some(typed(name, pin.layer_digest.clone())?),
                ..o.clone()
            };
            if !store.contains(&o.blake3)? {
                let blake3 = store.put(&ctx.download(&pin).await?)?;
                if blake3 != o.blake3 {
                    return Err(changed_under_pin(
                        format!("blake3 {}", o.blake3),
                        format!("blake3 {blake3}"),
                    ));
                }
            }
            return Ok(kept);
        }
        let blake3 = store.put(&ctx.download(&pin).await?)?;
        Ok(LockedChart {
            name: name.clone(),
            source: canonical,
            requirement,
            version: pin.version,
            digest: typed(name, pin.digest)?,
            layer_digest: Some(typed(name, pin.layer_digest)?),
            layer_media_type: (pin.layer_media_type != oci::HELM_CHART_MEDIA_TYPE)
                .then_some(pin.layer_media_type),
            url: None,
            unverified: false,
            blake3: typed(name, blake3)?,
        })
    }

    async fn finish_helm(
        &self,
        name: &Name,
        spec: &ChartSpec,
        pin: HelmPin,
    ) -> Result<LockedChart, ResolveError> {
        let input = name.as_str();
        let store = self.access.store();
        let canonical = spec.source.canonical();
        let requirement = spec.version.as_str().to_string();
        let version = pin.version.clone();
        // Content that differs from the lock under the same version: never re-pinned silently.
        let changed_under_pin = |locked: String, fetched: String| {
            changed("chart", name, format!("version {version}"), locked, fetched)
        };
        let same = self.same_pin(name, spec, &version);
        if let Some(o) = same {
            if let Some(stated) = pin.stated_digest.as_deref().filter(|d| *d != o.digest) {
                return Err(changed_under_pin(
                    format!("sha256 {}", o.digest),
                    format!("sha256 {stated} (as its index.yaml states)"),
                ));
            }
            let kept = LockedChart {
                requirement,
                url: Some(pin.canonical_url.clone()),
                unverified: pin.stated_digest.is_none(),
                ..o.clone()
            };
            if !store.contains(&o.blake3)? {
                let (bytes, sha256) = match helm_repo::download(&self.access, input, &pin).await {
                    Err(HelmError::Digest { actual, .. }) => {
                        return Err(changed_under_pin(
                            format!("sha256 {}", o.digest),
                            format!("sha256 {actual}"),
                        ))
                    }
                    other => other?,
                };
                let blake3 = store.put(&bytes)?;
                if blake3 != o.blake3 || sha256 != o.digest {
                    return Err(changed_under_pin(
                        format!("blake3 {}", o.blake3),
                        format!("blake3 {blake3}"),
                    ));
                }
            }
            return Ok(kept);
        }
        let (bytes, sha256) = helm_repo::download(&self.access, input, &pin).await?;
        let blake3 = store.put(&bytes)?;
        let unverified = pin.stated_digest.is_none();
        Ok(LockedChart {
            name: name.clone(),
            source: canonical,
            requirement,
            version: pin.version,
            digest: typed(name, sha256)?,
            layer_digest: None,
            layer_media_type: None,
            url: Some(pin.canonical_url),
            unverified,
            blake3: typed(name, blake3)?,
        })
    }
}
