//! The cache of rendered dashboards: what `dashboard::render` made of an input under given settings,
//! kept in the user's content cache (`$STACK_CACHE_DIR`, bucket `rendered-v1/`) so that a rebuild,
//! `build --check` or another stack with the same input copies the rendered bytes instead of rendering.
//!
//! The key is everything the render reads: the input's blake3, the dashboard's name and file, the
//! settings of [`dashboard::Provision`] and the provisioned datasources, and the renderer's identity
//! (the crate version, [`RENDERER`], and the size and modification time of the running binary, so that
//! a rebuilt `stack` never reads what another build of it rendered). An entry names its whole key and is
//! verified when read (its header checks itself; the text is hashed once against the header's
//! length and blake3, see [`Store::keyed_reader`]): a torn, edited or colliding entry is a miss and the
//! dashboard is rendered, never wrong output. Its own header (which checks
//! itself) holds the rendered text's length and blake3, so when out/ already holds those bytes the
//! text is never read. Render errors are not cached. The
//! cache is best effort: with no cache directory, or one that cannot be written, a build renders
//! everything and its output is the same. New entries are written by a thread of their own while the
//! build goes on, and a build waits for it before it returns.

use crate::emit::dashboard::{self, Datasources, Provision, Rendered};
use crate::store::{Bucket, Store};

/// Bump when the renderer's output for the same input and settings changes (the binary's identity in
/// the key already separates builds of `stack`; this keeps released versions apart too).
const RENDERER: &str = "dashboard-render-2";

/// The rendered-dashboards bucket of the content cache, for this binary.
pub(crate) struct RenderCache {
    store: Store,
    renderer: String,
    /// New entries go to a thread that writes them while the build renders and stages the rest, so a
    /// cold build does not wait on writing the cache (issue 15); dropping the cache waits for it.
    writer: Option<Writer>,
}

/// The thread that writes new entries, and the queue to it (bounded: a build holds at most a few
/// rendered files it has not written yet).
struct Writer {
    queue: std::sync::mpsc::SyncSender<(String, Vec<u8>)>,
    thread: std::thread::JoinHandle<()>,
}

/// How long an entry no build wrote or used is kept: each new `stack` binary renders under new keys, so
/// the entries of older ones go after this long (the writer prunes at most once a day, after its
/// entries; a hit marks its entry used; see [`Store::prune`]).
const KEPT: std::time::Duration = crate::store::DAY.saturating_mul(30);

/// Entries waiting for the writer at most.
const QUEUED: usize = 8;

impl Writer {
    fn start(store: Store) -> Option<Writer> {
        let (queue, entries) = std::sync::mpsc::sync_channel::<(String, Vec<u8>)>(QUEUED);
        let thread = std::thread::Builder::new()
            .name("render-cache".into())
            .spawn(move || {
                for (key, file) in entries {
                    let _ = store.put_keyed(Bucket::Rendered, &key, &file);
                }
                store.prune(Bucket::Rendered, KEPT);
            })
            .ok()?;
        Some(Writer { queue, thread })
    }
}

impl Drop for RenderCache {
    /// Waits until every entry is written (or refused): a build never exits with entries half done.
    fn drop(&mut self) {
        self.stop_writer();
    }
}

impl RenderCache {
    /// Waits for the writer thread to write what it was given and end; later entries are written
    /// by [`RenderCache::put`] itself.
    fn stop_writer(&mut self) {
        if let Some(Writer { queue, thread }) = self.writer.take() {
            drop(queue);
            let _ = thread.join();
        }
    }
}

/// What an entry holds before the rendered text: the key it answers, what `Rendered` carries besides
/// the text, and the text's length and blake3. The header line opens with the blake3 of its own JSON, so
/// it can be read and trusted without reading (and hashing) the text: `build --check` and a rebuild
/// decide that out/ already holds a dashboard by hashing out/'s file against `blake3`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    key: String,
    uid: Option<String>,
    title: String,
    len: u64,
    blake3: String,
}

/// The longest header read without the text: the key spells out the dashboard's settings, a few KiB.
const HEAD_MAX: usize = 64 * 1024;

/// A cached render known by its header: the text is read ([`RenderCache::text`]) only when the
/// output does not already hold it.
pub(crate) struct Hit {
    key: String,
    /// `uid` of the rendered dashboard.
    pub(crate) uid: Option<String>,
    /// `title` of the rendered dashboard.
    pub(crate) title: String,
    /// The length of the rendered text.
    pub(crate) len: u64,
    /// The blake3 of the rendered text.
    pub(crate) blake3: blake3::Hash,
    /// Whether out/ already holds the text: found by the renderer's thread hashing out/'s file
    /// ([`crate::emit::staging::hashes_to`]); the text is then not read at all.
    pub(crate) in_out: bool,
}

/// What [`render`] gives: the text, or a cache entry's header when the cache has it.
pub(crate) enum Render {
    /// Rendered now (and remembered in the cache when there is one), with the text's blake3 (taken on
    /// the renderer's thread, so the output's staging need not hash it again).
    Text(Rendered, blake3::Hash),
    /// In the cache: the text is read only when needed.
    Cached(Hit),
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
        let writer = Writer::start(store.clone());
        Some(RenderCache {
            store,
            renderer,
            writer,
        })
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

    /// The header of the entry under `key`, when one that checks itself names `key`; the text is not
    /// read.
    pub(crate) fn head(&self, key: &str) -> Option<Hit> {
        let (header, reader, meta) = self.entry(key)?;
        if header.key != key {
            return None;
        }
        crate::store::mark_used(reader.get_ref(), &meta);
        Some(Hit {
            key: header.key,
            uid: header.uid,
            title: header.title,
            len: header.len,
            blake3: blake3::Hash::from_hex(&header.blake3).ok()?,
            in_out: false,
        })
    }

    /// The entry under `key`: its header, when it checks itself and its length fits in the file (a
    /// forged length is a miss, never an allocation of that size), the reader placed after it, and the
    /// file's metadata.
    fn entry(
        &self,
        key: &str,
    ) -> Option<(Header, std::io::BufReader<std::fs::File>, std::fs::Metadata)> {
        use std::io::{BufRead as _, Read as _};
        let mut reader = self.store.keyed_reader(Bucket::Rendered, key).ok()??;
        let mut line = Vec::new();
        (&mut reader)
            .take(HEAD_MAX as u64)
            .read_until(b'\n', &mut line)
            .ok()?;
        let header = parse_header(line.strip_suffix(b"\n")?)?;
        let meta = reader.get_ref().metadata().ok()?;
        (header.len <= meta.len()).then_some((header, reader, meta))
    }

    /// The rendered text `hit` stands for: its header read again (it must check itself and match
    /// `hit`) and the text after it, hashed once against the header's length and blake3; `None` when the
    /// entry is torn, changed or no longer there.
    pub(crate) fn text(&self, hit: &Hit) -> Option<String> {
        use std::io::Read as _;
        let (header, reader, _) = self.entry(&hit.key)?;
        let same_header = header.key == hit.key
            && (header.len, header.blake3.as_str()) == (hit.len, hit.blake3.to_hex().as_str());
        if !same_header {
            return None;
        }
        let mut text = Vec::with_capacity(usize::try_from(hit.len).ok()?);
        reader.take(hit.len + 1).read_to_end(&mut text).ok()?;
        let same = text.len() as u64 == hit.len && blake3::hash(&text) == hit.blake3;
        same.then(|| String::from_utf8(text).ok())?
    }

    /// The rendered dashboard under `key`, when an intact entry names it.
    #[cfg(test)]
    fn get(&self, key: &str) -> Option<Rendered> {
        let hit = self.head(key)?;
        let text = self.text(&hit)?;
        Some(Rendered {
            text,
            uid: hit.uid,
            title: hit.title,
        })
    }

    /// Remembers `rendered`, whose text's blake3 is `blake3`, under `key`; a cache that cannot be
    /// written is left alone.
    pub(crate) fn put(&self, key: &str, rendered: &Rendered, blake3: &blake3::Hash) {
        let header = Header {
            key: key.to_string(),
            uid: rendered.uid.clone(),
            title: rendered.title.clone(),
            len: rendered.text.len() as u64,
            blake3: blake3.to_hex().to_string(),
        };
        let json = serde_json::to_vec(&header).expect("plain strings");
        let mut file = format!("{} ", crate::digest::blake3(&json)).into_bytes();
        file.extend_from_slice(&json);
        file.push(b'\n');
        file.extend_from_slice(rendered.text.as_bytes());
        let queued = match &self.writer {
            Some(writer) => writer.queue.send((key.to_string(), file)),
            None => Err(std::sync::mpsc::SendError((key.to_string(), file))),
        };
        // No writer thread (it could not start, or ended): written here.
        if let Err(std::sync::mpsc::SendError((key, file))) = queued {
            let _ = self.store.put_keyed(Bucket::Rendered, &key, &file);
        }
    }
}

/// A header line: the blake3 of its JSON, a space, the JSON; `None` unless they agree.
fn parse_header(line: &[u8]) -> Option<Header> {
    let (check, json) = line.split_at_checked(64)?;
    let json = json.strip_prefix(b" ")?;
    (check == crate::digest::blake3(json).as_bytes())
        .then(|| serde_json::from_slice(json).ok())
        .flatten()
}

/// [`dashboard::render`] of `bytes` as `dash`, with the rendered text's blake3 (what the output's
/// staging and a cache entry take, so the text is hashed once, on the renderer's thread).
pub(crate) fn render_hashed(
    dash: &super::dashboards::ToShip,
    bytes: &[u8],
    ds: &Datasources,
) -> Result<(Rendered, blake3::Hash), dashboard::DashboardError> {
    let rendered = dashboard::render(&dash.name, &dash.path, bytes, &dash.provision, ds)?;
    let blake3 = blake3::hash(rendered.text.as_bytes());
    Ok((rendered, blake3))
}

/// Renders `bytes` as [`dashboard::render`] does, through `cache` when there is one; `input_blake3`
/// is the blake3 of `bytes` (a vendored input's is the lock's, checked when it was read).
pub(crate) fn render(
    cache: Option<&RenderCache>,
    dash: &super::dashboards::ToShip,
    bytes: &[u8],
    input_blake3: &str,
    ds: &Datasources,
) -> Result<Render, dashboard::DashboardError> {
    let render = || render_hashed(dash, bytes, ds);
    let Some(cache) = cache else {
        return render().map(|(r, b)| Render::Text(r, b));
    };
    let key = cache.key(&dash.name, &dash.path, input_blake3, &dash.provision, ds);
    if let Some(hit) = cache.head(&key) {
        return Ok(Render::Cached(hit));
    }
    let (rendered, blake3) = render()?;
    cache.put(&key, &rendered, &blake3);
    Ok(Render::Text(rendered, blake3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A cache that writes each entry as it is put (no writer thread), so a test reads it at once.
    fn cache(dir: &std::path::Path) -> RenderCache {
        let mut c = RenderCache::at(Store::at(dir.to_path_buf())).unwrap();
        c.stop_writer();
        c
    }

    #[test]
    fn the_writer_thread_has_written_every_entry_when_the_cache_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let c = RenderCache::at(Store::at(dir.path().to_path_buf())).unwrap();
        assert!(c.writer.is_some());
        let keys: Vec<String> = (0..3 * QUEUED).map(|i| format!("k{i}")).collect();
        for k in &keys {
            put(&c, k, &format!("{{\"{k}\": 1}}"));
        }
        drop(c);
        let c = cache(dir.path());
        for k in &keys {
            assert_eq!(c.get(k).unwrap().text, format!("{{\"{k}\": 1}}"));
        }
    }

    /// Remembers `text` under `key`, as a build does after rendering it.
    fn put(c: &RenderCache, key: &str, text: &str) {
        c.put(key, &rendered(text), &blake3::hash(text.as_bytes()));
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
        put(&c, "k", "{\"a\": 1}\n");
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
        put(&c, "other", "{}");
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
    fn a_header_is_trusted_only_when_it_checks_and_the_text_only_when_it_matches_it() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path());
        put(&c, "k", "{\"a\": 1}\n");
        let hit = c.head("k").unwrap();
        assert_eq!(hit.len, 9);
        assert_eq!(hit.blake3, blake3::hash(b"{\"a\": 1}\n"));
        let file = dir
            .path()
            .join("rendered-v1")
            .join(crate::digest::blake3(b"k"));
        let whole = fs_err::read(&file).unwrap();
        // The text edited (same length): the header still reads, the text is refused.
        let mut edited = whole.clone();
        *edited.last_mut().unwrap() = b' ';
        fs_err::write(&file, &edited).unwrap();
        assert!(c.head("k").is_some());
        assert!(c.text(&hit).is_none(), "an edited text is refused");
        let mut longer = whole.clone();
        longer.extend_from_slice(b"{}");
        fs_err::write(&file, &longer).unwrap();
        assert!(
            c.text(&hit).is_none(),
            "a text with bytes after it is refused"
        );
        fs_err::write(&file, &whole).unwrap();
        assert_eq!(
            c.text(&hit).as_deref(),
            Some("{\"a\": 1}\n"),
            "the intact entry"
        );
        // The header's digest edited: the header does not check, so the entry is a miss.
        let mut edited = whole.clone();
        let at = edited
            .windows(64)
            .position(|w| w == hit.blake3.to_hex().as_bytes())
            .unwrap();
        edited[at] = if edited[at] == b'0' { b'1' } else { b'0' };
        fs_err::write(&file, &edited).unwrap();
        assert!(c.head("k").is_none(), "a header that does not check");
    }

    #[test]
    fn a_header_whose_length_the_file_cannot_hold_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path());
        for len in [1_000_000_000_000_000_000, u64::MAX] {
            let header = Header {
                key: "k".into(),
                uid: None,
                title: "t".into(),
                len,
                blake3: blake3::hash(b"{}").to_hex().to_string(),
            };
            // A forged header that checks itself: the length is the only lie.
            let json = serde_json::to_vec(&header).unwrap();
            let mut file = format!("{} ", crate::digest::blake3(&json)).into_bytes();
            file.extend_from_slice(&json);
            file.extend_from_slice(b"\n{}");
            c.store.put_keyed(Bucket::Rendered, "k", &file).unwrap();
            assert!(c.head("k").is_none(), "len {len}: a miss, no allocation");
        }
    }

    #[test]
    fn an_unwritable_cache_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let blocked = dir.path().join("file");
        fs_err::write(&blocked, "not a directory").unwrap();
        let c = cache(&blocked);
        put(&c, "k", "{}");
        assert!(c.get("k").is_none());
    }
}
