//! The business rules each tenant sets for its polls site ([`PollsRules`]), enforced alike by
//! the API and the admin.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tenantry::settings::{AppSettings, SettingsErrors, SettingsSchema, TenantSettings};

/// The most choices a poll may be limited to.
pub const MAX_CHOICES_LIMIT: u32 = 100;

/// The polls app's settings, beside the branding every tenant has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PollsRules {
    /// Whether visitors may sign up (`POST /users`).
    pub signup_open: bool,
    /// The most choices a poll may have; no limit when `None`.
    pub max_choices_per_poll: Option<u32>,
    /// Whether a second vote in a poll replaces the first (else it is refused, as in the book).
    pub allow_vote_change: bool,
}

impl Default for PollsRules {
    fn default() -> Self {
        Self {
            signup_open: true,
            max_choices_per_poll: None,
            allow_vote_change: false,
        }
    }
}

impl AppSettings for PollsRules {
    fn validate(&self) -> Result<(), SettingsErrors> {
        match self.max_choices_per_poll {
            Some(n) if !(1..=MAX_CHOICES_LIMIT).contains(&n) => Err(BTreeMap::from([(
                "max_choices_per_poll".to_owned(),
                format!("a limit is 1 to {MAX_CHOICES_LIMIT}, or null for none"),
            )])),
            _ => Ok(()),
        }
    }
}

/// A tenant's settings as the polls handlers take them.
pub type Settings = TenantSettings<PollsRules>;

/// The settings polls tenants have: branding and [`PollsRules`].
pub fn schema() -> SettingsSchema {
    SettingsSchema::of::<PollsRules>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_are_checked() {
        let schema = schema();
        assert!(
            schema
                .apply(&json!({}), &json!({ "max_choices_per_poll": 3 }))
                .is_ok()
        );
        for bad in [json!(0), json!(101), json!(-1), json!("3")] {
            let patch = json!({ "max_choices_per_poll": bad });
            assert!(schema.apply(&json!({}), &patch).is_err(), "{patch}");
        }
    }
}
