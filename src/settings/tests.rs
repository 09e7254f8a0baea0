//! Tests of settings: defaults, overrides, types and their errors.

use super::*;

#[test]
fn a_condition_error_points_at_the_setting_inside_its_when_table() {
    let text = "namespace = \"a\"\nmode = 1\nwhen = { loki = true, mode = \"c\" }\n";
    let span = condition_span(text, "mode").unwrap();
    assert_eq!(&text[span.clone()], "mode");
    assert_eq!(crate::diag::line_col(text, span.start), (3, 23));
    assert_eq!(condition_span(text, "mod"), None);
    assert_eq!(condition_span("when = { x = 1 }", "y"), None);
}

#[test]
fn a_condition_on_a_value_the_setting_never_takes_is_an_error() {
    let schema =
        Schema::parse("[mode]\ntype = \"string\"\ndefault = \"a\"\nallowed = [\"a\", \"b\"]\n")
            .unwrap();
    let text = "when = { mode = \"c\" }\n";
    let cond: Condition = toml::from_str::<toml::Table>(text).unwrap()["when"]
        .clone()
        .try_into()
        .unwrap();
    let err = cond.check_located(&schema, "m.toml", text).unwrap_err();
    assert!(err.message.contains("never takes"), "{}", err.message);
    assert_eq!(err.help.as_deref(), Some("use one of \"a\", \"b\""));
}

#[test]
fn a_default_outside_allowed_and_allowed_on_an_integer_are_refused() {
    let outside = "[mode]\ntype = \"string\"\ndefault = \"c\"\nallowed = [\"a\"]\n";
    assert!(Schema::parse(outside)
        .unwrap_err()
        .message
        .contains("not one of its `allowed`"));
    let integer = "[n]\ntype = \"integer\"\nallowed = [\"1\"]\n";
    assert!(Schema::parse(integer)
        .unwrap_err()
        .message
        .contains("applies to strings"));
}

fn settings() -> Settings {
    let mut values = BTreeMap::new();
    values.insert("threshold".into(), SettingValue::Integer(90));
    values.insert("retention".into(), SettingValue::String("7d".into()));
    values.insert("on".into(), SettingValue::Bool(true));
    Settings { values }
}

#[test]
fn whole_scalar_keeps_its_type() {
    let mut v: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        "a: ${settings.threshold}\nb: ${settings.on}\nc: '${settings.retention}'",
    )
    .unwrap();
    substitute(&mut v, &settings()).unwrap();
    assert_eq!(
        serde_yaml_ng::to_string(&v).unwrap(),
        "a: 90\nb: true\nc: 7d\n"
    );
}

#[test]
fn embedded_reference_is_spliced_and_flux_variables_are_left() {
    let mut v: serde_yaml_ng::Value =
        serde_yaml_ng::from_str("expr: x > ${settings.threshold} and ${SECRET_DOMAIN}").unwrap();
    substitute(&mut v, &settings()).unwrap();
    assert_eq!(
        serde_yaml_ng::to_string(&v).unwrap(),
        "expr: x > 90 and ${SECRET_DOMAIN}\n"
    );
}

#[test]
fn a_quoted_whole_reference_stays_a_string() {
    let text = "a: \"${settings.threshold}\"\nb: '${settings.on}'\nc: ${settings.threshold}\nd: \"x ${settings.on}\"\n";
    let marked = mark_quoted_references(text);
    let mut v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&marked).unwrap();
    substitute(&mut v, &settings()).unwrap();
    assert_eq!(
        serde_yaml_ng::to_string(&v).unwrap(),
        "a: '90'\nb: 'true'\nc: 90\nd: x true\n"
    );
}

#[test]
fn mistyped_settings_references_are_errors_and_flux_variables_pass() {
    for bad in [
        "${setting.threshold}",
        "${Settings.threshold}",
        "x ${SETTINGS.on} y",
        "${settings:on}",
    ] {
        let mut v = serde_yaml_ng::Value::String(bad.into());
        let err = substitute(&mut v, &settings()).unwrap_err();
        assert!(err.contains("did you mean `${settings."), "{bad}: {err}");
    }
    let mut v = serde_yaml_ng::Value::String("${SECRET_DOMAIN} ${settings_x}".into());
    substitute(&mut v, &settings()).unwrap();
    assert_eq!(
        v,
        serde_yaml_ng::Value::String("${SECRET_DOMAIN} ${settings_x}".into())
    );
}

#[test]
fn unknown_setting_is_an_error() {
    let mut v: serde_yaml_ng::Value = serde_yaml_ng::from_str("a: ${settings.nope}").unwrap();
    let err = substitute(&mut v, &settings()).unwrap_err();
    assert!(err.contains("unknown setting `nope`"), "{err}");
}

#[test]
fn condition_holds_only_when_every_value_matches() {
    let c: Condition = toml::from_str("on = true\nthreshold = 90").unwrap();
    assert!(c.holds(&settings()));
    let c: Condition = toml::from_str("on = false").unwrap();
    assert!(!c.holds(&settings()));
}

#[test]
fn schema_rejects_wrong_type_unknown_name_and_fills_defaults() {
    let schema = Schema::parse(
            "[retention]\ntype = \"string\"\ndefault = \"7d\"\n[on]\ntype = \"bool\"\ndefault = false\n",
        )
        .unwrap();
    let text = "[settings]\non = \"yes\"\n";
    #[derive(Deserialize)]
    struct W {
        settings: BTreeMap<String, toml::Spanned<toml::Value>>,
    }
    let w: W = toml::from_str(text).unwrap();
    let err = schema
        .resolve(&w.settings, "stack.toml", text)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("stack.toml:2:6: setting `on` must be a boolean"),
        "{err}"
    );

    let text = "[settings]\nofn = true\n";
    let w: W = toml::from_str(text).unwrap();
    let err = schema
        .resolve(&w.settings, "stack.toml", text)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("stack.toml:2:7: unknown setting `ofn`"),
        "{err}"
    );

    let w: W = toml::from_str("[settings]\non = true\n").unwrap();
    let s = schema.resolve(&w.settings, "stack.toml", "").unwrap();
    assert_eq!(s.values["retention"], SettingValue::String("7d".into()));
}
