//! `stack lock` against a private registry and a private Helm repository: credentials from stack's
//! registry auth or the Docker config reach only their host and never the output, the lock or vendor/.

use crate::lock::repo_chart;
use crate::support::charts::{self, fixture_chart};
use crate::support::registry::{self, Registry, PASSWORD, USER};
use crate::support::stack::{field, oci_chart};
use crate::support::{HttpServer, TestStack};

fn private_registry() -> Option<(Registry, String)> {
    let registry = Registry::start_with_basic_auth()?;
    registry.push_fixture("private/loki", &fixture_chart("loki", "6.49.0"));
    let url = registry.oci_url("private/loki");
    Some((registry, url))
}

#[test]
fn private_registry_credentials_from_stack_registry_auth_never_reach_output_or_files() {
    let Some((registry, url)) = private_registry() else {
        return;
    };
    let mut stack = TestStack::with_inputs(&oci_chart("loki", &url, "6.49.0"));
    stack.env(
        "STACK_REGISTRY_AUTH",
        &format!("{}={USER}:{PASSWORD}", registry.host()),
    );

    stack
        .lock(&[])
        .success()
        .never_shows(PASSWORD)
        .never_shows(USER);

    assert_eq!(field(&stack.locked_chart("loki"), "source"), url);
    assert!(!stack.lock_text().contains(USER));
    stack.assert_no_file_contains(PASSWORD);
}

#[test]
fn private_registry_credentials_from_docker_config() {
    let Some((registry, url)) = private_registry() else {
        return;
    };
    let stack = TestStack::with_inputs(&oci_chart("loki", &url, "6.49.0"));
    fs_err::write(
        stack.docker_config_dir().join("config.json"),
        registry::docker_config_json(&registry.host(), USER, PASSWORD),
    )
    .unwrap();

    stack.lock(&[]).success().never_shows(PASSWORD);

    assert_eq!(field(&stack.locked_chart("loki"), "version"), "6.49.0");
    stack.assert_no_file_contains(PASSWORD);
}

#[test]
fn private_registry_wrong_password_fails_without_showing_it() {
    let Some((registry, url)) = private_registry() else {
        return;
    };
    let wrong = "wrong-password-91c2e";
    let mut stack = TestStack::with_inputs(&oci_chart("loki", &url, "6.49.0"));
    stack.env(
        "STACK_REGISTRY_AUTH",
        &format!("{}={USER}:{wrong}", registry.host()),
    );

    stack
        .lock(&[])
        .code(2)
        .never_shows(wrong)
        .never_shows(PASSWORD)
        .mentions(&["loki"])
        .mentions_any(&["401", "unauthorized", "credentials", "denied"]);

    assert!(!stack.exists("stack.lock"));
    stack.assert_no_file_contains(wrong);
}

#[test]
fn private_registry_without_credentials_says_how_to_give_them() {
    let Some((_registry, url)) = private_registry() else {
        return;
    };
    let stack = TestStack::with_inputs(&oci_chart("loki", &url, "6.49.0"));

    stack
        .lock(&[])
        .code(2)
        .mentions(&["loki"])
        .mentions_any(&["STACK_REGISTRY_AUTH", "docker login"]);
    assert!(!stack.exists("stack.lock"));
}

#[test]
fn private_helm_repo_gets_credentials_and_other_hosts_never_do() {
    let index = HttpServer::start();
    index.require_basic_auth(USER, PASSWORD);
    let files = HttpServer::start();
    let chart = fixture_chart("alloy", "1.1.2");
    files.serve("/alloy-1.1.2.tgz", chart.bytes.clone());
    let files_url = files.url();
    index.serve(
        "/index.yaml",
        charts::index_yaml_with(
            std::slice::from_ref(&chart),
            |c| format!("{files_url}/{}", c.file_name()),
            |c| c.sha256_hex(),
        ),
    );
    let mut stack = TestStack::with_inputs(&repo_chart("alloy", &index.url(), "1.1.2"));
    stack.env(
        "STACK_REGISTRY_AUTH",
        &format!("{}={USER}:{PASSWORD}", index.host()),
    );

    stack.lock(&[]).success().never_shows(PASSWORD);

    assert!(index
        .requests_to("/index.yaml")
        .iter()
        .any(|r| r.status == 200 && r.has_authorization()));
    let downloads = files.requests_to("/alloy-1.1.2.tgz");
    assert_eq!(downloads.len(), 1);
    assert!(
        !downloads[0].has_authorization(),
        "credentials for {} were sent to {}",
        index.host(),
        files.host()
    );
    stack.assert_no_file_contains(PASSWORD);
}
