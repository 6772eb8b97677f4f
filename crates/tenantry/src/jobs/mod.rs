//! Background jobs and schedules, each kept in its tenant's own data and run in its
//! tenant's context.
//!
//! A job is enqueued in a tenant transaction ([`TenantDb`](crate::TenantDb), a
//! [`TenantTransaction`], another job's [`JobContext`]) and commits with it: a rolled-back
//! write leaves no job. Its row is in the tenant's `tenantry_jobs` table, so a job moves,
//! exports and is deleted with its tenant, and no API names a job without its tenant. A
//! [`Worker`] runs it in a transaction in the tenant's context, the same isolation as a
//! request's, and marks it done in that transaction: a job whose worker dies mid-way left
//! nothing behind and runs again once its lease ends (at least once, and its writes once).
//! Failures are retried with exponential backoff; after its last attempt a job is `dead`
//! until an operator retries it. An idempotency key makes a second enqueue of one job a no-op.
//!
//! Workers learn which tenants have work from the catalog's `job_due` table, which every
//! commit that enqueued a job updates, and take jobs tenant by tenant in turn, at most
//! [`WorkerOptions::per_tenant`] of one tenant's at once, so one tenant's backlog cannot hold
//! the others back. A suspended tenant's jobs wait; a deleted tenant's go with its data.
//!
//! The app creates the two tables in its tenant migrations. On PostgreSQL:
//!
//! ```sql
#![doc = include_str!("../../tests/migrations/jobs/0002_jobs.sql")]
//! ```
//!
//! and on SQLite:
//!
//! ```sql
#![doc = include_str!("../../tests/migrations/jobs-sqlite/0002_jobs.sql")]
//! ```

mod queue;
mod registry;
pub mod schedule;
mod source;
mod worker;

pub use registry::{JobContext, Jobs};
pub(crate) use source::{LocalDue, OneTenant, Source};
pub use worker::{Worker, WorkerOptions};

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::db::Db;
use crate::error::Error;
use crate::slug::Slug;
use crate::tenancy::Tenancy;
use crate::transaction::TenantTransaction;

/// How many times a job runs before it is dead, unless [`Enqueue::attempts`] says.
pub const DEFAULT_ATTEMPTS: u32 = 5;

/// The longest idempotency key.
const MAX_KEY: usize = 200;

/// A type of background job: its payload is the value, stored as JSON.
///
/// ```
/// use tenantry::jobs::{Job, JobContext, JobError};
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Note {
///     body: String,
/// }
///
/// impl Job for Note {
///     const KIND: &'static str = "note";
///     type State = ();
///
///     async fn run(self, cx: &mut JobContext<()>) -> Result<(), JobError> {
///         cx.query("INSERT INTO notes (body) VALUES ($1)").bind(self.body).execute().await?;
///         Ok(())
///     }
/// }
/// ```
pub trait Job: Serialize + DeserializeOwned + Send + 'static {
    /// The name stored with each job; it must not change while jobs of the type are queued.
    const KIND: &'static str;
    /// The app's state the job is given ([`Jobs::new`]).
    type State: Clone + Send + Sync + 'static;

    /// Does the job. Its writes through `cx` commit with its completion; an error rolls them
    /// back and counts a failed attempt.
    fn run(
        self,
        cx: &mut JobContext<Self::State>,
    ) -> impl Future<Output = Result<(), JobError>> + Send;
}

/// Why a job failed: retried later, or, if [`permanent`](Self::permanent), dead at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    message: String,
    permanent: bool,
}

impl JobError {
    /// A failure worth another attempt.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }

    /// A failure no retry can mend: the job is dead at once.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
        }
    }

    /// Whether no retry is worth it.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for JobError {
    fn from(error: E) -> Self {
        Self::new(error.to_string())
    }
}

/// A job to enqueue, with when it may run, its idempotency key and its attempts.
#[derive(Debug)]
#[must_use = "a job is enqueued by send"]
pub struct Enqueue<'j, J> {
    job: &'j J,
    run_at: Option<i64>,
    key: Option<String>,
    attempts: u32,
}

impl<'j, J: Job> Enqueue<'j, J> {
    /// `job`, to run as soon as a worker is free.
    pub fn new(job: &'j J) -> Self {
        Self {
            job,
            run_at: None,
            key: None,
            attempts: DEFAULT_ATTEMPTS,
        }
    }

    /// Not before `delay` from now.
    pub fn after(self, delay: Duration) -> Self {
        let delay = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        Self {
            run_at: Some(now_ms().saturating_add(delay)),
            ..self
        }
    }

    /// Not before `at`.
    pub fn at(self, at: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            run_at: Some(at.timestamp_millis()),
            ..self
        }
    }

    /// Enqueued once per tenant: a later enqueue with the same key does nothing.
    pub fn key(self, key: impl Into<String>) -> Self {
        Self {
            key: Some(key.into()),
            ..self
        }
    }

    /// Runs at most `attempts` times (at least once).
    pub fn attempts(self, attempts: u32) -> Self {
        Self {
            attempts: attempts.max(1),
            ..self
        }
    }

    /// Adds the job to `tx`'s tenant's queue, committed with `tx`; its id, or `None` if a job
    /// with its idempotency key exists.
    pub async fn send(self, tx: &mut TenantTransaction) -> Result<Option<i64>, Error> {
        let payload = serde_json::to_string(self.job).map_err(|e| Error::Invalid {
            field: "job",
            message: format!("a {} job cannot be stored as JSON: {e}", J::KIND),
        })?;
        if let Some(key) = &self.key
            && (key.is_empty() || key.len() > MAX_KEY)
        {
            return Err(Error::Invalid {
                field: "idempotency key",
                message: format!("must be 1 to {MAX_KEY} bytes"),
            });
        }
        let run_at = self.run_at.unwrap_or_else(now_ms);
        let key = self.key.as_deref();
        let id = queue::insert(tx, J::KIND, &payload, self.attempts, run_at, key).await?;
        if id.is_some() {
            tx.enqueued(run_at);
        }
        Ok(id)
    }
}

/// Enqueues `job` in `tx`'s tenant's queue, to run as soon as a worker is free.
pub async fn enqueue<J: Job>(tx: &mut TenantTransaction, job: &J) -> Result<Option<i64>, Error> {
    Enqueue::new(job).send(tx).await
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its time or a worker.
    Queued,
    /// Taken by a worker.
    Running,
    /// Finished.
    Done,
    /// Failed its last attempt.
    Dead,
    /// Cancelled by an operator.
    Cancelled,
}

impl JobState {
    /// Every state, in the order of a job's life.
    pub const ALL: [Self; 5] = [
        Self::Queued,
        Self::Running,
        Self::Done,
        Self::Dead,
        Self::Cancelled,
    ];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == name)
            .ok_or_else(|| Error::Invalid {
                field: "state",
                message: format!(
                    "'{name}' is not one of {}",
                    Self::ALL.map(Self::as_str).join(", ")
                ),
            })
    }
}

impl TryFrom<String> for JobState {
    type Error = Error;

    fn try_from(name: String) -> Result<Self, Error> {
        Self::parse(&name)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job as its tenant's queue holds it. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct JobRecord {
    /// Its id in the tenant's queue.
    pub id: i64,
    /// Its type ([`Job::KIND`]).
    pub kind: String,
    /// Where it is.
    #[sqlx(try_from = "String")]
    pub state: JobState,
    /// Attempts begun.
    pub attempts: i32,
    /// Attempts it may have.
    pub max_attempts: i32,
    /// When it may run (next).
    pub run_at: i64,
    /// Its idempotency key.
    pub idempotency_key: Option<String>,
    /// Why its last attempt failed.
    pub last_error: Option<String>,
    /// When it was enqueued.
    pub created_at: i64,
    /// When it finished, died or was cancelled.
    pub finished_at: Option<i64>,
}

/// Up to `limit` of the tenant's jobs, in `state` if given, the newest first.
pub async fn list(
    db: &mut Db,
    state: Option<JobState>,
    limit: u32,
) -> Result<Vec<JobRecord>, Error> {
    Ok(db
        .query(
            "SELECT id, kind, state, attempts, max_attempts, run_at, idempotency_key, \
             last_error, created_at, finished_at FROM tenantry_jobs \
             WHERE $1 IS NULL OR state = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(state.map(JobState::as_str))
        .bind(i64::from(limit))
        .fetch_all()
        .await?)
}

/// The tenant's job `id`.
async fn record(tx: &mut TenantTransaction, id: i64) -> Result<JobRecord, Error> {
    tx.query(
        "SELECT id, kind, state, attempts, max_attempts, run_at, idempotency_key, \
         last_error, created_at, finished_at FROM tenantry_jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional()
    .await?
    .ok_or_else(|| Error::JobNotFound {
        tenant: tx.tenant().slug.to_string(),
        id,
    })
}

/// Cancels the tenant's queued or dead job `id`. A running job cannot be: its worker holds it.
pub async fn cancel(tx: &mut TenantTransaction, id: i64) -> Result<JobRecord, Error> {
    let job = record(tx, id).await?;
    if !matches!(job.state, JobState::Queued | JobState::Dead) {
        return Err(Error::JobState {
            id,
            state: job.state.to_string(),
            remedy: "only a queued or dead job can be cancelled",
        });
    }
    tx.query(
        "UPDATE tenantry_jobs SET state = 'cancelled', finished_at = $2 \
         WHERE id = $1 AND state IN ('queued', 'dead')",
    )
    .bind(id)
    .bind(now_ms())
    .execute()
    .await?;
    record(tx, id).await
}

/// Queues the tenant's dead or cancelled job `id` again, now, with its attempts anew.
pub async fn retry(tx: &mut TenantTransaction, id: i64) -> Result<JobRecord, Error> {
    let job = record(tx, id).await?;
    if !matches!(job.state, JobState::Dead | JobState::Cancelled) {
        return Err(Error::JobState {
            id,
            state: job.state.to_string(),
            remedy: "only a dead or cancelled job can be retried",
        });
    }
    let now = now_ms();
    tx.query(
        "UPDATE tenantry_jobs SET state = 'queued', attempts = 0, run_at = $2, \
         finished_at = NULL WHERE id = $1 AND state IN ('dead', 'cancelled')",
    )
    .bind(id)
    .bind(now)
    .execute()
    .await?;
    tx.enqueued(now);
    record(tx, id).await
}

impl Tenancy {
    /// Enqueues `job` for the tenant `slug` in a transaction of its own.
    pub async fn enqueue<J: Job>(
        &self,
        slug: &Slug,
        job: Enqueue<'_, J>,
    ) -> Result<Option<i64>, Error> {
        let mut tx = self.begin(slug).await?;
        let id = job.send(&mut tx).await?;
        tx.commit().await?;
        Ok(id)
    }
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
