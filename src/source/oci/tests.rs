//! Tests of the OCI source against Debian's docker-registry on loopback and in-memory manifests.

use super::manifest::ManifestDoc;
use super::*;
use crate::http::test_server::{ok, serve_routes, status, Answer};
use crate::source::{Mirrors, Net};

const CHART: &[u8] = b"pretend this is loki-6.48.1.tgz";

fn manifest(config_type: &str, layer: &[u8]) -> Vec<u8> {
    format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"{config_type}","digest":"{}","size":2}},"layers":[{{"mediaType":"{HELM_CHART_MEDIA_TYPE}","digest":"{}","size":{}}}]}}"#,
            digest::sha256(b"{}"),
            digest::sha256(layer),
            layer.len()
        )
        .into_bytes()
}

/// A registry that, like docker-registry 2.8, ignores `n` and `last` and always sends every tag.
fn registry(
    manifest_body: Vec<u8>,
    blob: &[u8],
) -> (crate::http::test_server::Server, Net, tempfile::TempDir) {
    let tags = br#"{"name":"charts/loki","tags":["6.49.0","latest","6.48.1_build.1","6.48.0","sha256-abc.sig"]}"#;
    let blob_path = format!("/v2/charts/loki/blobs/{}", digest::sha256(CHART));
    let server = serve_routes(vec![
        ("/v2/", vec![ok(b"{}", "")]),
        ("/v2/charts/loki/tags/list", vec![ok(tags, "")]),
        (
            "/v2/charts/loki/manifests/6.48.1_build.1",
            vec![ok(&manifest_body, "")],
        ),
        (blob_path.as_str(), vec![ok(blob, "")]),
    ]);
    let registry = server.base.trim_start_matches("http://").to_string();
    let cache = tempfile::tempdir().unwrap();
    let mirrors = Mirrors::new(
        &Default::default(),
        &[format!("ghcr.io/grafana={registry}/charts")],
    )
    .unwrap();
    let http = crate::http::Http::for_tests();
    let store = crate::store::Store::at(cache.path().to_path_buf());
    let net = Net::new(http, Default::default(), mirrors, store, vec![registry]).unwrap();
    (server, net, cache)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn credentials_are_never_sent_to_a_plain_http_token_realm_off_loopback() {
    let challenge =
        "WWW-Authenticate: Bearer realm=\"http://token.example.com/token\",service=\"r\"\r\n";
    let server = serve_routes(vec![("", vec![status(401, challenge)])]);
    let registry = server.base.trim_start_matches("http://").to_string();
    let cache = tempfile::tempdir().unwrap();
    let mirrors = Mirrors::new(
        &Default::default(),
        &[format!("ghcr.io/grafana={registry}/charts")],
    )
    .unwrap();
    let auth = crate::auth::AuthStore::from_entries([(
        registry.clone(),
        crate::auth::Credentials::new("u", "hunter2"),
    )]);
    let store = crate::store::Store::at(cache.path().to_path_buf());
    let http = crate::http::Http::for_tests();
    let net = Net::new(http, auth, mirrors, store, vec![registry]).unwrap();
    let ctx = Ctx::new(Access::Online(&net), "loki", "oci://ghcr.io/grafana/loki");
    let err = rt().block_on(ctx.list_tags()).unwrap_err().to_string();
    assert!(
        err.contains("token realm http://token.example.com/token is not HTTPS"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    let seen = server.requests.lock().unwrap().join("\n").to_lowercase();
    assert!(!seen.contains("authorization"), "{seen}");
}

#[test]
fn resolves_through_a_registry_that_ignores_paging_and_verifies_the_layer() {
    let body = manifest(HELM_CONFIG_MEDIA_TYPE, CHART);
    let (server, net, _cache) = registry(body.clone(), CHART);
    let ctx = Ctx::new(Access::Online(&net), "loki", "oci://ghcr.io/grafana/loki");
    let rt = rt();
    let (pin, _) = rt
        .block_on(ctx.resolve(&VersionReq::parse("~6.48").unwrap()))
        .unwrap();
    assert_eq!(pin.version, "6.48.1+build.1");
    assert_eq!(pin.tag, "6.48.1_build.1");
    assert_eq!(pin.digest, digest::sha256(&body));
    assert_eq!(pin.layer_digest, digest::sha256(CHART));
    assert_eq!(
        server.count("/v2/charts/loki/tags/list"),
        1,
        "a page without a `Link` to the next one is the last"
    );
    assert_eq!(server.count("/v2/"), 0, "no ping");
    assert_eq!(rt.block_on(ctx.download(&pin)).unwrap(), CHART);
    // Offline, the same answers come from the cache.
    let offline = Ctx::new(
        Access::Offline {
            store: &net.store,
            mirrors: &net.mirrors,
        },
        "loki",
        "oci://ghcr.io/grafana/loki",
    );
    let (again, _) = rt
        .block_on(offline.resolve(&VersionReq::parse("~6.48").unwrap()))
        .unwrap();
    assert_eq!(again, pin);
    assert_eq!(rt.block_on(offline.download(&again)).unwrap(), CHART);
}

/// The cached-fetch layer's two shapes: a chart layer is named by its digest, so a remembered one is
/// the answer online too and costs no request; a tag's manifest and the tag list can change, so online
/// they are asked every time.
#[test]
fn remembered_content_by_digest_needs_no_request_but_tags_are_asked_again() {
    let (server, net, _cache) = registry(manifest(HELM_CONFIG_MEDIA_TYPE, CHART), CHART);
    let ctx = Ctx::new(Access::Online(&net), "loki", "oci://ghcr.io/grafana/loki");
    let rt = rt();
    let req = VersionReq::parse("~6.48").unwrap();
    for _ in 0..2 {
        let (pin, _) = rt.block_on(ctx.resolve(&req)).unwrap();
        assert_eq!(rt.block_on(ctx.download(&pin)).unwrap(), CHART);
    }
    let blob = format!("/v2/charts/loki/blobs/{}", digest::sha256(CHART));
    assert_eq!(server.count(&blob), 1, "the layer is downloaded once");
    assert_eq!(server.count("/v2/charts/loki/tags/list"), 2);
    assert_eq!(server.count("/v2/charts/loki/manifests/6.48.1_build.1"), 2);
}

#[test]
fn a_layer_with_the_wrong_bytes_is_refused() {
    let mut wrong = CHART.to_vec();
    wrong[3] ^= 0xff;
    let (_server, net, _cache) = registry(manifest(HELM_CONFIG_MEDIA_TYPE, CHART), &wrong);
    let ctx = Ctx::new(Access::Online(&net), "loki", "oci://ghcr.io/grafana/loki");
    let rt = rt();
    let (pin, _) = rt
        .block_on(ctx.resolve(&VersionReq::parse("~6.48").unwrap()))
        .unwrap();
    let err = rt.block_on(ctx.download(&pin)).unwrap_err().to_string();
    assert!(
        err.contains("chart layer digest mismatch") && err.contains(&digest::sha256(&wrong)),
        "{err}"
    );
}

#[test]
fn a_layer_longer_than_its_descriptor_is_refused() {
    let mut longer = CHART.to_vec();
    longer.extend_from_slice(b"extra");
    let (_server, net, _cache) = registry(manifest(HELM_CONFIG_MEDIA_TYPE, CHART), &longer);
    let ctx = Ctx::new(Access::Online(&net), "loki", "oci://ghcr.io/grafana/loki");
    let rt = rt();
    let (pin, _) = rt
        .block_on(ctx.resolve(&VersionReq::parse("~6.48").unwrap()))
        .unwrap();
    let err = rt.block_on(ctx.download(&pin)).unwrap_err().to_string();
    assert!(err.contains("sent more than the 31 bytes"), "{err}");
}

/// One repository for an operator's images (`v1.5.1`, `v1.6.0`) and its chart (`1.5.1`, `1.6.0`,
/// where 1.6.0 was pushed as an image by mistake): Helm reads only `1.5.1` and `1.6.0` as chart
/// versions, and a candidate that is not a chart is skipped with a warning.
#[test]
fn image_tags_are_not_candidates_and_non_charts_are_skipped() {
    let image = manifest("application/vnd.oci.image.config.v1+json", CHART);
    let chart = manifest(HELM_CONFIG_MEDIA_TYPE, CHART);
    let tags = br#"{"name":"charts/op","tags":["v1.5.1","v1.6.0","1.5.1","1.6.0","latest"]}"#;
    let server = serve_routes(vec![
        ("/v2/", vec![ok(b"{}", "")]),
        ("/v2/charts/op/tags/list", vec![ok(tags, "")]),
        ("/v2/charts/op/manifests/1.6.0", vec![ok(&image, "")]),
        ("/v2/charts/op/manifests/1.5.1", vec![ok(&chart, "")]),
    ]);
    let registry = server.base.trim_start_matches("http://").to_string();
    let cache = tempfile::tempdir().unwrap();
    let mirrors = Mirrors::new(
        &Default::default(),
        &[format!("ghcr.io/x={registry}/charts")],
    )
    .unwrap();
    let store = crate::store::Store::at(cache.path().to_path_buf());
    let net = Net::new(
        crate::http::Http::for_tests(),
        Default::default(),
        mirrors,
        store,
        vec![registry],
    )
    .unwrap();
    let ctx = Ctx::new(Access::Online(&net), "op", "oci://ghcr.io/x/op");
    let (pin, warnings) = rt()
        .block_on(ctx.resolve(&VersionReq::parse(">=1.4.1").unwrap()))
        .unwrap();
    assert_eq!(pin.version, "1.5.1");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("tag 1.6.0") && warnings[0].contains("config media type"),
        "{warnings:?}"
    );
    assert_eq!(server.count("/v2/charts/op/manifests/v1.6.0"), 0);
}

#[test]
fn manifest_doc_parses_helm_and_index_shapes() {
    let helm = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"sha256:aa","size":3},
            "layers":[{"mediaType":"application/vnd.cncf.helm.chart.provenance.v1.prov","digest":"sha256:bb","size":1},
                      {"mediaType":"application/vnd.cncf.helm.chart.content.v1.tar+gzip","digest":"sha256:cc","size":2}]}"#;
    let doc: ManifestDoc = serde_json::from_str(helm).unwrap();
    assert_eq!(doc.layers.unwrap()[1].media_type, HELM_CHART_MEDIA_TYPE);
    let index = r#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:dd","size":1,"artifactType":"application/vnd.cncf.helm.config.v1+json"}]}"#;
    let doc: ManifestDoc = serde_json::from_str(index).unwrap();
    assert_eq!(
        doc.manifests.unwrap()[0].artifact_type.as_deref(),
        Some(HELM_CONFIG_MEDIA_TYPE)
    );
}

#[test]
fn challenges_are_read_as_basic_or_bearer_with_realm_and_service() {
    use reqwest::header::{HeaderMap, HeaderValue, WWW_AUTHENTICATE};
    let headers = |v: &str| {
        let mut h = HeaderMap::new();
        h.insert(WWW_AUTHENTICATE, HeaderValue::from_str(v).unwrap());
        h
    };
    assert_eq!(
        wire::challenge(&headers(
            r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="x""#
        )),
        Some(wire::Scheme::Bearer {
            realm: "https://ghcr.io/token".into(),
            service: Some("ghcr.io".into())
        })
    );
    assert_eq!(
        wire::challenge(&headers(r#"Basic realm="Registry Realm""#)),
        Some(wire::Scheme::Basic)
    );
    assert_eq!(wire::challenge(&headers("Bearer service=\"x\"")), None);
    assert_eq!(wire::challenge(&HeaderMap::new()), None);
}

#[test]
fn the_next_tag_page_is_the_link_header_and_never_another_host() {
    use reqwest::header::{HeaderMap, HeaderValue, LINK};
    let base = url::Url::parse("https://r.example/v2/a/b/tags/list?n=1000").unwrap();
    let link = |v: &str| {
        let mut h = HeaderMap::new();
        h.insert(LINK, HeaderValue::from_str(v).unwrap());
        wire::next_link(&h, &base)
    };
    let next = link(r#"</v2/a/b/tags/list?last=1.0.0&n=1000>; rel="next""#)
        .unwrap()
        .unwrap();
    assert_eq!(
        next.as_str(),
        "https://r.example/v2/a/b/tags/list?last=1.0.0&n=1000"
    );
    assert!(link(r#"</v2/a/b/tags/list?last=x>; rel="prev""#)
        .unwrap()
        .is_none());
    assert!(wire::next_link(&HeaderMap::new(), &base).unwrap().is_none());
    let elsewhere = link(r#"<https://evil.example/v2/a/b/tags/list?last=x>; rel="next""#);
    assert!(
        matches!(elsewhere, Err(WireError::ForeignLink(_))),
        "{elsewhere:?}"
    );
}

/// A registry that asks for Basic auth is asked once without credentials; after its challenge every
/// request carries them, and nothing asks `GET /v2/`.
#[test]
fn a_basic_auth_registry_is_learnt_from_its_first_challenge() {
    let body = manifest(HELM_CONFIG_MEDIA_TYPE, CHART);
    let challenge = "WWW-Authenticate: Basic realm=\"r\"\r\n";
    let tags = br#"{"name":"charts/loki","tags":["6.48.1_build.1"]}"#;
    let blob_path = format!("/v2/charts/loki/blobs/{}", digest::sha256(CHART));
    let server = serve_routes(vec![
        (
            "/v2/charts/loki/tags/list",
            vec![status(401, challenge), ok(tags, "")],
        ),
        (
            "/v2/charts/loki/manifests/6.48.1_build.1",
            vec![ok(&body, "")],
        ),
        (blob_path.as_str(), vec![ok(CHART, "")]),
    ]);
    let registry = server.base.trim_start_matches("http://").to_string();
    let cache = tempfile::tempdir().unwrap();
    let mirrors = Mirrors::new(
        &Default::default(),
        &[format!("ghcr.io/grafana={registry}/charts")],
    )
    .unwrap();
    let auth = crate::auth::AuthStore::from_entries([(
        registry.clone(),
        crate::auth::Credentials::new("u", "p"),
    )]);
    let store = crate::store::Store::at(cache.path().to_path_buf());
    let net = Net::new(
        crate::http::Http::for_tests(),
        auth,
        mirrors,
        store,
        vec![registry],
    )
    .unwrap();
    let ctx = Ctx::new(Access::Online(&net), "loki", "oci://ghcr.io/grafana/loki");
    let rt = rt();
    let (pin, _) = rt
        .block_on(ctx.resolve(&VersionReq::parse("~6.48").unwrap()))
        .unwrap();
    assert_eq!(rt.block_on(ctx.download(&pin)).unwrap(), CHART);
    let seen = server.requests.lock().unwrap().clone();
    let with_auth = |h: &String| h.to_lowercase().contains("authorization: basic");
    assert_eq!(seen.len(), 4, "{seen:#?}");
    assert!(!with_auth(&seen[0]), "{seen:#?}");
    assert!(seen[1..].iter().all(with_auth), "{seen:#?}");
    assert_eq!(server.count("/v2/"), 0);
}

/// A missing tag is told from a missing repository by the HTTP status and the registry's error code,
/// never by the wording of its message; only a 401 or 403 means credentials, whatever the code says.
#[test]
fn a_missing_tag_and_a_missing_repository_are_told_apart_by_status_and_code() {
    let answer = |status: &str, code: &str| {
        let body =
            format!(r#"{{"errors":[{{"code":"{code}","message":"whatever the registry says"}}]}}"#);
        Answer::Raw(
            format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    };
    let envelope = |code: &str| answer("404 Not Found", code);
    let server = serve_routes(vec![
        (
            "/v2/charts/loki/manifests/1.0.0",
            vec![envelope("MANIFEST_UNKNOWN")],
        ),
        ("/v2/charts/loki/manifests/2.0.0", vec![status(404, "")]),
        (
            "/v2/charts/loki/manifests/3.0.0",
            vec![envelope("NAME_UNKNOWN")],
        ),
        (
            "/v2/charts/loki/manifests/4.0.0",
            vec![answer("403 Forbidden", "DENIED")],
        ),
        (
            "/v2/charts/loki/manifests/5.0.0",
            vec![answer("400 Bad Request", "DENIED")],
        ),
    ]);
    let registry = server.base.trim_start_matches("http://").to_string();
    let cache = tempfile::tempdir().unwrap();
    let mirrors = Mirrors::new(
        &Default::default(),
        &[format!("ghcr.io/grafana={registry}/charts")],
    )
    .unwrap();
    let store = crate::store::Store::at(cache.path().to_path_buf());
    let net = Net::new(
        crate::http::Http::for_tests(),
        Default::default(),
        mirrors,
        store,
        vec![registry],
    )
    .unwrap();
    let ctx = Ctx::new(Access::Online(&net), "loki", "oci://ghcr.io/grafana/loki");
    let rt = rt();
    for tag in ["1.0.0", "2.0.0"] {
        let err = rt.block_on(ctx.pin_tag(tag)).unwrap_err();
        assert!(
            matches!(*err.kind, Kind::NotFound(Missing::Tag(_))),
            "{tag}: {err}"
        );
    }
    let err = rt.block_on(ctx.pin_tag("3.0.0")).unwrap_err();
    assert!(
        matches!(*err.kind, Kind::NotFound(Missing::Repository)),
        "{err}"
    );
    let err = rt.block_on(ctx.pin_tag("4.0.0")).unwrap_err();
    assert!(matches!(*err.kind, Kind::NeedsCredentials { .. }), "{err}");
    let err = rt.block_on(ctx.pin_tag("5.0.0")).unwrap_err();
    assert!(matches!(*err.kind, Kind::Upstream { .. }), "{err}");
    assert!(err.to_string().contains("HTTP 400"), "{err}");
}
