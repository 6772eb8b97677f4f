//! YAML text for generated files, written by `yaml_serde` (the YAML organization's
//! maintained serde_yaml): a string that could read as anything else is quoted, so no value
//! can change a document's structure.

use serde_json::Value;

/// `value` as one YAML document.
pub(crate) fn document(value: &Value) -> String {
    // JSON's keys are strings, so every value is a YAML document.
    yaml_serde::to_string(value).expect("a JSON value is YAML")
}

/// `values` as a stream of YAML documents.
pub(crate) fn documents(values: &[Value]) -> String {
    values
        .iter()
        .map(document)
        .collect::<Vec<_>>()
        .join("---\n")
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::{Value, json};

    use super::{document, documents};

    #[test]
    fn no_value_changes_the_structure() {
        let hostile = json!({
            "kind": "Pod",
            "metadata": { "labels": { "app.kubernetes.io/name": "a: b\n- c\n---\nkind: Secret" } },
            "spec": { "containers": [ { "args": ["serve", 1, "true", "null", "0x1f"], "name": "app" } ], "empty": [] },
        });
        let text = documents(&[hostile.clone(), json!({ "kind": "Service" })]);
        let read: Vec<Value> = yaml_serde::Deserializer::from_str(&text)
            .map(|doc| Value::deserialize(doc).unwrap())
            .collect();
        assert_eq!(read, [hostile, json!({ "kind": "Service" })]);
        assert!(document(&json!({ "a": "x" })).starts_with("a: x"));
    }
}
