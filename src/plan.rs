//! The plan: which modules are active for these settings, what each depends on after optional
//! dependencies and capabilities are resolved, and the order Flux applies them in. Everything a build
//! decides about the stack's shape is decided here, before any YAML is produced.

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::SpanError;
use crate::manifest::{Manifest, MANIFEST_FILE};
use crate::module::{Module, ModuleSet};
use crate::settings::Settings;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Located(#[from] SpanError),
    #[error("module `{module}` depends on `{dependency}`, {why}\nhelp: {help}")]
    Dependency {
        module: String,
        dependency: String,
        why: String,
        help: String,
    },
    #[error("modules {} both provide `{capability}`, and only one may be active\nhelp: {help}", .modules.join(" and "))]
    Conflict {
        capability: String,
        modules: Vec<String>,
        help: String,
    },
    #[error("modules/{module}/module.toml: release uses chart `{chart}`, which stack.toml does not declare\nhelp: add [charts.{chart}] to stack.toml, then run `stack lock`")]
    UnknownChart { module: String, chart: String },
    #[error(transparent)]
    Cycle(#[from] crate::graph::CycleError),
}

/// An active module with its resolved dependencies (module names, sorted).
#[derive(Debug, Clone)]
pub struct Component {
    pub module: Module,
    pub depends_on: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub settings: Settings,
    /// Active components in dependency order (ties broken by name).
    pub components: Vec<Component>,
}

impl Plan {
    pub fn new(manifest: &Manifest, modules: &ModuleSet) -> Result<Plan, PlanError> {
        let settings = modules
            .schema
            .resolve(&manifest.settings, MANIFEST_FILE, &manifest.text)?;
        check_enabled(manifest, modules)?;
        let active: BTreeMap<&str, &Module> = modules
            .modules
            .iter()
            .filter(|(name, m)| manifest.enabled.contains_key(*name) && m.when.holds(&settings))
            .map(|(name, m)| (name.as_str(), m))
            .collect();

        let providers = providers(&active)?;
        let mut deps = dependencies(manifest, modules, &settings, &active, &providers)?;
        let order = crate::graph::order(&deps)?;
        let components = order
            .into_iter()
            .map(|name| Component {
                module: active[name.as_str()].clone(),
                depends_on: deps.remove(&name).unwrap_or_default(),
            })
            .collect();
        Ok(Plan {
            settings,
            components,
        })
    }

    /// Datasources provisioned by active modules, by Grafana plugin id.
    pub fn datasources(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for c in &self.components {
            for (plugin, name) in &c.module.datasources {
                out.insert(plugin.clone(), name.clone());
            }
        }
        out
    }
}

/// Every module `[modules] enabled` names exists in modules/.
fn check_enabled(manifest: &Manifest, modules: &ModuleSet) -> Result<(), PlanError> {
    for (name, span) in &manifest.enabled {
        if !modules.modules.contains_key(name) {
            let known: Vec<&str> = modules.modules.keys().map(String::as_str).collect();
            return Err(manifest
                .error_at(Some(span.clone()), format!("unknown module `{name}`"))
                .help(format!("modules in modules/: {}", known.join(", ")))
                .into());
        }
    }
    Ok(())
}

/// Why a module is not active, for messages about dependencies on it.
fn inactive_reason(
    manifest: &Manifest,
    modules: &ModuleSet,
    settings: &Settings,
    name: &str,
) -> Option<String> {
    let module = modules.modules.get(name)?;
    if !manifest.enabled.contains_key(name) {
        Some(format!(
            "which is not enabled in [modules] of {MANIFEST_FILE}"
        ))
    } else if !module.when.holds(settings) {
        Some(format!(
            "which is inactive because its condition `{}` does not hold",
            module.when
        ))
    } else {
        None
    }
}

/// The active module providing each capability; two active providers of one are a conflict.
fn providers<'a>(
    active: &BTreeMap<&'a str, &'a Module>,
) -> Result<BTreeMap<&'a str, Vec<&'a str>>, PlanError> {
    let mut providers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, module) in active {
        for capability in &module.provides {
            providers.entry(capability.as_str()).or_default().push(name);
        }
    }
    for (capability, names) in &providers {
        if names.len() > 1 {
            return Err(PlanError::Conflict {
                capability: capability.to_string(),
                modules: names.iter().map(|s| format!("`{s}`")).collect(),
                help: "choose one with the setting their `when` conditions read (e.g. monitoring_stack), or remove one from [modules] enabled".into(),
            });
        }
    }

    Ok(providers)
}

/// What each active module depends on (module names, capabilities resolved to their provider);
/// a required dependency that is not active is an error saying why.
fn dependencies(
    manifest: &Manifest,
    modules: &ModuleSet,
    settings: &Settings,
    active: &BTreeMap<&str, &Module>,
    providers: &BTreeMap<&str, Vec<&str>>,
) -> Result<BTreeMap<String, BTreeSet<String>>, PlanError> {
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, module) in active {
        if let Some(release) = &module.release {
            if !manifest.charts.contains_key(&release.chart) {
                return Err(PlanError::UnknownChart {
                    module: name.to_string(),
                    chart: release.chart.to_string(),
                });
            }
        }
        let mut needs = BTreeSet::new();
        for (dependency, optional) in module
            .depends_on
            .iter()
            .map(|d| (d, false))
            .chain(module.optional_depends_on.iter().map(|d| (d, true)))
        {
            let target = if modules.modules.contains_key(dependency) {
                active
                    .contains_key(dependency.as_str())
                    .then(|| dependency.clone())
            } else {
                providers.get(dependency.as_str()).map(|p| p[0].to_string())
            };
            match target {
                Some(t) => {
                    needs.insert(t);
                }
                None if optional => {}
                None => {
                    let why = inactive_reason(manifest, modules, settings, dependency)
                        .unwrap_or_else(|| {
                            let could: Vec<&str> = modules
                                .modules
                                .values()
                                .filter(|m| m.provides.contains(dependency))
                                .map(|m| m.name.as_str())
                                .collect();
                            format!(
                                "a capability no active module provides (provided by: {})",
                                could.join(", ")
                            )
                        });
                    return Err(PlanError::Dependency {
                        module: name.to_string(),
                        dependency: dependency.clone(),
                        why,
                        help: format!(
                            "enable what `{dependency}` needs, disable `{name}`, or mark the dependency optional in modules/{name}/module.toml (optional_depends_on)"
                        ),
                    });
                }
            }
        }
        deps.insert(name.to_string(), needs);
    }
    Ok(deps)
}
