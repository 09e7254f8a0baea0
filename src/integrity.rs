//! What `stack lock --check` verifies of vendor/ beyond each entry's blake3 (resolve's
//! `vendor_mismatches`): the sha256 stack.lock records for every vendored dashboard, and that vendor/
//! holds nothing stack.lock does not name. A file nobody locked is one nobody reviews.
//! `vendor/charts/` is the values check's (the locked charts' defaults, see `chart_values`), not checked here.

#![allow(
    clippy::disallowed_methods,
    reason = "its errors are wrapped with the stack-relative path; fs_err would add the absolute one to output"
)]

use std::collections::BTreeSet;
use std::path::Path;

use crate::lock::Lock;

/// Problems with vendor/, one line each, sorted: vendored files whose sha256 differs from stack.lock,
/// files under vendor/ that no lock entry names, and symlinks there (leading anywhere).
pub fn vendor_problems(root: &Path, lock: &Lock) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut named = BTreeSet::new();
    for (name, entry) in lock.dashboards() {
        named.insert(entry.path.clone());
        let bytes = match crate::contain::read(root, &entry.path) {
            Ok(b) => b,
            // Missing files are vendor_mismatches' to report (or not needed, for unshipped ones).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let sha256 = crate::digest::sha256(&bytes);
        if sha256 != entry.digest {
            out.push(format!(
                "dashboard `{name}`: {} does not match stack.lock (sha256 {sha256}, the lock has {})",
                entry.path, entry.digest
            ));
        }
    }
    let vendor = crate::contain::resolve(root, "vendor")?;
    let mut files = Vec::new();
    walk(&vendor, "vendor", &mut files)?;
    for (rel, symlink) in files {
        if symlink {
            out.push(format!(
                "{rel} is a symlink; vendor/ holds only the files stack.lock names"
            ));
        } else if !named.contains(&rel) {
            out.push(format!(
                "{rel} is not in stack.lock; vendor/ holds only the files stack.lock names (delete it, or add its input to stack.toml and run `stack lock`)"
            ));
        }
    }
    out.sort();
    Ok(out)
}

/// Every file under `dir` (shown as `shown/...`), with whether it is a symlink; symlinks are not followed.
fn walk(dir: &Path, shown: &str, out: &mut Vec<(String, bool)>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let rel = format!("{shown}/{}", entry.file_name().to_string_lossy());
        let kind = entry.file_type()?;
        if rel == crate::chart_values::VENDOR_DIR && kind.is_dir() {
            continue;
        }
        if kind.is_dir() {
            walk(&entry.path(), &rel, out)?;
        } else {
            out.push((rel, kind.is_symlink()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::LockedDashboard;

    /// A lock of one dashboard whose blake3 is that of `bytes` and whose sha256 is that of `digest_of`.
    fn lock_with(bytes: &[u8], digest_of: &[u8]) -> Lock {
        let name: crate::manifest::Name = "a".parse().unwrap();
        let dashboard = LockedDashboard {
            name,
            source: "https://example.com/a.json".into(),
            grafana_com: None,
            revision: None,
            requested_revision: None,
            title: "A".into(),
            path: "vendor/dashboards/a.json".into(),
            digest: crate::digest::sha256(digest_of).parse().unwrap(),
            blake3: crate::digest::blake3(bytes).parse().unwrap(),
        };
        Lock::new(String::new(), [], [dashboard]).unwrap()
    }

    #[test]
    fn extra_files_and_a_wrong_sha256_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs_err::create_dir_all(r.join("vendor/dashboards")).unwrap();
        fs_err::write(r.join("vendor/dashboards/a.json"), "a").unwrap();
        fs_err::create_dir_all(r.join("vendor/charts/loki")).unwrap();
        fs_err::write(r.join("vendor/charts/loki/values.yaml"), "a: 1").unwrap();
        assert!(vendor_problems(r, &lock_with(b"a", b"a"))
            .unwrap()
            .is_empty());
        fs_err::write(r.join("vendor/dashboards/extra.json"), "x").unwrap();
        let lock = lock_with(b"a", b"other");
        let problems = vendor_problems(r, &lock).unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("a.json does not match stack.lock (sha256"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("extra.json is not in stack.lock"),
            "{problems:?}"
        );
    }
}
