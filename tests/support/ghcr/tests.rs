//! The tests of the ghcr proxy: the token flow, tag paging, blob redirects and pushes, each against a real
//! registry behind the proxy.

use super::*;
use crate::support::charts::runtime_chart;
use crate::support::http_client::request;
use crate::support::registry::{chart_manifest, OCI_MANIFEST};

fn get_token(proxy: &GhcrProxy, scope: &str) -> String {
    let url = format!(
        "{}/token?scope={}&service={SERVICE}",
        proxy.url(),
        url::form_urlencoded::byte_serialize(scope.as_bytes()).collect::<String>()
    );
    let resp = request("GET", &url, &[], b"").unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let doc: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    doc["token"].as_str().unwrap().to_string()
}

/// `/v2/` and a manifest without a token answer 401 with a Bearer challenge naming the realm (and,
/// for the manifest, the repository's pull scope).
fn assert_anonymous_requests_are_challenged(proxy: &GhcrProxy, manifest_url: &str) {
    let ping = request("GET", &format!("{}/v2/", proxy.url()), &[], b"").unwrap();
    assert_eq!(ping.status, 401);
    assert!(ping
        .header("www-authenticate")
        .unwrap()
        .starts_with(&format!(
            "Bearer realm=\"{}/token\",service=\"ghcr.io\"",
            proxy.url()
        )));

    let accept = ("Accept", OCI_MANIFEST);
    let refused = request("GET", manifest_url, &[accept], b"").unwrap();
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("www-authenticate").unwrap(),
        format!(
            "Bearer realm=\"{}/token\",service=\"ghcr.io\",scope=\"repository:org/charts/demo:pull\"",
            proxy.url()
        )
    );
    assert!(refused.text().contains("UNAUTHORIZED"));
}

/// A token is good for its scope only, and an unknown token for nothing.
fn assert_token_is_good_for_its_scope_only(
    proxy: &GhcrProxy,
    manifest_url: &str,
    auth: (&str, &str),
) {
    let accept = ("Accept", OCI_MANIFEST);
    let other = request(
        "GET",
        &format!("{}/v2/org/charts/other/tags/list", proxy.url()),
        &[auth],
        b"",
    )
    .unwrap();
    assert_eq!(other.status, 401);
    assert!(other
        .header("www-authenticate")
        .unwrap()
        .contains("insufficient_scope"));
    let forged = request(
        "GET",
        manifest_url,
        &[accept, ("Authorization", "Bearer djE6forged")],
        b"",
    )
    .unwrap();
    assert_eq!(forged.status, 401);
}

#[test]
fn registry_api_needs_a_bearer_token_from_the_realm_it_names() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let chart = runtime_chart("demo", "1.0.0", "");
    let digest = registry.push_chart("org/charts/demo", "1.0.0", &chart.bytes);
    let proxy = GhcrProxy::start(&registry);

    let manifest_url = format!("{}/v2/org/charts/demo/manifests/1.0.0", proxy.url());
    let accept = ("Accept", OCI_MANIFEST);
    assert_anonymous_requests_are_challenged(&proxy, &manifest_url);

    let token = get_token(&proxy, "repository:org/charts/demo:pull");
    let bearer = format!("Bearer {token}");
    let auth = ("Authorization", bearer.as_str());
    let got = request("GET", &manifest_url, &[accept, auth], b"").unwrap();
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.body, chart_manifest(&chart.bytes).1);
    assert_eq!(got.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(got.header("content-type"), Some(OCI_MANIFEST));
    let head = request("HEAD", &manifest_url, &[accept, auth], b"").unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(got.body.len().to_string().as_str())
    );
    let blob = request(
        "GET",
        &format!(
            "{}/v2/org/charts/demo/blobs/{}",
            proxy.url(),
            chart.sha256()
        ),
        &[auth],
        b"",
    )
    .unwrap();
    assert_eq!(blob.body, chart.bytes);
    assert_eq!(
        request("GET", &format!("{}/v2/", proxy.url()), &[auth], b"")
            .unwrap()
            .status,
        200
    );

    assert_token_is_good_for_its_scope_only(&proxy, &manifest_url, auth);

    let tokens = proxy.token_requests();
    assert_eq!(tokens.len(), 1);
    assert_eq!(
        tokens[0].query_value("scope"),
        Some("repository:org/charts/demo:pull")
    );
    assert_eq!(tokens[0].query_value("service"), Some("ghcr.io"));
    assert_eq!(proxy.issued_tokens(), [token]);
    assert_eq!(proxy.challenges().len(), 4);
}

#[test]
fn tags_are_paged_in_lexical_order_with_link_headers() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let versions = [
        "1.7.0", "1.8.0", "1.9.0", "1.9.1", "1.10.0", "1.11.0", "1.12.0",
    ];
    for v in versions {
        registry.push_chart("org/demo", v, &runtime_chart("demo", v, "").bytes);
    }
    let proxy = GhcrProxy::start(&registry);
    proxy.set_page_size(2);
    let token = get_token(&proxy, "repository:org/demo:pull");
    let bearer = format!("Bearer {token}");

    let mut next = Some("/v2/org/demo/tags/list".to_string());
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(target) = next.take() {
        let resp = request(
            "GET",
            &format!("{}{target}", proxy.url()),
            &[("Authorization", &bearer)],
            b"",
        )
        .unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        let doc: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(doc["name"], "org/demo");
        let page: Vec<String> = doc["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        assert!(page.len() <= 2);
        seen.extend(page);
        pages += 1;
        next = resp.header("link").map(|link| {
            assert!(link.ends_with("; rel=\"next\""), "{link}");
            link[1..link.find('>').unwrap()].to_string()
        });
    }
    let mut lexical: Vec<String> = versions.iter().map(|v| v.to_string()).collect();
    lexical.sort();
    assert_eq!(seen, lexical);
    assert_eq!(seen[0], "1.10.0", "byte order, not version order");
    assert_eq!(pages, 4);
    assert_eq!(proxy.tag_pages("org/demo").len(), 4);
    assert_eq!(
        proxy.tag_pages("org/demo")[1].query_value("last"),
        Some("1.11.0")
    );

    // `n` overrides the default, a cap clamps `n`, and a page past the end has null tags.
    let ask = |q: &str| {
        let resp = request(
            "GET",
            &format!("{}/v2/org/demo/tags/list?{q}", proxy.url()),
            &[("Authorization", &bearer)],
            b"",
        )
        .unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        let doc: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        (doc["tags"].clone(), resp.header("link").map(String::from))
    };
    let (tags, link) = ask("n=1000");
    assert_eq!(tags.as_array().unwrap().len(), 7);
    assert_eq!(link, None);
    proxy.set_max_page_size(3);
    let (tags, link) = ask("n=1000&last=1.12.0");
    assert_eq!(tags, serde_json::json!(["1.7.0", "1.8.0", "1.9.0"]));
    assert_eq!(
        link.as_deref(),
        Some("</v2/org/demo/tags/list?last=1.9.0&n=3>; rel=\"next\"")
    );
    assert_eq!(ask("last=1.9.1").0, serde_json::Value::Null);
}

#[test]
fn blobs_can_be_redirected_to_storage_that_needs_no_token() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let chart = runtime_chart("demo", "1.0.0", "");
    registry.push_chart("org/demo", "1.0.0", &chart.bytes);
    let proxy = GhcrProxy::start(&registry);
    proxy.redirect_blobs(true);
    let bearer = format!("Bearer {}", get_token(&proxy, "repository:org/demo:pull"));
    let blob_url = format!("{}/v2/org/demo/blobs/{}", proxy.url(), chart.sha256());
    assert_eq!(
        request("GET", &blob_url, &[], b"").unwrap().status,
        401,
        "the redirect itself needs the token"
    );
    let redirect = request("GET", &blob_url, &[("Authorization", &bearer)], b"").unwrap();
    assert_eq!(redirect.status, 307);
    let location = redirect.header("location").unwrap().to_string();
    let storage_prefix = format!(
        "http://localhost:{}/storage/org/demo/blobs/{}?sig=",
        proxy.port(),
        chart.sha256()
    );
    assert!(location.starts_with(&storage_prefix), "{location}");
    let storage = location.replace("localhost", "127.0.0.1");
    let got = request("GET", &storage, &[], b"").unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.body, chart.bytes);
    let stored = proxy.storage_requests();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].header("authorization").is_none());
}

#[test]
fn pushes_go_through_with_a_push_token_and_upload_locations_point_at_the_proxy() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let proxy = GhcrProxy::start(&registry);
    proxy.require_basic_auth("u", "p");
    let anonymous = request(
        "GET",
        &format!("{}/token?scope=repository:org/x:pull", proxy.url()),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(anonymous.status, 401);
    let basic = crate::support::registry::basic_header("u", "p");
    let resp = request(
        "GET",
        &format!(
            "{}/token?scope=repository%3Aorg%2Fx%3Apull%2Cpush&service=ghcr.io",
            proxy.url()
        ),
        &[("Authorization", &basic)],
        b"",
    )
    .unwrap();
    assert_eq!(resp.status, 200);
    let token: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
    assert_eq!(
        proxy.token_requests()[1].basic_credentials(),
        Some(("u".to_string(), "p".to_string()))
    );

    let blob = b"some config bytes".to_vec();
    let digest = crate::support::sha256(&blob);
    let start = request(
        "POST",
        &format!("{}/v2/org/x/blobs/uploads/", proxy.url()),
        &[("Authorization", &bearer)],
        b"",
    )
    .unwrap();
    assert_eq!(start.status, 202, "{}", start.text());
    let location = start.header("location").unwrap().to_string();
    let location = if location.starts_with('/') {
        format!("{}{location}", proxy.url())
    } else {
        location
    };
    assert!(location.starts_with(&proxy.url()), "{location}");
    let sep = if location.contains('?') { '&' } else { '?' };
    let done = request(
        "PUT",
        &format!("{location}{sep}digest={digest}"),
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/octet-stream"),
        ],
        &blob,
    )
    .unwrap();
    assert_eq!(done.status, 201, "{}", done.text());
    assert_eq!(done.header("docker-content-digest"), Some(digest.as_str()));
    let back = request(
        "GET",
        &format!("{}/v2/org/x/blobs/{digest}", registry.http_url()),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(back.body, blob, "the body reached the registry");
}
