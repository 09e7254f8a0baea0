//! "Does this pin still answer its input?": one typed answer, used by `stack build` (stale-lock error),
//! `stack lock --check` and `stack lock`'s sticky planning. A [`Mismatch`] names the input, the field and
//! both values, so no caller has to compare lock entries with stack.toml itself.

use std::fmt;

use super::{vendor_path, Lock, LockedChart, LockedDashboard};
use crate::manifest::{ChartSpec, DashboardSource, DashboardSpec, Name};

/// Why a pin no longer answers its input in stack.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// `chart` or `dashboard`.
    pub kind: &'static str,
    /// The input's name in stack.toml.
    pub input: Name,
    /// The field that differs, as stack.toml spells it (`source`, `version`, `revision`, `path`).
    pub field: &'static str,
    /// The value stack.toml asks for.
    pub wanted: String,
    /// The value the pin in stack.lock was made for.
    pub locked: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} `{}`: `{}` is {} in stack.toml, {} in stack.lock",
            self.kind, self.input, self.field, self.wanted, self.locked
        )
    }
}

impl LockedChart {
    /// A warning when this pin is marked `unverified` in stack.lock (its index.yaml stated no digest), so
    /// `stack build` and `stack lock --check` keep saying what `stack lock` warned about once.
    pub fn unverified_warning(&self) -> Option<String> {
        self.unverified.then(|| {
            format!(
                "chart `{}` {} is unverified in stack.lock: its index.yaml states no digest, so its sha256 is what the download hashed to, not what the repository vouches for",
                self.name, self.version
            )
        })
    }

    /// `Ok` when this pin was made for `spec`: the same canonical source and the same version requirement
    /// (a pin is sticky while its requirement is unchanged, like Cargo.lock).
    pub fn answers(&self, spec: &ChartSpec) -> Result<(), Mismatch> {
        let mismatch = |field, wanted: String, locked: &str| Mismatch {
            kind: "chart",
            input: self.name.clone(),
            field,
            wanted,
            locked: locked.to_string(),
        };
        let source = spec.source.canonical();
        if self.source != source {
            return Err(mismatch("source", source, &self.source));
        }
        if self.requirement != spec.version.as_str() {
            return Err(mismatch(
                "version",
                format!("{:?}", spec.version.as_str()),
                &format!("{:?}", self.requirement),
            ));
        }
        // The pinned version itself must meet the requirement (a hand edit of `version` would not).
        let meets =
            crate::version_req::parse_tag(&self.version).is_some_and(|v| spec.version.matches(&v));
        if !meets {
            return Err(mismatch(
                "version",
                format!("a version meeting {:?}", spec.version.as_str()),
                &format!("the pinned version {:?}", self.version),
            ));
        }
        Ok(())
    }
}

impl LockedDashboard {
    /// `Ok` when this pin was made for `spec`: the same canonical source, the same requested grafana.com
    /// revision (a number, or none for the latest at lock time) and the vendored path the name gives.
    pub fn answers(&self, spec: &DashboardSpec) -> Result<(), Mismatch> {
        let mismatch = |field, wanted: String, locked: String| Mismatch {
            kind: "dashboard",
            input: self.name.clone(),
            field,
            wanted,
            locked,
        };
        let source = spec.source.canonical();
        if self.source != source {
            return Err(mismatch("source", source, self.source.clone()));
        }
        if let DashboardSource::GrafanaCom { revision, .. } = spec.source {
            if self.requested_revision != revision {
                return Err(mismatch(
                    "revision",
                    requested(revision),
                    requested(self.requested_revision),
                ));
            }
        }
        let path = vendor_path(&self.name);
        if self.path != path {
            return Err(mismatch("path", path, self.path.clone()));
        }
        Ok(())
    }
}

/// A requested revision as a message shows it.
/// [`LockedChart::unverified_warning`] of every chart in `lock`, by name.
pub fn unverified_warnings(lock: &Lock) -> Vec<String> {
    lock.charts
        .values()
        .filter_map(LockedChart::unverified_warning)
        .collect()
}

fn requested(revision: Option<u64>) -> String {
    match revision {
        Some(r) => r.to_string(),
        None => "not set (the latest at lock time)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::Lock;

    fn dashboard(toml: &str) -> DashboardSpec {
        toml::from_str(toml).unwrap()
    }

    fn grafana_pin(requested: Option<u64>) -> LockedDashboard {
        let name: Name = "global".parse().unwrap();
        LockedDashboard {
            path: vendor_path(&name),
            name,
            source: "https://grafana.com/api/dashboards/15757".into(),
            grafana_com: Some(15757),
            revision: Some(43),
            requested_revision: requested,
            title: "Global".into(),
            digest: format!("sha256:{}", "a".repeat(64)).parse().unwrap(),
            blake3: "b".repeat(64).parse().unwrap(),
        }
    }

    #[test]
    fn a_dashboard_pin_answers_only_the_revision_it_was_asked_for() {
        let latest = dashboard("grafana_com = 15757\nfolder = \"T\"");
        let pinned = dashboard("grafana_com = 15757\nrevision = 43\nfolder = \"T\"");
        assert_eq!(grafana_pin(None).answers(&latest), Ok(()));
        assert_eq!(grafana_pin(Some(43)).answers(&pinned), Ok(()));
        let removed = grafana_pin(Some(43)).answers(&latest).unwrap_err();
        assert_eq!(removed.field, "revision");
        assert_eq!(
            removed.to_string(),
            "dashboard `global`: `revision` is not set (the latest at lock time) in stack.toml, 43 in stack.lock"
        );
        assert_eq!(
            grafana_pin(None).answers(&pinned).unwrap_err().field,
            "revision"
        );
        let other = dashboard("grafana_com = 1860\nfolder = \"T\"");
        assert_eq!(
            grafana_pin(None).answers(&other).unwrap_err().field,
            "source"
        );
        let mut moved = grafana_pin(None);
        moved.path = "vendor/dashboards/other.json".into();
        assert_eq!(moved.answers(&latest).unwrap_err().field, "path");
    }

    #[test]
    fn a_chart_pin_names_the_source_or_the_version_that_changed() {
        let spec: ChartSpec =
            toml::from_str("oci = \"oci://ghcr.io/grafana/helm-charts/loki\"\nversion = \"~6.49\"")
                .unwrap();
        let mut pin = LockedChart {
            name: "loki".parse().unwrap(),
            source: "oci://ghcr.io/grafana/helm-charts/loki".into(),
            requirement: "~6.49".into(),
            version: "6.49.0".into(),
            digest: format!("sha256:{}", "a".repeat(64)).parse().unwrap(),
            layer_digest: None,
            layer_media_type: None,
            url: None,
            unverified: false,
            blake3: "c".repeat(64).parse().unwrap(),
        };
        assert_eq!(pin.answers(&spec), Ok(()));
        pin.requirement = "6.48.0".into();
        assert_eq!(
            pin.answers(&spec).unwrap_err().to_string(),
            "chart `loki`: `version` is \"~6.49\" in stack.toml, \"6.48.0\" in stack.lock"
        );
        pin.source = "oci://ghcr.io/other/loki".into();
        assert_eq!(pin.answers(&spec).unwrap_err().field, "source");
    }

    #[test]
    fn a_stale_fingerprint_is_never_reported_as_two_hashes() {
        let manifest = crate::manifest::Manifest::parse(
            "[stack]\nname = \"s\"\nflux.source = { kind = \"GitRepository\", name = \"flux-system\" }\nflux.path = \"./k\"\n\n[dashboards.global]\ngrafana_com = 15757\nfolder = \"T\"\n",
        )
        .unwrap();
        let mut lock = Lock {
            fingerprint: "blake3:00".into(),
            ..Lock::default()
        };
        let pin = grafana_pin(None);
        lock.dashboards.insert(pin.name.clone(), pin);
        // Every pin answers its input: not stale for build; --check names what the lock cannot show.
        assert_eq!(lock.mismatches(&manifest), Vec::<String>::new());
        let stale = lock.stale_fingerprint(&manifest).unwrap();
        assert!(
            stale.contains("`revision` was set for dashboard `global`"),
            "{stale}"
        );
        assert!(!stale.contains("blake3:"), "{stale}");
        lock.fingerprint = crate::lock::fingerprint(&manifest);
        assert_eq!(lock.stale_fingerprint(&manifest), None);
    }
}
