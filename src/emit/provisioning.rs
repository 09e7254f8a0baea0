//! Grafana's file provisioning across the whole stack. The sidecar writes every dashboard ConfigMap into
//! one provider; Grafana keys provisioned dashboards by uid and, within a folder, by title. Two dashboards
//! with one uid make Grafana flip between them (and, since Grafana 8.1, stop saving that provider's
//! dashboards); two with one title in a folder fail with "the same 'title' is used more than once". Both
//! are refused at build, naming both inputs.

use std::collections::BTreeMap;

use crate::emit::dashboard::Rendered;

/// A stack-wide rule of Grafana's provisioning broken by two dashboards.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProvisioningError {
    #[error("dashboards {first} and {second} both have uid `{uid}`; Grafana provisions one dashboard per uid and flips between them\nhelp: change the uid of one of them (a module's own dashboard), or ship only one of them")]
    Uid {
        uid: String,
        first: String,
        second: String,
    },
    #[error("dashboards {first} and {second} are both titled `{title}` in folder `{folder}`; Grafana refuses a title used more than once in a folder\nhelp: put one of them in another folder (`folder = …`), or ship only one of them")]
    Title {
        title: String,
        folder: String,
        first: String,
        second: String,
    },
    #[error("dashboards {first} and {second} would both be the ConfigMap `dashboard-{name}`\nhelp: rename one of them (the [dashboards.NAME] table, or the module's dashboard file)")]
    ConfigMapName {
        name: String,
        first: String,
        second: String,
    },
}

/// The dashboards a build ships so far, by what Grafana keys them on. Inputs are described for messages
/// (`[dashboards.etcd] of stack.toml`, `modules/alerts/dashboards/alerts.json`).
#[derive(Debug, Default)]
pub struct Shipped {
    names: BTreeMap<String, String>,
    uids: BTreeMap<String, String>,
    titles: BTreeMap<(String, String), String>,
}

impl Shipped {
    /// Adds a dashboard shipped as ConfigMap `dashboard-<name>` in `folder`; an error when it shares a
    /// ConfigMap name, a uid, or a title within the folder with one added before.
    pub fn add(
        &mut self,
        name: &str,
        input: &str,
        folder: &str,
        dashboard: &Rendered,
    ) -> Result<(), ProvisioningError> {
        if let Some(first) = self.names.get(name) {
            return Err(ProvisioningError::ConfigMapName {
                name: name.into(),
                first: first.clone(),
                second: input.into(),
            });
        }
        if let Some(uid) = &dashboard.uid {
            if let Some(first) = self.uids.get(uid) {
                return Err(ProvisioningError::Uid {
                    uid: uid.clone(),
                    first: first.clone(),
                    second: input.into(),
                });
            }
        }
        let title_key = (folder.to_string(), dashboard.title.clone());
        if let Some(first) = self.titles.get(&title_key) {
            return Err(ProvisioningError::Title {
                title: dashboard.title.clone(),
                folder: folder.into(),
                first: first.clone(),
                second: input.into(),
            });
        }
        self.names.insert(name.into(), input.into());
        if let Some(uid) = &dashboard.uid {
            self.uids.insert(uid.clone(), input.into());
        }
        self.titles.insert(title_key, input.into());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dash(uid: Option<&str>, title: &str) -> Rendered {
        Rendered {
            text: String::new(),
            uid: uid.map(str::to_string),
            title: title.into(),
        }
    }

    #[test]
    fn a_uid_is_unique_in_the_stack() {
        let mut s = Shipped::default();
        s.add("a", "A", "Network", &dash(Some("u1"), "One"))
            .unwrap();
        let err = s
            .add("b", "B", "Other", &dash(Some("u1"), "Two"))
            .unwrap_err();
        assert_eq!(
            err,
            ProvisioningError::Uid {
                uid: "u1".into(),
                first: "A".into(),
                second: "B".into()
            }
        );
        assert!(err.to_string().contains("A and B"), "{err}");
    }

    #[test]
    fn a_title_is_unique_within_its_folder_only() {
        let mut s = Shipped::default();
        s.add("a", "A", "Network", &dash(None, "Same")).unwrap();
        s.add("b", "B", "Logs", &dash(None, "Same")).unwrap();
        let err = s.add("c", "C", "Network", &dash(None, "Same")).unwrap_err();
        assert!(matches!(err, ProvisioningError::Title { ref first, .. } if first == "A"));
    }

    #[test]
    fn a_configmap_name_is_unique() {
        let mut s = Shipped::default();
        s.add("coredns", "A", "Network", &dash(None, "One"))
            .unwrap();
        let err = s
            .add("coredns", "B", "Network", &dash(None, "Two"))
            .unwrap_err();
        assert!(matches!(err, ProvisioningError::ConfigMapName { .. }));
    }
}
