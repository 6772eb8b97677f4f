//! `/polls` and `/polls/{id}`: polls with their choices and votes nested.

use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tenantry::TenantDb;
use tenantry::files::TenantFiles;
use tenantry::http::TenantCache;

use crate::auth::AuthUser;
use crate::domain::polls::{self, Closing, ClosingTime, Poll, Question};
use crate::error::ApiError;
use crate::jobs;
use crate::json::ApiJson;
use crate::path::ApiPath;

/// How long the list of polls stays cached when nothing writes.
const LIST_TTL: Duration = Duration::from_secs(300);

/// The body of `POST`, `PUT` and `PATCH`: `closes_at` absent leaves the closing time as
/// it is (none for a new poll), `null` removes it.
#[derive(Deserialize)]
pub(super) struct PollBody {
    question: Option<String>,
    #[serde(default, deserialize_with = "present")]
    closes_at: Option<Option<String>>,
}

/// A field given, as `Some` even when `null`.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

impl PollBody {
    /// The change to the closing time the body asks for.
    fn closing(&self) -> Result<Closing, ApiError> {
        match &self.closes_at {
            None => Ok(Closing::Keep),
            Some(None) => Ok(Closing::Remove),
            Some(Some(text)) => ClosingTime::parse(text)
                .map(Closing::At)
                .map_err(|message| ApiError::field("closes_at", message)),
        }
    }
}

/// Saves poll `id` as `body` says, enqueueing the job that closes it if it has a new
/// closing time.
async fn save(
    db: &mut TenantDb,
    id: i64,
    question: Option<Question>,
    closing: Closing,
) -> Result<ApiJson<Poll>, ApiError> {
    let at = match &closing {
        Closing::At(at) => Some(*at),
        _ => None,
    };
    let poll = polls::save(db, id, question, closing)
        .await?
        .ok_or(ApiError::NotFound)?;
    if let Some(at) = at {
        jobs::close_at(db, id, at).await?;
    }
    Ok(ApiJson(poll))
}

/// `GET /polls`: every poll, by id.
/// Served from the tenant's cache: any write to the tenant flushes it once the write commits
/// (`startup::flush_on_write`), so an answered write is never missing from it.
pub(super) async fn list(
    _user: AuthUser,
    cache: TenantCache,
    mut db: TenantDb,
) -> Result<Response, ApiError> {
    let body: String = cache
        .get_or_insert_with("polls", LIST_TTL, async || {
            let all = polls::all(&mut db).await?;
            // Serializing what the database returned cannot fail; if it did, it is a 500.
            serde_json::to_string(&all)
                .map_err(|e| ApiError::Database(sqlx::Error::Encode(e.into())))
        })
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `POST /polls`: 201 with a new poll by the caller.
pub(super) async fn create(
    user: AuthUser,
    mut db: TenantDb,
    ApiJson(body): ApiJson<PollBody>,
) -> Result<(StatusCode, ApiJson<Poll>), ApiError> {
    let closing = body.closing()?;
    let question = question(body.question)?;
    let closes_at = match closing {
        Closing::At(at) => Some(at),
        Closing::Keep | Closing::Remove => None,
    };
    let poll = polls::create(&mut db, question, user.id, closes_at).await?;
    if let Some(at) = closes_at {
        jobs::close_at(&mut db, poll.id, at).await?;
    }
    Ok((StatusCode::CREATED, ApiJson(poll)))
}

/// `GET /polls/{id}`.
pub(super) async fn detail(
    _user: AuthUser,
    ApiPath(id): ApiPath<i64>,
    mut db: TenantDb,
) -> Result<ApiJson<Poll>, ApiError> {
    let poll = polls::get(&mut db, id).await?;
    Ok(ApiJson(poll.ok_or(ApiError::NotFound)?))
}

/// `PUT /polls/{id}`: replaces the question (required).
pub(super) async fn replace(
    _user: AuthUser,
    ApiPath(id): ApiPath<i64>,
    mut db: TenantDb,
    ApiJson(body): ApiJson<PollBody>,
) -> Result<ApiJson<Poll>, ApiError> {
    let closing = body.closing()?;
    let question = question(body.question)?;
    save(&mut db, id, Some(question), closing).await
}

/// `PATCH /polls/{id}`: like `PUT`, but the question may be left out.
pub(super) async fn patch(
    _user: AuthUser,
    ApiPath(id): ApiPath<i64>,
    mut db: TenantDb,
    ApiJson(body): ApiJson<PollBody>,
) -> Result<ApiJson<Poll>, ApiError> {
    let closing = body.closing()?;
    let question = body
        .question
        .map(|question| self::question(Some(question)))
        .transpose()?;
    save(&mut db, id, question, closing).await
}

/// `DELETE /polls/{id}`: 204, with its image; only its creator may.
pub(super) async fn delete(
    user: AuthUser,
    ApiPath(id): ApiPath<i64>,
    files: TenantFiles,
    mut db: TenantDb,
) -> Result<StatusCode, ApiError> {
    if creator(&mut db, id).await? != user.id {
        return Err(ApiError::Forbidden("You can not delete this poll."));
    }
    polls::delete(&mut db, id).await?;
    super::images::remove(&files, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The id of the user who created poll `id`; [`ApiError::NotFound`] if there is no such poll.
pub(super) async fn creator(db: &mut TenantDb, id: i64) -> Result<i64, ApiError> {
    polls::creator(db, id).await?.ok_or(ApiError::NotFound)
}

fn question(question: Option<String>) -> Result<Question, ApiError> {
    Question::parse(question).map_err(|message| ApiError::field("question", message))
}
