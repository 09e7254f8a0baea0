//! Tests of the HTTP client: retries, limits, redirects, credentials, against the loopback server.

use reqwest::header::RETRY_AFTER;

use super::retry::MAX_ATTEMPTS;
use super::test_server::{ok, serve, status, Answer};
use super::*;

fn fast() -> Http {
    Http::new(
        Timeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_millis(500),
        },
        RetryPolicy {
            max_attempts: MAX_ATTEMPTS,
            base: Duration::from_millis(5),
        },
    )
    .unwrap()
}

fn get<'a>(url: &'a Url) -> Get<'a> {
    Get {
        url,
        credentials: None,
        if_none_match: None,
        if_modified_since: None,
        limit: 1 << 20,
        insecure: false,
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn retries_500_then_succeeds() {
    let server = serve(vec![status(500, ""), status(503, ""), ok(b"hello", "")]);
    let url = Url::parse(&format!("{}/x", server.base)).unwrap();
    let got = rt()
        .block_on(fast().get(&get(&url)))
        .unwrap()
        .into_bytes()
        .unwrap();
    assert_eq!(got, b"hello");
    assert_eq!(server.requests.lock().unwrap().len(), 3);
}

#[test]
fn gives_up_after_max_attempts() {
    let server = serve(vec![status(502, "")]);
    let url = Url::parse(&format!("{}/x", server.base)).unwrap();
    let err = rt()
        .block_on(fast().get(&get(&url)))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HTTP 502") && err.contains("gave up after 4 attempts"),
        "{err}"
    );
    assert_eq!(server.requests.lock().unwrap().len(), 4);
}

/// No timing assertion: the wait is what `Retry-After` says (the seconds form; an HTTP date falls back
/// to the backoff), and the request is tried again after it.
#[test]
fn honours_retry_after_on_429() {
    let mut headers = HeaderMap::new();
    headers.insert(RETRY_AFTER, "1".parse().unwrap());
    assert_eq!(retry_after(&headers), Some(Duration::from_secs(1)));
    headers.insert(
        RETRY_AFTER,
        "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
    );
    assert_eq!(retry_after(&headers), None);

    let server = serve(vec![status(429, "Retry-After: 1\r\n"), ok(b"later", "")]);
    let url = Url::parse(&format!("{}/x", server.base)).unwrap();
    let got = rt()
        .block_on(fast().get(&get(&url)))
        .unwrap()
        .into_bytes()
        .unwrap();
    assert_eq!(got, b"later");
    assert_eq!(server.requests.lock().unwrap().len(), 2);
}

#[test]
fn truncated_body_is_an_error() {
    let raw =
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nonly-this".to_vec();
    let server = serve(vec![Answer::Raw(raw)]);
    let url = Url::parse(&format!("{}/x", server.base)).unwrap();
    let err = rt()
        .block_on(fast().get(&get(&url)))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("truncated") && err.contains("9 of 100 bytes"),
        "{err}"
    );
}

#[test]
fn a_server_that_stops_answering_times_out() {
    let server = serve(vec![Answer::Hang]);
    let url = Url::parse(&format!("{}/x", server.base)).unwrap();
    let err = rt()
        .block_on(fast().get(&get(&url)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("timed out"), "{err}");
}

#[test]
fn size_limit_is_enforced() {
    let server = serve(vec![ok(&[b'x'; 2000], "")]);
    let url = Url::parse(&format!("{}/x", server.base)).unwrap();
    let mut req = get(&url);
    req.limit = 1000;
    let err = rt().block_on(fast().get(&req)).unwrap_err().to_string();
    assert!(err.contains("larger than the limit of 1000 bytes"), "{err}");
    assert_eq!(server.requests.lock().unwrap().len(), 1, "not retried");
}

#[test]
fn not_modified_with_etag() {
    let server = serve(vec![status(304, "")]);
    let url = Url::parse(&format!("{}/index.yaml", server.base)).unwrap();
    let mut req = get(&url);
    req.if_none_match = Some("\"abc\"");
    assert!(matches!(
        rt().block_on(fast().get(&req)).unwrap(),
        Fetched::NotModified
    ));
    assert!(server.requests.lock().unwrap()[0]
        .to_ascii_lowercase()
        .contains("if-none-match: \"abc\""));
}

#[test]
fn not_modified_since_a_date_and_validators_are_kept() {
    let server = serve(vec![
        ok(
            b"v1",
            "ETag: \"e1\"\r\nLast-Modified: Thu, 01 Jan 2026 00:00:00 GMT\r\n",
        ),
        status(304, ""),
    ]);
    let url = Url::parse(&format!("{}/a.json", server.base)).unwrap();
    let Fetched::Body {
        etag,
        last_modified,
        ..
    } = rt().block_on(fast().get(&get(&url))).unwrap()
    else {
        panic!("a body first");
    };
    assert_eq!(etag.as_deref(), Some("\"e1\""));
    let mut req = get(&url);
    req.if_modified_since = last_modified.as_deref();
    assert!(matches!(
        rt().block_on(fast().get(&req)).unwrap(),
        Fetched::NotModified
    ));
    assert!(server.requests.lock().unwrap()[1]
        .to_ascii_lowercase()
        .contains("if-modified-since: thu, 01 jan 2026 00:00:00 gmt"));
}

#[test]
fn unauthorized_error_does_not_contain_the_password() {
    let server = serve(vec![status(401, "WWW-Authenticate: Basic realm=\"r\"\r\n")]);
    let url = Url::parse(&format!("{}/private/index.yaml", server.base)).unwrap();
    let creds = Credentials::new("alice", "hunter2-secret");
    let mut req = get(&url);
    req.credentials = Some(&creds);
    let err = rt().block_on(fast().get(&req)).unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("refused the credentials"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    // And the credentials were sent as Basic auth.
    assert!(server.requests.lock().unwrap()[0]
        .to_ascii_lowercase()
        .contains("authorization: basic"));
}

#[test]
fn bearer_realm_is_read_from_the_challenge() {
    assert_eq!(
        bearer_realm(r#"Bearer realm="https://a/token",service="r",scope="x""#).as_deref(),
        Some("https://a/token")
    );
    assert_eq!(bearer_realm(r#"Basic realm="x""#), None);
}

#[test]
fn userinfo_is_redacted() {
    let url = Url::parse("https://bob:pw@example.com/charts/index.yaml").unwrap();
    assert_eq!(redact(&url), "https://example.com/charts/index.yaml");
    assert_eq!(redact_str("oci://u:p@reg/x"), "oci://reg/x");
}

#[test]
fn plain_http_only_to_loopback_or_insecure() {
    let check =
        |u: &str, insecure| Http::check_transport(&Url::parse(u).unwrap(), insecure).is_ok();
    assert!(check("http://127.0.0.1:8080/x", false));
    assert!(check("http://127.1.2.3/x", false));
    assert!(check("http://localhost:1/x", false));
    assert!(check("http://[::1]:1/x", false));
    assert!(!check("http://10.0.0.1/x", false));
    assert!(check("http://10.0.0.1/x", true));
    assert!(check("https://example.com/x", false));
    assert!(!check("ftp://example.com/x", true));
}

#[test]
fn tls_is_set_up_so_https_fails_cleanly_against_a_plain_server() {
    // rustls needs a crypto provider at run time; a missing one panics instead of erroring.
    let server = serve(vec![status(200, "")]);
    let url = Url::parse(&server.base.replace("http://", "https://")).unwrap();
    let err = rt()
        .block_on(fast().get(&get(&url)))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with(&format!("GET {url}")), "{err}");
}

#[test]
fn backoff_doubles() {
    let p = RetryPolicy {
        max_attempts: 4,
        base: Duration::from_millis(100),
    };
    assert_eq!(p.backoff(1), Duration::from_millis(100));
    assert_eq!(p.backoff(3), Duration::from_millis(400));
}

/// A server whose refused redirect quotes the `Authorization` it was sent: the error shows the
/// target without the password or its base64.
#[test]
fn a_refused_redirect_echoing_the_credentials_never_shows_them() {
    let creds = Credentials::new("alice", "hunter2-secret");
    let basic = creds.wire_forms()[1].clone();
    let b64 = basic.trim_start_matches("Basic ");
    let server = serve(vec![status(
        302,
        &format!("Location: file:///x?a={b64}&p=hunter2-secret\r\n"),
    )]);
    let url = Url::parse(&format!("{}/x", server.base)).unwrap();
    let mut req = get(&url);
    req.credentials = Some(&creds);
    let err = rt().block_on(fast().get(&req)).unwrap_err().to_string();
    assert!(err.contains("file:///x?a=***&p=***"), "{err}");
    for secret in ["hunter2-secret", b64] {
        assert!(!err.contains(secret), "{err}");
    }
}
