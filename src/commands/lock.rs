//! `stack lock`: pin every input of stack.toml into stack.lock and vendor/ (all or nothing), or with
//! `--check` say whether they are current. Parses the flags, sets up the network (unless `--offline`),
//! calls [`crate::resolve`], writes through [`crate::transaction`] and prints the change table.

use std::io::IsTerminal as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::auth::AuthStore;
use crate::cli::LockArgs;
use crate::http::Http;
use crate::lock::{Lock, LOCK_FILE};
use crate::manifest::{ChartSource, Manifest, MANIFEST_FILE};
use crate::resolve::{self, Options, Update};
use crate::source::{Access, Mirrors, Net};
use crate::store::Store;
use crate::transaction::{self, Recovery, Transaction};

pub fn run(root: &Path, args: &LockArgs) -> anyhow::Result<ExitCode> {
    if args.remote && args.offline {
        bail!("--check --remote asks upstream, which --offline forbids; drop one of them");
    }
    if args.check && args.update.is_some() {
        bail!("--check only reads stack.lock and --update rewrites it; use one or the other");
    }
    if args.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let guard = transaction::guard(root)?;
    match transaction::recover(&guard).context("finishing an interrupted `stack lock`")? {
        Recovery::Clean => {}
        Recovery::RolledForward => eprintln!(
            "note: finished writing stack.lock and vendor/ of an interrupted `stack lock`"
        ),
        Recovery::Discarded => {
            eprintln!("note: discarded the unfinished work of an interrupted `stack lock`; stack.lock and vendor/ are as they were")
        }
    }

    let manifest_path = root.join(MANIFEST_FILE);
    let text = fs_err::read_to_string(&manifest_path).context("reading the stack's manifest")?;
    let manifest = Manifest::parse(&text)?;
    let lock_path = root.join(LOCK_FILE);
    let old_text = match std::fs::read_to_string(&lock_path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", lock_path.display())),
    };
    let old = old_text.as_deref().map(Lock::parse).transpose()?;
    let options = Options {
        update: Update::from_flag(&args.update),
        jobs: args.jobs,
        progress: !args.quiet && std::io::stderr().is_terminal(),
    };

    if args.check {
        return check(root, &manifest, old.as_ref(), args, &options);
    }

    let mirrors = Mirrors::new(&manifest.mirrors, &args.mirrors)?;
    let store = Store::open_default()?;
    let net = if args.offline {
        None
    } else {
        Some(connect(&manifest, &mirrors, &store)?)
    };
    let access = match &net {
        Some(net) => Access::Online(net),
        None => Access::Offline {
            store: &store,
            mirrors: &mirrors,
        },
    };
    let outcome = runtime()?.block_on(resolve::lock(
        root,
        &manifest,
        old.as_ref(),
        access,
        &options,
    ))?;
    for w in &outcome.warnings {
        eprintln!("warning: {w}");
    }

    let new_text = outcome.lock.to_toml();
    let lock_changed = old_text.as_deref() != Some(new_text.as_str());
    if !lock_changed && outcome.writes.is_empty() && outcome.deletes.is_empty() {
        eprintln!(
            "{LOCK_FILE} is up to date: nothing changed ({})",
            counts(&outcome.lock)
        );
        return Ok(ExitCode::SUCCESS);
    }

    let mut txn = Transaction::begin(&guard).context("starting to write stack.lock and vendor/")?;
    for (path, bytes) in &outcome.writes {
        txn.write(path, bytes).context("staging vendor/")?;
    }
    for path in &outcome.deletes {
        txn.delete(path).context("staging vendor/")?;
    }
    if lock_changed {
        txn.write(LOCK_FILE, new_text.as_bytes())
            .context("staging stack.lock")?;
    }
    txn.commit().context("writing stack.lock and vendor/")?;

    for change in &outcome.changes {
        eprintln!("{change}");
    }
    if outcome.changes.is_empty() {
        eprintln!("{:>12} {LOCK_FILE} (no pin changed)", "Rewrote");
    }
    Ok(ExitCode::SUCCESS)
}

/// The network context. Constructing it opens no connection.
fn connect(manifest: &Manifest, mirrors: &Mirrors, store: &Store) -> anyhow::Result<Net> {
    let http = Http::from_env()?;
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `--check` (offline) and `--check --remote`.
fn check(
    root: &Path,
    manifest: &Manifest,
    lock: Option<&Lock>,
    args: &LockArgs,
    options: &Options,
) -> anyhow::Result<ExitCode> {
    let Some(lock) = lock else {
        eprintln!("error: {LOCK_FILE} does not exist\nhelp: run `stack lock` and commit {LOCK_FILE} and vendor/");
        return Ok(ExitCode::from(1));
    };
    let mut problems = lock.mismatches(manifest);
    problems.extend(resolve::vendor_mismatches(root, lock)?);
    problems.extend(crate::integrity::vendor_problems(root, lock).context("checking vendor/")?);
    if !problems.is_empty() {
        eprintln!("error: {LOCK_FILE} is not up to date with {MANIFEST_FILE}:");
        for p in &problems {
            eprintln!("  {p}");
        }
        eprintln!("help: run `stack lock` and commit {LOCK_FILE} and vendor/");
        return Ok(ExitCode::from(1));
    }
    if args.remote {
        let mirrors = Mirrors::new(&manifest.mirrors, &args.mirrors)?;
        let store = Store::open_default()?;
        let net = connect(manifest, &mirrors, &store)?;
        let newer = runtime()?.block_on(resolve::remote_check(
            manifest,
            lock,
            Access::Online(&net),
            options,
        ))?;
        if !newer.is_empty() {
            eprintln!("error: upstream has changed since {LOCK_FILE} was written:");
            for n in &newer {
                eprintln!("  {n}");
            }
            eprintln!("help: run `stack lock --update NAME` for the inputs to move, then commit {LOCK_FILE} and vendor/");
            return Ok(ExitCode::from(1));
        }
        println!(
            "{LOCK_FILE} is up to date, and upstream has nothing newer ({})",
            counts(lock)
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("{LOCK_FILE} is up to date ({})", counts(lock));
    Ok(ExitCode::SUCCESS)
}

/// "2 charts, 1 dashboard".
fn counts(lock: &Lock) -> String {
    let n =
        |count: usize, noun: &str| format!("{count} {noun}{}", if count == 1 { "" } else { "s" });
    format!(
        "{}, {}",
        n(lock.charts.len(), "chart"),
        n(lock.dashboards.len(), "dashboard")
    )
}
