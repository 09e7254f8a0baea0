//! The OCI distribution API spoken over the run's HTTP client: every body read with a bound while it
//! streams, and what each registry wants for authentication learnt from its first `401` and remembered
//! for the run, so no request is spent asking (`GET /v2/`) and a token is fetched once per repository.
//!
//! Credentials go only to the registry host (Basic, when it asks for Basic) and to the token realm it
//! names, never to a realm over plain HTTP off loopback; reqwest drops `Authorization` on a redirect to
//! another host (blob storage), so a token stays with its registry.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use oci_client::errors::{OciEnvelope, OciErrorCode};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, LINK, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use tokio::sync::OnceCell;
use url::Url;

use super::Ctx;
use crate::http::is_loopback_host;

/// The largest token endpoint answer read: a token is a few kilobytes.
const MAX_TOKEN_BYTES: u64 = 1 << 20;
/// The largest error body read for its message.
const MAX_ERROR_BYTES: u64 = 64 << 10;

/// How a registry authenticates, as its `WWW-Authenticate` challenge says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Scheme {
    /// Basic credentials on every request.
    Basic,
    /// A token from `realm`, one per repository.
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// What the run has learnt of each registry, shared by every input: which are reached over plain HTTP,
/// how each authenticates (until its first `401`, a registry is asked anonymously), and the tokens
/// fetched per repository.
#[derive(Default)]
pub struct Registries {
    plain_http: BTreeSet<String>,
    schemes: Mutex<BTreeMap<String, Scheme>>,
    tokens: Mutex<BTreeMap<(String, String), Token>>,
}

/// A repository's pull token, fetched once however many inputs wait for it.
type Token = Arc<OnceCell<String>>;

/// Never shows a token: only which registries are known and how they authenticate.
impl std::fmt::Debug for Registries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let schemes = self.schemes.lock().expect("not poisoned");
        f.debug_struct("Registries")
            .field("plain_http", &self.plain_http)
            .field("schemes", &*schemes)
            .finish_non_exhaustive()
    }
}

impl Registries {
    /// `plain_http`: the `host:port` of every registry that may be reached without TLS.
    pub fn new(plain_http: impl IntoIterator<Item = String>) -> Registries {
        Registries {
            plain_http: plain_http.into_iter().collect(),
            ..Default::default()
        }
    }

    fn scheme_of(&self, registry: &str) -> Option<Scheme> {
        self.schemes
            .lock()
            .expect("not poisoned")
            .get(registry)
            .cloned()
    }

    fn learn(&self, registry: &str, scheme: Scheme) {
        self.schemes
            .lock()
            .expect("not poisoned")
            .insert(registry.to_string(), scheme);
    }

    fn token_cell(&self, registry: &str, repository: &str) -> Token {
        let mut tokens = self.tokens.lock().expect("not poisoned");
        let key = (registry.to_string(), repository.to_string());
        tokens.entry(key).or_default().clone()
    }

    fn forget_token(&self, registry: &str, repository: &str) {
        let key = (registry.to_string(), repository.to_string());
        self.tokens.lock().expect("not poisoned").remove(&key);
    }
}

/// What went wrong in one request, before it is named for the user (see `error.rs`).
#[derive(Debug)]
pub(super) enum WireError {
    /// The registry answered with a status that is not success.
    Status {
        status: StatusCode,
        codes: Vec<OciErrorCode>,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The token realm refused, or answered with something that is not a token.
    Token {
        status: StatusCode,
        message: String,
    },
    /// Credentials would have gone to a token realm over plain HTTP off loopback.
    PlainRealm(String),
    /// A `Link` to the next tag page that leaves the registry.
    ForeignLink(String),
    Transport(reqwest::Error),
    /// The body grew past the bound of what was asked for.
    TooLarge {
        limit: u64,
    },
    Timeout,
}

impl From<reqwest::Error> for WireError {
    /// reqwest's own timeout is the same as the one around each request: either is a timeout.
    fn from(e: reqwest::Error) -> WireError {
        if e.is_timeout() {
            WireError::Timeout
        } else {
            WireError::Transport(e)
        }
    }
}

impl WireError {
    /// Whether the registry says the thing asked for does not exist, though the repository does: a 404
    /// whose error codes, if any, say only that (`MANIFEST_UNKNOWN`, `NOT_FOUND`, `BLOB_UNKNOWN`).
    pub(super) fn is_missing(&self) -> bool {
        matches!(self, WireError::Status { status, codes, .. }
        if *status == StatusCode::NOT_FOUND
            && codes.iter().all(|c| matches!(
                c,
                OciErrorCode::ManifestUnknown | OciErrorCode::NotFound | OciErrorCode::BlobUnknown
            )))
    }
}

/// A success answer: its headers and its whole body, which was at most the limit asked for.
pub(super) struct Answer {
    pub(super) headers: HeaderMap,
    pub(super) body: Vec<u8>,
}

impl Ctx<'_> {
    /// `scheme://registry/v2/<repository>/<rest>`.
    pub(super) fn api_url(&self, net: &crate::source::Net, rest: &str) -> Url {
        let registry = &self.location.registry;
        let scheme = if net.oci.plain_http.contains(registry) || self.location.plain_http {
            "http"
        } else {
            "https"
        };
        // Docker Hub's API is not on `docker.io` itself (as oci-client and Docker resolve it).
        let host = match registry.as_str() {
            "docker.io" => "index.docker.io",
            other => other,
        };
        let text = format!("{scheme}://{host}/v2/{}/{rest}", self.location.repository);
        Url::parse(&text).expect("a registry and repository that parsed as an OCI location")
    }

    /// One GET of the registry API, authenticated as the registry asks, the body read up to `limit`
    /// bytes while it streams. Not retried: see `Ctx::call`.
    pub(super) async fn get_once(
        &self,
        net: &crate::source::Net,
        url: &Url,
        accept: &[&str],
        limit: u64,
    ) -> Result<Answer, WireError> {
        let (response, sent) = self.send(net, url, accept).await?;
        let status = response.status();
        if !status.is_success() {
            return Err(status_error(response, &self.secrets(net, sent.as_ref())).await);
        }
        let headers = response.headers().clone();
        let body = read_bounded(response, limit).await?;
        Ok(Answer { headers, body })
    }

    /// The response to `url`: asked anonymously until the registry has challenged once, then with what
    /// its challenge wants. A `401` with a challenge is answered once (learning the scheme, or replacing
    /// a token that no longer works). With it, the `Authorization` it was asked with, so what the
    /// registry says back can be scrubbed of it (see [`Ctx::secrets`]).
    pub(super) async fn send(
        &self,
        net: &crate::source::Net,
        url: &Url,
        accept: &[&str],
    ) -> Result<(reqwest::Response, Option<HeaderValue>), WireError> {
        let registry = &self.location.registry;
        let mut answered = false;
        loop {
            let authorization = self.authorization(net).await?;
            let sent = authorization.is_some();
            let mut request = net.http.client().get(url.clone());
            if !accept.is_empty() {
                request = request.header(ACCEPT, accept.join(", "));
            }
            if let Some(value) = &authorization {
                request = request.header(AUTHORIZATION, value.clone());
            }
            let permit = net.http.request_permit().await;
            let response = request.send().await.map_err(WireError::from)?;
            drop(permit);
            if response.status() != StatusCode::UNAUTHORIZED || answered {
                return Ok((response, authorization));
            }
            let Some(scheme) = challenge(response.headers()) else {
                return Ok((response, authorization));
            };
            let can_answer = match &scheme {
                Scheme::Basic => !sent && self.credentials.is_some(),
                Scheme::Bearer { .. } => true,
            };
            if sent {
                net.oci.forget_token(registry, &self.location.repository);
            }
            net.oci.learn(registry, scheme);
            if !can_answer {
                return Ok((response, authorization));
            }
            answered = true;
        }
    }

    /// Every secret the registry may have been sent, for [`crate::auth::scrub`]: the credentials in
    /// each form they go on the wire, the `Authorization` value `sent` (and the token in it), and the
    /// repository's token as cached now.
    pub(super) fn secrets(
        &self,
        net: &crate::source::Net,
        sent: Option<&HeaderValue>,
    ) -> Vec<String> {
        let mut secrets = self
            .credentials
            .as_ref()
            .map(crate::auth::Credentials::wire_forms)
            .unwrap_or_default();
        if let Some(value) = sent.and_then(|v| v.to_str().ok()) {
            secrets.push(value.to_string());
            if let Some((_, token)) = value.split_once(' ') {
                secrets.push(token.trim().to_string());
            }
        }
        let cell = net
            .oci
            .token_cell(&self.location.registry, &self.location.repository);
        if let Some(token) = cell.get() {
            secrets.extend([format!("Bearer {token}"), token.clone()]);
        }
        secrets
    }

    /// The `Authorization` the registry is known to want, if any.
    async fn authorization(
        &self,
        net: &crate::source::Net,
    ) -> Result<Option<HeaderValue>, WireError> {
        let scheme = net.oci.scheme_of(&self.location.registry);
        let value = match scheme {
            None => return Ok(None),
            Some(Scheme::Basic) => match self.credentials.as_ref() {
                None => return Ok(None),
                Some(c) => basic(c),
            },
            Some(Scheme::Bearer { realm, service }) => {
                let cell = net
                    .oci
                    .token_cell(&self.location.registry, &self.location.repository);
                let token = cell
                    .get_or_try_init(|| self.fetch_token(net, &realm, service.as_deref()))
                    .await?;
                format!("Bearer {token}")
            }
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| WireError::Token {
            status: StatusCode::OK,
            message: "the token is not a valid header value".into(),
        })?;
        value.set_sensitive(true);
        Ok(Some(value))
    }

    /// A pull token for this repository from `realm`, with the credentials for the registry if there are
    /// any (only over HTTPS or to loopback).
    async fn fetch_token(
        &self,
        net: &crate::source::Net,
        realm: &str,
        service: Option<&str>,
    ) -> Result<String, WireError> {
        let Ok(mut url) = Url::parse(realm) else {
            return Err(WireError::PlainRealm(realm.to_string()));
        };
        let plain_elsewhere =
            url.scheme() != "https" && !url.host_str().is_some_and(is_loopback_host);
        if plain_elsewhere && self.credentials.is_some() {
            return Err(WireError::PlainRealm(realm.to_string()));
        }
        {
            let mut query = url.query_pairs_mut();
            query.append_pair(
                "scope",
                &format!("repository:{}:pull", self.location.repository),
            );
            if let Some(service) = service {
                query.append_pair("service", service);
            }
        }
        let mut request = net.http.client().get(url);
        if let Some(c) = &self.credentials {
            request = request.basic_auth(c.username(), Some(c.password()));
        }
        let permit = net.http.request_permit().await;
        let response = request.send().await.map_err(WireError::from)?;
        drop(permit);
        let status = response.status();
        if !status.is_success() {
            let body = read_bounded(response, MAX_ERROR_BYTES)
                .await
                .unwrap_or_default();
            let secrets = self.secrets(net, None);
            return Err(WireError::Token {
                status,
                message: crate::auth::scrub(&first_line(&body), &secrets),
            });
        }
        let body = read_bounded(response, MAX_TOKEN_BYTES).await?;
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| WireError::Token {
            status,
            message: format!("the answer is not a token: {e}"),
        })?;
        answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| WireError::Token {
                status,
                message: "the answer holds no token".into(),
            })
    }
}

fn basic(c: &crate::auth::Credentials) -> String {
    use base64::Engine as _;
    let pair = format!("{}:{}", c.username(), c.password());
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// The scheme a `WWW-Authenticate` header asks for.
pub(super) fn challenge(headers: &HeaderMap) -> Option<Scheme> {
    let header = headers.get(WWW_AUTHENTICATE)?.to_str().ok()?.trim();
    let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Scheme::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let param = |name: &str| {
        params.split(',').find_map(|p| {
            let (key, value) = p.trim().split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().trim_matches('"').to_string())
        })
    };
    Some(Scheme::Bearer {
        realm: crate::http::bearer_realm(header)?,
        service: param("service"),
    })
}

/// The `rel="next"` target of a `Link` header, resolved against `base`; it must stay on the same
/// scheme, host and port (the request carries the registry's token).
pub(super) fn next_link(headers: &HeaderMap, base: &Url) -> Result<Option<Url>, WireError> {
    let Some(header) = headers.get(LINK).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let target = header.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p.eq_ignore_ascii_case("rel=\"next\"") || p.eq_ignore_ascii_case("rel=next")
        });
        next.then(|| target.trim().trim_start_matches('<').trim_end_matches('>'))
    });
    let Some(target) = target else {
        return Ok(None);
    };
    let url = base
        .join(target)
        .map_err(|_| WireError::ForeignLink(target.to_string()))?;
    let same_origin = url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default();
    if !same_origin {
        return Err(WireError::ForeignLink(crate::http::redact(&url)));
    }
    Ok(Some(url))
}

/// The body, stopping with [`WireError::TooLarge`] as soon as it would exceed `limit`.
pub(super) async fn read_bounded(
    response: reqwest::Response,
    limit: u64,
) -> Result<Vec<u8>, WireError> {
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(WireError::TooLarge { limit });
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(WireError::from)?;
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(WireError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A failed answer as a [`WireError::Status`]: its status, the registry's error codes and message
/// (from the distribution spec's error envelope, else the body's first line), scrubbed of `secrets`
/// (a registry may echo the `Authorization` it was sent).
pub(super) async fn status_error(response: reqwest::Response, secrets: &[String]) -> WireError {
    let status = response.status();
    let retry_after = crate::http::retry_after(response.headers());
    let body = read_bounded(response, MAX_ERROR_BYTES)
        .await
        .unwrap_or_default();
    let (codes, message) = match serde_json::from_slice::<OciEnvelope>(&body) {
        Ok(envelope) => {
            let message = envelope
                .errors
                .iter()
                .map(|e| e.message.as_str())
                .filter(|m| !m.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            let codes = envelope.errors.into_iter().map(|e| e.code).collect();
            (codes, message)
        }
        Err(_) => (Vec::new(), first_line(&body)),
    };
    WireError::Status {
        status,
        codes,
        message: crate::auth::scrub(&message, secrets),
        retry_after,
    }
}

/// The first line of a body, at most 200 characters, for an error message.
fn first_line(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.lines()
        .next()
        .unwrap_or("")
        .trim()
        .chars()
        .take(200)
        .collect()
}
