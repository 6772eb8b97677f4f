//! What polls is, below both of its front ends (the JSON API in `routes/`, the admin in
//! `admin/`), which import it and never each other: the tenant's rules (`rules.rs`), values
//! parsed once where they come in (a [`polls::Question`], [`choices::ChoiceText`],
//! [`users::Username`], [`users::Email`] or [`users::Password`] is valid by being one), and
//! the queries both front ends run. It knows nothing of HTTP.

pub(crate) mod choices;
pub(crate) mod polls;
pub mod rules;
mod text;
pub(crate) mod users;
pub(crate) mod votes;

use std::collections::HashMap;

/// Why a change was refused.
#[derive(Debug)]
pub(crate) enum Refused {
    /// A field's value breaks a rule: the field and what to change.
    Field(&'static str, String),
    Database(sqlx::Error),
}

impl From<sqlx::Error> for Refused {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error)
    }
}

/// Groups rows by a parent id, keeping their order within each group.
fn group_by<T>(rows: Vec<T>, parent: impl Fn(&T) -> i64) -> HashMap<i64, Vec<T>> {
    let mut groups: HashMap<i64, Vec<T>> = HashMap::new();
    for row in rows {
        groups.entry(parent(&row)).or_default().push(row);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_keeps_order() {
        let groups = group_by(vec![(1, 'a'), (2, 'b'), (1, 'c')], |row| row.0);
        assert_eq!(groups[&1], [(1, 'a'), (1, 'c')]);
        assert_eq!(groups[&2], [(2, 'b')]);
    }
}
