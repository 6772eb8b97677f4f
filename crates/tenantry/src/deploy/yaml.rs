//! YAML text for generated files: block style, every string double-quoted (a JSON string
//! literal is a YAML double-quoted scalar), so no value can change a document's structure.

use serde_json::Value;

/// `value` as one YAML document.
pub(crate) fn document(value: &Value) -> String {
    let mut out = String::new();
    block(value, 0, &mut out);
    out
}

/// `values` as a stream of YAML documents.
pub(crate) fn documents(values: &[Value]) -> String {
    values
        .iter()
        .map(document)
        .collect::<Vec<_>>()
        .join("---\n")
}

/// A value that fits on its key's line.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some("null".into()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(Value::String(s.clone()).to_string()),
        Value::Array(a) if a.is_empty() => Some("[]".into()),
        Value::Object(o) if o.is_empty() => Some("{}".into()),
        _ => None,
    }
}

fn key(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
    match plain {
        true => name.to_owned(),
        false => Value::String(name.to_owned()).to_string(),
    }
}

fn block(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (name, item) in map {
                out.push_str(&format!("{pad}{}:", key(name)));
                nested(item, indent + 2, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                match scalar(item) {
                    Some(s) => out.push_str(&format!("{pad}- {s}\n")),
                    None => {
                        // The item's block, its first line's indent replaced by the dash.
                        let mut inner = String::new();
                        block(item, indent + 2, &mut inner);
                        out.push_str(&format!("{pad}- {}", &inner[indent + 2..]));
                    }
                }
            }
        }
        other => out.push_str(&format!(
            "{pad}{}\n",
            scalar(other).expect("a scalar value")
        )),
    }
}

fn nested(value: &Value, indent: usize, out: &mut String) {
    match scalar(value) {
        Some(s) => out.push_str(&format!(" {s}\n")),
        None => {
            out.push('\n');
            block(value, indent, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::document;

    #[test]
    fn nests_maps_and_lists_and_quotes_every_string() {
        let text = document(&json!({
            "kind": "Pod",
            "metadata": { "labels": { "app.kubernetes.io/name": "a: b\n- c" } },
            "spec": { "containers": [ { "args": ["serve", 1], "name": "app" } ], "empty": [] },
        }));
        assert_eq!(
            text,
            "kind: \"Pod\"\nmetadata:\n  labels:\n    app.kubernetes.io/name: \"a: b\\n- c\"\n\
             spec:\n  containers:\n    - args:\n        - \"serve\"\n        - 1\n      \
             name: \"app\"\n  empty: []\n"
        );
    }
}
