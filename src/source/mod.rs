//! Upstreams: where charts and dashboards come from and how their bytes are fetched and verified. Each
//! submodule speaks one protocol (OCI registries, Helm repositories, grafana.com and plain URLs) and
//! returns domain types whose digests it has checked. This module owns what they share: the network
//! context [`Net`] and the mirror rules that decide where bytes are fetched from (never what the lock
//! records: the lock keeps the canonical source).

pub mod grafana;
pub mod helm_repo;
pub mod oci;

use std::collections::BTreeMap;

use url::Url;

use crate::auth::AuthStore;
use crate::http::{is_loopback_host, redact_str, Fetched, Get, Http, HttpError};
use crate::manifest::Mirror;
use crate::store::{Store, StoreError, Validators};

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("--mirror {0:?} is not FROM=TO (a source prefix and its replacement)")]
    BadFlag(String),
    #[error("mirror {from} → {to}: plain http:// is allowed only for loopback hosts; for another host write `[mirrors] \"{from}\" = {{ to = \"{to}\", insecure = true }}` in stack.toml")]
    PlainHttp { from: String, to: String },
    #[error(
        "mirror {from} → {to}: the target of an http(s) source must be an http:// or https:// URL"
    )]
    BadHttpTarget { from: String, to: String },
    #[error("mirror of {from}: {}", crate::auth::userinfo_message("the target"))]
    Credentials { from: String },
}

/// One rewrite rule: sources starting with `from` are fetched from `to` + the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    /// For OCI rules without `oci://`; for http(s) rules the full URL prefix.
    from: String,
    to: String,
    /// An OCI target written with `http://`, or an http(s) target, may use plain HTTP off loopback.
    insecure: bool,
    /// An OCI target written with an explicit `https://`: use TLS even on loopback.
    oci_tls: bool,
    oci: bool,
}

/// The mirror rules of stack.toml's `[mirrors]` and of `--mirror FROM=TO` (the command line wins for the
/// same prefix). The longest matching prefix wins.
#[derive(Debug, Clone, Default)]
pub struct Mirrors {
    rules: Vec<Rule>,
}

/// Where an http(s) source is fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLocation {
    pub url: Url,
    pub insecure: bool,
    /// The rule applied, as (from, to), to map URLs found at the mirror back to canonical ones.
    pub rule: Option<(String, String)>,
}

/// Where an OCI repository is fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciLocation {
    /// `host[:port]`, as oci-client names a registry.
    pub registry: String,
    pub repository: String,
    /// Plain HTTP (loopback, or a mirror with `insecure = true`).
    pub plain_http: bool,
}

impl OciLocation {
    /// The registry's host, without port or IPv6 brackets.
    pub fn host(&self) -> &str {
        let r = self.registry.as_str();
        if let Some(v6) = r.strip_prefix('[') {
            return v6.split(']').next().unwrap_or(v6);
        }
        r.rsplit_once(':').map(|(h, _)| h).unwrap_or(r)
    }
}

impl std::fmt::Display for OciLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

fn strip_scheme(s: &str) -> (&str, Option<&str>) {
    for scheme in ["oci", "https", "http"] {
        if let Some(rest) = s.strip_prefix(scheme).and_then(|r| r.strip_prefix("://")) {
            return (rest, Some(scheme));
        }
    }
    (s, None)
}

/// Joins a mirror target and the rest of a source after the matched prefix, with exactly one `/`
/// where the prefix or the target ended with one.
fn join(from: &str, to: &str, rest: &str) -> String {
    match (
        from.ends_with('/'),
        to.ends_with('/'),
        rest.starts_with('/'),
    ) {
        (true, false, false) if !rest.is_empty() => format!("{to}/{rest}"),
        (false, true, true) => format!("{to}{}", &rest[1..]),
        _ => format!("{to}{rest}"),
    }
}

/// A prefix matches on a boundary: `ghcr.io/grafana` matches `ghcr.io/grafana/loki`, not
/// `ghcr.io/grafana-community/loki`.
fn matches_prefix<'a>(s: &'a str, from: &str) -> Option<&'a str> {
    let rest = s.strip_prefix(from)?;
    let boundary = rest.is_empty() || from.ends_with('/') || rest.starts_with(['/', '?', '#']);
    boundary.then_some(rest)
}

impl Mirrors {
    pub fn new(
        manifest: &BTreeMap<String, Mirror>,
        flags: &[String],
    ) -> Result<Mirrors, MirrorError> {
        let mut raw: BTreeMap<String, (String, bool)> = BTreeMap::new();
        for (from, m) in manifest {
            raw.insert(
                from.trim().to_string(),
                (m.to().trim().to_string(), m.insecure()),
            );
        }
        for flag in flags {
            let (from, to) = flag
                .split_once('=')
                .ok_or_else(|| MirrorError::BadFlag(redact_str(flag)))?;
            if from.trim().is_empty() || to.trim().is_empty() {
                return Err(MirrorError::BadFlag(redact_str(flag)));
            }
            raw.insert(from.trim().to_string(), (to.trim().to_string(), false));
        }
        let mut rules = Vec::new();
        for (from, (to, insecure)) in raw {
            if crate::auth::has_userinfo(&from) || crate::auth::has_userinfo(&to) {
                return Err(MirrorError::Credentials {
                    from: redact_str(&from),
                });
            }
            let (from_rest, from_scheme) = strip_scheme(&from);
            let oci = !matches!(from_scheme, Some("http" | "https"));
            let shown = || (redact_str(&from), redact_str(&to));
            if oci {
                let (to_rest, to_scheme) = strip_scheme(&to);
                let host = to_rest.split('/').next().unwrap_or("");
                let host_only = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
                if to_scheme == Some("http") && !insecure && !is_loopback_host(host_only) {
                    let (from, to) = shown();
                    return Err(MirrorError::PlainHttp { from, to });
                }
                rules.push(Rule {
                    from: from_rest.trim_end_matches('/').to_string(),
                    to: to_rest.trim_end_matches('/').to_string(),
                    insecure: insecure || to_scheme == Some("http"),
                    oci_tls: to_scheme == Some("https"),
                    oci: true,
                });
            } else {
                let parsed = Url::parse(&to)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"));
                let Some(parsed) = parsed else {
                    let (from, to) = shown();
                    return Err(MirrorError::BadHttpTarget { from, to });
                };
                if parsed.scheme() == "http"
                    && !insecure
                    && !parsed.host_str().is_some_and(is_loopback_host)
                {
                    let (from, to) = shown();
                    return Err(MirrorError::PlainHttp { from, to });
                }
                rules.push(Rule {
                    from: from.trim_end_matches('/').to_string(),
                    to: to.trim_end_matches('/').to_string(),
                    insecure,
                    oci_tls: false,
                    oci: false,
                });
            }
        }
        // Longest prefix first; ties cannot happen (the map's keys are unique).
        rules.sort_by(|a, b| {
            b.from
                .len()
                .cmp(&a.from.len())
                .then_with(|| a.from.cmp(&b.from))
        });
        Ok(Mirrors { rules })
    }

    /// Where to fetch an http(s) URL from.
    pub fn http(&self, canonical: &str) -> Result<HttpLocation, url::ParseError> {
        for rule in self.rules.iter().filter(|r| !r.oci) {
            if let Some(rest) = matches_prefix(canonical, &rule.from) {
                let url = Url::parse(&join(&rule.from, &rule.to, rest))?;
                return Ok(HttpLocation {
                    url,
                    insecure: rule.insecure,
                    rule: Some((rule.from.clone(), rule.to.clone())),
                });
            }
        }
        Ok(HttpLocation {
            url: Url::parse(canonical)?,
            insecure: false,
            rule: None,
        })
    }

    /// The canonical URL of a URL found at a mirror (an absolute URL in a mirrored index.yaml), if it
    /// lies under a mirror target.
    pub fn unmirror(&self, fetched: &str) -> Option<String> {
        self.rules
            .iter()
            .filter(|r| !r.oci)
            .filter_map(|r| matches_prefix(fetched, &r.to).map(|rest| join(&r.to, &r.from, rest)))
            .next()
    }

    /// Where to fetch an OCI repository (`oci://registry/path/chart`) from.
    pub fn oci(&self, canonical: &str) -> OciLocation {
        let bare = canonical.strip_prefix("oci://").unwrap_or(canonical);
        let mut target = bare.to_string();
        let mut insecure = false;
        let mut tls = false;
        for rule in self.rules.iter().filter(|r| r.oci) {
            if let Some(rest) = matches_prefix(bare, &rule.from) {
                target = join(&rule.from, &rule.to, rest);
                insecure = rule.insecure;
                tls = rule.oci_tls;
                break;
            }
        }
        let (registry, repository) = target.split_once('/').unwrap_or((target.as_str(), ""));
        let host = if let Some(v6) = registry.strip_prefix('[') {
            v6.split(']').next().unwrap_or(v6)
        } else {
            registry
                .rsplit_once(':')
                .map(|(h, _)| h)
                .unwrap_or(registry)
        };
        OciLocation {
            registry: registry.to_string(),
            repository: repository.to_string(),
            plain_http: !tls && (insecure || is_loopback_host(host)),
        }
    }
}

/// Everything a source needs to reach the network. Built only when `stack lock` may go online: offline
/// runs never construct one, so they cannot open a connection.
pub struct Net {
    pub http: Http,
    pub oci: oci_client::Client,
    pub auth: AuthStore,
    pub mirrors: Mirrors,
    pub store: Store,
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("cannot set up the OCI client: {0}")]
    Oci(String),
}

impl Net {
    /// `plain_http_registries`: the `host:port` of every registry that may be reached without TLS.
    pub fn new(
        http: Http,
        auth: AuthStore,
        mirrors: Mirrors,
        store: Store,
        plain_http_registries: Vec<String>,
    ) -> Result<Net, NetError> {
        let config = oci_client::client::ClientConfig {
            protocol: oci_client::client::ClientProtocol::HttpsExcept(plain_http_registries),
            connect_timeout: Some(http.timeouts.connect),
            read_timeout: Some(http.timeouts.request),
            user_agent: crate::http::USER_AGENT,
            // An index holding a chart is resolved by artifact type in source::oci, never by platform.
            platform_resolver: None,
            ..Default::default()
        };
        // `Client::new` would fall back to a default (https-only) client on error; try_from reports it.
        let oci = oci_client::Client::try_from(config).map_err(|e| NetError::Oci(e.to_string()))?;
        Ok(Net {
            http,
            oci,
            auth,
            mirrors,
            store,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The URL is named by the caller's message.
    #[error("not in the content cache, and --offline forbids fetching it; run `stack lock` without --offline")]
    Offline,
    #[error("{url}: the mirror target does not make a URL: {message}")]
    Mirror { url: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl FetchError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, FetchError::Http(e) if e.is_not_found())
    }
}

/// The network, or only the cache. `--offline` runs hold [`Access::Offline`] and so cannot reach a
/// server: every answer comes from the content cache or the run fails naming what is missing.
///
/// Answers are cached under their *canonical* URL (or, for OCI, a key naming the canonical repository),
/// never the mirror they were fetched from: an offline run knows nothing of the mirrors an earlier run
/// used, and the content is the same wherever it came from.
#[derive(Clone, Copy)]
pub enum Access<'a> {
    Online(&'a Net),
    Offline {
        store: &'a Store,
        mirrors: &'a Mirrors,
    },
}

impl<'a> Access<'a> {
    pub fn store(&self) -> &'a Store {
        match self {
            Access::Online(net) => &net.store,
            Access::Offline { store, .. } => store,
        }
    }

    pub fn mirrors(&self) -> &'a Mirrors {
        match self {
            Access::Online(net) => &net.mirrors,
            Access::Offline { mirrors, .. } => mirrors,
        }
    }

    pub fn net(&self) -> Option<&'a Net> {
        match self {
            Access::Online(net) => Some(net),
            Access::Offline { .. } => None,
        }
    }

    /// A cached answer by key (a canonical URL or an OCI key).
    pub fn cached(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.store().cached_response(key)?.map(|(_, body)| body))
    }

    /// Remembers an answer by key.
    pub fn remember(&self, key: &str, body: &[u8]) -> Result<(), StoreError> {
        self.store().put_response(key, Validators::default(), body)
    }

    /// GETs the canonical URL `canonical` from where the mirrors say, remembers the answer, and returns
    /// its body. Offline, the remembered answer or an error naming the URL.
    ///
    /// When an earlier answer is remembered, the GET is conditional (`If-None-Match` with its ETag,
    /// `If-Modified-Since` with its Last-Modified) and a 304 returns the remembered body: an unchanged
    /// index.yaml or dashboard costs a round trip, not its bytes, while a changed one comes back whole.
    pub async fn get(&self, canonical: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        let key = redact_str(canonical);
        let store = self.store();
        let net = match self {
            Access::Offline { .. } => {
                return match store.cached_response(&key)? {
                    Some((_, body)) => Ok(body),
                    None => Err(FetchError::Offline),
                }
            }
            Access::Online(net) => net,
        };
        let location = net
            .mirrors
            .http(canonical)
            .map_err(|e| FetchError::Mirror {
                url: key.clone(),
                message: e.to_string(),
            })?;
        let cached = store.cached_response(&key)?;
        let meta = cached.as_ref().map(|(meta, _)| meta);
        let request = Get {
            url: &location.url,
            // Never over plain HTTP off loopback, whatever the mirror allows.
            credentials: net.auth.lookup_url(&location.url).filter(|_| {
                location.url.scheme() == "https"
                    || location.url.host_str().is_some_and(is_loopback_host)
            }),
            if_none_match: meta.and_then(|m| m.etag.as_deref()),
            if_modified_since: meta.and_then(|m| m.last_modified.as_deref()),
            limit,
            insecure: location.insecure,
        };
        match net.http.get(&request).await? {
            Fetched::NotModified => Ok(cached
                .map(|(_, body)| body)
                .expect("304 only when a validator was sent")),
            Fetched::Body {
                bytes,
                etag,
                last_modified,
            } => {
                let validators = Validators {
                    etag: etag.as_deref(),
                    last_modified: last_modified.as_deref(),
                };
                store.put_response(&key, validators, &bytes)?;
                Ok(bytes)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirrors(manifest: &[(&str, Mirror)], flags: &[&str]) -> Mirrors {
        let m = manifest
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        Mirrors::new(&m, &flags.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn oci_prefix_with_or_without_scheme_longest_wins() {
        let m = mirrors(
            &[("ghcr.io", Mirror::To("mirror.example/all".into()))],
            &["oci://ghcr.io/grafana/helm-charts=127.0.0.1:5000/grafana"],
        );
        let loc = m.oci("oci://ghcr.io/grafana/helm-charts/loki");
        assert_eq!(loc.registry, "127.0.0.1:5000");
        assert_eq!(loc.repository, "grafana/loki");
        assert!(loc.plain_http);
        let loc = m.oci("oci://ghcr.io/prometheus-community/charts/kube-prometheus-stack");
        assert_eq!(
            loc.to_string(),
            "mirror.example/all/prometheus-community/charts/kube-prometheus-stack"
        );
        assert!(!loc.plain_http);
        // No boundary, no match.
        let loc = m.oci("oci://ghcr.io/grafana/helm-charts-extra/x");
        assert_eq!(
            loc.to_string(),
            "mirror.example/all/grafana/helm-charts-extra/x"
        );
        let loc = mirrors(&[], &[]).oci("oci://127.0.0.1:5001/charts/loki");
        assert_eq!(
            (
                loc.registry.as_str(),
                loc.repository.as_str(),
                loc.plain_http
            ),
            ("127.0.0.1:5001", "charts/loki", true)
        );
    }

    #[test]
    fn cli_wins_over_manifest_for_the_same_prefix() {
        let m = mirrors(
            &[(
                "https://grafana.github.io/helm-charts",
                Mirror::To("https://a.example/x".into()),
            )],
            &["https://grafana.github.io/helm-charts=http://127.0.0.1:8080/charts/"],
        );
        let loc = m
            .http("https://grafana.github.io/helm-charts/index.yaml")
            .unwrap();
        assert_eq!(loc.url.as_str(), "http://127.0.0.1:8080/charts/index.yaml");
        let loc = m.http("https://grafana.com/api/dashboards/1").unwrap();
        assert_eq!(loc.url.as_str(), "https://grafana.com/api/dashboards/1");
        assert_eq!(loc.rule, None);
    }

    #[test]
    fn plain_http_needs_loopback_or_insecure() {
        let flags = vec!["https://grafana.com=http://10.1.2.3:8080".to_string()];
        let err = Mirrors::new(&BTreeMap::new(), &flags)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("plain http:// is allowed only for loopback"),
            "{err}"
        );
        let m = mirrors(
            &[(
                "https://grafana.com",
                Mirror::Table {
                    to: "http://10.1.2.3:8080".into(),
                    insecure: true,
                    cluster: false,
                },
            )],
            &[],
        );
        let loc = m.http("https://grafana.com/api/dashboards/1").unwrap();
        assert!(loc.insecure);
        assert_eq!(loc.url.as_str(), "http://10.1.2.3:8080/api/dashboards/1");
        let m = mirrors(
            &[(
                "ghcr.io",
                Mirror::Table {
                    to: "registry.lan:5000".into(),
                    insecure: true,
                    cluster: false,
                },
            )],
            &[],
        );
        assert!(m.oci("oci://ghcr.io/a/b").plain_http);
        assert!(Mirrors::new(&BTreeMap::new(), &["nonsense".to_string()]).is_err());
    }

    #[test]
    fn join_keeps_one_slash() {
        assert_eq!(
            join("https://a/x", "http://b/", "/index.yaml"),
            "http://b/index.yaml"
        );
        assert_eq!(
            join("https://a/x/", "http://b", "index.yaml"),
            "http://b/index.yaml"
        );
        assert_eq!(
            join("https://a/x", "http://b", "/index.yaml"),
            "http://b/index.yaml"
        );
    }
}
