//! `stack outdated`: for every input, the version stack.lock pins, the newest version its requirement
//! accepts and the newest version upstream has (as `cargo outdated` shows them), and for grafana.com
//! dashboards the newest revision. It reads stack.toml and stack.lock and asks upstream; it writes
//! nothing. Prereleases count as "newest" only when the requirement accepts them.

use serde::Serialize;

use crate::lock::Lock;
use crate::manifest::{ChartSource, DashboardSource, Manifest};
use crate::source::{grafana, helm_repo, oci, Access};
use crate::version_req::parse_tag;

/// One input's versions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub name: String,
    /// `chart` or `dashboard`.
    pub kind: &'static str,
    /// The requirement of stack.toml (`*` when none is written; a dashboard's pinned revision or `latest`).
    pub requirement: String,
    /// What stack.lock pins (`None` when the input is not locked yet).
    pub locked: Option<String>,
    /// The newest version (revision) the requirement accepts.
    pub compatible: Option<String>,
    /// The newest version (revision) upstream.
    pub latest: Option<String>,
    /// `compatible` or `latest` differs from `locked`.
    pub outdated: bool,
}

/// Versions a chart has upstream, as tags or index entries.
async fn chart_versions(
    access: Access<'_>,
    name: &str,
    source: &ChartSource,
) -> anyhow::Result<Vec<String>> {
    Ok(match source {
        ChartSource::Oci { url } => oci::Ctx::new(access, name, url).list_tags().await?,
        ChartSource::Repo { url, chart } => {
            let wanted = std::collections::BTreeSet::from([chart.clone()]);
            let index = helm_repo::fetch_index(&access, url, &wanted)
                .await
                .map_err(|m| anyhow::anyhow!("chart `{name}`: {m}"))?;
            let (entries, _) = index.entries(chart).ok_or_else(|| {
                anyhow::anyhow!("chart `{name}`: {url}/index.yaml has no chart `{chart}`")
            })?;
            entries.into_iter().map(|e| e.version).collect()
        }
    })
}

/// The newest of `versions`, stable ones only unless `prereleases`.
fn newest(versions: &[String], prereleases: bool) -> Option<String> {
    versions
        .iter()
        .filter_map(|v| parse_tag(v).map(|p| (p, v)))
        .filter(|(p, _)| prereleases || p.pre.is_empty())
        .max()
        .map(|(p, _)| p.to_string())
}

/// A chart's row from its upstream versions.
pub fn chart_row(
    name: &str,
    requirement: &crate::version_req::VersionReq,
    locked: Option<&str>,
    versions: &[String],
) -> Row {
    let compatible = requirement
        .select(versions.iter().map(String::as_str))
        .map(|(_, v)| v.to_string());
    let prereleases = compatible
        .as_deref()
        .and_then(parse_tag)
        .is_some_and(|v| !v.pre.is_empty());
    let latest = newest(versions, prereleases);
    row(
        name,
        "chart",
        requirement.as_str().to_string(),
        locked.map(String::from),
        compatible,
        latest,
    )
}

fn row(
    name: &str,
    kind: &'static str,
    requirement: String,
    locked: Option<String>,
    compatible: Option<String>,
    latest: Option<String>,
) -> Row {
    let outdated = [&compatible, &latest]
        .iter()
        .any(|v| v.is_some() && **v != locked);
    Row {
        name: name.to_string(),
        kind,
        requirement,
        locked,
        compatible,
        latest,
        outdated,
    }
}

/// Asks upstream about every chart and grafana.com dashboard, `jobs` at a time. Rows are sorted by kind
/// then name. URL dashboards have no versions and are left out.
pub async fn check(
    manifest: &Manifest,
    lock: Option<&Lock>,
    access: Access<'_>,
    jobs: usize,
) -> anyhow::Result<Vec<Row>> {
    use futures_util::stream::{self, StreamExt};
    type Job<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Row>> + 'a>>;
    let mut work: Vec<Job<'_>> = Vec::new();
    for (name, spec) in &manifest.charts {
        let locked = lock
            .and_then(|l| l.charts.get(name))
            .map(|l| l.version.clone());
        work.push(Box::pin(async move {
            let versions = chart_versions(access, name.as_str(), &spec.source).await?;
            Ok(chart_row(
                name.as_str(),
                &spec.version,
                locked.as_deref(),
                &versions,
            ))
        }));
    }
    for (name, spec) in &manifest.dashboards {
        let DashboardSource::GrafanaCom { id, revision } = spec.source else {
            continue;
        };
        let locked = lock
            .and_then(|l| l.dashboards.get(name))
            .and_then(|l| l.revision)
            .map(|r| r.to_string());
        work.push(Box::pin(async move {
            let meta = grafana::meta(&access, name.as_str(), id).await?;
            let latest = meta.latest_revision.to_string();
            let (requirement, compatible) = match revision {
                Some(r) => (r.to_string(), r.to_string()),
                None => ("latest".to_string(), latest.clone()),
            };
            Ok(row(
                name.as_str(),
                "dashboard",
                requirement,
                locked,
                Some(compatible),
                Some(latest),
            ))
        }));
    }
    // Every input is asked; failures are reported together and sorted, so the message does not depend
    // on which answer came first.
    let results: Vec<anyhow::Result<Row>> = stream::iter(work)
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    let (mut rows, mut failed) = (Vec::new(), Vec::new());
    for result in results {
        match result {
            Ok(row) => rows.push(row),
            Err(e) => failed.push(format!("{e:#}").replace('\n', "\n    ")),
        }
    }
    if !failed.is_empty() {
        failed.sort();
        anyhow::bail!(
            "{} input{} could not be asked:\n  {}",
            failed.len(),
            if failed.len() == 1 { "" } else { "s" },
            failed.join("\n  ")
        );
    }
    rows.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    Ok(rows)
}

/// A table like `cargo outdated`'s: only the outdated rows, `-` where there is no value.
pub fn table(rows: &[Row]) -> String {
    let shown: Vec<[String; 6]> = rows
        .iter()
        .filter(|r| r.outdated)
        .map(|r| {
            let v = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
            [
                r.name.clone(),
                r.kind.to_string(),
                r.requirement.clone(),
                v(&r.locked),
                v(&r.compatible),
                v(&r.latest),
            ]
        })
        .collect();
    if shown.is_empty() {
        return format!("all {} inputs are up to date\n", rows.len());
    }
    let header = [
        "Name",
        "Kind",
        "Requirement",
        "Locked",
        "Compatible",
        "Latest",
    ]
    .map(String::from);
    let mut widths = [0usize; 6];
    for line in std::iter::once(&header).chain(&shown) {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in std::iter::once(&header).chain(&shown) {
        let cells: Vec<String> = line
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn compatible_follows_the_requirement_and_latest_skips_prereleases() {
        let all = versions(&[
            "6.48.0",
            "6.49.0",
            "6.49.1",
            "7.0.0",
            "7.1.0-rc.1",
            "latest",
        ]);
        let r = chart_row("loki", &"~6.49".parse().unwrap(), Some("6.49.0"), &all);
        assert_eq!(r.compatible.as_deref(), Some("6.49.1"));
        assert_eq!(r.latest.as_deref(), Some("7.0.0"));
        assert!(r.outdated);
        let exact = chart_row("loki", &"7.0.0".parse().unwrap(), Some("7.0.0"), &all);
        assert!(!exact.outdated, "{exact:?}");
    }

    #[test]
    fn the_table_lists_only_outdated_inputs() {
        let all = versions(&["1.0.0", "1.1.0"]);
        let rows = vec![
            chart_row("a", &"^1".parse().unwrap(), Some("1.0.0"), &all),
            chart_row("b", &"^1".parse().unwrap(), Some("1.1.0"), &all),
        ];
        assert_eq!(
            table(&rows),
            "Name  Kind   Requirement  Locked  Compatible  Latest\na     chart  ^1           1.0.0   1.1.0       1.1.0\n"
        );
    }
}
