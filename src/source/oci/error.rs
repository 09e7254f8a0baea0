//! How a failed OCI request is named for the user: classified on the HTTP status and the registry's typed
//! error codes (the distribution spec's envelope) into an [`InputError`] of the kind that fits, and whether
//! it is worth another try.

use reqwest::StatusCode;

use super::wire::WireError;
use super::*;
use crate::http::{error_chain, Retry};
use oci_client::errors::OciErrorCode;

/// A request that failed for good: what went wrong, and after how many attempts.
#[derive(Debug)]
pub(super) struct Failed {
    pub(super) error: WireError,
    pub(super) attempts: u32,
}

impl Ctx<'_> {
    /// `failed`, named for the user: classified on the HTTP status and the registry's typed error
    /// codes (the distribution spec's error envelope), never on the text of a message.
    pub(super) fn named(&self, what: &'static str, failed: Failed) -> InputError {
        let attempts = failed.attempts;
        match failed.error {
            WireError::Timeout => self.error(Kind::Timeout {
                what,
                secs: self.timeout_secs(),
                attempts,
            }),
            WireError::TooLarge { limit } => self.error(Kind::TooLarge(Limit::Body { what, limit })),
            WireError::Token { status, message } if is_refusal(status) => {
                self.unauthorized(format!("the token realm answered HTTP {}: {message}", status.as_u16()))
            }
            WireError::Token { status, message } => self.registry_error(format!(
                "{what} failed: the token realm answered HTTP {}: {message}",
                status.as_u16()
            )),
            WireError::PlainRealm(realm) => self.registry_error(format!(
                "the registry's token realm {} is not HTTPS and not on loopback, so its credentials were not sent; use the registry over HTTPS",
                crate::http::redact_str(&realm)
            )),
            WireError::ForeignLink(link) => self.registry_error(format!(
                "{what} failed: the next page's `Link` {link} leaves the registry; refusing to follow it with the registry's token"
            )),
            WireError::Transport(e) => self.error(Kind::Transport {
                what,
                message: format!("{}: {}", transport_kind(&e), error_chain(&e.without_url())),
                attempts,
            }),
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
    ) -> InputError {
        let shown = format!("HTTP {}: {message}", status.as_u16());
        let code = |c: OciErrorCode| codes.contains(&c);
        // Only the status says the credentials were refused: a `400` whose code is DENIED is a bad
        // request (a registry's codes are not always the spec's for the status).
        if is_refusal(status) {
            self.unauthorized(shown)
        } else if code(OciErrorCode::NameUnknown) {
            self.error(Kind::NotFound(Missing::Repository))
        } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            self.error(Kind::Transport {
                what,
                message: format!("the registry answered with a server error: {shown}"),
                attempts,
            })
        } else {
            self.registry_error(format!("{what} failed: {shown}"))
        }
    }

    /// A refusal: the registry wants credentials, or refused the ones it was given.
    fn unauthorized(&self, message: String) -> InputError {
        let registry = self.location.registry.clone();
        if self.credentials.is_none() {
            self.error(Kind::NeedsCredentials { registry, message })
        } else {
            self.error(Kind::CredentialsRefused { registry, message })
        }
    }

    fn timeout_secs(&self) -> f64 {
        self.access
            .request_timeout()
            .map_or(0.0, |timeout| timeout.as_secs_f64())
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
        WireError::Transport(e)
            if !(e.is_redirect() || e.is_builder() || crate::http::out_of_descriptors(e)) =>
        {
            Retry::Backoff
        }
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
    } else if crate::http::out_of_descriptors(e) {
        "this process ran out of file descriptors (lower `--jobs`, requests in flight, or raise the open-file limit, `ulimit -n`)"
    } else if e.is_timeout() {
        "the registry did not answer in time"
    } else {
        "the request failed"
    }
}
