//! Fuzzing of the five parsers that read text a user or an upstream wrote: stack.toml, module.toml,
//! stack.lock, a Helm repository's index.yaml and dashboard JSON. Each gets arbitrary bytes, mutations of
//! a real file (bytes deleted, tokens inserted, lines repeated) and structured random documents built
//! from the parser's own vocabulary, so the generator reaches past the first syntax check. The property
//! is always the same: an `Err` or an `Ok`, never a panic or a hang. The lock also round-trips: a lock
//! that parses is written back to the same lock.
//!
//! Case counts are set here (not by the environment) so the whole set stays under a minute in CI on a
//! debug build; docs/RELIABILITY.md has the figures and how to rerun with more cases.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::emit::dashboard::{self, Datasources, Provision};
use crate::lock::Lock;
use crate::manifest::Manifest;
use crate::module::ModuleSet;
use crate::source::helm_repo::RepoIndex;

/// Cases per strategy and parser (three strategies per parser); `STACK_FUZZ_CASES` raises it for a
/// deeper run.
const CASES: u32 = 300;

fn config() -> ProptestConfig {
    let cases = std::env::var("STACK_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig {
        cases,
        // A failure is shrunk; bounded so a failing run still ends quickly.
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    }
}

/// The repository's own files: real inputs to mutate.
const STACK_TOML: &str = include_str!("../stack.toml");
const STACK_LOCK: &str = include_str!("../stack.lock");
const MODULE_TOML: &str = include_str!("../modules/victoria-metrics/module.toml");
const SETTINGS_TOML: &str = include_str!("../modules/settings.toml");
const DASHBOARD: &str = include_str!("../modules/network-monitoring/dashboards/coredns.json");

/// Tokens that mean something to TOML, YAML or JSON, for insertion into real text.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    "[[",
    "]]",
    "\"",
    "'",
    "=",
    ":",
    ",",
    "\n",
    "#",
    "\\",
    "\"\"\"",
    "-",
    "- ",
    "&a ",
    "*a",
    "!!binary ",
    "null",
    "true",
    "1e999",
    "-0",
    "0x",
    "\u{0}",
    "\u{feff}",
    "é",
    "${",
    "${settings.",
    "}",
    "    ",
    "\t",
    "---\n",
    "...\n",
    "\r\n",
    "9999999999999999999999",
];

/// `text` with up to four random edits: a byte range deleted, a token inserted or a line repeated.
/// Edits land on char boundaries, so the result stays a string.
fn mutated(text: &'static str) -> impl Strategy<Value = String> {
    let edit = (
        0usize..3,
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        0usize..TOKENS.len(),
    );
    prop::collection::vec(edit, 1..5).prop_map(move |edits| {
        let mut s = text.to_string();
        for (kind, at, len, token) in edits {
            let boundaries: Vec<usize> = (0..=s.len()).filter(|i| s.is_char_boundary(*i)).collect();
            let start = boundaries[at.index(boundaries.len())];
            match kind {
                0 => {
                    let end = boundaries[len.index(boundaries.len())].max(start);
                    let end = end.min(start + 64).min(s.len());
                    let end = (end..=s.len())
                        .find(|i| s.is_char_boundary(*i))
                        .unwrap_or(s.len());
                    s.replace_range(start..end, "");
                }
                1 => s.insert_str(start, TOKENS[token]),
                _ => {
                    let line_start = s[..start].rfind('\n').map_or(0, |i| i + 1);
                    let line_end = s[start..].find('\n').map_or(s.len(), |i| start + i + 1);
                    let line = s[line_start..line_end].to_string();
                    s.insert_str(line_start, &line);
                }
            }
        }
        s
    })
}

/// Words from the parsers' vocabularies, as keys and string values of generated documents.
const WORDS: &[&str] = &[
    "stack",
    "name",
    "flux",
    "source",
    "kind",
    "GitRepository",
    "path",
    "./k",
    "namespace",
    "interval",
    "prefix",
    "settings",
    "charts",
    "oci",
    "repo",
    "chart",
    "version",
    "dashboards",
    "url",
    "grafana_com",
    "revision",
    "folder",
    "when",
    "datasource",
    "datasources",
    "inputs",
    "modules",
    "enabled",
    "mirrors",
    "to",
    "insecure",
    "cluster",
    "release",
    "values",
    "patch",
    "merge",
    "manifests",
    "file",
    "dashboard",
    "depends_on",
    "provides",
    "timeout",
    "wait",
    "namespace_labels",
    "fingerprint",
    "requirement",
    "digest",
    "blake3",
    "layer_digest",
    "title",
    "entries",
    "urls",
    "apiVersion",
    "uid",
    "panels",
    "rows",
    "templating",
    "list",
    "__inputs",
    "__elements",
    "libraryPanel",
    "targets",
    "expr",
    "type",
    "prometheus",
    "${DS_PROMETHEUS}",
    "$datasource",
    "[[datasource]]",
    "${settings.x}",
    "oci://h/c",
    "https://h/d.json",
    "1.0.0",
    ">=1, <2",
    "10m",
    "x",
    "",
    "sha256:00",
    "vendor/dashboards/x.json",
    "id",
    "gridPos",
    "model",
];

fn word() -> impl Strategy<Value = String> {
    prop::sample::select(WORDS).prop_map(str::to_string)
}

/// A random JSON document whose keys and strings come mostly from [`WORDS`].
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        word().prop_map(Value::String),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(word(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A random TOML table (the shape of stack.toml, module.toml and stack.lock) over [`WORDS`].
fn toml_table() -> impl Strategy<Value = toml::Table> {
    use toml::Value;
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Boolean),
        any::<i64>().prop_map(Value::Integer),
        word().prop_map(Value::String),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(word(), inner, 0..5)
                .prop_map(|m| Value::Table(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map(word(), value, 0..6).prop_map(|m| m.into_iter().collect())
}

/// A random YAML text: generated JSON (which is YAML) or YAML written from it.
fn yaml_text() -> impl Strategy<Value = String> {
    (json_value(), any::<bool>()).prop_map(|(v, as_yaml)| {
        if as_yaml {
            serde_yaml_ng::to_string(&v).unwrap_or_default()
        } else {
            v.to_string()
        }
    })
}

// ----- stack.toml --------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn stack_toml_arbitrary_text(text in "\\PC{0,400}") {
        let _ = Manifest::parse(&text);
    }

    #[test]
    fn stack_toml_mutated(text in mutated(STACK_TOML)) {
        let _ = Manifest::parse(&text);
    }

    #[test]
    fn stack_toml_structured(table in toml_table()) {
        let _ = Manifest::parse(&toml::to_string(&table).unwrap());
    }
}

// ----- module.toml -------------------------------------------------------------------------------------

/// Loads a stack whose one module `m` has `module_toml`, with the repo's settings.toml and an empty
/// values.yaml beside it. The whole loader runs (conditions, files named, references), as `build` runs it.
fn load_module(module_toml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("modules/m");
    fs_err::create_dir_all(&module).unwrap();
    fs_err::write(dir.path().join("modules/settings.toml"), SETTINGS_TOML).unwrap();
    fs_err::write(module.join("module.toml"), module_toml).unwrap();
    for file in ["values.yaml", "x", "values-loki.yaml", "values-route.yaml"] {
        fs_err::write(module.join(file), "a: 1\n").unwrap();
    }
    let _ = ModuleSet::load(dir.path());
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn module_toml_arbitrary_text(text in "\\PC{0,400}") {
        load_module(&text);
    }

    #[test]
    fn module_toml_mutated(text in mutated(MODULE_TOML)) {
        load_module(&text);
    }

    #[test]
    fn module_toml_structured(table in toml_table()) {
        load_module(&toml::to_string(&table).unwrap());
    }
}

// ----- stack.lock --------------------------------------------------------------------------------------

/// A well-formed lock text: header, version, fingerprint, charts and dashboards with names and fields
/// drawn at random (some of them invalid, so both outcomes are exercised).
fn lock_text() -> impl Strategy<Value = String> {
    let name = "[a-z][a-z0-9-]{0,12}[a-z0-9]";
    let text = "[ -~]{0,24}";
    // Mostly well-formed digests and paths (so most generated locks parse and the round trip is exercised), and
    // sometimes any text (so their validation is too).
    let sha256 = prop_oneof![40 => "sha256:[0-9a-f]{64}", 1 => text];
    let blake3 = prop_oneof![40 => "[0-9a-f]{64}", 1 => text];
    let chart = (
        name,
        text,
        text,
        text,
        (sha256.clone(), blake3.clone()),
        proptest::option::of(sha256.clone()),
        proptest::option::of(text),
    )
        .prop_map(|(n, source, req, version, (digest, blake3), layer, url)| {
            let mut s =
                format!(
                "[[chart]]\nname = {}\nsource = {}\nrequirement = {}\nversion = {}\ndigest = {}\n",
                quote(&n), quote(&source), quote(&req), quote(&version), quote(&digest)
            );
            if let Some(layer) = layer {
                s.push_str(&format!("layer_digest = {}\n", quote(&layer)));
            }
            if let Some(url) = url {
                s.push_str(&format!("url = {}\n", quote(&url)));
            }
            s.push_str(&format!("blake3 = {}\n\n", quote(&blake3)));
            s
        });
    let dashboard = (
        name,
        text,
        proptest::option::of(any::<u64>()),
        (sha256, blake3),
        proptest::bool::weighted(0.95),
    )
        .prop_map(|(n, title, revision, (digest, blake3), vendored)| {
            let path = if vendored {
                format!("vendor/dashboards/{n}.json")
            } else {
                format!("../{n}.json")
            };
            let mut s = format!(
                "[[dashboard]]\nname = {}\nsource = \"https://h/{n}.json\"\n",
                quote(&n)
            );
            if let Some(r) = revision {
                s.push_str(&format!(
                    "grafana_com = 1\nrevision = {}\n",
                    r % (i64::MAX as u64)
                ));
            }
            s.push_str(&format!(
                "title = {}\npath = {}\ndigest = {}\nblake3 = {}\n\n",
                quote(&title),
                quote(&path),
                quote(&digest),
                quote(&blake3)
            ));
            s
        });
    (
        text,
        prop::collection::vec(chart, 0..4),
        prop::collection::vec(dashboard, 0..4),
    )
        .prop_map(|(fingerprint, charts, dashboards)| {
            format!(
                "# @generated\n\nversion = 1\nfingerprint = {}\n\n{}{}",
                quote(&fingerprint),
                charts.concat(),
                dashboards.concat()
            )
        })
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn stack_lock_arbitrary_text(text in "\\PC{0,400}") {
        let _ = Lock::parse(&text);
    }

    #[test]
    fn stack_lock_mutated(text in mutated(STACK_LOCK)) {
        let _ = Lock::parse(&text);
    }

    /// parse(write(lock)) == lock, and writing is stable, for every generated lock that parses.
    #[test]
    fn stack_lock_round_trip(text in lock_text()) {
        if let Ok(lock) = Lock::parse(&text) {
            let written = lock.to_toml();
            let again = Lock::parse(&written).expect("a written lock parses");
            prop_assert_eq!(&again, &lock);
            prop_assert_eq!(again.to_toml(), written);
        }
    }
}

#[test]
fn generated_locks_mostly_parse() {
    // The round trip above is only as strong as the share of generated locks that parse.
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = lock_text();
    let parsed = (0..200)
        .filter(|_| Lock::parse(&strategy.new_tree(&mut runner).unwrap().current()).is_ok())
        .count();
    assert!(parsed >= 50, "only {parsed} of 200 generated locks parse");
}

// ----- index.yaml --------------------------------------------------------------------------------------

/// Parses an index and reads every chart's entries, as `stack lock` does for the chart it wants.
fn read_index(bytes: &[u8]) {
    if let Ok(index) = RepoIndex::parse(bytes) {
        for chart in WORDS {
            let _ = index.entries(chart);
        }
    }
}

/// An index.yaml with entries for charts named from [`WORDS`], each a list of random documents.
fn index_yaml() -> impl Strategy<Value = String> {
    prop::collection::btree_map(word(), prop::collection::vec(json_value(), 0..4), 0..4).prop_map(
        |entries| {
            let doc = serde_json::json!({"apiVersion": "v1", "entries": entries});
            serde_yaml_ng::to_string(&doc).unwrap_or_default()
        },
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn index_yaml_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        read_index(&bytes);
    }

    #[test]
    fn index_yaml_random_yaml(text in yaml_text()) {
        read_index(text.as_bytes());
    }

    #[test]
    fn index_yaml_structured(text in index_yaml()) {
        read_index(text.as_bytes());
    }

    /// The streaming index reader (which keeps only the wanted charts) reads what the full parser reads.
    #[test]
    fn index_yaml_streamed_as_parsed(text in index_yaml()) {
        let agrees = crate::source::helm_repo::streaming_agrees(text.as_bytes());
        prop_assert!(agrees.is_ok(), "{}\n{text}", agrees.unwrap_err());
    }
}

// ----- dashboard JSON ----------------------------------------------------------------------------------

/// Renders `bytes` as a dashboard provisioned with a Prometheus datasource, as `build` does.
fn render(bytes: &[u8]) {
    let empty = BTreeMap::new();
    let provisioned = BTreeMap::from([("prometheus".to_string(), "Prometheus".to_string())]);
    let spec = Provision {
        datasource: None,
        datasources: &empty,
        inputs: &empty,
    };
    let _ = dashboard::render(
        "fuzz",
        "fuzz.json",
        bytes,
        &spec,
        &Datasources {
            provisioned: &provisioned,
        },
    );
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn dashboard_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        render(&bytes);
    }

    #[test]
    fn dashboard_mutated(text in mutated(DASHBOARD)) {
        render(text.as_bytes());
    }

    #[test]
    fn dashboard_structured(
        panels in prop::collection::vec(json_value(), 0..5),
        extra in prop::collection::btree_map(word(), json_value(), 0..5),
    ) {
        let mut doc = serde_json::json!({"title": "Fuzz", "uid": "fuzz", "panels": panels});
        for (k, v) in extra {
            doc[k] = v;
        }
        render(doc.to_string().as_bytes());
    }
}
