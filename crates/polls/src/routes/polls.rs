//! `/polls` and `/polls/{id}`: polls with their choices and votes nested.

use std::slice;

use axum::http::StatusCode;
use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Serialize, Serializer};
use sqlx::FromRow;
use tenantry::{Db, TenantDb};

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
    let mut polls = db
        .query("SELECT id, question, pub_date, created_by FROM polls ORDER BY id")
        .fetch_all()
        .await?;
    load_choices(&mut db, &mut polls, None).await?;
    Ok(ApiJson(polls))
}

/// `POST /polls`: 201 with a new poll by the caller.
pub(super) async fn create(
    user: AuthUser,
    mut db: TenantDb,
    ApiJson(body): ApiJson<PollBody>,
) -> Result<(StatusCode, ApiJson<Poll>), ApiError> {
    let question = validate_question(body.question)?;
    let poll = db
        .query(
            "INSERT INTO polls (question, created_by, pub_date) VALUES ($1, $2, $3) \
             RETURNING id, question, pub_date, created_by",
        )
        .bind(question)
        .bind(user.id)
        .bind(now())
        .fetch_one()
        .await?;
    Ok((StatusCode::CREATED, ApiJson(poll)))
}

/// `GET /polls/{id}`.
pub(super) async fn detail(
    _user: AuthUser,
    ApiPath(id): ApiPath<i64>,
    mut db: TenantDb,
) -> Result<ApiJson<Poll>, ApiError> {
    let mut poll = db
        .query("SELECT id, question, pub_date, created_by FROM polls WHERE id = $1")
        .bind(id)
        .fetch_optional()
        .await?
        .ok_or(ApiError::NotFound)?;
    load_choices(&mut db, slice::from_mut(&mut poll), Some(id)).await?;
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
    db.query("DELETE FROM polls WHERE id = $1")
        .bind(id)
        .execute()
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The id of the user who created poll `id`; [`ApiError::NotFound`] if there is no such poll.
pub(super) async fn creator(db: &mut Db, id: i64) -> Result<i64, ApiError> {
    db.query("SELECT created_by FROM polls WHERE id = $1")
        .bind(id)
        .fetch_optional_scalar()
        .await?
        .ok_or(ApiError::NotFound)
}

/// Sets the question (unless `None`) and stamps `pub_date`, as every save does.
async fn save(db: &mut Db, id: i64, question: Option<String>) -> Result<Poll, ApiError> {
    let mut poll = db
        .query(
            "UPDATE polls SET question = coalesce($2, question), pub_date = $3 WHERE id = $1 \
             RETURNING id, question, pub_date, created_by",
        )
        .bind(id)
        .bind(question)
        .bind(now())
        .fetch_optional()
        .await?
        .ok_or(ApiError::NotFound)?;
    load_choices(db, slice::from_mut(&mut poll), Some(id)).await?;
    Ok(poll)
}

/// Fills in the choices and their votes of `polls`, which are poll `poll` or (`None`) all
/// polls, in two queries however many polls there are.
async fn load_choices(
    db: &mut Db,
    polls: &mut [Poll],
    poll: Option<i64>,
) -> Result<(), sqlx::Error> {
    let mut choices = group_by(choices::of_polls(db, poll).await?, |choice| choice.poll);
    for poll in polls {
        poll.choices = choices.remove(&poll.id).unwrap_or_default();
    }
    Ok(())
}

/// The time a poll is saved, to the microsecond both backends keep.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub(crate) fn validate_question(question: Option<String>) -> Result<String, ApiError> {
    required_text(question, QUESTION_MAX).map_err(|message| ApiError::field("question", message))
}

/// ISO 8601 in UTC with microseconds and a `Z`, like `2024-05-01T12:00:00.000000Z`.
fn utc_micros<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true))
}
