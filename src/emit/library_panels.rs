//! Library panels. A dashboard exported "for sharing externally" keeps each library panel's model under
//! the top-level `__elements` (by uid) and refers to it from a panel with `libraryPanel: {uid, name}`.
//! Grafana's import dialog creates the library panels; file provisioning does not, so such a panel shows
//! "Unable to load library panel". The build inlines each element's model into the panel that refers to
//! it (keeping the panel's `id` and `gridPos`), and refuses a reference whose element is missing.

use serde_json::{Map, Value};

/// A `libraryPanel` reference with no element in `__elements`: (panel label, uid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub panel: String,
    pub uid: String,
}

/// Inlines every library panel of `doc` and removes `__elements`.
pub fn inline(doc: &mut Value) -> Result<(), Missing> {
    let Some(obj) = doc.as_object_mut() else {
        return Ok(());
    };
    let elements = match obj.shift_remove("__elements") {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    if let Some(panels) = obj.get_mut("panels") {
        inline_in(panels, &elements)?;
    }
    for row in obj
        .get_mut("rows")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(panels) = row.get_mut("panels") {
            inline_in(panels, &elements)?;
        }
    }
    Ok(())
}

fn inline_in(panels: &mut Value, elements: &Map<String, Value>) -> Result<(), Missing> {
    for panel in panels.as_array_mut().into_iter().flatten() {
        if let Some(uid) = panel
            .pointer("/libraryPanel/uid")
            .and_then(Value::as_str)
            .map(str::to_string)
        {
            let model = elements
                .get(&uid)
                .and_then(|e| e.get("model"))
                .and_then(Value::as_object)
                .ok_or_else(|| Missing {
                    panel: super::datasource_refs::panel_label(panel),
                    uid: uid.clone(),
                })?;
            let mut inlined = model.clone();
            for key in ["id", "gridPos"] {
                if let Some(v) = panel.get(key) {
                    inlined.insert(key.into(), v.clone());
                }
            }
            inlined.shift_remove("libraryPanel");
            *panel = Value::Object(inlined);
        }
        if let Some(nested) = panel.get_mut("panels") {
            inline_in(nested, elements)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_library_panel_is_replaced_by_its_model_keeping_place_and_id() {
        let mut doc: Value = serde_json::from_str(
            r#"{"__elements":{"lp1":{"name":"Up","uid":"lp1","kind":1,"model":{"type":"stat","title":"Up","targets":[{"expr":"up"}],"gridPos":{"x":9}}}},
                "title":"T","panels":[{"id":3,"gridPos":{"x":0,"y":2},"libraryPanel":{"uid":"lp1","name":"Up"}},
                {"type":"row","panels":[{"id":4,"libraryPanel":{"uid":"lp1"}}]}]}"#,
        )
        .unwrap();
        inline(&mut doc).unwrap();
        assert!(doc.get("__elements").is_none());
        let p = &doc["panels"][0];
        assert_eq!(p["type"], "stat");
        assert_eq!(p["id"], 3);
        assert_eq!(p["gridPos"]["y"], 2);
        assert!(p.get("libraryPanel").is_none());
        assert_eq!(doc["panels"][1]["panels"][0]["targets"][0]["expr"], "up");
    }

    #[test]
    fn a_reference_without_its_element_is_an_error_naming_the_panel() {
        let mut doc: Value = serde_json::from_str(
            r#"{"title":"T","panels":[{"id":3,"title":"CPU","libraryPanel":{"uid":"gone","name":"CPU"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            inline(&mut doc),
            Err(Missing {
                panel: "panel `CPU`".into(),
                uid: "gone".into()
            })
        );
    }
}
