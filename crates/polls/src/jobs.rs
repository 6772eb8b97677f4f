//! The background jobs of polls: what each does, and the registry workers run them from.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry::jobs::{Enqueue, Job, JobContext, JobError, Jobs};
use tenantry::{Error, TenantTransaction};

use crate::domain::polls::{self, ClosingTime};

/// Every job type polls has.
pub fn registry() -> Jobs<()> {
    Jobs::new(()).register::<ClosePoll>()
}

/// Closes a poll at its closing time, unless the time was changed since.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClosePoll {
    /// The poll.
    pub poll: i64,
    /// The closing time it was enqueued for.
    pub at: DateTime<Utc>,
}

impl Job for ClosePoll {
    const KIND: &'static str = "close-poll";
    type State = ();

    async fn run(self, cx: &mut JobContext<()>) -> Result<(), JobError> {
        if polls::close(cx, self.poll, self.at).await? {
            cx.flush_cache();
        }
        Ok(())
    }
}

/// Enqueues the job that closes poll `poll` at `at`, once per poll and time.
pub(crate) async fn close_at(
    tx: &mut TenantTransaction,
    poll: i64,
    at: ClosingTime,
) -> Result<(), Error> {
    let job = ClosePoll { poll, at: at.at() };
    let key = format!("close-poll:{poll}:{}", at.at().timestamp_micros());
    Enqueue::new(&job).at(at.at()).key(key).send(tx).await?;
    Ok(())
}
