//! Polls, with their choices and votes nested.

use std::slice;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Serialize, Serializer};
use sqlx::FromRow;
use tenantry::Db;

use super::choices::{self, Choice};
use super::group_by;
use super::text::required_text;

const QUESTION_MAX: usize = 100;

/// A poll's question: present, not blank, at most 100 characters; trimmed.
pub(crate) struct Question(String);

impl Question {
    pub(crate) fn parse(question: Option<String>) -> Result<Self, String> {
        required_text(question, QUESTION_MAX).map(Self)
    }
}

/// A poll as the API shows it.
#[derive(Serialize, FromRow)]
pub(crate) struct Poll {
    pub(crate) id: i64,
    #[sqlx(skip)]
    choices: Vec<Choice>,
    question: String,
    #[serde(serialize_with = "utc_micros")]
    pub_date: DateTime<Utc>,
    created_by: i64,
}

/// Every poll, by id.
pub(crate) async fn all(db: &mut Db) -> Result<Vec<Poll>, sqlx::Error> {
    let mut polls = db
        .query("SELECT id, question, pub_date, created_by FROM polls ORDER BY id")
        .fetch_all()
        .await?;
    load_choices(db, &mut polls, None).await?;
    Ok(polls)
}

/// Poll `id`, if there is one.
pub(crate) async fn get(db: &mut Db, id: i64) -> Result<Option<Poll>, sqlx::Error> {
    let poll = db
        .query("SELECT id, question, pub_date, created_by FROM polls WHERE id = $1")
        .bind(id)
        .fetch_optional()
        .await?;
    with_choices(db, poll).await
}

/// A new poll by user `by`, published now.
pub(crate) async fn create(db: &mut Db, question: Question, by: i64) -> Result<Poll, sqlx::Error> {
    db.query(
        "INSERT INTO polls (question, created_by, pub_date) VALUES ($1, $2, $3) \
         RETURNING id, question, pub_date, created_by",
    )
    .bind(question.0)
    .bind(by)
    .bind(now())
    .fetch_one()
    .await
}

/// Sets the question of poll `id` (unless `None`) and stamps `pub_date`, as every save
/// does; `None` if there is no such poll.
pub(crate) async fn save(
    db: &mut Db,
    id: i64,
    question: Option<Question>,
) -> Result<Option<Poll>, sqlx::Error> {
    let poll = db
        .query(
            "UPDATE polls SET question = coalesce($2, question), pub_date = $3 WHERE id = $1 \
             RETURNING id, question, pub_date, created_by",
        )
        .bind(id)
        .bind(question.map(|q| q.0))
        .bind(now())
        .fetch_optional()
        .await?;
    with_choices(db, poll).await
}

/// Deletes poll `id` with its choices and votes; whether there was one.
pub(crate) async fn delete(db: &mut Db, id: i64) -> Result<bool, sqlx::Error> {
    let deleted = db
        .query("DELETE FROM polls WHERE id = $1")
        .bind(id)
        .execute()
        .await?;
    Ok(deleted > 0)
}

/// The id of the user who created poll `id`, if there is such a poll.
pub(crate) async fn creator(db: &mut Db, id: i64) -> Result<Option<i64>, sqlx::Error> {
    db.query("SELECT created_by FROM polls WHERE id = $1")
        .bind(id)
        .fetch_optional_scalar()
        .await
}

/// `poll` with its choices and their votes.
async fn with_choices(db: &mut Db, poll: Option<Poll>) -> Result<Option<Poll>, sqlx::Error> {
    let Some(mut poll) = poll else {
        return Ok(None);
    };
    let id = poll.id;
    load_choices(db, slice::from_mut(&mut poll), Some(id)).await?;
    Ok(Some(poll))
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

/// ISO 8601 in UTC with microseconds and a `Z`, like `2024-05-01T12:00:00.000000Z`.
fn utc_micros<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true))
}
