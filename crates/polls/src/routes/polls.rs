//! `/polls` and `/polls/{id}`: polls with their choices and votes nested.

use std::slice;

use axum::http::StatusCode;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use sqlx::{FromRow, PgConnection};
use tenantry::TenantDb;

use super::choices::{self, Choice};
use super::{ApiPath, group_by, required_text};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::json::ApiJson;

const QUESTION_MAX: usize = 100;

/// A poll as the API shows it.
#[derive(Serialize, FromRow)]
pub(super) struct Poll {
    id: i64,
    #[sqlx(skip)]
    choices: Vec<Choice>,
    question: String,
    #[serde(serialize_with = "utc_micros")]
    pub_date: DateTime<Utc>,
    created_by: i64,
}

/// The body of `POST`, `PUT` and `PATCH`.
#[derive(Deserialize)]
pub(super) struct PollBody {
    question: Option<String>,
}

/// `GET /polls`: every poll, by id.
pub(super) async fn list(
    _user: AuthUser,
    mut db: TenantDb,
) -> Result<ApiJson<Vec<Poll>>, ApiError> {
    let mut polls =
        sqlx::query_as("SELECT id, question, pub_date, created_by FROM polls ORDER BY id")
            .fetch_all(&mut *db)
            .await?;
    load_choices(&mut db, &mut polls).await?;
    Ok(ApiJson(polls))
}

/// `POST /polls`: 201 with a new poll by the caller.
pub(super) async fn create(
    user: AuthUser,
    mut db: TenantDb,
    ApiJson(body): ApiJson<PollBody>,
) -> Result<(StatusCode, ApiJson<Poll>), ApiError> {
    let question = validate_question(body.question)?;
    let poll = sqlx::query_as(
        "INSERT INTO polls (question, created_by, pub_date) VALUES ($1, $2, now()) \
         RETURNING id, question, pub_date, created_by",
    )
    .bind(question)
    .bind(user.id)
    .fetch_one(&mut *db)
    .await?;
    Ok((StatusCode::CREATED, ApiJson(poll)))
}

/// `GET /polls/{id}`.
pub(super) async fn detail(
    _user: AuthUser,
    ApiPath(id): ApiPath<i64>,
    mut db: TenantDb,
) -> Result<ApiJson<Poll>, ApiError> {
    let mut poll =
        sqlx::query_as("SELECT id, question, pub_date, created_by FROM polls WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *db)
            .await?
            .ok_or(ApiError::NotFound)?;
    load_choices(&mut db, slice::from_mut(&mut poll)).await?;
    Ok(ApiJson(poll))
}

/// `PUT /polls/{id}`: replaces the question (required).
pub(super) async fn replace(
    _user: AuthUser,
    ApiPath(id): ApiPath<i64>,
    mut db: TenantDb,
    ApiJson(body): ApiJson<PollBody>,
) -> Result<ApiJson<Poll>, ApiError> {
    let question = validate_question(body.question)?;
    Ok(ApiJson(save(&mut db, id, Some(question)).await?))
}

/// `PATCH /polls/{id}`: like `PUT`, but the question may be left out.
pub(super) async fn patch(
    _user: AuthUser,
    ApiPath(id): ApiPath<i64>,
    mut db: TenantDb,
    ApiJson(body): ApiJson<PollBody>,
) -> Result<ApiJson<Poll>, ApiError> {
    let question = body
        .question
        .map(|question| validate_question(Some(question)))
        .transpose()?;
    Ok(ApiJson(save(&mut db, id, question).await?))
}

/// `DELETE /polls/{id}`: 204; only its creator may.
pub(super) async fn delete(
    user: AuthUser,
    ApiPath(id): ApiPath<i64>,
    mut db: TenantDb,
) -> Result<StatusCode, ApiError> {
    if creator(&mut db, id).await? != user.id {
        return Err(ApiError::Forbidden("You can not delete this poll."));
    }
    sqlx::query("DELETE FROM polls WHERE id = $1")
        .bind(id)
        .execute(&mut *db)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The id of the user who created poll `id`; [`ApiError::NotFound`] if there is no such poll.
pub(super) async fn creator(db: &mut PgConnection, id: i64) -> Result<i64, ApiError> {
    sqlx::query_scalar("SELECT created_by FROM polls WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or(ApiError::NotFound)
}

/// Sets the question (unless `None`) and stamps `pub_date`, as every save does.
async fn save(db: &mut PgConnection, id: i64, question: Option<String>) -> Result<Poll, ApiError> {
    let mut poll = sqlx::query_as(
        "UPDATE polls SET question = coalesce($2, question), pub_date = now() WHERE id = $1 \
         RETURNING id, question, pub_date, created_by",
    )
    .bind(id)
    .bind(question)
    .fetch_optional(&mut *db)
    .await?
    .ok_or(ApiError::NotFound)?;
    load_choices(db, slice::from_mut(&mut poll)).await?;
    Ok(poll)
}

/// Fills in the polls' choices and their votes, in two queries however many polls there are.
async fn load_choices(db: &mut PgConnection, polls: &mut [Poll]) -> Result<(), sqlx::Error> {
    let ids: Vec<i64> = polls.iter().map(|poll| poll.id).collect();
    let mut choices = group_by(choices::of_polls(db, &ids).await?, |choice| choice.poll);
    for poll in polls {
        poll.choices = choices.remove(&poll.id).unwrap_or_default();
    }
    Ok(())
}

fn validate_question(question: Option<String>) -> Result<String, ApiError> {
    required_text(question, QUESTION_MAX).map_err(|message| ApiError::field("question", message))
}

/// ISO 8601 in UTC with microseconds and a `Z`, like `2024-05-01T12:00:00.000000Z`.
fn utc_micros<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true))
}
