//! Resolution: from stack.toml and the previous stack.lock to the next lock and vendor/ contents.
//!
//! Pins are sticky, like Cargo.lock: an entry whose source and requirement (or grafana.com revision) are
//! unchanged keeps its pin without asking the network, unless `--update` names it. Its bytes are then
//! needed only when they are in neither the content cache nor vendor/; fetched again, they must hash to
//! what the lock says, or resolution stops: content that changes upstream under the same version is a red
//! flag to report, never to re-pin silently.
//!
//! Each input that needs the network is one task on a bounded pool of `--jobs` concurrent inputs, run
//! straight through: *resolve* (tags, index.yaml, grafana.com metadata: which version), then *download*
//! (the bytes, only those not cached), with no barrier between inputs. Results are gathered into
//! BTreeMaps, so nothing printed or written depends on timing.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;

use futures_util::StreamExt as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::chart_values;
use crate::digest;
use crate::lock::{fingerprint, vendor_path, Lock, LockedChart, LockedDashboard};
use crate::manifest::{ChartSource, ChartSpec, DashboardSource, DashboardSpec, Manifest, Name};
use crate::source::grafana::{self, DashboardError};
use crate::source::helm_repo::{self, HelmError, HelmPin, RepoIndex};
use crate::source::oci::{self, OciError, OciPin};
use crate::source::Access;
use crate::store::StoreError;
use crate::version_req::{parse_tag, VersionReq};

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
    pub jobs: usize,
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
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("--update {}: no chart or dashboard of that name in stack.toml", .names.join(", "))]
    UnknownUpdate { names: Vec<String> },
    #[error("{kind} `{input}`: {why}, and --offline forbids asking the network; run `stack lock` without --offline")]
    Offline {
        kind: &'static str,
        input: String,
        why: String,
    },
    #[error("{kind} `{input}`: upstream content changed under the same {pinned}: stack.lock has {locked}, upstream now serves {fetched}. Nothing was re-pinned.\nhelp: find out why upstream changed; to accept the new content on purpose, run `stack lock --accept-changed {input}`")]
    ContentChanged {
        kind: &'static str,
        input: String,
        pinned: String,
        locked: String,
        fetched: String,
    },
    #[error("chart `{input}`: the archive of {origin} {version} is not the chart asked for: {why}; Flux would install another chart than stack.toml names. Nothing was pinned.\nhelp: check `oci`, `repo` and `chart` of [charts.{input}] in stack.toml (the chart's name is the last part of an OCI path, or `chart` of a Helm repository); when the version differs, the publisher tagged another chart: require another version")]
    NotTheChart {
        input: String,
        origin: String,
        version: String,
        why: String,
    },
    // Boxed: these carry several strings, and every Result of this module would be as large.
    #[error(transparent)]
    Oci(Box<OciError>),
    #[error(transparent)]
    Helm(Box<HelmError>),
    #[error(transparent)]
    Dashboard(Box<DashboardError>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("`{input}`: upstream states {why}, and stack.lock records only sha256 and blake3 digests\nhelp: the registry or repository serves something other than a Helm chart; check `oci`/`repo` in stack.toml")]
    Digest { input: String, why: String },
    #[error("{} inputs failed:\n{}", .0.len(), .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Many(Vec<ResolveError>),
}

impl From<OciError> for ResolveError {
    fn from(e: OciError) -> Self {
        ResolveError::Oci(Box::new(e))
    }
}

impl From<HelmError> for ResolveError {
    fn from(e: HelmError) -> Self {
        ResolveError::Helm(Box::new(e))
    }
}

impl From<DashboardError> for ResolveError {
    fn from(e: DashboardError) -> Self {
        ResolveError::Dashboard(Box::new(e))
    }
}

impl ResolveError {
    fn collect(mut errors: Vec<ResolveError>) -> Result<(), ResolveError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.pop().expect("one")),
            _ => Err(ResolveError::Many(errors)),
        }
    }
}

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

// ----- plans and steps ------------------------------------------------------------------------------

enum ChartPlan {
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

enum DashPlan {
    Keep(LockedDashboard),
    Resolve,
    Refetch(LockedDashboard),
}

/// A chart after the resolve phase.
enum ChartStep {
    Done(LockedChart),
    Oci(OciPin),
    Helm(HelmPin),
}

/// A dashboard after the resolve phase.
enum DashStep {
    Done(LockedDashboard),
    Grafana {
        id: u64,
        revision: u64,
    },
    /// `verify`: a sticky pin whose bytes must be fetched again and must not have changed.
    Url {
        url: String,
        verify: Option<LockedDashboard>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Chart(Name),
    Dashboard(Name),
}

type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;
/// One input's work in a phase.
type Task<'a, T> = (Key, LocalFuture<'a, Result<T, ResolveError>>);
/// A repository's index.yaml, fetched by whichever chart asks first; the error is shared as text.
type IndexCell = Rc<tokio::sync::OnceCell<Result<Rc<RepoIndex>, String>>>;

/// Shared state of one run.
struct Run<'a> {
    access: Access<'a>,
    old: Option<&'a Lock>,
    /// Each repository's index.yaml is fetched once per run, however many charts come from it.
    indexes: RefCell<BTreeMap<String, IndexCell>>,
    warnings: RefCell<Vec<String>>,
    /// See [`Options::accept_changed`].
    accept_changed: BTreeSet<String>,
}

fn progress_bar(show: bool, len: usize, prefix: &'static str) -> ProgressBar {
    if !show || len == 0 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("{prefix:>12.cyan.bold} [{bar:25}] {pos}/{len} {wide_msg}")
            .expect("a valid template")
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(prefix);
    bar
}

/// Runs `tasks` with at most `jobs` at once; results keyed, so their order is the keys' order.
async fn bounded<'a, T>(
    jobs: usize,
    bar: &ProgressBar,
    tasks: Vec<(Key, LocalFuture<'a, T>)>,
) -> BTreeMap<Key, T> {
    futures_util::stream::iter(tasks)
        .map(|(key, task)| async move {
            let out = task.await;
            let name = match &key {
                Key::Chart(n) | Key::Dashboard(n) => n.to_string(),
            };
            bar.set_message(name);
            bar.inc(1);
            (key, out)
        })
        .buffer_unordered(jobs.max(1))
        .collect()
        .await
}

fn oci_url(spec: &ChartSpec) -> Option<&str> {
    match &spec.source {
        ChartSource::Oci { url } => Some(url),
        ChartSource::Repo { .. } => None,
    }
}

/// blake3 of a vendored file on disk, if it exists.
fn disk_blake3(root: &Path, rel: &str) -> Result<Option<String>, ResolveError> {
    match crate::contain::read(root, rel) {
        Ok(bytes) => Ok(Some(digest::blake3(&bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ResolveError::Io {
            path: rel.to_string(),
            err: e,
        }),
    }
}

/// Whether `old` was written for exactly these inputs: then every pin answers its input without asking
/// each one (the fingerprint's fast path, which also keeps pins of locks that did not record a request).
fn fingerprint_holds(old: Option<&Lock>, manifest: &Manifest) -> bool {
    old.is_some_and(|l| l.fingerprint == fingerprint(manifest))
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
fn requested_revision(spec: &DashboardSpec) -> Option<u64> {
    match spec.source {
        DashboardSource::GrafanaCom { revision, .. } => revision,
        DashboardSource::Url { .. } => None,
    }
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

impl<'a> Run<'a> {
    /// Warnings gathered so far go to stderr when the lock fails, since no outcome will carry them
    /// (a skipped index entry often explains the failure).
    fn print_warnings(&self) {
        for w in self.warnings.borrow().iter() {
            eprintln!("warning: {w}");
        }
    }

    fn accepts_changed(&self, name: &Name) -> bool {
        self.accept_changed.contains(name.as_str())
    }

    fn old_chart(&self, name: &Name) -> Option<&'a LockedChart> {
        self.old.and_then(|l| l.charts.get(name))
    }

    fn old_dashboard(&self, name: &Name) -> Option<&'a LockedDashboard> {
        self.old.and_then(|l| l.dashboards.get(name))
    }

    async fn index(&self, repo: &str) -> Result<Rc<RepoIndex>, String> {
        let cell = self
            .indexes
            .borrow_mut()
            .entry(repo.to_string())
            .or_default()
            .clone();
        cell.get_or_init(|| async {
            helm_repo::fetch_index(&self.access, repo)
                .await
                .map(Rc::new)
        })
        .await
        .clone()
    }

    // ----- resolve phase ----------------------------------------------------------------------------

    async fn resolve_chart(
        &self,
        name: &Name,
        spec: &ChartSpec,
        plan: ChartPlan,
    ) -> Result<ChartStep, ResolveError> {
        let input = name.as_str();
        let req = match plan {
            ChartPlan::Keep(locked) => return Ok(ChartStep::Done(*locked)),
            ChartPlan::Refetch(locked) => exactly(&locked.version),
            ChartPlan::Resolve => spec.version.clone(),
        };
        match &spec.source {
            ChartSource::Oci { url } => {
                let ctx = oci::Ctx::new(self.access, input, url);
                let (pin, warnings) = ctx.resolve(&req).await?;
                self.warnings.borrow_mut().extend(warnings);
                Ok(ChartStep::Oci(pin))
            }
            ChartSource::Repo { url, .. } => Ok(ChartStep::Helm(
                self.select_helm(name, url, spec, &req).await?,
            )),
        }
    }

    async fn select_helm(
        &self,
        name: &Name,
        repo: &str,
        spec: &ChartSpec,
        req: &VersionReq,
    ) -> Result<HelmPin, ResolveError> {
        let input = name.as_str();
        let index = self.index(repo).await.map_err(|err| HelmError::Index {
            input: input.into(),
            err,
        })?;
        let chart = spec.source.chart_name();
        let selected = helm_repo::select(&self.access, input, repo, chart, &index, req);
        // The skipped entries matter most when nothing matched: they are printed with the error too.
        let warnings = match &selected {
            Ok((_, warnings)) => warnings.clone(),
            Err(_) => index.entries(chart).map(|(_, w)| w).unwrap_or_default(),
        };
        self.warnings.borrow_mut().extend(
            warnings
                .into_iter()
                .map(|w| format!("chart `{input}`: {repo}/{w}")),
        );
        Ok(selected?.0)
    }

    async fn resolve_dashboard(
        &self,
        name: &Name,
        spec: &DashboardSpec,
        plan: DashPlan,
    ) -> Result<DashStep, ResolveError> {
        let input = name.as_str();
        match (plan, &spec.source) {
            (DashPlan::Keep(locked), _) => Ok(DashStep::Done(locked)),
            (DashPlan::Refetch(locked), DashboardSource::GrafanaCom { id, .. })
                if locked.revision.is_some() =>
            {
                let revision = locked.revision.expect("checked");
                Ok(DashStep::Grafana { id: *id, revision })
            }
            (_, DashboardSource::GrafanaCom { id, revision }) => {
                // The metadata says which revision is the latest; the title is read from the
                // downloaded revision itself.
                let revision = match revision {
                    Some(r) => *r,
                    None => {
                        grafana::meta(&self.access, input, *id)
                            .await?
                            .latest_revision
                    }
                };
                Ok(DashStep::Grafana { id: *id, revision })
            }
            (DashPlan::Refetch(locked), DashboardSource::Url { url }) => Ok(DashStep::Url {
                url: url.clone(),
                verify: Some(locked),
            }),
            (DashPlan::Resolve, DashboardSource::Url { url }) => Ok(DashStep::Url {
                url: url.clone(),
                verify: None,
            }),
        }
    }

    // ----- download phase ---------------------------------------------------------------------------

    /// The chart's entry. When the lock already pins the same version from the same source, the bytes
    /// must be the locked ones (and are not downloaded at all when cached); a difference is an error, even
    /// under `--update`: a version's content must never change.
    async fn finish_chart(
        &self,
        name: &Name,
        spec: &ChartSpec,
        step: ChartStep,
    ) -> Result<LockedChart, ResolveError> {
        let input = name.as_str();
        let store = self.access.store();
        let canonical = spec.source.canonical();
        let requirement = spec.version.as_str().to_string();
        let step_version = match &step {
            ChartStep::Done(locked) => return Ok(locked.clone()),
            ChartStep::Oci(pin) => pin.version.clone(),
            ChartStep::Helm(pin) => pin.version.clone(),
        };
        let same = self
            .old_chart(name)
            .filter(|o| o.source == canonical && o.version == step_version)
            .filter(|_| !self.accepts_changed(name));
        let pinned = || format!("version {step_version}");
        match step {
            ChartStep::Done(_) => unreachable!("returned above"),
            ChartStep::Oci(pin) => {
                let ctx = oci::Ctx::new(self.access, input, oci_url(spec).expect("an OCI chart"));
                if let Some(o) = same {
                    if o.digest != pin.digest {
                        return Err(changed(
                            "chart",
                            name,
                            pinned(),
                            format!("manifest digest {}", o.digest),
                            format!("manifest digest {}", pin.digest),
                        ));
                    }
                    let kept = LockedChart {
                        requirement,
                        layer_digest: Some(typed(name, pin.layer_digest.clone())?),
                        ..o.clone()
                    };
                    if !store.contains(&o.blake3)? {
                        let blake3 = store.put(&ctx.download(&pin).await?)?;
                        if blake3 != o.blake3 {
                            return Err(changed(
                                "chart",
                                name,
                                pinned(),
                                format!("blake3 {}", o.blake3),
                                format!("blake3 {blake3}"),
                            ));
                        }
                    }
                    return Ok(kept);
                }
                let blake3 = store.put(&ctx.download(&pin).await?)?;
                Ok(LockedChart {
                    name: name.clone(),
                    source: canonical,
                    requirement,
                    version: pin.version,
                    digest: typed(name, pin.digest)?,
                    layer_digest: Some(typed(name, pin.layer_digest)?),
                    layer_media_type: (pin.layer_media_type != oci::HELM_CHART_MEDIA_TYPE)
                        .then_some(pin.layer_media_type),
                    url: None,
                    blake3: typed(name, blake3)?,
                })
            }
            ChartStep::Helm(pin) => {
                if let Some(o) = same {
                    if let Some(stated) = pin.stated_digest.as_deref().filter(|d| *d != o.digest) {
                        return Err(changed(
                            "chart",
                            name,
                            pinned(),
                            format!("sha256 {}", o.digest),
                            format!("sha256 {stated} (as its index.yaml states)"),
                        ));
                    }
                    let kept = LockedChart {
                        requirement,
                        url: Some(pin.canonical_url.clone()),
                        ..o.clone()
                    };
                    if !store.contains(&o.blake3)? {
                        let (bytes, sha256) =
                            match helm_repo::download(&self.access, input, &pin).await {
                                Err(HelmError::Digest { actual, .. }) => {
                                    return Err(changed(
                                        "chart",
                                        name,
                                        pinned(),
                                        format!("sha256 {}", o.digest),
                                        format!("sha256 {actual}"),
                                    ))
                                }
                                other => other?,
                            };
                        let blake3 = store.put(&bytes)?;
                        if blake3 != o.blake3 || sha256 != o.digest {
                            return Err(changed(
                                "chart",
                                name,
                                pinned(),
                                format!("blake3 {}", o.blake3),
                                format!("blake3 {blake3}"),
                            ));
                        }
                    }
                    return Ok(kept);
                }
                let (bytes, sha256) = helm_repo::download(&self.access, input, &pin).await?;
                let blake3 = store.put(&bytes)?;
                Ok(LockedChart {
                    name: name.clone(),
                    source: canonical,
                    requirement,
                    version: pin.version,
                    digest: typed(name, sha256)?,
                    layer_digest: None,
                    layer_media_type: None,
                    url: Some(pin.canonical_url),
                    blake3: typed(name, blake3)?,
                })
            }
        }
    }

    /// Returns the entry and, when fetched, its bytes. A grafana.com revision or a sticky URL pin whose
    /// bytes differ from the lock is an error.
    async fn finish_dashboard(
        &self,
        name: &Name,
        spec: &DashboardSpec,
        step: DashStep,
    ) -> Result<(LockedDashboard, Option<Vec<u8>>), ResolveError> {
        let input = name.as_str();
        let store = self.access.store();
        let canonical = spec.source.canonical();
        let path = vendor_path(name);
        let (bytes, grafana_com, revision, title) = match step {
            DashStep::Done(locked) => return Ok((locked, None)),
            DashStep::Grafana { id, revision } => {
                // The title of the pinned revision, not of the latest (grafana.com's `name`).
                let (bytes, title) =
                    grafana::download_revision(&self.access, input, id, revision).await?;
                let blake3 = digest::blake3(&bytes);
                let same = self
                    .old_dashboard(name)
                    .filter(|o| o.source == canonical && o.revision == Some(revision))
                    .filter(|_| !self.accepts_changed(name));
                if let Some(o) = same.filter(|o| o.blake3 != blake3) {
                    return Err(changed(
                        "dashboard",
                        name,
                        format!("grafana.com revision {revision}"),
                        format!("blake3 {}", o.blake3),
                        format!("blake3 {blake3}"),
                    ));
                }
                (bytes, Some(id), Some(revision), title)
            }
            DashStep::Url { url, verify } => {
                let (bytes, title) = grafana::download_plain(&self.access, input, &url).await?;
                let blake3 = digest::blake3(&bytes);
                if let Some(o) = verify.filter(|o| o.blake3 != blake3) {
                    return Err(changed(
                        "dashboard",
                        name,
                        format!("URL {}", crate::http::redact_str(&url)),
                        format!("blake3 {}", o.blake3),
                        format!("blake3 {blake3}"),
                    ));
                }
                (bytes, None, None, title)
            }
        };
        let blake3 = store.put(&bytes)?;
        let entry = LockedDashboard {
            name: name.clone(),
            source: canonical,
            grafana_com,
            revision,
            requested_revision: requested_revision(spec),
            title,
            path,
            digest: typed(name, digest::sha256(&bytes))?,
            blake3: typed(name, blake3)?,
        };
        Ok((entry, Some(bytes)))
    }
}

/// Checks `--update` names against stack.toml.
fn check_update(manifest: &Manifest, update: &Update) -> Result<(), ResolveError> {
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
            return Err(ResolveError::UnknownUpdate { names: unknown });
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
    check_update(manifest, &options.update)?;
    let run = Run {
        access,
        old,
        indexes: RefCell::default(),
        warnings: RefCell::default(),
        accept_changed: options.accept_changed.clone(),
    };
    let store = access.store();

    // Plan: which entries keep their pin without the network.
    let fast = fingerprint_holds(old, manifest);
    let mut chart_plans = BTreeMap::new();
    for (name, spec) in &manifest.charts {
        let plan = match run.old_chart(name) {
            Some(locked)
                if (fast || locked.answers(spec).is_ok()) && !options.update.covers(name) =>
            {
                if access.net().is_none() || defaults_at_hand(root, locked, store)? {
                    ChartPlan::Keep(Box::new(locked.clone()))
                } else {
                    ChartPlan::Refetch(Box::new(locked.clone()))
                }
            }
            _ => ChartPlan::Resolve,
        };
        chart_plans.insert(name.clone(), plan);
    }
    let mut disk = BTreeMap::new();
    let mut dash_plans = BTreeMap::new();
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
        dash_plans.insert(name.clone(), plan);
    }

    // One task per input that needs the network, run straight through (resolve, then download), so
    // no input waits for another's resolution: a dashboard, which needs no resolving, starts at once.
    let mut charts = BTreeMap::new();
    let mut dashboards = BTreeMap::new();
    let mut fetched: BTreeMap<Name, Vec<u8>> = BTreeMap::new();
    let mut tasks: Vec<Task<'_, Finished>> = Vec::new();
    for (name, plan) in chart_plans {
        if let ChartPlan::Keep(locked) = plan {
            charts.insert(name, *locked);
            continue;
        }
        let spec = &manifest.charts[&name];
        let run = &run;
        tasks.push((
            Key::Chart(name.clone()),
            Box::pin(async move {
                let step = run.resolve_chart(&name, spec, plan).await?;
                run.finish_chart(&name, spec, step)
                    .await
                    .map(Finished::Chart)
            }),
        ));
    }
    for (name, plan) in dash_plans {
        if let DashPlan::Keep(locked) = plan {
            dashboards.insert(name, locked);
            continue;
        }
        let spec = &manifest.dashboards[&name];
        let run = &run;
        tasks.push((
            Key::Dashboard(name.clone()),
            Box::pin(async move {
                let step = run.resolve_dashboard(&name, spec, plan).await?;
                run.finish_dashboard(&name, spec, step)
                    .await
                    .map(|(d, b)| Finished::Dash(d, b))
            }),
        ));
    }
    let bar = progress_bar(options.progress, tasks.len(), "Locking");
    let results = bounded(options.jobs, &bar, tasks).await;
    bar.finish_and_clear();
    let mut errors = Vec::new();
    for (key, result) in results {
        match (key, result) {
            (Key::Chart(name), Ok(Finished::Chart(locked))) => {
                charts.insert(name, locked);
            }
            (Key::Dashboard(name), Ok(Finished::Dash(locked, bytes))) => {
                if let Some(bytes) = bytes {
                    fetched.insert(name.clone(), bytes);
                }
                dashboards.insert(name, locked);
            }
            (_, Ok(_)) => unreachable!("results keep their kind"),
            (_, Err(e)) => errors.push(e),
        }
    }
    ResolveError::collect(errors).inspect_err(|_| run.print_warnings())?;

    let lock = Lock {
        fingerprint: fingerprint(manifest),
        charts,
        dashboards,
    };

    // vendor/: write what differs on disk, delete what was removed.
    let mut writes = BTreeMap::new();
    let mut deletes = BTreeSet::new();
    let mut restored = Vec::new();
    for (name, entry) in &lock.dashboards {
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
        if old.and_then(|o| o.dashboards.get(name)) == Some(entry) {
            restored.push(Change::Restored {
                name: name.to_string(),
                path: entry.path.clone(),
            });
        }
        writes.insert(entry.path.clone(), bytes);
    }
    if let Some(old) = old {
        for (name, entry) in &old.dashboards {
            let kept = lock
                .dashboards
                .get(name)
                .is_some_and(|d| d.path == entry.path);
            if !kept && !writes.contains_key(&entry.path) && root.join(&entry.path).exists() {
                deletes.insert(entry.path.clone());
            }
        }
    }

    let mut warnings = run.warnings.into_inner();
    vendor_chart_defaults(root, &lock, store, &mut writes, &mut deletes, &mut warnings)?;
    let mut changes = changes(old, &lock);
    changes.extend(restored);
    Ok(Outcome {
        lock,
        writes,
        deletes,
        changes,
        warnings,
    })
}

/// The requirement that only `version` meets (a locked version is always a valid one).
fn exactly(version: &str) -> VersionReq {
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

/// `vendor/charts/<name>/`: each locked chart's metadata and defaults (and its subcharts'), taken from
/// its archive in the content store, for `stack build`'s values check. Files of removed charts, and files
/// a chart no longer has, are deleted; a chart whose archive is not cached keeps what is vendored.
fn vendor_chart_defaults(
    root: &Path,
    lock: &Lock,
    store: &crate::store::Store,
    writes: &mut BTreeMap<String, Vec<u8>>,
    deletes: &mut BTreeSet<String>,
    warnings: &mut Vec<String>,
) -> Result<(), ResolveError> {
    let base = root.join(chart_values::VENDOR_DIR);
    let on_disk: BTreeSet<String> = match std::fs::read_dir(&base) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => BTreeSet::new(),
    };
    let vendored = |name: &str| -> Result<chart_values::ChartFiles, ResolveError> {
        Ok(chart_values::read_vendored(root, name)
            .map_err(|err| ResolveError::Io {
                path: format!("{}/{name}", chart_values::VENDOR_DIR),
                err,
            })?
            .unwrap_or_default())
    };
    for (name, entry) in &lock.charts {
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
        let have = vendored(name.as_str())?;
        let dir = format!("{}/{name}", chart_values::VENDOR_DIR);
        for (rel, content) in &files {
            if have.get(rel) != Some(content) {
                writes.insert(format!("{dir}/{rel}"), content.clone());
            }
        }
        for rel in have.keys().filter(|r| !files.contains_key(*r)) {
            deletes.insert(format!("{dir}/{rel}"));
        }
    }
    for name in on_disk
        .iter()
        .filter(|n| !lock.charts.keys().any(|k| k.as_str() == n.as_str()))
    {
        for rel in vendored(name)?.keys() {
            deletes.insert(format!("{}/{name}/{rel}", chart_values::VENDOR_DIR));
        }
    }
    Ok(())
}

/// The chart name a locked source asks for: after `#` for a Helm repository (`<repo>#<chart>`), the last
/// path segment for OCI (`oci://host/path/<chart>`), as Helm names a chart it pulls.
fn expected_chart_name(source: &str) -> &str {
    match source.rsplit_once('#') {
        Some((_, chart)) => chart,
        None => source.rsplit('/').next().unwrap_or(source),
    }
}

enum Finished {
    Chart(LockedChart),
    Dash(LockedDashboard, Option<Vec<u8>>),
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
    for (name, n) in &new.charts {
        match old.charts.get(name) {
            None => out.push(Change::Added {
                name: name.to_string(),
                what: n.version.clone(),
            }),
            Some(o) if o == n => {}
            Some(o) => {
                let what = if o.version != n.version {
                    format!("{} -> {}", o.version, n.version)
                } else if o.source != n.source {
                    format!("{} (source {} -> {})", n.version, o.source, n.source)
                } else if o.requirement != n.requirement {
                    format!(
                        "{} (requirement {:?} -> {:?})",
                        n.version, o.requirement, n.requirement
                    )
                } else {
                    format!("{} (digest {} -> {})", n.version, o.digest, n.digest)
                };
                out.push(Change::Updated {
                    name: name.to_string(),
                    what,
                });
            }
        }
    }
    for (name, o) in old
        .charts
        .iter()
        .filter(|(n, _)| !new.charts.contains_key(*n))
    {
        out.push(Change::Removed {
            name: name.to_string(),
            what: o.version.clone(),
        });
    }
    for (name, n) in &new.dashboards {
        match old.dashboards.get(name) {
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
        .dashboards
        .iter()
        .filter(|(n, _)| !new.dashboards.contains_key(*n))
    {
        out.push(Change::Removed {
            name: name.to_string(),
            what: dash_label(o),
        });
    }
    out
}

// ----- --check --remote -----------------------------------------------------------------------------

/// Asks upstream, ignoring stickiness, whether something newer (or different) than the lock's pins meets
/// stack.toml. Only entries the lock answers are asked about; the offline check reports the rest.
pub async fn remote_check(
    manifest: &Manifest,
    lock: &Lock,
    access: Access<'_>,
    options: &Options,
) -> Result<Vec<String>, ResolveError> {
    let run = Run {
        access,
        old: Some(lock),
        indexes: RefCell::default(),
        warnings: RefCell::default(),
        accept_changed: options.accept_changed.clone(),
    };
    let fast = fingerprint_holds(Some(lock), manifest);
    let mut tasks: Vec<Task<'_, Option<String>>> = Vec::new();
    for (name, spec) in &manifest.charts {
        let Some(locked) = lock
            .charts
            .get(name)
            .filter(|l| fast || l.answers(spec).is_ok())
        else {
            continue;
        };
        let run = &run;
        tasks.push((
            Key::Chart(name.clone()),
            Box::pin(async move {
                let (version, digest) = match run.resolve_chart(name, spec, ChartPlan::Resolve).await? {
                    ChartStep::Oci(pin) => (pin.version, Some(pin.digest)),
                    ChartStep::Helm(pin) => (pin.version, pin.stated_digest),
                    ChartStep::Done(_) => unreachable!("resolving never keeps"),
                };
                let update = format!("run `stack lock --update {name}`");
                if version != locked.version {
                    let newer = match (parse_tag(&version), parse_tag(&locked.version)) {
                        (Some(a), Some(b)) => a > b,
                        _ => true,
                    };
                    let adjective = if newer { "newer" } else { "different" };
                    return Ok(Some(format!(
                        "chart `{name}`: {version} matches {:?} upstream, a {adjective} version than the locked {} ({update})",
                        spec.version.as_str(),
                        locked.version
                    )));
                }
                if digest.as_deref().is_some_and(|d| d != locked.digest) {
                    return Ok(Some(format!(
                        "chart `{name}`: {version} upstream has digest {}, stack.lock has {}: the content changed under the same version (find out why; `stack lock --accept-changed {name}` re-pins it)",
                        digest.unwrap_or_default(),
                        locked.digest
                    )));
                }
                Ok(None)
            }),
        ));
    }
    for (name, spec) in &manifest.dashboards {
        let Some(locked) = lock
            .dashboards
            .get(name)
            .filter(|l| fast || l.answers(spec).is_ok())
        else {
            continue;
        };
        let run = &run;
        let input = name.as_str();
        match &spec.source {
            DashboardSource::GrafanaCom { revision: Some(_), .. } => {}
            DashboardSource::GrafanaCom { id, revision: None } => tasks.push((
                Key::Dashboard(name.clone()),
                Box::pin(async move {
                    let meta = grafana::meta(&run.access, input, *id).await?;
                    Ok((Some(meta.latest_revision) != locked.revision).then(|| {
                        format!(
                            "dashboard `{name}`: grafana.com has revision {}, stack.lock has revision {} (run `stack lock --update {name}`)",
                            meta.latest_revision,
                            locked.revision.unwrap_or_default()
                        )
                    }))
                }),
            )),
            DashboardSource::Url { url } => tasks.push((
                Key::Dashboard(name.clone()),
                Box::pin(async move {
                    let (bytes, _) = grafana::download_plain(&run.access, input, url).await?;
                    let blake3 = digest::blake3(&bytes);
                    let sha256 = digest::sha256(&bytes);
                    Ok((blake3 != locked.blake3 || sha256 != locked.digest).then(|| {
                        format!(
                            "dashboard `{name}`: {} now serves different content (sha256 {sha256}, stack.lock has {}) (run `stack lock --update {name}`)",
                            crate::http::redact_str(url),
                            locked.digest
                        )
                    }))
                }),
            )),
        }
    }
    let bar = progress_bar(options.progress, tasks.len(), "Checking");
    let results = bounded(options.jobs, &bar, tasks).await;
    bar.finish_and_clear();
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (_, result) in results {
        match result {
            Ok(Some(line)) => out.push(line),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    ResolveError::collect(errors)?;
    Ok(out)
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
    for (name, entry) in &lock.dashboards {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_server::{ok, serve_routes, status, Server};
    use crate::source::{Mirrors, Net};
    use crate::store::Store;

    const CHART: &[u8] = b"pretend this is alloy-1.1.2.tgz";
    const CHART_OLD: &[u8] = b"pretend this is alloy-1.1.1.tgz";
    const GRAFANA_META: &[u8] =
        br#"{"id": 15757, "name": "Kubernetes / Views / Global", "revision": 43}"#;
    const GRAFANA_JSON: &[u8] = br#"{"title": "Kubernetes / Views / Global", "panels": []}"#;
    const FLUX_JSON: &[u8] = br#"{"title": "Flux Cluster Stats", "panels": []}"#;

    fn index(chart_digest: &str) -> Vec<u8> {
        format!(
            "apiVersion: v1\nentries:\n  alloy:\n    - version: 1.1.1\n      urls: [alloy-1.1.1.tgz]\n      digest: {}\n    - version: 1.1.2\n      urls: [alloy-1.1.2.tgz]\n      digest: {chart_digest}\n    - not-an-entry\n",
            &digest::sha256(CHART_OLD)["sha256:".len()..]
        )
        .into_bytes()
    }

    const INPUTS: &str = r#"
[stack]
name = "t"
flux = { source = { kind = "GitRepository", name = "flux-system" }, path = "./k" }

[modules]
enabled = []

[charts.alloy]
repo = "https://charts.example/helm"
version = "~1.1"

[dashboards.kubernetes-global]
grafana_com = 15757

[dashboards.flux-cluster]
url = "https://dash.example/flux/cluster.json"
"#;

    struct Fixture {
        server: Server,
        root: tempfile::TempDir,
        cache: tempfile::TempDir,
        manifest: Manifest,
    }

    impl Fixture {
        fn new(index_answers: Vec<crate::http::test_server::Answer>) -> Fixture {
            let server = serve_routes(vec![
                ("/helm/index.yaml", index_answers),
                ("/helm/alloy-1.1.2.tgz", vec![ok(CHART, "")]),
                ("/api/dashboards/15757", vec![ok(GRAFANA_META, "")]),
                (
                    "/api/dashboards/15757/revisions/43/download",
                    vec![ok(GRAFANA_JSON, "")],
                ),
                ("/flux/cluster.json", vec![ok(FLUX_JSON, "")]),
            ]);
            Fixture {
                server,
                root: tempfile::tempdir().unwrap(),
                cache: tempfile::tempdir().unwrap(),
                manifest: Manifest::parse(INPUTS).unwrap(),
            }
        }

        fn mirrors(&self) -> Mirrors {
            let b = &self.server.base;
            let flags = [
                format!("https://charts.example={b}"),
                format!("https://grafana.com={b}"),
                format!("https://dash.example={b}"),
            ];
            Mirrors::new(&BTreeMap::new(), &flags).unwrap()
        }

        fn run(
            &self,
            old: Option<&Lock>,
            update: Update,
            offline: bool,
        ) -> Result<Outcome, ResolveError> {
            let store = Store::at(self.cache.path().to_path_buf());
            let mirrors = self.mirrors();
            let http = crate::http::Http::for_tests();
            let net = Net::new(
                http,
                Default::default(),
                mirrors.clone(),
                store.clone(),
                vec![],
            )
            .unwrap();
            let access = if offline {
                Access::Offline {
                    store: &store,
                    mirrors: &mirrors,
                }
            } else {
                Access::Online(&net)
            };
            let options = Options {
                update,
                jobs: 2,
                progress: false,
                unshipped: BTreeSet::new(),
                accept_changed: BTreeSet::new(),
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(lock(
                self.root.path(),
                &self.manifest,
                old,
                access,
                &options,
            ))
        }

        /// Writes an outcome as `stack lock` would.
        fn commit(&self, outcome: &Outcome) {
            let guard = crate::transaction::guard(self.root.path()).unwrap();
            let mut txn = crate::transaction::Transaction::begin(&guard).unwrap();
            for (path, bytes) in &outcome.writes {
                txn.write(path, bytes).unwrap();
            }
            for path in &outcome.deletes {
                txn.delete(path).unwrap();
            }
            txn.write("stack.lock", outcome.lock.to_toml().as_bytes())
                .unwrap();
            txn.commit().unwrap();
        }

        fn requests(&self) -> usize {
            self.server.requests.lock().unwrap().len()
        }
    }

    fn chart_digest_hex() -> String {
        digest::sha256(CHART)["sha256:".len()..].to_string()
    }

    #[test]
    fn first_lock_pins_everything_then_relock_is_sticky_and_offline_agrees() {
        let fx = Fixture::new(vec![
            ok(&index(&chart_digest_hex()), "ETag: \"v1\"\r\n"),
            status(304, ""),
        ]);
        let first = fx.run(None, Update::Sticky, false).unwrap();
        let alloy = &first.lock.charts[&"alloy".parse().unwrap()];
        assert_eq!(alloy.version, "1.1.2");
        assert_eq!(alloy.source, "https://charts.example/helm#alloy");
        assert_eq!(
            alloy.url.as_deref(),
            Some("https://charts.example/helm/alloy-1.1.2.tgz")
        );
        assert_eq!(alloy.digest, digest::sha256(CHART));
        assert_eq!(alloy.blake3, digest::blake3(CHART));
        let global = &first.lock.dashboards[&"kubernetes-global".parse().unwrap()];
        assert_eq!(
            (global.revision, global.title.as_str()),
            (Some(43), "Kubernetes / Views / Global")
        );
        assert_eq!(global.source, "https://grafana.com/api/dashboards/15757");
        assert_eq!(
            first.lock.dashboards[&"flux-cluster".parse().unwrap()].title,
            "Flux Cluster Stats"
        );
        assert_eq!(
            first.writes["vendor/dashboards/kubernetes-global.json"],
            GRAFANA_JSON
        );
        assert_eq!(
            first.writes["vendor/dashboards/flux-cluster.json"],
            FLUX_JSON
        );
        // The index's bad entry, and the stand-in archive bytes (not a .tgz) whose defaults are not vendored.
        assert_eq!(first.warnings.len(), 2, "{:?}", first.warnings);
        assert!(first.warnings[1].contains("default values are not vendored"));
        let table: Vec<String> = first
            .changes
            .iter()
            .map(|c| c.to_string().trim_start().to_string())
            .collect();
        assert_eq!(
            table,
            [
                "Adding alloy 1.1.2",
                "Adding flux-cluster \"Flux Cluster Stats\"",
                "Adding kubernetes-global revision 43 \"Kubernetes / Views / Global\""
            ]
        );
        fx.commit(&first);
        assert_eq!(fx.server.count("/helm/alloy-1.1.1.tgz"), 0);

        // Sticky: nothing is asked, nothing changes.
        let before = fx.requests();
        let lock =
            Lock::parse(&std::fs::read_to_string(fx.root.path().join("stack.lock")).unwrap())
                .unwrap();
        let again = fx.run(Some(&lock), Update::Sticky, false).unwrap();
        assert_eq!(
            fx.requests(),
            before,
            "a sticky re-lock went to the network"
        );
        assert_eq!(again.lock, lock);
        assert!(again.writes.is_empty() && again.deletes.is_empty() && again.changes.is_empty());

        // --update: the index is revalidated (304) and the cached archive reused.
        let updated = fx.run(Some(&lock), Update::All, false).unwrap();
        assert_eq!(updated.lock, lock);
        assert_eq!(fx.server.count("/helm/index.yaml"), 2);
        let revalidation = fx
            .server
            .requests
            .lock()
            .unwrap()
            .iter()
            .rfind(|head| head.starts_with("GET /helm/index.yaml "))
            .cloned()
            .expect("index.yaml was asked for");
        assert!(
            revalidation
                .to_ascii_lowercase()
                .contains("if-none-match: \"v1\""),
            "the second index request did not revalidate: {revalidation}"
        );
        assert_eq!(
            fx.server.count("/helm/alloy-1.1.2.tgz"),
            1,
            "the cached archive was downloaded again"
        );

        // A vendored file deleted by hand comes back from the cache, without the network.
        std::fs::remove_file(fx.root.path().join("vendor/dashboards/flux-cluster.json")).unwrap();
        let before = fx.requests();
        let restored = fx.run(Some(&lock), Update::Sticky, false).unwrap();
        assert_eq!(fx.requests(), before);
        assert_eq!(
            restored.writes.keys().collect::<Vec<_>>(),
            ["vendor/dashboards/flux-cluster.json"]
        );
        assert!(
            restored.changes[0]
                .to_string()
                .contains("Restoring flux-cluster"),
            "{:?}",
            restored.changes
        );

        // Offline, from a fresh checkout (no lock, no vendor/), the cache alone gives the same lock.
        let fresh = Fixture {
            root: tempfile::tempdir().unwrap(),
            ..fx
        };
        let before = fresh.requests();
        let offline = fresh.run(None, Update::Sticky, true).unwrap();
        assert_eq!(fresh.requests(), before);
        assert_eq!(offline.lock, lock);
        assert_eq!(offline.writes.len(), 2);
    }

    #[test]
    fn content_changed_under_the_same_version_is_refused_even_with_update() {
        let other = digest::sha256(b"republished")["sha256:".len()..].to_string();
        let fx = Fixture::new(vec![
            ok(&index(&chart_digest_hex()), ""),
            ok(&index(&other), ""),
        ]);
        let first = fx.run(None, Update::Sticky, false).unwrap();
        fx.commit(&first);
        let err = fx
            .run(
                Some(&first.lock),
                Update::Only(["alloy".to_string()].into()),
                false,
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("chart `alloy`: upstream content changed under the same version 1.1.2"),
            "{err}"
        );
        assert!(
            err.contains(&other) && err.contains("Nothing was re-pinned"),
            "{err}"
        );
    }

    #[test]
    fn sticky_pin_whose_upstream_bytes_changed_fails_on_a_cold_cache() {
        let fx = Fixture::new(vec![ok(&index(&chart_digest_hex()), "")]);
        let first = fx.run(None, Update::Sticky, false).unwrap();
        fx.commit(&first);
        let cold = Fixture {
            cache: tempfile::tempdir().unwrap(),
            root: tempfile::tempdir().unwrap(),
            server: serve_routes(vec![(
                "/flux/cluster.json",
                vec![ok(br#"{"title": "Changed", "panels": []}"#, "")],
            )]),
            manifest: Manifest::parse(&format!(
                "{}\n[dashboards.flux-cluster]\nurl = \"https://dash.example/flux/cluster.json\"\n",
                &INPUTS[..INPUTS.find("[charts.alloy]").unwrap()]
            ))
            .unwrap(),
        };
        let mut lock = first.lock.clone();
        lock.charts.clear();
        lock.dashboards.retain(|n, _| n.as_str() == "flux-cluster");
        let err = cold
            .run(Some(&lock), Update::Sticky, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("dashboard `flux-cluster`: upstream content changed"),
            "{err}"
        );
    }

    #[test]
    fn offline_on_a_cold_cache_names_what_is_missing_and_asks_nothing() {
        let fx = Fixture::new(vec![ok(&index(&chart_digest_hex()), "")]);
        let err = fx.run(None, Update::Sticky, true).unwrap_err().to_string();
        // Each input runs straight through, so every one that cannot be locked is named, the URL
        // dashboard (which needs no resolving) included.
        assert!(err.contains("3 inputs failed"), "{err}");
        assert!(
            err.contains("chart `alloy`")
                && err.contains("dashboard `flux-cluster`")
                && err.contains("without --offline"),
            "{err}"
        );
        assert_eq!(fx.requests(), 0);
    }

    #[test]
    fn unknown_update_name_is_an_error() {
        let fx = Fixture::new(vec![ok(&index(&chart_digest_hex()), "")]);
        let err = fx
            .run(None, Update::Only(["lokii".to_string()].into()), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--update lokii"), "{err}");
    }

    #[test]
    fn removed_inputs_leave_the_lock_and_vendor() {
        let fx = Fixture::new(vec![ok(&index(&chart_digest_hex()), "")]);
        let first = fx.run(None, Update::Sticky, false).unwrap();
        fx.commit(&first);
        let fewer = Fixture {
            manifest: Manifest::parse(&INPUTS.replace(
                "[dashboards.flux-cluster]\nurl = \"https://dash.example/flux/cluster.json\"\n",
                "",
            ))
            .unwrap(),
            ..fx
        };
        let out = fewer.run(Some(&first.lock), Update::Sticky, false).unwrap();
        assert_eq!(
            out.deletes.iter().collect::<Vec<_>>(),
            ["vendor/dashboards/flux-cluster.json"]
        );
        assert_eq!(out.changes.len(), 1);
        assert_eq!(
            out.changes[0].to_string(),
            "    Removing flux-cluster \"Flux Cluster Stats\""
        );
    }

    #[test]
    fn change_table_shows_old_and_new() {
        let mut old = Lock::default();
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
            blake3: crate::digest::blake3(b"b").parse().unwrap(),
        };
        old.charts.insert(name.clone(), chart.clone());
        let mut new = old.clone();
        new.charts.get_mut(&name).unwrap().version = "6.49.0".into();
        assert_eq!(
            changes(Some(&old), &new)[0].to_string(),
            "    Updating loki 6.48.0 -> 6.49.0"
        );
        let mut req = old.clone();
        req.charts.get_mut(&name).unwrap().requirement = "6.48.0".into();
        assert_eq!(
            changes(Some(&old), &req)[0].to_string(),
            "    Updating loki 6.48.0 (requirement \"^6\" -> \"6.48.0\")"
        );
    }
}
