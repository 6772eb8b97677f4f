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

/// A poll as the API shows it: `closes_at` and `closed` only for a poll with a closing
/// time, so that the book's API is unchanged for the others.
#[derive(Serialize, FromRow)]
pub(crate) struct Poll {
    pub(crate) id: i64,
    #[sqlx(skip)]
    choices: Vec<Choice>,
    question: String,
    #[serde(serialize_with = "utc_micros")]
    pub_date: DateTime<Utc>,
    created_by: i64,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "some_utc_micros"
    )]
    pub(crate) closes_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) closed: bool,
}

/// The columns a [`Poll`] is read from.
macro_rules! poll_columns {
    () => {
        "id, question, pub_date, created_by, closes_at, closed"
    };
}

/// Every poll, by id.
pub(crate) async fn all(db: &mut Db) -> Result<Vec<Poll>, sqlx::Error> {
    let mut polls = db
        .query(concat!(
            "SELECT ",
            poll_columns!(),
            " FROM polls ORDER BY id"
        ))
        .fetch_all()
        .await?;
    load_choices(db, &mut polls, None).await?;
    Ok(polls)
}

/// Poll `id`, if there is one.
pub(crate) async fn get(db: &mut Db, id: i64) -> Result<Option<Poll>, sqlx::Error> {
    let poll = db
        .query(concat!(
            "SELECT ",
            poll_columns!(),
            " FROM polls WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional()
        .await?;
    with_choices(db, poll).await
}

/// A new poll by user `by`, published now, closing at `closes_at` if given.
pub(crate) async fn create(
    db: &mut Db,
    question: Question,
    by: i64,
    closes_at: Option<ClosingTime>,
) -> Result<Poll, sqlx::Error> {
    db.query(concat!(
        "INSERT INTO polls (question, created_by, pub_date, closes_at) VALUES ($1, $2, $3, $4) \
         RETURNING ",
        poll_columns!()
    ))
    .bind(question.0)
    .bind(by)
    .bind(now())
    .bind(closes_at.map(|at| at.0))
    .fetch_one()
    .await
}

/// A change to a poll's closing time.
pub(crate) enum Closing {
    /// Left as it is.
    Keep,
    /// Removed: the poll is open again.
    Remove,
    /// Set (the poll is open until then).
    At(ClosingTime),
}

/// Sets the question of poll `id` (unless `None`) and its closing time as `closing` says,
/// and stamps `pub_date`, as every save does; `None` if there is no such poll.
pub(crate) async fn save(
    db: &mut Db,
    id: i64,
    question: Option<Question>,
    closing: Closing,
) -> Result<Option<Poll>, sqlx::Error> {
    let (change, at) = match closing {
        Closing::Keep => (false, None),
        Closing::Remove => (true, None),
        Closing::At(at) => (true, Some(at.0)),
    };
    let poll = db
        .query(concat!(
            "UPDATE polls SET question = coalesce($2, question), pub_date = $3, \
             closes_at = CASE WHEN $4 THEN $5 ELSE closes_at END, \
             closed = CASE WHEN $4 THEN false ELSE closed END WHERE id = $1 RETURNING ",
            poll_columns!()
        ))
        .bind(id)
        .bind(question.map(|q| q.0))
        .bind(now())
        .bind(change)
        .bind(at)
        .fetch_optional()
        .await?;
    with_choices(db, poll).await
}

/// When a poll closes: a time in the future.
#[derive(Clone, Copy)]
pub(crate) struct ClosingTime(DateTime<Utc>);

impl ClosingTime {
    /// `text` as an RFC 3339 time after now, to the microsecond.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let at = DateTime::parse_from_rfc3339(text.trim())
            .map_err(|_| {
                "Enter a date and time with its offset, like 2026-12-24T18:00:00Z.".to_owned()
            })?
            .with_timezone(&Utc)
            .trunc_subsecs(6);
        match at > Utc::now() {
            true => Ok(Self(at)),
            false => Err("The closing time must be in the future.".into()),
        }
    }

    /// The time.
    pub(crate) fn at(self) -> DateTime<Utc> {
        self.0
    }
}

/// Poll `id`'s question and each choice with its votes, in choice order; `None` if there
/// is no such poll.
pub(crate) async fn results(
    db: &mut Db,
    id: i64,
) -> Result<Option<(String, Vec<(String, i64)>)>, sqlx::Error> {
    let question: Option<String> = db
        .query("SELECT question FROM polls WHERE id = $1")
        .bind(id)
        .fetch_optional_scalar()
        .await?;
    let Some(question) = question else {
        return Ok(None);
    };
    let choices = db
        .query(
            "SELECT c.choice_text, (SELECT count(*) FROM votes v WHERE v.choice_id = c.id) \
             FROM choices c WHERE c.poll_id = $1 ORDER BY c.id",
        )
        .bind(id)
        .fetch_all()
        .await?;
    Ok(Some((question, choices)))
}

/// Whether poll `id` refuses votes (closed, or past its closing time); `None` if there is
/// no such poll.
pub(crate) async fn is_closed(db: &mut Db, id: i64) -> Result<Option<bool>, sqlx::Error> {
    let row: Option<(bool, Option<DateTime<Utc>>)> = db
        .query("SELECT closed, closes_at FROM polls WHERE id = $1")
        .bind(id)
        .fetch_optional()
        .await?;
    Ok(row.map(|(closed, closes_at)| closed || closes_at.is_some_and(|at| at <= Utc::now())))
}

/// Marks poll `id` closed if its closing time is still `at`; whether it did.
pub(crate) async fn close(db: &mut Db, id: i64, at: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let closed = db
        .query("UPDATE polls SET closed = true WHERE id = $1 AND closes_at = $2 AND NOT closed")
        .bind(id)
        .bind(at)
        .execute()
        .await?;
    Ok(closed > 0)
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

fn is_false(value: &bool) -> bool {
    !value
}

fn some_utc_micros<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => utc_micros(at, serializer),
        None => serializer.serialize_none(),
    }
}

/// ISO 8601 in UTC with microseconds and a `Z`, like `2024-05-01T12:00:00.000000Z`.
fn utc_micros<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true))
}
