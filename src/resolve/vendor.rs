//! vendor/: which files to write back or delete, the vendored chart defaults, the offline check of
//! vendored files, and the change table printed after `stack lock`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use super::plan::OnDisk;
use super::{Options, ResolveError};
use crate::chart_values;
use crate::digest;
use crate::lock::{Lock, LockedChart, LockedDashboard};
use crate::manifest::Name;
use crate::store::Store;
use crate::transaction::Staging;

/// One line of the change table printed after `stack lock`, like `cargo update`'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Added {
        name: String,
        what: String,
    },
    Updated {
        name: String,
        what: String,
    },
    Removed {
        name: String,
        what: String,
    },
    /// A vendored file was missing or edited and is written back from the cache; the lock is unchanged.
    Restored {
        name: String,
        path: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (verb, name, what) = match self {
            Change::Added { name, what } => ("Adding", name, what),
            Change::Updated { name, what } => ("Updating", name, what),
            Change::Removed { name, what } => ("Removing", name, what),
            Change::Restored { name, path } => ("Restoring", name, path),
        };
        write!(f, "{verb:>12} {name} {what}")
    }
}

/// What vendor/ needs after a run.
#[derive(Debug, Default)]
pub(super) struct VendorDiff {
    /// Files to (re)write, by path relative to the stack root.
    pub(super) writes: BTreeMap<String, Vec<u8>>,
    /// Files to delete.
    pub(super) deletes: BTreeSet<String>,
    /// Vendored dashboards written back unchanged from the lock.
    pub(super) restored: Vec<Change>,
}

/// The vendored dashboards: written where they differ on disk from the lock (from `fetched`, or the
/// content cache), deleted where their input left stack.toml.
pub(super) fn dashboards(
    root: &Path,
    old: Option<&Lock>,
    lock: &Lock,
    disk: &OnDisk,
    mut fetched: BTreeMap<Name, Vec<u8>>,
    store: &Store,
    options: &Options,
) -> Result<VendorDiff, ResolveError> {
    let mut writes = BTreeMap::new();
    let mut deletes = BTreeSet::new();
    let mut restored = Vec::new();
    for (name, entry) in lock.dashboards() {
        let on_disk = disk.get(name).cloned().flatten();
        if on_disk.as_deref() == Some(entry.blake3.as_str()) {
            continue;
        }
        // Not shipped and not on disk: the pin is enough; vendor/ holds what the build ships.
        let unshipped_and_absent = options.unshipped.contains(name) && on_disk.is_none();
        let bytes = match fetched.remove(name) {
            Some(b) => b,
            None if unshipped_and_absent => continue,
            None => store
                .get(&entry.blake3)?
                .ok_or_else(|| ResolveError::Offline {
                    kind: "dashboard",
                    input: name.to_string(),
                    why: format!(
                        "its content (blake3 {}) is in neither vendor/ nor the content cache",
                        entry.blake3
                    ),
                })?,
        };
        if old.and_then(|o| o.dashboards().get(name)) == Some(entry) {
            restored.push(Change::Restored {
                name: name.to_string(),
                path: entry.path.clone(),
            });
        }
        writes.insert(entry.path.clone(), bytes);
    }
    if let Some(old) = old {
        for (name, entry) in old.dashboards() {
            let kept = lock
                .dashboards()
                .get(name)
                .is_some_and(|d| d.path == entry.path);
            if !kept && !writes.contains_key(&entry.path) && root.join(&entry.path).exists() {
                deletes.insert(entry.path.clone());
            }
        }
    }
    deletes.extend(stray_dashboards(root, lock)?);
    Ok(VendorDiff {
        writes,
        deletes,
        restored,
    })
}

/// Regular files in vendor/dashboards/ that no lock entry names (left by hand, or by an older stack):
/// `stack lock` owns that directory, so it removes them, as `lock --check` asks. Symlinks are left for
/// the check to report (they are never followed, nor deleted through).
fn stray_dashboards(root: &Path, lock: &Lock) -> Result<BTreeSet<String>, ResolveError> {
    let named: BTreeSet<&str> = lock
        .dashboards()
        .values()
        .map(|d| d.path.as_str())
        .collect();
    let dir = root.join("vendor/dashboards");
    let entries = match fs_err::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(err) => {
            return Err(ResolveError::Io {
                path: "vendor/dashboards".into(),
                err,
            })
        }
    };
    let mut stray = BTreeSet::new();
    for entry in entries.flatten() {
        let rel = format!("vendor/dashboards/{}", entry.file_name().to_string_lossy());
        let regular = entry.file_type().is_ok_and(|t| t.is_file());
        if regular && !named.contains(rel.as_str()) {
            stray.insert(rel);
        }
    }
    Ok(stray)
}

/// Stages a chart's `vendor/charts/<name>/` files that differ on disk, from its archive just fetched
/// (see [`super::Options::staging`]), off the async threads. Returns the archive's files (when they
/// are the chart the entry names) for [`chart_defaults`], which then need not unpack the archive a
/// second time. Failures are left to the commit, which stages what it writes again and reports them
/// with their context.
pub(super) async fn stage_chart(
    root: &Path,
    staging: Arc<Staging>,
    store: &Store,
    name: &Name,
    entry: &LockedChart,
) -> Option<chart_values::ChartFiles> {
    let (root, name, store) = (root.to_path_buf(), name.to_string(), store.clone());
    let (source, version) = (entry.source.clone(), entry.version.clone());
    let blake3 = entry.blake3.to_string();
    let stage = move || -> Option<chart_values::ChartFiles> {
        let archive = store.get(&blake3).ok()??;
        let files = chart_values::from_archive(&archive).ok()?;
        chart_values::check_identity(&files, expected_chart_name(&source), &version).ok()?;
        if let Ok(have) = vendored(&root, &name) {
            let dir = format!("{}/{name}", chart_values::VENDOR_DIR);
            let differ = files.iter().filter(|(r, c)| have.get(*r) != Some(*c));
            let _ =
                staging.stage_all(differ.map(|(rel, c)| (format!("{dir}/{rel}"), c.as_slice())));
        }
        Some(files)
    };
    crate::source::off_runtime(stage).await
}

/// Stages a fetched dashboard's vendored file unless vendor/ already holds these bytes, off the async
/// threads.
pub(super) async fn stage_dashboard(
    root: &Path,
    staging: Arc<Staging>,
    entry: &LockedDashboard,
    bytes: &[u8],
) {
    let (root, path, bytes) = (root.to_path_buf(), entry.path.clone(), bytes.to_vec());
    let blake3 = entry.blake3.to_string();
    let stage = move || {
        let on_disk = disk_blake3(&root, &path).ok().flatten();
        if on_disk.as_deref() != Some(blake3.as_str()) {
            let _ = staging.stage(&path, &bytes);
        }
    };
    crate::source::off_runtime(stage).await;
}

/// blake3 of a vendored file on disk, if it exists.
pub(super) fn disk_blake3(root: &Path, rel: &str) -> Result<Option<String>, ResolveError> {
    match crate::contain::read(root, rel) {
        Ok(bytes) => Ok(Some(digest::blake3(&bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ResolveError::Io {
            path: rel.to_string(),
            err: e,
        }),
    }
}

/// `vendor/charts/<name>/`: each locked chart's metadata and defaults (and its subcharts'), taken from
/// its archive in the content store, for `stack build`'s values check. Files of removed charts, and files
/// a chart no longer has, are deleted; a chart whose archive is not cached keeps what is vendored. A chart
/// whose pin did not move but whose vendored files are written or deleted is reported as restored.
///
/// `unpacked`: archives the input tasks have already unpacked (and found to be the chart the entry
/// names), by input with the archive's blake3; the others are read from the store and unpacked here.
pub(super) fn chart_defaults(
    root: &Path,
    old: Option<&Lock>,
    lock: &Lock,
    store: &Store,
    unpacked: &BTreeMap<Name, (String, chart_values::ChartFiles)>,
    diff: &mut VendorDiff,
    warnings: &mut Vec<String>,
) -> Result<(), ResolveError> {
    let base = root.join(chart_values::VENDOR_DIR);
    let on_disk: BTreeSet<String> = match fs_err::read_dir(&base) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => BTreeSet::new(),
    };
    for (name, entry) in lock.charts() {
        let early = unpacked
            .get(name)
            .filter(|(b, _)| b == entry.blake3.as_str());
        if let Some((_, files)) = early {
            let have = vendored(root, name.as_str())?;
            vendor_chart(name, entry, old, files, &have, diff);
            continue;
        }
        let Some(bytes) = store.get(&entry.blake3)? else {
            if !on_disk.contains(name.as_str()) {
                warnings.push(format!(
                    "chart `{name}`: its archive is not in the content cache, so its default values are not vendored and `stack build` cannot check the values given to it (`stack lock` without --offline fetches the pinned archive)"
                ));
            }
            continue;
        };
        // An archive whose defaults cannot be read is still what the lock pins (Flux and Helm judge
        // it); the values check then reports the chart as not checked.
        let files = match chart_values::from_archive(&bytes) {
            Ok(files) => files,
            Err(err) => {
                warnings.push(format!(
                    "chart `{name}`: its default values are not vendored: {err}"
                ));
                continue;
            }
        };
        chart_values::check_identity(&files, expected_chart_name(&entry.source), &entry.version)
            .map_err(|why| ResolveError::NotTheChart {
                input: name.to_string(),
                origin: entry.source.clone(),
                version: entry.version.clone(),
                why,
            })?;
        let have = vendored(root, name.as_str())?;
        vendor_chart(name, entry, old, &files, &have, diff);
    }
    for name in on_disk
        .iter()
        .filter(|n| !lock.charts().keys().any(|k| k.as_str() == n.as_str()))
    {
        for rel in vendored(root, name)?.keys() {
            diff.deletes
                .insert(format!("{}/{name}/{rel}", chart_values::VENDOR_DIR));
        }
    }
    Ok(())
}

/// Adds to `diff` what turns a chart's vendored files (`have`) into its archive's (`files`); a chart
/// whose pin did not move is then reported as restored.
fn vendor_chart(
    name: &Name,
    entry: &LockedChart,
    old: Option<&Lock>,
    files: &chart_values::ChartFiles,
    have: &chart_values::ChartFiles,
    diff: &mut VendorDiff,
) {
    let dir = format!("{}/{name}", chart_values::VENDOR_DIR);
    if diff_chart_files(&dir, files, have, diff)
        && old.and_then(|o| o.charts().get(name)) == Some(entry)
    {
        diff.restored.push(Change::Restored {
            name: name.to_string(),
            path: format!("{dir}/"),
        });
    }
}

/// What vendor/charts/<name>/ holds (nothing when it is absent).
fn vendored(root: &Path, name: &str) -> Result<chart_values::ChartFiles, ResolveError> {
    Ok(chart_values::read_vendored(root, name)
        .map_err(|err| ResolveError::Io {
            path: format!("{}/{name}", chart_values::VENDOR_DIR),
            err: err.into(),
        })?
        .unwrap_or_default())
}

/// Adds to `diff` the writes and deletions that turn `have` (a chart's vendored files under `dir`) into
/// `files`; whether there were any.
fn diff_chart_files(
    dir: &str,
    files: &chart_values::ChartFiles,
    have: &chart_values::ChartFiles,
    diff: &mut VendorDiff,
) -> bool {
    let mut touched = false;
    for (rel, content) in files {
        if have.get(rel) != Some(content) {
            diff.writes.insert(format!("{dir}/{rel}"), content.clone());
            touched = true;
        }
    }
    for rel in have.keys().filter(|r| !files.contains_key(*r)) {
        diff.deletes.insert(format!("{dir}/{rel}"));
        touched = true;
    }
    touched
}

/// The chart name a locked source asks for: after `#` for a Helm repository (`<repo>#<chart>`), the last
/// path segment for OCI (`oci://host/path/<chart>`), as Helm names a chart it pulls.
fn expected_chart_name(source: &str) -> &str {
    match source.rsplit_once('#') {
        Some((_, chart)) => chart,
        None => source.rsplit('/').next().unwrap_or(source),
    }
}

fn dash_label(d: &LockedDashboard) -> String {
    match d.revision {
        Some(r) => format!("revision {r} {:?}", d.title),
        None => format!("{:?}", d.title),
    }
}

/// The change table: what differs between two locks, charts first, each sorted by name.
pub fn changes(old: Option<&Lock>, new: &Lock) -> Vec<Change> {
    let empty = Lock::default();
    let old = old.unwrap_or(&empty);
    let mut out = Vec::new();
    for (name, n) in new.charts() {
        match old.charts().get(name) {
            None => out.push(Change::Added {
                name: name.to_string(),
                what: n.version.clone(),
            }),
            Some(o) if o == n => {}
            Some(o) => {
                out.push(Change::Updated {
                    name: name.to_string(),
                    what: chart_change(o, n),
                });
            }
        }
    }
    for (name, o) in old
        .charts()
        .iter()
        .filter(|(n, _)| !new.charts().contains_key(*n))
    {
        out.push(Change::Removed {
            name: name.to_string(),
            what: o.version.clone(),
        });
    }
    for (name, n) in new.dashboards() {
        match old.dashboards().get(name) {
            None => out.push(Change::Added {
                name: name.to_string(),
                what: dash_label(n),
            }),
            Some(o) if o == n => {}
            Some(o) => {
                let what = match (o.revision, n.revision) {
                    (Some(a), Some(b)) if a != b => {
                        format!("revision {a} -> revision {b} {:?}", n.title)
                    }
                    _ if o.source != n.source => {
                        format!("{} (source {} -> {})", dash_label(n), o.source, n.source)
                    }
                    _ if o.blake3 != n.blake3 => format!("{} (content changed)", dash_label(n)),
                    _ if o.title != n.title => {
                        format!("{} (title was {:?})", dash_label(n), o.title)
                    }
                    _ => dash_label(n),
                };
                out.push(Change::Updated {
                    name: name.to_string(),
                    what,
                });
            }
        }
    }
    for (name, o) in old
        .dashboards()
        .iter()
        .filter(|(n, _)| !new.dashboards().contains_key(*n))
    {
        out.push(Change::Removed {
            name: name.to_string(),
            what: dash_label(o),
        });
    }
    out
}

/// The offline part of `--check`: vendored files that differ from the lock, and missing ones of the
/// dashboards the build ships (a dashboard in `unshipped` needs no vendored bytes; present, they must
/// still match).
pub fn vendor_mismatches(
    root: &Path,
    lock: &Lock,
    unshipped: &BTreeSet<Name>,
) -> Result<Vec<String>, ResolveError> {
    let mut out = Vec::new();
    for (name, entry) in lock.dashboards() {
        match disk_blake3(root, &entry.path)? {
            None if unshipped.contains(name) => {}
            None => out.push(format!(
                "dashboard `{name}`: {} is missing (the build ships it); run `stack lock` to restore its pinned bytes",
                entry.path
            )),
            Some(b) if b != entry.blake3 => out.push(format!(
                "dashboard `{name}`: {} does not match stack.lock (blake3 {b}, the lock has {})",
                entry.path, entry.blake3
            )),
            Some(_) => {}
        }
    }
    Ok(out)
}

/// What changed in a chart's entry, for the change table: the first of version, source, requirement,
/// the unverified mark and the digest that differs.
fn chart_change(o: &LockedChart, n: &LockedChart) -> String {
    if o.version != n.version {
        format!("{} -> {}", o.version, n.version)
    } else if o.source != n.source {
        format!("{} (source {} -> {})", n.version, o.source, n.source)
    } else if o.requirement != n.requirement {
        format!(
            "{} (requirement {:?} -> {:?})",
            n.version, o.requirement, n.requirement
        )
    } else if o.digest == n.digest && o.unverified != n.unverified {
        let now = match n.unverified {
            true => "index.yaml no longer states its digest: unverified",
            false => "index.yaml now states its digest: verified",
        };
        format!("{} ({now})", n.version)
    } else {
        format!("{} (digest {} -> {})", n.version, o.digest, n.digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A locked chart `alloy` 1.1.2 whose archive (Chart.yaml and values.yaml) is in `store`.
    fn alloy_in(store: &Store) -> LockedChart {
        let archive = chart_values::tests::tgz(&[
            ("alloy/Chart.yaml", b"name: alloy\nversion: 1.1.2\n"),
            ("alloy/values.yaml", b"replicas: 1\n"),
        ]);
        LockedChart {
            name: "alloy".parse().unwrap(),
            source: "https://charts.example/helm#alloy".into(),
            requirement: "~1.1".into(),
            version: "1.1.2".into(),
            digest: crate::digest::sha256(&archive).parse().unwrap(),
            layer_digest: None,
            layer_media_type: None,
            url: None,
            unverified: false,
            blake3: store.put(&archive).unwrap().parse().unwrap(),
        }
    }

    #[test]
    fn the_vendor_diff_uses_the_archives_the_tasks_unpacked() {
        let (root, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        fs_err::write(root.path().join("stack.toml"), "").unwrap();
        let store = Store::at(cache.path().to_path_buf());
        let entry = alloy_in(&store);
        let name = entry.name.clone();
        let lock = Lock::new(String::new(), [entry.clone()], []).unwrap();
        let guard = crate::transaction::guard(root.path()).unwrap();
        let txn = crate::transaction::Transaction::begin(&guard).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let staged = rt.block_on(stage_chart(
            root.path(),
            txn.staging(),
            &store,
            &name,
            &entry,
        ));
        let unpacked = BTreeMap::from([(name, (entry.blake3.to_string(), staged.unwrap()))]);

        for (early, unpacks) in [(unpacked, 0), (BTreeMap::new(), 1)] {
            let (mut diff, mut warnings) = (VendorDiff::default(), Vec::new());
            let before = chart_values::unpacked();
            chart_defaults(
                root.path(),
                None,
                &lock,
                &store,
                &early,
                &mut diff,
                &mut warnings,
            )
            .unwrap();
            assert_eq!(chart_values::unpacked() - before, unpacks, "{early:?}");
            let written: Vec<&String> = diff.writes.keys().collect();
            assert_eq!(
                written,
                [
                    "vendor/charts/alloy/Chart.yaml",
                    "vendor/charts/alloy/values.yaml"
                ]
            );
            assert!(warnings.is_empty(), "{warnings:?}");
        }
    }

    #[test]
    fn change_table_shows_old_and_new() {
        let name: Name = "loki".parse().unwrap();
        let chart = LockedChart {
            name: name.clone(),
            source: "oci://ghcr.io/grafana/helm-charts/loki".into(),
            requirement: "^6".into(),
            version: "6.48.0".into(),
            digest: crate::digest::sha256(b"a").parse().unwrap(),
            layer_digest: None,
            layer_media_type: None,
            url: None,
            unverified: false,
            blake3: crate::digest::blake3(b"b").parse().unwrap(),
        };
        let with = |edit: fn(&mut LockedChart)| {
            let mut c = chart.clone();
            edit(&mut c);
            Lock::new(String::new(), [c], []).unwrap()
        };
        let old = with(|_| {});
        let new = with(|c| c.version = "6.49.0".into());
        assert_eq!(
            changes(Some(&old), &new)[0].to_string(),
            "    Updating loki 6.48.0 -> 6.49.0"
        );
        let req = with(|c| c.requirement = "6.48.0".into());
        assert_eq!(
            changes(Some(&old), &req)[0].to_string(),
            "    Updating loki 6.48.0 (requirement \"^6\" -> \"6.48.0\")"
        );
        // The trial saw `(digest X -> X)` when only the unverified mark went away.
        let unverified = with(|c| c.unverified = true);
        assert_eq!(
            changes(Some(&unverified), &old)[0].to_string(),
            "    Updating loki 6.48.0 (index.yaml now states its digest: verified)"
        );
    }
}
