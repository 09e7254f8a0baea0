//! Tests of the dashboard ConfigMaps: datasource rewriting, sizes and names.

use super::*;
use crate::settings::Condition;

fn spec() -> DashboardSpec {
    DashboardSpec {
        source: crate::manifest::DashboardSource::Url {
            url: "https://example.com/d.json".into(),
        },
        folder: "X".into(),
        datasource: None,
        datasources: BTreeMap::new(),
        inputs: BTreeMap::new(),
        when: Condition::default(),
    }
}

fn provisioned() -> BTreeMap<String, String> {
    BTreeMap::from([("prometheus".to_string(), "VictoriaMetrics".to_string())])
}

/// Renders `json`, giving it a title when it has none (most cases here are about something else).
fn run(json: &str, spec: &DashboardSpec) -> Result<Value, DashboardError> {
    let json = if json.contains("\"title\"") {
        json.to_string()
    } else {
        json.replacen('{', "{\"title\":\"T\",", 1)
    };
    rendered(&json, spec).map(|r| serde_json::from_str(&r.text).unwrap())
}

/// `json` rendered as shipped (its text), with the VictoriaMetrics backend provisioned.
fn rendered(json: &str, spec: &DashboardSpec) -> Result<Rendered, DashboardError> {
    let p = provisioned();
    render(
        "d",
        "vendor/d.json",
        json.as_bytes(),
        &Provision::from(spec),
        &Datasources { provisioned: &p },
    )
}

#[test]
fn inputs_are_filled_and_removed() {
    let out = run(
            r#"{"__inputs":[{"name":"DS_PROMETHEUS","type":"datasource","pluginId":"prometheus"}],
                "panels":[{"datasource":{"type":"prometheus","uid":"${DS_PROMETHEUS}"},"expr":"rate(x[${__rate_interval}])"}]}"#,
            &spec(),
        )
        .unwrap();
    assert!(out.get("__inputs").is_none());
    assert_eq!(out["panels"][0]["datasource"]["uid"], "VictoriaMetrics");
    assert_eq!(out["panels"][0]["expr"], "rate(x[${__rate_interval}])");
}

#[test]
fn references_without_inputs_resolve_by_name() {
    let out = run(r#"{"panels":[{"datasource":"${DS_PROMETHEUS}"}]}"#, &spec()).unwrap();
    assert_eq!(out["panels"][0]["datasource"], "VictoriaMetrics");
}

#[test]
fn a_variable_named_like_the_input_is_kept_and_defaulted() {
    let out = run(
            r#"{"__inputs":[{"name":"DS_PROMETHEUS","type":"datasource","pluginId":"prometheus"}],
                "templating":{"list":[{"name":"DS_PROMETHEUS","type":"datasource","query":"prometheus"}]},
                "panels":[{"datasource":"${DS_PROMETHEUS}"}]}"#,
            &spec(),
        )
        .unwrap();
    assert_eq!(out["panels"][0]["datasource"], "${DS_PROMETHEUS}");
    assert_eq!(
        out["templating"]["list"][0]["current"]["value"],
        "VictoriaMetrics"
    );
}

#[test]
fn explicit_datasource_wins_over_provisioned() {
    let mut s = spec();
    s.datasource = Some("Thanos".into());
    let out = run(r#"{"panels":[{"datasource":"${DS_PROMETHEUS}"}]}"#, &s).unwrap();
    assert_eq!(out["panels"][0]["datasource"], "Thanos");
}

#[test]
fn missing_loki_datasource_is_an_error_naming_the_input() {
    let err = run(
        r#"{"__inputs":[{"name":"DS_LOKI","type":"datasource","pluginId":"loki"}]}"#,
        &spec(),
    )
    .unwrap_err();
    assert!(
        matches!(err, DashboardError::NoDatasource { ref input, .. } if input == "DS_LOKI"),
        "{err}"
    );
}

#[test]
fn constants_must_be_given_and_are_substituted() {
    let json = r#"{"__inputs":[{"name":"VAR_NS","type":"constant","label":"ns","value":"kube-system"}],"q":"ns=\"${VAR_NS}\""}"#;
    let err = run(json, &spec()).unwrap_err();
    assert!(err.to_string().contains("constant input `VAR_NS`"), "{err}");
    let mut s = spec();
    s.inputs.insert("VAR_NS".into(), "cilium".into());
    assert_eq!(run(json, &s).unwrap()["q"], "ns=\"cilium\"");
    s.inputs.insert("VAR_TYPO".into(), "x".into());
    assert!(matches!(
        run(json, &s).unwrap_err(),
        DashboardError::UnknownInput { .. }
    ));
}

#[test]
fn unresolved_constant_reference_is_an_error() {
    let err = run(r#"{"q":"${VAR_X}"}"#, &spec()).unwrap_err();
    assert!(
        matches!(err, DashboardError::Unresolved { ref reference, .. } if reference == "VAR_X")
    );
}

#[test]
fn an_http_api_export_is_unwrapped() {
    let out = run(
            r#"{"dashboard":{"title":"Inner","uid":"in","panels":[{"datasource":"${DS_PROMETHEUS}"}]},"meta":{"slug":"x"}}"#,
            &spec(),
        )
        .unwrap();
    assert_eq!(out["title"], "Inner");
    assert!(out.get("meta").is_none());
    assert_eq!(out["panels"][0]["datasource"], "VictoriaMetrics");
}

#[test]
fn removing_inputs_keeps_upstream_key_order() {
    let out = run(
        r#"{"__inputs":[],"title":"T","annotations":{},"panels":[],"uid":"u","version":3}"#,
        &spec(),
    )
    .unwrap();
    let keys: Vec<&str> = out
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(keys, ["title", "annotations", "panels", "uid", "version"]);
}

#[test]
fn a_body_without_a_title_is_not_a_dashboard() {
    let err = run(
        r#"{"code":"InvalidArgument","message":"x","title":""}"#,
        &spec(),
    );
    assert!(
        matches!(err, Err(DashboardError::NoTitle { .. })),
        "{err:?}"
    );
}

#[test]
fn uids_follow_grafanas_rule() {
    let ok = run(r#"{"uid":"stack-coredns_1"}"#, &spec()).unwrap();
    assert_eq!(ok["uid"], "stack-coredns_1");
    for bad in [
        r#"{"uid":"has space"}"#,
        r#"{"uid":"a.b"}"#,
        r#"{"uid":""}"#,
        r#"{"uid":7}"#,
    ] {
        let err = run(bad, &spec()).unwrap_err();
        assert!(matches!(err, DashboardError::BadUid { .. }), "{bad}: {err}");
    }
    let long = format!(r#"{{"uid":"{}"}}"#, "u".repeat(41));
    assert!(matches!(
        run(&long, &spec()).unwrap_err(),
        DashboardError::BadUid { .. }
    ));
    let forty = format!(r#"{{"uid":"{}"}}"#, "u".repeat(40));
    assert!(run(&forty, &spec()).is_ok());
}

#[test]
fn too_large_is_an_error() {
    let big = format!("{{\"title\":\"{}\"}}", "x".repeat(CONFIGMAP_LIMIT));
    assert!(matches!(
        run(&big, &spec()).unwrap_err(),
        DashboardError::TooLarge { .. }
    ));
}

// ----- the synthetic fixtures of tests/fixtures/dashboards/: one file per shape the build handles ---

fn fixture(file: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/dashboards/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    fs_err::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn with_loki() -> BTreeMap<String, String> {
    let mut p = provisioned();
    p.insert("loki".into(), "Loki".into());
    p
}

fn run_with(
    json: &str,
    spec: &DashboardSpec,
    p: &BTreeMap<String, String>,
) -> Result<Value, DashboardError> {
    render(
        "d",
        "d.json",
        json.as_bytes(),
        &Provision::from(spec),
        &Datasources { provisioned: p },
    )
    .map(|r| serde_json::from_str(&r.text).unwrap())
}

#[test]
fn fixture_inputs_datasource_and_constant() {
    let json = fixture("inputs.json");
    assert!(
        matches!(run(&json, &spec()), Err(DashboardError::MissingConstant { ref input, .. }) if input == "VAR_NAMESPACE")
    );
    let mut s = spec();
    s.inputs.insert("VAR_NAMESPACE".into(), "monitoring".into());
    let out = run(&json, &s).unwrap();
    assert!(out.get("__inputs").is_none());
    assert_eq!(out["panels"][0]["datasource"]["uid"], "VictoriaMetrics");
    let expr = out["panels"][0]["targets"][0]["expr"].as_str().unwrap();
    assert!(
        expr.contains("namespace=\"monitoring\"") && expr.contains("$__rate_interval"),
        "{expr}"
    );
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["__requires", "title", "uid", "panels", "schemaVersion"]
    );
}

#[test]
fn fixture_ds_references_without_inputs() {
    let json = fixture("ds-references.json");
    let err = run(&json, &spec()).unwrap_err();
    assert!(
        matches!(err, DashboardError::NoDatasource { ref input, .. } if input == "DS_LOKI"),
        "{err}"
    );
    let out = run_with(&json, &spec(), &with_loki()).unwrap();
    assert_eq!(out["panels"][0]["datasource"], "VictoriaMetrics");
    assert_eq!(out["panels"][1]["datasource"]["uid"], "Loki");
    assert_eq!(out["panels"][2]["interval"], "${__rate_interval}");
}

#[test]
fn fixture_variable_named_ds_prometheus_is_kept_and_defaulted() {
    let out = run(&fixture("ds-variable.json"), &spec()).unwrap();
    let var = &out["templating"]["list"][0];
    assert_eq!(var["current"]["value"], "VictoriaMetrics");
    assert_eq!(
        out["templating"]["list"][1]["datasource"],
        "${DS_PROMETHEUS}"
    );
    assert_eq!(out["panels"][0]["datasource"], "${DS_PROMETHEUS}");
}

#[test]
fn fixture_datasource_variable_is_defaulted_and_references_kept() {
    let out = run(&fixture("datasource-variable.json"), &spec()).unwrap();
    assert_eq!(
        out["templating"]["list"][0]["current"]["value"],
        "VictoriaMetrics"
    );
    assert_eq!(out["panels"][0]["datasource"], "$datasource");
    assert_eq!(out["panels"][1]["datasource"]["uid"], "${datasource}");
}

#[test]
fn fixture_rows_with_nested_panels_are_resolved() {
    let out = run(&fixture("rows.json"), &spec()).unwrap();
    assert_eq!(
        out["panels"][0]["panels"][0]["datasource"]["uid"],
        "VictoriaMetrics"
    );
    assert_eq!(out["panels"][1]["datasource"], "VictoriaMetrics");
}

#[test]
fn fixture_mixed_datasource_keeps_mixed_and_resolves_each_target() {
    let out = run_with(&fixture("mixed.json"), &spec(), &with_loki()).unwrap();
    let panel = &out["panels"][0];
    assert_eq!(panel["datasource"]["uid"], "-- Mixed --");
    assert_eq!(panel["targets"][0]["datasource"]["uid"], "VictoriaMetrics");
    assert_eq!(panel["targets"][1]["datasource"]["uid"], "Loki");
}

#[test]
fn upstream_formatting_is_kept_byte_for_byte() {
    let json = "{\n    \"title\": \"T\",\n    \"__inputs\": [{\"name\": \"DS_P\", \"type\": \"datasource\", \"pluginId\": \"prometheus\"}],\n    \"panels\": [ {\"datasource\":   \"${DS_P}\", \"x\": 1.50} ]\n}";
    let out = rendered(json, &spec()).unwrap();
    assert_eq!(
            out.text,
            "{\n    \"title\": \"T\",\n    \"panels\": [ {\"datasource\":   \"VictoriaMetrics\", \"x\": 1.50} ]\n}\n"
        );
}

#[test]
fn a_remapped_literal_uid_falls_back_to_the_serialised_document() {
    let json = "{\"title\":\"T\",\"panels\":[{\"title\":\"Cache\",\"datasource\":{\"type\":\"prometheus\",\"uid\":\"PBFA97CFB590B2093\"}}]}";
    let mut s = spec();
    s.datasources
        .insert("PBFA97CFB590B2093".into(), "prometheus".into());
    let out = rendered(json, &s).unwrap();
    assert!(
        out.text.contains("\n  \"panels\""),
        "pretty-printed: {}",
        out.text
    );
    assert!(
        out.text.contains("\"uid\": \"VictoriaMetrics\""),
        "{}",
        out.text
    );
}

#[test]
fn a_literal_mapped_to_itself_keeps_upstream_formatting() {
    let json = "{\"title\":\"T\",\"panels\":[{\"title\":\"Cache\",\"datasource\":{\"type\":\"prometheus\",\"uid\":\"VictoriaMetrics\"}}]}";
    let mut s = spec();
    s.datasources
        .insert("VictoriaMetrics".into(), "prometheus".into());
    let out = rendered(json, &s).unwrap();
    assert_eq!(out.text, format!("{json}\n"));
}

#[test]
fn a_minified_900_kib_dashboard_ships_under_the_configmap_limit() {
    let panel = r#"{"type":"timeseries","title":"CPU","datasource":"${DS_PROMETHEUS}","targets":[{"expr":"sum(rate(node_cpu_seconds_total{mode!=\"idle\"}[5m])) by (instance)","legendFormat":"{{instance}}"}],"fieldConfig":{"defaults":{"unit":"percent","thresholds":{"steps":[{"color":"green","value":null},{"color":"red","value":80}]}}},"gridPos":{"h":8,"w":12,"x":0,"y":0}}"#;
    let count = 900 * 1024 / (panel.len() + 1);
    let json = format!(
        r#"{{"__inputs":[{{"name":"DS_PROMETHEUS","type":"datasource","pluginId":"prometheus"}}],"title":"Big","uid":"big","panels":[{}]}}"#,
        vec![panel; count].join(",")
    );
    assert!(json.len() > 890 * 1024, "{}", json.len());
    let pretty =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&json).unwrap()).unwrap();
    assert!(
        pretty.len() > CONFIGMAP_LIMIT,
        "pretty-printed it would not fit"
    );
    let out = rendered(&json, &spec()).unwrap();
    assert!(out.text.len() < CONFIGMAP_LIMIT, "{}", out.text.len());
    assert!(!out.text.contains("${DS_PROMETHEUS}") && !out.text.contains("__inputs"));
    let doc: Value = serde_json::from_str(&out.text).unwrap();
    assert_eq!(doc["panels"].as_array().unwrap().len(), count);
    assert_eq!(doc["panels"][count - 1]["datasource"], "VictoriaMetrics");
}

#[test]
fn input_names_may_hold_dashes_and_dots() {
    let out = run(
            r#"{"__inputs":[{"name":"DS_MY-PROM.1","type":"datasource","pluginId":"prometheus"}],"panels":[{"datasource":"${DS_MY-PROM.1}"}]}"#,
            &spec(),
        )
        .unwrap();
    assert_eq!(out["panels"][0]["datasource"], "VictoriaMetrics");
}

#[test]
fn a_literal_author_uid_is_an_error_until_stack_toml_maps_it() {
    let json = r#"{"title":"T","panels":[{"title":"Cache","datasource":{"type":"prometheus","uid":"PBFA97CFB590B2093"}}]}"#;
    let err = run(json, &spec()).unwrap_err();
    assert!(
        matches!(err, DashboardError::UnresolvedDatasource { ref panel, ref reference, .. } if panel == "panel `Cache`" && reference == "PBFA97CFB590B2093"),
        "{err}"
    );
    let mut s = spec();
    s.datasources
        .insert("PBFA97CFB590B2093".into(), "prometheus".into());
    let out = run(json, &s).unwrap();
    assert_eq!(
        out["panels"][0]["datasource"]["uid"], "VictoriaMetrics",
        "a plugin id maps to what is provisioned"
    );
}

// ----- the text path and the tree path agree (the proof that lets the text path skip the tree) --------

#[allow(dead_code, reason = "the shared helper has more than these tests use")]
#[path = "../../../tests/support/upstream.rs"]
mod upstream;

/// The repository's root, for the shared upstream helper.
fn repo_root() -> std::path::PathBuf {
    env!("CARGO_MANIFEST_DIR").into()
}

/// Every real dashboard at hand: upstream's (../shared/upstream, read in place), the fixtures and the
/// modules' own.
fn real_dashboards() -> Vec<(String, String)> {
    let mut files = Vec::new();
    let dirs = [
        upstream::path("dashboards"),
        repo_root().join("tests/fixtures/dashboards"),
    ];
    let modules = fs_err::read_dir(repo_root().join("modules")).unwrap();
    let own = modules.map(|m| m.unwrap().path().join("dashboards"));
    for dir in dirs.into_iter().chain(own).filter(|d| d.is_dir()) {
        for entry in fs_err::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = fs_err::read_to_string(&path).unwrap();
            files.push((path.display().to_string(), text));
        }
    }
    files.sort();
    assert!(files.len() >= 23, "{} dashboards", files.len());
    files
}

/// The names a dashboard's `${…}` references and `__inputs` use, for stack.toml settings that hit them.
fn names_in(text: &str) -> Vec<String> {
    let doc: Value = serde_json::from_str(text).unwrap();
    let mut names = std::collections::BTreeSet::new();
    collect_references(&doc, &mut names);
    for input in doc["__inputs"].as_array().into_iter().flatten() {
        names.extend(input["name"].as_str().map(String::from));
    }
    names.into_iter().collect()
}

/// The outcome of the text path where it answers, else of the tree path; and the tree path's alone.
fn both(
    text: &str,
    spec: &Provision,
    provisioned: &BTreeMap<String, String>,
) -> (
    Option<Rendered>,
    Result<Rendered, DashboardError>,
    Result<Rendered, DashboardError>,
) {
    let ds = Datasources { provisioned };
    let by = Resolve {
        name: "d",
        spec,
        ds: &ds,
    };
    let on_text = by.on_text("d.json", text.as_bytes());
    let rendered = render("d", "d.json", text.as_bytes(), spec, &ds);
    (on_text, rendered, by.on_tree("d.json", text.as_bytes()))
}

#[test]
fn skeleton_and_tree_agree_on_every_real_dashboard_as_configured_by_default() {
    let provisioned = with_loki();
    let empty = BTreeMap::new();
    let spec = Provision {
        datasource: None,
        datasources: &empty,
        inputs: &empty,
    };
    let mut on_text = 0;
    let files = real_dashboards();
    for (path, text) in &files {
        let (fast, rendered, tree) = both(text, &spec, &provisioned);
        assert_eq!(rendered, tree, "{path}");
        // The text path answers every dashboard the tree path ships (the errors are the tree path's).
        assert_eq!(fast.is_some(), tree.is_ok(), "{path}");
        if let Some(fast) = fast {
            assert_eq!(Ok(fast), tree, "{path}");
            on_text += 1;
        }
    }
    assert!(on_text >= 25, "{on_text} of {}", files.len());
}

#[test]
fn an_escape_spelling_a_reference_sends_the_dashboard_to_the_tree() {
    let provisioned = provisioned();
    let empty = BTreeMap::new();
    let spec = Provision {
        datasource: None,
        datasources: &empty,
        inputs: &empty,
    };
    for text in [
        r#"{"title":"T","panels":[{"datasource":"\u0024{DS_PROMETHEUS}"}]}"#,
        r#"{"title":"T","panels":[{"datasource":"${DS_PROMETHEU\u0053}"}]}"#,
    ] {
        let (fast, rendered, tree) = both(text, &spec, &provisioned);
        assert_eq!(fast, None, "{text}");
        assert_eq!(rendered, tree);
        assert!(rendered.unwrap().text.contains("VictoriaMetrics"), "{text}");
    }
}

/// A datasource or constant value, with the characters that need escaping or look like references.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z][A-Za-z0-9 _-]{0,10}",
        "[A-Za-z0-9\"\\\\${}:./ -]{1,12}",
        Just("prometheus".to_string()),
        Just("loki".to_string()),
    ]
}

/// Edits of a dashboard's text that stay JSON: a reference or an escape added inside its strings.
fn mutate(text: &str, at: usize, insert: &str) -> String {
    let quotes: Vec<usize> = text.match_indices("\": \"").map(|(i, _)| i + 4).collect();
    match quotes.get(at % quotes.len().max(1)) {
        Some(&i) => format!("{}{insert}{}", &text[..i], &text[i..]),
        None => text.to_string(),
    }
}

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_shrink_iters: 200, ..ProptestConfig::default() })]

    /// Random stack.toml settings (for the names each dashboard uses and others) and random strings
    /// spliced into its values: wherever the text path answers, its text is the tree path's, byte for
    /// byte; errors always come from the tree path.
    #[test]
    fn skeleton_and_tree_agree_on_real_dashboards_under_random_settings(
        pick in any::<prop::sample::Index>(),
        datasource in prop::option::of(value()),
        picks in prop::collection::vec((any::<prop::sample::Index>(), value()), 0..4),
        given in prop::collection::vec((any::<prop::sample::Index>(), value()), 0..3),
        prom in value(),
        splice in prop::option::of((any::<usize>(), prop_oneof![
            Just("${DS_PROMETHEUS}"), Just("${datasource}"), Just("\\u0024{DS_LOKI}"),
            Just("${VAR_X}"), Just("$${DS_PROMETHEUS}}"), Just("\\\"${DS_LOKI:raw}\\\""),
            Just("\\u00e9"), Just("${__rate_interval}"),
        ])),
    ) {
        let files = real_dashboards();
        let (_, text) = &files[pick.index(files.len())];
        let text = match splice {
            Some((at, insert)) => mutate(text, at, insert),
            None => text.clone(),
        };
        let names = names_in(&text);
        let choose = |picks: &[(prop::sample::Index, String)]| -> BTreeMap<String, String> {
            picks
                .iter()
                .filter(|_| !names.is_empty())
                .map(|(i, v)| (names[i.index(names.len())].clone(), v.clone()))
                .collect()
        };
        let (datasources, inputs) = (choose(&picks), choose(&given));
        let spec = Provision {
            datasource: datasource.as_deref(),
            datasources: &datasources,
            inputs: &inputs,
        };
        let provisioned =
            BTreeMap::from([("prometheus".to_string(), prom), ("loki".to_string(), "Loki".to_string())]);
        let (fast, rendered, tree) = both(&text, &spec, &provisioned);
        prop_assert_eq!(&rendered, &tree);
        if let Some(fast) = fast {
            prop_assert_eq!(Ok(fast), tree);
        }
    }
}
