//! The content-addressed cache of `stack lock`: chart archives, dashboards and Helm repository indexes
//! stored by blake3 under `$STACK_CACHE_DIR` (default: the user's cache dir + `/stack`), so a re-lock with
//! nothing changed downloads nothing and `stack lock --offline` works from it alone.
//!
//! Layout: one folder per [`Bucket`], named with the bucket's format version (`blobs-v1/`, `http-v1/`,
//! `helm-index-v1/`), as uv names its cache buckets: a change to what a bucket's files hold bumps its
//! version, so entries of an older format sit in a folder no reader looks at and are fetched again,
//! never misread. `blobs-v1/blake3/<hex>` holds bytes whose blake3 is `<hex>` (checked on every read, so a
//! corrupted entry is a miss, never wrong content); `http-v1/<blake3 of key>.json` remembers the
//! validators (ETag, Last-Modified) and the blob of the last answer of a URL, so the next GET of it can
//! be conditional; `helm-index-v1/` holds the entries of the wanted charts of an index.yaml, by the
//! index's blake3 (see [`crate::source::helm_repo`]); `rendered-v1/` holds dashboards as `stack build`
//! rendered them (a hit spares the render; see `build/render_cache.rs`). Writes go to a temporary file in the same directory
//! and are renamed into place, so a reader never sees half a blob and concurrent `stack` runs do not
//! clash.

#![allow(
    clippy::disallowed_methods,
    reason = "its errors are wrapped with the stack-relative path; fs_err would add the absolute one to output"
)]

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

mod prune;
pub use prune::{mark_used, DAY};

pub const CACHE_ENV: &str = "STACK_CACHE_DIR";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no cache directory is known for this user; set {CACHE_ENV} to a writable directory")]
    NoCacheDir,
    #[error("content cache {path}: {err}\nhelp: the content cache lives in ${CACHE_ENV} (or the user's cache directory): make that path a writable directory, or point {CACHE_ENV} at one")]
    Io { path: PathBuf, err: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |err| StoreError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// A folder of the cache with a format of its own. Each has a version, part of its folder name: bump it
/// whenever what the bucket's files hold (or how they are named) changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Content-addressed bytes (`blake3/<hex>`).
    Blobs,
    /// The last answer of each URL or OCI key: a [`CachedResponse`] naming a blob.
    Http,
    /// The wanted charts' entries of a Helm repository's index.yaml, by the index's blake3.
    HelmIndex,
    /// Dashboards as `stack build` rendered them, by their input's blake3, the settings the renderer
    /// reads and the renderer's identity (see `build/render_cache.rs`).
    Rendered,
}

impl Bucket {
    /// Every bucket.
    #[cfg(test)]
    pub const ALL: [Bucket; 4] = [
        Bucket::Blobs,
        Bucket::Http,
        Bucket::HelmIndex,
        Bucket::Rendered,
    ];

    /// The bucket's name, without its version.
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Blobs => "blobs",
            Bucket::Http => "http",
            Bucket::HelmIndex => "helm-index",
            Bucket::Rendered => "rendered",
        }
    }

    /// The format version of the bucket's files. Version 1 of `blobs` and `http` is the format of the
    /// unversioned `blobs/` and `http/` folders of earlier releases, which are no longer read.
    pub fn version(self) -> u32 {
        match self {
            Bucket::Blobs => 1,
            Bucket::Http => 1,
            Bucket::HelmIndex => 1,
            Bucket::Rendered => 1,
        }
    }

    /// The folder name at `version`: `<name>-v<version>`.
    pub fn folder_at(self, version: u32) -> String {
        format!("{}-v{version}", self.name())
    }

    /// The folder of the current version.
    pub fn folder(self) -> String {
        self.folder_at(self.version())
    }
}

/// A cached HTTP answer: its validators and the blake3 of its body (in the blob store).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CachedResponse {
    pub url: String,
    pub etag: Option<String>,
    /// The `Last-Modified` header as the server wrote it: sent back verbatim as `If-Modified-Since`
    /// (never parsed, so no clock or time zone of ours enters). Absent in entries of older versions.
    #[serde(default)]
    pub last_modified: Option<String>,
    pub blake3: String,
}

/// What makes the next GET of a URL conditional: the `ETag` and `Last-Modified` of its last answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Validators<'a> {
    pub etag: Option<&'a str>,
    pub last_modified: Option<&'a str>,
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The cache at `$STACK_CACHE_DIR`, or the user's cache directory + `stack`. Nothing is created until
    /// something is written.
    pub fn open_default() -> Result<Store, StoreError> {
        if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|d| !d.is_empty()) {
            return Ok(Store::at(PathBuf::from(dir)));
        }
        dirs::cache_dir()
            .map(|d| Store::at(d.join("stack")))
            .ok_or(StoreError::NoCacheDir)
    }

    pub fn at(root: PathBuf) -> Store {
        Store { root }
    }

    /// The folder of `bucket` at its current version.
    pub fn bucket(&self, bucket: Bucket) -> PathBuf {
        self.root.join(bucket.folder())
    }

    fn blob_path(&self, blake3_hex: &str) -> Option<PathBuf> {
        let ok = blake3_hex.len() == 64 && blake3_hex.bytes().all(|b| b.is_ascii_hexdigit());
        ok.then(|| {
            self.bucket(Bucket::Blobs)
                .join("blake3")
                .join(blake3_hex.to_ascii_lowercase())
        })
    }

    /// The bytes whose blake3 is `blake3_hex`, if cached and intact. A corrupted entry is removed.
    pub fn get(&self, blake3_hex: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(path) = self.blob_path(blake3_hex) else {
            return Ok(None);
        };
        let Some(mut file) = open_entry(&path)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(&path))?;
        if crate::digest::blake3(&bytes).eq_ignore_ascii_case(blake3_hex) {
            Ok(Some(bytes))
        } else {
            let _ = std::fs::remove_file(&path);
            Ok(None)
        }
    }

    /// Whether an intact copy is cached (reads and hashes it: blobs are small).
    pub fn contains(&self, blake3_hex: &str) -> Result<bool, StoreError> {
        Ok(self.get(blake3_hex)?.is_some())
    }

    /// Stores `bytes` and returns their blake3.
    pub fn put(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let hash = crate::digest::blake3(bytes);
        let path = self.blob_path(&hash).expect("a blake3 hex digest");
        if path.exists() && self.get(&hash)?.is_some() {
            return Ok(hash);
        }
        write_atomically(&path, bytes)?;
        Ok(hash)
    }

    fn response_path(&self, url: &str) -> PathBuf {
        self.bucket(Bucket::Http)
            .join(format!("{}.json", crate::digest::blake3(url.as_bytes())))
    }

    /// The cached answer for `url` and its body, if both are intact.
    pub fn cached_response(
        &self,
        url: &str,
    ) -> Result<Option<(CachedResponse, Vec<u8>)>, StoreError> {
        let Some(meta) = self.cached_meta(url)? else {
            return Ok(None);
        };
        Ok(self.get(&meta.blake3)?.map(|body| (meta, body)))
    }

    /// The cached answer for `url` without reading its body (which may be missing or corrupt: reading
    /// it with [`Store::get`] tells).
    pub fn cached_meta(&self, url: &str) -> Result<Option<CachedResponse>, StoreError> {
        let path = self.response_path(url);
        let Some(mut file) = open_entry(&path)? else {
            return Ok(None);
        };
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io(&path))?;
        let Ok(meta) = serde_json::from_str::<CachedResponse>(&text) else {
            return Ok(None);
        };
        Ok((meta.url == url).then_some(meta))
    }

    /// Whether a blob's file is present (not read, so not verified: [`Store::get`] does that).
    pub fn has_blob(&self, blake3_hex: &str) -> bool {
        self.blob_path(blake3_hex).is_some_and(|p| p.is_file())
    }

    fn keyed_path(&self, bucket: Bucket, key: &str) -> PathBuf {
        self.bucket(bucket)
            .join(crate::digest::blake3(key.as_bytes()))
    }

    /// The file stored under `key` in `bucket` (a derived answer, such as an index's wanted entries). Its
    /// format is the bucket's: the caller checks that it names `key`, and treats anything else as a miss.
    ///
    /// The file starts with the blake3 of what follows (a line of 64 hex digits), so a torn or edited
    /// file is a miss (and is removed), never a shorter answer that still parses.
    pub fn get_keyed(&self, bucket: Bucket, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.keyed_path(bucket, key);
        let Some(mut entry) = open_entry(&path)? else {
            return Ok(None);
        };
        let mut file = Vec::new();
        entry.read_to_end(&mut file).map_err(io(&path))?;
        match file.split_at_checked(KEYED_HEADER) {
            Some((head, bytes)) if head[..64] == *crate::digest::blake3(bytes).as_bytes() => {
                Ok(Some(bytes.to_vec()))
            }
            _ => {
                let _ = std::fs::remove_file(&path);
                Ok(None)
            }
        }
    }

    /// The file stored under `key` in `bucket` as a buffered reader placed after its blake3 line, which is
    /// NOT checked: only for a bucket whose files open with a header line that checks itself and names
    /// the digest of what follows it (the rendered dashboards, see build/render_cache.rs), so a reader
    /// needing only the header reads no more than a few KiB, and one reading the text hashes it once.
    /// `None`: no entry, or not a plain file.
    pub fn keyed_reader(
        &self,
        bucket: Bucket,
        key: &str,
    ) -> Result<Option<std::io::BufReader<std::fs::File>>, StoreError> {
        use std::io::BufRead as _;
        let path = self.keyed_path(bucket, key);
        let Some(file) = open_entry(&path)? else {
            return Ok(None);
        };
        // Most headers fit the first read; the store's own blake3 line comes before them.
        let mut reader = std::io::BufReader::with_capacity(4096, file);
        let mut line = Vec::with_capacity(KEYED_HEADER);
        (&mut reader)
            .take(KEYED_HEADER as u64)
            .read_until(b'\n', &mut line)
            .map_err(io(&path))?;
        Ok((line.len() == KEYED_HEADER).then_some(reader))
    }

    /// Stores `bytes` under `key` in `bucket`, after a line with their blake3 (see [`Store::get_keyed`]).
    pub fn put_keyed(&self, bucket: Bucket, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let mut file = format!("{}\n", crate::digest::blake3(bytes)).into_bytes();
        file.extend_from_slice(bytes);
        write_atomically(&self.keyed_path(bucket, key), &file)
    }

    /// Remembers `body` as the answer for `url`, with its validators; returns what was remembered.
    pub fn put_response(
        &self,
        url: &str,
        validators: Validators<'_>,
        body: &[u8],
    ) -> Result<CachedResponse, StoreError> {
        let blake3 = self.put(body)?;
        let meta = CachedResponse {
            url: url.to_string(),
            etag: validators.etag.map(str::to_string),
            last_modified: validators.last_modified.map(str::to_string),
            blake3,
        };
        let text = serde_json::to_string_pretty(&meta).expect("plain strings");
        write_atomically(&self.response_path(url), text.as_bytes())?;
        Ok(meta)
    }
}

/// The length of a keyed file's first line: a blake3 in hex and a newline.
const KEYED_HEADER: usize = 65;

/// Writes `bytes` to a temporary file beside `path` and renames it into place, so a reader sees the old
/// file or the new one. Not fsynced: every read of the cache verifies what it reads (a blob against its
/// blake3, a keyed file against its header, an answer by parsing it and matching its URL), so a write
/// torn by a crash is a miss that is fetched again, never wrong data. An fsync per entry would put a
/// disk flush on the critical path of every input of `stack lock` (issue 15). stack.lock and vendor/
/// go through the transaction, which does fsync.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().expect("cache paths have a parent");
    std::fs::create_dir_all(dir).map_err(|e| StoreError::Io {
        path: dir.to_path_buf(),
        err: e,
    })?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(path))?;
    tmp.persist(path).map_err(|e| StoreError::Io {
        path: path.to_path_buf(),
        err: e.error,
    })?;
    Ok(())
}

/// The entry at `path` opened for reading; `None` when there is none, or it is not a plain file
/// ([`plain`]: a FIFO is never opened).
fn open_entry(path: &Path) -> Result<Option<std::fs::File>, StoreError> {
    if !plain(path).map_err(io(path))? {
        return Ok(None);
    }
    match std::fs::File::open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// Whether the entry at `path` is a plain file: anything else (a FIFO would block a read forever, and
/// this cache never writes symlinks or devices) is read as a miss. Missing is `false` too.
fn plain(path: &Path) -> std::io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(meta.is_file()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_round_trip_and_corruption_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().to_path_buf());
        let hash = store.put(b"chart bytes").unwrap();
        assert_eq!(hash, crate::digest::blake3(b"chart bytes"));
        assert_eq!(store.get(&hash).unwrap().unwrap(), b"chart bytes");
        let path = dir.path().join("blobs-v1/blake3").join(&hash);
        assert!(path.exists());
        fs_err::write(&path, b"tampered").unwrap();
        assert_eq!(store.get(&hash).unwrap(), None);
        assert!(!path.exists(), "a corrupted blob is removed");
        assert_eq!(store.get("not-a-hash").unwrap(), None);
    }

    #[test]
    fn responses_keep_their_etag() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().to_path_buf());
        let url = "http://127.0.0.1:1/index.yaml";
        assert!(store.cached_response(url).unwrap().is_none());
        store
            .put_response(
                url,
                Validators {
                    etag: Some("\"v1\""),
                    last_modified: Some("Thu, 01 Jan 2026 00:00:00 GMT"),
                },
                b"apiVersion: v1",
            )
            .unwrap();
        let (meta, body) = store.cached_response(url).unwrap().unwrap();
        assert_eq!(meta.etag.as_deref(), Some("\"v1\""));
        assert_eq!(
            meta.last_modified.as_deref(),
            Some("Thu, 01 Jan 2026 00:00:00 GMT")
        );
        assert_eq!(body, b"apiVersion: v1");
        assert!(dir.path().join("http-v1").read_dir().unwrap().count() == 1);
    }

    /// A keyed file cut short (as a crash may leave an unsynced write) or edited is a miss, never a
    /// shorter answer: here a list of entries cut after its first item would still parse as YAML.
    #[test]
    fn a_torn_keyed_entry_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().to_path_buf());
        let entries = b"- version: 2.0.0\n- version: 1.0.0\n";
        store.put_keyed(Bucket::HelmIndex, "k", entries).unwrap();
        assert_eq!(
            store.get_keyed(Bucket::HelmIndex, "k").unwrap().as_deref(),
            Some(&entries[..])
        );
        let path = store.keyed_path(Bucket::HelmIndex, "k");
        let whole = std::fs::read(&path).unwrap();
        for cut in [0, 10, 65, whole.len() - 18] {
            std::fs::write(&path, &whole[..cut]).unwrap();
            assert_eq!(
                store.get_keyed(Bucket::HelmIndex, "k").unwrap(),
                None,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_keyed_reader_starts_after_the_blake3_line() {
        use std::io::BufRead as _;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().to_path_buf());
        let rest = "x".repeat(100_000);
        let text = format!("head\n{rest}");
        store
            .put_keyed(Bucket::Rendered, "k", text.as_bytes())
            .unwrap();
        let mut reader = store.keyed_reader(Bucket::Rendered, "k").unwrap().unwrap();
        let mut line = Vec::new();
        reader.read_until(b'\n', &mut line).unwrap();
        assert_eq!(line, b"head\n");
        assert!(store
            .keyed_reader(Bucket::Rendered, "none")
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_fifo_in_place_of_an_entry_is_a_miss_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().to_path_buf());
        store.put_keyed(Bucket::Rendered, "k", b"x").unwrap();
        let path = store.keyed_path(Bucket::Rendered, "k");
        std::fs::remove_file(&path).unwrap();
        crate::support::tree::mkfifo(&path);
        // Reading the FIFO would block this test forever.
        assert_eq!(store.get_keyed(Bucket::Rendered, "k").unwrap(), None);
        assert!(store.keyed_reader(Bucket::Rendered, "k").unwrap().is_none());
    }

    #[test]
    fn entries_written_before_last_modified_was_kept_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().to_path_buf());
        let url = "http://127.0.0.1:1/a.json";
        let blake3 = store.put(b"{}").unwrap();
        let old = format!(r#"{{"url":"{url}","etag":null,"blake3":"{blake3}"}}"#);
        write_atomically(&store.response_path(url), old.as_bytes()).unwrap();
        let (meta, body) = store.cached_response(url).unwrap().unwrap();
        assert_eq!((meta.last_modified, body), (None, b"{}".to_vec()));
    }

    /// A bucket written in an older format (its folder named with an older version, or the unversioned
    /// folders of earlier releases) is never read: every lookup misses, so the answer is fetched again.
    #[test]
    fn a_cache_of_a_previous_bucket_version_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().to_path_buf());
        let url = "http://127.0.0.1:1/index.yaml";
        let validators = Validators {
            etag: Some("\"v1\""),
            last_modified: None,
        };
        store
            .put_response(url, validators, b"apiVersion: v1")
            .unwrap();
        store.put_keyed(Bucket::HelmIndex, "k", b"entries").unwrap();
        store.put_keyed(Bucket::Rendered, "r", b"{}").unwrap();
        let blake3 = crate::digest::blake3(b"apiVersion: v1");
        assert!(store.cached_response(url).unwrap().is_some());
        for older in ["previous version", "unversioned"] {
            for bucket in Bucket::ALL {
                let folder = match older {
                    "unversioned" => bucket.name().to_string(),
                    _ => bucket.folder_at(bucket.version() - 1),
                };
                let from = dir.path().join(bucket.folder());
                let to = dir.path().join(folder);
                std::fs::rename(&from, &to).unwrap();
            }
            assert_eq!(store.cached_response(url).unwrap(), None, "{older}");
            assert_eq!(store.cached_meta(url).unwrap(), None, "{older}");
            assert!(!store.has_blob(&blake3), "{older}");
            assert_eq!(store.get(&blake3).unwrap(), None, "{older}");
            assert_eq!(store.get_keyed(Bucket::HelmIndex, "k").unwrap(), None);
            assert_eq!(store.get_keyed(Bucket::Rendered, "r").unwrap(), None);
            for bucket in Bucket::ALL {
                let folder = match older {
                    "unversioned" => bucket.name().to_string(),
                    _ => bucket.folder_at(bucket.version() - 1),
                };
                std::fs::rename(dir.path().join(folder), dir.path().join(bucket.folder())).unwrap();
            }
            assert!(store.cached_response(url).unwrap().is_some());
        }
    }

    #[test]
    fn bucket_folders_carry_their_version() {
        assert_eq!(Bucket::Blobs.folder(), "blobs-v1");
        assert_eq!(Bucket::Http.folder(), "http-v1");
        assert_eq!(Bucket::HelmIndex.folder(), "helm-index-v1");
        assert_eq!(Bucket::Rendered.folder(), "rendered-v1");
    }
}
