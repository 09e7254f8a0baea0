//! `HttpServer`: a real HTTP/1.1 server on a free port of 127.0.0.1 (std threads, one connection per
//! request), serving files from an in-memory map that a test can change while it runs.
//!
//! It logs every request (method, target, headers, the status it answered) so a test can prove what was
//! or was not fetched; answers `If-None-Match` with 304 when the ETag matches, and (for a request without
//! `If-None-Match`) `If-Modified-Since` with 304 when it names the path's `Last-Modified` (each
//! [`HttpServer::serve`] is a modification, one second after the one before); can demand basic auth; and
//! can misbehave on purpose per path ([`Fault`]): a status sequence (500 then 200), 429 with Retry-After,
//! a truncated body, other bytes than the ones it serves, or a request it never answers.
//!
//! Reading requests and writing answers on the wire, and the accept loop, are [`super::wire`]'s.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use base64::Engine as _;

use super::wire::{self, Request};

/// One way a path misbehaves, for one request (see [`HttpServer::fail`]) or for every request
/// ([`HttpServer::fail_always`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer this status with a short text body (e.g. 500, 503, 404).
    Status(u16),
    /// 429 Too Many Requests with `Retry-After: <secs>`.
    TooManyRequests { retry_after_secs: u64 },
    /// Announce the full Content-Length, send only the first `send` bytes, then close the connection.
    Truncate { send: usize },
    /// Serve these bytes (with a matching Content-Length) instead of the path's content.
    Body(Vec<u8>),
    /// Read the request and never answer (until the server is dropped).
    Hang,
    /// 302 Found with `Location: <url>` (any scheme: a test of where a client refuses to follow).
    Redirect(String),
    /// Write these bytes as the whole answer (status line, headers, body), then close: a scripted
    /// answer, for unit tests that need exact headers (see src/http/test_server.rs).
    Raw(Vec<u8>),
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    pub method: String,
    /// Path and query as sent (`/index.yaml?x=1`).
    pub target: String,
    /// The path without the query.
    pub path: String,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    /// What the server answered; 0 when it never answered ([`Fault::Hang`]) or wrote a [`Fault::Raw`]
    /// answer without a status line.
    pub status: u16,
}

impl LoggedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::header(&self.headers, name)
    }

    pub fn if_none_match(&self) -> Option<&str> {
        self.header("if-none-match")
    }

    pub fn has_authorization(&self) -> bool {
        self.headers.contains_key("authorization")
    }
}

#[derive(Debug, Clone)]
struct Resource {
    body: Vec<u8>,
    content_type: String,
    /// The `Last-Modified` date: a fixed day plus one second per [`HttpServer::serve`] call.
    last_modified: String,
}

/// An HTTP date `serial` seconds after 2026-01-01T00:00:00Z (a Thursday), within that day.
fn http_date(serial: u32) -> String {
    let s = serial % 86_400;
    format!(
        "Thu, 01 Jan 2026 {:02}:{:02}:{:02} GMT",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

impl Resource {
    /// A strong ETag derived from the bytes, so changed content gets a new tag, as on a real CDN.
    fn etag(&self) -> String {
        format!(
            "\"{}\"",
            &super::sha256(&self.body)["sha256:".len().."sha256:".len() + 24]
        )
    }
}

#[derive(Default)]
struct State {
    files: BTreeMap<String, Resource>,
    faults: BTreeMap<String, VecDeque<Fault>>,
    always: BTreeMap<String, Fault>,
    /// The whole expected `Authorization` header value.
    basic_auth: Option<String>,
    etags: bool,
    last_modified: bool,
    /// How many times a path was served, for `Last-Modified`.
    modifications: u32,
    not_found: Option<Resource>,
    log: Vec<LoggedRequest>,
}

struct Shared {
    state: Mutex<State>,
    /// Notified on every logged request and on shutdown.
    changed: Condvar,
    /// Set on shutdown (by [`wire::Accepting::stop`]); hanging requests wait for it.
    shutdown: Arc<AtomicBool>,
    /// Every request's head as text (request line, then `name: value` lines with lower-cased names),
    /// shared with [`HttpServer::request_heads`].
    heads: Arc<Mutex<Vec<String>>>,
}

/// See the module docs. Stops (and releases hanging requests) on `Drop`.
pub struct HttpServer {
    shared: Arc<Shared>,
    accepting: wire::Accepting,
}

impl HttpServer {
    /// Starts an empty server on a free port of 127.0.0.1, with ETags and Last-Modified on.
    pub fn start() -> HttpServer {
        let listener = wire::Listener::bind();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                etags: true,
                last_modified: true,
                ..State::default()
            }),
            changed: Condvar::new(),
            shutdown: listener.shutdown_flag(),
            heads: Arc::default(),
        });
        let handler_shared = Arc::clone(&shared);
        let accepting = listener.serve("http-server", move |stream, request| {
            handle(&handler_shared, stream, request)
        });
        HttpServer { shared, accepting }
    }

    pub fn port(&self) -> u16 {
        self.accepting.port()
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.accepting.host()
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        self.accepting.url()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves `body` at `path` (which starts with `/`), guessing the content type from the extension.
    pub fn serve(&self, path: &str, body: impl Into<Vec<u8>>) -> &Self {
        let content_type = match path.rsplit('.').next() {
            Some("json") => "application/json",
            Some("yaml") | Some("yml") => "application/x-yaml",
            Some("tgz") | Some("gz") => "application/gzip",
            _ => "application/octet-stream",
        };
        self.serve_with(path, content_type, body)
    }

    pub fn serve_with(&self, path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> &Self {
        assert!(path.starts_with('/'), "paths start with /: {path}");
        let mut state = self.state();
        state.modifications += 1;
        let last_modified = http_date(state.modifications);
        state.files.insert(
            path.to_string(),
            Resource {
                body: body.into(),
                content_type: content_type.to_string(),
                last_modified,
            },
        );
        drop(state);
        self
    }

    /// Serves every file under `dir` at `<prefix>/<relative path>` (`prefix` is `""` or starts with `/`).
    pub fn serve_dir(&self, prefix: &str, dir: &std::path::Path) -> &Self {
        for (rel, bytes) in super::read_tree(dir) {
            self.serve(&format!("{}/{rel}", prefix.trim_end_matches('/')), bytes);
        }
        self
    }

    /// Stops serving `path` (404 from now on).
    pub fn remove(&self, path: &str) -> &Self {
        self.state().files.remove(path);
        self
    }

    /// The bytes currently served at `path`.
    pub fn content(&self, path: &str) -> Option<Vec<u8>> {
        self.state().files.get(path).map(|r| r.body.clone())
    }

    /// The body and content type of answers for unknown paths (default: `404 not found` text).
    pub fn not_found_body(&self, content_type: &str, body: impl Into<Vec<u8>>) -> &Self {
        self.state().not_found = Some(Resource {
            body: body.into(),
            content_type: content_type.to_string(),
            last_modified: http_date(0),
        });
        self
    }

    /// Turns ETag / If-None-Match handling on or off (on by default).
    pub fn etags(&self, on: bool) -> &Self {
        self.state().etags = on;
        self
    }

    /// Turns Last-Modified / If-Modified-Since handling on or off (on by default).
    pub fn last_modified(&self, on: bool) -> &Self {
        self.state().last_modified = on;
        self
    }

    /// Demands `Authorization: Basic base64(user:password)` on every request; 401 with a Basic challenge
    /// otherwise.
    pub fn require_basic_auth(&self, user: &str, password: &str) -> &Self {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.state().basic_auth = Some(format!("Basic {token}"));
        self
    }

    /// Queues faults for the next requests to `path`, one request each; then `path` is served normally.
    pub fn fail(&self, path: &str, faults: impl IntoIterator<Item = Fault>) -> &Self {
        self.state()
            .faults
            .entry(path.to_string())
            .or_default()
            .extend(faults);
        self
    }

    /// Makes every request to `path` misbehave (after queued faults are used up), until
    /// [`HttpServer::clear_faults`].
    pub fn fail_always(&self, path: &str, fault: Fault) -> &Self {
        self.state().always.insert(path.to_string(), fault);
        self
    }

    pub fn clear_faults(&self, path: &str) -> &Self {
        let mut state = self.state();
        state.faults.remove(path);
        state.always.remove(path);
        self
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state().log.clone()
    }

    /// Requests whose path (without query) is `path`.
    pub fn requests_to(&self, path: &str) -> Vec<LoggedRequest> {
        self.state()
            .log
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// How many requests reached `path`.
    pub fn count(&self, path: &str) -> usize {
        self.state().log.iter().filter(|r| r.path == path).count()
    }

    /// Every request's head as text, in arrival order, updated as requests arrive: the request line
    /// (`GET /index.yaml HTTP/1.1`), then one `name: value` line per header, names lower-cased.
    pub fn request_heads(&self) -> Arc<Mutex<Vec<String>>> {
        Arc::clone(&self.shared.heads)
    }

    /// Forgets the request log (e.g. between a first and a second lock).
    pub fn clear_log(&self) {
        self.state().log.clear();
    }

    /// Blocks until a request to `path` has arrived (answered or not). A guard deadline makes a broken
    /// test fail instead of hanging.
    pub fn wait_for_request(&self, path: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let mut state = self.state();
        while !state.log.iter().any(|r| r.path == path) {
            let now = std::time::Instant::now();
            if now > deadline {
                panic!("no request to {path} arrived at {}", self.url());
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let shared = &self.shared;
        self.accepting.stop(|| shared.changed.notify_all());
    }
}

enum Answer {
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    Truncated {
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        send: usize,
    },
    Hang,
    Raw(Vec<u8>),
}

/// The head of `request` as text, for [`HttpServer::request_heads`].
fn head_text(request: &Request) -> String {
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.target);
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head
}

fn handle(shared: &Shared, mut stream: TcpStream, request: Request) {
    let path = request.path().to_string();

    let answer = {
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let answer = decide(&mut state, &request, &path);
        let status = match &answer {
            Answer::Full { status, .. } => *status,
            Answer::Truncated { .. } => 200,
            Answer::Hang => 0,
            Answer::Raw(raw) => raw_status(raw),
        };
        state.log.push(LoggedRequest {
            method: request.method.clone(),
            target: request.target.clone(),
            path: path.clone(),
            headers: request.headers.clone(),
            status,
        });
        shared
            .heads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(head_text(&request));
        shared.changed.notify_all();
        answer
    };

    match answer {
        Answer::Full {
            status,
            headers,
            body,
        } => wire::respond(
            &mut stream,
            &request.method,
            status,
            &headers,
            body.len(),
            &body,
        ),
        Answer::Truncated {
            headers,
            body,
            send,
        } => {
            let _ = wire::write_head(&mut stream, 200, &headers, body.len());
            let _ = stream.write_all(&body[..send.min(body.len())]);
            wire::close(&mut stream);
        }
        Answer::Raw(raw) => {
            let _ = stream.write_all(&raw);
            wire::close(&mut stream);
        }
        Answer::Hang => {
            let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            while !shared.shutdown.load(Ordering::SeqCst) {
                state = shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}

/// The status of a raw answer (`HTTP/1.1 304 …`); 0 when it has no status line.
fn raw_status(raw: &[u8]) -> u16 {
    raw.get(9..12)
        .and_then(|code| std::str::from_utf8(code).ok())
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

fn text(status: u16, body: &str) -> Answer {
    Answer::Full {
        status,
        headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
        body: body.as_bytes().to_vec(),
    }
}

fn decide(state: &mut State, request: &Request, path: &str) -> Answer {
    if let Some(expected) = &state.basic_auth {
        if request.headers.get("authorization") != Some(expected) {
            return Answer::Full {
                status: 401,
                headers: vec![
                    (
                        "WWW-Authenticate".into(),
                        "Basic realm=\"stack-tests\"".into(),
                    ),
                    ("Content-Type".into(), "text/plain; charset=utf-8".into()),
                ],
                body: b"401 unauthorized\n".to_vec(),
            };
        }
    }
    // Faults for the path `""` answer every path that has no file and no faults of its own.
    let own = |p: &str| {
        state.files.contains_key(p) || state.faults.contains_key(p) || state.always.contains_key(p)
    };
    let key = if own(path) { path } else { "" };
    let fault = match state.faults.get_mut(key).and_then(VecDeque::pop_front) {
        Some(fault) => Some(fault),
        None => state.always.get(key).cloned(),
    };
    let resource = state.files.get(path).cloned();
    if let Some(fault) = fault {
        return fault_answer(fault, resource);
    }
    if !matches!(request.method.as_str(), "GET" | "HEAD") {
        return text(405, "405 method not allowed\n");
    }
    match resource {
        Some(resource) => resource_answer(state, request, resource),
        None => match &state.not_found {
            Some(nf) => Answer::Full {
                status: 404,
                headers: vec![("Content-Type".into(), nf.content_type.clone())],
                body: nf.body.clone(),
            },
            None => text(404, "404 page not found\n"),
        },
    }
}

/// How a request misbehaves on purpose; `resource` is what the path serves (a truncated answer sends
/// the start of it).
fn fault_answer(fault: Fault, resource: Option<Resource>) -> Answer {
    match fault {
        Fault::Status(status) => text(
            status,
            &format!("{status} {} (injected)\n", wire::reason(status)),
        ),
        Fault::TooManyRequests { retry_after_secs } => Answer::Full {
            status: 429,
            headers: vec![
                ("Retry-After".into(), retry_after_secs.to_string()),
                ("Content-Type".into(), "text/plain; charset=utf-8".into()),
            ],
            body: b"429 too many requests (injected)\n".to_vec(),
        },
        Fault::Hang => Answer::Hang,
        Fault::Raw(raw) => Answer::Raw(raw),
        Fault::Redirect(location) => Answer::Full {
            status: 302,
            headers: vec![
                ("Location".into(), location),
                ("Content-Type".into(), "text/plain; charset=utf-8".into()),
            ],
            body: b"302 found (injected)\n".to_vec(),
        },
        Fault::Body(body) => Answer::Full {
            status: 200,
            headers: vec![("Content-Type".into(), "application/octet-stream".into())],
            body,
        },
        Fault::Truncate { send } => {
            let body = resource.map(|r| r.body).unwrap_or_default();
            Answer::Truncated {
                headers: vec![("Content-Type".into(), "application/octet-stream".into())],
                body,
                send,
            }
        }
    }
}

/// The answer for a path that serves `resource`: 200, or 304 when the request's validator matches.
fn resource_answer(state: &State, request: &Request, resource: Resource) -> Answer {
    let mut headers = vec![("Content-Type".to_string(), resource.content_type.clone())];
    if state.etags {
        let etag = resource.etag();
        headers.push(("ETag".into(), etag.clone()));
        let matches = request.headers.get("if-none-match").is_some_and(|inm| {
            inm.trim() == "*"
                || inm
                    .split(',')
                    .any(|t| t.trim().trim_start_matches("W/") == etag)
        });
        if matches {
            return Answer::Full {
                status: 304,
                headers,
                body: Vec::new(),
            };
        }
    }
    if state.last_modified {
        headers.push(("Last-Modified".into(), resource.last_modified.clone()));
        // RFC 9110 13.1.3: If-Modified-Since is ignored when If-None-Match is present. The date is
        // compared as text: the server only ever hands out its own dates.
        let unchanged = !request.headers.contains_key("if-none-match")
            && request.headers.get("if-modified-since") == Some(&resource.last_modified);
        if unchanged {
            return Answer::Full {
                status: 304,
                headers,
                body: Vec::new(),
            };
        }
    }
    Answer::Full {
        status: 200,
        headers,
        body: resource.body,
    }
}
