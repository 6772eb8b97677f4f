//! The tenant's HTTP API: [`tenant_router`] and the helpers its resources share.

mod choices;
mod polls;
mod root;
mod users;
mod votes;

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::de::DeserializeOwned;

use crate::admin;
use crate::error::{ApiError, method_not_allowed, not_found_fallback};
use crate::limits::AuthLimits;

pub(crate) use choices::add as add_choice;
pub(crate) use polls::{now, validate_question};
pub(crate) use users::{plausible_login, validate_email, validate_password, validate_username};

/// Every route of a tenant, without trailing slashes; unknown paths and methods get JSON errors.
/// Sign-up and login (only they) get `auth`'s hasher and rates.
pub fn tenant_router(auth: AuthLimits) -> Router {
    let auth_for_admin = auth.clone();
    let accounts = Router::new()
        .route("/users", post(users::create))
        .route("/login", post(users::login))
        .layer(Extension(auth));
    Router::new()
        .route("/", get(root::index))
        .merge(accounts)
        .route("/polls", get(polls::list).post(polls::create))
        .route(
            "/polls/{id}",
            get(polls::detail)
                .put(polls::replace)
                .patch(polls::patch)
                .delete(polls::delete),
        )
        .route(
            "/polls/{id}/choices",
            get(choices::list).post(choices::create),
        )
        .route("/polls/{id}/choices/{choice_id}/vote", post(votes::create))
        .merge(admin::router(auth_for_admin))
        .fallback(not_found_fallback)
        .method_not_allowed_fallback(method_not_allowed)
}

/// Path parameters; any that do not parse (`/polls/abc`) make the path not found.
pub(crate) struct ApiPath<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(value) = Path::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        Ok(Self(value))
    }
}

const REQUIRED: &str = "This field is required.";

/// A required text field: present, not blank, at most `max_chars` characters; trimmed.
fn required_text(value: Option<String>, max_chars: usize) -> Result<String, String> {
    let value = value.ok_or_else(|| REQUIRED.to_owned())?;
    check_text(&value, max_chars).map(str::to_owned)
}

/// `value` trimmed, unless that is blank or longer than `max_chars` characters.
fn check_text(value: &str, max_chars: usize) -> Result<&str, String> {
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

    #[test]
    fn grouping_keeps_order() {
        let groups = group_by(vec![(1, 'a'), (2, 'b'), (1, 'c')], |row| row.0);
        assert_eq!(groups[&1], [(1, 'a'), (1, 'c')]);
        assert_eq!(groups[&2], [(2, 'b')]);
    }
}
