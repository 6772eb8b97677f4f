//! The SQL of a tenant's queue (`tenantry_jobs`), run in a transaction in its context, so
//! that on PostgreSQL the search path or Row-Level Security keeps it to its own jobs.

use crate::db::{Backend, Db};
use crate::error::Error;

/// A job a worker has taken: its lease runs to `locked_until`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Claimed {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub attempts: i32,
    pub max_attempts: i32,
}

/// What a worker takes: the oldest job ready at `$3`, or one whose worker's lease ran out.
macro_rules! claim_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE tenantry_jobs SET state = 'running', attempts = attempts + 1, \
             locked_until = $1, locked_by = $2 \
             WHERE id = (SELECT id FROM tenantry_jobs \
             WHERE (state = 'queued' AND run_at <= $3) OR (state = 'running' AND locked_until <= $3) \
             ORDER BY run_at, id LIMIT 1",
            $lock,
            ") AND ((state = 'queued' AND run_at <= $3) \
             OR (state = 'running' AND locked_until <= $3)) \
             RETURNING id, kind, payload, attempts, max_attempts"
        )
    };
}

/// Adds a job; its id, or `None` if the tenant has a job with its idempotency key.
pub(crate) async fn insert(
    db: &mut Db,
    kind: &str,
    payload: &str,
    attempts: u32,
    run_at: i64,
    key: Option<&str>,
) -> Result<Option<i64>, Error> {
    Ok(db
        .query(
            "INSERT INTO tenantry_jobs (kind, payload, max_attempts, run_at, \
             idempotency_key, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(kind.to_owned())
        .bind(payload.to_owned())
        .bind(i32::try_from(attempts).unwrap_or(i32::MAX))
        .bind(run_at)
        .bind(key.map(str::to_owned))
        .bind(super::now_ms())
        .fetch_optional_scalar()
        .await?)
}

/// Makes the rest of the transaction the only one of its kind for the tenant: on
/// PostgreSQL a lock per tenant, so that the count and the take of [`claim`], and a
/// schedule's firing, are one step across workers; a SQLite transaction already holds the
/// file's write lock.
pub(crate) async fn lock(db: &mut Db, tenant: uuid::Uuid) -> Result<(), Error> {
    if db.backend() == Backend::Postgres {
        db.query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("tenantry_jobs:{tenant}"))
            .execute()
            .await?;
    }
    Ok(())
}

/// Takes the tenant's next ready job for `worker` until `lease_end`, unless `cap` of its jobs
/// are running under a live lease already. Run under [`lock`].
pub(crate) async fn claim(
    db: &mut Db,
    worker: &str,
    now: i64,
    lease_end: i64,
    cap: usize,
) -> Result<Option<Claimed>, Error> {
    let running: i64 = db
        .query("SELECT count(*) FROM tenantry_jobs WHERE state = 'running' AND locked_until > $1")
        .bind(now)
        .fetch_scalar()
        .await?;
    if usize::try_from(running).unwrap_or(usize::MAX) >= cap {
        return Ok(None);
    }
    let sql = match db.backend() {
        Backend::Postgres => claim_sql!(" FOR UPDATE SKIP LOCKED"),
        Backend::Sqlite => claim_sql!(""),
    };
    Ok(db
        .query(sql)
        .bind(lease_end)
        .bind(worker)
        .bind(now)
        .fetch_optional()
        .await?)
}

/// Marks the job done, if `worker` still holds it; whether it did.
pub(crate) async fn complete(db: &mut Db, id: i64, worker: &str, now: i64) -> Result<bool, Error> {
    let done = db
        .query(
            "UPDATE tenantry_jobs SET state = 'done', finished_at = $3, locked_until = NULL, \
             locked_by = NULL, last_error = NULL \
             WHERE id = $1 AND locked_by = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(worker)
        .bind(now)
        .execute()
        .await?;
    Ok(done > 0)
}

/// Records a failed attempt of a job `worker` holds: queued again from `retry_at`, or dead.
pub(crate) async fn fail(
    db: &mut Db,
    id: i64,
    worker: &str,
    error: &str,
    retry_at: Option<i64>,
    now: i64,
) -> Result<(), Error> {
    db.query(
        "UPDATE tenantry_jobs SET state = CASE WHEN $4 IS NULL THEN 'dead' ELSE 'queued' END, \
         run_at = coalesce($4, run_at), finished_at = CASE WHEN $4 IS NULL THEN $5 END, \
         last_error = $3, locked_until = NULL, locked_by = NULL \
         WHERE id = $1 AND locked_by = $2 AND state = 'running'",
    )
    .bind(id)
    .bind(worker)
    .bind(error)
    .bind(retry_at)
    .bind(now)
    .execute()
    .await?;
    Ok(())
}

/// Gives a job `worker` holds back to the queue, its attempt not counted: it was taken
/// where the tenant no longer is, or its worker is stopping.
pub(crate) async fn release(db: &mut Db, id: i64, worker: &str) -> Result<(), Error> {
    db.query(
        "UPDATE tenantry_jobs SET state = 'queued', attempts = attempts - 1, \
         locked_until = NULL, locked_by = NULL \
         WHERE id = $1 AND locked_by = $2 AND state = 'running'",
    )
    .bind(id)
    .bind(worker)
    .execute()
    .await?;
    Ok(())
}

/// When the tenant next has work: its earliest queued job, running job's lease end or
/// schedule firing; `None` if it has none.
pub(crate) async fn next_due(db: &mut Db) -> Result<Option<i64>, Error> {
    Ok(db
        .query(
            "SELECT min(at) FROM (\
             SELECT min(CASE WHEN state = 'queued' THEN run_at ELSE locked_until END) AS at \
             FROM tenantry_jobs WHERE state IN ('queued', 'running') \
             UNION ALL SELECT min(next_at) AS at FROM tenantry_schedules) due",
        )
        .fetch_scalar()
        .await?)
}
