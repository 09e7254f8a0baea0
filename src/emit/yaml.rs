//! YAML text for Kubernetes objects: one serializer (serde_yaml_ng, the maintained fork of serde_yaml)
//! and one document separator convention, so every emitted file looks the same.

use serde_yaml_ng::{Mapping, Value};

/// Builds a mapping from pairs, keeping the given order (apiVersion, kind, metadata, spec reads best).
pub fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        if !v.is_null() {
            m.insert(Value::String(k.to_string()), v);
        }
    }
    Value::Mapping(m)
}

pub fn s(text: impl Into<String>) -> Value {
    Value::String(text.into())
}

pub fn seq(items: impl IntoIterator<Item = Value>) -> Value {
    Value::Sequence(items.into_iter().collect())
}

/// Documents joined with `---`, each ending in a newline.
pub fn documents(docs: &[Value]) -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml_ng::to_string(doc)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_drops_nulls() {
        let v = map([("b", s("1")), ("a", Value::Null), ("c", seq([s("x")]))]);
        assert_eq!(
            documents(&[v.clone(), v]).unwrap(),
            "b: '1'\nc:\n- x\n---\nb: '1'\nc:\n- x\n"
        );
    }
}
