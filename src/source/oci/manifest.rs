//! The manifest of a tag: fetched with explicit accept types, checked against its digest, and read as a Helm chart.

use super::*;

impl<'a> Ctx<'a> {
    /// Fetches the manifest of `tag` and checks it is a Helm chart.
    pub(super) async fn pin_tag(&self, tag: &str) -> Result<OciPin, InputError> {
        let (body, digest) = self.manifest(tag, tag).await?;
        let doc = self.parse_manifest(&body, tag)?;
        let (digest, doc) = match doc.manifests {
            Some(entries) => self.chart_in_index(&entries, tag).await?,
            None => (digest, doc),
        };
        let config_type = doc
            .config
            .as_ref()
            .map(|c| c.media_type.as_str())
            .unwrap_or("none");
        if config_type != HELM_CONFIG_MEDIA_TYPE {
            return Err(self.not_a_chart(
                tag,
                format!("its config media type is {config_type}, not {HELM_CONFIG_MEDIA_TYPE}"),
            ));
        }
        let layers = doc.layers.unwrap_or_default();
        let (layer, layer_digest, size) = self.chart_layer(&layers, tag)?;
        Ok(OciPin {
            location: self.location.clone(),
            tag: tag.to_string(),
            version: tag.replace('_', "+"),
            digest,
            layer_digest,
            layer_size: size,
            layer_media_type: layer.media_type.clone(),
        })
    }

    /// The manifest an image index points at for a Helm chart, and its digest: the entry whose
    /// `artifactType` is Helm's config type (or the only entry), never one chosen by platform.
    async fn chart_in_index(
        &self,
        entries: &[IndexEntry],
        tag: &str,
    ) -> Result<(String, ManifestDoc), InputError> {
        let entry = entries
            .iter()
            .find(|e| e.artifact_type.as_deref() == Some(HELM_CONFIG_MEDIA_TYPE))
            .or_else(|| (entries.len() == 1).then(|| &entries[0]))
            .ok_or_else(|| {
                self.not_a_chart(
                    tag,
                    "an image index with no entry of artifactType ".to_string()
                        + HELM_CONFIG_MEDIA_TYPE,
                )
            })?;
        if !entry.digest.starts_with("sha256:") {
            return Err(self.not_a_chart(
                tag,
                format!("the index entry's digest {} is not sha256", entry.digest),
            ));
        }
        let (body, digest) = self.manifest(&entry.digest, tag).await?;
        let doc = self.parse_manifest(&body, tag)?;
        if doc.manifests.is_some() {
            return Err(self.not_a_chart(tag, "an image index inside an image index".into()));
        }
        Ok((digest, doc))
    }

    /// The chart layer (picked by media type, never by position), its sha256 and its size, which must
    /// be within [`MAX_CHART_BYTES`].
    fn chart_layer<'d>(
        &self,
        layers: &'d [Descriptor],
        tag: &str,
    ) -> Result<(&'d Descriptor, String, u64), InputError> {
        let layer = layers
            .iter()
            .find(|l| l.media_type == HELM_CHART_MEDIA_TYPE)
            .or_else(|| {
                layers
                    .iter()
                    .find(|l| l.media_type == LEGACY_CHART_MEDIA_TYPE)
            })
            .ok_or_else(|| {
                self.not_a_chart(
                    tag,
                    format!("no layer of media type {HELM_CHART_MEDIA_TYPE}"),
                )
            })?;
        let layer_digest = digest::normalize_sha256(&layer.digest)
            .filter(|_| layer.digest.starts_with("sha256:"))
            .ok_or_else(|| {
                self.not_a_chart(
                    tag,
                    format!("the chart layer's digest {} is not sha256", layer.digest),
                )
            })?;
        let size = u64::try_from(layer.size)
            .map_err(|_| self.not_a_chart(tag, "the chart layer has a negative size".into()))?;
        if size > MAX_CHART_BYTES {
            return Err(self.error(Kind::TooLarge(Limit::Layer {
                tag: tag.to_string(),
                size,
                limit: MAX_CHART_BYTES,
            })));
        }
        Ok((layer, layer_digest, size))
    }

    /// The raw manifest of `reference` (a tag, or a `sha256:` digest) and its sha256, checked against
    /// the digest asked for or, for a tag, the one the registry states. Read up to
    /// [`MAX_MANIFEST_BYTES`] while it streams. A manifest by digest never changes (a remembered one
    /// needs no request); a tag's can, so online it is always asked (see [`Access::immutable`] and
    /// [`Access::mutable`]).
    pub(super) async fn manifest(
        &self,
        reference: &str,
        tag: &str,
    ) -> Result<(Vec<u8>, String), InputError> {
        let offline = |e| self.uncached(e, format!("the manifest of {tag}"));
        let body = if reference.starts_with("sha256:") {
            let key = format!("oci-manifest:{}@{reference}", self.canonical);
            let fetch = |net| async move {
                let (body, _) = self.fetch_manifest(net, reference, tag).await?;
                Ok(body)
            };
            let body = self.access.immutable(&key, fetch).await.map_err(offline)?;
            // A remembered manifest is checked as a fetched one is.
            self.check_manifest(body, Some(reference.to_string()))?
        } else {
            let key = format!("oci-manifest:{}:{tag}", self.canonical);
            let fetch = |net| self.fetch_manifest(net, reference, tag);
            let (body, _) = self.access.mutable(&key, fetch).await.map_err(offline)?;
            body
        };
        let actual = digest::sha256(&body);
        Ok((body, actual))
    }

    /// One GET of the manifest of `reference`, checked against the digest asked for or the one the
    /// registry states (returned too).
    async fn fetch_manifest(
        &self,
        net: &'a crate::source::Net,
        reference: &str,
        tag: &str,
    ) -> Result<(Vec<u8>, Option<String>), InputError> {
        let url = self.api_url(net, &format!("manifests/{reference}"));
        let result = self
            .call(net, |net| {
                self.get_once(net, &url, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES)
            })
            .await;
        let answer = match result {
            Ok(answer) => answer,
            Err(failed) if failed.error.is_missing() => {
                return Err(self.error(Kind::NotFound(Missing::Tag(tag.to_string()))))
            }
            Err(failed) => return Err(self.named("fetching the manifest", failed)),
        };
        let stated = answer
            .headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let expected = if reference.starts_with("sha256:") {
            Some(reference.to_string())
        } else {
            stated.clone()
        };
        Ok((self.check_manifest(answer.body, expected)?, stated))
    }

    /// `body`, unless it does not hash to `expected` (a `sha256:` digest; other algorithms are not
    /// checked).
    fn check_manifest(
        &self,
        body: Vec<u8>,
        expected: Option<String>,
    ) -> Result<Vec<u8>, InputError> {
        let actual = digest::sha256(&body);
        if let Some(expected) = expected.filter(|e| e.starts_with("sha256:") && *e != actual) {
            return Err(self.error(Kind::DigestMismatch {
                what: "manifest",
                expected,
                actual,
            }));
        }
        Ok(body)
    }

    pub(super) fn parse_manifest(&self, body: &[u8], tag: &str) -> Result<ManifestDoc, InputError> {
        serde_json::from_slice(body)
            .map_err(|e| self.not_a_chart(tag, format!("the manifest is not valid JSON: {e}")))
    }

    pub(super) fn not_a_chart(&self, tag: &str, why: String) -> InputError {
        self.error(Kind::NotAChart {
            tag: tag.to_string(),
            why,
        })
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ManifestDoc {
    pub(super) config: Option<Descriptor>,
    pub(super) layers: Option<Vec<Descriptor>>,
    pub(super) manifests: Option<Vec<IndexEntry>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Descriptor {
    #[serde(rename = "mediaType")]
    pub(super) media_type: String,
    pub(super) digest: String,
    pub(super) size: i64,
}

#[derive(Debug, Deserialize)]
pub(super) struct IndexEntry {
    pub(super) digest: String,
    #[serde(rename = "artifactType")]
    pub(super) artifact_type: Option<String>,
}
