//! HTTP/1.1 on the wire for the loopback test servers ([`super::HttpServer`], [`super::ghcr::GhcrProxy`]),
//! one request per connection:
//!
//! - [`Listener`] / [`Accepting`]: a listener on a free port of 127.0.0.1 (its host and URL) whose accept
//!   loop serves each connection on its own thread until the shutdown flag is set (on [`Accepting::stop`]
//!   or `Drop`, which wakes the loop and joins it); a connection arriving after that is dropped unread.
//! - [`Request`]: one request read from a connection (request line, headers with lower-cased names, and a
//!   body sized by `Content-Length` or sent `Transfer-Encoding: chunked`), with a 60 s read timeout.
//! - [`respond`], [`write_head`], [`close`]: one answer with its status line ([`reason`]), headers,
//!   `Content-Length` and `Connection: close`, then the connection is closed.
//!
//! What to answer is each server's own business.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A request as read from the wire.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query as sent (`/index.yaml?x=1`).
    pub target: String,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    /// The body, de-chunked (empty when none was sent).
    pub body: Vec<u8>,
}

impl Request {
    /// The target without the query.
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(path, _)| path)
    }

    /// The raw query after `?` (empty when there is none).
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, query)| query)
    }
}

/// The value of header `name` (any case) in headers keyed by lower-cased name, as [`Request::headers`].
pub fn header<'a>(headers: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    headers.get(&name.to_ascii_lowercase()).map(String::as_str)
}

/// A listener bound to a free port of 127.0.0.1, not accepting yet (a server may need its port first).
pub struct Listener {
    listener: TcpListener,
    port: u16,
    shutdown: Arc<AtomicBool>,
}

impl Listener {
    pub fn bind() -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        Listener {
            listener,
            port,
            shutdown: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` (no trailing slash), for a server that needs its own URL before it serves.
    pub fn url(&self) -> String {
        url(self.port)
    }

    /// The flag set when the server stops, for a handler that waits on purpose (a request it never
    /// answers) to wait for.
    pub fn shutdown_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.shutdown)
    }

    /// Accepts on a thread named `<name>-<port>`. Each connection gets its own thread, which reads one
    /// [`Request`] and hands it, with the connection, to `handle`; a connection that closes before a whole
    /// request arrived, or arrives once the shutdown flag is set, is dropped.
    pub fn serve<F>(self, name: &str, handle: F) -> Accepting
    where
        F: Fn(TcpStream, Request) + Send + Sync + 'static,
    {
        let Listener {
            listener,
            port,
            shutdown,
        } = self;
        let handle = Arc::new(handle);
        let accept_shutdown = Arc::clone(&shutdown);
        let thread = std::thread::Builder::new()
            .name(format!("{name}-{port}"))
            .spawn(move || {
                for stream in listener.incoming() {
                    if accept_shutdown.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let shutdown = Arc::clone(&accept_shutdown);
                    let handle = Arc::clone(&handle);
                    std::thread::spawn(move || {
                        if shutdown.load(Ordering::SeqCst) {
                            return;
                        }
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
                        let Some(request) = read_request(&stream) else {
                            return;
                        };
                        handle(stream, request);
                    });
                }
            })
            .unwrap();
        Accepting {
            port,
            shutdown,
            thread: Some(thread),
        }
    }
}

/// The accept loop of [`Listener::serve`]; stops on `Drop`.
pub struct Accepting {
    port: u16,
    shutdown: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Accepting {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        url(self.port)
    }

    /// Sets the shutdown flag, runs `wake` (to release handlers waiting for the flag), wakes the accept
    /// loop so it sees the flag, and waits for the loop to end. Only the first call does anything.
    pub fn stop(&mut self, wake: impl FnOnce()) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.shutdown.store(true, Ordering::SeqCst);
        wake();
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        let _ = thread.join();
    }
}

impl Drop for Accepting {
    fn drop(&mut self) {
        self.stop(|| {});
    }
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// Reads one request: `None` when the connection closes or errs before the request and its body are in.
fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).ok()? == 0 {
        return None;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut body = Vec::new();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).ok()?;
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                .ok()?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).ok()? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..]).ok()?;
            let mut crlf = String::new();
            reader.read_line(&mut crlf).ok()?;
        }
    } else if let Some(len) = headers
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        body.resize(len, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

/// The reason phrase of the status line (`Status` for codes not listed).
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Writes the status line, `headers`, `Content-Length: <length>` and `Connection: close`, and the empty
/// line: everything but the body.
pub fn write_head(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    length: usize,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ));
    stream.write_all(head.as_bytes())
}

/// Answers a `method` request and closes the connection: the head announcing `length` (for a HEAD, what
/// the GET would send), then `body` unless the answer has none (a HEAD, 204, 304). Write errors are
/// ignored: the client has gone.
pub fn respond(
    stream: &mut TcpStream,
    method: &str,
    status: u16,
    headers: &[(String, String)],
    length: usize,
    body: &[u8],
) {
    let _ = write_head(stream, status, headers, length);
    if method != "HEAD" && status != 204 && status != 304 {
        let _ = stream.write_all(body);
    }
    close(stream);
}

/// Flushes and closes both directions (one request per connection).
pub fn close(stream: &mut TcpStream) {
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
}
