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

mod download;
mod error;
mod manifest;

pub use error::OciError;
use error::{is_not_found_message, transient, CallError};

pub use crate::helm_oci::{HELM_CHART_MEDIA_TYPE, HELM_CONFIG_MEDIA_TYPE, LEGACY_CHART_MEDIA_TYPE};
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
}

#[cfg(test)]
mod tests;
