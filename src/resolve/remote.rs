//! `stack lock --check --remote`: asks upstream, ignoring stickiness, whether the pins are still what
//! stack.toml would get.

use super::plan::fingerprint_holds;
use super::pool::{all_at_once, progress_bar, Key, Task};
use super::upstream::{ChartPin, Live, Upstream};
use super::{Options, ResolveError, Run};
use crate::digest;
use crate::lock::{Lock, LockedChart};
use crate::manifest::{ChartSpec, DashboardSource, Manifest, Name};
use crate::source::Access;
use crate::version_req::parse_tag;

/// Asks upstream, ignoring stickiness, whether something newer (or different) than the lock's pins meets
/// stack.toml. Only entries the lock answers are asked about; the offline check reports the rest.
pub async fn remote_check(
    manifest: &Manifest,
    lock: &Lock,
    access: Access<'_>,
    options: &Options,
) -> Result<Vec<String>, ResolveError> {
    let live = Live::new(access, manifest);
    let run = Run::new(&live, Some(lock), options);
    let fast = fingerprint_holds(Some(lock), manifest);
    let mut tasks: Vec<Task<'_, Option<String>>> = Vec::new();
    for (name, spec) in &manifest.charts {
        let Some(locked) = lock
            .charts()
            .get(name)
            .filter(|l| fast || l.answers(spec).is_ok())
        else {
            continue;
        };
        let run = &run;
        tasks.push((
            Key::Chart(name.clone()),
            Box::pin(check_chart(run, name, spec, locked)),
        ));
    }
    for (name, spec) in &manifest.dashboards {
        let Some(locked) = lock
            .dashboards()
            .get(name)
            .filter(|l| fast || l.answers(spec).is_ok())
        else {
            continue;
        };
        let run = &run;
        match &spec.source {
            DashboardSource::GrafanaCom { revision: Some(_), .. } => {}
            DashboardSource::GrafanaCom { id, revision: None } => tasks.push((
                Key::Dashboard(name.clone()),
                Box::pin(async move {
                    let latest = run.upstream.latest_revision(name, *id).await?;
                    Ok((Some(latest) != locked.revision).then(|| {
                        format!(
                            "dashboard `{name}`: grafana.com has revision {}, stack.lock has revision {} (run `stack lock --update {name}`)",
                            latest,
                            locked.revision.unwrap_or_default()
                        )
                    }))
                }),
            )),
            DashboardSource::Url { url } => tasks.push((
                Key::Dashboard(name.clone()),
                Box::pin(async move {
                    let (bytes, _) = run.upstream.url_dashboard(name, url).await?;
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
    let results = all_at_once(&bar, tasks).await;
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

/// The line `--check --remote` prints for a chart whose upstream answers differently than the lock.
async fn check_chart(
    run: &Run<'_, Live<'_>>,
    name: &Name,
    spec: &ChartSpec,
    locked: &LockedChart,
) -> Result<Option<String>, ResolveError> {
    let (version, digest) = match run.resolve_chart(name, spec, &spec.version).await? {
        ChartPin::Oci(pin) => (pin.version, Some(pin.digest)),
        ChartPin::Helm(pin) => (pin.version, pin.stated_digest),
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
}
