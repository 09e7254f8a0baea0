//! `CountingProxy`: a real reverse proxy on a free port of 127.0.0.1 (std threads, one connection per
//! request) in front of one upstream (a [`super::Registry`], an [`super::HttpServer`], a
//! [`super::GrafanaCom`]) that counts and, optionally, delays every request.
//!
//! It exists for two things: a test that proves `stack lock` makes no more requests than it needs
//! (every request is logged with its method, path and the conditional and auth headers it carried), and
//! the lock benchmark, which puts a fixed latency on every request (as a distant registry or CDN would)
//! to measure how well `stack lock` overlaps its requests. The delay is a sleep in the request's own
//! thread before forwarding, so concurrent requests are delayed concurrently, as over a real network.
//!
//! Requests are forwarded with their method, path, query, body and every header but the hop-by-hop ones;
//! answers keep every header but the hop-by-hop ones, with `Location` pointing back at the proxy.
//! Reading requests and writing answers on the wire, and the accept loop, are [`super::wire`]'s.

use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::http_client;
use super::wire::{self, Request};

/// Headers that belong to one connection, not to the request or answer: never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "user-agent",
];

/// A request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct ProxiedRequest {
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The query, as sent (empty when none).
    pub query: String,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
    pub authorization: bool,
    /// What the upstream answered (502 when it could not be reached).
    pub status: u16,
    /// Bytes of the answer's body sent to the client (0 for a HEAD or a 304).
    pub bytes: usize,
    /// When the request arrived (before the delay): for the benchmark's timeline, and for a test only to
    /// order requests that were sent one at a time (`--jobs 1`), never to assert a duration.
    pub arrived: Instant,
    /// When its answer was about to be written (after the delay and the upstream's answer): same use.
    pub answered: Instant,
}

impl ProxiedRequest {
    /// Whether the request was conditional (`If-None-Match` or `If-Modified-Since`).
    pub fn conditional(&self) -> bool {
        self.if_none_match.is_some() || self.if_modified_since.is_some()
    }
}

struct Shared {
    upstream: String,
    url: String,
    delay: Mutex<Duration>,
    log: Mutex<Vec<ProxiedRequest>>,
    /// Requests received and not yet answered, and the most there ever were at once.
    in_flight: std::sync::atomic::AtomicUsize,
    most_in_flight: std::sync::atomic::AtomicUsize,
}

/// See the module docs. Stops on `Drop`; keep the upstream alive as long as the proxy.
pub struct CountingProxy {
    shared: Arc<Shared>,
    accepting: wire::Accepting,
}

impl CountingProxy {
    /// A proxy in front of `upstream` (`http://127.0.0.1:PORT`, no trailing slash) that waits `delay`
    /// before forwarding each request.
    pub fn start(upstream: &str, delay: Duration) -> CountingProxy {
        let listener = wire::Listener::bind();
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            url: listener.url(),
            delay: Mutex::new(delay),
            in_flight: Default::default(),
            most_in_flight: Default::default(),
            log: Mutex::new(Vec::new()),
        });
        let handler = Arc::clone(&shared);
        let accepting = listener.serve("counting-proxy", move |stream, request| {
            handle(&handler, stream, request)
        });
        CountingProxy { shared, accepting }
    }

    /// `127.0.0.1:PORT`: the proxy as an OCI registry host.
    pub fn host(&self) -> String {
        self.accepting.host()
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        self.accepting.url()
    }

    /// `oci://127.0.0.1:PORT/<repo_path>`.
    pub fn oci_url(&self, repo_path: &str) -> String {
        format!("oci://{}/{repo_path}", self.host())
    }

    /// The most requests this proxy held at once (received, not yet answered). A request counts until
    /// just before its answer is written, so a client that waits for an answer before sending the next
    /// request is never counted twice.
    pub fn most_in_flight(&self) -> usize {
        self.shared
            .most_in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Changes the delay of requests that arrive from now on.
    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().unwrap_or_else(|e| e.into_inner()) = delay;
    }

    /// Every request so far, in the order their answers came back.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many requests were made.
    pub fn count(&self) -> usize {
        self.requests().len()
    }

    /// Body bytes sent to clients so far.
    pub fn bytes(&self) -> usize {
        self.requests().iter().map(|r| r.bytes).sum()
    }

    /// Forgets the log (e.g. between a cold and a warm lock).
    pub fn clear_log(&self) {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

fn handle(shared: &Shared, mut stream: TcpStream, request: Request) {
    use std::sync::atomic::Ordering::SeqCst;
    let arrived = Instant::now();
    let now = shared.in_flight.fetch_add(1, SeqCst) + 1;
    shared.most_in_flight.fetch_max(now, SeqCst);
    let delay = *shared.delay.lock().unwrap_or_else(|e| e.into_inner());
    std::thread::sleep(delay);
    let url = format!("{}{}", shared.upstream, request.target);
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .filter(|(k, _)| !HOP_BY_HOP.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, answer_headers, length, body) =
        match http_client::request(&request.method, &url, &headers, &request.body) {
            Ok(upstream) => {
                let length = upstream
                    .header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(upstream.body.len());
                let answer_headers: Vec<(String, String)> = upstream
                    .headers
                    .iter()
                    .filter(|(k, _)| !HOP_BY_HOP.contains(&k.as_str()))
                    .map(|(k, v)| match v.strip_prefix(&shared.upstream) {
                        Some(rest) if k == "location" => {
                            (k.clone(), format!("{}{rest}", shared.url))
                        }
                        _ => (k.clone(), v.clone()),
                    })
                    .collect();
                (upstream.status, answer_headers, length, upstream.body)
            }
            Err(e) => {
                let body = format!("{url}: {e}\n").into_bytes();
                (502, Vec::new(), body.len(), body)
            }
        };
    let header = |name: &str| wire::header(&request.headers, name).map(str::to_string);
    let sent = match (request.method.as_str(), status) {
        ("HEAD", _) | (_, 204 | 304) => 0,
        _ => body.len(),
    };
    shared
        .log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(ProxiedRequest {
            method: request.method.clone(),
            path: request.path().to_string(),
            query: request.query().to_string(),
            if_none_match: header("if-none-match"),
            if_modified_since: header("if-modified-since"),
            authorization: header("authorization").is_some(),
            status,
            bytes: sent,
            arrived,
            answered: Instant::now(),
        });
    let length = if request.method == "HEAD" {
        length
    } else {
        body.len()
    };
    shared.in_flight.fetch_sub(1, SeqCst);
    wire::respond(
        &mut stream,
        &request.method,
        status,
        &answer_headers,
        length,
        &body,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::http_client::request;
    use crate::support::HttpServer;

    #[test]
    fn forwards_and_logs_requests_with_their_conditional_headers() {
        let server = HttpServer::start();
        server.serve("/index.yaml", "apiVersion: v1\n");
        let proxy = CountingProxy::start(&server.url(), Duration::ZERO);
        let url = format!("{}/index.yaml?x=1", proxy.url());

        let first = request("GET", &url, &[], b"").unwrap();
        assert_eq!(
            (first.status, first.text().as_str()),
            (200, "apiVersion: v1\n")
        );
        let etag = first
            .header("etag")
            .expect("the upstream's ETag")
            .to_string();
        let second = request("GET", &url, &[("If-None-Match", &etag)], b"").unwrap();
        assert_eq!(second.status, 304);
        let head = request("HEAD", &url, &[], b"").unwrap();
        assert_eq!(head.header("content-length"), Some("15"));

        let log = proxy.requests();
        assert_eq!(log.len(), 3);
        assert_eq!(
            (log[0].path.as_str(), log[0].query.as_str(), log[0].status),
            ("/index.yaml", "x=1", 200)
        );
        assert!(!log[0].conditional());
        assert_eq!((log[0].bytes, log[1].bytes, log[2].bytes), (15, 0, 0));
        assert_eq!(proxy.bytes(), 15);
        assert_eq!(log[1].if_none_match.as_deref(), Some(etag.as_str()));
        assert_eq!(log[1].status, 304);
        assert_eq!(
            server.requests_to("/index.yaml")[1].if_none_match(),
            Some(etag.as_str())
        );
        proxy.clear_log();
        assert_eq!(proxy.count(), 0);
    }

    #[test]
    fn an_unreachable_upstream_is_a_502_that_is_logged() {
        let proxy = CountingProxy::start("http://127.0.0.1:1", Duration::ZERO);
        let answer = request("GET", &format!("{}/v2/", proxy.url()), &[], b"").unwrap();
        assert_eq!(answer.status, 502);
        assert_eq!(proxy.requests()[0].status, 502);
    }
}
