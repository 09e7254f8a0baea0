//! Mirrors: the rules of stack.toml's `[mirrors]` and `--mirror FROM=TO` that decide where bytes are
//! fetched from (never what the lock records: the lock keeps the canonical source). Plain HTTP is allowed
//! to loopback hosts (127.0.0.0/8, `[::1]`, `localhost`) and to mirrors marked `insecure = true`.

use std::collections::BTreeMap;

use url::Url;

use crate::address::HostPort;
use crate::http::{is_loopback_host, redact_str};
use crate::manifest::Mirror;

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
    /// Whether the registry is a loopback host (see [`HostPort::is_loopback`]).
    pub fn is_loopback(&self) -> bool {
        HostPort::parse(&self.registry).is_ok_and(|h| h.is_loopback())
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
                let registry = HostPort::parse(to_rest.split('/').next().unwrap_or(""));
                let loopback = registry.is_ok_and(|h| h.is_loopback());
                if to_scheme == Some("http") && !insecure && !loopback {
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
        let mut location = OciLocation {
            registry: registry.to_string(),
            repository: repository.to_string(),
            plain_http: false,
        };
        location.plain_http = !tls && (insecure || location.is_loopback());
        location
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

    #[test]
    fn ipv6_loopback_targets_are_loopback() {
        for flag in [
            "ghcr.io=http://[::1]:5000",
            "ghcr.io=http://[::1]",
            "ghcr.io=[::1]:5000/x",
        ] {
            let m = mirrors(&[], &[flag]);
            let loc = m.oci("oci://ghcr.io/grafana/loki");
            assert!(loc.plain_http, "{flag}: {loc:?}");
            assert!(loc.registry.starts_with("[::1]"), "{flag}: {loc:?}");
        }
        let m = mirrors(&[], &["https://grafana.com=http://[::1]:8080"]);
        let loc = m.http("https://grafana.com/api/dashboards/1").unwrap();
        assert_eq!(loc.url.as_str(), "http://[::1]:8080/api/dashboards/1");
        let err = Mirrors::new(&BTreeMap::new(), &["ghcr.io=http://[::2]:5000".to_string()]);
        assert!(matches!(err, Err(MirrorError::PlainHttp { .. })), "{err:?}");
    }
}
