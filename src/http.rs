//! The one HTTP client of `stack lock`: rustls, a `stack/<version>` user agent, connect and request
//! timeouts, retries with deterministic exponential backoff (honouring `Retry-After`), a size limit on
//! every body and detection of truncated bodies. Nothing else in the program opens an HTTP connection
//! except oci-client, whose calls go through [`retry`] and the same timeouts.
//!
//! Tests shrink the waits with `STACK_HTTP_TIMEOUT_SECS` and `STACK_RETRY_BASE_MS`.

use std::future::Future;
use std::time::Duration;

use reqwest::header::{
    HeaderMap, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, RETRY_AFTER,
};
use reqwest::StatusCode;
use url::Url;

use crate::address::SafeUrl;
use crate::auth::Credentials;

pub const USER_AGENT: &str = concat!("stack/", env!("CARGO_PKG_VERSION"));
/// Overrides both the connect timeout and the whole-request timeout, in seconds.
pub const TIMEOUT_ENV: &str = "STACK_HTTP_TIMEOUT_SECS";
/// The first retry waits this many milliseconds, each later one twice the one before.
pub const RETRY_BASE_ENV: &str = "STACK_RETRY_BASE_MS";
/// Attempts per request, the first one included.
pub const MAX_ATTEMPTS: u32 = 4;
/// A `Retry-After` longer than this is cut to it: a lock should fail rather than hang for an hour.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// All the waiting between the attempts of one request together: past it, the request gives up
/// (reported as "gave up after N attempts") instead of sleeping through `Retry-After: 100000` thrice.
pub const MAX_TOTAL_RETRY_WAIT: Duration = Duration::from_secs(30);

/// How long to wait for what.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// The whole request, body included.
    pub request: Duration,
}

impl Timeouts {
    pub fn from_env() -> Timeouts {
        match std::env::var(TIMEOUT_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| *s > 0.0)
        {
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
        }
    }
}

/// When and how often to try again. Delays are deterministic (no jitter), so tests can reason about them.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
}

impl RetryPolicy {
    pub fn from_env() -> RetryPolicy {
        let base_ms = std::env::var(RETRY_BASE_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(500);
        RetryPolicy {
            max_attempts: MAX_ATTEMPTS,
            base: Duration::from_millis(base_ms),
        }
    }

    /// The wait after the `failed`-th failed attempt (1-based): base, 2·base, 4·base, …
    pub fn backoff(&self, failed: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << failed.saturating_sub(1).min(16))
    }
}

/// What a caller wants to know about a failure to decide whether to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    No,
    /// After the policy's backoff.
    Backoff,
    /// After what the server asked for (`Retry-After`).
    After(Duration),
}

/// Runs `op` until it succeeds, fails with an error `classify` calls final, or runs out of attempts.
/// Returns the last error and how many attempts were made.
pub async fn retry<T, E, F, Fut>(
    policy: RetryPolicy,
    mut op: F,
    classify: impl Fn(&E) -> Retry,
) -> Result<T, (E, u32)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    let mut waited = Duration::ZERO;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let wait = match classify(&e) {
                    Retry::No => return Err((e, attempt)),
                    _ if attempt >= policy.max_attempts => return Err((e, attempt)),
                    Retry::Backoff => policy.backoff(attempt),
                    Retry::After(d) => d.min(MAX_RETRY_AFTER),
                };
                if waited + wait > MAX_TOTAL_RETRY_WAIT {
                    return Err((e, attempt));
                }
                waited += wait;
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
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
        })
    }

    pub fn from_env() -> Result<Http, HttpError> {
        Http::new(Timeouts::from_env(), RetryPolicy::from_env())
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

    /// The `realm` of the `WWW-Authenticate: Bearer` challenge `url` answers with (no credentials are
    /// sent), if it answers with one.
    pub async fn bearer_realm(&self, url: &Url) -> Option<String> {
        let response = self.client.get(url.clone()).send().await.ok()?;
        let header = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)?
            .to_str()
            .ok()?;
        bearer_realm(header)
    }

    async fn attempt(&self, req: &Get<'_>) -> Result<Fetched, AttemptError> {
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
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            if let Some(asked) = retry_after(response.headers()).filter(|d| *d > MAX_RETRY_AFTER) {
                // Waiting would only end in giving up later: say so now.
                return Err(AttemptError::Final(HttpError::RetryAfterTooLong {
                    url: shown,
                    status,
                    secs: asked.as_secs(),
                    max: MAX_RETRY_AFTER.as_secs(),
                }));
            }
            let wait = retry_after(response.headers())
                .map(Retry::After)
                .unwrap_or(Retry::Backoff);
            return Err(AttemptError::Retryable(
                HttpError::Status {
                    url: shown,
                    status,
                    attempts: 1,
                },
                wait,
            ));
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(AttemptError::Final(if req.credentials.is_some() {
                HttpError::CredentialsRefused {
                    url: shown,
                    status,
                    host,
                }
            } else {
                HttpError::NeedsCredentials {
                    url: shown,
                    status,
                    host,
                }
            }));
        }
        if status == StatusCode::NOT_FOUND {
            return Err(AttemptError::Final(HttpError::NotFound { url: shown }));
        }
        if let Some(location) = refused_redirect(status, response.headers()) {
            return Err(AttemptError::Final(HttpError::RedirectRefused {
                url: shown,
                status,
                location,
            }));
        }
        if !status.is_success() {
            return Err(AttemptError::Final(HttpError::Status {
                url: shown,
                status,
                attempts: 1,
            }));
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (etag, last_modified) = (header(ETAG), header(LAST_MODIFIED));
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
        Ok(Fetched::Body {
            bytes,
            etag,
            last_modified,
        })
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
        let retry = if e.is_redirect() || e.is_builder() {
            Retry::No
        } else {
            Retry::Backoff
        };
        // reqwest's message names the URL, which may carry userinfo; ours is already redacted.
        let message = error_chain(&e.without_url());
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

/// An error and its causes on one line (hyper's "connection refused" is three levels down).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// `Retry-After` in seconds (the HTTP-date form is treated as absent).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    value.parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
pub(crate) mod test_server {
    //! A tiny loopback HTTP/1.1 server answering scripted raw responses, one per connection, and
    //! recording the requests it saw.

    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    pub struct Server {
        pub base: String,
        pub requests: Arc<Mutex<Vec<String>>>,
    }

    /// One scripted answer: raw bytes to write, then whether to keep the connection open without answering.
    #[derive(Clone)]
    pub enum Answer {
        Raw(Vec<u8>),
        /// Read the request and never answer (until the test ends).
        Hang,
    }

    pub fn ok(body: &[u8], extra_headers: &str) -> Answer {
        let mut raw = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n",
            body.len()
        )
        .into_bytes();
        raw.extend_from_slice(body);
        Answer::Raw(raw)
    }

    pub fn status(code: u16, extra_headers: &str) -> Answer {
        Answer::Raw(
            format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n{extra_headers}\r\n").into_bytes(),
        )
    }

    /// Serves `answers` in order, one per connection; the last one repeats.
    pub fn serve(answers: Vec<Answer>) -> Server {
        serve_routes(vec![("", answers)])
    }

    /// Serves each path its own answers in order (the last one repeats); the route `""` answers every
    /// path no other route names; anything else gets a 404.
    pub fn serve_routes(routes: Vec<(&str, Vec<Answer>)>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let mut routes: Vec<(String, Vec<Answer>, usize)> = routes
            .into_iter()
            .map(|(p, a)| (p.to_string(), a, 0))
            .collect();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let path = head
                    .split(' ')
                    .nth(1)
                    .unwrap_or("")
                    .split('?')
                    .next()
                    .unwrap_or("")
                    .to_string();
                seen.lock().unwrap().push(head);
                let route = match routes.iter().position(|(p, _, _)| *p == path) {
                    Some(i) => Some(i),
                    None => routes.iter().position(|(p, _, _)| p.is_empty()),
                };
                let answer = match route {
                    Some(i) => {
                        let (_, answers, next) = &mut routes[i];
                        let a = answers[(*next).min(answers.len() - 1)].clone();
                        *next += 1;
                        a
                    }
                    None => status(404, ""),
                };
                match answer {
                    Answer::Raw(raw) => {
                        let _ = stream.write_all(&raw);
                        let _ = stream.flush();
                    }
                    Answer::Hang => {
                        std::thread::spawn(move || {
                            let mut buf = [0u8; 1];
                            let _ = stream.read(&mut buf);
                            std::thread::sleep(std::time::Duration::from_secs(30));
                        });
                    }
                }
            }
        });
        Server { base, requests }
    }

    impl Server {
        /// How many requests named `path` (without query).
        pub fn count(&self, path: &str) -> usize {
            self.requests
                .lock()
                .unwrap()
                .iter()
                .filter(|h| h.split(' ').nth(1).unwrap_or("").split('?').next() == Some(path))
                .count()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_server::{ok, serve, status, Answer};
    use super::*;

    fn fast() -> Http {
        Http::new(
            Timeouts {
                connect: Duration::from_secs(2),
                request: Duration::from_millis(500),
            },
            RetryPolicy {
                max_attempts: MAX_ATTEMPTS,
                base: Duration::from_millis(5),
            },
        )
        .unwrap()
    }

    fn get<'a>(url: &'a Url) -> Get<'a> {
        Get {
            url,
            credentials: None,
            if_none_match: None,
            if_modified_since: None,
            limit: 1 << 20,
            insecure: false,
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn retries_500_then_succeeds() {
        let server = serve(vec![status(500, ""), status(503, ""), ok(b"hello", "")]);
        let url = Url::parse(&format!("{}/x", server.base)).unwrap();
        let got = rt()
            .block_on(fast().get(&get(&url)))
            .unwrap()
            .into_bytes()
            .unwrap();
        assert_eq!(got, b"hello");
        assert_eq!(server.requests.lock().unwrap().len(), 3);
    }

    #[test]
    fn gives_up_after_max_attempts() {
        let server = serve(vec![status(502, "")]);
        let url = Url::parse(&format!("{}/x", server.base)).unwrap();
        let err = rt()
            .block_on(fast().get(&get(&url)))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("HTTP 502") && err.contains("gave up after 4 attempts"),
            "{err}"
        );
        assert_eq!(server.requests.lock().unwrap().len(), 4);
    }

    /// No timing assertion: the wait is what `Retry-After` says (the seconds form; an HTTP date falls back
    /// to the backoff), and the request is tried again after it.
    #[test]
    fn honours_retry_after_on_429() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "1".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(1)));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);

        let server = serve(vec![status(429, "Retry-After: 1\r\n"), ok(b"later", "")]);
        let url = Url::parse(&format!("{}/x", server.base)).unwrap();
        let got = rt()
            .block_on(fast().get(&get(&url)))
            .unwrap()
            .into_bytes()
            .unwrap();
        assert_eq!(got, b"later");
        assert_eq!(server.requests.lock().unwrap().len(), 2);
    }

    #[test]
    fn truncated_body_is_an_error() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nonly-this"
            .to_vec();
        let server = serve(vec![Answer::Raw(raw)]);
        let url = Url::parse(&format!("{}/x", server.base)).unwrap();
        let err = rt()
            .block_on(fast().get(&get(&url)))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("truncated") && err.contains("9 of 100 bytes"),
            "{err}"
        );
    }

    #[test]
    fn a_server_that_stops_answering_times_out() {
        let server = serve(vec![Answer::Hang]);
        let url = Url::parse(&format!("{}/x", server.base)).unwrap();
        let err = rt()
            .block_on(fast().get(&get(&url)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("timed out"), "{err}");
    }

    #[test]
    fn size_limit_is_enforced() {
        let server = serve(vec![ok(&[b'x'; 2000], "")]);
        let url = Url::parse(&format!("{}/x", server.base)).unwrap();
        let mut req = get(&url);
        req.limit = 1000;
        let err = rt().block_on(fast().get(&req)).unwrap_err().to_string();
        assert!(err.contains("larger than the limit of 1000 bytes"), "{err}");
        assert_eq!(server.requests.lock().unwrap().len(), 1, "not retried");
    }

    #[test]
    fn not_modified_with_etag() {
        let server = serve(vec![status(304, "")]);
        let url = Url::parse(&format!("{}/index.yaml", server.base)).unwrap();
        let mut req = get(&url);
        req.if_none_match = Some("\"abc\"");
        assert!(matches!(
            rt().block_on(fast().get(&req)).unwrap(),
            Fetched::NotModified
        ));
        assert!(server.requests.lock().unwrap()[0]
            .to_ascii_lowercase()
            .contains("if-none-match: \"abc\""));
    }

    #[test]
    fn not_modified_since_a_date_and_validators_are_kept() {
        let server = serve(vec![
            ok(
                b"v1",
                "ETag: \"e1\"\r\nLast-Modified: Thu, 01 Jan 2026 00:00:00 GMT\r\n",
            ),
            status(304, ""),
        ]);
        let url = Url::parse(&format!("{}/a.json", server.base)).unwrap();
        let Fetched::Body {
            etag,
            last_modified,
            ..
        } = rt().block_on(fast().get(&get(&url))).unwrap()
        else {
            panic!("a body first");
        };
        assert_eq!(etag.as_deref(), Some("\"e1\""));
        let mut req = get(&url);
        req.if_modified_since = last_modified.as_deref();
        assert!(matches!(
            rt().block_on(fast().get(&req)).unwrap(),
            Fetched::NotModified
        ));
        assert!(server.requests.lock().unwrap()[1]
            .to_ascii_lowercase()
            .contains("if-modified-since: thu, 01 jan 2026 00:00:00 gmt"));
    }

    #[test]
    fn unauthorized_error_does_not_contain_the_password() {
        let server = serve(vec![status(401, "WWW-Authenticate: Basic realm=\"r\"\r\n")]);
        let url = Url::parse(&format!("{}/private/index.yaml", server.base)).unwrap();
        let creds = Credentials::new("alice", "hunter2-secret");
        let mut req = get(&url);
        req.credentials = Some(&creds);
        let err = rt().block_on(fast().get(&req)).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(shown.contains("refused the credentials"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        // And the credentials were sent as Basic auth.
        assert!(server.requests.lock().unwrap()[0]
            .to_ascii_lowercase()
            .contains("authorization: basic"));
    }

    #[test]
    fn bearer_realm_is_read_from_the_challenge() {
        assert_eq!(
            bearer_realm(r#"Bearer realm="https://a/token",service="r",scope="x""#).as_deref(),
            Some("https://a/token")
        );
        assert_eq!(bearer_realm(r#"Basic realm="x""#), None);
    }

    #[test]
    fn userinfo_is_redacted() {
        let url = Url::parse("https://bob:pw@example.com/charts/index.yaml").unwrap();
        assert_eq!(redact(&url), "https://example.com/charts/index.yaml");
        assert_eq!(redact_str("oci://u:p@reg/x"), "oci://reg/x");
    }

    #[test]
    fn plain_http_only_to_loopback_or_insecure() {
        let check =
            |u: &str, insecure| Http::check_transport(&Url::parse(u).unwrap(), insecure).is_ok();
        assert!(check("http://127.0.0.1:8080/x", false));
        assert!(check("http://127.1.2.3/x", false));
        assert!(check("http://localhost:1/x", false));
        assert!(check("http://[::1]:1/x", false));
        assert!(!check("http://10.0.0.1/x", false));
        assert!(check("http://10.0.0.1/x", true));
        assert!(check("https://example.com/x", false));
        assert!(!check("ftp://example.com/x", true));
    }

    #[test]
    fn tls_is_set_up_so_https_fails_cleanly_against_a_plain_server() {
        // rustls needs a crypto provider at run time; a missing one panics instead of erroring.
        let server = serve(vec![status(200, "")]);
        let url = Url::parse(&server.base.replace("http://", "https://")).unwrap();
        let err = rt()
            .block_on(fast().get(&get(&url)))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(&format!("GET {url}")), "{err}");
    }

    #[test]
    fn backoff_doubles() {
        let p = RetryPolicy {
            max_attempts: 4,
            base: Duration::from_millis(100),
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(3), Duration::from_millis(400));
    }
}
