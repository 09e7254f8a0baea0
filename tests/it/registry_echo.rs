//! `stack lock` against a registry that quotes the `Authorization` header it was sent in its error
//! answers (some do, in a "bad header …" message): whatever a registry or its token realm says back
//! reaches the user without the password, its base64, or the token.

use std::net::TcpStream;

use base64::Engine as _;

use crate::support::stack::oci_chart;
use crate::support::wire::{self, Accepting, Listener, Request};
use crate::support::TestStack;

const USER: &str = "bob";
const PASSWORD: &str = "SECRETPW-echo-7c1";
/// The token the realm hands out: with `/` and `+`, as base64 tokens have.
const TOKEN: &str = "tok/EN+echo-93b1";

/// How the registry asks for credentials.
#[derive(Clone, Copy)]
enum Auth {
    /// `401 Basic`, then a `400` whose JSON error envelope quotes the header.
    Basic,
    /// `401 Bearer` with a realm on the same server that issues [`TOKEN`] for the Basic credentials,
    /// then a plain-text `400` quoting the header.
    Bearer,
    /// `401 Bearer` with a realm that refuses, quoting the Basic header it was sent.
    RealmRefuses,
}

fn start(auth: Auth) -> Accepting {
    let listener = Listener::bind();
    let realm = format!("{}/token", listener.url());
    listener.serve("echo-registry", move |stream, request| {
        answer(auth, &realm, stream, &request)
    })
}

fn answer(auth: Auth, realm: &str, mut stream: TcpStream, request: &Request) {
    let sent = request.headers.get("authorization").cloned();
    let (status, headers, body) = match (request.path(), sent) {
        ("/token", Some(sent)) => match auth {
            Auth::RealmRefuses => (401, vec![], format!("bad credentials in header {sent}")),
            _ => (200, vec![], format!(r#"{{"token":"{TOKEN}"}}"#)),
        },
        ("/token", None) => (401, vec![], "no credentials".to_string()),
        (_, None) => {
            let challenge = match auth {
                Auth::Basic => "Basic realm=\"x\"".to_string(),
                _ => format!("Bearer realm=\"{realm}\",service=\"echo\""),
            };
            let headers = vec![("WWW-Authenticate".to_string(), challenge)];
            (
                401,
                headers,
                r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.into(),
            )
        }
        (_, Some(sent)) => match auth {
            Auth::Basic => (
                400,
                vec![],
                format!(r#"{{"errors":[{{"code":"DENIED","message":"bad header {sent}"}}]}}"#),
            ),
            _ => (400, vec![], format!("bad header {sent}")),
        },
    };
    wire::respond(
        &mut stream,
        &request.method,
        status,
        &headers,
        body.len(),
        body.as_bytes(),
    );
}

fn lock_against(auth: Auth) -> crate::support::stack::Output {
    let server = start(auth);
    let url = format!("oci://{}/x/o", server.host());
    let mut stack = TestStack::with_inputs(&oci_chart("o", &url, "1.0.0"));
    stack.env(
        "STACK_REGISTRY_AUTH",
        &format!("{}={USER}:{PASSWORD}", server.host()),
    );
    let out = stack.lock(&[]).code(2);
    assert!(!stack.exists("stack.lock"));
    stack.assert_no_file_contains(PASSWORD);
    out
}

#[track_caller]
fn never_shows_a_secret(out: crate::support::stack::Output) -> crate::support::stack::Output {
    let pair = format!("{USER}:{PASSWORD}");
    let padded = base64::engine::general_purpose::STANDARD.encode(&pair);
    let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&pair);
    out.never_shows(PASSWORD)
        .never_shows(&unpadded)
        .never_shows(&padded)
        .never_shows(TOKEN)
        .never_shows("echo-93b1")
}

/// The repro: the registry's envelope message quotes `Basic <base64>`; a `400` is a bad request, not
/// refused credentials.
#[test]
fn a_registry_echoing_the_basic_header_never_shows_it() {
    let out =
        never_shows_a_secret(lock_against(Auth::Basic)).mentions(&["HTTP 400", "bad header ***"]);
    assert!(!out.all().contains("refused the credentials"), "{out:?}");
}

#[test]
fn a_registry_echoing_the_bearer_token_never_shows_it() {
    never_shows_a_secret(lock_against(Auth::Bearer)).mentions(&["HTTP 400", "bad header ***"]);
}

#[test]
fn a_token_realm_echoing_the_basic_header_never_shows_it() {
    never_shows_a_secret(lock_against(Auth::RealmRefuses))
        .mentions(&["HTTP 401", "bad credentials in header ***"]);
}
