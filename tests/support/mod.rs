//! Test support: real servers on loopback and a harness that runs the real `stack` binary.
//!
//! Nothing here is a mock. [`Registry`] is Debian's `docker-registry` (the CNCF distribution registry 2.8)
//! started on a free port of 127.0.0.1 with a temp dir; [`HttpServer`] is a small HTTP/1.1 server on
//! loopback that serves real bytes, logs every request and can misbehave on purpose (it is also the
//! server of the library's unit tests: src/lib.rs compiles it, with [`wire`] and [`tree`], and
//! src/http/test_server.rs scripts raw answers through it); [`GrafanaCom`] is that
//! server answering grafana.com's dashboard API from real dashboard files; [`ghcr::GhcrProxy`] is a
//! ghcr.io-like proxy in front of a [`Registry`]; [`CountingProxy`] counts (and may delay) the requests
//! to any of them; these two read requests, write answers and accept
//! connections through [`wire`];
//! [`TestStack`] writes a stack into a temp dir and runs `stack` on it; [`SnapshotMirror`] is the whole
//! upstream of the repo's default stack, as `--mirror` flags.
//!
//! The repository holds only what we wrote: synthetic fixtures under `tests/fixtures/` and `tests/mirror/`.
//! Real upstream bytes (dashboards, Flux CRDs, Helm's index fixtures, charts' metadata and defaults) are
//! read in place from `../shared/upstream/` through [`upstream`].

#![allow(dead_code)]

pub mod charts;
pub mod ghcr;
pub mod grafana;
pub mod helm;
pub mod http_client;
pub mod http_server;
#[cfg(test)]
mod http_server_tests;
pub mod mirror;
pub mod proxy;
pub mod registry;
pub mod stack;
pub mod tree;
pub mod upstream;
pub mod wire;

use std::path::PathBuf;
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use charts::Chart;
pub use grafana::GrafanaCom;
#[allow(unused_imports)]
pub use http_server::{Fault, HttpServer, LoggedRequest};
pub use mirror::SnapshotMirror;
#[allow(unused_imports)]
pub use proxy::{CountingProxy, ProxiedRequest};
pub use registry::Registry;
#[allow(unused_imports)]
pub use stack::{Output, Running, TestStack};
pub use tree::{copy_tree, read_tree};

/// The repository root (where Cargo.toml, stack.toml and modules/ are).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(rel)
}

/// The bytes of `tests/fixtures/<rel>`, with the path in the panic message when it is missing.
pub fn fixture_bytes(rel: &str) -> Vec<u8> {
    let path = fixture(rel);
    fs_err::read(&path).unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()))
}

/// A real upstream dashboard, read in place from `../shared/upstream/dashboards/` (see [`upstream`]).
pub fn dashboard_bytes(file: &str) -> Vec<u8> {
    upstream::dashboard(file)
}

/// True when running under CI (`CI=true`), where a missing tool is a failure, never a skip.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Finds an external tool a test needs. Missing: under CI the test fails loudly; locally it prints a loud
/// skip message and the test returns early (the caller gets `None`).
pub fn require_tool(name: &str, candidates: &[&str], install_hint: &str) -> Option<PathBuf> {
    let found = candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| find_in_path(name));
    match found {
        Some(path) => Some(path),
        None if in_ci() => panic!(
            "`{name}` is required by this test and is not installed (CI=true, so this is a failure, not a skip); install it with: {install_hint}"
        ),
        None => {
            // Straight to the process's stderr, not through eprintln!, which the test harness captures
            // and shows only for failing tests: a skip must be seen.
            use std::io::Write as _;
            let bang = "!".repeat(78);
            let _ = writeln!(
                std::io::stderr(),
                "\n{bang}\n!!! SKIPPED {test}: `{name}` is not installed; install it with: {install_hint}\n!!! (under CI=true this is a failure)\n{bang}",
                test = std::thread::current().name().unwrap_or("a test"),
            );
            None
        }
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A port that was free a moment ago on 127.0.0.1. There is a window between this and the server binding
/// it; callers that start a separate process retry on a bind failure.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

/// Waits until `condition` holds. The deadline is a guard against a test hanging forever, not a timing
/// assertion: the condition is what the test is about.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !condition() {
        if Instant::now() > deadline {
            panic!("gave up waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The tool's own digests (`sha256:<hex>` and bare blake3 hex, see [`::stack::digest`]): tests compare
/// with what the tool computes, never with a second implementation.
pub use ::stack::digest::{blake3, sha256};

#[cfg(test)]
mod tests {
    #[test]
    fn a_missing_tool_is_a_skip_locally_and_a_failure_under_ci() {
        let missing = || super::require_tool("stack-no-such-tool-7c1", &[], "nothing");
        if super::in_ci() {
            assert!(std::panic::catch_unwind(missing).is_err());
        } else {
            assert_eq!(missing(), None);
        }
    }
}
