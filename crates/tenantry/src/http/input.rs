//! Checks on untrusted JSON input that must hold on every backend.

use serde_json::Value;

/// A JSON parser's message without the position it appends (" at line 1 column 7"): what
/// is wrong is what a client needs, and the position only repeats the body it sent.
pub fn without_position(message: &str) -> &str {
    match message.rsplit_once(" at line ") {
        Some((head, tail)) if tail.contains(" column ") => head,
        _ => message,
    }
}

/// The message for a field whose text holds a NUL character.
pub const NUL_MESSAGE: &str = "Null characters are not allowed.";

/// Where the first NUL character (U+0000) in `value` is: the path of the string or key that
/// holds it, as `field`, `field.2` or `field.key`; `""` for a bare string. PostgreSQL cannot
/// store NUL in text and SQLite would store it silently, so such input is refused on both.
pub fn nul_character_at(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => text.contains('\0').then(String::new),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_character_at(item).map(|inner| join(&i.to_string(), &inner))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                return Some(key.replace('\0', "\\u0000"));
            }
            nul_character_at(item).map(|inner| join(key, &inner))
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

fn join(outer: &str, inner: &str) -> String {
    match inner {
        "" => outer.to_owned(),
        inner => format!("{outer}.{inner}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn positions_are_cut_from_parser_messages() {
        assert_eq!(
            without_position("expected value at line 1 column 1"),
            "expected value"
        );
        assert_eq!(
            without_position("missing field `slug` at line 3 column 9"),
            "missing field `slug`"
        );
        assert_eq!(without_position("at line ends here"), "at line ends here");
    }

    use serde_json::json;

    use super::*;

    #[test]
    fn finds_the_path_of_a_nul_character() {
        assert_eq!(nul_character_at(&json!({"a": "x", "b": 1})), None);
        assert_eq!(
            nul_character_at(&json!({"name": "a\u{0}b"})).as_deref(),
            Some("name")
        );
        assert_eq!(
            nul_character_at(&json!({"d": ["ok", {"k": "\u{0}"}]})).as_deref(),
            Some("d.1.k")
        );
        assert_eq!(nul_character_at(&json!("\u{0}")).as_deref(), Some(""));
        assert_eq!(
            nul_character_at(&json!({"a\u{0}": 1})).as_deref(),
            Some("a\\u0000")
        );
    }
}
