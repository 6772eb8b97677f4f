//! Text fields as every form and body of polls checks them.

pub(crate) const REQUIRED: &str = "This field is required.";

/// A required text field: present, not blank, at most `max_chars` characters; trimmed.
pub(crate) fn required_text(value: Option<String>, max_chars: usize) -> Result<String, String> {
    let value = value.ok_or_else(|| REQUIRED.to_owned())?;
    check_text(&value, max_chars).map(str::to_owned)
}

/// `value` trimmed, unless that is blank or longer than `max_chars` characters.
pub(crate) fn check_text(value: &str, max_chars: usize) -> Result<&str, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        Err("This field may not be blank.".to_owned())
    } else if trimmed.chars().count() > max_chars {
        Err(format!(
            "Ensure this field has no more than {max_chars} characters."
        ))
    } else {
        Ok(trimmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields() {
        assert_eq!(required_text(Some(" hi ".into()), 5), Ok("hi".into()));
        assert_eq!(required_text(Some("héllo".into()), 5), Ok("héllo".into()));
        assert_eq!(required_text(None, 5), Err(REQUIRED.into()));
        assert_eq!(
            required_text(Some("  ".into()), 5),
            Err("This field may not be blank.".into())
        );
        assert_eq!(
            required_text(Some("toolong".into()), 5),
            Err("Ensure this field has no more than 5 characters.".into())
        );
    }
}
