//! Votes: one per user and poll.

use serde::Serialize;
use sqlx::FromRow;
use tenantry::Db;

/// A vote as the API shows it.
#[derive(Serialize, FromRow)]
pub(crate) struct Vote {
    id: i64,
    /// The choice's id.
    pub(crate) choice: i64,
    poll: i64,
    voted_by: i64,
}

/// The votes in poll `poll` or (`None`) in every poll, by id.
pub(crate) async fn of_polls(db: &mut Db, poll: Option<i64>) -> Result<Vec<Vote>, sqlx::Error> {
    match poll {
        Some(id) => {
            db.query(
                "SELECT id, choice_id AS choice, poll_id AS poll, voted_by FROM votes \
                 WHERE poll_id = $1 ORDER BY id",
            )
            .bind(id)
            .fetch_all()
            .await
        }
        None => {
            db.query(
                "SELECT id, choice_id AS choice, poll_id AS poll, voted_by FROM votes ORDER BY id",
            )
            .fetch_all()
            .await
        }
    }
}
