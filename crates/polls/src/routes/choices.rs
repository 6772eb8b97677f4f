//! `/polls/{id}/choices`: a poll's choices, with their votes nested.

use axum::http::StatusCode;
use serde::Deserialize;
use tenantry::TenantDb;

use super::polls::creator;
use crate::auth::AuthUser;
use crate::domain::choices::{self, Choice, ChoiceText};
use crate::domain::rules::Settings;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::path::ApiPath;

/// The body of `POST /polls/{id}/choices`.
#[derive(Deserialize)]
pub(super) struct ChoiceBody {
    choice_text: Option<String>,
}

/// `GET /polls/{id}/choices`: the poll's choices, by id.
pub(super) async fn list(
    _user: AuthUser,
    ApiPath(poll_id): ApiPath<i64>,
    mut db: TenantDb,
) -> Result<ApiJson<Vec<Choice>>, ApiError> {
    creator(&mut db, poll_id).await?; // 404 if the poll does not exist
    Ok(ApiJson(choices::of_polls(&mut db, Some(poll_id)).await?))
}

/// `POST /polls/{id}/choices`: 201 with a new choice; only the poll's creator may.
pub(super) async fn create(
    user: AuthUser,
    ApiPath(poll_id): ApiPath<i64>,
    settings: Settings,
    mut db: TenantDb,
    ApiJson(body): ApiJson<ChoiceBody>,
) -> Result<(StatusCode, ApiJson<Choice>), ApiError> {
    if creator(&mut db, poll_id).await? != user.id {
        return Err(ApiError::Forbidden(
            "You can not create choice for this poll.",
        ));
    }
    let text = ChoiceText::parse(body.choice_text)
        .map_err(|message| ApiError::field("choice_text", message))?;
    let choice = choices::add(&mut db, poll_id, text, &settings.app).await?;
    Ok((StatusCode::CREATED, ApiJson(choice)))
}
