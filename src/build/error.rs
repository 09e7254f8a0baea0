//! What can stop `stack build`: one error per cause, each naming the file or input and what to do.

use crate::emit::{dashboard, objects};
use crate::lock::LOCK_FILE;
use crate::manifest::MANIFEST_FILE;

/// Why `stack build` (or the loading every command shares) stopped.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("no {MANIFEST_FILE} in {dir}\nhelp: run stack in the stack's directory, or point at it with `stack -C DIR`")]
    NoManifest { dir: String },
    #[error("{LOCK_FILE} is missing\nhelp: run `stack lock` to resolve and pin the inputs of {MANIFEST_FILE}")]
    NoLock,
    #[error("{LOCK_FILE} is out of date with {MANIFEST_FILE}:\n{}\nhelp: run `stack lock` to update it", .0.iter().map(|m| format!("  - {m}")).collect::<Vec<_>>().join("\n"))]
    StaleLock(Vec<String>),
    #[error("{path} does not match {LOCK_FILE} (dashboard `{name}`: blake3 {actual}, locked {expected})\nhelp: restore the file (git checkout {path}) or re-vendor it with `stack lock --update {name}`")]
    VendorMismatch {
        name: String,
        path: String,
        expected: String,
        actual: String,
    },
    #[error("{path} is missing (dashboard `{name}` is pinned in stack.lock and this build ships it)\nhelp: run `stack lock` to restore its pinned bytes (it checks their hashes and moves no pin), or restore vendor/ from version control")]
    VendorMissing { name: String, path: String },
    #[error("{path}: {message}")]
    Values { path: String, message: String },
    #[error("the modules' values do not fit their charts ({} problem{}):\n{}\nhelp: fix the keys above; the charts' defaults are in vendor/charts/<chart>/values.yaml", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.iter().map(|f| format!("  {}", f.to_string().replace('\n', "\n  "))).collect::<Vec<_>>().join("\n"))]
    ValuesCheck(Vec<crate::values_check::Finding>),
    #[error(transparent)]
    Located(#[from] crate::diag::SpanError),
    #[error(transparent)]
    Module(#[from] crate::module::ModuleError),
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    #[error(transparent)]
    Dashboard(#[from] dashboard::DashboardError),
    #[error("{path}: {message}\nhelp: this is a module's own dashboard: fix the reference in that file, or enable the module that provides the datasource (`[dashboards.*]` of stack.toml configures only the dashboards stack.toml declares)")]
    OwnDashboard { path: String, message: String },
    #[error("dashboard `{dashboard}` ({path}), panel `{panel}`: queries the recording rule `{rule}`, which no active module records\nhelp: add a `record: {rule}` rule to a PrometheusRule of an active module (modules/alerts/), or query the raw series")]
    MissingRecordingRule {
        dashboard: String,
        path: String,
        panel: String,
        rule: String,
    },
    #[error(transparent)]
    Object(#[from] objects::ObjectError),
    #[error("writing {path} of the output: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Provisioning(#[from] crate::emit::provisioning::ProvisioningError),
}
