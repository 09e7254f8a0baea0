//! Network addresses as stack shows and compares them: [`HostPort`] (a registry or credential key,
//! `host[:port]` with IPv6 literals in brackets), loopback detection, and [`SafeUrl`], a URL whose display
//! never carries a user name or password. One parser for every place that reads `host:port` (mirrors,
//! credentials, `STACK_REGISTRY_AUTH`, the plain-HTTP loopback rule), so IPv6 works everywhere alike.

use std::fmt;
use std::net::IpAddr;

use url::Url;

/// `host[:port]`: a host name, an IPv4 address or an IPv6 literal (written `[::1]`), and an optional port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostPort {
    /// The host without IPv6 brackets, lower case.
    pub host: String,
    pub port: Option<u16>,
}

impl HostPort {
    /// Parses `host`, `host:port`, `[v6]` or `[v6]:port`. A bare IPv6 literal without brackets (`::1`) is
    /// read as a host without port.
    pub fn parse(text: &str) -> Result<HostPort, String> {
        let bad = |why: &str| format!("`{text}` is not host[:port]: {why}");
        let (host, port) = match text.strip_prefix('[') {
            Some(rest) => {
                let (host, after) = rest
                    .split_once(']')
                    .ok_or_else(|| bad("an IPv6 literal needs its closing `]`"))?;
                if host.parse::<std::net::Ipv6Addr>().is_err() {
                    return Err(bad("the part in brackets is not an IPv6 address"));
                }
                match after {
                    "" => (host, None),
                    _ => (
                        host,
                        Some(
                            after
                                .strip_prefix(':')
                                .ok_or_else(|| bad("expected `:port` after `]`"))?,
                        ),
                    ),
                }
            }
            None => match text.split_once(':') {
                Some(_) if text.parse::<std::net::Ipv6Addr>().is_ok() => (text, None),
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            },
        };
        if host.is_empty() || host.contains(['@', ' ', '/', '[', ']']) {
            return Err(bad(
                "the host is empty or holds `@`, `/`, brackets or spaces",
            ));
        }
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => Some(p),
                _ => return Err(bad("the port must be a number from 1 to 65535")),
            },
        };
        Ok(HostPort {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Whether plain HTTP may reach this host without `insecure = true`: see [`is_loopback_host`].
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

/// 127.0.0.0/8, ::1 and `localhost`: the only hosts plain HTTP may reach without `insecure = true`.
/// Takes a host as [`Url::host_str`] gives it (IPv6 in brackets) or without brackets.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    host.parse::<IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// A URL as shown to people and written to logs: its display never holds a user name or password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafeUrl(Url);

impl From<&Url> for SafeUrl {
    fn from(url: &Url) -> SafeUrl {
        let mut u = url.clone();
        if !u.username().is_empty() || u.password().is_some() {
            let _ = u.set_username("");
            let _ = u.set_password(None);
        }
        SafeUrl(u)
    }
}

impl fmt::Display for SafeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// A URL given as text, shown without credentials: as written when it holds none (no trailing `/`
/// added); text that is not a URL is shown with anything between `://` and the last `@` removed.
pub fn redact_str(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) if u.username().is_empty() && u.password().is_none() => url.to_string(),
        Ok(u) => SafeUrl::from(&u).to_string(),
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}{}", &url[..s + 3], &url[at + 1..]),
            _ => url.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_reads_names_v4_and_bracketed_v6() {
        let hp = |s: &str| HostPort::parse(s).unwrap();
        assert_eq!(
            hp("ghcr.io"),
            HostPort {
                host: "ghcr.io".into(),
                port: None
            }
        );
        assert_eq!(
            hp("Host:5000"),
            HostPort {
                host: "host".into(),
                port: Some(5000)
            }
        );
        assert_eq!(hp("127.0.0.1:5000").port, Some(5000));
        assert_eq!(
            hp("[::1]:5000"),
            HostPort {
                host: "::1".into(),
                port: Some(5000)
            }
        );
        assert_eq!(
            hp("[::1]"),
            HostPort {
                host: "::1".into(),
                port: None
            }
        );
        assert_eq!(hp("::1").host, "::1");
        assert_eq!(hp("[::1]:5000").to_string(), "[::1]:5000");
        assert_eq!(hp("ghcr.io").to_string(), "ghcr.io");
        for bad in [
            "",
            ":5000",
            "h:0",
            "h:x",
            "h:70000",
            "[::1",
            "[::1]5000",
            "[nope]:1",
            "u@h",
        ] {
            assert!(HostPort::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_is_127_8_v6_one_and_localhost() {
        for host in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "[::1]",
            "localhost:1",
            "a.localhost",
        ] {
            assert!(HostPort::parse(host).unwrap().is_loopback(), "{host}");
        }
        for host in [
            "ghcr.io",
            "10.0.0.1:5000",
            "[::2]:5000",
            "localhost.example.com",
        ] {
            assert!(!HostPort::parse(host).unwrap().is_loopback(), "{host}");
        }
    }

    #[test]
    fn safe_urls_never_show_credentials() {
        let url = Url::parse("https://bob:s3cret@example.com/x?y=1").unwrap();
        assert_eq!(SafeUrl::from(&url).to_string(), "https://example.com/x?y=1");
        assert_eq!(
            redact_str("https://bob:s3cret@example.com/x"),
            "https://example.com/x"
        );
        assert_eq!(redact_str("https://example.com"), "https://example.com");
        assert_eq!(redact_str("oci+x://bob:pw@host/a"), "oci+x://host/a");
        assert_eq!(redact_str("not a url u:p@h"), "not a url u:p@h");
    }
}
