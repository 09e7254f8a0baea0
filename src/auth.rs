//! Registry and repository credentials: where they come from (`STACK_REGISTRY_AUTH`, the Docker config
//! file), which host they belong to, and the promise that they are never printed, logged or locked.
//!
//! Credentials are matched on the host bytes are actually fetched from (a mirror target, not the
//! canonical source), so a mirror never receives the upstream's password and vice versa.

#![allow(
    clippy::disallowed_methods,
    reason = "its errors are wrapped with the stack-relative path; fs_err would add the absolute one to output"
)]

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::address::HostPort;

/// The environment variable with credentials: `host[:port]=user:password`, comma-separated.
pub const AUTH_ENV: &str = "STACK_REGISTRY_AUTH";

/// The one message for a URL carrying `user:password@`, whichever field it is in (`field` names the
/// field, never the URL, which holds the secret).
pub fn userinfo_message(field: &str) -> String {
    crate::diag::SecretBearing::message(
        &format!("{field}: credentials do not belong in a URL"),
        &format!("remove them and give them through {AUTH_ENV} or ~/.docker/config.json"),
    )
}

/// Whether a URL or a registry location (`oci://user:pw@host/x`, `https://u@h/`, `user:pw@host:5000`)
/// carries userinfo: an `@` before the first `/` of its authority.
pub fn has_userinfo(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.contains('@')
}

/// A username and password. `Debug` never shows either: a credential that reaches a log, an error
/// message or stack.lock is a leak, and `{:?}` is the easiest way to leak one.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: String,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    pub fn password(&self) -> &str {
        &self.password
    }
}

impl Credentials {
    /// Every form in which these credentials go on the wire, for [`scrub`]: the password, the base64
    /// of `user:password` (padded and not), and the whole `Basic …` header value.
    pub fn wire_forms(&self) -> Vec<String> {
        let pair = format!("{}:{}", self.username, self.password);
        let padded = base64::engine::general_purpose::STANDARD.encode(&pair);
        let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&pair);
        vec![
            self.password.clone(),
            format!("Basic {padded}"),
            padded,
            unpadded,
        ]
    }
}

/// `text` (a registry's or server's own words, about to reach an error message) with every secret
/// we sent it replaced by `***`: a server that echoes our `Authorization` header must not make us
/// print it. Longer secrets go first, so a `Basic …` value goes whole; each is also matched as JSON
/// writes it with `/` escaped (`\/`), as an error body may quote it.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut forms: Vec<String> = secrets
        .iter()
        .filter(|s| !s.is_empty())
        .flat_map(|s| [s.clone(), s.replace('/', "\\/")])
        .collect();
    forms.sort_by_key(|s| std::cmp::Reverse(s.len()));
    forms.dedup();
    forms.iter().fold(text.to_string(), |text, secret| {
        text.replace(secret.as_str(), "***")
    })
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The entry is quoted only by position: it holds a password.
    #[error("{AUTH_ENV}: entry {position} is not `host[:port]=user:password` (entries are comma-separated; the entry is not shown because it may hold a password)")]
    BadEnvEntry { position: usize },
    #[error("cannot read the Docker config {path}: {err}")]
    DockerConfigRead { path: PathBuf, err: std::io::Error },
    #[error("the Docker config {path} is not valid JSON: {message}")]
    DockerConfigJson { path: PathBuf, message: String },
    #[error("the Docker config {path}: `auths.{host}.auth` is not base64 of `user:password`")]
    DockerConfigEntry { path: PathBuf, host: String },
}

/// Credentials by host (`host` or `host:port`, lower case). `STACK_REGISTRY_AUTH` wins over the Docker
/// config for the same host.
#[derive(Clone, Default)]
pub struct AuthStore {
    by_host: BTreeMap<String, Credentials>,
    /// What the user should know about where credentials were not looked for (credential helpers).
    pub warnings: Vec<String>,
}

impl fmt::Debug for AuthStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthStore")
            .field("hosts", &self.by_host.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl AuthStore {
    /// Reads `STACK_REGISTRY_AUTH` and `$DOCKER_CONFIG/config.json` (or `~/.docker/config.json`).
    pub fn load() -> Result<AuthStore, AuthError> {
        let mut store = AuthStore::default();
        if let Some(path) = docker_config_path() {
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    for (host, creds) in parse_docker_config(&text, &path)? {
                        store.by_host.insert(host, creds);
                    }
                    store.warnings = helper_warnings(&text, &path);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(AuthError::DockerConfigRead { path, err: e }),
            }
        }
        if let Ok(value) = std::env::var(AUTH_ENV) {
            for (host, creds) in parse_env(&value)? {
                store.by_host.insert(host, creds);
            }
        }
        Ok(store)
    }

    #[cfg(test)]
    pub fn from_entries(entries: impl IntoIterator<Item = (String, Credentials)>) -> AuthStore {
        AuthStore {
            by_host: entries
                .into_iter()
                .map(|(h, c)| (normalize_host_key(&h), c))
                .collect(),
            warnings: Vec::new(),
        }
    }

    /// The credentials for a host as fetched from: `host:port` first, then the bare host.
    pub fn lookup(&self, host: &str, port: Option<u16>) -> Option<&Credentials> {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let key = |port| {
            HostPort {
                host: host.clone(),
                port,
            }
            .to_string()
        };
        if let Some(c) = port.and_then(|p| self.by_host.get(&key(Some(p)))) {
            return Some(c);
        }
        if let Some(c) = self.by_host.get(&key(None)) {
            return Some(c);
        }
        // Docker Hub's credentials are stored under its index host.
        if matches!(host.as_str(), "docker.io" | "registry-1.docker.io") {
            return self.by_host.get("index.docker.io");
        }
        None
    }

    /// Credentials for an OCI registry written `host[:port]`, as oci-client names it.
    pub fn lookup_registry(&self, registry: &str) -> Option<&Credentials> {
        let registry = HostPort::parse(registry).ok()?;
        self.lookup(&registry.host, registry.port)
    }

    /// Credentials for the host of a URL.
    pub fn lookup_url(&self, url: &url::Url) -> Option<&Credentials> {
        let host = url.host_str()?;
        self.lookup(host, url.port())
    }
}

/// A credential key as Docker and `STACK_REGISTRY_AUTH` write it (`host`, `host:port`, `[v6]:port`,
/// optionally with a scheme and path: `https://index.docker.io/v1/`), as the host it matches.
fn host_key(key: &str) -> Option<HostPort> {
    let key = key.trim();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    HostPort::parse(key.split('/').next().unwrap_or(key)).ok()
}

/// `https://index.docker.io/v1/` → `index.docker.io`; `Host:5000` → `host:5000`. A key that names no
/// host is kept (lower case) and matches nothing.
fn normalize_host_key(key: &str) -> String {
    host_key(key)
        .map(|h| h.to_string())
        .unwrap_or_else(|| key.trim().to_ascii_lowercase())
}

/// `host` or `host:port` with a numeric port (IPv6 literals in brackets), optionally with a scheme:
/// an entry that can match a registry.
fn valid_host_key(key: &str) -> bool {
    host_key(key).is_some()
}

fn parse_env(value: &str) -> Result<Vec<(String, Credentials)>, AuthError> {
    let mut out = Vec::new();
    for (i, entry) in value.split(',').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let bad = || AuthError::BadEnvEntry { position: i + 1 };
        let (host, userpass) = entry.split_once('=').ok_or_else(bad)?;
        let (user, pass) = userpass.split_once(':').ok_or_else(bad)?;
        if host.trim().is_empty() || user.is_empty() || !valid_host_key(host.trim()) {
            return Err(bad());
        }
        out.push((normalize_host_key(host), Credentials::new(user, pass)));
    }
    Ok(out)
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(Path::new(&dir).join("config.json"));
    }
    dirs::home_dir().map(|h| h.join(".docker").join("config.json"))
}

/// Docker's `credsStore` and `credHelpers` keep secrets in a helper program that `stack` does not run:
/// say so, naming them, instead of silently going without credentials.
fn helper_warnings(text: &str, path: &Path) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Helpers {
        #[serde(default, rename = "credsStore")]
        creds_store: Option<String>,
        #[serde(default, rename = "credHelpers")]
        cred_helpers: BTreeMap<String, String>,
    }
    let Ok(h) = serde_json::from_str::<Helpers>(text) else {
        return Vec::new();
    };
    let help = format!(
        "give the registry's credentials through {AUTH_ENV}=\"host=user:password\" instead"
    );
    let mut out = Vec::new();
    if let Some(store) = h.creds_store.filter(|s| !s.is_empty()) {
        out.push(format!(
            "{}: `credsStore: {store}` is not supported: stack does not run docker-credential-{store}, so registries whose login lives there get no credentials; {help}",
            path.display()
        ));
    }
    for (host, helper) in h.cred_helpers {
        out.push(format!(
            "{}: `credHelpers.{host}: {helper}` is not supported: stack does not run docker-credential-{helper}, so {host} gets no credentials from it; {help}",
            path.display()
        ));
    }
    out
}

fn parse_docker_config(text: &str, path: &Path) -> Result<Vec<(String, Credentials)>, AuthError> {
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default)]
        auths: BTreeMap<String, Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        auth: Option<String>,
        username: Option<String>,
        password: Option<String>,
    }
    // serde_json's message names line and column only, never the text, so it cannot echo a secret.
    let config: Config = serde_json::from_str(text).map_err(|e| AuthError::DockerConfigJson {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut out = Vec::new();
    for (host, entry) in config.auths {
        let creds = match (
            entry.auth.filter(|a| !a.is_empty()),
            entry.username,
            entry.password,
        ) {
            (Some(auth), _, _) => {
                let bad = || AuthError::DockerConfigEntry {
                    path: path.to_path_buf(),
                    host: host.clone(),
                };
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|_| bad())?;
                let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
                let (user, pass) = decoded.split_once(':').ok_or_else(bad)?;
                Credentials::new(user, pass)
            }
            (None, Some(user), Some(pass)) => Credentials::new(user, pass),
            // Entries managed by a credential helper carry no secret here.
            _ => continue,
        };
        out.push((normalize_host_key(&host), creds));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_hides_every_form_of_the_credentials_and_tokens() {
        let c = Credentials::new("bob", "SECRETPW");
        let mut secrets = c.wire_forms();
        secrets.push("tok/en+123".into());
        let text = r"bad header Basic Ym9iOlNFQ1JFVFBX; also Ym9iOlNFQ1JFVFBX, pw SECRETPW, bearer tok\/en+123 and tok/en+123";
        let shown = scrub(text, &secrets);
        for secret in ["SECRETPW", "Ym9iOlNFQ1JFVFBX", "tok/en+123", r"tok\/en+123"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.starts_with("bad header ***; also ***,"), "{shown}");
        assert_eq!(
            scrub("nothing secret here", &secrets),
            "nothing secret here"
        );
        assert_eq!(scrub("kept", &[String::new()]), "kept");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credentials::new("alice", "hunter2");
        let shown = format!(
            "{c:?} {:?}",
            AuthStore::from_entries([("r.example:5000".into(), c.clone())])
        );
        assert!(
            !shown.contains("hunter2") && !shown.contains("alice"),
            "{shown}"
        );
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn env_entries_parse_and_match_host_and_port() {
        let entries = parse_env("127.0.0.1:5000=u:p:with:colons, ghcr.io=bob:s3cret").unwrap();
        let store = AuthStore::from_entries(entries);
        assert_eq!(
            store.lookup("127.0.0.1", Some(5000)).unwrap().password(),
            "p:with:colons"
        );
        assert!(store.lookup("127.0.0.1", Some(5001)).is_none());
        assert_eq!(store.lookup_registry("ghcr.io").unwrap().username(), "bob");
        assert_eq!(
            store.lookup("GHCR.io", Some(443)).unwrap().username(),
            "bob"
        );
        assert!(store.lookup("example.com", None).is_none());
    }

    #[test]
    fn bad_env_entry_does_not_echo_the_password() {
        let err = parse_env("ok=u:p,hostonly-hunter2")
            .unwrap_err()
            .to_string();
        assert!(err.contains("entry 2"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        for bad in [
            "h:50x0=u:hunter2",
            "h:=u:hunter2",
            "h:99999=u:hunter2",
            "[::1=u:hunter2",
        ] {
            let err = parse_env(bad).unwrap_err().to_string();
            assert!(
                err.contains("entry 1") && !err.contains("hunter2"),
                "{bad}: {err}"
            );
        }
        assert!(parse_env("https://h.example:5000=u:p,[::1]:5000=u:p").is_ok());
    }

    #[test]
    fn docker_config_auths() {
        let auth = base64::engine::general_purpose::STANDARD.encode("carol:pa:ss");
        let text = format!(
            r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{auth}"}}, "localhost:5000": {{"username": "d", "password": "e"}}, "helper.example": {{}}}}, "credsStore": "desktop"}}"#
        );
        let store =
            AuthStore::from_entries(parse_docker_config(&text, Path::new("c.json")).unwrap());
        assert_eq!(store.lookup("docker.io", None).unwrap().password(), "pa:ss");
        assert_eq!(
            store.lookup("localhost", Some(5000)).unwrap().username(),
            "d"
        );
        assert!(store.lookup("helper.example", None).is_none());
        let warnings = helper_warnings(
            r#"{"credsStore": "desktop", "credHelpers": {"gcr.io": "gcloud"}}"#,
            Path::new("c.json"),
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("`credsStore: desktop` is not supported"));
        assert!(warnings[1].contains("`credHelpers.gcr.io: gcloud` is not supported"));
        let err = parse_docker_config(r#"{"auths": {"h": {"auth": "!!"}}}"#, Path::new("c.json"))
            .unwrap_err();
        assert!(err.to_string().contains("auths.h.auth"), "{err}");
    }

    #[test]
    fn ipv6_registries_match_their_credentials() {
        let store = AuthStore::from_entries(parse_env("[::1]:5000=u:p, [::1]=v:q").unwrap());
        assert_eq!(store.lookup_registry("[::1]:5000").unwrap().username(), "u");
        assert_eq!(store.lookup_registry("[::1]:5001").unwrap().username(), "v");
        assert_eq!(store.lookup_registry("[::1]").unwrap().username(), "v");
        assert!(parse_env("[::1=u:p").is_err());
    }
}
