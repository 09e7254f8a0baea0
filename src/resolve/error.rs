//! What can stop resolution: one error per failure, gathered when several inputs fail.

use crate::source::InputError;
use crate::store::StoreError;

/// Why `stack lock` (or its remote check) could not compute the next lock.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{}: no chart or dashboard of that name in stack.toml\nhelp: use an input's name as stack.toml spells it (`[charts.NAME]`, `[dashboards.NAME]`)", .names.join(", "))]
    UnknownUpdate { names: Vec<String> },
    #[error("{kind} `{input}`: {why}, and --offline forbids asking the network; run `stack lock` without --offline")]
    Offline {
        kind: &'static str,
        input: String,
        why: String,
    },
    #[error("{kind} `{input}`: upstream content changed under the same {pinned}: stack.lock has {locked}, upstream now serves {fetched}. Nothing was re-pinned.\nhelp: find out why upstream changed; to accept the new content on purpose, run `stack lock --accept-changed {input}`")]
    ContentChanged {
        kind: &'static str,
        input: String,
        pinned: String,
        locked: String,
        fetched: String,
    },
    #[error("chart `{input}`: the archive of {origin} {version} is not the chart asked for: {why}; Flux would install another chart than stack.toml names. Nothing was pinned.\nhelp: check `oci`, `repo` and `chart` of [charts.{input}] in stack.toml (the chart's name is the last part of an OCI path, or `chart` of a Helm repository); when the version differs, the publisher tagged another chart: require another version")]
    NotTheChart {
        input: String,
        origin: String,
        version: String,
        why: String,
    },
    /// One input could not be fetched (any source: match on its kind). Boxed: it carries several
    /// strings, and every Result of this module would be as large.
    #[error(transparent)]
    Input(Box<InputError>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("`{input}`: upstream states {why}, and stack.lock records only sha256 and blake3 digests\nhelp: the registry or repository serves something other than a Helm chart; check `oci`/`repo` in stack.toml")]
    Digest { input: String, why: String },
    /// The pins do not make a lock (a name twice, a path outside vendor/): a defect of resolution.
    #[error("{0}\nhelp: this is a bug in stack; please report it with your stack.toml")]
    Lock(#[from] crate::lock::LockError),
    #[error("{} inputs failed:\n{}", .0.len(), .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Many(Vec<ResolveError>),
}

impl From<InputError> for ResolveError {
    fn from(e: InputError) -> Self {
        ResolveError::Input(Box::new(e))
    }
}

impl ResolveError {
    /// None, one error, or all of them.
    pub(super) fn collect(mut errors: Vec<ResolveError>) -> Result<(), ResolveError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.pop().expect("one")),
            _ => Err(ResolveError::Many(errors)),
        }
    }
}
