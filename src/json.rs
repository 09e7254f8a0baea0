//! `--json`: every command's machine-readable result is one JSON object on stdout whose first key is
//! `"schema": "stack/v1"`, then `"command"`, then the command's fields (docs/json.md lists them). Fields
//! are only ever added within v1; a removal or a change of meaning makes it `stack/v2`.

use serde::Serialize;

/// The schema name and version every JSON result starts with.
pub const SCHEMA: &str = "stack/v1";

/// Prints `{"schema": "stack/v1", "command": <command>, …fields of body}` on stdout, pretty-printed.
pub fn print(command: &str, body: impl Serialize) {
    crate::ui::out(&format!("{}\n", render(command, body)));
}

/// The text [`print`] prints.
pub fn render(command: &str, body: impl Serialize) -> String {
    let mut object = serde_json::Map::new();
    object.insert("schema".into(), SCHEMA.into());
    object.insert("command".into(), command.into());
    match serde_json::to_value(body).expect("results are plain data") {
        serde_json::Value::Object(fields) => object.extend(fields),
        other => {
            object.insert("result".into(), other);
        }
    }
    serde_json::to_string_pretty(&serde_json::Value::Object(object)).expect("plain data")
}

#[cfg(test)]
mod tests {
    #[test]
    fn schema_and_command_come_first() {
        let text = super::render("graph", serde_json::json!({"nodes": []}));
        assert!(
            text.starts_with(
                "{\n  \"schema\": \"stack/v1\",\n  \"command\": \"graph\",\n  \"nodes\""
            ),
            "{text}"
        );
    }
}
