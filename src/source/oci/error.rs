//! What can go wrong with an OCI registry, named for the user: the error type, and how a failed request is classified (HTTP status and the registry's typed error codes).

use reqwest::StatusCode;

use super::wire::WireError;
use super::*;
use crate::http::{error_chain, Retry};
use oci_client::errors::OciErrorCode;

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
    #[error("chart `{input}`: {location}: {what}: the registry sent more than the limit of {limit} bytes ({} MiB); stopped reading, nothing was changed\nhelp: check that `oci` of [charts.{input}] in stack.toml (or the mirror it is fetched through) names a repository of Helm charts: a chart's manifest is about a kilobyte, and a page of tags far below the limit", .limit >> 20)]
    BodyTooLarge {
        input: String,
        location: String,
        what: &'static str,
        limit: u64,
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
    #[error("chart `{input}`: {location}: {what} timed out after {secs}s{}\nhelp: check that the registry is up and reachable from here; if it is only slow, raise STACK_HTTP_TIMEOUT_SECS (seconds)", attempts_note(*.attempts))]
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

pub(super) fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (gave up after {attempts} attempts)")
    } else {
        String::new()
    }
}

/// A request that failed for good: what went wrong, and after how many attempts.
#[derive(Debug)]
pub(super) struct Failed {
    pub(super) error: WireError,
    pub(super) attempts: u32,
}

impl Ctx<'_> {
    /// `failed`, named for the user: classified on the HTTP status and the registry's typed error
    /// codes (the distribution spec's error envelope), never on the text of a message.
    pub(super) fn named(&self, what: &'static str, failed: Failed) -> OciError {
        let (input, location) = (self.input.clone(), self.shown());
        let attempts = failed.attempts;
        match failed.error {
            WireError::Timeout => OciError::Timeout {
                input,
                location,
                what,
                secs: self.timeout_secs(),
                attempts,
            },
            WireError::TooLarge { limit } => OciError::BodyTooLarge {
                input,
                location,
                what,
                limit,
            },
            WireError::Token { status, message } if is_refusal(status) => {
                self.unauthorized(format!("the token realm answered HTTP {}: {message}", status.as_u16()))
            }
            WireError::Token { status, message } => OciError::Registry {
                input,
                location,
                message: format!(
                    "{what} failed: the token realm answered HTTP {}: {message}",
                    status.as_u16()
                ),
            },
            WireError::PlainRealm(realm) => OciError::Registry {
                input,
                location,
                message: format!(
                    "the registry's token realm {} is not HTTPS and not on loopback, so its credentials were not sent; use the registry over HTTPS",
                    crate::http::redact_str(&realm)
                ),
            },
            WireError::ForeignLink(link) => OciError::Registry {
                input,
                location,
                message: format!(
                    "{what} failed: the next page's `Link` {link} leaves the registry; refusing to follow it with the registry's token"
                ),
            },
            WireError::Transport(e) => OciError::Transport {
                input,
                location,
                what,
                message: format!("{}: {}", transport_kind(&e), error_chain(&e.without_url())),
                attempts,
            },
            WireError::Status {
                status,
                codes,
                message,
                ..
            } => self.named_status(what, status, &codes, &message, attempts),
        }
    }

    /// An answer that is not success, by its status and the registry's error codes.
    fn named_status(
        &self,
        what: &'static str,
        status: StatusCode,
        codes: &[OciErrorCode],
        message: &str,
        attempts: u32,
    ) -> OciError {
        let (input, location) = (self.input.clone(), self.shown());
        let shown = format!("HTTP {}: {message}", status.as_u16());
        let code = |c: OciErrorCode| codes.contains(&c);
        // Only the status says the credentials were refused: a `400` whose code is DENIED is a bad
        // request (a registry's codes are not always the spec's for the status).
        if is_refusal(status) {
            self.unauthorized(shown)
        } else if code(OciErrorCode::NameUnknown) {
            OciError::NoRepository { input, location }
        } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            OciError::Transport {
                input,
                location,
                what,
                message: format!("the registry answered with a server error: {shown}"),
                attempts,
            }
        } else {
            OciError::Registry {
                input,
                location,
                message: format!("{what} failed: {shown}"),
            }
        }
    }

    /// A refusal: the registry wants credentials, or refused the ones it was given.
    fn unauthorized(&self, message: String) -> OciError {
        let (input, location) = (self.input.clone(), self.shown());
        let registry = self.location.registry.clone();
        if self.credentials.is_none() {
            OciError::NeedsCredentials {
                input,
                location,
                registry,
                message,
            }
        } else {
            OciError::CredentialsRefused {
                input,
                location,
                registry,
                message,
            }
        }
    }

    fn timeout_secs(&self) -> f64 {
        self.access
            .net()
            .map_or(0.0, |net| net.http.timeouts.request.as_secs_f64())
    }
}

fn is_refusal(status: StatusCode) -> bool {
    status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN
}

/// Whether a failed request is worth another try: connection failures, timeouts, 5xx and 429 (after
/// the `Retry-After` the registry asked for), and the spec's TOOMANYREQUESTS.
pub(super) fn retry_kind(e: &WireError) -> Retry {
    match e {
        WireError::Timeout => Retry::Backoff,
        WireError::Transport(e) if !(e.is_redirect() || e.is_builder()) => Retry::Backoff,
        WireError::Status {
            status,
            codes,
            retry_after,
            ..
        } if status.is_server_error()
            || *status == StatusCode::TOO_MANY_REQUESTS
            || codes.contains(&OciErrorCode::Toomanyrequests) =>
        {
            retry_after.map_or(Retry::Backoff, Retry::After)
        }
        WireError::Token { status, .. } if status.is_server_error() => Retry::Backoff,
        _ => Retry::No,
    }
}

/// What went wrong on the wire, in words: a refused connection, a host name that does not resolve, no
/// answer in time. Never "authentication".
pub(super) fn transport_kind(e: &reqwest::Error) -> &'static str {
    let refused = std::iter::successors(Some(e as &dyn std::error::Error), |e| e.source())
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
    let text = error_chain(e).to_ascii_lowercase();
    if refused {
        "the connection was refused (is the registry running, and is the host:port right?)"
    } else if text.contains("dns error") || text.contains("failed to lookup address") {
        "the host name does not resolve"
    } else if e.is_timeout() {
        "the registry did not answer in time"
    } else {
        "the request failed"
    }
}
