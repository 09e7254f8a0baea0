//! Upstreams: where charts and dashboards come from and how their bytes are fetched and verified. Each
//! submodule speaks one protocol (OCI registries, Helm repositories, grafana.com and plain URLs) and
//! returns domain types whose digests it has checked. This module owns what they share: the network
//! context [`Net`] and [`Access`] (the network, or only the cache); the mirror rules live in [`mirror`].

pub mod error;
pub mod grafana;
pub mod helm_repo;
pub mod mirror;
pub mod oci;

use std::future::Future;

use crate::auth::{AuthStore, Credentials};
use crate::http::{is_loopback_host, redact_str, Fetched, Get, Http, HttpError};
use crate::store::{CachedResponse, Store, StoreError, Validators};
pub use error::{InputError, InputErrorKind, Location};
pub use mirror::{Mirrors, OciLocation};

/// `"\nhelp: {help}"`, unless `err`'s message already ends in its own `help:` line (one help per error).
pub fn unless_helped(err: &impl std::fmt::Display, help: &str) -> String {
    if err.to_string().contains("\nhelp: ") {
        String::new()
    } else {
        format!("\nhelp: {help}")
    }
}

/// Runs `work` (reading or writing the content cache, hashing or parsing what came back) on tokio's
/// blocking threads and waits for it without blocking the async runtime. `stack lock` polls every
/// input's future from one thread: file work done there holds back every other input's next request
/// (issue 15: a cold lock of 40 inputs left its request slots idle for ~80 ms while that thread wrote
/// cache entries and parsed dashboards).
pub(crate) async fn off_runtime<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        // Cancelled only when the runtime shuts down, and then no one awaits this any more.
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

/// Everything a source needs to reach the network. Built only when `stack lock` may go online: offline
/// runs never construct one, so they cannot open a connection.
pub struct Net {
    pub http: Http,
    /// What the run learns of each OCI registry (how it authenticates, its tokens).
    pub oci: oci::Registries,
    pub auth: AuthStore,
    pub mirrors: Mirrors,
    pub store: Store,
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Http(#[from] HttpError),
}

impl Net {
    /// `plain_http_registries`: the `host:port` of every registry that may be reached without TLS.
    pub fn new(
        http: Http,
        auth: AuthStore,
        mirrors: Mirrors,
        store: Store,
        plain_http_registries: Vec<String>,
    ) -> Result<Net, NetError> {
        let oci = oci::Registries::new(plain_http_registries);
        Ok(Net {
            http,
            oci,
            auth,
            mirrors,
            store,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The URL is named by the caller's message.
    #[error("not in the content cache, and --offline forbids fetching it\nhelp: run `stack lock` without --offline (once, with the network) to fill the cache")]
    Offline,
    #[error("{url}: the mirror target does not make a URL: {message}")]
    Mirror { url: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl FetchError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, FetchError::Http(e) if e.is_not_found())
    }
}

/// The network, or only the cache. `--offline` runs hold [`Access::Offline`] and so cannot reach a
/// server: every answer comes from the content cache or the run fails naming what is missing.
///
/// Answers are cached under their *canonical* URL (or, for OCI, a key naming the canonical repository),
/// never the mirror they were fetched from: an offline run knows nothing of the mirrors an earlier run
/// used, and the content is the same wherever it came from.
#[derive(Clone, Copy)]
pub enum Access<'a> {
    Online(&'a Net),
    Offline {
        store: &'a Store,
        mirrors: &'a Mirrors,
    },
}

impl<'a> Access<'a> {
    pub fn store(&self) -> &'a Store {
        match self {
            Access::Online(net) => &net.store,
            Access::Offline { store, .. } => store,
        }
    }

    pub fn mirrors(&self) -> &'a Mirrors {
        match self {
            Access::Online(net) => &net.mirrors,
            Access::Offline { mirrors, .. } => mirrors,
        }
    }

    pub fn net(&self) -> Option<&'a Net> {
        match self {
            Access::Online(net) => Some(net),
            Access::Offline { .. } => None,
        }
    }

    /// A cached answer by key (a canonical URL or an OCI key). Read on the async thread, like the
    /// lookup in [`Access::revalidate`]: cold, it is one failed `stat`, and a request asked for right away
    /// keeps its place in the order of the `--jobs` bound.
    fn cached(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.store().cached_response(key)?.map(|(_, body)| body))
    }

    /// Remembers an answer by key, off the async threads; gives the body back.
    async fn remember(&self, key: &str, body: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let (store, key) = (self.store().clone(), key.to_string());
        off_runtime(move || {
            store.put_response(&key, Validators::default(), &body)?;
            Ok(body)
        })
        .await
    }

    /// The credentials for `registry` (as contacted), if any: none offline, where nothing is asked.
    pub fn registry_credentials(&self, registry: &str) -> Option<&'a Credentials> {
        self.net()
            .and_then(|net| net.auth.lookup_registry(registry))
    }

    /// How long one request may take; none offline.
    pub fn request_timeout(&self) -> Option<std::time::Duration> {
        self.net().map(|net| net.http.timeouts.request)
    }

    /// Content named by its digest (an OCI blob, a manifest by digest), remembered under `key`. It
    /// never changes, so a remembered answer is the answer online and offline alike, and costs no
    /// request. Otherwise, online, `fetch` asks the network (and verifies what it gets) and the answer
    /// is remembered; offline, [`CachedFetchError::Offline`].
    pub async fn immutable<E, Fut>(
        &self,
        key: &str,
        fetch: impl FnOnce(&'a Net) -> Fut,
    ) -> Result<Vec<u8>, CachedFetchError<E>>
    where
        Fut: Future<Output = Result<Vec<u8>, E>>,
    {
        if let Some(bytes) = self.cached(key).map_err(CachedFetchError::Store)? {
            return Ok(bytes);
        }
        let net = self.net().ok_or(CachedFetchError::Offline)?;
        let bytes = fetch(net).await.map_err(CachedFetchError::Fetch)?;
        self.remember(key, bytes)
            .await
            .map_err(CachedFetchError::Store)
    }

    /// An answer that can change upstream (a tag's manifest, a repository's tag list), remembered
    /// under `key`. Online, `fetch` always asks (and verifies what it gets), and its answer's body is
    /// remembered for a later offline run, with what else it learnt (`Some(T)`); offline, the
    /// remembered body (with `None`) or [`CachedFetchError::Offline`].
    pub async fn mutable<T, E, Fut>(
        &self,
        key: &str,
        fetch: impl FnOnce(&'a Net) -> Fut,
    ) -> Result<(Vec<u8>, Option<T>), CachedFetchError<E>>
    where
        Fut: Future<Output = Result<(Vec<u8>, T), E>>,
    {
        let Some(net) = self.net() else {
            let body = self.cached(key).map_err(CachedFetchError::Store)?;
            return body.map(|b| (b, None)).ok_or(CachedFetchError::Offline);
        };
        let (body, learnt) = fetch(net).await.map_err(CachedFetchError::Fetch)?;
        let body = self
            .remember(key, body)
            .await
            .map_err(CachedFetchError::Store)?;
        Ok((body, Some(learnt)))
    }

    /// GETs the canonical URL `canonical` from where the mirrors say, remembers the answer, and returns
    /// its body. Offline, the remembered answer or an error naming the URL. See [`Access::revalidate`].
    pub async fn get(&self, canonical: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        let meta = match self.revalidate(canonical, limit).await? {
            Revalidated::Fresh { bytes, .. } => return Ok(bytes),
            Revalidated::Cached(meta) => meta,
        };
        let store = self.store().clone();
        if let Some(body) = off_runtime(move || store.get(&meta.blake3)).await? {
            return Ok(body);
        }
        // The remembered body turned out corrupt (and is now removed): ask again, unconditionally.
        match self.revalidate(canonical, limit).await? {
            Revalidated::Fresh { bytes, .. } => Ok(bytes),
            Revalidated::Cached(_) => Err(FetchError::Offline),
        }
    }

    /// The cached-fetch layer, the one place that decides between the network and the cache for a URL:
    /// online, a GET of `canonical` from where the mirrors say; offline, the remembered answer or
    /// [`FetchError::Offline`]. Answers are remembered under the canonical URL in the `http` bucket.
    ///
    /// When an earlier answer is remembered (and its body is present), the GET is conditional
    /// (`If-None-Match` with its ETag, `If-Modified-Since` with its Last-Modified), and a 304 answers
    /// [`Revalidated::Cached`] without reading the body: an unchanged index.yaml or dashboard costs a
    /// round trip, not its bytes, and a caller that derived something from those bytes before (the wanted
    /// entries of an index) can use that, keyed on the body's blake3, without reading the body at all.
    pub async fn revalidate(&self, canonical: &str, limit: u64) -> Result<Revalidated, FetchError> {
        let key = redact_str(canonical);
        // Read here, not off the runtime: a small file (or, cold, a missing one), and a request asked
        // for right away keeps its place in the longest-chain-first order of the `--jobs` bound.
        let store = self.store();
        let cached = store
            .cached_meta(&key)?
            .filter(|meta| store.has_blob(&meta.blake3));
        let net = match self {
            Access::Offline { .. } => {
                return cached.map(Revalidated::Cached).ok_or(FetchError::Offline)
            }
            Access::Online(net) => net,
        };
        let location = net
            .mirrors
            .http(canonical)
            .map_err(|e| FetchError::Mirror {
                url: key.clone(),
                message: e.to_string(),
            })?;
        let request = Get {
            url: &location.url,
            // Never over plain HTTP off loopback, whatever the mirror allows.
            credentials: net.auth.lookup_url(&location.url).filter(|_| {
                location.url.scheme() == "https"
                    || location.url.host_str().is_some_and(is_loopback_host)
            }),
            if_none_match: cached.as_ref().and_then(|m| m.etag.as_deref()),
            if_modified_since: cached.as_ref().and_then(|m| m.last_modified.as_deref()),
            limit,
            insecure: location.insecure,
        };
        match net.http.get(&request).await? {
            Fetched::NotModified => Ok(Revalidated::Cached(
                cached.expect("304 only when a validator was sent"),
            )),
            Fetched::Body {
                bytes,
                etag,
                last_modified,
            } => {
                let store = store.clone();
                off_runtime(move || {
                    let validators = Validators {
                        etag: etag.as_deref(),
                        last_modified: last_modified.as_deref(),
                    };
                    let meta = store.put_response(&key, validators, &bytes)?;
                    Ok(Revalidated::Fresh {
                        bytes,
                        blake3: meta.blake3,
                    })
                })
                .await
            }
        }
    }
}

/// Why [`Access::immutable`] or [`Access::mutable`] has no bytes to give.
#[derive(Debug)]
pub enum CachedFetchError<E> {
    /// Offline, and nothing is remembered under the key.
    Offline,
    /// The content cache failed.
    Store(StoreError),
    /// Online, the fetch failed (its error as the source named it).
    Fetch(E),
}

/// What [`Access::revalidate`] found.
#[derive(Debug)]
pub enum Revalidated {
    /// The remembered answer holds (a 304, or offline); its body is the blob `blake3` of the store.
    Cached(CachedResponse),
    /// A new answer, already remembered: its body and the body's blake3.
    Fresh { bytes: Vec<u8>, blake3: String },
}

impl Revalidated {
    /// The blake3 of the answer's body.
    pub fn blake3(&self) -> &str {
        match self {
            Revalidated::Cached(meta) => &meta.blake3,
            Revalidated::Fresh { blake3, .. } => blake3,
        }
    }
}
