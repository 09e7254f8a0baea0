//! Registry answers that never end: a manifest and a tag list streamed without end from a loopback
//! server. `stack lock` stops reading at its limit and fails naming the input and the limit; the server
//! counts what it managed to send before the client hung up, which bounds the work done (and the
//! memory it could have taken) by input size, not by time.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::support::stack::oci_chart;
use crate::support::TestStack;

/// The limits `stack` reads an OCI manifest and a tag page up to (src/source/oci.rs).
const MANIFEST_LIMIT: u64 = 4 << 20;
const TAG_PAGE_LIMIT: u64 = 16 << 20;
/// What loopback socket buffers can hold beyond what the client read.
const BUFFERED: u64 = 16 << 20;

/// A registry whose every answer is `200` with a body that never ends: `head` once, then `repeat`
/// until the client hangs up (no Content-Length, so only the bytes read can stop it). Returns the
/// `host:port` and the bytes sent so far.
fn endless_registry(head: &'static [u8], repeat: &'static [u8]) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let header = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
                if stream.write_all(header).is_err() || stream.write_all(head).is_err() {
                    return;
                }
                counter.fetch_add(head.len() as u64, Ordering::SeqCst);
                while stream.write_all(repeat).is_ok() {
                    counter.fetch_add(repeat.len() as u64, Ordering::SeqCst);
                }
            });
        }
    });
    (host, sent)
}

fn lock_against(host: &str, version: &str) -> (TestStack, crate::support::stack::Output) {
    let mut stack = TestStack::with_inputs(&oci_chart(
        "endless",
        &format!("oci://{host}/acme/endless"),
        version,
    ));
    // Generous: the limit, not a timer, must be what stops the read.
    stack.env("STACK_HTTP_TIMEOUT_SECS", "120");
    let out = stack.lock(&[]);
    (stack, out)
}

#[test]
fn an_endless_manifest_stops_at_the_limit_naming_the_input() {
    let (host, sent) = endless_registry(
        br#"{"schemaVersion":2,"annotations":{"x":""#,
        &[b'x'; 64 << 10],
    );
    let (stack, out) = lock_against(&host, "1.0.0");
    let out = out.code(2);
    assert!(
        !stack.root().join("stack.lock").exists(),
        "a lock was written"
    );
    insta::assert_snapshot!("endless_manifest", stack.redact(&out.stderr));
    let sent = sent.load(Ordering::SeqCst);
    assert!(
        sent <= MANIFEST_LIMIT + BUFFERED,
        "the client read on: {sent} bytes sent"
    );
}

#[test]
fn an_endless_tag_list_stops_at_the_limit_naming_the_input() {
    let (host, sent) = endless_registry(
        br#"{"name":"acme/endless","tags":["0.0.1""#,
        &[b','; 64 << 10],
    );
    let (stack, out) = lock_against(&host, "^1.0");
    let out = out.code(2);
    insta::assert_snapshot!("endless_tag_list", stack.redact(&out.stderr));
    let sent = sent.load(Ordering::SeqCst);
    assert!(
        sent <= TAG_PAGE_LIMIT + BUFFERED,
        "the client read on: {sent} bytes sent"
    );
}
