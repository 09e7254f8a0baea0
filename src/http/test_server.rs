//! A tiny loopback HTTP/1.1 server answering scripted raw responses, one per connection, and
//! recording the requests it saw.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

pub struct Server {
    pub base: String,
    pub requests: Arc<Mutex<Vec<String>>>,
}

/// One scripted answer: raw bytes to write, then whether to keep the connection open without answering.
#[derive(Clone)]
pub enum Answer {
    Raw(Vec<u8>),
    /// Read the request and never answer (until the test ends).
    Hang,
}

pub fn ok(body: &[u8], extra_headers: &str) -> Answer {
    let mut raw = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    Answer::Raw(raw)
}

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
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    let mut routes: Vec<(String, Vec<Answer>, usize)> = routes
        .into_iter()
        .map(|(p, a)| (p.to_string(), a, 0))
        .collect();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let path = head
                .split(' ')
                .nth(1)
                .unwrap_or("")
                .split('?')
                .next()
                .unwrap_or("")
                .to_string();
            seen.lock().unwrap().push(head);
            let route = match routes.iter().position(|(p, _, _)| *p == path) {
                Some(i) => Some(i),
                None => routes.iter().position(|(p, _, _)| p.is_empty()),
            };
            let answer = match route {
                Some(i) => {
                    let (_, answers, next) = &mut routes[i];
                    let a = answers[(*next).min(answers.len() - 1)].clone();
                    *next += 1;
                    a
                }
                None => status(404, ""),
            };
            match answer {
                Answer::Raw(raw) => {
                    let _ = stream.write_all(&raw);
                    let _ = stream.flush();
                }
                Answer::Hang => {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 1];
                        let _ = stream.read(&mut buf);
                        std::thread::sleep(std::time::Duration::from_secs(30));
                    });
                }
            }
        }
    });
    Server { base, requests }
}

impl Server {
    /// How many requests named `path` (without query).
    pub fn count(&self, path: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.split(' ').nth(1).unwrap_or("").split('?').next() == Some(path))
            .count()
    }
}
