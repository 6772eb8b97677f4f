//! `POST /polls/{id}/choices/{choice_id}/vote`: one vote per user and poll.

use axum::http::StatusCode;
use serde_json::json;
use tenantry::{Db, TenantDb};

use crate::auth::AuthUser;
use crate::domain::polls;
use crate::domain::rules::Settings;
use crate::domain::votes::Vote;
use crate::error::{ApiError, is_foreign_key_violation, is_unique_violation};
use crate::json::ApiJson;
use crate::path::ApiPath;

/// `POST /polls/{id}/choices/{choice_id}/vote`: 201 with the caller's vote; 404 unless the
/// choice belongs to the poll. A second vote in the poll is refused (400), or, where the
/// tenant allows changing one's vote, replaces the first (200). Any body is ignored.
pub(super) async fn create(
    user: AuthUser,
    ApiPath((poll_id, choice_id)): ApiPath<(i64, i64)>,
    settings: Settings,
    mut db: TenantDb,
) -> Result<(StatusCode, ApiJson<Vote>), ApiError> {
    if polls::is_closed(&mut db, poll_id)
        .await?
        .ok_or(ApiError::NotFound)?
    {
        return Err(ApiError::BadRequest(
            json!({ "detail": "This poll is closed." }),
        ));
    }
    if settings.app.allow_vote_change {
        return cast_or_change(&mut db, poll_id, choice_id, user.id).await;
    }
    let vote = db
        .query(
            "INSERT INTO votes (choice_id, poll_id, voted_by) \
             SELECT id, poll_id, $3 FROM choices WHERE id = $1 AND poll_id = $2 \
             RETURNING id, choice_id AS choice, poll_id AS poll, voted_by",
        )
        .bind(choice_id)
        .bind(poll_id)
        .bind(user.id)
        .fetch_optional()
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                ApiError::BadRequest(json!({ "detail": "You have already voted in this poll." }))
            } else if is_foreign_key_violation(&error) {
                // The choice was deleted between the SELECT and the check of the new row.
                ApiError::NotFound
            } else {
                error.into()
            }
        })?
        .ok_or(ApiError::NotFound)?;
    Ok((StatusCode::CREATED, ApiJson(vote)))
}

/// Where votes may change: a first vote (201), or else the user's vote moved to `choice_id`
/// (200). A concurrent first vote makes the insert do nothing (it waits for that vote's
/// commit), and the vote it made is then moved.
async fn cast_or_change(
    db: &mut Db,
    poll_id: i64,
    choice_id: i64,
    user_id: i64,
) -> Result<(StatusCode, ApiJson<Vote>), ApiError> {
    let cast = db
        .query(
            "INSERT INTO votes (choice_id, poll_id, voted_by) \
             SELECT id, poll_id, $3 FROM choices WHERE id = $1 AND poll_id = $2 \
             ON CONFLICT DO NOTHING \
             RETURNING id, choice_id AS choice, poll_id AS poll, voted_by",
        )
        .bind(choice_id)
        .bind(poll_id)
        .bind(user_id)
        .fetch_optional()
        .await
        .map_err(|error| match is_foreign_key_violation(&error) {
            true => ApiError::NotFound,
            false => error.into(),
        })?;
    if let Some(vote) = cast {
        return Ok((StatusCode::CREATED, ApiJson(vote)));
    }
    let moved = change(db, poll_id, choice_id, user_id).await?;
    Ok((StatusCode::OK, ApiJson(moved.ok_or(ApiError::NotFound)?)))
}

/// Moves the user's vote in the poll to `choice_id`, if they have one; 404 unless the choice
/// belongs to the poll.
async fn change(
    db: &mut Db,
    poll_id: i64,
    choice_id: i64,
    user_id: i64,
) -> Result<Option<Vote>, ApiError> {
    let choice: Option<i64> = db
        .query("SELECT id FROM choices WHERE id = $1 AND poll_id = $2")
        .bind(choice_id)
        .bind(poll_id)
        .fetch_optional_scalar()
        .await?;
    if choice.is_none() {
        return Err(ApiError::NotFound);
    }
    Ok(db
        .query(
            "UPDATE votes SET choice_id = $1 WHERE poll_id = $2 AND voted_by = $3 \
             RETURNING id, choice_id AS choice, poll_id AS poll, voted_by",
        )
        .bind(choice_id)
        .bind(poll_id)
        .bind(user_id)
        .fetch_optional()
        .await?)
}
