//! Issue 14's fixes for the real charts, as the emitted objects show them: the default stack built with
//! chosen settings and its HelmReleases' values, Kustomizations and HelmRepositories read back.

/// The default stack built with `settings` (name, TOML value), its output parsed: path -> documents.
fn built(
    settings: &[(&str, &str)],
) -> std::collections::BTreeMap<String, Vec<serde_yaml_ng::Value>> {
    let stack = crate::build::Stack::default_stack();
    for (name, value) in settings {
        let text = stack.read("stack.toml");
        if text.lines().any(|l| l.starts_with(&format!("{name} ="))) {
            stack.set_setting(name, value);
        } else {
            stack.write(
                "stack.toml",
                &text.replacen(
                    "[settings]\n",
                    &format!("[settings]\n{name} = {value}\n"),
                    1,
                ),
            );
        }
    }
    let out = stack.stack(&["build"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files = std::collections::BTreeMap::new();
    let mut dirs = vec![stack.path().join("kubernetes")];
    while let Some(dir) = dirs.pop() {
        for entry in fs_err::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                let rel = path.strip_prefix(stack.path().join("kubernetes")).unwrap();
                let text = fs_err::read_to_string(&path).unwrap();
                let docs = serde_yaml_ng::Deserializer::from_str(&text)
                    .map(|d| serde::Deserialize::deserialize(d).unwrap())
                    .collect();
                files.insert(rel.display().to_string(), docs);
            }
        }
    }
    files
}

fn values(
    out: &std::collections::BTreeMap<String, Vec<serde_yaml_ng::Value>>,
    component: &str,
) -> serde_yaml_ng::Value {
    out[&format!("{component}/app/helmrelease.yaml")][0]["spec"]["values"].clone()
}

fn y(text: &str) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(text).unwrap()
}

#[test]
fn victoria_metrics_release_installs_and_uninstalls_on_a_real_cluster() {
    let out = built(&[]);
    let vm = values(&out, "victoria-metrics");
    let operator = &vm["victoria-metrics-operator"];
    // Item 1: the operator's webhooks let the release's own VM objects through while it starts.
    assert_eq!(operator["admissionWebhooks"]["policy"], y("Ignore"));
    // Item 1 too: a failed first install is retried in place, not uninstalled into the same race.
    let hr = &out["victoria-metrics/app/helmrelease.yaml"][0]["spec"];
    assert_eq!(
        hr["install"]["strategy"],
        y("{name: RetryOnFailure, retryInterval: 2m}")
    );
    // Item 2: no pre-delete Job pulling unpublished bitnami/kubectl tags.
    assert_eq!(operator["crds"]["cleanup"]["enabled"], y("false"));
    // Item 6: alert links point at Grafana's hostname, not the chart's grafana.domain.com.
    assert_eq!(
        vm["vmalert"]["spec"]["extraArgs"]["external.url"],
        y("https://grafana.${SECRET_DOMAIN}")
    );
    // Item 7: no keys that do nothing at 0.45.0.
    assert!(vm.get("syncJob").is_none());
    assert!(vm["grafana"].get("dashboards").is_none());
    // Item 3: Tempo's query API is on 3200.
    let tempo = vm["defaultDatasources"]["extra"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|d| d["type"] == y("tempo"))
        .unwrap();
    assert_eq!(tempo["url"], y("http://tempo.monitoring.svc:3200"));
}

#[test]
fn tempo_alloy_and_the_crds_carry_the_chart_facts() {
    let out = built(&[]);
    // Item 4: the metrics generator runs its processors.
    assert_eq!(
        values(&out, "tempo")["tempo"]["overrides"]["defaults"]["metrics_generator"]["processors"],
        y("[service-graphs, span-metrics]")
    );
    // Item 5: Helm keeps the CRDs when the release goes.
    assert_eq!(
        values(&out, "prometheus-operator-crds")["crds"]["annotations"]["helm.sh/resource-policy"],
        y("keep")
    );
    // Item 8: Alloy runs on tainted (control-plane) nodes too.
    assert_eq!(
        values(&out, "alloy")["controller"]["tolerations"],
        y("[{operator: Exists}]")
    );
}

#[test]
fn kube_prometheus_stack_uses_its_own_switches_and_tempos_port() {
    let out = built(&[("monitoring_stack", "\"prometheus\"")]);
    let kps = values(&out, "kube-prometheus-stack");
    // Item 7: the switches of 80.10.0 are kubeStateMetrics.enabled and nodeExporter.enabled.
    assert_eq!(kps["kubeStateMetrics"]["enabled"], y("true"));
    assert_eq!(kps["nodeExporter"]["enabled"], y("true"));
    assert!(kps.get("prometheus-node-exporter").is_none());
    assert!(kps["grafana"].get("dashboards").is_none());
    let tempo = kps["grafana"]["additionalDataSources"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|d| d["type"] == y("tempo"))
        .unwrap();
    assert_eq!(tempo["url"], y("http://tempo.monitoring.svc:3200"));
}

/// Item 9: what a Flux user meets around the output.
#[test]
fn kustomizations_need_the_secret_only_where_its_variables_are_used() {
    let out = built(&[]);
    let secret = |component: &str| {
        out[&format!("{component}/ks.yaml")][0]["spec"]["postBuild"]["substituteFrom"][0].clone()
    };
    // Grafana's root_url, route and VMAlert's external URL need SECRET_DOMAIN: the Secret is required.
    assert_eq!(
        secret("victoria-metrics"),
        y("{kind: Secret, name: cluster-secrets}")
    );
    // The others use no variable: a cluster without the Secret still applies them.
    assert_eq!(
        secret("loki"),
        y("{kind: Secret, name: cluster-secrets, optional: true}")
    );
}

#[test]
fn grafanas_route_is_a_setting() {
    let with = built(&[]);
    assert_eq!(
        values(&with, "victoria-metrics")["grafana"]["route"]["main"]["enabled"],
        y("true")
    );
    let without = built(&[("grafana_route", "false")]);
    assert!(values(&without, "victoria-metrics")["grafana"]
        .get("route")
        .is_none());
    let kps = built(&[
        ("grafana_route", "false"),
        ("monitoring_stack", "\"prometheus\""),
    ]);
    assert!(values(&kps, "kube-prometheus-stack")["grafana"]
        .get("route")
        .is_none());
}

#[test]
fn kustomization_names_take_the_stacks_prefix() {
    let stack = crate::build::Stack::default_stack();
    stack.edit(
        "stack.toml",
        "namespace = \"flux-system\" }",
        "namespace = \"flux-system\", prefix = \"obs-\" }",
    );
    let out = stack.stack(&["build"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ks: serde_yaml_ng::Value = y(&stack.read("kubernetes/loki/ks.yaml"));
    assert_eq!(ks["metadata"]["name"], y("obs-loki"));
    assert_eq!(ks["spec"]["dependsOn"], y("[{name: obs-victoria-metrics}]"));

    stack.edit("stack.toml", "prefix = \"obs-\"", "prefix = \"Obs_\"");
    let out = stack.stack(&["build"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("flux.prefix \"Obs_\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_out_dir_other_than_flux_path_is_warned_about() {
    let stack = crate::build::Stack::default_stack();
    let out = stack.stack(&["build", "--out", "elsewhere"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: --out elsewhere is not [stack] flux.path \"./kubernetes\""),
        "{stderr}"
    );
    let out = stack.stack(&["build", "--out", "kubernetes"]);
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("flux.path"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without --out the tree goes where the Kustomizations point, with nothing to warn about.
    fs_err::remove_dir_all(stack.path().join("kubernetes")).unwrap();
    let out = stack.stack(&["build"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("flux.path"),
        "{stderr}"
    );
    assert!(stack.path().join("kubernetes/kustomization.yaml").is_file());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("built kubernetes:"));
}

#[test]
fn one_helm_repository_per_url_emitted_before_its_users() {
    for (settings, owner) in [
        (&[][..], "tempo"),
        (&[("tracing_enabled", "false")][..], "alloy"),
    ] {
        let out = built(settings);
        let repos: Vec<&String> = out
            .keys()
            .filter(|p| p.ends_with("helmrepository.yaml"))
            .collect();
        assert_eq!(
            repos,
            vec![&format!("{owner}/app/helmrepository.yaml")],
            "{settings:?}"
        );
        let repo = &out[repos[0]][0];
        assert_eq!(repo["metadata"]["name"], y("grafana-github-io-helm-charts"));
        for component in ["alloy", "tempo"] {
            let Some(hr) = out.get(&format!("{component}/app/helmrelease.yaml")) else {
                continue;
            };
            assert_eq!(
                hr[0]["spec"]["chart"]["spec"]["sourceRef"],
                y("{kind: HelmRepository, name: grafana-github-io-helm-charts, namespace: monitoring}"),
                "{component}"
            );
        }
    }
}
