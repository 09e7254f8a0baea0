//! A dashboard read without building its tree: the few members the provisioning rules read (title, uid,
//! `__inputs`, `templating`, and of each panel only its datasources, title, id and library-panel link) as
//! a small `serde_json::Value`, and one borrowed walk over every string for `${…}` references. Both are
//! streaming passes of serde_json that skip everything else without allocating it.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::emit::json_text::Object;

/// Why the skeleton cannot stand for the document; the caller then parses the whole tree.
const UNUSUAL: &str = "a shape the skeleton does not cover";

/// A dashboard as the rules need it, from one pass over each top-level member.
#[derive(Debug)]
pub struct Read {
    /// The members the rules read (`title`, `uid`, `__inputs`, `templating`, `panels`, `rows`), with only
    /// what the rules read of each panel.
    pub skeleton: Value,
    /// The `${…}` references of every string value.
    pub strings: Strings,
}

/// What the walk over every string value found.
#[derive(Debug, Default)]
pub struct Strings {
    /// Every `${NAME}` / `${NAME:fmt}` of a string value (as the tree walk collects them).
    pub referenced: BTreeSet<String>,
    /// The string values holding `${`, unescaped, for the caller's check of its text edit.
    pub templated: Vec<String>,
}

/// Reads a top-level dashboard `object`. `None` when it has a shape the rules would read differently
/// from the skeleton (a repeated key, an HTTP API export, a `panels` that is an object, …) or the text
/// edit would read differently from the tree (`${` in a key, a key with an escape): the caller then
/// parses the tree. `__elements` is not read: the caller's library-panel check refuses any panel that
/// uses one, and the text edit cuts it.
pub fn read(object: &Object) -> Option<Read> {
    let mut walk = Walk::default();
    let mut skeleton = Map::new();
    for (i, member) in object.members.iter().enumerate() {
        let key = member.key.as_str();
        if object.index(key) != Some(i) || key == "dashboard" || key.contains("${") {
            return None;
        }
        let raw = &object.text[member.value.clone()];
        let mode = match key {
            "__elements" => continue,
            "title" | "uid" | "__inputs" | "templating" => {
                let value: Value = serde_json::from_str(raw).ok()?;
                walk.value(&value).ok()?;
                skeleton.insert(key.to_string(), value);
                continue;
            }
            "panels" => Mode::Keep(Shape::Panels),
            "rows" => Mode::Keep(Shape::Rows),
            _ => Mode::Skip,
        };
        let mut de = serde_json::Deserializer::from_str(raw);
        let value = Node {
            mode,
            walk: &mut walk,
        }
        .deserialize(&mut de)
        .ok()?;
        if let Mode::Keep(_) = mode {
            skeleton.insert(key.to_string(), value);
        }
    }
    Some(Read {
        skeleton: Value::Object(skeleton),
        strings: walk.found,
    })
}

/// What the skeleton keeps of a value: an array of panels, a panel, …
#[derive(Debug, Clone, Copy)]
enum Shape {
    Panels,
    Panel,
    Targets,
    Target,
    Rows,
    Row,
}

/// What a kept member of an object is.
enum Field {
    Whole,
    Shaped(Shape),
}

impl Shape {
    /// The shape of an array's items (`None`: this shape is an object).
    fn item(self) -> Option<Shape> {
        match self {
            Shape::Panels => Some(Shape::Panel),
            Shape::Targets => Some(Shape::Target),
            Shape::Rows => Some(Shape::Row),
            Shape::Panel | Shape::Target | Shape::Row => None,
        }
    }

    /// What an object of this shape keeps of its member `key`.
    fn field(self, key: &str) -> Option<Field> {
        match (self, key) {
            (Shape::Panel, "datasource" | "title" | "id" | "libraryPanel") => Some(Field::Whole),
            (Shape::Panel, "targets") => Some(Field::Shaped(Shape::Targets)),
            (Shape::Panel | Shape::Row, "panels") => Some(Field::Shaped(Shape::Panels)),
            (Shape::Target, "datasource") => Some(Field::Whole),
            _ => None,
        }
    }
}

/// How a value is read: kept in the skeleton in a shape, or only walked for its strings.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Keep(Shape),
    Skip,
}

/// The walk over every string value, and the checks on keys.
#[derive(Debug, Default)]
struct Walk<'de> {
    found: Strings,
    /// The keys of the objects being walked, innermost last (for spotting a repeated key).
    keys: Vec<&'de str>,
}

impl<'de> Walk<'de> {
    fn string(&mut self, v: &str) {
        if crate::emit::json_text::find_reference(v).is_some() {
            super::references::references_in(v, &mut self.found.referenced);
            self.found.templated.push(v.to_string());
        }
    }

    /// Walks a value already parsed (its repeated keys already resolved as the tree resolves them).
    fn value(&mut self, value: &Value) -> Result<(), ()> {
        match value {
            Value::String(s) => self.string(s),
            Value::Array(items) => items.iter().try_for_each(|v| self.value(v))?,
            Value::Object(map) => {
                for (key, v) in map {
                    if key.contains("${") {
                        return Err(());
                    }
                    self.value(v)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// One value read in a mode.
struct Node<'w, 'de> {
    mode: Mode,
    walk: &'w mut Walk<'de>,
}

impl<'de> DeserializeSeed<'de> for Node<'_, 'de> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_, 'de> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{:?}", self.mode)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        self.walk.string(v);
        Ok(match self.mode {
            Mode::Keep(_) => v.into(),
            Mode::Skip => Value::Null,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let item = match self.mode {
            Mode::Keep(shape) => Mode::Keep(shape.item().ok_or_else(|| A::Error::custom(UNUSUAL))?),
            Mode::Skip => Mode::Skip,
        };
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(Node {
            mode: item,
            walk: &mut *self.walk,
        })? {
            if let Mode::Keep(_) = item {
                items.push(v);
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let shape = match self.mode {
            Mode::Keep(shape) if shape.item().is_some() => return Err(A::Error::custom(UNUSUAL)),
            Mode::Keep(shape) => Some(shape),
            Mode::Skip => None,
        };
        let mut kept = Map::new();
        let start = self.walk.keys.len();
        // A 64-bit sketch of the keys seen, so a repeated key is looked for only on a collision.
        let mut seen = 0u64;
        while let Some(key) = map.next_key_seed(Key)? {
            let std::borrow::Cow::Borrowed(key) = key else {
                return Err(A::Error::custom(UNUSUAL));
            };
            let last = key.bytes().last().map_or(0, usize::from);
            let bit = 1u64 << (key.len().wrapping_mul(31).wrapping_add(last) % 64);
            if key.contains("${") || (seen & bit != 0 && self.walk.keys[start..].contains(&key)) {
                return Err(A::Error::custom(UNUSUAL));
            }
            seen |= bit;
            self.walk.keys.push(key);
            let field = shape.and_then(|s| s.field(key));
            match field {
                Some(Field::Whole) => {
                    let value: Value = map.next_value()?;
                    self.walk
                        .value(&value)
                        .map_err(|()| A::Error::custom(UNUSUAL))?;
                    kept.insert(key.to_string(), value);
                }
                Some(Field::Shaped(inner)) => {
                    let value = map.next_value_seed(Node {
                        mode: Mode::Keep(inner),
                        walk: &mut *self.walk,
                    })?;
                    kept.insert(key.to_string(), value);
                }
                None => {
                    map.next_value_seed(Node {
                        mode: Mode::Skip,
                        walk: &mut *self.walk,
                    })?;
                }
            }
        }
        self.walk.keys.truncate(start);
        Ok(Value::Object(kept))
    }
}

/// An object key, borrowed from the text when it holds no escape.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = std::borrow::Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = std::borrow::Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.to_string().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skeleton(text: &str) -> Option<Value> {
        read(&Object::parse(text).unwrap()).map(|r| r.skeleton)
    }

    fn strings(text: &str) -> Option<Strings> {
        read(&Object::parse(text).unwrap()).map(|r| r.strings)
    }

    #[test]
    fn the_skeleton_keeps_what_the_rules_read_and_nothing_else() {
        let text = r#"{"title":"T","uid":"u","graphTooltip":1,"templating":{"list":[{"name":"ds"}]},
            "panels":[{"id":1,"title":"A","type":"row","datasource":null,"gridPos":{},"panels":[{"id":2,"targets":[{"expr":"up","datasource":"$ds"}],"libraryPanel":{"uid":"x"}}]},{"id":3,"panels":null,"targets":7}],
            "rows":[{"title":"R","panels":[{"id":4,"fieldConfig":{}}]}]}"#;
        let expected: Value = serde_json::from_str(
            r#"{"title":"T","uid":"u","templating":{"list":[{"name":"ds"}]},
            "panels":[{"id":1,"title":"A","datasource":null,"panels":[{"id":2,"targets":[{"datasource":"$ds"}],"libraryPanel":{"uid":"x"}}]},{"id":3,"panels":null,"targets":7}],
            "rows":[{"panels":[{"id":4}]}]}"#,
        )
        .unwrap();
        assert_eq!(skeleton(text), Some(expected));
    }

    #[test]
    fn shapes_the_skeleton_does_not_cover_are_refused() {
        for text in [
            r#"{"title":"T","title":"U"}"#,
            r#"{"dashboard":{"title":"T"},"meta":{}}"#,
            r#"{"title":"T","panels":{"a":1}}"#,
            r#"{"title":"T","panels":[[1]]}"#,
            r#"{"title":"T","rows":[{"panels":{"id":1}}]}"#,
        ] {
            assert_eq!(skeleton(text), None, "{text}");
        }
    }

    #[test]
    fn the_walk_finds_references_in_values_only_and_refuses_what_the_text_edit_reads_otherwise() {
        let found = strings(
            r#"{"a":["${DS_A} ${B:raw}",{"b":"x${C}"}],"c":"${__rate_interval}","d":"no $x {y}",
                "panels":[{"title":"${T}","datasource":{"uid":"${DS_P}"},"targets":[{"expr":"${E}"}]}],
                "__elements":{"e":"${NOT_READ}"}}"#,
        )
        .unwrap();
        assert_eq!(
            found.referenced,
            ["B", "C", "DS_A", "DS_P", "E", "T", "__rate_interval"]
                .map(String::from)
                .into()
        );
        assert_eq!(found.templated.len(), 6);
        for text in [
            r#"{"${A}":1}"#,
            r#"{"a":{"x":1,"x":2}}"#,
            r#"{"panels":[{"targets":[{"expr":"a","expr":"b"}]}]}"#,
            r#"{"templating":{"list":[{"${A}":1}]}}"#,
            r#"{"a":{"b\n":1}}"#,
        ] {
            assert!(strings(text).is_none(), "{text}");
        }
        assert!(strings(r#"{"a":{"x":1},"b":{"x":2}}"#).is_some());
    }
}
