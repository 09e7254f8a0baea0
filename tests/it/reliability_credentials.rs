//! Never leak credentials: userinfo in any URL field is refused with one message, a registry auth entry
//! that can never match is an error without the secret, Docker credential helpers are named in a warning.

use crate::reliability::{dashboards, inputs};
use crate::support::{self, HttpServer, TestStack};

const SECRET: &str = "hunter2-planted";

/// Asserts the secret is nowhere but where the test planted it (stack.toml): not in stack.lock, vendor/,
/// out/, `.stack/` or the cache, not in any request a server received.
fn secret_nowhere(stack: &TestStack, servers: &[&HttpServer]) {
    for dir in [stack.root(), stack.cache_dir()] {
        for (path, bytes) in support::read_tree(dir) {
            let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
            assert!(path == "stack.toml" || !found, "{path} holds the secret");
        }
    }
    for server in servers {
        for r in server.requests() {
            let logged = format!("{} {:?}", r.target, r.headers);
            assert!(
                !logged.contains(SECRET),
                "a server saw the secret: {logged}"
            );
        }
    }
}

#[test]
fn userinfo_is_refused_in_every_url_field_with_one_message() {
    let server = dashboards(1);
    let host = server.url().trim_start_matches("http://").to_string();
    let with_secret = format!("http://user:{SECRET}@{host}");
    let cases = [
        (
            "`url`",
            format!("[dashboards.d1]\nurl = \"{with_secret}/old/d1.json\"\nfolder = \"T\"\n"),
            vec![],
        ),
        (
            "[mirrors]",
            format!(
                "{}[mirrors]\n\"{}\" = {{ to = \"{with_secret}\", cluster = true }}\n",
                inputs(&server, "old", 1..=1),
                server.url()
            ),
            vec![],
        ),
        (
            "the target",
            inputs(&server, "old", 1..=1),
            vec![
                "--mirror".to_string(),
                format!("{}={with_secret}", server.url()),
            ],
        ),
        (
            "the target",
            format!("[charts.c]\noci = \"oci://{host}/charts/c\"\nversion = \"1.0.0\"\n"),
            vec![
                "--mirror".to_string(),
                format!("{host}=oci://user:{SECRET}@{host}"),
            ],
        ),
    ];
    for (field, toml, flags) in cases {
        let stack = TestStack::with_inputs(&toml);
        let mut args = vec!["lock"];
        args.extend(flags.iter().map(String::as_str));
        stack
            .run(&args)
            .code(2)
            .mentions(&[
                &format!("{field}: credentials do not belong in a URL"),
                "help:",
            ])
            .never_shows(SECRET);
        stack.run(&["build"]).code(2).never_shows(SECRET);
        assert!(!stack.exists("stack.lock") && !stack.exists("kubernetes"));
        secret_nowhere(&stack, &[&server]);
    }
    assert!(server.requests().is_empty(), "nothing was fetched");
}

#[test]
fn a_registry_auth_entry_that_can_never_match_is_an_error_without_the_secret() {
    let server = dashboards(1);
    let mut stack = TestStack::with_inputs(&inputs(&server, "old", 1..=1));
    stack.env(
        "STACK_REGISTRY_AUTH",
        &format!("127.0.0.1:50x0=user:{SECRET}"),
    );
    stack
        .lock(&[])
        .code(2)
        .mentions(&["STACK_REGISTRY_AUTH: entry 1"])
        .never_shows(SECRET);
    secret_nowhere(&stack, &[&server]);
}

#[test]
fn docker_credential_helpers_are_named_in_a_warning() {
    let server = dashboards(1);
    let stack = TestStack::with_inputs(&inputs(&server, "old", 1..=1));
    fs_err::write(
        stack.docker_config_dir().join("config.json"),
        r#"{"auths": {}, "credsStore": "desktop", "credHelpers": {"ghcr.io": "gcloud"}}"#,
    )
    .unwrap();
    stack.lock(&[]).success().mentions(&[
        "warning:",
        "`credsStore: desktop` is not supported",
        "`credHelpers.ghcr.io: gcloud` is not supported",
    ]);
}
