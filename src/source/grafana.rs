//! Dashboards: grafana.com (`/api/dashboards/{id}` for the latest revision and the title,
//! `/api/dashboards/{id}/revisions/{rev}/download` for the JSON) and plain URLs. The bytes are vendored
//! exactly as served; here they are only checked to be a JSON object, and a URL dashboard's title is read
//! from its top-level `title`.

use serde::Deserialize;

use super::{Access, FetchError, Freshness};
use crate::http::redact_str;

/// grafana.com's API, mirrorable with a `https://grafana.com` prefix.
pub const GRAFANA_COM: &str = "https://grafana.com";
/// The largest dashboard accepted; big real ones are a few hundred kilobytes.
pub const MAX_DASHBOARD_BYTES: u64 = 16 << 20;
const MAX_META_BYTES: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("dashboard `{input}`: {url}: {err}")]
    Fetch {
        input: String,
        url: String,
        err: FetchError,
    },
    #[error("dashboard `{input}`: grafana.com has no dashboard {id} ({url} answered 404); check `grafana_com` in stack.toml")]
    UnknownId { input: String, id: u64, url: String },
    #[error("dashboard `{input}`: grafana.com dashboard {id} has no revision {revision} ({url} answered 404); check `revision` in stack.toml, or remove it to take the latest")]
    UnknownRevision {
        input: String,
        id: u64,
        revision: u64,
        url: String,
    },
    #[error(
        "dashboard `{input}`: {url}: the grafana.com metadata is not what was expected: {message}"
    )]
    Meta {
        input: String,
        url: String,
        message: String,
    },
    #[error("dashboard `{input}`: {url} did not serve a dashboard: {message}")]
    NotADashboard {
        input: String,
        url: String,
        message: String,
    },
}

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
) -> Result<Vec<u8>, (DashboardError, bool)> {
    let fetch_err = |err: FetchError| {
        let not_found = err.is_not_found();
        (
            DashboardError::Fetch {
                input: input.into(),
                url: redact_str(url),
                err,
            },
            not_found,
        )
    };
    access
        .get(url, limit, Freshness::Fresh)
        .await
        .map_err(fetch_err)
}

/// `GET /api/dashboards/{id}`: the latest revision and the title.
pub async fn meta(
    access: &Access<'_>,
    input: &str,
    id: u64,
) -> Result<GrafanaMeta, DashboardError> {
    let url = meta_url(id);
    let bytes = get(access, input, &url, MAX_META_BYTES)
        .await
        .map_err(|(e, not_found)| {
            if not_found {
                DashboardError::UnknownId {
                    input: input.into(),
                    id,
                    url: url.clone(),
                }
            } else {
                e
            }
        })?;
    let wire: MetaWire = serde_json::from_slice(&bytes).map_err(|e| DashboardError::Meta {
        input: input.into(),
        url: url.clone(),
        message: e.to_string(),
    })?;
    Ok(GrafanaMeta {
        latest_revision: wire.revision,
        title: wire.name,
    })
}

/// The JSON of one revision, as served.
pub async fn download_revision(
    access: &Access<'_>,
    input: &str,
    id: u64,
    revision: u64,
) -> Result<Vec<u8>, DashboardError> {
    let url = download_url(id, revision);
    let bytes = get(access, input, &url, MAX_DASHBOARD_BYTES)
        .await
        .map_err(|(e, not_found)| {
            if not_found {
                DashboardError::UnknownRevision {
                    input: input.into(),
                    id,
                    revision,
                    url: url.clone(),
                }
            } else {
                e
            }
        })?;
    title_of(&bytes).map_err(|message| DashboardError::NotADashboard {
        input: input.into(),
        url,
        message,
    })?;
    Ok(bytes)
}

/// A URL dashboard's bytes and title.
pub async fn download_plain(
    access: &Access<'_>,
    input: &str,
    url: &str,
) -> Result<(Vec<u8>, String), DashboardError> {
    let bytes = get(access, input, url, MAX_DASHBOARD_BYTES)
        .await
        .map_err(|(e, _)| e)?;
    let title = title_of(&bytes).map_err(|message| DashboardError::NotADashboard {
        input: input.into(),
        url: redact_str(url),
        message,
    })?;
    Ok((bytes, title))
}

/// Checks the bytes are a JSON object and returns its top-level `title` (empty when there is none).
pub fn title_of(bytes: &[u8]) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let object = value.as_object().ok_or("the JSON is not an object")?;
    Ok(object
        .get("title")
        .and_then(|t| t.as_str())
        .unwrap_or_default()
        .to_string())
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
        let bytes = rt
            .block_on(download_revision(&access, "k8s-global", 15757, 43))
            .unwrap();
        assert!(bytes.starts_with(b"{\"title\""));
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
                .unwrap(),
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
            title_of(br#"{"title":"Flux Cluster Stats"}"#).unwrap(),
            "Flux Cluster Stats"
        );
        assert_eq!(title_of(b"{}").unwrap(), "");
        assert!(title_of(b"[1]").is_err());
        assert!(title_of(b"<html>").is_err());
    }
}
