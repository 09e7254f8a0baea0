//! The tests of [`super::http_server`]: kept apart from it because the library's unit tests compile
//! that file too (see src/lib.rs, `mod support`), without the chart and registry helpers used here.

use crate::support::http_client::request;
use crate::support::http_server::*;

#[test]
fn serves_files_with_etags_and_answers_if_none_match_with_304() {
    let server = HttpServer::start();
    server.serve("/index.yaml", "apiVersion: v1\n");
    let first = request("GET", &format!("{}/index.yaml", server.url()), &[], b"").unwrap();
    assert_eq!(
        (first.status, first.text().as_str()),
        (200, "apiVersion: v1\n")
    );
    let etag = first.header("etag").unwrap().to_string();
    let second = request(
        "GET",
        &format!("{}/index.yaml", server.url()),
        &[("If-None-Match", &etag)],
        b"",
    )
    .unwrap();
    assert_eq!(second.status, 304);
    assert!(second.body.is_empty());
    server.serve("/index.yaml", "apiVersion: v1\nentries: {}\n");
    let third = request(
        "GET",
        &format!("{}/index.yaml", server.url()),
        &[("If-None-Match", &etag)],
        b"",
    )
    .unwrap();
    assert_eq!(third.status, 200, "changed content gets a new ETag");
    let log = server.requests_to("/index.yaml");
    assert_eq!(
        log.iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 304, 200]
    );
    assert_eq!(log[1].if_none_match(), Some(etag.as_str()));
    assert_eq!(
        request("GET", &format!("{}/nope", server.url()), &[], b"")
            .unwrap()
            .status,
        404
    );
}

#[test]
fn answers_if_modified_since_when_there_is_no_if_none_match() {
    let server = HttpServer::start();
    server.etags(false);
    server.serve("/a.json", "{}");
    let url = format!("{}/a.json", server.url());
    let first = request("GET", &url, &[], b"").unwrap();
    assert_eq!(first.header("etag"), None);
    let date = first.header("last-modified").unwrap().to_string();
    let second = request("GET", &url, &[("If-Modified-Since", &date)], b"").unwrap();
    assert_eq!(second.status, 304);
    server.serve("/a.json", "{\"x\": 1}");
    let third = request("GET", &url, &[("If-Modified-Since", &date)], b"").unwrap();
    assert_eq!((third.status, third.text().as_str()), (200, "{\"x\": 1}"));
    assert_ne!(third.header("last-modified"), Some(date.as_str()));
}

#[test]
fn serves_a_directory_under_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let chart = crate::support::charts::fixture_chart("loki", "6.49.0");
    fs_err::write(dir.path().join(chart.file_name()), &chart.bytes).unwrap();
    let server = HttpServer::start();
    server.serve_dir("/charts", dir.path());
    let got = request(
        "GET",
        &format!("{}/charts/loki-6.49.0.tgz", server.url()),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(got.body, chart.bytes);
}

#[test]
fn faults_happen_in_order_then_the_path_is_served() {
    let server = HttpServer::start();
    server.serve("/a.json", "{}");
    server.fail(
        "/a.json",
        [
            Fault::Status(500),
            Fault::TooManyRequests {
                retry_after_secs: 3,
            },
        ],
    );
    let url = format!("{}/a.json", server.url());
    assert_eq!(request("GET", &url, &[], b"").unwrap().status, 500);
    let limited = request("GET", &url, &[], b"").unwrap();
    assert_eq!(
        (limited.status, limited.header("retry-after")),
        (429, Some("3"))
    );
    assert_eq!(request("GET", &url, &[], b"").unwrap().status, 200);

    server.fail_always("/a.json", Fault::Body(b"lies".to_vec()));
    assert_eq!(request("GET", &url, &[], b"").unwrap().text(), "lies");
    server.clear_faults("/a.json");
    assert_eq!(request("GET", &url, &[], b"").unwrap().text(), "{}");
}

#[test]
fn a_truncated_body_announces_more_than_it_sends() {
    let server = HttpServer::start();
    server.serve("/big.json", vec![b'x'; 10_000]);
    server.fail("/big.json", [Fault::Truncate { send: 100 }]);
    let err = request("GET", &format!("{}/big.json", server.url()), &[], b"").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
}

#[test]
fn a_hanging_request_is_logged_and_released_on_drop() {
    let server = HttpServer::start();
    server.fail_always("/slow", Fault::Hang);
    let url = format!("{}/slow", server.url());
    let client = std::thread::spawn(move || request("GET", &url, &[], b""));
    server.wait_for_request("/slow");
    assert_eq!(server.requests_to("/slow")[0].status, 0);
    drop(server);
    assert!(
        client.join().unwrap().is_err(),
        "the connection closes without an answer"
    );
}

#[test]
fn basic_auth_is_demanded_and_logged_by_presence() {
    let server = HttpServer::start();
    server.serve("/index.yaml", "x");
    server.require_basic_auth("u", "p");
    let url = format!("{}/index.yaml", server.url());
    let denied = request("GET", &url, &[], b"").unwrap();
    assert_eq!(denied.status, 401);
    assert!(denied
        .header("www-authenticate")
        .unwrap()
        .starts_with("Basic"));
    let auth = crate::support::registry::basic_header("u", "p");
    assert_eq!(
        request("GET", &url, &[("Authorization", &auth)], b"")
            .unwrap()
            .status,
        200
    );
    let log = server.requests();
    assert_eq!(
        (log[0].has_authorization(), log[1].has_authorization()),
        (false, true)
    );
}
