//! Whether the lock as a whole is up to date with stack.toml: the [`fingerprint`] of the inputs it was
//! made for, every pin's mismatch with its input (each naming the input and the field), and a fingerprint
//! that no longer holds while every pin still answers. One pin against one input is [`super::answers`]'s.

use super::{answers, Lock, LockedDashboard, VERSION};
use crate::manifest::{ChartSource, DashboardSource, Manifest};

impl Lock {
    /// Differences between this lock and what `manifest` asks for, each naming the input (and the field).
    /// Empty when the lock answers every input of stack.toml and nothing else. Every pin is asked, even
    /// when the fingerprint matches: the fingerprint is computed from stack.toml, so it says nothing of
    /// entries edited, added or removed by hand in stack.lock.
    pub fn mismatches(&self, manifest: &Manifest) -> Vec<String> {
        // A lock written before `requested_revision` existed cannot show whether `revision` was set; its
        // matching fingerprint (stack.toml unchanged since) vouches for that one field.
        let fingerprint_holds = self.fingerprint == fingerprint(manifest);
        let vouched = |l: &LockedDashboard, m: &answers::Mismatch| {
            fingerprint_holds && m.field == "revision" && l.requested_revision.is_none()
        };
        let mut out = Vec::new();
        for (name, spec) in &manifest.charts {
            match self.charts.get(name).map(|l| l.answers(spec)) {
                None => out.push(format!("chart `{name}` is not in the lock")),
                Some(Err(m)) => out.push(m.to_string()),
                Some(Ok(())) => {}
            }
        }
        for name in self
            .charts
            .keys()
            .filter(|n| !manifest.charts.contains_key(*n))
        {
            out.push(format!(
                "chart `{name}` is locked but no longer in stack.toml"
            ));
        }
        for (name, spec) in &manifest.dashboards {
            match self.dashboards.get(name).map(|l| (l, l.answers(spec))) {
                None => out.push(format!("dashboard `{name}` is not in the lock")),
                Some((l, Err(m))) if !vouched(l, &m) => out.push(m.to_string()),
                Some(_) => {}
            }
        }
        for name in self
            .dashboards
            .keys()
            .filter(|n| !manifest.dashboards.contains_key(*n))
        {
            out.push(format!(
                "dashboard `{name}` is locked but no longer in stack.toml"
            ));
        }
        out
    }

    /// For `stack lock --check`: every pin answers its input, yet `stack lock` would rewrite the
    /// fingerprint (stack.lock was edited by hand, or written by a stack that did not record requested
    /// revisions). Names the inputs whose request the lock cannot show; `None` when the fingerprint holds.
    pub fn stale_fingerprint(&self, manifest: &Manifest) -> Option<String> {
        if self.fingerprint == fingerprint(manifest) {
            return None;
        }
        let unsure: Vec<String> = manifest
            .dashboards
            .iter()
            .filter(|(_, d)| matches!(d.source, DashboardSource::GrafanaCom { revision: None, .. }))
            .filter(|(name, _)| {
                self.dashboards
                    .get(*name)
                    .is_some_and(|l| l.requested_revision.is_none())
            })
            .map(|(name, _)| format!("dashboard `{name}`"))
            .collect();
        Some(if unsure.is_empty() {
            "every pin answers its input, but `fingerprint` is not the one `stack lock` writes (was stack.lock edited by hand?)".into()
        } else {
            format!(
                "every pin answers its input, but `fingerprint` is not the one `stack lock` writes, and stack.lock does not record whether `revision` was set for {} (it was written by an older stack)",
                unsure.join(", ")
            )
        })
    }
}

/// blake3 over everything in stack.toml that decides what the lock must contain: each chart's name,
/// canonical source and requirement, each dashboard's name, canonical source and requested revision. It is
/// computed from parsed values, so comments, whitespace and key order do not change it, and settings or
/// module edits (which need no new pins, as editing code needs no new Cargo.lock) do not stale the lock.
pub fn fingerprint(manifest: &Manifest) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(format!("stack-lock-fingerprint-v{VERSION}\n").as_bytes());
    for (name, spec) in &manifest.charts {
        let kind = match spec.source {
            ChartSource::Oci { .. } => "oci",
            ChartSource::Repo { .. } => "repo",
        };
        hasher.update(
            format!(
                "chart\0{name}\0{kind}\0{}\0{}\n",
                spec.source.canonical(),
                spec.version
            )
            .as_bytes(),
        );
    }
    for (name, spec) in &manifest.dashboards {
        let revision = match spec.source {
            DashboardSource::GrafanaCom {
                revision: Some(r), ..
            } => r.to_string(),
            _ => String::new(),
        };
        hasher.update(
            format!(
                "dashboard\0{name}\0{}\0{revision}\n",
                spec.source.canonical()
            )
            .as_bytes(),
        );
    }
    format!("blake3:{}", hasher.finalize().to_hex())
}
