//! Scripted answers for unit tests: raw responses served in order per path, one per connection, and
//! the requests seen. A thin layer over the one loopback test server, tests/support/http_server.rs
//! (`crate::support::http_server`, its [`Fault::Raw`] answers and its request log), which the
//! integration tests use directly.

use std::sync::{Arc, Mutex};

use crate::support::http_server::{Fault, HttpServer};

/// A running scripted server; stops when dropped.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Every request's head (request line, then `name: value` lines), in arrival order.
    pub requests: Arc<Mutex<Vec<String>>>,
    server: HttpServer,
}

/// One scripted answer.
#[derive(Clone)]
pub enum Answer {
    /// Raw bytes to write, then close.
    Raw(Vec<u8>),
    /// Read the request and never answer (until the server is dropped).
    Hang,
}

impl Answer {
    fn fault(self) -> Fault {
        match self {
            Answer::Raw(raw) => Fault::Raw(raw),
            Answer::Hang => Fault::Hang,
        }
    }
}

/// 200 with `body` and `extra_headers` (each ending in `\r\n`).
pub fn ok(body: &[u8], extra_headers: &str) -> Answer {
    let mut raw = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    Answer::Raw(raw)
}

/// `code` with an empty body and `extra_headers` (each ending in `\r\n`).
pub fn status(code: u16, extra_headers: &str) -> Answer {
    Answer::Raw(
        format!(
            "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n{extra_headers}\r\n"
        )
        .into_bytes(),
    )
}

/// Serves `answers` in order, one per connection; the last one repeats.
pub fn serve(answers: Vec<Answer>) -> Server {
    serve_routes(vec![("", answers)])
}

/// Serves each path its own answers in order (the last one repeats); the route `""` answers every
/// path no other route names; anything else gets a 404.
pub fn serve_routes(routes: Vec<(&str, Vec<Answer>)>) -> Server {
    let server = HttpServer::start();
    for (path, mut answers) in routes {
        let last = answers.pop().expect("a route has at least one answer");
        server.fail(path, answers.into_iter().map(Answer::fault));
        server.fail_always(path, last.fault());
    }
    Server {
        base: server.url(),
        requests: server.request_heads(),
        server,
    }
}

impl Server {
    /// How many requests named `path` (without query).
    pub fn count(&self, path: &str) -> usize {
        self.server.count(path)
    }
}
