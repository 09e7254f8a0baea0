//! A Helm repository's index.yaml, kept only for the charts a stack wants: public indexes reach 50 MB, and
//! holding every chart's entries as a tree took 21 times the file's size. The index is read as a stream of
//! YAML events (saphyr-parser) and only the wanted charts' entries become values; everything else is
//! skipped as it streams past. Those entries are remembered in the cache's `helm-index` bucket under the
//! index's blake3, so an index that answers 304 (or is read offline) is not parsed again.

use std::collections::{BTreeMap, BTreeSet};

use saphyr_parser::{Event, Parser, ScalarStyle};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_yaml_ng::{Mapping, Value};

use crate::store::{Bucket, Store, StoreError};

/// The entries of the wanted charts of a parsed index.yaml, kept as raw values and read per chart on
/// demand, so one bad entry of an unrelated chart costs nothing and warns nobody.
#[derive(Debug)]
pub struct RepoIndex {
    /// The charts asked for (`None`: every chart); a wanted chart the index lacks has no entry here.
    wanted: Option<BTreeSet<String>>,
    pub(super) entries: BTreeMap<String, Value>,
}

#[cfg(test)]
thread_local! {
    /// How many index.yaml files this thread parsed: tests show that a 304 parses nothing.
    static PARSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many index.yaml files this thread has parsed so far.
#[cfg(test)]
pub fn parses() -> usize {
    PARSES.with(|p| p.get())
}

impl RepoIndex {
    /// Parses every chart's entries (tests and fuzzing; `stack lock` asks for [`RepoIndex::parse_wanted`]).
    #[cfg(test)]
    pub fn parse(bytes: &[u8]) -> Result<RepoIndex, String> {
        Self::parse_from(bytes, None)
    }

    /// Parses `bytes` (YAML or JSON), keeping the entries of `charts` only.
    pub fn parse_wanted(bytes: &[u8], charts: &BTreeSet<String>) -> Result<RepoIndex, String> {
        Self::parse_from(bytes, Some(charts))
    }

    fn parse_from(bytes: &[u8], wanted: Option<&BTreeSet<String>>) -> Result<RepoIndex, String> {
        #[cfg(test)]
        PARSES.with(|p| p.set(p.get() + 1));
        crate::yaml_depth::check(bytes)?;
        let streamed = std::str::from_utf8(bytes)
            .map_err(|e| e.to_string())
            .and_then(|text| stream(text, wanted));
        let entries = match streamed {
            Ok(entries) => entries,
            // What the streaming parser refuses, the full parser may still read (as earlier releases
            // did); JSON with tabs or other constructs YAML rejects goes to serde_json.
            Err(_) => {
                let seed = Wanted(wanted);
                match seed.deserialize(serde_yaml_ng::Deserializer::from_slice(bytes)) {
                    Ok(entries) => entries,
                    Err(yaml) => seed
                        .deserialize(&mut serde_json::Deserializer::from_slice(bytes))
                        .map_err(|_| yaml.to_string())?,
                }
            }
        };
        Ok(RepoIndex {
            wanted: wanted.cloned(),
            entries,
        })
    }

    /// Whether this index holds what it says about `chart` (the chart was asked for).
    pub fn knows(&self, chart: &str) -> bool {
        self.wanted.as_ref().is_none_or(|w| w.contains(chart))
    }

    /// The wanted entries remembered for the index whose blake3 is `index_blake3`, if every chart of
    /// `charts` is remembered.
    pub fn cached(
        store: &Store,
        index_blake3: &str,
        charts: &BTreeSet<String>,
    ) -> Result<Option<RepoIndex>, StoreError> {
        let mut entries = BTreeMap::new();
        for chart in charts {
            let key = cache_key(index_blake3, chart);
            let Some(bytes) = store.get_keyed(Bucket::HelmIndex, &key)? else {
                return Ok(None);
            };
            let Ok(file) = serde_yaml_ng::from_slice::<CachedEntries>(&bytes) else {
                return Ok(None);
            };
            if file.index != index_blake3 || file.chart != *chart {
                return Ok(None);
            }
            if let Some(list) = file.entries {
                entries.insert(chart.clone(), list);
            }
        }
        Ok(Some(RepoIndex {
            wanted: Some(charts.clone()),
            entries,
        }))
    }

    /// Remembers the wanted charts' entries under the index's blake3.
    pub fn remember(&self, store: &Store, index_blake3: &str) -> Result<(), StoreError> {
        for chart in self.wanted.iter().flatten() {
            let file = CachedEntries {
                index: index_blake3.to_string(),
                chart: chart.clone(),
                entries: self.entries.get(chart).cloned(),
            };
            let text = serde_yaml_ng::to_string(&file).expect("a YAML value serialises");
            store.put_keyed(
                Bucket::HelmIndex,
                &cache_key(index_blake3, chart),
                text.as_bytes(),
            )?;
        }
        Ok(())
    }
}

fn cache_key(index_blake3: &str, chart: &str) -> String {
    format!("{index_blake3}\0{chart}")
}

/// One chart's entries of one index, as the `helm-index` bucket holds them.
#[derive(Serialize, Deserialize)]
struct CachedEntries {
    /// The blake3 of the index.yaml they were read from.
    index: String,
    chart: String,
    /// `entries.<chart>` as the index has it; `None` when the index has no such chart.
    entries: Option<Value>,
}

// ----- streaming ----------------------------------------------------------------------------------------

/// The parser's events as values, with its errors as text.
struct Events<'a>(Parser<'a, saphyr_parser::StrInput<'a>>);

impl<'a> Events<'a> {
    fn next(&mut self) -> Result<Event<'a>, String> {
        match self.0.next() {
            Some(Ok((event, _))) => Ok(event),
            Some(Err(e)) => Err(e.to_string()),
            None => Err("unexpected end of input".into()),
        }
    }

    /// Skips the rest of a node whose first event was `first`, without building anything.
    fn skip(&mut self, first: Event<'a>) -> Result<(), String> {
        let mut depth = usize::from(matches!(
            first,
            Event::MappingStart(..) | Event::SequenceStart(..)
        ));
        while depth > 0 {
            match self.next()? {
                Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
                Event::MappingEnd | Event::SequenceEnd => depth -= 1,
                _ => {}
            }
        }
        Ok(())
    }

    /// Builds the node whose first event was `first` as a value.
    fn value(&mut self, first: Event<'a>) -> Result<Value, String> {
        match first {
            Event::Scalar(text, style, _, tag) => Ok(scalar(&text, style, tag.as_deref())),
            Event::SequenceStart(..) => {
                let mut items = Vec::new();
                loop {
                    match self.next()? {
                        Event::SequenceEnd => return Ok(Value::Sequence(items)),
                        event => items.push(self.value(event)?),
                    }
                }
            }
            Event::MappingStart(..) => {
                let mut map = Mapping::new();
                loop {
                    let key = match self.next()? {
                        Event::MappingEnd => return Ok(Value::Mapping(map)),
                        event => self.value(event)?,
                    };
                    // Merge keys and repeated keys go to the full parser, which merges (as Helm's
                    // go-yaml does) and refuses a key twice (as Helm's strict reader does).
                    if key.as_str() == Some("<<") {
                        return Err("a YAML merge key in a wanted chart's entries".into());
                    }
                    let first = self.next()?;
                    if map.insert(key, self.value(first)?).is_some() {
                        return Err("a key twice in a wanted chart's entries".into());
                    }
                }
            }
            Event::Alias(_) => {
                Err("a YAML alias in a wanted chart's entries is not supported".into())
            }
            other => Err(format!("unexpected YAML event {other:?}")),
        }
    }
}

/// A scalar as serde_yaml_ng reads it: quoted and block scalars are strings, plain ones are resolved
/// (null, booleans, numbers), as the full parser of earlier releases did.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&saphyr_parser::Tag>) -> Value {
    let is_str = tag.is_some_and(|t| t.suffix == "str");
    if style != ScalarStyle::Plain || is_str {
        return Value::String(text.to_string());
    }
    match serde_yaml_ng::from_str::<Value>(text) {
        Ok(v @ (Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_))) => v,
        _ => Value::String(text.to_string()),
    }
}

/// Streams `text`, keeping `entries.<chart>` of the wanted charts.
fn stream(
    text: &str,
    wanted: Option<&BTreeSet<String>>,
) -> Result<BTreeMap<String, Value>, String> {
    let mut events = Events(Parser::new_from_str(text));
    let mut entries = BTreeMap::new();
    while !matches!(events.next()?, Event::DocumentStart(_)) {}
    let top = events.next()?;
    match top {
        Event::MappingStart(..) => {}
        Event::Scalar(ref s, ScalarStyle::Plain, ..) if s.is_empty() || s == "~" || s == "null" => {
            return Ok(entries)
        }
        _ => return Err("the top level of index.yaml is not a mapping".into()),
    }
    loop {
        let key = match events.next()? {
            Event::MappingEnd => return Ok(entries),
            Event::Scalar(key, ..) => key,
            other => {
                events.skip(other)?;
                let value = events.next()?;
                events.skip(value)?;
                continue;
            }
        };
        let value = events.next()?;
        if key != "entries" {
            events.skip(value)?;
            continue;
        }
        match value {
            Event::MappingStart(..) => read_entries(&mut events, wanted, &mut entries)?,
            // `entries:` empty or null; any other scalar (`entries: 5`) is not an index: the full
            // parser then says what it is, with its line and column.
            Event::Scalar(ref s, ScalarStyle::Plain, ..) if is_null(s) => {}
            _ => return Err("`entries` is not a mapping".into()),
        }
    }
}

/// Whether a plain scalar is YAML's null, as serde_yaml_ng reads it.
fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// The mapping of `entries`, after its start: each wanted chart's list is built, the rest skipped.
fn read_entries<'a>(
    events: &mut Events<'a>,
    wanted: Option<&BTreeSet<String>>,
    entries: &mut BTreeMap<String, Value>,
) -> Result<(), String> {
    loop {
        let name = match events.next()? {
            Event::MappingEnd => return Ok(()),
            Event::Scalar(name, ..) => name,
            other => {
                events.skip(other)?;
                let value = events.next()?;
                events.skip(value)?;
                continue;
            }
        };
        let first = events.next()?;
        if wanted.is_none_or(|w| w.contains(name.as_ref())) {
            entries.insert(name.into_owned(), events.value(first)?);
        } else {
            events.skip(first)?;
        }
    }
}

// ----- the full parsers, with the same filter -----------------------------------------------------------

/// The top level of an index for serde: only `entries` is read, and of it only the wanted charts.
#[derive(Clone, Copy)]
struct Wanted<'w>(Option<&'w BTreeSet<String>>);

impl<'de> DeserializeSeed<'de> for Wanted<'_> {
    type Value = BTreeMap<String, Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Wanted<'_> {
    type Value = BTreeMap<String, Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Helm repository index (a mapping with `entries`)")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "entries" {
                entries = map.next_value_seed(Charts(self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(entries)
    }
}

/// The `entries` mapping for serde: the wanted charts' lists as values, the rest ignored.
struct Charts<'w>(Option<&'w BTreeSet<String>>);

impl<'de> DeserializeSeed<'de> for Charts<'_> {
    type Value = BTreeMap<String, Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Charts<'_> {
    type Value = BTreeMap<String, Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        // As serde's own map visitor says it, so errors read as they did before the filter.
        f.write_str("a map")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some(name) = map.next_key::<String>()? {
            if self.0.is_none_or(|w| w.contains(&name)) {
                let mut list = map.next_value::<Value>()?;
                list.apply_merge().map_err(serde::de::Error::custom)?;
                entries.insert(name, list);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(entries)
    }
}

/// Whether the streaming reader and the full parser read `bytes` alike (for the fuzzer): `Err` says how
/// they differ. Input the full parser refuses is not compared, nor text with the characters YAML 1.1
/// (libyaml, under serde_yaml_ng) reads as line breaks and YAML 1.2 (saphyr) as content: NEL, U+2028
/// and U+2029, which no Helm index holds outside descriptions.
#[cfg(test)]
pub fn streaming_agrees(bytes: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(bytes);
    if text.contains(['\u{85}', '\u{2028}', '\u{2029}']) {
        return Ok(());
    }
    let Ok(full) = Wanted(None).deserialize(serde_yaml_ng::Deserializer::from_slice(bytes)) else {
        return Ok(());
    };
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    let streamed = stream(text, None)?;
    (streamed == full)
        .then_some(())
        .ok_or_else(|| format!("streamed {streamed:?}\nfull {full:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(bytes: &[u8]) -> BTreeMap<String, Value> {
        Wanted(None)
            .deserialize(serde_yaml_ng::Deserializer::from_slice(bytes))
            .unwrap()
    }

    /// The streaming reader builds the same values as the full parser (serde_yaml_ng) for the shapes of
    /// Helm's own fixtures and `helm repo index` output, and keeps only the wanted charts.
    #[test]
    fn streaming_reads_what_the_full_parser_reads_for_wanted_charts_only() {
        let path = format!(
            "{}/tests/fixtures/helm-index/oddities.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        let oddities = fs_err::read(&path).unwrap();
        let generated = b"apiVersion: v1\nentries:\n  a:\n  - apiVersion: v2\n    created: \"2026-01-01T00:00:00Z\"\n    description: \"x: \\\"y\\\"\"\n    digest: abc\n    urls:\n    - a-1.10.tgz\n    version: 1.10\n  b: []\n  c:\n  generated: 2026\ngenerated: \"2026-01-01T00:00:00Z\"\n";
        for bytes in [&oddities[..], &generated[..]] {
            let text = std::str::from_utf8(bytes).unwrap();
            let streamed = stream(text, None).unwrap();
            assert_eq!(streamed, full(bytes));
            let first = streamed.keys().next().unwrap().clone();
            let wanted = BTreeSet::from([first.clone(), "not-there".to_string()]);
            let some = stream(text, Some(&wanted)).unwrap();
            assert_eq!(some.keys().collect::<Vec<_>>(), [&first]);
            assert_eq!(some[&first], streamed[&first]);
        }
    }

    #[test]
    fn wanted_entries_round_trip_through_the_cache_and_a_missing_chart_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().to_path_buf());
        let wanted = BTreeSet::from(["a".to_string(), "gone".to_string()]);
        let index = RepoIndex::parse_wanted(
            b"entries:\n  a: [{version: 1.0.0}]\n  b: [{version: 2.0.0}]\n",
            &wanted,
        )
        .unwrap();
        assert!(RepoIndex::cached(&store, "i1", &wanted).unwrap().is_none());
        index.remember(&store, "i1").unwrap();
        let cached = RepoIndex::cached(&store, "i1", &wanted).unwrap().unwrap();
        assert_eq!(cached.entries, index.entries);
        assert!(!cached.entries.contains_key("gone"));
        let more = BTreeSet::from(["a".to_string(), "b".to_string()]);
        assert!(RepoIndex::cached(&store, "i1", &more).unwrap().is_none());
        assert!(RepoIndex::cached(&store, "i2", &wanted).unwrap().is_none());
    }
}
