//! The one HTTP client of `stack lock`: rustls, a `stack/<version>` user agent, connect and request
//! timeouts, retries with deterministic exponential backoff (honouring `Retry-After`), a size limit on
//! every body and detection of truncated bodies. Nothing else in the program opens an HTTP connection:
//! the OCI registry API (source::oci) sends its requests through [`Http::client`], [`retry`] and the
//! same timeouts.
//!
//! Tests shrink the waits with `STACK_HTTP_TIMEOUT_SECS` and `STACK_RETRY_BASE_MS`.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::StatusCode;
use url::Url;

use crate::address::SafeUrl;
use crate::auth::Credentials;

mod in_flight;
mod retry;
mod transport;

pub use transport::{error_chain, out_of_descriptors, DESCRIPTORS_HINT};

use in_flight::RequestBound;
pub use in_flight::{on_chain, Permit};
use retry::MAX_RETRY_AFTER;
pub use retry::{retry, retry_after, Retry, RetryPolicy};

pub const USER_AGENT: &str = concat!("stack/", env!("CARGO_PKG_VERSION"));
/// Requests in flight at once unless the command says otherwise (`--jobs`, see
/// [`Http::with_requests_in_flight`]). 32: a cold lock of 40 inputs makes 60 requests, which 16 slots
/// serve in four rounds where its longest input needs three; with 32 the bench measured 1.4-1.9x the
/// longest input against 1.7-2.8x with 16, in five interleaved pairs (issue 15, docs/PERFORMANCE.md).
/// uv downloads 50 at once by default.
pub const DEFAULT_REQUESTS_IN_FLIGHT: usize = 32;
/// Overrides both the connect timeout and the whole-request timeout, in seconds.
pub const TIMEOUT_ENV: &str = "STACK_HTTP_TIMEOUT_SECS";
/// How long to wait for what.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// The whole request, body included.
    pub request: Duration,
}

impl Timeouts {
    /// From `STACK_HTTP_TIMEOUT_SECS` (seconds, more than 0 and at most a day), else 15 s to connect and
    /// 300 s a request. A value that is not such a number is an error naming the variable.
    pub fn from_env() -> Result<Timeouts, HttpError> {
        let secs = env_number::<f64>(
            TIMEOUT_ENV,
            "a number of seconds above 0 and at most 86400",
            |s| s.is_finite() && *s > 0.0 && *s <= 86_400.0,
        )?;
        Ok(match secs {
            Some(secs) => {
                let d = Duration::from_secs_f64(secs);
                Timeouts {
                    connect: d,
                    request: d,
                }
            }
            None => Timeouts {
                connect: Duration::from_secs(15),
                request: Duration::from_secs(300),
            },
        })
    }
}

/// The number in environment variable `name`, if set; an error when it does not parse or `ok` refuses it.
pub(crate) fn env_number<T: std::str::FromStr>(
    name: &'static str,
    want: &'static str,
    ok: impl Fn(&T) -> bool,
) -> Result<Option<T>, HttpError> {
    let Ok(value) = std::env::var(name) else {
        return Ok(None);
    };
    match value.trim().parse::<T>() {
        Ok(n) if ok(&n) => Ok(Some(n)),
        _ => Err(HttpError::BadEnv { name, value, want }),
    }
}

/// `realm` of a `Bearer realm="…",service="…"` challenge.
pub fn bearer_realm(challenge: &str) -> Option<String> {
    let (scheme, params) = challenge.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    params.split(',').find_map(|p| {
        let (key, value) = p.trim().split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("realm")
            .then(|| value.trim().trim_matches('"').to_string())
    })
}

/// A URL as shown to people: without user name or password (see [`SafeUrl`]).
pub fn redact(url: &Url) -> String {
    SafeUrl::from(url).to_string()
}

pub use crate::address::{is_loopback_host, redact_str};

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{name}={value:?} is not {want}\nhelp: set {name} to such a number, or unset it for the default")]
    BadEnv {
        name: &'static str,
        value: String,
        want: &'static str,
    },
    #[error("refusing plain HTTP to {url}: only loopback hosts may be reached without TLS; use https, or a [mirrors] entry with `insecure = true` if you trust the network")]
    PlainHttp { url: String },
    #[error("GET {url}: unsupported URL scheme (use http or https)")]
    Scheme { url: String },
    #[error("GET {url}: HTTP {status}: the server refused the credentials for {host}; check STACK_REGISTRY_AUTH or ~/.docker/config.json")]
    CredentialsRefused {
        url: String,
        status: StatusCode,
        host: String,
    },
    #[error("GET {url}: HTTP {status}: the server wants credentials; set STACK_REGISTRY_AUTH=\"{host}=user:password\" or log in with `docker login {host}`")]
    NeedsCredentials {
        url: String,
        status: StatusCode,
        host: String,
    },
    #[error("GET {url}: not found (HTTP 404)")]
    NotFound { url: String },
    /// A redirect reqwest does not follow: its target is not an http(s) URL (`file://`, `ftp://`, …).
    #[error("GET {url}: HTTP {status} redirects to `{location}`, which is not an http(s) URL; `stack` follows only http(s) redirects and never reads a local file for an upstream\nhelp: point stack.toml at the http(s) URL the content is really served from")]
    RedirectRefused {
        url: String,
        status: StatusCode,
        location: String,
    },
    #[error("GET {url}: HTTP {status}{}", attempts_note(*.attempts))]
    Status {
        url: String,
        status: StatusCode,
        attempts: u32,
    },
    #[error("GET {url}: HTTP {status} asks to retry after {secs} s, longer than `stack` waits ({max} s per request); nothing was changed\nhelp: run `stack lock` again later")]
    RetryAfterTooLong {
        url: String,
        status: StatusCode,
        secs: u64,
        max: u64,
    },
    #[error("GET {url}: the response is larger than the limit of {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("GET {url}: the body was truncated: {received} of {expected} bytes arrived{}", attempts_note(*.attempts))]
    Truncated {
        url: String,
        received: u64,
        expected: u64,
        attempts: u32,
    },
    #[error("GET {url}: timed out after {}s{}; raise {TIMEOUT_ENV} if the server is slow", .timeout.as_secs_f64(), attempts_note(*.attempts))]
    Timeout {
        url: String,
        timeout: Duration,
        attempts: u32,
    },
    #[error("GET {url}: {message}{}", attempts_note(*.attempts))]
    Transport {
        url: String,
        message: String,
        attempts: u32,
    },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (gave up after {attempts} attempts)")
    } else {
        String::new()
    }
}

impl HttpError {
    fn with_attempts(mut self, n: u32) -> HttpError {
        match &mut self {
            HttpError::Status { attempts, .. }
            | HttpError::Truncated { attempts, .. }
            | HttpError::Timeout { attempts, .. }
            | HttpError::Transport { attempts, .. } => *attempts = n,
            _ => {}
        }
        self
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, HttpError::NotFound { .. })
    }
}

/// One GET.
#[derive(Debug, Clone)]
pub struct Get<'a> {
    pub url: &'a Url,
    pub credentials: Option<&'a Credentials>,
    /// Send `If-None-Match` with this ETag; a 304 answer becomes [`Fetched::NotModified`].
    pub if_none_match: Option<&'a str>,
    /// Send `If-Modified-Since` with this date (the `Last-Modified` of the cached answer, as the server
    /// wrote it), for servers that give no ETag; a 304 answer becomes [`Fetched::NotModified`].
    pub if_modified_since: Option<&'a str>,
    /// The largest body accepted, in bytes.
    pub limit: u64,
    /// Plain HTTP to a host that is not loopback (a mirror with `insecure = true`).
    pub insecure: bool,
}

#[derive(Debug)]
pub enum Fetched {
    Body {
        bytes: Vec<u8>,
        /// The answer's validators, to make the next GET of the same URL conditional.
        etag: Option<String>,
        last_modified: Option<String>,
    },
    NotModified,
}

impl Fetched {
    #[cfg(test)]
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            Fetched::Body { bytes, .. } => Some(bytes),
            Fetched::NotModified => None,
        }
    }
}

/// The HTTP client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    pub timeouts: Timeouts,
    pub policy: RetryPolicy,
    /// Bounds the requests in flight across every input and every clone of this client, longest chain
    /// first.
    requests: Arc<RequestBound>,
}

/// Outcome of one attempt, before retry classification.
enum AttemptError {
    Final(HttpError),
    Retryable(HttpError, Retry),
}

impl Http {
    /// Short timeouts and near-instant retries, for unit tests against loopback servers.
    #[cfg(test)]
    pub fn for_tests() -> Http {
        Http::new(
            Timeouts {
                connect: Duration::from_secs(2),
                request: Duration::from_secs(2),
            },
            RetryPolicy {
                max_attempts: 2,
                base: Duration::from_millis(1),
            },
        )
        .expect("a client with rustls builds")
    }

    pub fn new(timeouts: Timeouts, policy: RetryPolicy) -> Result<Http, HttpError> {
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                // A redirect may not downgrade TLS to plain HTTP off loopback.
                let downgrade = attempt.url().scheme() == "http"
                    && attempt.previous().iter().all(|u| u.scheme() == "https")
                    && !attempt.url().host_str().is_some_and(is_loopback_host);
                if downgrade {
                    attempt.error("redirect from https to plain http refused")
                } else if attempt.previous().len() >= 10 {
                    attempt.error("more than 10 redirects")
                } else {
                    attempt.follow()
                }
            }))
            .build()
            .map_err(|e| HttpError::Client(e.without_url().to_string()))?;
        Ok(Http {
            client,
            timeouts,
            policy,
            requests: RequestBound::new(DEFAULT_REQUESTS_IN_FLIGHT),
        })
    }

    /// The same client with at most `n` requests in flight at once (at least one): `--jobs` of
    /// `stack lock` and `stack outdated`. Every input is resolved at the same time; this bound is what
    /// keeps a registry from seeing more than `n` connections from us (issue 15).
    pub fn with_requests_in_flight(mut self, n: usize) -> Http {
        self.requests = RequestBound::new(n);
        self
    }

    /// A place among the requests in flight, held until the answer (or, in [`Http::get`], its body)
    /// is in. When none is free, the longest chain's request gets the next one ([`on_chain`]).
    pub async fn request_permit(&self) -> Permit {
        self.requests.acquire().await
    }

    pub fn from_env() -> Result<Http, HttpError> {
        Http::new(Timeouts::from_env()?, RetryPolicy::from_env()?)
    }

    /// The underlying client (its timeouts, user agent and redirect rules), for the OCI registry API,
    /// which needs its own headers and answers (source::oci).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Refuses plain HTTP off loopback unless the caller was told it is fine.
    pub fn check_transport(url: &Url, insecure: bool) -> Result<(), HttpError> {
        match url.scheme() {
            "https" => Ok(()),
            "http" if insecure || url.host_str().is_some_and(is_loopback_host) => Ok(()),
            "http" => Err(HttpError::PlainHttp { url: redact(url) }),
            _ => Err(HttpError::Scheme { url: redact(url) }),
        }
    }

    /// GET with retries on connection errors, timeouts, truncated bodies, 5xx and 429.
    pub async fn get(&self, req: &Get<'_>) -> Result<Fetched, HttpError> {
        Http::check_transport(req.url, req.insecure)?;
        let result = retry(
            self.policy,
            || self.attempt(req),
            |e| match e {
                AttemptError::Final(_) => Retry::No,
                AttemptError::Retryable(_, r) => *r,
            },
        )
        .await;
        result.map_err(|(e, attempts)| match e {
            AttemptError::Final(e) => e,
            AttemptError::Retryable(e, _) => e.with_attempts(attempts),
        })
    }

    async fn attempt(&self, req: &Get<'_>) -> Result<Fetched, AttemptError> {
        let _in_flight = self.request_permit().await;
        let shown = redact(req.url);
        let mut builder = self.client.get(req.url.clone());
        if let Some(c) = req.credentials {
            builder = builder.basic_auth(c.username(), Some(c.password()));
        }
        if let Some(etag) = req.if_none_match {
            builder = builder.header(IF_NONE_MATCH, etag);
        }
        if let Some(date) = req.if_modified_since {
            builder = builder.header(IF_MODIFIED_SINCE, date);
        }
        let mut response = builder
            .send()
            .await
            .map_err(|e| self.transport_error(&shown, e))?;
        let status = response.status();
        let host = req.url.host_str().map(|h| match req.url.port() {
            Some(p) => format!("{h}:{p}"),
            None => h.to_string(),
        });
        let host = host.unwrap_or_default();
        let conditional = req.if_none_match.is_some() || req.if_modified_since.is_some();
        if status == StatusCode::NOT_MODIFIED && conditional {
            return Ok(Fetched::NotModified);
        }
        if let Some(e) = status_error(req, &shown, status, response.headers(), host) {
            return Err(e);
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (etag, last_modified) = (header(ETAG), header(LAST_MODIFIED));
        let bytes = self.read_body(req, shown, &mut response).await?;
        Ok(Fetched::Body {
            bytes,
            etag,
            last_modified,
        })
    }

    /// The body, up to `req.limit`, and complete (a body shorter than its Content-Length is retried).
    async fn read_body(
        &self,
        req: &Get<'_>,
        shown: String,
        response: &mut reqwest::Response,
    ) -> Result<Vec<u8>, AttemptError> {
        let expected = response.content_length();
        if expected.is_some_and(|n| n > req.limit) {
            return Err(AttemptError::Final(HttpError::TooLarge {
                url: shown,
                limit: req.limit,
            }));
        }
        let mut bytes = Vec::with_capacity(expected.unwrap_or(0).min(req.limit) as usize);
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() as u64 + chunk.len() as u64 > req.limit {
                        return Err(AttemptError::Final(HttpError::TooLarge {
                            url: shown,
                            limit: req.limit,
                        }));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(match expected {
                        _ if e.is_timeout() => self.transport_error(&shown, e),
                        Some(expected) if (bytes.len() as u64) < expected => {
                            AttemptError::Retryable(
                                HttpError::Truncated {
                                    url: shown,
                                    received: bytes.len() as u64,
                                    expected,
                                    attempts: 1,
                                },
                                Retry::Backoff,
                            )
                        }
                        _ => self.transport_error(&shown, e),
                    })
                }
            }
        }
        if let Some(expected) = expected {
            if (bytes.len() as u64) < expected {
                return Err(AttemptError::Retryable(
                    HttpError::Truncated {
                        url: shown,
                        received: bytes.len() as u64,
                        expected,
                        attempts: 1,
                    },
                    Retry::Backoff,
                ));
            }
        }
        Ok(bytes)
    }

    fn transport_error(&self, shown: &str, e: reqwest::Error) -> AttemptError {
        if e.is_timeout() {
            return AttemptError::Retryable(
                HttpError::Timeout {
                    url: shown.to_string(),
                    timeout: self.timeouts.request,
                    attempts: 1,
                },
                Retry::Backoff,
            );
        }
        let exhausted = out_of_descriptors(&e);
        let retry = if e.is_redirect() || e.is_builder() || exhausted {
            Retry::No
        } else {
            Retry::Backoff
        };
        // reqwest's message names the URL, which may carry userinfo; ours is already redacted.
        let mut message = error_chain(&e.without_url());
        if exhausted {
            message.push_str(DESCRIPTORS_HINT);
        }
        let err = HttpError::Transport {
            url: shown.to_string(),
            message,
            attempts: 1,
        };
        match retry {
            Retry::No => AttemptError::Final(err),
            r => AttemptError::Retryable(err, r),
        }
    }
}

/// The target of a redirect reqwest handed back instead of following (its `Location` is no http(s) URL),
/// shown without userinfo.
fn refused_redirect(status: StatusCode, headers: &HeaderMap) -> Option<String> {
    if !status.is_redirection() {
        return None;
    }
    let location = headers.get(reqwest::header::LOCATION)?.to_str().ok()?;
    Some(match Url::parse(location) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        Err(_) => location.to_string(),
    })
}

/// The error an answer's status means, if any: retryable (429, 5xx), or final (401/403, 404, a refused
/// redirect, any other non-success).
fn status_error(
    req: &Get<'_>,
    shown: &str,
    status: StatusCode,
    headers: &HeaderMap,
    host: String,
) -> Option<AttemptError> {
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        if let Some(asked) = retry_after(headers).filter(|d| *d > MAX_RETRY_AFTER) {
            // Waiting would only end in giving up later: say so now.
            return Some(AttemptError::Final(HttpError::RetryAfterTooLong {
                url: shown.to_string(),
                status,
                secs: asked.as_secs(),
                max: MAX_RETRY_AFTER.as_secs(),
            }));
        }
        let wait = retry_after(headers)
            .map(Retry::After)
            .unwrap_or(Retry::Backoff);
        return Some(AttemptError::Retryable(
            HttpError::Status {
                url: shown.to_string(),
                status,
                attempts: 1,
            },
            wait,
        ));
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Some(AttemptError::Final(if req.credentials.is_some() {
            HttpError::CredentialsRefused {
                url: shown.to_string(),
                status,
                host,
            }
        } else {
            HttpError::NeedsCredentials {
                url: shown.to_string(),
                status,
                host,
            }
        }));
    }
    if status == StatusCode::NOT_FOUND {
        return Some(AttemptError::Final(HttpError::NotFound {
            url: shown.to_string(),
        }));
    }
    if let Some(location) = refused_redirect(status, headers) {
        // The server's own text: it may quote the credentials it was sent.
        let secrets = req
            .credentials
            .map(Credentials::wire_forms)
            .unwrap_or_default();
        return Some(AttemptError::Final(HttpError::RedirectRefused {
            url: shown.to_string(),
            status,
            location: crate::auth::scrub(&location, &secrets),
        }));
    }
    if !status.is_success() {
        return Some(AttemptError::Final(HttpError::Status {
            url: shown.to_string(),
            status,
            attempts: 1,
        }));
    }
    None
}

#[cfg(test)]
pub(crate) mod test_server;

#[cfg(test)]
mod tests;
