//! A dashboard read without building its tree: the few members the provisioning rules read (title, uid,
//! `__inputs`, `templating`, and of each panel only its datasources, title, id and library-panel link) as
//! a small `serde_json::Value`, and one borrowed walk over every string for `${…}` references. Both are
//! streaming passes of serde_json that skip everything else without allocating it.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{
    DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::{Map, Value};

use crate::emit::json_text::Object;

/// Why the skeleton cannot stand for the document; the caller then parses the whole tree.
const UNUSUAL: &str = "a shape the skeleton does not cover";

/// The skeleton of a top-level dashboard `object`: `None` when the document has a shape the rules would
/// read differently from the skeleton (duplicate top-level keys, an HTTP API export, library panels, a
/// `panels` that is an object, …). `__elements` is left out: the caller's library-panel check then
/// refuses any panel that uses one, and the text edit cuts it.
pub fn of(object: &Object) -> Option<Value> {
    let mut skeleton = Map::new();
    for (i, member) in object.members.iter().enumerate() {
        if object.index(&member.key) != Some(i) || member.key == "dashboard" {
            return None;
        }
        let raw = &object.text[member.value.clone()];
        let shape = match member.key.as_str() {
            "title" | "uid" | "__inputs" | "templating" => None,
            "panels" => Some(Shape::Panels),
            "rows" => Some(Shape::Rows),
            _ => continue,
        };
        let value = match shape {
            None => serde_json::from_str(raw).ok()?,
            Some(shape) => shape
                .deserialize(&mut serde_json::Deserializer::from_str(raw))
                .ok()?,
        };
        skeleton.insert(member.key.clone(), value);
    }
    Some(Value::Object(skeleton))
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

impl<'de> DeserializeSeed<'de> for Shape {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Shape {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{self:?}")
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
        Ok(v.into())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let item = self.item().ok_or_else(|| A::Error::custom(UNUSUAL))?;
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(item)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        if self.item().is_some() {
            return Err(A::Error::custom(UNUSUAL));
        }
        let mut kept = Map::new();
        while let Some(key) = map.next_key_seed(Key)? {
            match self.field(&key) {
                Some(Field::Whole) => {
                    kept.insert(key.into_owned(), map.next_value()?);
                }
                Some(Field::Shaped(shape)) => {
                    kept.insert(key.into_owned(), map.next_value_seed(shape)?);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
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

/// What one walk over every string of a document found.
#[derive(Debug, Default)]
pub struct Strings {
    /// Every `${NAME}` / `${NAME:fmt}` of a string value (as the tree walk collects them).
    pub referenced: BTreeSet<String>,
    /// The string values holding `${`, unescaped, for the caller's check of its text edit.
    pub templated: Vec<String>,
}

/// Walks every string value of `text` (a JSON document) for `${…}` references. `None` when a key holds
/// `${` or an escape, or an object repeats a key: the text edit and the tree would then disagree, and
/// the caller parses the tree.
pub fn strings(text: &str) -> Option<Strings> {
    let mut walk = Walk {
        found: Strings::default(),
        keys: Vec::new(),
    };
    let mut de = serde_json::Deserializer::from_str(text);
    (&mut walk).deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(walk.found)
}

struct Walk<'de> {
    found: Strings,
    /// The keys of the objects being walked, innermost last (for spotting a repeated key).
    keys: Vec<&'de str>,
}

impl<'de> DeserializeSeed<'de> for &mut Walk<'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &mut Walk<'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        if v.contains("${") {
            super::references_in(v, &mut self.found.referenced);
            self.found.templated.push(v.to_string());
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(&mut *self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let start = self.keys.len();
        while let Some(key) = map.next_key_seed(Key)? {
            let std::borrow::Cow::Borrowed(key) = key else {
                return Err(A::Error::custom(UNUSUAL));
            };
            if key.contains("${") || self.keys[start..].contains(&key) {
                return Err(A::Error::custom(UNUSUAL));
            }
            self.keys.push(key);
            map.next_value_seed(&mut *self)?;
        }
        self.keys.truncate(start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skeleton(text: &str) -> Option<Value> {
        of(&Object::parse(text).unwrap())
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
            r#"{"a":["${DS_A} ${B:raw}",{"b":"x${C}"}],"c":"${__rate_interval}","d":"no"}"#,
        )
        .unwrap();
        assert_eq!(
            found.referenced,
            ["B", "C", "DS_A", "__rate_interval"]
                .map(String::from)
                .into()
        );
        assert_eq!(found.templated.len(), 3);
        for text in [r#"{"${A}":1}"#, r#"{"a":{"x":1,"x":2}}"#, r#"{"a\n":1}"#] {
            assert!(strings(text).is_none(), "{text}");
        }
        assert!(strings(r#"{"a":{"x":1},"b":{"x":2}}"#).is_some());
    }
}
