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
    /// The file the bytes came from.
    pub(super) path: String,
    pub(super) bytes: Vec<u8>,
    pub(super) provision: dashboard::Provision<'a>,
    pub(super) folder: &'a str,
    /// A module's own dashboard: its queries must use only recording rules the stack defines.
    pub(super) own: bool,
}

/// No constants and no per-input datasources: a module's own dashboards resolve by what is provisioned.
pub(super) static NO_OVERRIDES: BTreeMap<String, String> = BTreeMap::new();

/// The dashboards `module` ships with these settings, in a fixed order: vendored ones by name (their
/// bytes checked against the lock), then the module's own in module.toml order.
pub(super) fn shipped_dashboards<'a>(
    root: &Path,
    manifest: &'a Manifest,
    lock: &Lock,
    plan: &Plan,
    module: &'a crate::module::Module,
) -> Result<Vec<ToShip<'a>>, BuildError> {
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
                bytes: vendored_bytes(root, name.as_str(), locked)?,
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
            bytes: own.bytes.clone(),
            provision: dashboard::Provision {
                datasource: None,
                datasources: &NO_OVERRIDES,
                inputs: &NO_OVERRIDES,
            },
            folder: &own.folder,
            own: true,
        });
    }
    Ok(out)
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
    let doc: serde_json::Value =
        serde_json::from_slice(&dash.bytes).map_err(|e| BuildError::Values {
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
