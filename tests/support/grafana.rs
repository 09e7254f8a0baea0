//! `GrafanaCom`: an [`HttpServer`] answering grafana.com's dashboard API (see the API notes the lock was
//! designed from) with real dashboard files of `tests/fixtures/dashboards/`:
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /api/dashboards/{id}` | `{id, name, slug, revision, downloads, …}`; `revision` is the latest |
//! | `GET /api/dashboards/{id}/revisions` | `{"items": [{"revision": N, …}, …]}` |
//! | `GET /api/dashboards/{id}/revisions/{rev}/download` | the revision's JSON as uploaded |
//! | `GET /api/dashboards/{id}/revisions/latest/download` | the latest revision's JSON |
//! | unknown id or revision | 404 `{"message": "…"}` |

use std::collections::BTreeMap;

use super::HttpServer;

/// One published dashboard: its title (grafana.com's `name`) and its revisions' bytes.
#[derive(Debug, Clone)]
pub struct Published {
    pub id: u64,
    pub name: String,
    pub slug: String,
    pub revisions: BTreeMap<u64, Vec<u8>>,
}

impl Published {
    pub fn latest(&self) -> u64 {
        *self
            .revisions
            .keys()
            .next_back()
            .expect("a dashboard has at least one revision")
    }
}

pub struct GrafanaCom {
    pub server: HttpServer,
    dashboards: std::sync::Mutex<BTreeMap<u64, Published>>,
}

impl GrafanaCom {
    /// An empty grafana.com on a free loopback port.
    pub fn start() -> GrafanaCom {
        let server = HttpServer::start();
        server.not_found_body("application/json", &b"{\"message\":\"Not found\"}"[..]);
        GrafanaCom {
            server,
            dashboards: Default::default(),
        }
    }

    /// grafana.com with a few real dashboards under their seed ids:
    /// - 15757 "Kubernetes / Views / Global": revisions 42 (the file with its `version` lowered, standing
    ///   for the previous upload) and 43 (k8s-views-global.json as committed upstream);
    /// - 1860 "Node Exporter Full": revision 37 (node-exporter-full.json, 467 KB);
    /// - 16611 "Cilium Metrics": revision 1 (cilium-agent.json).
    pub fn with_fixtures() -> GrafanaCom {
        let g = GrafanaCom::start();
        let global = super::dashboard_bytes("k8s-views-global.json");
        g.publish(15757, &[(42, previous_revision(&global)), (43, global)]);
        g.publish(
            1860,
            &[(37, super::dashboard_bytes("node-exporter-full.json"))],
        );
        g.publish(16611, &[(1, super::dashboard_bytes("cilium-agent.json"))]);
        g
    }

    /// `http://127.0.0.1:PORT`, what `https://grafana.com` is mirrored to.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Publishes (or replaces) dashboard `id` with the given revisions; its name is the `title` of the
    /// latest revision's JSON.
    pub fn publish(&self, id: u64, revisions: &[(u64, Vec<u8>)]) {
        let revisions: BTreeMap<u64, Vec<u8>> = revisions.iter().cloned().collect();
        let latest = revisions
            .values()
            .next_back()
            .expect("at least one revision");
        let json: serde_json::Value = serde_json::from_slice(latest).expect("dashboard JSON");
        let name = json["title"].as_str().unwrap_or("untitled").to_string();
        let slug = slug(&name);
        let published = Published {
            id,
            name,
            slug,
            revisions,
        };
        self.routes(&published);
        self.dashboards.lock().unwrap().insert(id, published);
    }

    /// Adds a revision to a published dashboard (it becomes the latest when its number is highest).
    pub fn add_revision(&self, id: u64, revision: u64, bytes: Vec<u8>) {
        let mut published = self
            .dashboards
            .lock()
            .unwrap()
            .get(&id)
            .cloned()
            .expect("published dashboard");
        published.revisions.insert(revision, bytes);
        let revisions: Vec<(u64, Vec<u8>)> = published.revisions.into_iter().collect();
        self.publish(id, &revisions);
    }

    /// Replaces the bytes of an existing revision: what grafana.com must never do, and what a lock must
    /// notice.
    pub fn rewrite_revision(&self, id: u64, revision: u64, bytes: Vec<u8>) {
        self.add_revision(id, revision, bytes);
    }

    pub fn published(&self, id: u64) -> Published {
        self.dashboards
            .lock()
            .unwrap()
            .get(&id)
            .cloned()
            .expect("published dashboard")
    }

    fn routes(&self, d: &Published) {
        let id = d.id;
        let latest = d.latest();
        let meta = serde_json::json!({
            "id": id,
            "status": 1,
            "statusCode": "ACTIVE",
            "name": d.name,
            "slug": d.slug,
            "description": "",
            "revision": latest,
            "downloads": 100_000 + id,
            "datasource": "Prometheus",
            "orgName": "stack-tests",
            "orgSlug": "stack-tests",
        });
        self.server.serve(
            &format!("/api/dashboards/{id}"),
            serde_json::to_vec_pretty(&meta).unwrap(),
        );
        let items: Vec<serde_json::Value> = d
            .revisions
            .keys()
            .map(|rev| serde_json::json!({"dashboardId": id, "revision": rev, "downloads": 1000 + rev, "created": "2026-01-01T00:00:00.000Z"}))
            .collect();
        let list = serde_json::json!({"items": items, "orderBy": "revision", "direction": "asc"});
        self.server.serve(
            &format!("/api/dashboards/{id}/revisions"),
            serde_json::to_vec_pretty(&list).unwrap(),
        );
        for (rev, bytes) in &d.revisions {
            self.server.serve(
                &format!("/api/dashboards/{id}/revisions/{rev}/download"),
                bytes.clone(),
            );
        }
        self.server.serve(
            &format!("/api/dashboards/{id}/revisions/latest/download"),
            d.revisions[&latest].clone(),
        );
    }
}

/// The previous revision of a dashboard as a slightly different upload: the first `"version": N` lowered
/// by one. Real bytes otherwise.
pub fn previous_revision(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let key = "\"version\": ";
    let start = text.rfind(key).expect("a dashboard with a version") + key.len();
    let end = start + text[start..].find(|c: char| !c.is_ascii_digit()).unwrap();
    let n: u64 = text[start..end].parse().unwrap();
    format!("{}{}{}", &text[..start], n.saturating_sub(1), &text[end..]).into_bytes()
}

fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::http_client::request;

    #[test]
    fn answers_the_dashboard_api_from_real_files() {
        let g = GrafanaCom::with_fixtures();
        let get = |path: &str| request("GET", &format!("{}{path}", g.url()), &[], b"").unwrap();
        let meta: serde_json::Value =
            serde_json::from_slice(&get("/api/dashboards/15757").body).unwrap();
        assert_eq!(meta["name"], "Kubernetes / Views / Global");
        assert_eq!(meta["revision"], 43);
        assert_eq!(meta["slug"], "kubernetes-views-global");
        let list: serde_json::Value =
            serde_json::from_slice(&get("/api/dashboards/15757/revisions").body).unwrap();
        assert_eq!(list["items"].as_array().unwrap().len(), 2);
        let real = crate::support::dashboard_bytes("k8s-views-global.json");
        assert_eq!(
            get("/api/dashboards/15757/revisions/43/download").body,
            real
        );
        assert_eq!(
            get("/api/dashboards/15757/revisions/latest/download").body,
            real
        );
        let older = get("/api/dashboards/15757/revisions/42/download").body;
        assert_ne!(older, real);
        assert!(String::from_utf8(older)
            .unwrap()
            .contains("\"version\": 44,"));
        let missing = get("/api/dashboards/1");
        assert_eq!(missing.status, 404);
        let body: serde_json::Value = serde_json::from_slice(&missing.body).unwrap();
        assert!(body["message"].is_string());
    }
}
