//! Sticky planning: which locked entries keep their pin without the network, which are fetched again at
//! the locked version, and which are resolved anew.

use std::collections::BTreeMap;
use std::path::Path;

use super::upstream::Upstream;
use super::vendor::disk_blake3;
use super::{Options, ResolveError, Run};
use crate::chart_values;
use crate::lock::{fingerprint, vendor_path, Lock, LockedChart, LockedDashboard};
use crate::manifest::{ChartSource, ChartSpec, DashboardSource, DashboardSpec, Manifest, Name};
use crate::version_req::VersionReq;

/// What a chart needs in this run.
pub(super) enum ChartPlan {
    /// Sticky: kept as pinned, without the network. Flux pulls a chart by digest and the values check
    /// reads vendor/charts/ (or the cached archive), so a cold cache alone is no reason to download;
    /// `--check --remote` is how a pin is re-verified against upstream.
    Keep(Box<LockedChart>),
    /// Sticky, but the values check would find the chart's defaults nowhere (neither
    /// vendor/charts/<name>/ at the locked version nor the archive in the content cache, as on a fresh
    /// clone): the locked version is fetched again and must be the locked bytes, so `stack lock`
    /// restores what `stack build` checks values against without moving the pin.
    Refetch(Box<LockedChart>),
    Resolve,
}

/// What a dashboard needs in this run.
pub(super) enum DashPlan {
    /// Sticky, and its bytes are at hand (vendor/, the content cache) or not needed.
    Keep(LockedDashboard),
    Resolve,
    /// Sticky, but its bytes are nowhere: fetched again, they must be the locked ones.
    Refetch(LockedDashboard),
}

/// The vendored dashboards' blake3 as found on disk, by input.
pub(super) type OnDisk = BTreeMap<Name, Option<String>>;

/// Plans each chart of stack.toml: a pin that answers its input (asked every time: a hand edit of
/// stack.lock leaves the fingerprint matching) is kept, or fetched again for the values check.
pub(super) fn charts<U: Upstream>(
    run: &Run<'_, U>,
    root: &Path,
    manifest: &Manifest,
    options: &Options,
) -> Result<BTreeMap<Name, ChartPlan>, ResolveError> {
    let store = run.upstream.store();
    let mut plans = BTreeMap::new();
    for (name, spec) in &manifest.charts {
        let plan = match run.old_chart(name) {
            Some(locked) if locked.answers(spec).is_ok() && !options.update.covers(name) => {
                if !run.upstream.online() || defaults_at_hand(root, locked, store)? {
                    ChartPlan::Keep(Box::new(locked.clone()))
                } else {
                    ChartPlan::Refetch(Box::new(locked.clone()))
                }
            }
            _ => ChartPlan::Resolve,
        };
        plans.insert(name.clone(), plan);
    }
    Ok(plans)
}

/// Plans each dashboard of stack.toml; also returns what vendor/ holds for each.
pub(super) fn dashboards<U: Upstream>(
    run: &Run<'_, U>,
    root: &Path,
    manifest: &Manifest,
    fast: bool,
    options: &Options,
) -> Result<(BTreeMap<Name, DashPlan>, OnDisk), ResolveError> {
    let store = run.upstream.store();
    let mut disk = BTreeMap::new();
    let mut plans = BTreeMap::new();
    for (name, spec) in &manifest.dashboards {
        let on_disk = disk_blake3(root, &vendor_path(name))?;
        let kept = run
            .old_dashboard(name)
            .and_then(|l| sticky_dashboard(l, spec, fast));
        let plan = match kept {
            Some(locked) if !options.update.covers(name) => {
                if on_disk.as_deref() == Some(locked.blake3.as_str())
                    || options.unshipped.contains(name)
                    || store.contains(&locked.blake3)?
                {
                    DashPlan::Keep(locked)
                } else {
                    DashPlan::Refetch(locked)
                }
            }
            _ => DashPlan::Resolve,
        };
        disk.insert(name.clone(), on_disk);
        plans.insert(name.clone(), plan);
    }
    Ok((plans, disk))
}

/// Whether `old` was written for exactly these inputs: then every pin answers its input without asking
/// each one (the fingerprint's fast path, which also keeps pins of locks that did not record a request).
pub(super) fn fingerprint_holds(old: Option<&Lock>, manifest: &Manifest) -> bool {
    old.is_some_and(|l| l.fingerprint() == fingerprint(manifest))
}

/// A dashboard pin that still answers `spec`, carrying the request it answers (so a lock from before
/// requests were recorded gains them when it is rewritten). With `fast` (the fingerprint holds) only the
/// recorded request may differ: the fingerprint already covers it.
fn sticky_dashboard(
    locked: &LockedDashboard,
    spec: &DashboardSpec,
    fast: bool,
) -> Option<LockedDashboard> {
    match locked.answers(spec) {
        Ok(()) => {}
        Err(m) if fast && m.field == "revision" => {}
        Err(_) => return None,
    }
    let mut kept = locked.clone();
    kept.requested_revision = requested_revision(spec);
    Some(kept)
}

/// The grafana.com revision stack.toml asks for, if any.
pub(super) fn requested_revision(spec: &DashboardSpec) -> Option<u64> {
    match spec.source {
        DashboardSource::GrafanaCom { revision, .. } => revision,
        DashboardSource::Url { .. } => None,
    }
}

/// The requirement that only `version` meets (a locked version is always a valid one).
/// How many requests a chart makes one after another when nothing is cached: its rank for a slot
/// among the requests in flight (`pool::longest_first`).
pub(super) fn chart_chain(spec: &ChartSpec, req: &VersionReq) -> u32 {
    match &spec.source {
        // The manifest, then the layer; a range first lists the tags.
        ChartSource::Oci { .. } if req.exact().is_some() => 2,
        ChartSource::Oci { .. } => 3,
        // index.yaml (shared by the repository's charts), then the archive.
        ChartSource::Repo { .. } => 2,
    }
}

/// Same for a dashboard: a URL or a pinned grafana.com revision is one download; the latest revision
/// is first looked up.
pub(super) fn dashboard_chain(spec: &DashboardSpec, refetch: Option<&LockedDashboard>) -> u32 {
    match &spec.source {
        DashboardSource::GrafanaCom { revision, .. }
            if revision.or(refetch.and_then(|l| l.revision)).is_none() =>
        {
            2
        }
        DashboardSource::GrafanaCom { .. } | DashboardSource::Url { .. } => 1,
    }
}

pub(super) fn exactly(version: &str) -> VersionReq {
    VersionReq::parse(&format!("={version}")).expect("a locked version is a version")
}

/// Whether the values check can read a locked chart's defaults: its archive is in the content cache, or
/// vendor/charts/<name>/ holds the locked version.
fn defaults_at_hand(
    root: &Path,
    locked: &LockedChart,
    store: &crate::store::Store,
) -> Result<bool, ResolveError> {
    if store.contains(&locked.blake3)? {
        return Ok(true);
    }
    let vendored = chart_values::read_vendored(root, locked.name.as_str())
        .ok()
        .flatten()
        .and_then(|files| chart_values::Defaults::from_files(&files).ok());
    Ok(vendored.is_some_and(|d| d.version == locked.version))
}
