//! Dashboards: grafana.com (`/api/dashboards/{id}` for the latest revision and the title,
//! `/api/dashboards/{id}/revisions/{rev}/download` for the JSON) and plain URLs. The bytes are vendored
//! exactly as served; here they are only checked to be a JSON object, and a URL dashboard's title is read
//! from its top-level `title`.

use serde::Deserialize;

use super::error::{InputError, InputErrorKind as Kind, Location, Missing};
use super::Access;
use crate::http::redact_str;

/// grafana.com's API, mirrorable with a `https://grafana.com` prefix.
pub const GRAFANA_COM: &str = "https://grafana.com";
/// The largest dashboard accepted; big real ones are a few hundred kilobytes.
pub const MAX_DASHBOARD_BYTES: u64 = 16 << 20;
const MAX_META_BYTES: u64 = 4 << 20;

/// What grafana.com says about a dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrafanaMeta {
    pub latest_revision: u64,
    pub title: String,
}

#[derive(Deserialize)]
struct MetaWire {
    name: String,
    revision: u64,
}

pub fn meta_url(id: u64) -> String {
    format!("{GRAFANA_COM}/api/dashboards/{id}")
}

pub fn download_url(id: u64, revision: u64) -> String {
    format!("{GRAFANA_COM}/api/dashboards/{id}/revisions/{revision}/download")
}

async fn get(
    access: &Access<'_>,
    input: &str,
    url: &str,
    limit: u64,
) -> Result<Vec<u8>, InputError> {
    access.get(url, limit).await.map_err(|err| {
        InputError::dashboard(input, Location::Url(redact_str(url)), Kind::Fetch(err))
    })
}

/// A 404 of grafana.com's API read as `missing`; any other error as it is.
fn missing_if_not_found(e: InputError, missing: Missing) -> InputError {
    if e.is_not_found() {
        InputError {
            kind: Box::new(Kind::NotFound(missing)),
            ..e
        }
    } else {
        e
    }
}

/// `GET /api/dashboards/{id}`: the latest revision and the title.
pub async fn meta(access: &Access<'_>, input: &str, id: u64) -> Result<GrafanaMeta, InputError> {
    let url = meta_url(id);
    let bytes = get(access, input, &url, MAX_META_BYTES)
        .await
        .map_err(|e| missing_if_not_found(e, Missing::Dashboard { id }))?;
    let wire: MetaWire = serde_json::from_slice(&bytes).map_err(|e| {
        let kind = Kind::BadMetadata {
            message: e.to_string(),
        };
        InputError::dashboard(input, Location::Url(url.clone()), kind)
    })?;
    Ok(GrafanaMeta {
        latest_revision: wire.revision,
        title: wire.name,
    })
}

/// The JSON of one revision, as served, and that revision's own title (not the latest's).
pub async fn download_revision(
    access: &Access<'_>,
    input: &str,
    id: u64,
    revision: u64,
) -> Result<(Vec<u8>, String), InputError> {
    let url = download_url(id, revision);
    let bytes = get(access, input, &url, MAX_DASHBOARD_BYTES)
        .await
        .map_err(|e| missing_if_not_found(e, Missing::Revision { id, revision }))?;
    let (bytes, title) = read_title(bytes).await;
    let title = title.map_err(|message| {
        InputError::dashboard(input, Location::Url(url), Kind::NotADashboard { message })
    })?;
    Ok((bytes, title))
}

/// [`title_of`] on tokio's blocking threads (parsing a dashboard of a few hundred kilobytes takes
/// milliseconds, which would hold back every other input of `stack lock`), with the bytes given back.
async fn read_title(bytes: Vec<u8>) -> (Vec<u8>, Result<String, String>) {
    super::off_runtime(move || {
        let title = title_of(&bytes);
        (bytes, title)
    })
    .await
}

/// A URL dashboard's bytes and title.
pub async fn download_plain(
    access: &Access<'_>,
    input: &str,
    url: &str,
) -> Result<(Vec<u8>, String), InputError> {
    let bytes = get(access, input, url, MAX_DASHBOARD_BYTES).await?;
    let (bytes, title) = read_title(bytes).await;
    let title = title.map_err(|message| {
        let location = Location::Url(redact_str(url));
        InputError::dashboard(input, location, Kind::NotADashboard { message })
    })?;
    Ok((bytes, title))
}

/// Checks the bytes are a Grafana dashboard and returns its title. A dashboard is a JSON object with a
/// non-empty `title` and a `panels` (or old-style `rows`) list; one saved from Grafana's HTTP API
/// (`{"dashboard": {…}, "meta": {…}}`) is read through its `dashboard`. Anything else (an API error
/// body served with 200, an HTML page) is refused, and so is a dashboard over the 1 MiB a ConfigMap holds.
pub fn title_of(bytes: &[u8]) -> Result<String, String> {
    let limit = crate::emit::dashboard::CONFIGMAP_LIMIT;
    if bytes.len() > limit {
        return Err(format!(
            "it is {} bytes, over the 1 MiB ({limit} bytes) a ConfigMap holds; Kubernetes cannot ship it",
            bytes.len()
        ));
    }
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        // JSON (RFC 8259 section 8.1) and Grafana's reader refuse a byte order mark.
        return Err(
            "not JSON: it starts with a UTF-8 byte order mark, which Grafana does not read; \
                    save the dashboard without one"
                .into(),
        );
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let object = value.as_object().ok_or("the JSON is not an object")?;
    let dashboard = crate::emit::dashboard::unwrap_api_export(object);
    let title = dashboard
        .get("title")
        .and_then(|t| t.as_str())
        .filter(|t| !t.trim().is_empty());
    let has_panels = ["panels", "rows"]
        .iter()
        .any(|k| dashboard.get(*k).is_some_and(|p| p.is_array()));
    match title {
        Some(title) if has_panels => Ok(title.to_string()),
        _ => {
            let keys: Vec<&str> = object.keys().take(6).map(String::as_str).collect();
            let lacks = match (title.is_some(), has_panels) {
                (false, false) => "neither",
                (false, true) => "no `title`",
                _ => "no `panels` list",
            };
            Err(format!(
                "a Grafana dashboard has a `title` and `panels`; this JSON has {lacks} (its keys: {}). Is the URL or id right?",
                keys.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_server::{ok, serve, status};
    use crate::source::{Mirrors, Net};

    fn net_for(base: &str, cache: &std::path::Path) -> Net {
        let flags = vec![format!("{GRAFANA_COM}={base}")];
        let mirrors = Mirrors::new(&Default::default(), &flags).unwrap();
        let http = crate::http::Http::for_tests();
        Net::new(
            http,
            Default::default(),
            mirrors,
            crate::store::Store::at(cache.to_path_buf()),
            vec![],
        )
        .unwrap()
    }

    #[test]
    fn meta_and_revision_through_a_mirror_then_offline() {
        let server = serve(vec![
            ok(br#"{"id": 15757, "name": "Kubernetes / Views / Global", "revision": 43, "slug": "x"}"#, ""),
            ok(br#"{"title": "Kubernetes / Views / Global", "panels": []}"#, ""),
            status(404, ""),
        ]);
        let cache = tempfile::tempdir().unwrap();
        let net = net_for(&server.base, cache.path());
        let access = Access::Online(&net);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let meta = rt.block_on(meta(&access, "k8s-global", 15757)).unwrap();
        assert_eq!(
            meta,
            GrafanaMeta {
                latest_revision: 43,
                title: "Kubernetes / Views / Global".into()
            }
        );
        let (bytes, title) = rt
            .block_on(download_revision(&access, "k8s-global", 15757, 43))
            .unwrap();
        assert!(bytes.starts_with(b"{\"title\""));
        assert_eq!(title, "Kubernetes / Views / Global");
        let err = rt
            .block_on(download_revision(&access, "k8s-global", 15757, 99))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("has no revision 99") && err.contains("15757"),
            "{err}"
        );
        let requests = server.requests.lock().unwrap().clone();
        assert!(
            requests[0].starts_with("GET /api/dashboards/15757 "),
            "{requests:?}"
        );
        assert!(
            requests[1].starts_with("GET /api/dashboards/15757/revisions/43/download "),
            "{requests:?}"
        );
        // Offline: the same answers come from the response cache; anything else is an error naming it.
        let offline = Access::Offline {
            store: &net.store,
            mirrors: &net.mirrors,
        };
        assert_eq!(
            rt.block_on(download_revision(&offline, "k8s-global", 15757, 43))
                .unwrap()
                .0,
            bytes
        );
        let err = rt
            .block_on(download_revision(&offline, "k8s-global", 15757, 42))
            .unwrap_err()
            .to_string();
        assert!(err.contains("without --offline"), "{err}");
    }

    #[test]
    fn titles_and_non_dashboards() {
        assert_eq!(
            title_of(br#"{"title":"Flux Cluster Stats","panels":[]}"#).unwrap(),
            "Flux Cluster Stats"
        );
        assert!(title_of(b"{}").is_err());
        let err = title_of(br#"{"code":"InvalidArgument","message":"no"}"#).unwrap_err();
        assert!(err.contains("its keys: code, message"), "{err}");
        assert_eq!(
            title_of(br#"{"dashboard":{"title":"Inner","rows":[]},"meta":{"slug":"x"}}"#).unwrap(),
            "Inner"
        );
        let big = format!(
            r#"{{"title":"T","panels":[],"pad":"{}"}}"#,
            "x".repeat(1 << 20)
        );
        assert!(title_of(big.as_bytes())
            .unwrap_err()
            .contains("over the 1 MiB"));
        assert!(title_of(b"[1]").is_err());
        assert!(title_of(b"<html>").is_err());
        let bom = title_of(b"\xEF\xBB\xBF{\"title\":\"T\",\"panels\":[]}").unwrap_err();
        assert!(bom.contains("byte order mark"), "{bom}");
    }
}
