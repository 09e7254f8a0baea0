//! Helm charts in OCI registries, over the distribution API (see [`wire`]): list tags, choose a version
//! with Helm's rules, fetch the manifest and check it is a Helm chart, then download the chart layer and
//! verify its sha256 and size. Every request is bounded by a timeout and a body limit, and retried on
//! transient failures.
//!
//! Pitfalls handled here (see shared/upstream/oci/PITFALLS.md): tag lists are paged by their `Link`
//! header, and the loop also stops when a page adds nothing (docker-registry 2.8 ignores `n`/`last`); the
//! manifest is fetched with explicit OCI and Docker accept types (docker-registry 404s an OCI manifest
//! otherwise); the chart layer is picked by media type, never by position; blobs are collected in memory
//! up to the descriptor's size and verified before anyone sees them.

use std::collections::BTreeSet;
use std::future::Future;

use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use serde::Deserialize;

use super::error::{InputError, InputErrorKind as Kind, Limit, Location, Missing};
use super::{Access, CachedFetchError, OciLocation};
use crate::auth::Credentials;
use crate::digest;
use crate::http::retry;
use crate::version_req::{parse_oci_tag, version_to_tag, VersionReq};

mod download;
mod error;
mod manifest;
mod wire;

use error::{retry_kind, Failed};
pub use wire::Registries;
use wire::WireError;

pub use crate::helm_oci::{HELM_CHART_MEDIA_TYPE, HELM_CONFIG_MEDIA_TYPE, LEGACY_CHART_MEDIA_TYPE};
/// The largest chart archive accepted (Flux allows 10 MiB; big charts such as kube-prometheus-stack
/// stay well under this).
pub const MAX_CHART_BYTES: u64 = 20 << 20;
/// The largest manifest read: a Helm chart manifest is about a kilobyte.
const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// The largest page of a tag list read: docker-registry sends every tag on one page, and
/// [`MAX_TAGS`] tags of 100 bytes fit.
const MAX_TAG_PAGE_BYTES: u64 = 16 << 20;
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
    /// The credentials for the registry as contacted, if any (never over plain HTTP off loopback).
    credentials: Option<Credentials>,
}

impl<'a> Ctx<'a> {
    pub fn new(access: Access<'a>, input: &str, canonical: &str) -> Ctx<'a> {
        let location = access.mirrors().oci(canonical);
        let credentials = access
            .registry_credentials(&location.registry)
            // Never over plain HTTP off loopback (an `insecure = true` mirror).
            .filter(|_| !location.plain_http || location.is_loopback())
            .cloned();
        Ctx {
            access,
            input: input.to_string(),
            canonical: canonical.to_string(),
            location,
            credentials,
        }
    }

    /// An error about this input, at the repository as contacted.
    fn error(&self, kind: Kind) -> InputError {
        InputError::chart(&self.input, Location::Registry(self.shown()), kind)
    }

    /// `what` is not in the content cache, and the run is offline: named by the canonical reference (an
    /// offline run knows no mirror).
    fn offline(&self, what: impl Into<String>) -> InputError {
        let what = what.into();
        InputError::chart(
            &self.input,
            Location::Registry(self.canonical.clone()),
            Kind::Offline { what },
        )
    }

    /// Why the cached-fetch layer had no answer, named for the user: offline and `what` not cached, the
    /// cache's failure, or the fetch's own error.
    fn uncached(&self, e: CachedFetchError<InputError>, what: impl Into<String>) -> InputError {
        match e {
            CachedFetchError::Offline => self.offline(what),
            CachedFetchError::Store(e) => self.error(Kind::Cache(format!("{}: {e}", self.input))),
            CachedFetchError::Fetch(e) => e,
        }
    }

    fn shown(&self) -> String {
        self.location.to_string()
    }

    fn registry_error(&self, message: String) -> InputError {
        self.error(Kind::Upstream { message })
    }

    /// Runs one request (`op`, given the network) with the request timeout and retries; a failure is
    /// returned as it came, with the number of attempts, for the caller to name (see [`Ctx::named`]).
    async fn call<T, F, Fut>(&self, net: &'a super::Net, mut op: F) -> Result<T, Failed>
    where
        F: FnMut(&'a super::Net) -> Fut,
        Fut: Future<Output = Result<T, WireError>>,
    {
        let timeout = net.http.timeouts.request;
        retry(
            net.http.policy,
            || {
                let fut = op(net);
                async move {
                    match tokio::time::timeout(timeout, fut).await {
                        Ok(result) => result,
                        Err(_) => Err(WireError::Timeout),
                    }
                }
            },
            retry_kind,
        )
        .await
        .map_err(|(error, attempts)| Failed { error, attempts })
    }

    /// One GET of the registry API with retries, any failure named for the user as `what`.
    async fn get(
        &self,
        net: &'a super::Net,
        what: &'static str,
        url: &url::Url,
        accept: &[&str],
        limit: u64,
    ) -> Result<wire::Answer, InputError> {
        self.call(net, |net| self.get_once(net, url, accept, limit))
            .await
            .map_err(|f| self.named(what, f))
    }

    /// Chooses a version: an exact requirement is tried as a tag first (as Helm does), else the tags are
    /// listed and the highest match wins. Only tags Helm's registry client reads as chart versions are
    /// candidates (strict `MAJOR.MINOR.PATCH`, see [`parse_oci_tag`]), so image tags such as `v1.6.0`
    /// next to chart tags are not; a candidate that turns out not to be a Helm chart is skipped with a
    /// warning (returned) and the next highest is tried.
    pub async fn resolve(&self, req: &VersionReq) -> Result<(OciPin, Vec<String>), InputError> {
        if let Some(version) = req.exact() {
            match self.pin_tag(&version_to_tag(&version)).await {
                Err(e)
                    if matches!(
                        *e.kind,
                        Kind::NotFound(Missing::Tag(_)) | Kind::Offline { .. }
                    ) => {}
                other => return other.map(|pin| (pin, Vec::new())),
            }
        }
        let mut tags = self.list_tags().await?;
        tags.retain(|t| parse_oci_tag(t).is_some());
        let mut warnings = Vec::new();
        while let Some((tag, _)) = req.select(tags.iter().map(String::as_str)) {
            let tag = tag.to_string();
            match self.pin_tag(&tag).await {
                Err(e) if warnings.len() < MAX_SKIPPED_CANDIDATES => match *e.kind {
                    Kind::NotAChart { why, .. } => {
                        warnings.push(format!(
                            "chart `{}`: tag {tag} of {} is not a Helm chart ({why}); trying the next version",
                            self.input,
                            self.shown()
                        ));
                        tags.retain(|t| *t != tag);
                    }
                    kind => {
                        let kind = Box::new(kind);
                        return Err(InputError { kind, ..e });
                    }
                },
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
        Err(self.error(Kind::NoMatch {
            requirement: req.as_str().to_string(),
            chart: String::new(),
            found,
        }))
    }

    /// Every tag of the repository (paged; cached for `--offline`). Public for `stack outdated`.
    /// A repository's tags can change, so online they are always asked (see [`Access::mutable`]).
    pub async fn list_tags(&self) -> Result<Vec<String>, InputError> {
        let key = format!("oci-tags:{}", self.canonical);
        let (body, fetched) = self
            .access
            .mutable(&key, |net| self.fetch_tags(net))
            .await
            .map_err(|e| self.uncached(e, "the tag list"))?;
        if let Some(tags) = fetched {
            return Ok(tags);
        }
        serde_json::from_slice(&body).map_err(|e| {
            self.error(Kind::Cache(format!(
                "cached tag list of {}: {e}",
                self.canonical
            )))
        })
    }

    /// Every page of the tag list, and the list as it is remembered (JSON).
    async fn fetch_tags(&self, net: &'a super::Net) -> Result<(Vec<u8>, Vec<String>), InputError> {
        let mut url = self.api_url(net, "tags/list");
        url.query_pairs_mut()
            .append_pair("n", &TAG_PAGE_SIZE.to_string());
        let mut seen = BTreeSet::new();
        for page in 1.. {
            if page > MAX_TAG_PAGES {
                return Err(self.registry_error(format!(
                    "the tag list did not end after {MAX_TAG_PAGES} pages; refusing to resolve from a partial list"
                )));
            }
            if seen.len() >= MAX_TAGS {
                return Err(self.registry_error(format!(
                    "the repository lists more than {MAX_TAGS} tags; refusing to resolve from a partial list"
                )));
            }
            let answer = self
                .get(
                    net,
                    "listing tags",
                    &url,
                    &["application/json"],
                    MAX_TAG_PAGE_BYTES,
                )
                .await?;
            let page: TagPage = serde_json::from_slice(&answer.body).map_err(|e| {
                self.registry_error(format!("the tag list is not the API's JSON: {e}"))
            })?;
            let before = seen.len();
            seen.extend(page.tags.unwrap_or_default());
            // The next page is where `Link` says (its absence is the end, as the distribution spec has
            // it); a page that brings nothing new also ends the list, so a registry that ignores `last`
            // and links to itself cannot loop.
            let next = wire::next_link(&answer.headers, &url).map_err(|e| {
                self.named(
                    "listing tags",
                    Failed {
                        error: e,
                        attempts: 1,
                    },
                )
            })?;
            match next {
                Some(next) if seen.len() > before => url = next,
                _ => break,
            }
        }
        let tags: Vec<String> = seen.into_iter().collect();
        Ok((serde_json::to_vec(&tags).expect("strings"), tags))
    }
}

/// One page of `GET /v2/<name>/tags/list` (some registries send `"tags": null` for none).
#[derive(Deserialize)]
struct TagPage {
    tags: Option<Vec<String>>,
}

#[cfg(test)]
mod tests;
