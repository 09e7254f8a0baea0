//! A real Helm engine for the tests: PyPI's `helm-python-sdk` bundles Helm v4's library and renders a chart
//! directory offline (`helm_python.Chart.load(dir).render(values, name=…, namespace=…)`), applying the
//! chart's `values.schema.json` and Helm's own checks as `helm install` would. scripts/test installs it
//! into a venv at `target/helm-python/` and points `STACK_HELM_PYTHON` at its interpreter.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The environment variable naming a Python interpreter that can `import helm_python`.
pub const ENV: &str = "STACK_HELM_PYTHON";

const RENDER: &str = r#"
import json, sys
import helm_python
req = json.load(sys.stdin)
try:
    chart = helm_python.Chart.load(req["chart"])
    out = chart.render(req["values"], name=req["name"], namespace=req["namespace"], is_install=True)
    json.dump({"rendered": out}, sys.stdout)
except helm_python.HelmError as e:
    json.dump({"error": type(e).__name__ + ": " + str(e)}, sys.stdout)
"#;

/// The interpreter, if it has helm_python. Missing: a failure under CI, a loud skip locally (`None`).
pub fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os(ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| super::repo_root().join("target/helm-python/bin/python"));
    let works = Command::new(&candidate)
        .args(["-c", "import helm_python"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let candidate = candidate.display().to_string();
    let candidates: Vec<&str> = if works { vec![&candidate] } else { Vec::new() };
    super::require_tool(
        "helm-python-sdk",
        &candidates,
        "scripts/test (python3 -m venv target/helm-python && target/helm-python/bin/pip install helm-python-sdk), or set STACK_HELM_PYTHON",
    )
}

/// Renders the chart in `dir` with `values` as release `name` in `namespace`: the rendered files by path,
/// or Helm's error.
pub fn render(
    python: &Path,
    dir: &Path,
    values: &serde_json::Value,
    name: &str,
    namespace: &str,
) -> Result<BTreeMap<String, String>, String> {
    let request = serde_json::json!({
        "chart": dir,
        "values": values,
        "name": name,
        "namespace": namespace,
    });
    let mut child = Command::new(python)
        .args(["-c", RENDER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "helm_python gave no answer ({e}):\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    match answer.get("error").and_then(|e| e.as_str()) {
        Some(error) => Err(error.to_string()),
        None => Ok(serde_json::from_value(answer["rendered"].clone()).unwrap()),
    }
}
