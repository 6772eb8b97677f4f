//! `/polls/{id}/choices`: a poll's choices, with their votes nested.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use tenantry::{Db, TenantDb};

use super::votes::{self, Vote};
use super::{ApiPath, group_by, polls, required_text};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::rules::{PollsRules, Settings};

const CHOICE_TEXT_MAX: usize = 100;

/// A choice as the API shows it.
#[derive(Serialize, FromRow)]
pub(crate) struct Choice {
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
    Ok(ApiJson(of_polls(&mut db, Some(poll_id)).await?))
}

/// `POST /polls/{id}/choices`: 201 with a new choice; only the poll's creator may.
pub(super) async fn create(
    user: AuthUser,
    ApiPath(poll_id): ApiPath<i64>,
    settings: Settings,
    mut db: TenantDb,
    ApiJson(body): ApiJson<ChoiceBody>,
) -> Result<(StatusCode, ApiJson<Choice>), ApiError> {
    if polls::creator(&mut db, poll_id).await? != user.id {
        return Err(ApiError::Forbidden(
            "You can not create choice for this poll.",
        ));
    }
    let choice = add(&mut db, poll_id, body.choice_text, &settings.app).await?;
    Ok((StatusCode::CREATED, ApiJson(choice)))
}

/// Adds a choice to poll `poll_id` (which must exist), within the tenant's limit on choices.
pub(crate) async fn add(
    db: &mut Db,
    poll_id: i64,
    text: Option<String>,
    rules: &PollsRules,
) -> Result<Choice, ApiError> {
    let choice_text = required_text(text, CHOICE_TEXT_MAX)
        .map_err(|message| ApiError::field("choice_text", message))?;
    if let Some(max) = rules.max_choices_per_poll {
        // Locks the poll, so that concurrent additions are counted one after the other.
        db.query("UPDATE polls SET question = question WHERE id = $1")
            .bind(poll_id)
            .execute()
            .await?;
        let count: i64 = db
            .query("SELECT count(*) FROM choices WHERE poll_id = $1")
            .bind(poll_id)
            .fetch_scalar()
            .await?;
        if count >= i64::from(max) {
            return Err(ApiError::field(
                "choice_text",
                format!("This poll already has the most choices this site allows ({max})."),
            ));
        }
    }
    Ok(db
        .query(
            "INSERT INTO choices (poll_id, choice_text) VALUES ($1, $2) \
             RETURNING id, choice_text, poll_id AS poll",
        )
        .bind(poll_id)
        .bind(choice_text)
        .fetch_one()
        .await?)
}

/// The choices of poll `poll` or (`None`) of every poll by id, each with its votes, in two
/// queries.
pub(super) async fn of_polls(db: &mut Db, poll: Option<i64>) -> Result<Vec<Choice>, sqlx::Error> {
    let mut choices: Vec<Choice> = match poll {
        Some(id) => {
            db.query(
                "SELECT id, choice_text, poll_id AS poll FROM choices \
                 WHERE poll_id = $1 ORDER BY id",
            )
            .bind(id)
            .fetch_all()
            .await?
        }
        None => {
            db.query("SELECT id, choice_text, poll_id AS poll FROM choices ORDER BY id")
                .fetch_all()
                .await?
        }
    };
    let mut votes = group_by(votes::of_polls(db, poll).await?, |vote| vote.choice);
    for choice in &mut choices {
        choice.votes = votes.remove(&choice.id).unwrap_or_default();
    }
    Ok(choices)
}
