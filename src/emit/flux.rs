//! The Flux objects of a component: its Flux `Kustomization` (ordering, health, pruning, substitution),
//! its source (`OCIRepository` pinned by digest, or `HelmRepository`), its `HelmRelease`, and the
//! kustomize files that tie an app directory together. API versions are the GA ones whose CRD schemas the
//! tests validate against.

use serde_yaml_ng::Value;

use super::yaml::{map, s, seq};
use crate::lock::LockedChart;
use crate::manifest::{ChartSource, StackSection};

/// Objects carrying this annotation are skipped by Flux's postBuild substitution: dashboards are full of
/// `${DS_…}`-looking Grafana syntax that envsubst would blank out.
pub const SUBSTITUTE_DISABLED: (&str, &str) =
    ("kustomize.toolkit.fluxcd.io/substitute", "disabled");
pub const PRUNE_DISABLED: (&str, &str) = ("kustomize.toolkit.fluxcd.io/prune", "disabled");
/// The Secret every Kustomization substitutes from (`${SECRET_DOMAIN}` and friends).
pub const CLUSTER_SECRETS: &str = "cluster-secrets";

/// Every object the build generates carries `app.kubernetes.io/part-of: <[stack] name>`, so
/// `flux get ks -l` and `kubectl get -l` find everything one stack made.
pub const PART_OF: &str = "app.kubernetes.io/part-of";

fn metadata(name: &str, namespace: &str, stack: &str) -> Value {
    map([
        ("name", s(name)),
        ("namespace", s(namespace)),
        ("labels", map([(PART_OF, s(stack))])),
    ])
}

/// The Flux Kustomization that applies `<path>/<component>/app`, named `<flux.prefix><component>`.
/// `variables` are the `${VAR}`s its app leaves for Flux: when there are some, the `cluster-secrets`
/// Secret must exist (a missing one stops the Kustomization instead of applying blanks); when there are
/// none it is `optional`, so a cluster without it still applies the component.
pub fn kustomization(
    stack: &StackSection,
    component: &str,
    depends_on: &[String],
    timeout: &str,
    wait: bool,
    variables: &[String],
) -> Value {
    let flux = &stack.flux;
    let path = format!("{}/{component}/app", flux.path.trim_end_matches('/'));
    let depends = if depends_on.is_empty() {
        Value::Null
    } else {
        seq(depends_on
            .iter()
            .map(|d| map([("name", s(format!("{}{d}", flux.prefix)))])))
    };
    let secret = if variables.is_empty() {
        map([
            ("kind", s("Secret")),
            ("name", s(CLUSTER_SECRETS)),
            ("optional", Value::Bool(true)),
        ])
    } else {
        map([("kind", s("Secret")), ("name", s(CLUSTER_SECRETS))])
    };
    map([
        ("apiVersion", s("kustomize.toolkit.fluxcd.io/v1")),
        ("kind", s("Kustomization")),
        (
            "metadata",
            metadata(
                &format!("{}{component}", flux.prefix),
                &flux.namespace,
                stack.name.as_str(),
            ),
        ),
        (
            "spec",
            map([
                ("dependsOn", depends),
                ("interval", s(flux.interval.as_str())),
                ("path", s(path)),
                ("postBuild", map([("substituteFrom", seq([secret]))])),
                ("prune", Value::Bool(true)),
                ("retryInterval", s("2m")),
                (
                    "sourceRef",
                    map([
                        ("kind", s(flux.source.kind.as_str())),
                        ("name", s(flux.source.name.as_str())),
                        ("namespace", s(flux.namespace.as_str())),
                    ]),
                ),
                ("timeout", s(timeout)),
                ("wait", Value::Bool(wait)),
            ]),
        ),
    ])
}

/// Where a component's objects go: the stack they are part of, their namespace, their reconcile interval.
#[derive(Debug, Clone, Copy)]
pub struct Placement<'a> {
    pub stack: &'a str,
    pub namespace: &'a str,
    pub interval: &'a str,
}

/// The chart's Flux source. OCI charts are pinned by manifest digest (Flux ignores the tag when a digest
/// is set; the tag stays for people reading the file) and select the Helm layer explicitly, since Flux
/// otherwise extracts the first layer. `pull_from` is where the cluster fetches the chart (the canonical
/// source, or a `cluster = true` mirror), `insecure` marks a plain-HTTP registry.
pub fn source(
    at: &Placement,
    name: &str,
    chart: &ChartSource,
    pull_from: &str,
    insecure: bool,
    locked: &LockedChart,
) -> Value {
    let Placement {
        stack,
        namespace,
        interval,
    } = *at;
    match chart {
        ChartSource::Oci { .. } => map([
            ("apiVersion", s("source.toolkit.fluxcd.io/v1")),
            ("kind", s("OCIRepository")),
            ("metadata", metadata(name, namespace, stack)),
            (
                "spec",
                map([
                    (
                        "insecure",
                        if insecure {
                            Value::Bool(true)
                        } else {
                            Value::Null
                        },
                    ),
                    ("interval", s(interval)),
                    (
                        "layerSelector",
                        map([
                            (
                                "mediaType",
                                s(locked
                                    .layer_media_type
                                    .as_deref()
                                    .unwrap_or(crate::helm_oci::HELM_CHART_MEDIA_TYPE)),
                            ),
                            ("operation", s("copy")),
                        ]),
                    ),
                    (
                        "ref",
                        map([
                            ("digest", s(locked.digest.as_str())),
                            ("tag", s(crate::helm_oci::tag_for_version(&locked.version))),
                        ]),
                    ),
                    ("url", s(pull_from)),
                ]),
            ),
        ]),
        ChartSource::Repo { .. } => map([
            ("apiVersion", s("source.toolkit.fluxcd.io/v1")),
            ("kind", s("HelmRepository")),
            ("metadata", metadata(name, namespace, stack)),
            (
                "spec",
                map([("interval", s(interval)), ("url", s(pull_from))]),
            ),
        ]),
    }
}

/// The HelmRepository name of a repository URL: its host and path as a Kubernetes name
/// (`https://grafana.github.io/helm-charts` -> `grafana-github-io-helm-charts`), at most 63 characters.
pub fn helm_repository_name(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let mut name = String::new();
    for c in rest.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            name.push(c);
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// The HelmRelease. OCI charts are referenced with `chartRef` (the OCIRepository already pins them);
/// classic repositories need `chart.spec` with the locked version, the only pin Flux offers there.
pub fn helm_release(
    at: &Placement,
    release: &str,
    (source_name, source_namespace): (&str, &str),
    chart: &ChartSource,
    locked: &LockedChart,
    values: Value,
) -> Value {
    let Placement {
        stack,
        namespace,
        interval,
    } = *at;
    let (chart_key, chart_value) =
        release_chart(interval, (source_name, source_namespace), chart, locked);
    let values = match &values {
        Value::Mapping(m) if m.is_empty() => Value::Null,
        _ => values,
    };
    let (install, upgrade) = install_and_upgrade();
    map([
        ("apiVersion", s("helm.toolkit.fluxcd.io/v2")),
        ("kind", s("HelmRelease")),
        ("metadata", metadata(release, namespace, stack)),
        (
            "spec",
            map([
                (chart_key, chart_value),
                ("install", install),
                ("interval", s(interval)),
                ("releaseName", s(release)),
                ("upgrade", upgrade),
                ("values", values),
            ]),
        ),
    ])
}

/// The HelmRelease's chart field: `chartRef` to the OCIRepository, or `chart.spec` with the locked
/// version from the HelmRepository.
fn release_chart(
    interval: &str,
    (source_name, source_namespace): (&str, &str),
    chart: &ChartSource,
    locked: &LockedChart,
) -> (&'static str, Value) {
    match chart {
        ChartSource::Oci { .. } => (
            "chartRef",
            map([("kind", s("OCIRepository")), ("name", s(source_name))]),
        ),
        ChartSource::Repo { chart, .. } => (
            "chart",
            map([(
                "spec",
                map([
                    ("chart", s(chart.as_str())),
                    ("interval", s(interval)),
                    (
                        "sourceRef",
                        map([
                            ("kind", s("HelmRepository")),
                            ("name", s(source_name)),
                            ("namespace", s(source_namespace)),
                        ]),
                    ),
                    ("version", s(locked.version.as_str())),
                ]),
            )]),
        ),
    }
}

/// The HelmRelease's `install` and `upgrade`: CRDs created and replaced, three retries.
fn install_and_upgrade() -> (Value, Value) {
    let remediation = map([("retries", Value::Number(3.into()))]);
    let install = map([
        ("crds", s("CreateReplace")),
        ("remediation", remediation.clone()),
        // A failed first install is retried in place, not uninstalled and reinstalled: charts that
        // create objects of their own operator (victoria-metrics-k8s-stack's VMSingle, VMAgent, …
        // validated by the operator's webhooks) can fail while the operator starts, and an
        // uninstall-and-retry runs into the same race.
        (
            "strategy",
            map([("name", s("RetryOnFailure")), ("retryInterval", s("2m"))]),
        ),
    ]);
    let upgrade = map([
        ("cleanupOnFail", Value::Bool(true)),
        ("crds", s("CreateReplace")),
        ("remediation", remediation),
    ]);
    (install, upgrade)
}

/// `kustomization.yaml` (kustomize's, not Flux's) listing resources and, for dashboards, ConfigMap
/// generators that keep each dashboard's JSON a readable file of its own.
pub fn kustomize_file(resources: &[String], generators: Vec<Value>) -> Value {
    map([
        ("apiVersion", s("kustomize.config.k8s.io/v1beta1")),
        ("kind", s("Kustomization")),
        (
            "resources",
            // kustomize refuses a kustomization with no fields ("kustomization.yaml is empty"), which a
            // component shipping nothing with these settings would otherwise be: say `resources: []`.
            if resources.is_empty() && !generators.is_empty() {
                Value::Null
            } else if resources.is_empty() {
                seq(std::iter::empty())
            } else {
                seq(resources.iter().map(|r| s(r.as_str())))
            },
        ),
        (
            "configMapGenerator",
            if generators.is_empty() {
                Value::Null
            } else {
                seq(generators)
            },
        ),
    ])
}

/// A configMapGenerator entry for one dashboard: labelled for Grafana's sidecar, foldered, and exempt
/// from Flux substitution.
pub fn dashboard_generator(
    stack: &str,
    name: &str,
    namespace: &str,
    file: &str,
    folder: &str,
) -> Value {
    map([
        ("name", s(format!("dashboard-{name}"))),
        ("namespace", s(namespace)),
        ("files", seq([s(file)])),
        (
            "options",
            map([
                ("disableNameSuffixHash", Value::Bool(true)),
                (
                    "labels",
                    map([("grafana_dashboard", s("1")), (PART_OF, s(stack))]),
                ),
                (
                    "annotations",
                    map([
                        ("grafana_folder", s(folder)),
                        (SUBSTITUTE_DISABLED.0, s(SUBSTITUTE_DISABLED.1)),
                    ]),
                ),
            ]),
        ),
    ])
}

/// A Namespace Flux will never delete: pruning a namespace deletes everything in it, PVCs included.
pub fn namespace(
    stack: &str,
    name: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> Value {
    let mut labels: serde_yaml_ng::Mapping = labels
        .iter()
        .map(|(k, v)| (s(k.as_str()), s(v.as_str())))
        .collect();
    labels.insert(s(PART_OF), s(stack));
    let labels = Value::Mapping(labels);
    map([
        ("apiVersion", s("v1")),
        ("kind", s("Namespace")),
        (
            "metadata",
            map([
                ("name", s(name)),
                (
                    "annotations",
                    map([(PRUNE_DISABLED.0, s(PRUNE_DISABLED.1))]),
                ),
                ("labels", labels),
            ]),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helm_repository_names_are_kubernetes_names_of_the_url() {
        assert_eq!(
            helm_repository_name("https://grafana.github.io/helm-charts"),
            "grafana-github-io-helm-charts"
        );
        assert_eq!(
            helm_repository_name("http://127.0.0.1:8080/Charts/"),
            "127-0-0-1-8080-charts"
        );
        assert!(helm_repository_name(&format!("https://{}", "a.".repeat(60))).len() <= 63);
    }

    /// `sourceRef.kind` is the kind as stack.toml and Flux spell it, for every kind (not a `Debug` rendering).
    #[test]
    fn kustomization_source_kind_is_the_wire_name() {
        for kind in ["GitRepository", "OCIRepository", "Bucket"] {
            let stack: StackSection = toml::from_str(&format!(
                "name = \"s\"\nflux = {{ source = {{ kind = \"{kind}\", name = \"src\" }}, path = \"./k\" }}"
            ))
            .unwrap();
            let ks = kustomization(&stack, "loki", &[], "5m", true, &[]);
            assert_eq!(ks["spec"]["sourceRef"]["kind"].as_str(), Some(kind));
            assert_eq!(
                serde_yaml_ng::to_value(stack.flux.source.kind)
                    .unwrap()
                    .as_str(),
                Some(kind),
                "as_str and serde agree"
            );
        }
    }
}
