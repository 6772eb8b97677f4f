//! The background jobs of polls: what each does, and the registry workers run them from.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry::jobs::schedule::{self, Schedule};
use tenantry::jobs::{Enqueue, Job, JobContext, JobError, Jobs};
use tenantry::{Error, TenantTransaction};

use crate::domain::polls::{self, ClosingTime};

/// Every job type polls has.
pub fn registry() -> Jobs<()> {
    Jobs::new(())
        .register::<ClosePoll>()
        .register::<ExportResults>()
        .register::<PruneExports>()
}

/// How many exports a tenant keeps: [`PruneExports`] deletes older ones.
pub const EXPORTS_KEPT: usize = 20;

/// When [`PruneExports`] runs: every night at 03:00 in the tenant's time zone.
pub const PRUNE_AT: &str = "0 3 * * *";

/// Where a tenant's exports are, in its files.
pub const EXPORTS: &str = "exports/";

/// Writes a poll's results as CSV (question, choice, votes) to the tenant's files, under
/// [`EXPORTS`], named after the poll and the job: a second run of the job (after its worker
/// died) replaces its file instead of adding another.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportResults {
    /// The poll.
    pub poll: i64,
}

impl Job for ExportResults {
    const KIND: &'static str = "export-results";
    type State = ();

    async fn run(self, cx: &mut JobContext<()>) -> Result<(), JobError> {
        let rows = polls::results(cx, self.poll).await?;
        let Some((question, choices)) = rows else {
            return Err(JobError::permanent(format!(
                "poll {} no longer exists",
                self.poll
            )));
        };
        let mut csv = csv::Writer::from_writer(Vec::new());
        csv.write_record(["question", "choice", "votes"])?;
        if choices.is_empty() {
            csv.write_record([question.as_str(), "", "0"])?;
        }
        for (choice, votes) in choices {
            csv.write_record([question.as_str(), choice.as_str(), &votes.to_string()])?;
        }
        let bytes = csv.into_inner().map_err(|e| JobError::new(e.to_string()))?;
        let name = format!("{EXPORTS}poll-{}-job-{}.csv", self.poll, cx.id());
        cx.files()?.put(&name, bytes).await?;
        Ok(())
    }
}

/// Deletes all but the newest [`EXPORTS_KEPT`] exports: a tenant's schedule, set with its
/// first export.
#[derive(Debug, Serialize, Deserialize)]
pub struct PruneExports;

impl Job for PruneExports {
    const KIND: &'static str = "prune-exports";
    type State = ();

    async fn run(self, cx: &mut JobContext<()>) -> Result<(), JobError> {
        let files = cx.files()?;
        let mut exports = files.list(EXPORTS).await?;
        exports.sort_by_key(|file| std::cmp::Reverse(file.modified));
        for old in exports.iter().skip(EXPORTS_KEPT) {
            files.delete(&old.name).await?;
        }
        Ok(())
    }
}

/// Enqueues the export of poll `poll`'s results, and makes sure the tenant's old exports
/// are pruned every night.
pub(crate) async fn export(tx: &mut TenantTransaction, poll: i64) -> Result<(), Error> {
    Enqueue::new(&ExportResults { poll }).send(tx).await?;
    schedule::set(
        tx,
        Schedule::new(PruneExports::KIND, PRUNE_AT, &PruneExports),
    )
    .await?;
    Ok(())
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
