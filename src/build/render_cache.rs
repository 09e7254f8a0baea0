//! The cache of rendered dashboards: what `dashboard::render` made of an input under given settings,
//! kept in the user's content cache (`$STACK_CACHE_DIR`, bucket `rendered-v1/`) so that a rebuild,
//! `build --check` or another stack with the same input copies the rendered bytes instead of rendering.
//!
//! The key is everything the render reads: the input's blake3, the dashboard's name and file, the
//! settings of [`dashboard::Provision`] and the provisioned datasources, and the renderer's identity
//! (the crate version, [`RENDERER`], and the size and modification time of the running binary, so that
//! a rebuilt `stack` never reads what another build of it rendered). An entry names its whole key and is
//! verified against its blake3 header when read ([`Store::get_keyed`]): a torn, edited or colliding
//! entry is a miss and the dashboard is rendered, never wrong output. Render errors are not cached. The
//! cache is best effort: with no cache directory, or one that cannot be written, a build renders
//! everything and its output is the same.

use crate::emit::dashboard::{self, Datasources, Provision, Rendered};
use crate::store::{Bucket, Store};

/// Bump when the renderer's output for the same input and settings changes (the binary's identity in
/// the key already separates builds of `stack`; this keeps released versions apart too).
const RENDERER: &str = "dashboard-render-1";

/// The rendered-dashboards bucket of the content cache, for this binary.
pub(crate) struct RenderCache {
    store: Store,
    renderer: String,
}

/// What an entry holds before the rendered text: the key it answers and what `Rendered` carries
/// besides the text.
#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    key: String,
    uid: Option<String>,
    title: String,
}

impl RenderCache {
    /// The user's content cache; `None` when there is none, or the running binary cannot be identified
    /// (then every dashboard is rendered).
    pub(crate) fn open() -> Option<RenderCache> {
        RenderCache::at(Store::open_default().ok()?)
    }

    /// The bucket of `store`.
    pub(crate) fn at(store: Store) -> Option<RenderCache> {
        let exe = std::env::current_exe().ok()?;
        let meta = fs_err::metadata(exe).ok()?;
        let mtime = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_nanos();
        let renderer = format!(
            "{RENDERER} {} {} {mtime}",
            env!("CARGO_PKG_VERSION"),
            meta.len()
        );
        Some(RenderCache { store, renderer })
    }

    /// The key of rendering `input_blake3` as dashboard `name` (from `path`) with these settings.
    pub(crate) fn key(
        &self,
        name: &str,
        path: &str,
        input_blake3: &str,
        provision: &Provision,
        ds: &Datasources,
    ) -> String {
        // JSON keeps every field apart (strings escaped, maps sorted), so two different settings never
        // spell the same key.
        serde_json::json!({
            "renderer": self.renderer,
            "input": input_blake3,
            "name": name,
            "path": path,
            "datasource": provision.datasource,
            "datasources": provision.datasources,
            "inputs": provision.inputs,
            "provisioned": ds.provisioned,
        })
        .to_string()
    }

    /// The rendered dashboard under `key`, when an intact entry names it.
    pub(crate) fn get(&self, key: &str) -> Option<Rendered> {
        let mut file = self.store.get_keyed(Bucket::Rendered, key).ok()??;
        let end = file.iter().position(|&b| b == b'\n')?;
        let header: Header = serde_json::from_slice(&file[..end]).ok()?;
        if header.key != key {
            return None;
        }
        file.drain(..=end);
        let text = String::from_utf8(file).ok()?;
        Some(Rendered {
            text,
            uid: header.uid,
            title: header.title,
        })
    }

    /// Remembers `rendered` under `key`; a cache that cannot be written is left alone.
    pub(crate) fn put(&self, key: &str, rendered: &Rendered) {
        let header = Header {
            key: key.to_string(),
            uid: rendered.uid.clone(),
            title: rendered.title.clone(),
        };
        let mut file = serde_json::to_vec(&header).expect("plain strings");
        file.push(b'\n');
        file.extend_from_slice(rendered.text.as_bytes());
        let _ = self.store.put_keyed(Bucket::Rendered, key, &file);
    }
}

/// Renders `bytes` as [`dashboard::render`] does, through `cache` when there is one.
pub(crate) fn render(
    cache: Option<&RenderCache>,
    dash: &super::dashboards::ToShip,
    bytes: &[u8],
    ds: &Datasources,
) -> Result<Rendered, dashboard::DashboardError> {
    let render = || dashboard::render(&dash.name, &dash.path, bytes, &dash.provision, ds);
    let Some(cache) = cache else {
        return render();
    };
    let input = crate::digest::blake3(bytes);
    let key = cache.key(&dash.name, &dash.path, &input, &dash.provision, ds);
    if let Some(hit) = cache.get(&key) {
        return Ok(hit);
    }
    let rendered = render()?;
    cache.put(&key, &rendered);
    Ok(rendered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn cache(dir: &std::path::Path) -> RenderCache {
        RenderCache::at(Store::at(dir.to_path_buf())).unwrap()
    }

    fn rendered(text: &str) -> Rendered {
        Rendered {
            text: text.into(),
            uid: Some("u".into()),
            title: "t".into(),
        }
    }

    #[test]
    fn keys_differ_in_every_setting_the_render_reads() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path());
        let none = BTreeMap::new();
        let one: BTreeMap<String, String> = [("DS".to_string(), "Loki".to_string())].into();
        let p = |datasource, datasources, inputs| Provision {
            datasource,
            datasources,
            inputs,
        };
        let ds = Datasources { provisioned: &none };
        let base = c.key("n", "p", "b", &p(None, &none, &none), &ds);
        let keys = [
            c.key("m", "p", "b", &p(None, &none, &none), &ds),
            c.key("n", "q", "b", &p(None, &none, &none), &ds),
            c.key("n", "p", "c", &p(None, &none, &none), &ds),
            c.key("n", "p", "b", &p(Some("x"), &none, &none), &ds),
            c.key("n", "p", "b", &p(None, &one, &none), &ds),
            c.key("n", "p", "b", &p(None, &none, &one), &ds),
            c.key(
                "n",
                "p",
                "b",
                &p(None, &none, &none),
                &Datasources { provisioned: &one },
            ),
        ];
        for k in keys {
            assert_ne!(k, base);
        }
    }

    #[test]
    fn an_entry_round_trips_and_a_torn_or_foreign_one_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path());
        assert!(c.get("k").is_none());
        c.put("k", &rendered("{\"a\": 1}\n"));
        let hit = c.get("k").unwrap();
        assert_eq!(
            (hit.text.as_str(), hit.uid.as_deref(), hit.title.as_str()),
            ("{\"a\": 1}\n", Some("u"), "t")
        );
        let file = fs_err::read_dir(dir.path().join("rendered-v1"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let whole = fs_err::read(&file).unwrap();
        fs_err::write(&file, &whole[..whole.len() - 3]).unwrap();
        assert!(c.get("k").is_none(), "a torn entry is a miss");
        // An intact entry that answers another key (a renamed file) is a miss too.
        c.put("other", &rendered("{}"));
        let other = dir
            .path()
            .join("rendered-v1")
            .join(crate::digest::blake3(b"other"));
        fs_err::copy(other, &file).unwrap();
        assert!(
            c.get("k").is_none(),
            "an entry naming another key is a miss"
        );
    }

    #[test]
    fn an_unwritable_cache_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let blocked = dir.path().join("file");
        fs_err::write(&blocked, "not a directory").unwrap();
        let c = cache(&blocked);
        c.put("k", &rendered("{}"));
        assert!(c.get("k").is_none());
    }
}
