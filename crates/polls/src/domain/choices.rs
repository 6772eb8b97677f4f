//! A poll's choices, with their votes.

use serde::Serialize;
use sqlx::FromRow;
use tenantry::Db;

use super::rules::PollsRules;
use super::text::required_text;
use super::votes::{self, Vote};
use super::{Refused, group_by};

const CHOICE_TEXT_MAX: usize = 100;

/// A choice's text: present, not blank, at most 100 characters; trimmed.
pub(crate) struct ChoiceText(String);

impl ChoiceText {
    pub(crate) fn parse(text: Option<String>) -> Result<Self, String> {
        required_text(text, CHOICE_TEXT_MAX).map(Self)
    }
}

/// A choice as the API shows it.
#[derive(Serialize, FromRow)]
pub(crate) struct Choice {
    id: i64,
    #[sqlx(skip)]
    votes: Vec<Vote>,
    choice_text: String,
    /// The poll's id.
    pub(crate) poll: i64,
}

/// Adds a choice to poll `poll_id` (which must exist), within the tenant's limit on choices.
pub(crate) async fn add(
    db: &mut Db,
    poll_id: i64,
    text: ChoiceText,
    rules: &PollsRules,
) -> Result<Choice, Refused> {
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
            return Err(Refused::Field(
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
        .bind(text.0)
        .fetch_one()
        .await?)
}

/// The choices of poll `poll` or (`None`) of every poll by id, each with its votes, in two
/// queries.
pub(crate) async fn of_polls(db: &mut Db, poll: Option<i64>) -> Result<Vec<Choice>, sqlx::Error> {
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
