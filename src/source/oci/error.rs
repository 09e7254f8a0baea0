//! What can go wrong with an OCI registry, named for the user: the error type and how oci-client's errors are classified.

use super::*;

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

/// What went wrong in one oci-client call, before it is named.
pub(super) enum CallError {
    Oci(OciDistributionError),
    Timeout,
}

impl Ctx<'_> {
    pub(super) fn name_error(
        &self,
        what: &'static str,
        e: CallError,
        attempts: u32,
        secs: f64,
    ) -> OciError {
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
}

/// Connection failures, timeouts, 5xx and 429 are worth another try.
/// What went wrong on the wire, in words: a refused connection, a host name that does not resolve, no
/// answer in time, or a server error. Never "authentication".
pub(super) fn transport_kind(e: &OciDistributionError) -> &'static str {
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

pub(super) fn transient(e: &OciDistributionError) -> bool {
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
pub(super) fn describe(e: &OciDistributionError) -> String {
    match e {
        OciDistributionError::RequestError(r) => error_chain(r),
        OciDistributionError::ServerError { code, message, .. } => {
            let message: String = message.chars().take(200).collect();
            format!("HTTP {code}: {}", message.trim())
        }
        other => error_chain(other),
    }
}

pub(super) fn is_not_found_message(message: &str) -> bool {
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
