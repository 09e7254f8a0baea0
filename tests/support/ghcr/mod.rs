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
//! requests and writing answers on the wire, and the accept loop, are [`super::wire`]'s; forwarding to
//! the registry is [`forward`]'s.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};

use base64::Engine as _;

use super::http_client;
use super::registry::Registry;
use super::wire::{self, Request};
use forward::{forward, Answer};

mod forward;

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

#[cfg(test)]
mod tests;
