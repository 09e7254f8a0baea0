//! What the ghcr proxy answers ([`Answer`]), and forwarding an authorized request to the registry behind
//! it with the headers that matter, `Location` rewritten to the proxy.

use super::http_client;
use super::wire::Request;
use super::Shared;

pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
    /// The Content-Length to announce for a HEAD (the registry's), since no body comes with it.
    pub(super) head_length: Option<usize>,
    /// The tags of a tags/list page, for the log.
    pub(super) page: Option<Vec<String>>,
}

impl Answer {
    pub(super) fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Answer {
        Answer {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
            head_length: None,
            page: None,
        }
    }

    pub(super) fn json(status: u16, body: &str) -> Answer {
        Answer::new(status, "application/json", body)
    }

    pub(super) fn header(mut self, name: &str, value: impl Into<String>) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub(super) fn link(&self) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("link"))
            .map(|(_, v)| v.clone())
    }
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
pub(super) fn forward(shared: &Shared, request: &Request, target: &str) -> Answer {
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
