//! `/polls/{id}/choices`: a poll's choices, with their votes nested.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgConnection};
use tenantry::TenantDb;

use super::votes::{self, Vote};
use super::{ApiPath, group_by, polls, required_text};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::json::ApiJson;

const CHOICE_TEXT_MAX: usize = 100;

/// A choice as the API shows it.
#[derive(Serialize, FromRow)]
pub(super) struct Choice {
    id: i64,
    #[sqlx(skip)]
    votes: Vec<Vote>,
    choice_text: String,
    /// The poll's id.
    pub(super) poll: i64,
}

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
    polls::creator(&mut db, poll_id).await?; // 404 if the poll does not exist
    Ok(ApiJson(of_polls(&mut db, &[poll_id]).await?))
}

/// `POST /polls/{id}/choices`: 201 with a new choice; only the poll's creator may.
pub(super) async fn create(
    user: AuthUser,
    ApiPath(poll_id): ApiPath<i64>,
    mut db: TenantDb,
    ApiJson(body): ApiJson<ChoiceBody>,
) -> Result<(StatusCode, ApiJson<Choice>), ApiError> {
    if polls::creator(&mut db, poll_id).await? != user.id {
        return Err(ApiError::Forbidden(
            "You can not create choice for this poll.",
        ));
    }
    let choice_text = required_text(body.choice_text, CHOICE_TEXT_MAX)
        .map_err(|message| ApiError::field("choice_text", message))?;
    let choice = sqlx::query_as(
        "INSERT INTO choices (poll_id, choice_text) VALUES ($1, $2) \
         RETURNING id, choice_text, poll_id AS poll",
    )
    .bind(poll_id)
    .bind(choice_text)
    .fetch_one(&mut *db)
    .await?;
    Ok((StatusCode::CREATED, ApiJson(choice)))
}

/// The choices of these polls by id, each with its votes, in two queries.
pub(super) async fn of_polls(
    db: &mut PgConnection,
    poll_ids: &[i64],
) -> Result<Vec<Choice>, sqlx::Error> {
    let mut choices: Vec<Choice> = sqlx::query_as(
        "SELECT id, choice_text, poll_id AS poll FROM choices \
         WHERE poll_id = ANY($1) ORDER BY id",
    )
    .bind(poll_ids)
    .fetch_all(&mut *db)
    .await?;
    let ids: Vec<i64> = choices.iter().map(|choice| choice.id).collect();
    let mut votes = group_by(votes::of_choices(db, &ids).await?, |vote| vote.choice);
    for choice in &mut choices {
        choice.votes = votes.remove(&choice.id).unwrap_or_default();
    }
    Ok(choices)
}
