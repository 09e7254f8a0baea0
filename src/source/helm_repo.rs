//! Classic Helm repositories: `index.yaml` (YAML or JSON, revalidated with its ETag), version selection
//! with Helm's rules, chart URLs resolved like Helm's `ResolveReferenceURL`, and the archive verified
//! against the index's `digest` (Helm itself does not verify it; we do).

use std::collections::BTreeSet;

use url::Url;

mod index;

pub use index::RepoIndex;
#[cfg(test)]
pub use index::{parses as index_parses, streaming_agrees};

use super::error::{InputError, InputErrorKind as Kind, Location, Missing};
use super::{Access, FetchError, Revalidated};
use crate::digest;
use crate::http::redact_str;
use crate::source::oci::MAX_CHART_BYTES;
use crate::version_req::VersionReq;

/// The largest index.yaml accepted. Big public indexes reach 15-50 MB (bitnami, TrueCharts).
pub const MAX_INDEX_BYTES: u64 = 64 << 20;

/// One usable version of a chart in an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub version: String,
    pub urls: Vec<String>,
    /// `sha256:<hex>`, normalised from what the index states.
    pub digest: Option<String>,
}

impl RepoIndex {
    /// The usable entries of `chart`, and a warning for each entry that is skipped.
    pub fn entries(&self, chart: &str) -> Option<(Vec<IndexEntry>, Vec<String>)> {
        debug_assert!(self.knows(chart), "`{chart}` was not asked of this index");
        let list = self.entries.get(chart)?;
        let mut out = Vec::new();
        let mut warnings = Vec::new();
        let Some(items) = list.as_sequence() else {
            return Some((
                out,
                vec![format!(
                    "index.yaml: `entries.{chart}` is not a list; ignored"
                )],
            ));
        };
        for (i, item) in items.iter().enumerate() {
            match read_entry(item) {
                Ok(e) if out.iter().any(|o: &IndexEntry| o.version == e.version) => {
                    warnings.push(format!(
                        "index.yaml lists version {} of `{chart}` more than once (entry {}); the first is used, and Flux may pick another archive",
                        e.version,
                        i + 1
                    ))
                }
                Ok(e) => out.push(e),
                Err(why) => warnings.push(format!(
                    "index.yaml: entry {} of `{chart}` skipped: {why}",
                    i + 1
                )),
            }
        }
        Some((out, warnings))
    }
}

fn read_entry(item: &serde_yaml_ng::Value) -> Result<IndexEntry, String> {
    use serde_yaml_ng::Value;
    let map = item.as_mapping().ok_or("not a mapping")?;
    let version = match map.get("version") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err("no `version`".into()),
    };
    let urls = match map.get("urls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(seq)) => seq
            .iter()
            .map(|u| {
                u.as_str()
                    .map(str::to_string)
                    .ok_or(format!("{version}: `urls` holds a non-string"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(format!("{version}: `urls` is not a list")),
    };
    let digest = match map.get("digest") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(
            digest::normalize_sha256(s.trim())
                .ok_or(format!("{version}: `digest` is not a sha256 digest"))?,
        ),
        Some(_) => return Err(format!("{version}: `digest` is not a string")),
    };
    Ok(IndexEntry {
        version,
        urls,
        digest,
    })
}

/// `<repo>/index.yaml`, keeping the repository URL's query string (as Helm does).
pub fn index_url(repo: &str) -> Result<String, url::ParseError> {
    let mut url = Url::parse(repo)?;
    let path = format!("{}/index.yaml", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url.to_string())
}

/// Helm's `ResolveReferenceURL`: an absolute URL is kept; a relative one is resolved against the
/// repository URL with a `/` appended, and takes the repository's query string.
pub fn resolve_reference_url(repo: &str, reference: &str) -> Result<String, url::ParseError> {
    if let Ok(abs) = Url::parse(reference) {
        return Ok(abs.to_string());
    }
    let mut base = Url::parse(repo)?;
    let path = format!("{}/", base.path().trim_end_matches('/'));
    base.set_path(&path);
    let query = base.query().map(str::to_string);
    let mut resolved = base.join(reference)?;
    resolved.set_query(query.as_deref());
    Ok(resolved.to_string())
}

/// A chart version chosen from an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmPin {
    pub version: String,
    /// The archive's sha256 as index.yaml states it, if it does.
    pub stated_digest: Option<String>,
    /// Where the archive lives upstream: recorded in the lock, and fetched from where the mirrors say.
    pub canonical_url: String,
}

/// Fetches `<repo>/index.yaml` (revalidated with its cached ETag) and reads the entries of `charts`. An
/// index that answers 304 (or is read offline) is not parsed again: the wanted entries remembered under
/// its blake3 are read instead. The error is a message (shared by every chart of the repository), wrapped
/// into an [`InputError`] of kind [`Kind::Index`] by the caller.
pub async fn fetch_index(
    access: &Access<'_>,
    repo: &str,
    charts: &BTreeSet<String>,
) -> Result<RepoIndex, String> {
    let canonical = index_url(repo).map_err(|e| format!("{repo} is not a repository URL: {e}"))?;
    let fetch_err = |e: FetchError| format!("fetching the index of {repo}: {e}");
    let store = access.store();
    let answer = access
        .revalidate(&canonical, MAX_INDEX_BYTES)
        .await
        .map_err(fetch_err)?;
    let blake3 = answer.blake3().to_string();
    if let Some(index) = RepoIndex::cached(store, &blake3, charts).map_err(|e| e.to_string())? {
        return Ok(index);
    }
    let (bytes, blake3) = match answer {
        Revalidated::Fresh { bytes, blake3 } => (bytes, blake3),
        Revalidated::Cached(meta) => match store.get(&meta.blake3).map_err(|e| e.to_string())? {
            Some(bytes) => (bytes, meta.blake3),
            None => {
                let bytes = access
                    .get(&canonical, MAX_INDEX_BYTES)
                    .await
                    .map_err(fetch_err)?;
                let blake3 = digest::blake3(&bytes);
                (bytes, blake3)
            }
        },
    };
    let index = RepoIndex::parse_wanted(&bytes, charts).map_err(|message| {
        format!("{repo}/index.yaml is not a Helm index (YAML or JSON): {message}")
    })?;
    drop(bytes);
    index.remember(store, &blake3).map_err(|e| e.to_string())?;
    Ok(index)
}

/// Chooses the version of `chart` that meets `req` in `index`. Returns the pin and warnings about
/// skipped entries.
pub fn select(
    access: &Access<'_>,
    input: &str,
    repo: &str,
    chart: &str,
    index: &RepoIndex,
    req: &VersionReq,
) -> Result<(HelmPin, Vec<String>), InputError> {
    let at_repo = |kind| InputError::chart(input, Location::Repository(repo.into()), kind);
    let (entries, mut warnings) = index
        .entries(chart)
        .ok_or_else(|| at_repo(Kind::NotFound(Missing::Chart(chart.into()))))?;
    let Some((version, _)) = req.select(entries.iter().map(|e| e.version.as_str())) else {
        let mut versions: Vec<_> = entries
            .iter()
            .filter_map(|e| {
                crate::version_req::parse_tag(&e.version).map(|v| (v, e.version.clone()))
            })
            .collect();
        versions.sort();
        let newest: Vec<String> = versions
            .iter()
            .rev()
            .take(5)
            .map(|(_, s)| s.clone())
            .collect();
        return Err(at_repo(Kind::NoMatch {
            chart: chart.into(),
            requirement: req.as_str().into(),
            found: if newest.is_empty() {
                "none".into()
            } else {
                newest.join(", ")
            },
        }));
    };
    let entry = entries
        .iter()
        .find(|e| e.version == version)
        .expect("selected from these entries");
    let pin = pin_entry(access, input, repo, chart, entry)?;
    if pin.stated_digest.is_none() {
        warnings.push(format!(
            "{chart} {version}: index.yaml states no digest, so the archive is unverified: its sha256 in stack.lock is what the download hashed to, not what the repository vouches for"
        ));
    }
    Ok((pin, warnings))
}

fn pin_entry(
    access: &Access<'_>,
    input: &str,
    repo: &str,
    chart: &str,
    entry: &IndexEntry,
) -> Result<HelmPin, InputError> {
    let broken = |location, message| {
        let (chart, version) = (chart.into(), entry.version.clone());
        let kind = Kind::BadIndexEntry {
            chart,
            version,
            message,
        };
        InputError::chart(input, location, kind)
    };
    let first = entry
        .urls
        .first()
        .ok_or_else(|| broken(Location::Repository(repo.into()), None))?;
    let bad = |message: String| broken(Location::Url(redact_str(first)), Some(message));
    let mirrors = access.mirrors();
    let absolute = Url::parse(first).is_ok();
    let canonical_url = if absolute {
        // An absolute URL that points into a mirror is recorded as the upstream URL it stands for.
        mirrors.unmirror(first).unwrap_or_else(|| first.clone())
    } else {
        resolve_reference_url(repo, first).map_err(|e| bad(e.to_string()))?
    };
    let parsed = Url::parse(&canonical_url).map_err(|e| bad(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("only http and https URLs can be downloaded".into()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "credentials in a chart URL are refused (they would be written to stack.lock)".into(),
        ));
    }
    Ok(HelmPin {
        version: entry.version.clone(),
        stated_digest: entry.digest.clone(),
        canonical_url,
    })
}

/// Downloads the archive of `pin` and checks it against the index's digest. Returns the bytes and their
/// sha256.
pub async fn download(
    access: &Access<'_>,
    input: &str,
    pin: &HelmPin,
) -> Result<(Vec<u8>, String), InputError> {
    let shown = redact_str(&pin.canonical_url);
    let bytes = access
        .get(&pin.canonical_url, MAX_CHART_BYTES)
        .await
        .map_err(|err| InputError::chart(input, Location::Url(shown.clone()), Kind::Fetch(err)))?;
    let actual = digest::sha256(&bytes);
    if let Some(expected) = &pin.stated_digest {
        if *expected != actual {
            let kind = Kind::DigestMismatch {
                what: "archive",
                expected: expected.clone(),
                actual,
            };
            return Err(InputError::chart(input, Location::Url(shown), kind));
        }
    }
    Ok((bytes, actual))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"
apiVersion: v1
entries:
  alloy:
    - version: 1.1.2
      urls: [alloy-1.1.2.tgz]
      digest: E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855
    - version: 1.2.0
      urls: ["https://github.com/grafana/helm-charts/releases/download/alloy-1.2.0/alloy-1.2.0.tgz"]
    - version: 1.3.0-rc.1
      urls: [alloy-1.3.0-rc.1.tgz]
    - "garbage"
    - version: 1.1.3
    - urls: [x.tgz]
  tempo:
    - version: 1.24.1
      urls: [charts/tempo-1.24.1.tgz]
"#;

    #[test]
    fn index_entries_skip_bad_ones_with_warnings() {
        let index = RepoIndex::parse(INDEX.as_bytes()).unwrap();
        let (entries, warnings) = index.entries("alloy").unwrap();
        assert_eq!(
            entries
                .iter()
                .map(|e| e.version.as_str())
                .collect::<Vec<_>>(),
            ["1.1.2", "1.2.0", "1.3.0-rc.1", "1.1.3"]
        );
        assert_eq!(
            entries[0].digest.as_deref(),
            Some(digest::sha256(b"").as_str())
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(index.entries("nope").is_none());
    }

    #[test]
    fn json_index_is_accepted() {
        let json =
            r#"{"apiVersion":"v1","entries":{"x":[{"version":"0.1.0","urls":["x-0.1.0.tgz"]}]}}"#;
        let index = RepoIndex::parse(json.as_bytes()).unwrap();
        assert_eq!(index.entries("x").unwrap().0[0].version, "0.1.0");
        assert!(RepoIndex::parse(b"entries: [").is_err());
    }

    /// YAML merge keys in an entry are merged, as Helm's go-yaml does (the trial's anchored `name` and
    /// `urls` were read as "no download URL"); a key twice in an entry is an error, as in Helm.
    #[test]
    fn merge_keys_are_merged_and_a_key_twice_is_an_error() {
        let text = "entries:\n  podinfo:\n  - &b\n    name: podinfo\n    urls: [podinfo-1.0.0.tgz]\n    version: 1.0.0\n  - <<: *b\n    version: 1.1.0\n    urls: [podinfo-1.1.0.tgz]\n";
        let index = RepoIndex::parse(text.as_bytes()).unwrap();
        let (entries, _) = index.entries("podinfo").unwrap();
        let urls: Vec<_> = entries
            .iter()
            .map(|e| (e.version.as_str(), e.urls[0].as_str()))
            .collect();
        assert_eq!(
            urls,
            [
                ("1.0.0", "podinfo-1.0.0.tgz"),
                ("1.1.0", "podinfo-1.1.0.tgz")
            ]
        );
        let merged_urls = "entries:\n  podinfo:\n  - &b\n    name: podinfo\n    urls: [podinfo.tgz]\n    version: 1.0.0\n  - <<: *b\n    version: 1.1.0\n";
        let index = RepoIndex::parse(merged_urls.as_bytes()).unwrap();
        assert_eq!(index.entries("podinfo").unwrap().0[0].urls, ["podinfo.tgz"]);
        let twice =
            "entries:\n  podinfo:\n  - version: 1.0.0\n    version: 1.1.0\n    urls: [a.tgz]\n";
        let err = RepoIndex::parse(twice.as_bytes()).unwrap_err();
        assert!(err.contains("duplicate"), "{err}");
    }

    /// `entries:` holding a scalar is not an index (the trial's `entries: 5` was read as "no chart
    /// named x"); empty or null is an index with no charts.
    #[test]
    fn entries_that_are_a_scalar_are_an_error_and_null_is_empty() {
        for (text, says) in [
            ("entries: 5\n", "invalid type: integer `5`, expected a map"),
            (
                "entries: true\n",
                "invalid type: boolean `true`, expected a map",
            ),
            (
                "entries: oops\n",
                "invalid type: string \"oops\", expected a map",
            ),
        ] {
            let err = RepoIndex::parse(text.as_bytes()).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
        for text in [
            "entries:\n",
            "entries: ~\n",
            "entries: null\n",
            "entries: NULL\n",
        ] {
            let index = RepoIndex::parse(text.as_bytes()).unwrap();
            assert!(index.entries("x").is_none(), "{text}");
        }
    }

    #[test]
    fn urls_resolve_like_helm() {
        let r = |repo, reference| resolve_reference_url(repo, reference).unwrap();
        assert_eq!(
            r("https://charts.example/sub", "alloy-1.1.2.tgz"),
            "https://charts.example/sub/alloy-1.1.2.tgz"
        );
        assert_eq!(
            r("https://charts.example/sub/", "charts/a.tgz"),
            "https://charts.example/sub/charts/a.tgz"
        );
        assert_eq!(
            r("https://charts.example/sub?token=1", "a.tgz"),
            "https://charts.example/sub/a.tgz?token=1"
        );
        assert_eq!(
            r("https://charts.example/sub", "https://other.example/a.tgz"),
            "https://other.example/a.tgz"
        );
        assert_eq!(
            r("https://charts.example/sub", "/abs/a.tgz"),
            "https://charts.example/abs/a.tgz"
        );
        assert_eq!(
            index_url("https://charts.example/sub?x=1").unwrap(),
            "https://charts.example/sub/index.yaml?x=1"
        );
        assert_eq!(
            index_url("https://grafana.github.io/helm-charts").unwrap(),
            "https://grafana.github.io/helm-charts/index.yaml"
        );
    }

    #[test]
    fn select_uses_helm_rules_and_mirrors() {
        let store = crate::store::Store::at(std::env::temp_dir());
        let flags =
            vec!["https://grafana.github.io/helm-charts=http://127.0.0.1:9/mirror".to_string()];
        let mirrors = super::super::Mirrors::new(&Default::default(), &flags).unwrap();
        let access = Access::Offline {
            store: &store,
            mirrors: &mirrors,
        };
        let index = RepoIndex::parse(INDEX.as_bytes()).unwrap();
        let repo = "https://grafana.github.io/helm-charts";
        let req = VersionReq::parse("1.1.2").unwrap();
        let (pin, _) = select(&access, "alloy", repo, "alloy", &index, &req).unwrap();
        assert_eq!(pin.version, "1.1.2");
        assert_eq!(
            pin.canonical_url,
            "https://grafana.github.io/helm-charts/alloy-1.1.2.tgz"
        );
        assert_eq!(
            mirrors.http(&pin.canonical_url).unwrap().url.as_str(),
            "http://127.0.0.1:9/mirror/alloy-1.1.2.tgz"
        );
        let (pin, _) = select(
            &access,
            "alloy",
            repo,
            "alloy",
            &index,
            &VersionReq::parse("^1").unwrap(),
        )
        .unwrap();
        assert_eq!(pin.version, "1.2.0");
        assert!(pin.canonical_url.starts_with("https://github.com/"));
        let err = select(
            &access,
            "alloy",
            repo,
            "alloy",
            &index,
            &VersionReq::parse(">=2").unwrap(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("newest versions: 1.3.0-rc.1, 1.2.0, 1.1.3, 1.1.2"),
            "{err}"
        );
        let err = select(&access, "alloy", repo, "nope", &index, &req).unwrap_err();
        assert!(
            err.to_string().contains("has no chart named `nope`"),
            "{err}"
        );
        // An absolute URL into the mirror is recorded as the upstream URL.
        let mirrored = IndexEntry {
            version: "9.9.9".into(),
            urls: vec!["http://127.0.0.1:9/mirror/t-9.9.9.tgz".into()],
            digest: None,
        };
        let pin = pin_entry(&access, "t", repo, "t", &mirrored).unwrap();
        assert_eq!(
            pin.canonical_url,
            "https://grafana.github.io/helm-charts/t-9.9.9.tgz"
        );
    }

    /// The synthetic index of tests/fixtures/helm-index/oddities.yaml: the shapes of Helm's own fixtures.
    #[test]
    fn index_oddities_of_helms_fixtures() {
        let path = format!(
            "{}/tests/fixtures/helm-index/oddities.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        let index = RepoIndex::parse(&fs_err::read(&path).unwrap()).unwrap();
        let (entries, warnings) = index.entries("several-urls").unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0].urls.len(),
            2,
            "every url is kept; Helm downloads urls[0]"
        );
        for e in &entries {
            let digest = e.digest.as_deref().unwrap();
            assert!(
                digest.starts_with("sha256:") && digest.len() == 71,
                "{digest}"
            );
        }
        let (no_urls, why) = index.entries("no-urls").unwrap();
        assert_eq!(no_urls.len(), 1, "{why:?}");
        assert!(
            no_urls[0].urls.is_empty(),
            "an entry without urls parses; selecting it fails by name"
        );
        assert!(index.entries("serverInfo").is_none());
        let twice = RepoIndex::parse(
            b"entries:\n  x:\n  - {version: 1.0.0, urls: [a.tgz]}\n  - {version: 1.0.0, urls: [b.tgz]}\n",
        )
        .unwrap();
        let (entries, warnings) = twice.entries("x").unwrap();
        assert_eq!(entries[0].urls, ["a.tgz"]);
        assert!(warnings[0].contains("more than once"), "{warnings:?}");
    }
}
