//! Resolution: from stack.toml and the previous stack.lock to the next lock and vendor/ contents.
//!
//! Pins are sticky, like Cargo.lock: an entry whose source and requirement (or grafana.com revision) are
//! unchanged keeps its pin without asking the network, unless `--update` names it. Its bytes are then
//! needed only when they are in neither the content cache nor vendor/; fetched again, they must hash to
//! what the lock says, or resolution stops: content that changes upstream under the same version is a red
//! flag to report, never to re-pin silently.
//!
//! Each input that needs the network is one task, all of them at once (`--jobs` bounds the requests in
//! flight, not the inputs), run straight through: *resolve* (tags, index.yaml, grafana.com metadata: which version), then *download*
//! (the bytes, only those not cached), with no barrier between inputs. Results are gathered into
//! BTreeMaps, so nothing printed or written depends on timing.

mod charts;
mod dashboards;
mod error;
#[cfg(test)]
mod memory;
mod plan;
mod pool;
mod remote;
#[cfg(test)]
mod tests;
mod upstream;
#[cfg(test)]
mod upstream_tests;
mod vendor;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use crate::lock::{fingerprint, Lock, LockedChart, LockedDashboard};
use crate::manifest::{Manifest, Name};
use crate::source::Access;
use crate::transaction::Staging;

pub use error::ResolveError;
pub use remote::remote_check;
pub use vendor::{changes, vendor_mismatches, Change};

use plan::{ChartPlan, DashPlan};
use pool::{all_at_once, longest_first, progress_bar, ChainedTask, Key};
use upstream::{Live, Upstream};

/// Which pins may move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Only entries whose requirement changed (plain `stack lock`).
    Sticky,
    /// Every entry (`--update`).
    All,
    /// The named entries (`--update NAME…`), charts or dashboards.
    Only(BTreeSet<String>),
}

impl Update {
    pub fn from_flag(flag: &Option<Vec<String>>) -> Update {
        match flag {
            None => Update::Sticky,
            Some(names) if names.is_empty() => Update::All,
            Some(names) => Update::Only(names.iter().cloned().collect()),
        }
    }

    fn covers(&self, name: &Name) -> bool {
        match self {
            Update::Sticky => false,
            Update::All => true,
            Update::Only(names) => names.contains(name.as_str()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub update: Update,
    /// Draw progress bars (on a terminal, without --quiet).
    pub progress: bool,
    /// Locked dashboards the build does not ship with the current settings (their `when` does not
    /// hold). They stay pinned, but their vendored bytes are not needed: a missing file of theirs is not
    /// fetched again. A stack ships only what it has (this repository leaves the community dashboards
    /// off, so a fresh clone builds and re-locks offline without vendor/).
    pub unshipped: BTreeSet<Name>,
    /// `--accept-changed NAME…`: inputs whose upstream content may differ from the lock under the same
    /// version, tag or revision; they are re-pinned to what upstream serves now.
    pub accept_changed: BTreeSet<String>,
    /// The transaction that will write vendor/, when there is one: each input's task stages (writes and
    /// flushes) its vendor/ files there as soon as its bytes are in, so the commit after the last answer
    /// only checks and renames (issue 15). Only a head start: what is written is decided after every
    /// input is resolved, as without it.
    pub staging: Option<Arc<Staging>>,
}

/// What `stack lock` will write.
#[derive(Debug)]
pub struct Outcome {
    pub lock: Lock,
    /// vendor/ files to (re)write, by path relative to the stack root.
    pub writes: BTreeMap<String, Vec<u8>>,
    /// vendor/ files to delete (inputs removed from stack.toml).
    pub deletes: BTreeSet<String>,
    pub changes: Vec<Change>,
    pub warnings: Vec<String>,
}

/// Shared state of one run.
struct Run<'a, U: Upstream> {
    upstream: &'a U,
    old: Option<&'a Lock>,
    warnings: upstream::Warnings,
    /// See [`Options::accept_changed`].
    accept_changed: BTreeSet<String>,
    /// Chart archives the input tasks unpacked while staging their vendored defaults, by input with the
    /// archive's blake3: the vendor/ diff after the last answer uses them instead of unpacking each
    /// archive again.
    unpacked: RefCell<BTreeMap<Name, (String, crate::chart_values::ChartFiles)>>,
}

/// A digest as stack.lock records it; the sources and the store produce canonical ones, so this fails only
/// on an upstream that states something else.
fn typed<T: TryFrom<String, Error = String>>(
    input: &Name,
    value: String,
) -> Result<T, ResolveError> {
    T::try_from(value).map_err(|why| ResolveError::Digest {
        input: input.to_string(),
        why,
    })
}

/// Stores `bytes` in the content cache off the async threads (see [`crate::source::off_runtime`]):
/// their blake3, and the bytes back.
async fn put_off_runtime(
    store: &crate::store::Store,
    bytes: Vec<u8>,
) -> Result<(String, Vec<u8>), ResolveError> {
    let store = store.clone();
    let put = move || store.put(&bytes).map(|blake3| (blake3, bytes));
    Ok(crate::source::off_runtime(put).await?)
}

/// Whether the content cache holds an intact copy of `blake3`, read off the async threads.
async fn cached_off_runtime(
    store: &crate::store::Store,
    blake3: &str,
) -> Result<bool, ResolveError> {
    let (store, blake3) = (store.clone(), blake3.to_string());
    Ok(crate::source::off_runtime(move || store.contains(&blake3)).await?)
}

/// Same version (or revision), other bytes: the red flag.
fn changed(
    kind: &'static str,
    input: &Name,
    pinned: String,
    locked: String,
    fetched: String,
) -> ResolveError {
    ResolveError::ContentChanged {
        kind,
        input: input.to_string(),
        pinned,
        locked,
        fetched,
    }
}

impl<'a, U: Upstream> Run<'a, U> {
    fn new(upstream: &'a U, old: Option<&'a Lock>, options: &Options) -> Run<'a, U> {
        Run {
            upstream,
            old,
            warnings: RefCell::default(),
            accept_changed: options.accept_changed.clone(),
            unpacked: RefCell::default(),
        }
    }

    /// Warnings gathered so far go to stderr when the lock fails, since no outcome will carry them
    /// (a skipped index entry often explains the failure).
    /// A sticky pin's archive, fetched again only for the values check, could not be had (no network, a
    /// registry down): the pin is kept as it is, and the build will say the values were not checked.
    /// Changed content is never excused this way (the caller passes only other errors).
    fn refetch_failed(&self, name: &Name, err: &ResolveError) {
        let first = err.to_string();
        let first = first.lines().next().unwrap_or_default();
        self.warnings.borrow_mut().push(format!(
            "chart `{name}`: kept as pinned; its archive could not be fetched again for the values check ({first})"
        ));
    }

    fn print_warnings(&self) {
        for w in self.warnings.borrow().iter() {
            eprintln!("warning: {w}");
        }
    }

    fn accepts_changed(&self, name: &Name) -> bool {
        self.accept_changed.contains(name.as_str())
    }

    fn old_chart(&self, name: &Name) -> Option<&'a LockedChart> {
        self.old.and_then(|l| l.charts().get(name))
    }

    fn old_dashboard(&self, name: &Name) -> Option<&'a LockedDashboard> {
        self.old.and_then(|l| l.dashboards().get(name))
    }
}

/// Checks `--update` names against stack.toml.
fn check_update(
    manifest: &Manifest,
    update: &Update,
    accept: &std::collections::BTreeSet<String>,
) -> Result<(), ResolveError> {
    if let Update::Only(names) = update {
        let unknown: Vec<String> = names
            .iter()
            .filter(|n| {
                let known = |s: &str| s == n.as_str();
                !manifest.charts.keys().any(|k| known(k.as_str()))
                    && !manifest.dashboards.keys().any(|k| known(k.as_str()))
            })
            .cloned()
            .collect();
        if !unknown.is_empty() {
            // The names come from --update or --accept-changed; say which flag each came from.
            let accepted = |n: &String| accept.contains(n);
            let names = unknown
                .into_iter()
                .map(|n| {
                    let flag = if accepted(&n) {
                        "--accept-changed"
                    } else {
                        "--update"
                    };
                    format!("{flag} {n}")
                })
                .collect();
            return Err(ResolveError::UnknownUpdate { names });
        }
    }
    Ok(())
}

/// Computes the next lock and vendor/ changes. Writes nothing but the content cache.
pub async fn lock(
    root: &Path,
    manifest: &Manifest,
    old: Option<&Lock>,
    access: Access<'_>,
    options: &Options,
) -> Result<Outcome, ResolveError> {
    lock_with(root, manifest, old, &Live::new(access, manifest), options).await
}

/// [`lock`] against any [`Upstream`] (the tests' in-memory one).
async fn lock_with<U: Upstream>(
    root: &Path,
    manifest: &Manifest,
    old: Option<&Lock>,
    upstream: &U,
    options: &Options,
) -> Result<Outcome, ResolveError> {
    check_update(manifest, &options.update, &options.accept_changed)?;
    let run = Run::new(upstream, old, options);
    let store = upstream.store();

    // Plan: which entries keep their pin without the network.
    let fast = plan::fingerprint_holds(old, manifest);
    let chart_plans = plan::charts(&run, root, manifest, options)?;
    let (dash_plans, disk) = plan::dashboards(&run, root, manifest, fast, options)?;
    let got = fetch(&run, root, manifest, chart_plans, dash_plans, options).await?;
    let lock = Lock::new(
        fingerprint(manifest),
        got.charts.into_values(),
        got.dashboards.into_values(),
    )?;

    // vendor/: write what differs on disk, delete what was removed.
    let mut diff = vendor::dashboards(root, old, &lock, &disk, got.bytes, store, options)?;
    let mut warnings = run.warnings.into_inner();
    let unpacked = run.unpacked.into_inner();
    vendor::chart_defaults(root, old, &lock, store, &unpacked, &mut diff, &mut warnings)?;
    let mut changes = changes(old, &lock);
    changes.extend(diff.restored);
    Ok(Outcome {
        lock,
        writes: diff.writes,
        deletes: diff.deletes,
        changes,
        warnings,
    })
}

/// The entries of one run, kept or fetched, and the bytes of the dashboards that were fetched.
#[derive(Default)]
struct Fetched {
    charts: BTreeMap<Name, LockedChart>,
    dashboards: BTreeMap<Name, LockedDashboard>,
    bytes: BTreeMap<Name, Vec<u8>>,
}

/// One input's task result.
enum Finished {
    Chart(Name, LockedChart),
    Dash(Name, LockedDashboard, Vec<u8>),
}

/// Runs the plans: kept pins as they are, one task per input that needs the network, run straight
/// through (resolve, then download), so no input waits for another's resolution: a dashboard, which
/// needs no resolving, starts at once.
async fn fetch<U: Upstream>(
    run: &Run<'_, U>,
    root: &Path,
    manifest: &Manifest,
    chart_plans: BTreeMap<Name, ChartPlan>,
    dash_plans: BTreeMap<Name, DashPlan>,
    options: &Options,
) -> Result<Fetched, ResolveError> {
    let mut got = Fetched::default();
    let mut tasks: Vec<ChainedTask<'_, Finished>> = Vec::new();
    for (name, plan) in chart_plans {
        let spec = &manifest.charts[&name];
        let (req, refetch) = match plan {
            ChartPlan::Keep(locked) => {
                got.charts.insert(name, *locked);
                continue;
            }
            ChartPlan::Refetch(locked) => (plan::exactly(&locked.version), Some(locked)),
            ChartPlan::Resolve => (spec.version.clone(), None),
        };
        let staging = options.staging.clone();
        tasks.push(chart_task(run, root, name, spec, req, refetch, staging));
    }
    for (name, plan) in dash_plans {
        let spec = &manifest.dashboards[&name];
        let refetch = match plan {
            DashPlan::Keep(locked) => {
                got.dashboards.insert(name, locked);
                continue;
            }
            DashPlan::Refetch(locked) => Some(locked),
            DashPlan::Resolve => None,
        };
        let staging = options.staging.clone();
        tasks.push((
            Key::Dashboard(name.clone()),
            plan::dashboard_chain(spec, refetch.as_ref()),
            Box::pin(async move {
                let step = run.resolve_dashboard(&name, spec, refetch).await?;
                let (locked, bytes) = run.finish_dashboard(&name, spec, step).await?;
                if let Some(staging) = staging {
                    vendor::stage_dashboard(root, staging, &locked, &bytes).await;
                }
                Ok(Finished::Dash(name, locked, bytes))
            }),
        ));
    }
    let bar = progress_bar(options.progress, tasks.len(), "Locking");
    let results = all_at_once(&bar, longest_first(tasks)).await;
    bar.finish_and_clear();
    let mut errors = Vec::new();
    for result in results.into_values() {
        match result {
            Ok(Finished::Chart(name, locked)) => {
                got.charts.insert(name, locked);
            }
            Ok(Finished::Dash(name, locked, bytes)) => {
                got.bytes.insert(name.clone(), bytes);
                got.dashboards.insert(name, locked);
            }
            Err(e) => errors.push(e),
        }
    }
    ResolveError::collect(errors).inspect_err(|_| run.print_warnings())?;
    Ok(got)
}

/// One chart's task: resolve and download its pin (a refetch that fails for any reason but changed
/// content keeps the old pin), then stage its vendored defaults (see [`Options::staging`]).
fn chart_task<'a, U: Upstream>(
    run: &'a Run<'_, U>,
    root: &'a Path,
    name: Name,
    spec: &'a crate::manifest::ChartSpec,
    req: crate::version_req::VersionReq,
    refetch: Option<Box<LockedChart>>,
    staging: Option<Arc<Staging>>,
) -> ChainedTask<'a, Finished> {
    (
        Key::Chart(name.clone()),
        plan::chart_chain(spec, &req),
        Box::pin(async move {
            let fetched = async {
                let pin = run.resolve_chart(&name, spec, &req).await?;
                run.finish_chart(&name, spec, pin).await
            }
            .await;
            let locked = match (fetched, refetch) {
                (Ok(locked), _) => {
                    if let Some(staging) = staging {
                        let store = run.upstream.store();
                        let files = vendor::stage_chart(root, staging, store, &name, &locked).await;
                        if let Some(files) = files {
                            let blake3 = locked.blake3.to_string();
                            run.unpacked
                                .borrow_mut()
                                .insert(name.clone(), (blake3, files));
                        }
                    }
                    locked
                }
                (Err(e), Some(kept)) if !matches!(e, ResolveError::ContentChanged { .. }) => {
                    run.refetch_failed(&name, &e);
                    *kept
                }
                (Err(e), _) => return Err(e),
            };
            Ok(Finished::Chart(name, locked))
        }),
    )
}
