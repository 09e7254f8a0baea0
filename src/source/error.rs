//! What can go wrong fetching an input, for every source at once: one [`InputError`] names the input
//! (chart or dashboard, by name), where upstream it was looked for ([`Location`]: a registry, a Helm
//! repository or a URL) and what went wrong ([`InputErrorKind`]), so callers match on the kind ("not
//! found", "digest mismatch", "offline and not cached") whatever the source. The message a user reads is
//! rendered from those three parts, in the wording each source has always used.
//!
//! Secrets never reach these values: what a server says back is scrubbed where it is read
//! ([`crate::auth::scrub`] in the OCI wire layer and the HTTP client), and URLs are shown redacted.

use std::fmt;

use super::{unless_helped, FetchError};

/// Which input of stack.toml an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// A chart or a dashboard.
    pub kind: InputKind,
    /// The input's name as stack.toml spells it (`[charts.NAME]`, `[dashboards.NAME]`).
    pub name: String,
}

/// Whether an input is a chart or a dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// `[charts.NAME]`.
    Chart,
    /// `[dashboards.NAME]`.
    Dashboard,
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            InputKind::Chart => write!(f, "chart `{}`", self.name),
            InputKind::Dashboard => write!(f, "dashboard `{}`", self.name),
        }
    }
}

/// Where upstream an input was looked for, as shown to the user (never with credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An OCI repository as contacted (`registry/path`, a mirror's if one applies), or, for what the
    /// cache lacks, the canonical `oci://` reference.
    Registry(String),
    /// A classic Helm repository's URL.
    Repository(String),
    /// A file's URL: a chart archive, a dashboard, grafana.com's API.
    Url(String),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Registry(s) | Location::Repository(s) | Location::Url(s) => f.write_str(s),
        }
    }
}

/// What upstream does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// The registry has no such repository (NAME_UNKNOWN).
    Repository,
    /// The repository has no such tag.
    Tag(String),
    /// The Helm repository's index has no chart of that name.
    Chart(String),
    /// grafana.com has no dashboard of that id.
    Dashboard { id: u64 },
    /// grafana.com's dashboard has no such revision.
    Revision { id: u64, revision: u64 },
}

/// Which limit on size was passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// The manifest states a chart layer larger than we accept.
    Layer { tag: String, size: u64, limit: u64 },
    /// The server sent more than the limit for `what` (a manifest, a tag page, a token).
    Body { what: &'static str, limit: u64 },
    /// The server sent more than the size the manifest states for the chart layer.
    Stated { expected: u64 },
}

/// What went wrong, the same kinds for every source.
#[derive(Debug)]
pub enum InputErrorKind {
    /// Upstream does not have it.
    NotFound(Missing),
    /// No version upstream meets the requirement. `found` says what there is: the newest versions (or
    /// that there are none) in the source's words.
    NoMatch {
        requirement: String,
        /// The chart's name in a Helm repository (the OCI path already names it).
        chart: String,
        found: String,
    },
    /// The registry refused the credentials it was given for `registry`.
    CredentialsRefused { registry: String, message: String },
    /// The registry wants credentials for `registry` and none were given.
    NeedsCredentials { registry: String, message: String },
    /// More bytes than a limit allows.
    TooLarge(Limit),
    /// The chart layer ended early.
    Truncated { received: u64, expected: u64 },
    /// The bytes do not hash to the digest upstream states for them (`what`: which bytes).
    DigestMismatch {
        what: &'static str,
        expected: String,
        actual: String,
    },
    /// `--offline`, and `what` is not in the content cache.
    Offline { what: String },
    /// The OCI artifact at `tag` is not a Helm chart.
    NotAChart { tag: String, why: String },
    /// The URL did not serve a dashboard.
    NotADashboard { message: String },
    /// grafana.com's metadata is not what was expected.
    BadMetadata { message: String },
    /// An index entry of `chart` at `version` has no download URL (`message: None`) or one that cannot
    /// be used.
    BadIndexEntry {
        chart: String,
        version: String,
        message: Option<String>,
    },
    /// The Helm repository's index could not be read (the message is shared by every chart of it).
    Index { message: String },
    /// What the registry or server said that fits no other kind.
    Upstream { message: String },
    /// No answer in time for `what`.
    Timeout {
        what: &'static str,
        secs: f64,
        attempts: u32,
    },
    /// The request for `what` failed on the way (connection, DNS, a server error after retries).
    Transport {
        what: &'static str,
        message: String,
        attempts: u32,
    },
    /// An HTTP fetch of the location failed (a chart archive, a dashboard).
    Fetch(FetchError),
    /// The content cache failed (the message names what was read).
    Cache(String),
}

/// Something that stopped one input from being fetched: which input, where, and what went wrong.
#[derive(Debug)]
pub struct InputError {
    /// The input of stack.toml.
    pub input: Input,
    /// Where upstream it was looked for.
    pub location: Location,
    /// What went wrong. Boxed: the kinds carry several strings, and every `Result` of a source would
    /// be as large.
    pub kind: Box<InputErrorKind>,
}

impl std::error::Error for InputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.kind {
            InputErrorKind::Fetch(e) => Some(e),
            _ => None,
        }
    }
}

impl InputError {
    /// An error about chart `name`.
    pub fn chart(name: &str, location: Location, kind: InputErrorKind) -> InputError {
        let input = Input {
            kind: InputKind::Chart,
            name: name.to_string(),
        };
        InputError {
            input,
            location,
            kind: Box::new(kind),
        }
    }

    /// An error about dashboard `name`.
    pub fn dashboard(name: &str, location: Location, kind: InputErrorKind) -> InputError {
        let input = Input {
            kind: InputKind::Dashboard,
            name: name.to_string(),
        };
        InputError {
            input,
            location,
            kind: Box::new(kind),
        }
    }

    /// Whether upstream answered that it does not have what was asked (a missing repository, tag, chart,
    /// dashboard or revision, or a 404 of a fetched file).
    pub fn is_not_found(&self) -> bool {
        match &*self.kind {
            InputErrorKind::NotFound(_) => true,
            InputErrorKind::Fetch(e) => e.is_not_found(),
            _ => false,
        }
    }
}

/// `" (gave up after N attempts)"` when a request was tried more than once.
pub(crate) fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (gave up after {attempts} attempts)")
    } else {
        String::new()
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use InputErrorKind as K;
        let (input, loc, name) = (&self.input, &self.location, &self.input.name);
        match (&*self.kind, loc) {
            // The cache's own message names what it was reading.
            (K::Cache(message), _) => write!(f, "content cache: {message}"),
            (K::Offline { what }, _) => write!(f, "{input}: {what} of {loc} is not in the content cache, and --offline forbids fetching it; run `stack lock` without --offline"),
            (K::NotFound(missing), _) => self.fmt_missing(f, missing),
            (K::NoMatch { requirement, chart, found }, Location::Repository(_)) => write!(f, "{input}: no version of `{chart}` in {loc} matches \"{requirement}\" (newest versions: {found})\nhelp: change `version` of [charts.{name}] in stack.toml to a requirement one of those versions meets"),
            (K::NoMatch { requirement, found, .. }, _) => write!(f, "{input}: {loc}: no tag matches \"{requirement}\" ({found})\nhelp: change `version` of [charts.{name}] in stack.toml to a version the registry has (`stack outdated` lists them)"),
            (K::CredentialsRefused { registry, message }, _) => write!(f, "{input}: {loc}: the registry refused the credentials for {registry} (unauthorized: {message}); check STACK_REGISTRY_AUTH or ~/.docker/config.json"),
            (K::NeedsCredentials { registry, message }, _) => write!(f, "{input}: {loc}: the registry wants credentials (unauthorized: {message}); set STACK_REGISTRY_AUTH=\"{registry}=user:password\" or run `docker login {registry}`"),
            (K::TooLarge(Limit::Layer { tag, size, limit }), _) => write!(f, "{input}: {loc}:{tag}: the chart layer is {size} bytes, more than the limit of {limit} bytes"),
            (K::TooLarge(Limit::Body { what, limit }), _) => write!(f, "{input}: {loc}: {what}: the registry sent more than the limit of {limit} bytes ({} MiB); stopped reading, nothing was changed\nhelp: check that `oci` of [charts.{name}] in stack.toml (or the mirror it is fetched through) names a repository of Helm charts: a chart's manifest is about a kilobyte, and a page of tags far below the limit", limit >> 20),
            (K::TooLarge(Limit::Stated { expected }), _) => write!(f, "{input}: {loc}: the registry sent more than the {expected} bytes the manifest states for the chart layer"),
            (K::Truncated { received, expected }, _) => write!(f, "{input}: {loc}: the chart layer was truncated: {received} of {expected} bytes"),
            (K::DigestMismatch { expected, actual, .. }, Location::Url(_)) => write!(f, "{input}: {loc}: digest mismatch: index.yaml states {expected}, the downloaded archive hashes to {actual}; the repository or a proxy served wrong content\nhelp: nothing was pinned; retry later (a proxy or a half-published release), and if it persists tell the repository's owners"),
            (K::DigestMismatch { what, expected, actual }, _) => write!(f, "{input}: {loc}: {what} digest mismatch: expected {expected}, the bytes hash to {actual}; the registry or a proxy served wrong content"),
            (K::NotAChart { tag, why }, _) => write!(f, "{input}: {loc}:{tag} is not a Helm chart: {why}\nhelp: check `oci` and `version` of [charts.{name}] in stack.toml: the repository may hold the project's images beside (or instead of) its chart"),
            (K::NotADashboard { message }, _) => write!(f, "{input}: {loc} did not serve a dashboard: {message}\nhelp: check `url` or `grafana_com` of [dashboards.{name}] in stack.toml: it must serve the dashboard's JSON itself (a raw file, not a web page or an API error)"),
            (K::BadMetadata { message }, _) => write!(f, "{input}: {loc}: the grafana.com metadata is not what was expected: {message}\nhelp: check `grafana_com` of [dashboards.{name}] in stack.toml, and that a `[mirrors]` entry for grafana.com serves its API"),
            (K::BadIndexEntry { chart, version, message: None }, _) => write!(f, "{input}: {chart} {version} in {loc} has no download URL (`urls` is empty)\nhelp: the repository's index.yaml is broken for this version: pin another `version` in stack.toml, or ask the repository's owners to fix it"),
            (K::BadIndexEntry { chart, version, message: Some(message) }, _) => write!(f, "{input}: {chart} {version}: the URL {:?} in index.yaml is not usable: {message}\nhelp: the repository's index.yaml is broken for this version: pin another `version` in stack.toml, or ask the repository's owners to fix it", loc.to_string()),
            (K::Index { message }, _) => write!(f, "{input}: {message}{}", unless_helped(message, &format!("check `repo` of [charts.{name}] in stack.toml: it must be a Helm repository serving index.yaml, reachable from here (or through a `[mirrors]` entry)"))),
            (K::Upstream { message }, _) => write!(f, "{input}: {loc}: {message}"),
            (K::Timeout { what, secs, attempts }, _) => write!(f, "{input}: {loc}: {what} timed out after {secs}s{}\nhelp: check that the registry is up and reachable from here; if it is only slow, raise STACK_HTTP_TIMEOUT_SECS (seconds)", attempts_note(*attempts)),
            (K::Transport { what, message, attempts }, _) => write!(f, "{input}: {loc}: {what} failed: {message}{}\nhelp: check that the registry is up and reachable from here (or fetch through a `[mirrors]` entry), then run `stack lock` again; nothing was changed", attempts_note(*attempts)),
            (K::Fetch(err), _) if input.kind == InputKind::Chart => write!(f, "{input}: downloading {loc}: {err}{}", unless_helped(err, "check that the repository is up and reachable from here (or fetch through a `[mirrors]` entry), then run `stack lock` again; nothing was changed")),
            (K::Fetch(err), _) => write!(f, "{input}: {loc}: {err}{}", unless_helped(err, &format!("check `url` or `grafana_com` of [dashboards.{name}] in stack.toml and that its host is reachable from here (or fetch through a `[mirrors]` entry), then run `stack lock` again; nothing was changed"))),
        }
    }
}

impl InputError {
    fn fmt_missing(&self, f: &mut fmt::Formatter<'_>, missing: &Missing) -> fmt::Result {
        let (input, loc, name) = (&self.input, &self.location, &self.input.name);
        match missing {
            Missing::Repository => write!(f, "{input}: {loc}: no such repository in the registry (NAME_UNKNOWN)\nhelp: check `oci` of [charts.{name}] in stack.toml, or the mirror it is fetched through"),
            Missing::Tag(tag) => write!(f, "{input}: {loc}:{tag} not found"),
            Missing::Chart(chart) => write!(f, "{input}: the repository {loc} has no chart named `{chart}`\nhelp: check `chart` of [charts.{name}] in stack.toml against the names in {loc}/index.yaml"),
            Missing::Dashboard { id } => write!(f, "{input}: grafana.com has no dashboard {id} ({loc} answered 404)\nhelp: check `grafana_com` of [dashboards.{name}] in stack.toml (the number in the dashboard's grafana.com URL)"),
            Missing::Revision { id, revision } => write!(f, "{input}: grafana.com dashboard {id} has no revision {revision} ({loc} answered 404)\nhelp: check `revision` of [dashboards.{name}] in stack.toml, or remove it to take the latest"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oci(kind: InputErrorKind) -> String {
        InputError::chart(
            "loki",
            Location::Registry("127.0.0.1:5000/loki".into()),
            kind,
        )
        .to_string()
    }

    /// The kinds are shared, the wording stays each source's: a Helm repository's and a registry's "no
    /// match" and "digest mismatch" read as they always did.
    #[test]
    fn one_kind_renders_in_each_sources_words() {
        let helm = InputError::chart(
            "alloy",
            Location::Repository("https://charts.example".into()),
            InputErrorKind::NoMatch {
                requirement: "^9".into(),
                chart: "alloy".into(),
                found: "1.2.0".into(),
            },
        );
        assert_eq!(helm.to_string(), "chart `alloy`: no version of `alloy` in https://charts.example matches \"^9\" (newest versions: 1.2.0)\nhelp: change `version` of [charts.alloy] in stack.toml to a requirement one of those versions meets");
        let registry = oci(InputErrorKind::NoMatch {
            requirement: "^9".into(),
            chart: String::new(),
            found: "newest chart versions: 6.49.0".into(),
        });
        assert_eq!(registry, "chart `loki`: 127.0.0.1:5000/loki: no tag matches \"^9\" (newest chart versions: 6.49.0)\nhelp: change `version` of [charts.loki] in stack.toml to a version the registry has (`stack outdated` lists them)");
        let digest = |location| {
            let kind = InputErrorKind::DigestMismatch {
                what: "manifest",
                expected: "sha256:aa".into(),
                actual: "sha256:bb".into(),
            };
            InputError::chart("loki", location, kind).to_string()
        };
        assert_eq!(digest(Location::Registry("r/loki".into())), "chart `loki`: r/loki: manifest digest mismatch: expected sha256:aa, the bytes hash to sha256:bb; the registry or a proxy served wrong content");
        assert!(digest(Location::Url("https://x/loki.tgz".into())).starts_with(
            "chart `loki`: https://x/loki.tgz: digest mismatch: index.yaml states sha256:aa, the downloaded archive hashes to sha256:bb;"
        ));
    }

    #[test]
    fn not_found_is_one_kind_for_every_source() {
        let tag = oci(InputErrorKind::NotFound(Missing::Tag("6.0.0".into())));
        assert_eq!(tag, "chart `loki`: 127.0.0.1:5000/loki:6.0.0 not found");
        let revision = InputError::dashboard(
            "nodes",
            Location::Url("https://grafana.com/api/dashboards/1860/revisions/9/download".into()),
            InputErrorKind::NotFound(Missing::Revision {
                id: 1860,
                revision: 9,
            }),
        );
        assert!(revision.is_not_found());
        assert_eq!(revision.to_string(), "dashboard `nodes`: grafana.com dashboard 1860 has no revision 9 (https://grafana.com/api/dashboards/1860/revisions/9/download answered 404)\nhelp: check `revision` of [dashboards.nodes] in stack.toml, or remove it to take the latest");
        let offline = InputError::chart(
            "loki",
            Location::Registry("oci://ghcr.io/grafana/loki".into()),
            InputErrorKind::Offline {
                what: "the tag list".into(),
            },
        );
        assert!(!offline.is_not_found());
        assert_eq!(offline.to_string(), "chart `loki`: the tag list of oci://ghcr.io/grafana/loki is not in the content cache, and --offline forbids fetching it; run `stack lock` without --offline");
    }

    #[test]
    fn an_uncached_url_offline_is_not_blamed_on_the_host() {
        let offline = InputError::dashboard(
            "nodes",
            Location::Url("https://example.com/nodes.json".into()),
            InputErrorKind::Fetch(FetchError::Offline),
        );
        assert_eq!(offline.to_string(), "dashboard `nodes`: https://example.com/nodes.json: not in the content cache, and --offline forbids fetching it\nhelp: run `stack lock` without --offline (once, with the network) to fill the cache");
    }
}
