//! What the repository itself holds: only bytes we wrote. Real upstream files (dashboards, Flux CRDs,
//! Helm's index fixtures, charts' metadata) are read in place from ../shared/upstream by the tests; no
//! tracked file may be a copy of one, and vendor/ is not tracked (a user's repository commits it).

use std::collections::BTreeMap;
use std::process::Command;

use crate::support::{self, sha256};

fn tracked_files() -> Vec<String> {
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(support::repo_root())
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git ls-files failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

fn upstream_files() -> BTreeMap<String, String> {
    fn walk(dir: &std::path::Path, out: &mut BTreeMap<String, String>) {
        for entry in fs_err::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.insert(
                    sha256(&fs_err::read(&path).unwrap()),
                    path.display().to_string(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&support::upstream::dir(), &mut out);
    out
}

#[test]
fn no_tracked_file_is_a_copy_of_an_upstream_file() {
    let upstream = upstream_files();
    assert!(
        upstream.len() > 40,
        "only {} upstream files found",
        upstream.len()
    );
    let tracked = tracked_files();
    assert!(
        tracked.iter().any(|f| f == "Cargo.toml"),
        "git ls-files lists the repository"
    );
    let copies: Vec<String> = tracked
        .iter()
        .filter_map(|rel| {
            let bytes = fs_err::read(support::repo_root().join(rel)).ok()?;
            upstream
                .get(&sha256(&bytes))
                .map(|up| format!("{rel} (same bytes as {up})"))
        })
        .collect();
    assert!(
        copies.is_empty(),
        "tracked copies of upstream files:\n{}",
        copies.join("\n")
    );
}

#[test]
fn vendor_is_not_tracked() {
    let vendored: Vec<String> = tracked_files()
        .into_iter()
        .filter(|f| f.starts_with("vendor/"))
        .collect();
    assert!(vendored.is_empty(), "vendor/ is tracked: {vendored:?}");
}
