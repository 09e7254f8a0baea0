//! `GhcrProxy`: a real reverse proxy on a free port of 127.0.0.1 (std threads, one connection per request)
//! in front of a real [`Registry`], that behaves like ghcr.io where Debian's docker-registry 2.8 does not:
//!
//! - **Anonymous bearer tokens.** Every `/v2/…` request without `Authorization: Bearer <a token it issued>`
//!   gets `401` with `WWW-Authenticate: Bearer realm="http://127.0.0.1:PORT/token",service="ghcr.io",
//!   scope="repository:<name>:pull"` and ghcr's JSON error body. `GET /token?scope=…&service=…` answers
//!   `{"token":"djE6…"}` (opaque, not a JWT, as ghcr's are); the token is good only for the repositories and
//!   actions its scope named (pull for GET/HEAD, push for the rest). With
//!   [`GhcrProxy::require_basic_auth`] the token endpoint demands those Basic credentials, as ghcr does for a
//!   private package. `GET /v2/` without a token gets ghcr's literal challenge (its scope names
//!   `user/image`, a ghcr quirk clients must ignore).
//! - **Tag paging.** `GET /v2/<name>/tags/list` is answered by the proxy itself: the full list is fetched
//!   from the registry, sorted lexically (byte order, as ghcr sorts: `1.10.0` before `1.9.0`), the tags after
//!   `last` are kept, at most `n` of them are sent (default [`DEFAULT_PAGE_SIZE`], see
//!   [`GhcrProxy::set_page_size`]; an optional server cap, [`GhcrProxy::set_max_page_size`], clamps a larger
//!   `n`), with `Link: </v2/<name>/tags/list?last=X&n=N>; rel="next"` while more remain. A page past the end
//!   has `"tags": null`, as ghcr has been seen to send (oci-client's own ghcr test notes it).
//! - **Blob redirects** (opt-in, [`GhcrProxy::redirect_blobs`]): an authorized blob GET gets `307` to a
//!   signed "storage" URL on another host name (`localhost`), served without a token, as ghcr sends blobs
//!   to pkg-containers.githubusercontent.com.
//!
//! Authorized requests are forwarded to the registry with their method, path, query and body, and the
//! headers that matter (Accept, Content-Type, Range; the registry itself is anonymous, so the bearer token
//! stays at the proxy); the answer keeps Content-Type, Docker-Content-Digest, Content-Length (also on HEAD),
//! ETag, ranges and upload headers, with `Location` rewritten from the registry to the proxy. Every request
//! is logged ([`ProxyRequest`]) with the status the proxy answered, so a test can prove the token flow
//! happened, which credentials reached the token endpoint and how many tag pages were fetched.
//!
//! The proxy only knows the registry's URL: keep the [`Registry`] alive as long as the proxy. Reading
//! requests and writing answers on the wire, and the accept loop, are [`super::wire`]'s.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};

use base64::Engine as _;

use super::http_client;
use super::registry::Registry;
use super::wire::{self, Request};

/// The `service` of the challenge, as ghcr.io states it.
pub const SERVICE: &str = "ghcr.io";
/// ghcr's page size when a tags/list request has no `n`.
pub const DEFAULT_PAGE_SIZE: usize = 100;

const UNAUTHORIZED_BODY: &str =
    r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
const DENIED_BODY: &str =
    r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;

/// A request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct ProxyRequest {
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    /// The path without the query.
    pub path: String,
    /// The query, percent-decoded, in order (a key may repeat).
    pub query: Vec<(String, String)>,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    /// What the proxy answered.
    pub status: u16,
    /// For a tags/list page the proxy answered with 200: the tags it sent.
    pub page: Option<Vec<String>>,
    /// The `Link` header the proxy answered with, if any.
    pub link: Option<String>,
}

impl ProxyRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::header(&self.headers, name)
    }

    /// The first value of query parameter `key`.
    pub fn query_value(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_token_request(&self) -> bool {
        self.path == "/token"
    }

    /// The token of an `Authorization: Bearer` header.
    pub fn bearer_token(&self) -> Option<&str> {
        bearer_of(&self.headers)
    }

    /// The (user, password) of an `Authorization: Basic` header.
    pub fn basic_credentials(&self) -> Option<(String, String)> {
        basic_of(&self.headers)
    }
}

fn bearer_of(headers: &BTreeMap<String, String>) -> Option<&str> {
    let value = headers.get("authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn basic_of(headers: &BTreeMap<String, String>) -> Option<(String, String)> {
    let value = headers.get("authorization")?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// What a token allows: `actions` (pull, push) on `repository`.
#[derive(Debug, Clone)]
struct Grant {
    repository: String,
    actions: BTreeSet<String>,
}

struct State {
    page_size: usize,
    max_page_size: Option<usize>,
    redirect_blobs: bool,
    basic_auth: Option<(String, String)>,
    /// Issued tokens and what each allows.
    tokens: BTreeMap<String, Vec<Grant>>,
    log: Vec<ProxyRequest>,
}

struct Shared {
    state: Mutex<State>,
    /// `http://127.0.0.1:PORT` of the registry.
    upstream: String,
    /// `http://127.0.0.1:PORT` of the proxy.
    url: String,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// See the module docs. Stops on `Drop`.
pub struct GhcrProxy {
    shared: Arc<Shared>,
    accepting: wire::Accepting,
}

impl GhcrProxy {
    /// Starts a proxy in front of `registry` (an anonymous one: the harness pushes to it directly).
    pub fn start(registry: &Registry) -> GhcrProxy {
        let listener = wire::Listener::bind();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                page_size: DEFAULT_PAGE_SIZE,
                max_page_size: None,
                redirect_blobs: false,
                basic_auth: None,
                tokens: BTreeMap::new(),
                log: Vec::new(),
            }),
            upstream: registry.http_url(),
            url: listener.url(),
        });
        let handler_shared = Arc::clone(&shared);
        let accepting = listener.serve("ghcr-proxy", move |stream, request| {
            handle(&handler_shared, stream, request)
        });
        GhcrProxy { shared, accepting }
    }

    pub fn port(&self) -> u16 {
        self.accepting.port()
    }

    /// `127.0.0.1:PORT`: a `--mirror` target or a `STACK_REGISTRY_AUTH` key.
    pub fn host(&self) -> String {
        self.accepting.host()
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    /// `ghcr.io=127.0.0.1:PORT`, the value of a `--mirror` flag that sends ghcr.io here.
    pub fn mirror_arg(&self) -> String {
        format!("ghcr.io={}", self.host())
    }

    /// The page size of a tags/list request without `n` (ghcr: 100).
    pub fn set_page_size(&self, n: usize) -> &Self {
        assert!(n > 0, "a page holds at least one tag");
        self.shared.state().page_size = n;
        self
    }

    /// The most tags one page holds whatever `n` asks for (none by default: ghcr sent 169 tags for
    /// `?n=10000`). Other registries cap `n`; a client must page on either way.
    pub fn set_max_page_size(&self, n: usize) -> &Self {
        assert!(n > 0, "a page holds at least one tag");
        self.shared.state().max_page_size = Some(n);
        self
    }

    /// Answers an authorized blob GET with `307` to "blob storage", as ghcr does (to
    /// pkg-containers.githubusercontent.com): `http://localhost:PORT/storage/<name>/blobs/<digest>?sig=…`,
    /// another host than the registry's `127.0.0.1:PORT` as far as a client is concerned, served without
    /// a token (the URL is the credential). Off by default.
    pub fn redirect_blobs(&self, on: bool) -> &Self {
        self.shared.state().redirect_blobs = on;
        self
    }

    /// Requests to the blob storage of [`GhcrProxy::redirect_blobs`].
    pub fn storage_requests(&self) -> Vec<ProxyRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/storage/"))
            .collect()
    }

    /// Makes the token endpoint demand `Authorization: Basic base64(user:password)` (a private package):
    /// 401 without them or with others.
    pub fn require_basic_auth(&self, user: &str, password: &str) -> &Self {
        self.shared.state().basic_auth = Some((user.to_string(), password.to_string()));
        self
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<ProxyRequest> {
        self.shared.state().log.clone()
    }

    /// Requests to the token endpoint.
    pub fn token_requests(&self) -> Vec<ProxyRequest> {
        self.requests()
            .into_iter()
            .filter(ProxyRequest::is_token_request)
            .collect()
    }

    /// Requests to `/v2/…` (the registry API), answered or refused.
    pub fn registry_requests(&self) -> Vec<ProxyRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/v2"))
            .collect()
    }

    /// `/v2/…` requests refused with the 401 Bearer challenge.
    pub fn challenges(&self) -> Vec<ProxyRequest> {
        self.registry_requests()
            .into_iter()
            .filter(|r| r.status == 401)
            .collect()
    }

    /// The tags/list pages of `repository` the proxy answered with 200, in order.
    pub fn tag_pages(&self, repository: &str) -> Vec<ProxyRequest> {
        let path = format!("/v2/{repository}/tags/list");
        self.requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path == path && r.status == 200)
            .collect()
    }

    /// Every token the proxy has issued.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.state().tokens.keys().cloned().collect()
    }

    /// Forgets the request log (issued tokens stay valid).
    pub fn clear_log(&self) {
        self.shared.state().log.clear();
    }
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The Content-Length to announce for a HEAD (the registry's), since no body comes with it.
    head_length: Option<usize>,
    /// The tags of a tags/list page, for the log.
    page: Option<Vec<String>>,
}

impl Answer {
    fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Answer {
        Answer {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
            head_length: None,
            page: None,
        }
    }

    fn json(status: u16, body: &str) -> Answer {
        Answer::new(status, "application/json", body)
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn link(&self) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("link"))
            .map(|(_, v)| v.clone())
    }
}

fn handle(shared: &Shared, mut stream: TcpStream, request: Request) {
    let path = request.path().to_string();
    let query: Vec<(String, String)> = url::form_urlencoded::parse(request.query().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();

    let answer = route(shared, &request, &path, &query);

    shared.state().log.push(ProxyRequest {
        method: request.method.clone(),
        target: request.target.clone(),
        path,
        query,
        headers: request.headers.clone(),
        status: answer.status,
        page: answer.page.clone(),
        link: answer.link(),
    });

    let length = if request.method == "HEAD" {
        answer.head_length.unwrap_or(answer.body.len())
    } else {
        answer.body.len()
    };
    wire::respond(
        &mut stream,
        &request.method,
        answer.status,
        &answer.headers,
        length,
        &answer.body,
    );
}

/// `/v2/<name>/<rest>` → `<name>` for the registry API routes (tags/list, manifests, blobs, uploads,
/// referrers).
fn repository_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v2/")?;
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(name).filter(|n| !n.is_empty());
    }
    ["/manifests/", "/blobs/uploads", "/blobs/", "/referrers/"]
        .iter()
        .find_map(|marker| rest.rfind(marker).map(|i| &rest[..i]))
        .filter(|n| !n.is_empty())
}

fn route(shared: &Shared, request: &Request, path: &str, query: &[(String, String)]) -> Answer {
    if path == "/token" {
        return token(shared, request, query);
    }
    if let Some(rest) = path.strip_prefix("/storage/") {
        // Blob storage: the signed URL is the credential; no token is asked for.
        if request.method != "GET" || !rest.contains("/blobs/sha256:") {
            return Answer::new(404, "text/plain", "404 not found\n");
        }
        return forward(shared, request, &format!("/v2/{rest}"));
    }
    if path == "/v2" || path == "/v2/" {
        let valid =
            bearer_of(&request.headers).is_some_and(|t| shared.state().tokens.contains_key(t));
        return if valid {
            Answer::json(200, "{}").header("Docker-Distribution-API-Version", "registry/2.0")
        } else {
            // ghcr's literal challenge for the ping: its scope names a placeholder repository.
            challenge(shared, "user/image", None)
        };
    }
    let Some(name) = repository_of(path) else {
        return Answer::json(
            404,
            r#"{"errors":[{"code":"NOT_FOUND","message":"not found"}]}"#,
        );
    };
    let action = if matches!(request.method.as_str(), "GET" | "HEAD") {
        "pull"
    } else {
        "push"
    };
    let Some(token) = bearer_of(&request.headers) else {
        return challenge(shared, name, None);
    };
    match shared.state().tokens.get(token) {
        None => return challenge(shared, name, Some("invalid_token")),
        Some(grants)
            if !grants
                .iter()
                .any(|g| g.repository == name && g.actions.contains(action)) =>
        {
            return challenge(shared, name, Some("insufficient_scope"))
        }
        Some(_) => {}
    }
    if request.method == "GET" && path.ends_with("/tags/list") {
        return tags_page(shared, name, query);
    }
    let redirect = shared.state().redirect_blobs;
    if redirect && request.method == "GET" {
        if let Some(digest) = path
            .strip_prefix(&format!("/v2/{name}/blobs/"))
            .filter(|d| d.starts_with("sha256:"))
        {
            let port = shared.url.rsplit(':').next().unwrap_or_default();
            let sig = &crate::support::sha256(format!("{}{path}", shared.url).as_bytes())[7..31];
            return Answer::new(307, "text/html; charset=utf-8", "").header(
                "Location",
                format!("http://localhost:{port}/storage/{name}/blobs/{digest}?sig={sig}"),
            );
        }
    }
    forward(shared, request, &request.target)
}

fn challenge(shared: &Shared, name: &str, error: Option<&str>) -> Answer {
    let mut value = format!(
        "Bearer realm=\"{}/token\",service=\"{SERVICE}\",scope=\"repository:{name}:pull\"",
        shared.url
    );
    if let Some(error) = error {
        value.push_str(&format!(",error=\"{error}\""));
    }
    Answer::json(401, UNAUTHORIZED_BODY).header("WWW-Authenticate", value)
}

/// `GET /token?scope=repository:<name>:<actions>&service=…`.
fn token(shared: &Shared, request: &Request, query: &[(String, String)]) -> Answer {
    if request.method != "GET" {
        return Answer::json(
            405,
            r#"{"errors":[{"code":"UNSUPPORTED","message":"method not allowed"}]}"#,
        );
    }
    let mut state = shared.state();
    if let Some(expected) = &state.basic_auth {
        if basic_of(&request.headers).as_ref() != Some(expected) {
            return Answer::json(401, UNAUTHORIZED_BODY)
                .header("WWW-Authenticate", format!("Basic realm=\"{SERVICE}\""));
        }
    }
    let mut grants = Vec::new();
    for (_, scope) in query.iter().filter(|(k, _)| k == "scope") {
        for one in scope.split_whitespace() {
            let Some((resource, actions)) = one
                .strip_prefix("repository:")
                .and_then(|r| r.rsplit_once(':'))
            else {
                return Answer::json(
                    400,
                    r#"{"errors":[{"code":"UNSUPPORTED","message":"malformed scope"}]}"#,
                );
            };
            grants.push(Grant {
                repository: resource.to_string(),
                actions: actions.split(',').map(String::from).collect(),
            });
        }
    }
    // Opaque, like ghcr's (`djE6` is base64 of `v1:`); unique per proxy and request.
    let seed = format!("{}:{}:{:?}", shared.url, state.tokens.len(), query);
    let hex = &crate::support::sha256(seed.as_bytes())["sha256:".len()..];
    let token = format!("djE6{}", &hex[..40]);
    state.tokens.insert(token.clone(), grants);
    Answer::json(200, &serde_json::json!({ "token": token }).to_string())
}

/// A tags/list page cut from the registry's full list, sorted lexically, as ghcr pages it.
fn tags_page(shared: &Shared, name: &str, query: &[(String, String)]) -> Answer {
    let value = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let (default, cap) = {
        let state = shared.state();
        (state.page_size, state.max_page_size)
    };
    let n = match value("n") {
        None => default,
        Some(n) => match n.parse::<usize>() {
            Ok(n) => n,
            Err(_) => {
                return Answer::json(
                    400,
                    r#"{"errors":[{"code":"PAGINATION_NUMBER_INVALID","message":"invalid number of results requested"}]}"#,
                )
            }
        },
    };
    let n = cap.map_or(n, |cap| n.min(cap));
    let last = value("last");

    let url = format!("{}/v2/{name}/tags/list", shared.upstream);
    let upstream = match http_client::request("GET", &url, &[], b"") {
        Ok(resp) => resp,
        Err(e) => return Answer::new(502, "text/plain", format!("{url}: {e}\n")),
    };
    if upstream.status != 200 {
        let content_type = upstream
            .header("content-type")
            .unwrap_or("application/json")
            .to_string();
        return Answer::new(upstream.status, &content_type, upstream.body);
    }
    let doc: serde_json::Value = match serde_json::from_slice(&upstream.body) {
        Ok(doc) => doc,
        Err(e) => return Answer::new(502, "text/plain", format!("{url}: {e}\n")),
    };
    let all: BTreeSet<String> = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(String::from))
        .collect();
    let after: Vec<String> = all
        .into_iter()
        .filter(|t| last.is_none_or(|l| t.as_str() > l))
        .collect();
    let page: Vec<String> = after.iter().take(n).cloned().collect();
    let more = after.len() > page.len();
    let tags = if page.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::json!(page)
    };
    let mut answer = Answer::json(
        200,
        &serde_json::json!({ "name": name, "tags": tags }).to_string(),
    );
    if more {
        if let Some(last) = page.last() {
            answer = answer.header(
                "Link",
                format!("</v2/{name}/tags/list?last={last}&n={n}>; rel=\"next\""),
            );
        }
    }
    answer.page = Some(page);
    answer
}

/// Request headers worth passing to the registry.
const FORWARDED_REQUEST: &[&str] = &["accept", "content-type", "range", "if-none-match"];
/// Answer headers worth passing back (Content-Length is recomputed, or kept for a HEAD).
const FORWARDED_ANSWER: &[&str] = &[
    "content-type",
    "docker-content-digest",
    "docker-distribution-api-version",
    "docker-upload-uuid",
    "etag",
    "accept-ranges",
    "content-range",
    "range",
    "location",
];

/// Forwards `request` to the registry at `target` (path and query).
fn forward(shared: &Shared, request: &Request, target: &str) -> Answer {
    let url = format!("{}{target}", shared.upstream);
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .filter(|(k, _)| FORWARDED_REQUEST.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let upstream = match http_client::request(&request.method, &url, &headers, &request.body) {
        Ok(resp) => resp,
        Err(e) => return Answer::new(502, "text/plain", format!("{url}: {e}\n")),
    };
    let mut answer = Answer {
        status: upstream.status,
        headers: Vec::new(),
        body: Vec::new(),
        head_length: upstream
            .header("content-length")
            .and_then(|v| v.parse().ok()),
        page: None,
    };
    for (k, v) in &upstream.headers {
        if !FORWARDED_ANSWER.contains(&k.as_str()) {
            continue;
        }
        let v = if k == "location" {
            match v.strip_prefix(&shared.upstream) {
                Some(rest) => format!("{}{rest}", shared.url),
                None => v.clone(),
            }
        } else {
            v.clone()
        };
        answer.headers.push((k.clone(), v));
    }
    answer.body = upstream.body;
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::charts::runtime_chart;
    use crate::support::http_client::request;
    use crate::support::registry::{chart_manifest, OCI_MANIFEST};

    fn get_token(proxy: &GhcrProxy, scope: &str) -> String {
        let url = format!(
            "{}/token?scope={}&service={SERVICE}",
            proxy.url(),
            url::form_urlencoded::byte_serialize(scope.as_bytes()).collect::<String>()
        );
        let resp = request("GET", &url, &[], b"").unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        let doc: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        doc["token"].as_str().unwrap().to_string()
    }

    /// `/v2/` and a manifest without a token answer 401 with a Bearer challenge naming the realm (and,
    /// for the manifest, the repository's pull scope).
    fn assert_anonymous_requests_are_challenged(proxy: &GhcrProxy, manifest_url: &str) {
        let ping = request("GET", &format!("{}/v2/", proxy.url()), &[], b"").unwrap();
        assert_eq!(ping.status, 401);
        assert!(ping
            .header("www-authenticate")
            .unwrap()
            .starts_with(&format!(
                "Bearer realm=\"{}/token\",service=\"ghcr.io\"",
                proxy.url()
            )));

        let accept = ("Accept", OCI_MANIFEST);
        let refused = request("GET", manifest_url, &[accept], b"").unwrap();
        assert_eq!(refused.status, 401);
        assert_eq!(
            refused.header("www-authenticate").unwrap(),
            format!(
                "Bearer realm=\"{}/token\",service=\"ghcr.io\",scope=\"repository:org/charts/demo:pull\"",
                proxy.url()
            )
        );
        assert!(refused.text().contains("UNAUTHORIZED"));
    }

    /// A token is good for its scope only, and an unknown token for nothing.
    fn assert_token_is_good_for_its_scope_only(
        proxy: &GhcrProxy,
        manifest_url: &str,
        auth: (&str, &str),
    ) {
        let accept = ("Accept", OCI_MANIFEST);
        let other = request(
            "GET",
            &format!("{}/v2/org/charts/other/tags/list", proxy.url()),
            &[auth],
            b"",
        )
        .unwrap();
        assert_eq!(other.status, 401);
        assert!(other
            .header("www-authenticate")
            .unwrap()
            .contains("insufficient_scope"));
        let forged = request(
            "GET",
            manifest_url,
            &[accept, ("Authorization", "Bearer djE6forged")],
            b"",
        )
        .unwrap();
        assert_eq!(forged.status, 401);
    }

    #[test]
    fn registry_api_needs_a_bearer_token_from_the_realm_it_names() {
        let Some(registry) = Registry::start() else {
            return;
        };
        let chart = runtime_chart("demo", "1.0.0", "");
        let digest = registry.push_chart("org/charts/demo", "1.0.0", &chart.bytes);
        let proxy = GhcrProxy::start(&registry);

        let manifest_url = format!("{}/v2/org/charts/demo/manifests/1.0.0", proxy.url());
        let accept = ("Accept", OCI_MANIFEST);
        assert_anonymous_requests_are_challenged(&proxy, &manifest_url);

        let token = get_token(&proxy, "repository:org/charts/demo:pull");
        let bearer = format!("Bearer {token}");
        let auth = ("Authorization", bearer.as_str());
        let got = request("GET", &manifest_url, &[accept, auth], b"").unwrap();
        assert_eq!(got.status, 200, "{}", got.text());
        assert_eq!(got.body, chart_manifest(&chart.bytes).1);
        assert_eq!(got.header("docker-content-digest"), Some(digest.as_str()));
        assert_eq!(got.header("content-type"), Some(OCI_MANIFEST));
        let head = request("HEAD", &manifest_url, &[accept, auth], b"").unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(
            head.header("content-length"),
            Some(got.body.len().to_string().as_str())
        );
        let blob = request(
            "GET",
            &format!(
                "{}/v2/org/charts/demo/blobs/{}",
                proxy.url(),
                chart.sha256()
            ),
            &[auth],
            b"",
        )
        .unwrap();
        assert_eq!(blob.body, chart.bytes);
        assert_eq!(
            request("GET", &format!("{}/v2/", proxy.url()), &[auth], b"")
                .unwrap()
                .status,
            200
        );

        assert_token_is_good_for_its_scope_only(&proxy, &manifest_url, auth);

        let tokens = proxy.token_requests();
        assert_eq!(tokens.len(), 1);
        assert_eq!(
            tokens[0].query_value("scope"),
            Some("repository:org/charts/demo:pull")
        );
        assert_eq!(tokens[0].query_value("service"), Some("ghcr.io"));
        assert_eq!(proxy.issued_tokens(), [token]);
        assert_eq!(proxy.challenges().len(), 4);
    }

    #[test]
    fn tags_are_paged_in_lexical_order_with_link_headers() {
        let Some(registry) = Registry::start() else {
            return;
        };
        let versions = [
            "1.7.0", "1.8.0", "1.9.0", "1.9.1", "1.10.0", "1.11.0", "1.12.0",
        ];
        for v in versions {
            registry.push_chart("org/demo", v, &runtime_chart("demo", v, "").bytes);
        }
        let proxy = GhcrProxy::start(&registry);
        proxy.set_page_size(2);
        let token = get_token(&proxy, "repository:org/demo:pull");
        let bearer = format!("Bearer {token}");

        let mut next = Some("/v2/org/demo/tags/list".to_string());
        let mut seen = Vec::new();
        let mut pages = 0;
        while let Some(target) = next.take() {
            let resp = request(
                "GET",
                &format!("{}{target}", proxy.url()),
                &[("Authorization", &bearer)],
                b"",
            )
            .unwrap();
            assert_eq!(resp.status, 200, "{}", resp.text());
            let doc: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
            assert_eq!(doc["name"], "org/demo");
            let page: Vec<String> = doc["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect();
            assert!(page.len() <= 2);
            seen.extend(page);
            pages += 1;
            next = resp.header("link").map(|link| {
                assert!(link.ends_with("; rel=\"next\""), "{link}");
                link[1..link.find('>').unwrap()].to_string()
            });
        }
        let mut lexical: Vec<String> = versions.iter().map(|v| v.to_string()).collect();
        lexical.sort();
        assert_eq!(seen, lexical);
        assert_eq!(seen[0], "1.10.0", "byte order, not version order");
        assert_eq!(pages, 4);
        assert_eq!(proxy.tag_pages("org/demo").len(), 4);
        assert_eq!(
            proxy.tag_pages("org/demo")[1].query_value("last"),
            Some("1.11.0")
        );

        // `n` overrides the default, a cap clamps `n`, and a page past the end has null tags.
        let ask = |q: &str| {
            let resp = request(
                "GET",
                &format!("{}/v2/org/demo/tags/list?{q}", proxy.url()),
                &[("Authorization", &bearer)],
                b"",
            )
            .unwrap();
            assert_eq!(resp.status, 200, "{}", resp.text());
            let doc: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
            (doc["tags"].clone(), resp.header("link").map(String::from))
        };
        let (tags, link) = ask("n=1000");
        assert_eq!(tags.as_array().unwrap().len(), 7);
        assert_eq!(link, None);
        proxy.set_max_page_size(3);
        let (tags, link) = ask("n=1000&last=1.12.0");
        assert_eq!(tags, serde_json::json!(["1.7.0", "1.8.0", "1.9.0"]));
        assert_eq!(
            link.as_deref(),
            Some("</v2/org/demo/tags/list?last=1.9.0&n=3>; rel=\"next\"")
        );
        assert_eq!(ask("last=1.9.1").0, serde_json::Value::Null);
    }

    #[test]
    fn blobs_can_be_redirected_to_storage_that_needs_no_token() {
        let Some(registry) = Registry::start() else {
            return;
        };
        let chart = runtime_chart("demo", "1.0.0", "");
        registry.push_chart("org/demo", "1.0.0", &chart.bytes);
        let proxy = GhcrProxy::start(&registry);
        proxy.redirect_blobs(true);
        let bearer = format!("Bearer {}", get_token(&proxy, "repository:org/demo:pull"));
        let blob_url = format!("{}/v2/org/demo/blobs/{}", proxy.url(), chart.sha256());
        assert_eq!(
            request("GET", &blob_url, &[], b"").unwrap().status,
            401,
            "the redirect itself needs the token"
        );
        let redirect = request("GET", &blob_url, &[("Authorization", &bearer)], b"").unwrap();
        assert_eq!(redirect.status, 307);
        let location = redirect.header("location").unwrap().to_string();
        let storage_prefix = format!(
            "http://localhost:{}/storage/org/demo/blobs/{}?sig=",
            proxy.port(),
            chart.sha256()
        );
        assert!(location.starts_with(&storage_prefix), "{location}");
        let storage = location.replace("localhost", "127.0.0.1");
        let got = request("GET", &storage, &[], b"").unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(got.body, chart.bytes);
        let stored = proxy.storage_requests();
        assert_eq!(stored.len(), 1);
        assert!(stored[0].header("authorization").is_none());
    }

    #[test]
    fn pushes_go_through_with_a_push_token_and_upload_locations_point_at_the_proxy() {
        let Some(registry) = Registry::start() else {
            return;
        };
        let proxy = GhcrProxy::start(&registry);
        proxy.require_basic_auth("u", "p");
        let anonymous = request(
            "GET",
            &format!("{}/token?scope=repository:org/x:pull", proxy.url()),
            &[],
            b"",
        )
        .unwrap();
        assert_eq!(anonymous.status, 401);
        let basic = crate::support::registry::basic_header("u", "p");
        let resp = request(
            "GET",
            &format!(
                "{}/token?scope=repository%3Aorg%2Fx%3Apull%2Cpush&service=ghcr.io",
                proxy.url()
            ),
            &[("Authorization", &basic)],
            b"",
        )
        .unwrap();
        assert_eq!(resp.status, 200);
        let token: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
        assert_eq!(
            proxy.token_requests()[1].basic_credentials(),
            Some(("u".to_string(), "p".to_string()))
        );

        let blob = b"some config bytes".to_vec();
        let digest = crate::support::sha256(&blob);
        let start = request(
            "POST",
            &format!("{}/v2/org/x/blobs/uploads/", proxy.url()),
            &[("Authorization", &bearer)],
            b"",
        )
        .unwrap();
        assert_eq!(start.status, 202, "{}", start.text());
        let location = start.header("location").unwrap().to_string();
        let location = if location.starts_with('/') {
            format!("{}{location}", proxy.url())
        } else {
            location
        };
        assert!(location.starts_with(&proxy.url()), "{location}");
        let sep = if location.contains('?') { '&' } else { '?' };
        let done = request(
            "PUT",
            &format!("{location}{sep}digest={digest}"),
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/octet-stream"),
            ],
            &blob,
        )
        .unwrap();
        assert_eq!(done.status, 201, "{}", done.text());
        assert_eq!(done.header("docker-content-digest"), Some(digest.as_str()));
        let back = request(
            "GET",
            &format!("{}/v2/org/x/blobs/{digest}", registry.http_url()),
            &[],
            b"",
        )
        .unwrap();
        assert_eq!(back.body, blob, "the body reached the registry");
    }
}
