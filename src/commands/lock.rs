//! `stack lock`: pin every input of stack.toml into stack.lock and vendor/ (all or nothing), or with
//! `--check` say whether they are current. Parses the flags, sets up the network (unless `--offline`),
//! calls [`crate::resolve`], writes through [`crate::transaction`] and prints the change table.

#![allow(
    clippy::disallowed_methods,
    reason = "its errors are wrapped with the stack-relative path; fs_err would add the absolute one to output"
)]

use std::path::Path;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::auth::AuthStore;
use crate::cli::LockArgs;
use crate::http::Http;
use crate::lock::{Lock, Written, LOCK_FILE};
use crate::manifest::{ChartSource, Manifest, MANIFEST_FILE};
use crate::resolve::{self, Options, Update};
use crate::source::{Access, Mirrors, Net};
use crate::store::Store;
use crate::transaction::{self, Recovery, Transaction};
use crate::ui;
use crate::CheckFailed;

/// The `--json` result of `stack lock` and `stack lock --check`.
#[derive(Debug, Default, Serialize)]
struct LockJson {
    check: bool,
    remote: bool,
    /// `--check`: stack.lock and vendor/ match stack.toml (and upstream, with `--remote`). Without
    /// `--check`: nothing needed writing.
    up_to_date: bool,
    /// `stack lock`: whether stack.lock or vendor/ were written.
    written: bool,
    /// `stack lock`: whether stack.lock itself was written (false when only vendor/ was restored).
    lock_written: bool,
    charts: usize,
    dashboards: usize,
    changes: Vec<ChangeJson>,
    /// `--check`: why the lock is not current, one line per input.
    problems: Vec<String>,
    warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ChangeJson {
    /// `added`, `updated`, `removed` or `restored`.
    action: &'static str,
    name: String,
    /// What the entry is or became (`6.48.0 -> 6.49.0`, a dashboard's title, the restored path).
    detail: String,
}

impl From<&resolve::Change> for ChangeJson {
    fn from(change: &resolve::Change) -> ChangeJson {
        use resolve::Change::*;
        let (action, name, detail) = match change {
            Added { name, what } => ("added", name, what),
            Updated { name, what } => ("updated", name, what),
            Removed { name, what } => ("removed", name, what),
            Restored { name, path } => ("restored", name, path),
        };
        ChangeJson {
            action,
            name: name.clone(),
            detail: detail.clone(),
        }
    }
}

pub fn run(root: &Path, args: &LockArgs) -> anyhow::Result<()> {
    check_flags(args)?;
    let guard = transaction::guard(root)?;
    report_recovery(&guard)?;

    // The same loader as `stack build`: stack.toml, modules/ and settings are validated alike, and the
    // settings say which dashboards the build ships (only those need vendored bytes).
    let (manifest, _modules, plan) = crate::build::load(root)?;
    let unshipped = crate::build::unshipped_dashboards(&manifest, &plan);
    let old_text = crate::lock::read_text(root)?;
    let old = old_text.as_deref().map(Lock::parse).transpose()?;
    let mut options = Options {
        update: Update::from_flag(&with_accepted(&args.update, &args.accept_changed)),
        accept_changed: args.accept_changed.iter().cloned().collect(),
        progress: ui::progress() && !args.json,
        unshipped,
        staging: None,
    };

    if args.check {
        return check(
            root,
            &manifest,
            old_text.as_deref(),
            old.as_ref(),
            args,
            &options,
        );
    }

    // Begun before resolving: each input's task stages its vendor/ files as its bytes come in.
    let txn = Transaction::begin(&guard).context("starting to write stack.lock and vendor/")?;
    options.staging = Some(txn.staging());
    let outcome = resolve_lock(root, &manifest, old.as_ref(), args, &options)?;
    for w in &outcome.warnings {
        ui::warning(w);
    }
    let mut json = LockJson {
        charts: outcome.lock.charts().len(),
        dashboards: outcome.lock.dashboards().len(),
        changes: outcome.changes.iter().map(ChangeJson::from).collect(),
        warnings: outcome.warnings.clone(),
        ..LockJson::default()
    };

    let unchanged = outcome.lock.compare(old_text.as_deref()) == Written::Unchanged;
    if unchanged && outcome.writes.is_empty() && outcome.deletes.is_empty() {
        json.up_to_date = true;
        if args.json {
            crate::json::print("lock", &json);
        } else {
            ui::status(&format!(
                "{LOCK_FILE} is up to date: nothing changed ({})",
                counts(&outcome.lock)
            ));
        }
        return Ok(());
    }

    write_outcome(txn, &outcome, old_text.as_deref())?;

    json.written = true;
    json.lock_written = !unchanged;
    if args.json {
        crate::json::print("lock", &json);
        return Ok(());
    }
    print_changes(&outcome, old_text.is_none(), !unchanged);
    Ok(())
}

/// Resolves the next lock, online or (with `--offline`) from the content cache alone.
fn resolve_lock(
    root: &Path,
    manifest: &Manifest,
    old: Option<&Lock>,
    args: &LockArgs,
    options: &Options,
) -> anyhow::Result<resolve::Outcome> {
    let mirrors = Mirrors::new(&manifest.mirrors, &args.mirrors)?;
    let store = Store::open_default()?;
    let net = if args.offline {
        None
    } else {
        Some(connect(manifest, &mirrors, &store, args.jobs)?)
    };
    let access = match &net {
        Some(net) => Access::Online(net),
        None => Access::Offline {
            store: &store,
            mirrors: &mirrors,
        },
    };
    Ok(runtime()?.block_on(resolve::lock(root, manifest, old, access, options))?)
}

/// Flags that cannot go together.
fn check_flags(args: &LockArgs) -> anyhow::Result<()> {
    if args.remote && args.offline {
        bail!("--check --remote asks upstream, which --offline forbids; drop one of them");
    }
    if args.check && args.update.is_some() {
        bail!("--check only reads stack.lock and --update rewrites it; use one or the other");
    }
    if args.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    Ok(())
}

/// Finishes (or discards) an interrupted `stack lock` and says which.
fn report_recovery(guard: &transaction::Guard) -> anyhow::Result<()> {
    match transaction::recover(guard).context("finishing an interrupted `stack lock`")? {
        Recovery::Clean => {}
        Recovery::RolledForward => ui::status(
            "note: finished writing stack.lock and vendor/ of an interrupted `stack lock`",
        ),
        Recovery::Discarded => ui::status(
            "note: discarded the unfinished work of an interrupted `stack lock`; stack.lock and vendor/ are as they were",
        ),
    }
    Ok(())
}

/// Writes vendor/ and (when it differs from `old_text`) stack.lock, all or nothing.
fn write_outcome(
    mut txn: Transaction,
    outcome: &resolve::Outcome,
    old_text: Option<&str>,
) -> anyhow::Result<()> {
    for (path, bytes) in &outcome.writes {
        txn.write(path, bytes).context("staging vendor/")?;
    }
    for path in &outcome.deletes {
        txn.delete(path).context("staging vendor/")?;
    }
    outcome
        .lock
        .write(old_text, &mut txn)
        .context("staging stack.lock")?;
    txn.commit().context("writing stack.lock and vendor/")?;
    Ok(())
}

/// The change table after a write; without changes, a line saying the lock was created or rewritten
/// (only when it was: vendor/ alone can be written back while stack.lock keeps its bytes).
fn print_changes(outcome: &resolve::Outcome, first: bool, lock_written: bool) {
    for change in &outcome.changes {
        ui::status(&change.to_string());
    }
    if outcome.changes.is_empty() && !lock_written {
        ui::status(&format!(
            "{:>12} vendor/ ({LOCK_FILE} unchanged)",
            "Restored"
        ));
    } else if outcome.changes.is_empty() {
        // The first lock of a stack without inputs creates the file; a later one only rewrites it.
        let verb = if first { "Creating" } else { "Rewrote" };
        let why = if first {
            counts(&outcome.lock)
        } else {
            "no pin changed".to_string()
        };
        ui::status(&format!("{verb:>12} {LOCK_FILE} ({why})"));
    }
}

/// The network context. Constructing it opens no connection.
pub(crate) fn connect(
    manifest: &Manifest,
    mirrors: &Mirrors,
    store: &Store,
    jobs: usize,
) -> anyhow::Result<Net> {
    let http = Http::from_env()?.with_requests_in_flight(jobs);
    let auth = AuthStore::load()?;
    for w in &auth.warnings {
        eprintln!("warning: {w}");
    }
    let mut plain = std::collections::BTreeSet::new();
    for spec in manifest.charts.values() {
        if let ChartSource::Oci { url } = &spec.source {
            let location = mirrors.oci(url);
            if location.plain_http {
                plain.insert(location.registry);
            }
        }
    }
    Ok(Net::new(
        http,
        auth,
        mirrors.clone(),
        store.clone(),
        plain.into_iter().collect(),
    )?)
}

/// The async runtime of the network commands. Its blocking threads do the file work of the inputs
/// (content cache, staging, unpacking; see [`crate::source::off_runtime`]); a few are enough, and each
/// thread started costs its stack and an allocator arena (a cold lock of 40 inputs once started ~40
/// of them and spent more system time on that than it saved, issue 15).
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(BLOCKING_THREADS)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// See [`runtime`]: more than the two cores, so that one file's flush does not hold back the others.
const BLOCKING_THREADS: usize = 4;

/// `--check` (offline) and `--check --remote`.
fn check(
    root: &Path,
    manifest: &Manifest,
    text: Option<&str>,
    lock: Option<&Lock>,
    args: &LockArgs,
    options: &Options,
) -> anyhow::Result<()> {
    let mut json = LockJson {
        check: true,
        remote: args.remote,
        ..LockJson::default()
    };
    let fix = format!("run `stack lock` and commit {LOCK_FILE} and vendor/");
    let Some(lock) = lock else {
        json.problems.push(format!("{LOCK_FILE} does not exist"));
        return failed(args, json, &format!("{LOCK_FILE} does not exist"), &fix);
    };
    json.charts = lock.charts().len();
    json.dashboards = lock.dashboards().len();
    json.warnings = crate::lock::answers::unverified_warnings(lock);
    if !args.json {
        json.warnings.iter().for_each(|w| ui::warning(w));
    }
    json.problems = lock.mismatches(manifest);
    if json.problems.is_empty() {
        json.problems.extend(lock.stale_fingerprint(manifest));
    }
    json.problems
        .extend(resolve::vendor_mismatches(root, lock, &options.unshipped)?);
    json.problems
        .extend(crate::integrity::vendor_problems(root, lock).context("checking vendor/")?);
    if !json.problems.is_empty() {
        let what = format!("{LOCK_FILE} is not up to date with {MANIFEST_FILE}:");
        return failed(args, json, &what, &fix);
    }
    if let Some(problem) = not_canonical(text, lock) {
        json.problems.push(problem);
        let what = format!(
            "{LOCK_FILE} pins what {MANIFEST_FILE} asks for, but is not in canonical form:"
        );
        let fix = format!("run `stack lock` (it rewrites {LOCK_FILE} in canonical form; no pin moves) and commit {LOCK_FILE}");
        return failed(args, json, &what, &fix);
    }
    let mut summary = format!("{LOCK_FILE} is up to date ({})", counts(lock));
    if args.remote {
        let mirrors = Mirrors::new(&manifest.mirrors, &args.mirrors)?;
        let store = Store::open_default()?;
        let net = connect(manifest, &mirrors, &store, args.jobs)?;
        json.problems = runtime()?.block_on(resolve::remote_check(
            manifest,
            lock,
            Access::Online(&net),
            options,
        ))?;
        if !json.problems.is_empty() {
            let what = format!("upstream has changed since {LOCK_FILE} was written:");
            let fix = format!("run `stack lock --update NAME` for the inputs to move (`stack lock --accept-changed NAME` for content changed under a pinned version), then commit {LOCK_FILE} and vendor/");
            return failed(args, json, &what, &fix);
        }
        summary = format!(
            "{LOCK_FILE} is up to date, and upstream has nothing newer ({})",
            counts(lock)
        );
    }
    json.up_to_date = true;
    if args.json {
        crate::json::print("lock", &json);
    } else {
        ui::result(&summary);
    }
    Ok(())
}

/// Why stack.lock's text is not what `stack lock` would write from its own entries, if it is not: the
/// check must fail wherever `stack lock` would rewrite the file.
fn not_canonical(text: Option<&str>, lock: &Lock) -> Option<String> {
    let text = text?;
    if lock.compare(Some(text)) == Written::Unchanged {
        return None;
    }
    let why = if text.contains('\r') {
        "it has CRLF line endings"
    } else {
        "its text differs from what `stack lock` writes (entries out of order, or hand-edited layout)"
    };
    Some(format!("{LOCK_FILE}: {why}"))
}

/// A check that found the lock not current: exit 1, with the problems as text on stderr or as JSON.
fn failed(args: &LockArgs, json: LockJson, what: &str, fix: &str) -> anyhow::Result<()> {
    if args.json {
        crate::json::print("lock", &json);
        return Err(CheckFailed::reported().into());
    }
    let mut text = format!("error: {what}");
    for p in json.problems.iter().filter(|p| !what.contains(p.as_str())) {
        text.push_str(&format!("\n  {p}"));
    }
    text.push_str(&format!("\nhelp: {fix}"));
    Err(CheckFailed::with_report(text).into())
}

/// "2 charts, 1 dashboard".
fn counts(lock: &Lock) -> String {
    let n =
        |count: usize, noun: &str| format!("{count} {noun}{}", if count == 1 { "" } else { "s" });
    format!(
        "{}, {}",
        n(lock.charts().len(), "chart"),
        n(lock.dashboards().len(), "dashboard")
    )
}

/// `--accept-changed NAME` re-resolves NAME too: the update list with the accepted names added.
fn with_accepted(update: &Option<Vec<String>>, accepted: &[String]) -> Option<Vec<String>> {
    match (update, accepted.is_empty()) {
        (_, true) => update.clone(),
        (Some(names), false) if names.is_empty() => Some(Vec::new()),
        (Some(names), false) => Some(names.iter().chain(accepted).cloned().collect()),
        (None, false) => Some(accepted.to_vec()),
    }
}
