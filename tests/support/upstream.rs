//! Real upstream data, read in place: `../shared/upstream/` beside the clone (with its PROVENANCE.md), or
//! wherever `STACK_UPSTREAM_DATA` points. The repository holds no copy of these bytes; tests that need them
//! fail, naming the path, when they are missing (never a silent skip).

use std::path::PathBuf;

/// The environment variable that points the tests at another copy of the upstream data.
pub const ENV: &str = "STACK_UPSTREAM_DATA";

/// The upstream data directory: `$STACK_UPSTREAM_DATA`, else `<repo>/../shared/upstream`. Panics with the
/// path and the fix when it does not exist.
pub fn dir() -> PathBuf {
    let dir = match std::env::var_os(ENV) {
        Some(d) => PathBuf::from(d),
        None => super::repo_root().join("../shared/upstream"),
    };
    if !dir.join("PROVENANCE.md").is_file() {
        panic!(
            "the upstream test data is missing: {} has no PROVENANCE.md.\n\
             Tests read real upstream files in place from ../shared/upstream beside the clone; \
             put it there or set {ENV} to its path.",
            dir.display()
        );
    }
    dir
}

/// `<upstream>/<rel>`, which must exist (panics naming it otherwise).
pub fn path(rel: &str) -> PathBuf {
    let path = dir().join(rel);
    if !path.exists() {
        panic!(
            "upstream test data {} is missing (from {ENV} or ../shared/upstream)",
            path.display()
        );
    }
    path
}

/// The bytes of `<upstream>/<rel>`.
pub fn bytes(rel: &str) -> Vec<u8> {
    let path = path(rel);
    fs_err::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A real dashboard of `<upstream>/dashboards/`.
pub fn dashboard(file: &str) -> Vec<u8> {
    bytes(&format!("dashboards/{file}"))
}

/// `<upstream>/charts/<name>-<version>/`: a real chart's Chart.yaml, values.yaml (and values.schema.json
/// where it has one), without templates.
pub fn chart_dir(name: &str, version: &str) -> PathBuf {
    path(&format!("charts/{name}-{version}"))
}
