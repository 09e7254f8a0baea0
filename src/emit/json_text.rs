//! A JSON object's text, edited in place: its top-level members with their byte positions (one
//! validating pass by serde_json, which skips every value it is not asked for without building it), and
//! `${NAME}` references replaced in one scan of the text. Editing the text instead of a parsed
//! tree keeps upstream's key order and formatting byte for byte and costs no allocation per node.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// One top-level member: its key and where its value lies in the text.
#[derive(Debug)]
pub struct Member {
    pub key: String,
    /// Byte range of the value.
    pub value: Range<usize>,
    /// Byte offset of the member's key (its opening quote).
    pub key_start: usize,
}

/// A JSON object's text and its top-level members in document order.
#[derive(Debug)]
pub struct Object<'a> {
    pub text: &'a str,
    pub members: Vec<Member>,
}

/// Why a text is not a JSON object.
#[derive(Debug, PartialEq)]
pub enum NotAnObject {
    /// Not JSON at all (serde_json's message, with line and column).
    Syntax(String),
    /// Valid JSON whose top level is an array, a string, …
    TopLevel,
}

impl<'a> Object<'a> {
    /// Validates `text` as JSON and reads its top level, which must be an object.
    pub fn parse(text: &'a str) -> Result<Self, NotAnObject> {
        if !text.trim_start().starts_with('{') {
            return match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Ok(_) => Err(NotAnObject::TopLevel),
                Err(e) => Err(NotAnObject::Syntax(e.to_string())),
            };
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let pairs = de
            .deserialize_map(Pairs)
            .and_then(|p| de.end().map(|()| p))
            .map_err(|e| NotAnObject::Syntax(e.to_string()))?;
        let base = text.as_ptr() as usize;
        let mut members = Vec::with_capacity(pairs.len());
        let mut prev_end = text.find('{').expect("checked above") + 1;
        for (key, raw) in pairs {
            let start = raw.get().as_ptr() as usize - base;
            let key_start = prev_end + text[prev_end..start].find('"').expect("a key precedes");
            let end = start + raw.get().len();
            members.push(Member {
                key,
                value: start..end,
                key_start,
            });
            prev_end = end;
        }
        Ok(Object { text, members })
    }

    /// The last member named `key` (JSON parsers let the last duplicate win).
    pub fn index(&self, key: &str) -> Option<usize> {
        self.members.iter().rposition(|m| m.key == key)
    }

    /// The byte ranges that removing the members `indices` (sorted, distinct) deletes, with their
    /// separating commas, so what remains is still valid JSON laid out as before: one range per run of
    /// adjacent members, so no two overlap.
    pub fn cuts(&self, indices: &[usize]) -> Vec<Range<usize>> {
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for &i in indices {
            match runs.last_mut() {
                Some((_, last)) if *last + 1 == i => *last = i,
                _ => runs.push((i, i)),
            }
        }
        runs.into_iter().map(|(a, b)| self.cut_run(a, b)).collect()
    }

    /// The byte range that removing members `a..=b` deletes.
    fn cut_run(&self, a: usize, b: usize) -> Range<usize> {
        if a > 0 {
            self.members[a - 1].value.end..self.members[b].value.end
        } else if let Some(next) = self.members.get(b + 1) {
            self.members[a].key_start..next.key_start
        } else {
            self.members[a].key_start..self.members[b].value.end
        }
    }

    /// The whitespace that indents member `i`'s line (for re-serialising its value in place).
    pub fn indent(&self, i: usize) -> &'a str {
        let start = self.members[i].key_start;
        let line = self.text[..start].rfind('\n').map_or(0, |n| n + 1);
        let lead = &self.text[line..start];
        if lead.chars().all(char::is_whitespace) {
            lead
        } else {
            ""
        }
    }
}

struct Pairs;

impl<'de> Visitor<'de> for Pairs {
    type Value = Vec<(String, &'de RawValue)>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(pair) = map.next_entry::<String, &'de RawValue>()? {
            out.push(pair);
        }
        Ok(out)
    }
}

/// A reference's name at the start of `after` (the text just past `${`): the run of ASCII letters,
/// digits and `_`, and the byte that ends it.
fn name_at(after: &str) -> (&str, Option<u8>) {
    let len = after
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')))
        .unwrap_or(after.len());
    (&after[..len], after.as_bytes().get(len).copied())
}

/// Appends `text` to `out` with each `${NAME}` whose name `replacements` holds replaced by its value,
/// JSON-escaped (the references sit inside JSON strings), in one scan.
pub fn replace_references(text: &str, replacements: &BTreeMap<String, String>, out: &mut String) {
    if replacements.is_empty() {
        out.push_str(text);
        return;
    }
    let escaped: BTreeMap<&str, String> = replacements
        .iter()
        .map(|(k, v)| {
            let quoted = serde_json::to_string(v).expect("a string serialises");
            (k.as_str(), quoted[1..quoted.len() - 1].to_string())
        })
        .collect();
    replace_with(text, &escaped, out);
}

/// Appends `text` to `out` with each `${NAME}` whose name `to` holds replaced by its value as given, in
/// one left-to-right scan (a replacement is never scanned again).
pub fn replace_with(text: &str, to: &BTreeMap<&str, String>, out: &mut String) {
    let mut rest = text;
    while let Some(at) = find_reference(rest) {
        let (name, end) = name_at(&rest[at + 2..]);
        match to.get(name) {
            Some(value) if end == Some(b'}') => {
                out.push_str(&rest[..at]);
                out.push_str(value);
                rest = &rest[at + 2 + name.len() + 1..];
            }
            _ => {
                out.push_str(&rest[..at + 2]);
                rest = &rest[at + 2..];
            }
        }
    }
    out.push_str(rest);
}

/// Where the first `${` of `s` is: found by its `$`, which `str::find` looks for with memchr (several
/// times faster than a two-byte pattern over a dashboard's text).
pub fn find_reference(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(at) = s[from..].find('$') {
        let at = from + at;
        if bytes.get(at + 1) == Some(&b'{') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Whether `name` is one the text scan finds: a non-empty run of ASCII letters, digits, `_`, `-`, `.`.
pub fn is_scanned_name(name: &str) -> bool {
    !name.is_empty() && name_at(name).0.len() == name.len()
}

/// `shipped` (the dashboard as the build made it) written as upstream's text `text` with the fewest
/// edits: `__inputs` and `__elements` (the library panels, which the build inlines) cut, `${NAME}` references of `replacements` replaced, and `templating` re-serialised
/// in place (at its indentation) only when the build changed more in it than references. `None` when
/// such edits do not give `shipped` back (an HTTP API export unwrapped, library panels inlined, literal
/// datasource uids remapped): the caller then serialises `shipped` itself. The result is checked by
/// parsing it, so it is never a different document than `shipped`.
pub fn edited(
    text: &str,
    shipped: &serde_json::Value,
    replacements: &BTreeMap<String, String>,
) -> Option<String> {
    let object = Object::parse(text).ok()?;
    let out = edits(&object, shipped.get("templating"), replacements)?;
    let back: serde_json::Value = serde_json::from_str(&out).ok()?;
    (back == *shipped).then_some(out)
}

/// The edits of [`edited`] on a parsed `object`, without its check: `templating` is the shipped
/// dashboard's (`None` when it has none). The caller answers for the result being the shipped document.
pub fn edits(
    object: &Object,
    templating: Option<&serde_json::Value>,
    replacements: &BTreeMap<String, String>,
) -> Option<String> {
    let text = object.text;
    let mut removed: Vec<usize> = ["__inputs", "__elements"]
        .iter()
        .filter_map(|key| object.index(key))
        .collect();
    removed.sort_unstable();
    let mut edits: Vec<(Range<usize>, String)> = object
        .cuts(&removed)
        .into_iter()
        .map(|range| (range, String::new()))
        .collect();
    if let Some(i) = object.index("templating") {
        let wanted = templating?;
        let mut replaced = String::new();
        let member = &object.members[i];
        replace_references(&text[member.value.clone()], replacements, &mut replaced);
        if serde_json::from_str::<serde_json::Value>(&replaced)
            .ok()
            .as_ref()
            != Some(wanted)
        {
            let new = if text[member.value.clone()].contains('\n') {
                let pretty = serde_json::to_string_pretty(wanted).ok()?;
                pretty.replace('\n', &format!("\n{}", object.indent(i)))
            } else {
                serde_json::to_string(wanted).ok()?
            };
            edits.push((member.value.clone(), new));
        }
    }
    edits.sort_by_key(|(range, _)| range.start);
    let mut out = String::with_capacity(text.len() + 64);
    let mut at = 0;
    for (range, new) in edits {
        replace_references(&text[at..range.start], replacements, &mut out);
        out.push_str(&new);
        at = range.end;
    }
    replace_references(&text[at..], replacements, &mut out);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_carry_their_positions() {
        let text = "{\n  \"a\": 1,\n  \"b\" : {\"x\": [1, 2]},\n  \"c\": \"s\"\n}\n";
        let o = Object::parse(text).unwrap();
        let keys: Vec<&str> = o.members.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(&text[o.members[1].value.clone()], "{\"x\": [1, 2]}");
        assert_eq!(o.indent(1), "  ");
        let without = |i: usize| {
            let r = o.cuts(&[i])[0].clone();
            format!("{}{}", &text[..r.start], &text[r.end..])
        };
        assert_eq!(
            without(0),
            "{\n  \"b\" : {\"x\": [1, 2]},\n  \"c\": \"s\"\n}\n"
        );
        assert_eq!(without(1), "{\n  \"a\": 1,\n  \"c\": \"s\"\n}\n");
        assert_eq!(without(2), "{\n  \"a\": 1,\n  \"b\" : {\"x\": [1, 2]}\n}\n");
        assert_eq!(Object::parse(r#"{"a":1}"#).unwrap().cuts(&[0])[0], 1..6);
        let cut_all = |indices: &[usize]| {
            let mut out = String::new();
            let mut at = 0;
            for r in o.cuts(indices) {
                out.push_str(&text[at..r.start]);
                at = r.end;
            }
            out + &text[at..]
        };
        assert_eq!(cut_all(&[0, 1]), "{\n  \"c\": \"s\"\n}\n");
        assert_eq!(cut_all(&[1, 2]), "{\n  \"a\": 1\n}\n");
        assert_eq!(cut_all(&[0, 2]), "{\n  \"b\" : {\"x\": [1, 2]}\n}\n");
        assert_eq!(cut_all(&[0, 1, 2]), "{\n  \n}\n");
    }

    #[test]
    fn invalid_json_and_other_top_levels_are_told_apart() {
        assert_eq!(Object::parse("[1]").unwrap_err(), NotAnObject::TopLevel);
        assert!(matches!(
            Object::parse("{\"a\":}"),
            Err(NotAnObject::Syntax(_))
        ));
        assert!(matches!(Object::parse("{} x"), Err(NotAnObject::Syntax(_))));
    }

    #[test]
    fn references_are_replaced_escaped() {
        let text = r#"{"q":"a{x=\"${VAR_NS}\"} ${__rate_interval} ${DS_P:raw} ${ not} $${DS_P}"}"#;
        let map = BTreeMap::from([
            ("VAR_NS".to_string(), "a\"b".to_string()),
            ("DS_P".to_string(), "VM".to_string()),
        ]);
        let mut out = String::new();
        replace_references(text, &map, &mut out);
        assert_eq!(
            out,
            r#"{"q":"a{x=\"a\"b\"} ${__rate_interval} ${DS_P:raw} ${ not} $VM"}"#
        );
    }
}
