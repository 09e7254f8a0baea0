//! Helm charts in OCI registries, through oci-client: list tags, choose a version with Helm's rules, fetch
//! the manifest and check it is a Helm chart, then download the chart layer and verify its sha256 and
//! size. Every call is bounded by a timeout and retried on transient failures.
//!
//! Pitfalls handled here (see shared/upstream/oci/PITFALLS.md): tag lists are paged by hand and the loop
//! stops when a page adds nothing (docker-registry 2.8 ignores `n`/`last`); the manifest is fetched with
//! explicit OCI and Docker accept types (docker-registry 404s an OCI manifest otherwise); the chart layer is
//! picked by media type, never by position; `pull_blob` checks neither size nor digest before writing, so
//! blobs are collected in memory up to the descriptor's size and verified before anyone sees them.

use std::collections::BTreeSet;
use std::future::Future;

use futures_util::StreamExt as _;
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{
    OciDescriptor, IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use serde::Deserialize;

use super::{Access, OciLocation};
use crate::digest;
use crate::http::is_loopback_host;
use crate::http::{error_chain, retry, Retry};
use crate::version_req::{parse_oci_tag, version_to_tag, VersionReq};

pub const HELM_CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.helm.config.v1+json";
pub const HELM_CHART_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
pub const LEGACY_CHART_MEDIA_TYPE: &str = "application/tar+gzip";
/// The largest chart archive accepted (Flux allows 10 MiB; big charts such as kube-prometheus-stack
/// stay well under this).
pub const MAX_CHART_BYTES: u64 = 20 << 20;
/// The largest manifest accepted: a Helm chart manifest is about a kilobyte.
const MAX_MANIFEST_BYTES: usize = 4 << 20;
const TAG_PAGE_SIZE: usize = 1000;
/// How many candidate tags that are not Helm charts (images pushed to the chart's repository) are
/// skipped before resolution gives up: each costs a manifest request.
const MAX_SKIPPED_CANDIDATES: usize = 10;
/// How many tags a repository may have. The bound is on tags, not pages, because a registry may cap
/// pages well below the `n` asked for (ghcr.io returns 100); reaching it is an error, never a silently
/// shortened list that would resolve to an older version.
const MAX_TAGS: usize = 100_000;
/// Tag list pages followed at most: a registry that adds one tag per page would otherwise be followed
/// for as many requests as it has tags.
const MAX_TAG_PAGES: usize = 1000;

const MANIFEST_ACCEPT: &[&str] = &[
    OCI_IMAGE_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("chart `{input}`: {location}: {message}")]
    Registry {
        input: String,
        location: String,
        message: String,
    },
    #[error("chart `{input}`: {location}: the registry refused the credentials for {registry} (unauthorized: {message}); check STACK_REGISTRY_AUTH or ~/.docker/config.json")]
    CredentialsRefused {
        input: String,
        location: String,
        registry: String,
        message: String,
    },
    #[error("chart `{input}`: {location}: the registry wants credentials (unauthorized: {message}); set STACK_REGISTRY_AUTH=\"{registry}=user:password\" or run `docker login {registry}`")]
    NeedsCredentials {
        input: String,
        location: String,
        registry: String,
        message: String,
    },
    #[error("chart `{input}`: {location}: no such repository in the registry (NAME_UNKNOWN)\nhelp: check `oci` of [charts.{input}] in stack.toml, or the mirror it is fetched through")]
    NoRepository { input: String, location: String },
    #[error("chart `{input}`: {location}: no tag matches \"{requirement}\" ({found})\nhelp: change `version` of [charts.{input}] in stack.toml to a version the registry has (`stack outdated` lists them)")]
    NoMatch {
        input: String,
        location: String,
        requirement: String,
        found: String,
    },
    #[error("chart `{input}`: {location}:{tag} not found")]
    TagNotFound {
        input: String,
        location: String,
        tag: String,
    },
    #[error("chart `{input}`: {location}:{tag} is not a Helm chart: {why}\nhelp: check `oci` and `version` of [charts.{input}] in stack.toml: the repository may hold the project's images beside (or instead of) its chart")]
    NotAChart {
        input: String,
        location: String,
        tag: String,
        why: String,
    },
    #[error("chart `{input}`: {location}:{tag}: the chart layer is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        input: String,
        location: String,
        tag: String,
        size: u64,
        limit: u64,
    },
    #[error("chart `{input}`: {location}: {what} digest mismatch: expected {expected}, the bytes hash to {actual}; the registry or a proxy served wrong content")]
    Digest {
        input: String,
        location: String,
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error("chart `{input}`: {location}: the registry sent more than the {expected} bytes the manifest states for the chart layer")]
    Oversized {
        input: String,
        location: String,
        expected: u64,
    },
    #[error("chart `{input}`: {location}: the chart layer was truncated: {received} of {expected} bytes")]
    Truncated {
        input: String,
        location: String,
        received: u64,
        expected: u64,
    },
    #[error("chart `{input}`: {location}: {what} timed out after {secs}s{}; raise STACK_HTTP_TIMEOUT_SECS if the registry is slow", attempts_note(*.attempts))]
    Timeout {
        input: String,
        location: String,
        what: &'static str,
        secs: f64,
        attempts: u32,
    },
    #[error("chart `{input}`: {location}: {what} failed: {message}{}\nhelp: check that the registry is up and reachable from here (or fetch through a `[mirrors]` entry), then run `stack lock` again; nothing was changed", attempts_note(*.attempts))]
    Transport {
        input: String,
        location: String,
        what: &'static str,
        message: String,
        attempts: u32,
    },
    #[error("chart `{input}`: {what} of {canonical} is not in the content cache, and --offline forbids fetching it; run `stack lock` without --offline")]
    Offline {
        input: String,
        canonical: String,
        what: String,
    },
    #[error("content cache: {0}")]
    Cache(String),
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (gave up after {attempts} attempts)")
    } else {
        String::new()
    }
}

/// A chart version chosen in a registry: what the lock records, and what is needed to download it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciPin {
    pub location: OciLocation,
    pub tag: String,
    /// The tag with `_` read as `+`.
    pub version: String,
    /// sha256 of the manifest bytes: what Flux's `OCIRepository.spec.ref.digest` pins.
    pub digest: String,
    pub layer_digest: String,
    pub layer_size: u64,
    pub layer_media_type: String,
}

/// One chart input being resolved, for error messages and authentication.
pub struct Ctx<'a> {
    access: Access<'a>,
    input: String,
    /// `oci://registry/path/chart` as in stack.toml: the cache keys use it, never the mirror.
    canonical: String,
    location: OciLocation,
    auth: RegistryAuth,
}

/// What went wrong in one oci-client call, before it is named.
enum CallError {
    Oci(OciDistributionError),
    Timeout,
}

impl<'a> Ctx<'a> {
    pub fn new(access: Access<'a>, input: &str, canonical: &str) -> Ctx<'a> {
        let location = access.mirrors().oci(canonical);
        let auth = access
            .net()
            .and_then(|net| net.auth.lookup_registry(&location.registry))
            // Never over plain HTTP off loopback (an `insecure = true` mirror).
            .filter(|_| !location.plain_http || location.is_loopback())
            .map(|c| c.to_registry_auth())
            .unwrap_or(RegistryAuth::Anonymous);
        Ctx {
            access,
            input: input.to_string(),
            canonical: canonical.to_string(),
            location,
            auth,
        }
    }

    fn offline(&self, what: impl Into<String>) -> OciError {
        OciError::Offline {
            input: self.input.clone(),
            canonical: self.canonical.clone(),
            what: what.into(),
        }
    }

    fn cache_error(&self, e: crate::store::StoreError) -> OciError {
        OciError::Cache(format!("{}: {e}", self.input))
    }

    fn cached(&self, key: &str) -> Result<Option<Vec<u8>>, OciError> {
        self.access.cached(key).map_err(|e| self.cache_error(e))
    }

    fn remember(&self, key: &str, body: &[u8]) -> Result<(), OciError> {
        self.access
            .remember(key, body)
            .map_err(|e| self.cache_error(e))
    }

    fn reference(&self, tag: &str) -> Reference {
        Reference::with_tag(
            self.location.registry.clone(),
            self.location.repository.clone(),
            tag.to_string(),
        )
    }

    fn shown(&self) -> String {
        self.location.to_string()
    }

    /// Runs one oci-client call with the request timeout and retries.
    async fn call<T, F, Fut>(&self, what: &'static str, mut f: F) -> Result<T, OciError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, OciDistributionError>>,
    {
        let net = self.access.net().expect("only called online");
        let timeout = net.http.timeouts.request;
        let result = retry(
            net.http.policy,
            || {
                let fut = f();
                async move {
                    match tokio::time::timeout(timeout, fut).await {
                        Ok(Ok(v)) => Ok(v),
                        Ok(Err(e)) => Err(CallError::Oci(e)),
                        Err(_) => Err(CallError::Timeout),
                    }
                }
            },
            |e| match e {
                CallError::Timeout => Retry::Backoff,
                CallError::Oci(e) if transient(e) => Retry::Backoff,
                CallError::Oci(_) => Retry::No,
            },
        )
        .await;
        result.map_err(|(e, attempts)| self.name_error(what, e, attempts, timeout.as_secs_f64()))
    }

    fn name_error(&self, what: &'static str, e: CallError, attempts: u32, secs: f64) -> OciError {
        let (input, location) = (self.input.clone(), self.shown());
        let e = match e {
            CallError::Timeout => {
                return OciError::Timeout {
                    input,
                    location,
                    what,
                    secs,
                    attempts,
                }
            }
            CallError::Oci(e) => e,
        };
        let unauthorized = |message: String| {
            let registry = self.location.registry.clone();
            if self.auth == RegistryAuth::Anonymous {
                OciError::NeedsCredentials {
                    input: input.clone(),
                    location: location.clone(),
                    registry,
                    message,
                }
            } else {
                OciError::CredentialsRefused {
                    input: input.clone(),
                    location: location.clone(),
                    registry,
                    message,
                }
            }
        };
        match &e {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => unauthorized(describe(&e)),
            OciDistributionError::RegistryError { envelope, .. }
                if envelope.errors.iter().any(|x| {
                    matches!(x.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)
                }) =>
            {
                unauthorized(describe(&e))
            }
            OciDistributionError::RegistryError { envelope, .. }
                if envelope
                    .errors
                    .iter()
                    .any(|x| matches!(x.code, OciErrorCode::NameUnknown)) =>
            {
                OciError::NoRepository { input, location }
            }
            OciDistributionError::RequestError(_) | OciDistributionError::ServerError { .. }
                if transient(&e) =>
            {
                OciError::Transport {
                    input,
                    location,
                    what,
                    message: format!("{}: {}", transport_kind(&e), describe(&e)),
                    attempts,
                }
            }
            _ => OciError::Registry {
                input,
                location,
                message: format!("{what} failed: {}", describe(&e)),
            },
        }
    }

    /// Authenticates first, so a refused credential or token request is reported as such (oci-client
    /// swallows token errors on later calls).
    pub async fn authenticate(&self) -> Result<(), OciError> {
        let Some(net) = self.access.net() else {
            return Ok(());
        };
        if self.auth != RegistryAuth::Anonymous {
            self.check_realm(net).await?;
        }
        let reference = self.reference("latest");
        // oci-client authenticates by first asking `GET /v2/`: a failure here is usually not about
        // credentials at all (a refused connection, a name that does not resolve), so say what it was.
        self.call("contacting the registry", || {
            net.oci
                .auth(&reference, &self.auth, RegistryOperation::Pull)
        })
        .await?;
        Ok(())
    }

    /// Credentials go to the token realm the registry names (oci-client follows its challenge), so a
    /// realm over plain HTTP on a host that is not loopback is refused before any credential is sent.
    async fn check_realm(&self, net: &super::Net) -> Result<(), OciError> {
        let scheme = if self.location.plain_http {
            "http"
        } else {
            "https"
        };
        let Ok(probe) = url::Url::parse(&format!("{scheme}://{}/v2/", self.location.registry))
        else {
            return Ok(());
        };
        let Some(realm) = net.http.bearer_realm(&probe).await else {
            return Ok(());
        };
        let plain_elsewhere = match url::Url::parse(&realm) {
            Ok(u) => u.scheme() != "https" && !u.host_str().is_some_and(is_loopback_host),
            Err(_) => true,
        };
        if plain_elsewhere {
            return Err(OciError::Registry {
                input: self.input.clone(),
                location: self.location.to_string(),
                message: format!(
                    "the registry's token realm {} is not HTTPS and not on loopback, so its credentials were not sent; use the registry over HTTPS",
                    crate::http::redact_str(&realm)
                ),
            });
        }
        Ok(())
    }

    /// Chooses a version: an exact requirement is tried as a tag first (as Helm does), else the tags are
    /// listed and the highest match wins. Only tags Helm's registry client reads as chart versions are
    /// candidates (strict `MAJOR.MINOR.PATCH`, see [`parse_oci_tag`]), so image tags such as `v1.6.0`
    /// next to chart tags are not; a candidate that turns out not to be a Helm chart is skipped with a
    /// warning (returned) and the next highest is tried.
    pub async fn resolve(&self, req: &VersionReq) -> Result<(OciPin, Vec<String>), OciError> {
        self.authenticate().await?;
        if let Some(version) = req.exact() {
            match self.pin_tag(&version_to_tag(&version)).await {
                Err(OciError::TagNotFound { .. } | OciError::Offline { .. }) => {}
                other => return other.map(|pin| (pin, Vec::new())),
            }
        }
        let mut tags = self.list_tags().await?;
        tags.retain(|t| parse_oci_tag(t).is_some());
        let mut warnings = Vec::new();
        while let Some((tag, _)) = req.select(tags.iter().map(String::as_str)) {
            let tag = tag.to_string();
            match self.pin_tag(&tag).await {
                Err(OciError::NotAChart { why, .. }) if warnings.len() < MAX_SKIPPED_CANDIDATES => {
                    warnings.push(format!(
                        "chart `{}`: tag {tag} of {} is not a Helm chart ({why}); trying the next version",
                        self.input,
                        self.shown()
                    ));
                    tags.retain(|t| *t != tag);
                }
                other => return other.map(|pin| (pin, warnings)),
            }
        }
        let newest: Vec<&str> = {
            let mut versions: Vec<_> = tags
                .iter()
                .filter_map(|t| parse_oci_tag(t).map(|v| (v, t.as_str())))
                .collect();
            versions.sort();
            versions.iter().rev().take(5).map(|(_, t)| *t).collect()
        };
        let found = if newest.is_empty() {
            "no tag that Helm reads as a chart version (MAJOR.MINOR.PATCH, no `v`)".to_string()
        } else {
            format!("newest chart versions: {}", newest.join(", "))
        };
        Err(OciError::NoMatch {
            input: self.input.clone(),
            location: self.shown(),
            requirement: req.as_str().to_string(),
            found,
        })
    }

    /// Every tag of the repository (paged; cached for `--offline`). Public for `stack outdated`.
    pub async fn list_tags(&self) -> Result<Vec<String>, OciError> {
        let key = format!("oci-tags:{}", self.canonical);
        let Some(net) = self.access.net() else {
            let cached = self
                .cached(&key)?
                .ok_or_else(|| self.offline("the tag list"))?;
            return serde_json::from_slice(&cached).map_err(|e| {
                OciError::Cache(format!("cached tag list of {}: {e}", self.canonical))
            });
        };
        let reference = self.reference("latest");
        let mut seen = BTreeSet::new();
        let mut last: Option<String> = None;
        let mut pages = 0;
        loop {
            pages += 1;
            if pages > MAX_TAG_PAGES {
                return Err(OciError::Registry {
                    input: self.input.to_string(),
                    location: self.location.to_string(),
                    message: format!(
                        "the tag list did not end after {MAX_TAG_PAGES} pages; refusing to resolve from a partial list"
                    ),
                });
            }
            if seen.len() >= MAX_TAGS {
                return Err(OciError::Registry {
                    input: self.input.to_string(),
                    location: self.location.to_string(),
                    message: format!(
                        "the repository lists more than {MAX_TAGS} tags; refusing to resolve from a partial list"
                    ),
                });
            }
            let page = self
                .call("listing tags", || {
                    net.oci
                        .list_tags(&reference, &self.auth, Some(TAG_PAGE_SIZE), last.as_deref())
                })
                .await?;
            let before = seen.len();
            seen.extend(page.tags.iter().cloned());
            // docker-registry 2.8 ignores `n` and `last` and sends everything every time: stop when a
            // page brings nothing new, or this would loop forever.
            if page.tags.is_empty() || seen.len() == before {
                break;
            }
            last = page.tags.last().cloned();
        }
        let tags: Vec<String> = seen.into_iter().collect();
        self.remember(&key, &serde_json::to_vec(&tags).expect("strings"))?;
        Ok(tags)
    }

    /// Fetches the manifest of `tag` and checks it is a Helm chart.
    async fn pin_tag(&self, tag: &str) -> Result<OciPin, OciError> {
        let reference = self.reference(tag);
        let (body, digest) = self.manifest(&reference, tag).await?;
        let doc = self.parse_manifest(&body, tag)?;
        let (digest, doc) = if let Some(entries) = doc.manifests {
            // An index: take the entry that is a Helm chart, never one chosen by platform.
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
            let by_digest = Reference::with_digest(
                self.location.registry.clone(),
                self.location.repository.clone(),
                entry.digest.clone(),
            );
            let (body, digest) = self.manifest(&by_digest, tag).await?;
            let doc = self.parse_manifest(&body, tag)?;
            if doc.manifests.is_some() {
                return Err(self.not_a_chart(tag, "an image index inside an image index".into()));
            }
            (digest, doc)
        } else {
            (digest, doc)
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
            return Err(OciError::TooLarge {
                input: self.input.clone(),
                location: self.shown(),
                tag: tag.to_string(),
                size,
                limit: MAX_CHART_BYTES,
            });
        }
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

    /// The raw manifest and its sha256, checked against what the registry states.
    async fn manifest(
        &self,
        reference: &Reference,
        tag: &str,
    ) -> Result<(Vec<u8>, String), OciError> {
        let key = match reference.digest() {
            Some(d) => format!("oci-manifest:{}@{d}", self.canonical),
            None => format!("oci-manifest:{}:{tag}", self.canonical),
        };
        let (body, stated) = match self.access.net() {
            None => {
                let body = self
                    .cached(&key)?
                    .ok_or_else(|| self.offline(format!("the manifest of {tag}")))?;
                let digest = digest::sha256(&body);
                (body, digest)
            }
            Some(net) => {
                let result = self
                    .call("fetching the manifest", || {
                        net.oci
                            .pull_manifest_raw(reference, &self.auth, MANIFEST_ACCEPT)
                    })
                    .await;
                match result {
                    Ok((body, stated)) => (body.to_vec(), stated),
                    Err(OciError::Registry { message, .. }) if is_not_found_message(&message) => {
                        return Err(OciError::TagNotFound {
                            input: self.input.clone(),
                            location: self.shown(),
                            tag: tag.to_string(),
                        })
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        if body.len() > MAX_MANIFEST_BYTES {
            return Err(self.not_a_chart(
                tag,
                format!(
                    "the manifest is {} bytes, more than {MAX_MANIFEST_BYTES}",
                    body.len()
                ),
            ));
        }
        let actual = digest::sha256(&body);
        let expected = reference.digest().map(str::to_string).unwrap_or(stated);
        if expected.starts_with("sha256:") && expected != actual {
            return Err(OciError::Digest {
                input: self.input.clone(),
                location: self.shown(),
                what: "manifest",
                expected,
                actual,
            });
        }
        if self.access.net().is_some() {
            self.remember(&key, &body)?;
        }
        Ok((body, actual))
    }

    fn parse_manifest(&self, body: &[u8], tag: &str) -> Result<ManifestDoc, OciError> {
        serde_json::from_slice(body)
            .map_err(|e| self.not_a_chart(tag, format!("the manifest is not valid JSON: {e}")))
    }

    fn not_a_chart(&self, tag: &str, why: String) -> OciError {
        OciError::NotAChart {
            input: self.input.clone(),
            location: self.shown(),
            tag: tag.to_string(),
            why,
        }
    }

    /// Downloads the chart layer of `pin` and verifies its size and sha256.
    pub async fn download(&self, pin: &OciPin) -> Result<Vec<u8>, OciError> {
        let key = format!("oci-blob:{}", pin.layer_digest);
        let Some(net) = self.access.net() else {
            let bytes = self
                .cached(&key)?
                .ok_or_else(|| self.offline(format!("the chart layer {}", pin.layer_digest)))?;
            let actual = digest::sha256(&bytes);
            if actual != pin.layer_digest {
                return Err(OciError::Cache(format!(
                    "cached chart layer {} hashes to {actual}",
                    pin.layer_digest
                )));
            }
            return Ok(bytes);
        };
        let bytes = self.download_online(net, pin).await?;
        self.remember(&key, &bytes)?;
        Ok(bytes)
    }

    async fn download_online(&self, net: &super::Net, pin: &OciPin) -> Result<Vec<u8>, OciError> {
        let reference = self.reference(&pin.tag);
        let descriptor = OciDescriptor {
            media_type: pin.layer_media_type.clone(),
            digest: pin.layer_digest.clone(),
            size: pin.layer_size as i64,
            ..Default::default()
        };
        let timeout = net.http.timeouts.request;
        let result = retry(
            net.http.policy,
            || async {
                match tokio::time::timeout(
                    timeout,
                    self.download_once(net, &reference, &descriptor, pin.layer_size),
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => Err(Download::Call(CallError::Timeout)),
                }
            },
            |e| match e {
                Download::Call(CallError::Timeout) => Retry::Backoff,
                Download::Call(CallError::Oci(e)) if transient(e) => Retry::Backoff,
                Download::Truncated(..) | Download::Stream(_) => Retry::Backoff,
                _ => Retry::No,
            },
        )
        .await;
        result.map_err(|(e, attempts)| {
            let (input, location) = (self.input.clone(), self.shown());
            match e {
                Download::Call(e) => self.name_error(
                    "downloading the chart layer",
                    e,
                    attempts,
                    timeout.as_secs_f64(),
                ),
                Download::TooLarge => OciError::Oversized {
                    input,
                    location,
                    expected: pin.layer_size,
                },
                Download::Truncated(received) => OciError::Truncated {
                    input,
                    location,
                    received,
                    expected: pin.layer_size,
                },
                Download::Digest(actual) => OciError::Digest {
                    input,
                    location,
                    what: "chart layer",
                    expected: pin.layer_digest.clone(),
                    actual,
                },
                Download::Stream(message) => OciError::Transport {
                    input,
                    location,
                    what: "downloading the chart layer",
                    message,
                    attempts,
                },
            }
        })
    }

    async fn download_once(
        &self,
        net: &super::Net,
        reference: &Reference,
        descriptor: &OciDescriptor,
        size: u64,
    ) -> Result<Vec<u8>, Download> {
        net.oci
            .store_auth_if_needed(reference.resolve_registry(), &self.auth)
            .await;
        let mut stream = net
            .oci
            .pull_blob_stream(reference, descriptor)
            .await
            .map_err(|e| Download::Call(CallError::Oci(e)))?;
        if stream.content_length.is_some_and(|n| n > size) {
            return Err(Download::TooLarge);
        }
        let mut bytes = Vec::with_capacity(size as usize);
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    if bytes.len() as u64 + chunk.len() as u64 > size {
                        return Err(Download::TooLarge);
                    }
                    bytes.extend_from_slice(&chunk);
                }
                // oci-client's verifying stream fails at the end on a digest mismatch; name it ourselves.
                Err(_)
                    if bytes.len() as u64 == size
                        && digest::sha256(&bytes) != descriptor.digest =>
                {
                    return Err(Download::Digest(digest::sha256(&bytes)))
                }
                Err(_) if (bytes.len() as u64) < size => {
                    return Err(Download::Truncated(bytes.len() as u64))
                }
                Err(e) => return Err(Download::Stream(error_chain(&e))),
            }
        }
        if (bytes.len() as u64) < size {
            return Err(Download::Truncated(bytes.len() as u64));
        }
        let actual = digest::sha256(&bytes);
        if actual != descriptor.digest {
            return Err(Download::Digest(actual));
        }
        Ok(bytes)
    }
}

enum Download {
    Call(CallError),
    TooLarge,
    Truncated(u64),
    Digest(String),
    Stream(String),
}

/// Connection failures, timeouts, 5xx and 429 are worth another try.
/// What went wrong on the wire, in words: a refused connection, a host name that does not resolve, no
/// answer in time, or a server error. Never "authentication".
fn transport_kind(e: &OciDistributionError) -> &'static str {
    let text = describe(e).to_ascii_lowercase();
    if text.contains("connection refused") {
        "the connection was refused (is the registry running, and is the host:port right?)"
    } else if text.contains("dns error") || text.contains("failed to lookup address") {
        "the host name does not resolve"
    } else if matches!(e, OciDistributionError::RequestError(r) if r.is_timeout()) {
        "the registry did not answer in time"
    } else if matches!(e, OciDistributionError::ServerError { .. }) {
        "the registry answered with a server error"
    } else {
        "the request failed"
    }
}

fn transient(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(e) => {
            e.is_connect() || e.is_timeout() || e.is_request() || e.is_body() || e.is_decode()
        }
        OciDistributionError::ServerError { code, .. } => *code >= 500 || *code == 429,
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|x| matches!(x.code, OciErrorCode::Toomanyrequests)),
        OciDistributionError::IoError(_) => true,
        _ => false,
    }
}

/// oci-client's error with its causes (reqwest hides "connection refused" three levels down).
fn describe(e: &OciDistributionError) -> String {
    match e {
        OciDistributionError::RequestError(r) => error_chain(r),
        OciDistributionError::ServerError { code, message, .. } => {
            let message: String = message.chars().take(200).collect();
            format!("HTTP {code}: {}", message.trim())
        }
        other => error_chain(other),
    }
}

fn is_not_found_message(message: &str) -> bool {
    [
        "MANIFEST_UNKNOWN",
        "ManifestUnknown",
        "NAME_UNKNOWN",
        "NotFound",
        "NOT_FOUND",
        "HTTP 404",
        "manifest unknown",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

#[derive(Debug, Deserialize)]
struct ManifestDoc {
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<IndexEntry>>,
}

#[derive(Debug, Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: i64,
}

#[derive(Debug, Deserialize)]
struct IndexEntry {
    digest: String,
    #[serde(rename = "artifactType")]
    artifact_type: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_server::{ok, serve_routes, status};
    use crate::source::{Mirrors, Net};

    const CHART: &[u8] = b"pretend this is loki-6.48.1.tgz";

    fn manifest(config_type: &str, layer: &[u8]) -> Vec<u8> {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"{config_type}","digest":"{}","size":2}},"layers":[{{"mediaType":"{HELM_CHART_MEDIA_TYPE}","digest":"{}","size":{}}}]}}"#,
            digest::sha256(b"{}"),
            digest::sha256(layer),
            layer.len()
        )
        .into_bytes()
    }

    /// A registry that, like docker-registry 2.8, ignores `n` and `last` and always sends every tag.
    fn registry(
        manifest_body: Vec<u8>,
        blob: &[u8],
    ) -> (crate::http::test_server::Server, Net, tempfile::TempDir) {
        let tags = br#"{"name":"charts/loki","tags":["6.49.0","latest","6.48.1_build.1","6.48.0","sha256-abc.sig"]}"#;
        let blob_path = format!("/v2/charts/loki/blobs/{}", digest::sha256(CHART));
        let server = serve_routes(vec![
            ("/v2/", vec![ok(b"{}", "")]),
            ("/v2/charts/loki/tags/list", vec![ok(tags, "")]),
            (
                "/v2/charts/loki/manifests/6.48.1_build.1",
                vec![ok(&manifest_body, "")],
            ),
            (blob_path.as_str(), vec![ok(blob, "")]),
        ]);
        let registry = server.base.trim_start_matches("http://").to_string();
        let cache = tempfile::tempdir().unwrap();
        let mirrors = Mirrors::new(
            &Default::default(),
            &[format!("ghcr.io/grafana={registry}/charts")],
        )
        .unwrap();
        let http = crate::http::Http::for_tests();
        let store = crate::store::Store::at(cache.path().to_path_buf());
        let net = Net::new(http, Default::default(), mirrors, store, vec![registry]).unwrap();
        (server, net, cache)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn credentials_are_never_sent_to_a_plain_http_token_realm_off_loopback() {
        let challenge =
            "WWW-Authenticate: Bearer realm=\"http://token.example.com/token\",service=\"r\"\r\n";
        let server = serve_routes(vec![("", vec![status(401, challenge)])]);
        let registry = server.base.trim_start_matches("http://").to_string();
        let cache = tempfile::tempdir().unwrap();
        let mirrors = Mirrors::new(
            &Default::default(),
            &[format!("ghcr.io/grafana={registry}/charts")],
        )
        .unwrap();
        let auth = crate::auth::AuthStore::from_entries([(
            registry.clone(),
            crate::auth::Credentials::new("u", "hunter2"),
        )]);
        let store = crate::store::Store::at(cache.path().to_path_buf());
        let http = crate::http::Http::for_tests();
        let net = Net::new(http, auth, mirrors, store, vec![registry]).unwrap();
        let ctx = Ctx::new(Access::Online(&net), "loki", "oci://ghcr.io/grafana/loki");
        let err = rt().block_on(ctx.authenticate()).unwrap_err().to_string();
        assert!(
            err.contains("token realm http://token.example.com/token is not HTTPS"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        let seen = server.requests.lock().unwrap().join("\n").to_lowercase();
        assert!(!seen.contains("authorization"), "{seen}");
    }

    #[test]
    fn resolves_through_a_registry_that_ignores_paging_and_verifies_the_layer() {
        let body = manifest(HELM_CONFIG_MEDIA_TYPE, CHART);
        let (server, net, _cache) = registry(body.clone(), CHART);
        let ctx = Ctx::new(Access::Online(&net), "loki", "oci://ghcr.io/grafana/loki");
        let rt = rt();
        let (pin, _) = rt
            .block_on(ctx.resolve(&VersionReq::parse("~6.48").unwrap()))
            .unwrap();
        assert_eq!(pin.version, "6.48.1+build.1");
        assert_eq!(pin.tag, "6.48.1_build.1");
        assert_eq!(pin.digest, digest::sha256(&body));
        assert_eq!(pin.layer_digest, digest::sha256(CHART));
        assert_eq!(
            server.count("/v2/charts/loki/tags/list"),
            2,
            "paging must stop when a page adds nothing"
        );
        assert_eq!(rt.block_on(ctx.download(&pin)).unwrap(), CHART);
        // Offline, the same answers come from the cache.
        let offline = Ctx::new(
            Access::Offline {
                store: &net.store,
                mirrors: &net.mirrors,
            },
            "loki",
            "oci://ghcr.io/grafana/loki",
        );
        let (again, _) = rt
            .block_on(offline.resolve(&VersionReq::parse("~6.48").unwrap()))
            .unwrap();
        assert_eq!(again, pin);
        assert_eq!(rt.block_on(offline.download(&again)).unwrap(), CHART);
    }

    #[test]
    fn a_layer_with_the_wrong_bytes_is_refused() {
        let mut wrong = CHART.to_vec();
        wrong[3] ^= 0xff;
        let (_server, net, _cache) = registry(manifest(HELM_CONFIG_MEDIA_TYPE, CHART), &wrong);
        let ctx = Ctx::new(Access::Online(&net), "loki", "oci://ghcr.io/grafana/loki");
        let rt = rt();
        let (pin, _) = rt
            .block_on(ctx.resolve(&VersionReq::parse("~6.48").unwrap()))
            .unwrap();
        let err = rt.block_on(ctx.download(&pin)).unwrap_err().to_string();
        assert!(
            err.contains("chart layer digest mismatch") && err.contains(&digest::sha256(&wrong)),
            "{err}"
        );
    }

    #[test]
    fn a_layer_longer_than_its_descriptor_is_refused() {
        let mut longer = CHART.to_vec();
        longer.extend_from_slice(b"extra");
        let (_server, net, _cache) = registry(manifest(HELM_CONFIG_MEDIA_TYPE, CHART), &longer);
        let ctx = Ctx::new(Access::Online(&net), "loki", "oci://ghcr.io/grafana/loki");
        let rt = rt();
        let (pin, _) = rt
            .block_on(ctx.resolve(&VersionReq::parse("~6.48").unwrap()))
            .unwrap();
        let err = rt.block_on(ctx.download(&pin)).unwrap_err().to_string();
        assert!(err.contains("sent more than the 31 bytes"), "{err}");
    }

    /// One repository for an operator's images (`v1.5.1`, `v1.6.0`) and its chart (`1.5.1`, `1.6.0`,
    /// where 1.6.0 was pushed as an image by mistake): Helm reads only `1.5.1` and `1.6.0` as chart
    /// versions, and a candidate that is not a chart is skipped with a warning.
    #[test]
    fn image_tags_are_not_candidates_and_non_charts_are_skipped() {
        let image = manifest("application/vnd.oci.image.config.v1+json", CHART);
        let chart = manifest(HELM_CONFIG_MEDIA_TYPE, CHART);
        let tags = br#"{"name":"charts/op","tags":["v1.5.1","v1.6.0","1.5.1","1.6.0","latest"]}"#;
        let server = serve_routes(vec![
            ("/v2/", vec![ok(b"{}", "")]),
            ("/v2/charts/op/tags/list", vec![ok(tags, "")]),
            ("/v2/charts/op/manifests/1.6.0", vec![ok(&image, "")]),
            ("/v2/charts/op/manifests/1.5.1", vec![ok(&chart, "")]),
        ]);
        let registry = server.base.trim_start_matches("http://").to_string();
        let cache = tempfile::tempdir().unwrap();
        let mirrors = Mirrors::new(
            &Default::default(),
            &[format!("ghcr.io/x={registry}/charts")],
        )
        .unwrap();
        let store = crate::store::Store::at(cache.path().to_path_buf());
        let net = Net::new(
            crate::http::Http::for_tests(),
            Default::default(),
            mirrors,
            store,
            vec![registry],
        )
        .unwrap();
        let ctx = Ctx::new(Access::Online(&net), "op", "oci://ghcr.io/x/op");
        let (pin, warnings) = rt()
            .block_on(ctx.resolve(&VersionReq::parse(">=1.4.1").unwrap()))
            .unwrap();
        assert_eq!(pin.version, "1.5.1");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("tag 1.6.0") && warnings[0].contains("config media type"),
            "{warnings:?}"
        );
        assert_eq!(server.count("/v2/charts/op/manifests/v1.6.0"), 0);
    }

    #[test]
    fn not_found_messages_are_recognised() {
        assert!(is_not_found_message("fetching the manifest failed: Registry error: url x, envelope: OCI API errors: [OCI API error: manifest unknown]"));
        assert!(is_not_found_message("HTTP 404: 404 page not found"));
        assert!(!is_not_found_message("HTTP 500: oops"));
    }

    #[test]
    fn manifest_doc_parses_helm_and_index_shapes() {
        let helm = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"sha256:aa","size":3},
            "layers":[{"mediaType":"application/vnd.cncf.helm.chart.provenance.v1.prov","digest":"sha256:bb","size":1},
                      {"mediaType":"application/vnd.cncf.helm.chart.content.v1.tar+gzip","digest":"sha256:cc","size":2}]}"#;
        let doc: ManifestDoc = serde_json::from_str(helm).unwrap();
        assert_eq!(doc.layers.unwrap()[1].media_type, HELM_CHART_MEDIA_TYPE);
        let index = r#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:dd","size":1,"artifactType":"application/vnd.cncf.helm.config.v1+json"}]}"#;
        let doc: ManifestDoc = serde_json::from_str(index).unwrap();
        assert_eq!(
            doc.manifests.unwrap()[0].artifact_type.as_deref(),
            Some(HELM_CONFIG_MEDIA_TYPE)
        );
    }
}
