//! The dashboards a component ships: vendored ones checked against the lock, the module's own, and the
//! recording rules their queries need.

use super::*;

/// A dashboard a component ships: a vendored one of stack.toml (when the module carries them) or one
/// of the module's own.
pub(super) struct ToShip<'a> {
    /// The ConfigMap is `dashboard-<name>`.
    pub(super) name: String,
    /// For messages: `[dashboards.NAME] of stack.toml` or the module file.
    pub(super) input: String,
    /// The file the bytes come from.
    pub(super) path: String,
    pub(super) bytes: Bytes<'a>,
    pub(super) provision: dashboard::Provision<'a>,
    pub(super) folder: &'a str,
    /// A module's own dashboard: its queries must use only recording rules the stack defines.
    pub(super) own: bool,
}

/// Where a dashboard's bytes are: read (and checked against the lock) only when it is rendered, so a
/// build holds one input dashboard per worker at a time, not all of them.
pub(super) enum Bytes<'a> {
    /// Vendored under `[dashboards.NAME]`, pinned by the lock.
    Vendored(&'a crate::lock::LockedDashboard),
    /// A module's own file, read with the module.
    Own(&'a [u8]),
}

impl ToShip<'_> {
    /// The dashboard's bytes (a vendored one checked against its lock entry).
    pub(super) fn read(&self, root: &Path) -> Result<std::borrow::Cow<'_, [u8]>, BuildError> {
        match self.bytes {
            Bytes::Vendored(locked) => Ok(vendored_bytes(root, &self.name, locked)?.into()),
            Bytes::Own(bytes) => Ok(bytes.into()),
        }
    }
}

/// One dashboard read and rendered: the outer error is reading it (missing, or not what the lock pins),
/// the inner one rendering it.
pub(super) type Outcome =
    Result<Result<dashboard::Rendered, dashboard::DashboardError>, BuildError>;

/// Reads and renders `list` on every core, returning the outcomes in `list`'s order (so the output and
/// the first error reported are those of rendering them one by one).
pub(super) fn render_all(
    root: &Path,
    list: &[ToShip],
    ds: &dashboard::Datasources,
) -> Vec<Outcome> {
    let one = |dash: &ToShip| -> Outcome {
        let bytes = dash.read(root)?;
        Ok(dashboard::render(
            &dash.name,
            &dash.path,
            &bytes,
            &dash.provision,
            ds,
        ))
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(list.len() / 4);
    if workers < 2 {
        return list.iter().map(one).collect();
    }
    let mut outcomes: Vec<(usize, Outcome)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let one = &one;
                scope.spawn(move || {
                    (w..list.len())
                        .step_by(workers)
                        .map(|i| (i, one(&list[i])))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a render worker does not panic"))
            .collect()
    });
    outcomes.sort_by_key(|(i, _)| *i);
    outcomes.into_iter().map(|(_, o)| o).collect()
}

/// No constants and no per-input datasources: a module's own dashboards resolve by what is provisioned.
pub(super) static NO_OVERRIDES: BTreeMap<String, String> = BTreeMap::new();

/// The dashboards `module` ships with these settings, in a fixed order: vendored ones by name (their
/// bytes read and checked against the lock when rendered), then the module's own in module.toml order.
pub(super) fn shipped_dashboards<'a>(
    manifest: &'a Manifest,
    lock: &'a Lock,
    plan: &Plan,
    module: &'a crate::module::Module,
) -> Vec<ToShip<'a>> {
    let mut out = Vec::new();
    if module.dashboards {
        for (name, spec) in manifest
            .dashboards
            .iter()
            .filter(|(_, d)| d.when.holds(&plan.settings))
        {
            let locked = &lock.dashboards()[name];
            out.push(ToShip {
                name: name.to_string(),
                input: format!("[dashboards.{name}] of {MANIFEST_FILE}"),
                path: locked.path.clone(),
                bytes: Bytes::Vendored(locked),
                provision: dashboard::Provision::from(spec),
                folder: &spec.folder,
                own: false,
            });
        }
    }
    for own in module
        .own_dashboards
        .iter()
        .filter(|d| d.when.holds(&plan.settings))
    {
        out.push(ToShip {
            name: own.name.clone(),
            input: own.path.clone(),
            path: own.path.clone(),
            bytes: Bytes::Own(&own.bytes),
            provision: dashboard::Provision {
                datasource: None,
                datasources: &NO_OVERRIDES,
                inputs: &NO_OVERRIDES,
            },
            folder: &own.folder,
            own: true,
        });
    }
    out
}

/// Every series the active modules' PrometheusRules record (with these settings).
pub(super) fn recorded_series(plan: &Plan) -> std::collections::BTreeSet<String> {
    plan.components
        .iter()
        .flat_map(|c| &c.module.manifests)
        .filter(|m| m.when.holds(&plan.settings))
        .flat_map(|m| &m.file.documents)
        .flat_map(promql::recorded_series)
        .collect()
}

/// A module's own dashboard may query only recording rules some active module records: a missing
/// one is a panel that shows "No data" forever.
pub(super) fn check_recording_rules(
    dash: &ToShip,
    recorded: &std::collections::BTreeSet<String>,
) -> Result<(), BuildError> {
    let Bytes::Own(bytes) = dash.bytes else {
        return Ok(());
    };
    let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| BuildError::Values {
        path: dash.path.clone(),
        message: e.to_string(),
    })?;
    for query in promql::panel_queries(&doc) {
        if let Some(rule) = promql::recording_rules(&query.expr)
            .into_iter()
            .find(|r| !recorded.contains(r))
        {
            return Err(BuildError::MissingRecordingRule {
                dashboard: dash.name.clone(),
                path: dash.path.clone(),
                panel: query.panel,
                rule,
            });
        }
    }
    Ok(())
}

/// The vendored bytes of a locked dashboard, which must hash to the lock.
pub(super) fn vendored_bytes(
    root: &Path,
    name: &str,
    locked: &crate::lock::LockedDashboard,
) -> Result<Vec<u8>, BuildError> {
    let bytes = match crate::contain::read(root, &locked.path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BuildError::VendorMissing {
                name: name.to_string(),
                path: locked.path.clone(),
            })
        }
        Err(source) => {
            return Err(BuildError::Read {
                path: locked.path.clone(),
                source,
            })
        }
    };
    let actual = crate::digest::blake3(&bytes);
    if actual != locked.blake3 {
        return Err(BuildError::VendorMismatch {
            name: name.to_string(),
            path: locked.path.clone(),
            expected: locked.blake3.to_string(),
            actual,
        });
    }
    Ok(bytes)
}
