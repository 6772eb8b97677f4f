//! Accounts: the rules for usernames, email addresses and passwords.

use super::text::{REQUIRED, check_text, required_text};

const USERNAME_MAX: usize = 150;
const EMAIL_MAX: usize = 254;
const PASSWORD_MAX: usize = 128;

/// A username by Django's rules: at most 150 letters, digits and `@.+-_`; trimmed.
#[derive(Debug, PartialEq)]
pub(crate) struct Username(pub(crate) String);

/// An email address: `""` when none was given; otherwise one `@` with text on both sides.
#[derive(Debug, PartialEq)]
pub(crate) struct Email(pub(crate) String);

/// A password: not blank, at most 128 characters; kept as typed (not trimmed).
#[derive(Debug, PartialEq)]
pub(crate) struct Password(pub(crate) String);

/// Whether a login's username and password are short enough to belong to an account.
pub(crate) fn plausible_login(username: &str, password: &str) -> bool {
    username.chars().count() <= USERNAME_MAX && password.chars().count() <= PASSWORD_MAX
}

impl Username {
    pub(crate) fn parse(username: Option<String>) -> Result<Self, String> {
        let username = required_text(username, USERNAME_MAX)?;
        if username
            .chars()
            .all(|c| c.is_alphanumeric() || "@.+-_".contains(c))
        {
            Ok(Self(username))
        } else {
            Err(
                "Enter a valid username. This value may contain only letters, numbers, \
             and @/./+/-/_ characters."
                    .to_owned(),
            )
        }
    }
}

impl Email {
    pub(crate) fn parse(email: Option<String>) -> Result<Self, String> {
        let email = email.unwrap_or_default();
        let email = email.trim();
        if email.is_empty() {
            return Ok(Self(String::new()));
        }
        let email = check_text(email, EMAIL_MAX)?;
        match email.split_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !email.contains(char::is_whitespace) =>
            {
                Ok(Self(email.to_owned()))
            }
            _ => Err("Enter a valid email address.".to_owned()),
        }
    }
}

impl Password {
    pub(crate) fn parse(password: Option<String>) -> Result<Self, String> {
        let password = password.ok_or_else(|| REQUIRED.to_owned())?;
        check_text(&password, PASSWORD_MAX)?;
        Ok(Self(password))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(
            Username::parse(Some(" ana.b+c-d_e@x ".into())),
            Ok(Username("ana.b+c-d_e@x".into()))
        );
        assert_eq!(
            Username::parse(Some("Zoë".into())),
            Ok(Username("Zoë".into()))
        );
        assert!(Username::parse(Some("ana b".into())).is_err());
        assert!(Username::parse(Some("ana/b".into())).is_err());
        assert!(Username::parse(Some("a".repeat(151))).is_err());
        assert!(Username::parse(Some("a".repeat(150))).is_ok());
        assert_eq!(Username::parse(None), Err(REQUIRED.into()));
    }

    #[test]
    fn emails() {
        assert_eq!(Email::parse(None), Ok(Email(String::new())));
        assert_eq!(Email::parse(Some(" ".into())), Ok(Email(String::new())));
        assert_eq!(
            Email::parse(Some("a@b.c ".into())),
            Ok(Email("a@b.c".into()))
        );
        for invalid in ["ab", "@b", "a@", "a@b@c", "a b@c"] {
            assert_eq!(
                Email::parse(Some(invalid.into())),
                Err("Enter a valid email address.".into()),
                "{invalid}"
            );
        }
    }

    #[test]
    fn passwords() {
        assert_eq!(
            Password::parse(Some(" pw ".into())),
            Ok(Password(" pw ".into()))
        );
        assert_eq!(Password::parse(None), Err(REQUIRED.into()));
        assert!(Password::parse(Some("  ".into())).is_err());
        assert!(Password::parse(Some("x".repeat(129))).is_err());
    }
}
