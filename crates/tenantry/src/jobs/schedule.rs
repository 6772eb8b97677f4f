//! Recurring jobs per tenant: a schedule is a cron pattern (five fields, minute first) and a
//! job, kept in the tenant's `tenantry_schedules` table so that it moves and exports with
//! the tenant. It fires in the tenant's time zone ([`Branding::time_zone`]), shifted by an
//! offset within its spread that depends on the tenant and the schedule's name, so that many
//! tenants' "every day at 09:00" do not all run in the same second. A firing missed while no
//! worker ran enqueues one job when a worker returns, not one per missed firing.
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let data = tempfile::tempdir()?;
//! # let migrations = tenantry::Migrations::new(sqlx::migrate::Migrator::DEFAULT, sqlx::migrate::Migrator::DEFAULT)?
//! #     .with_sqlite(sqlx::migrate!("./tests/migrations/jobs-sqlite"))?;
//! # let identification = tenantry::Identification::new(tenantry::HostName::parse("app.localhost")?);
//! # let tenancy = tenantry::Tenancy::open_sqlite(data.path(), identification, migrations, Default::default()).await?;
//! # use tenantry::{IsolationMode, NewTenant, Slug};
//! # let thor = Slug::parse("thor")?;
//! # tenancy.create_tenant(NewTenant::new(thor.clone(), IsolationMode::Database)).await?;
//! use tenantry::jobs::schedule::{self, Schedule};
//! # #[derive(serde::Serialize, serde::Deserialize)] struct Digest;
//! # impl tenantry::jobs::Job for Digest {
//! #     const KIND: &'static str = "digest";
//! #     type State = ();
//! #     async fn run(self, _: &mut tenantry::jobs::JobContext<()>) -> Result<(), tenantry::jobs::JobError> { Ok(()) }
//! # }
//!
//! let mut tx = tenancy.begin(&thor).await?;
//! schedule::set(&mut tx, Schedule::new("digest", "0 9 * * mon-fri", &Digest)).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```
//!
//! [`Branding::time_zone`]: crate::settings::Branding::time_zone

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use sha2::{Digest, Sha256};

use super::{DEFAULT_ATTEMPTS, Job, now_ms, queue};
use crate::db::Db;
use crate::error::Error;
use crate::settings::{Branding, TimeZone as Zone};
use crate::transaction::TenantTransaction;

/// How widely the firings of one pattern are spread across tenants, unless
/// [`Schedule::spread`] says.
pub const DEFAULT_SPREAD: Duration = Duration::from_secs(300);

/// The longest schedule name.
const MAX_NAME: usize = 64;

/// A recurring job to set.
#[derive(Debug)]
#[must_use = "a schedule is stored by schedule::set"]
pub struct Schedule<'j, J> {
    name: &'j str,
    cron: &'j str,
    job: &'j J,
    spread: Duration,
}

impl<'j, J: Job> Schedule<'j, J> {
    /// `job` at the times `cron` names (`minute hour day-of-month month day-of-week`),
    /// under `name`, which a later [`set`] of the same name replaces.
    pub fn new(name: &'j str, cron: &'j str, job: &'j J) -> Self {
        Self {
            name,
            cron,
            job,
            spread: DEFAULT_SPREAD,
        }
    }

    /// Spreads the firings of tenants over `spread` after each time the pattern names.
    pub fn spread(self, spread: Duration) -> Self {
        Self { spread, ..self }
    }
}

/// A schedule as its tenant's table holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct ScheduleRecord {
    /// Its name.
    pub name: String,
    /// Its cron pattern.
    pub cron: String,
    /// The type of job it enqueues.
    pub kind: String,
    /// When it next fires (Unix milliseconds).
    pub next_at: i64,
    /// Its tenant's offset within its spread, in milliseconds.
    pub offset_ms: i64,
}

/// Stores `schedule` for `tx`'s tenant (replacing one of its name), due at its next firing.
pub async fn set<J: Job>(
    tx: &mut TenantTransaction,
    schedule: Schedule<'_, J>,
) -> Result<ScheduleRecord, Error> {
    check_name(schedule.name)?;
    let cron = parse(schedule.cron)?;
    let payload = serde_json::to_string(schedule.job).map_err(|e| Error::Invalid {
        field: "job",
        message: format!("a {} job cannot be stored as JSON: {e}", J::KIND),
    })?;
    let offset_ms = offset(tx.tenant().id, schedule.name, schedule.spread);
    let next_at = next_firing(&cron, zone(tx), offset_ms, now_ms())?;
    remove(tx, schedule.name).await?;
    tx.query(
        "INSERT INTO tenantry_schedules (name, cron, kind, payload, next_at, offset_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(schedule.name)
    .bind(schedule.cron.trim())
    .bind(J::KIND)
    .bind(payload)
    .bind(next_at)
    .bind(offset_ms)
    .execute()
    .await?;
    tx.enqueued(next_at);
    Ok(ScheduleRecord {
        name: schedule.name.to_owned(),
        cron: schedule.cron.trim().to_owned(),
        kind: J::KIND.to_owned(),
        next_at,
        offset_ms,
    })
}

/// Removes the tenant's schedule `name`; whether it had one.
pub async fn remove(db: &mut Db, name: &str) -> Result<bool, Error> {
    let removed = db
        .query("DELETE FROM tenantry_schedules WHERE name = $1")
        .bind(name)
        .execute()
        .await?;
    Ok(removed > 0)
}

/// The tenant's schedules, by name.
pub async fn list(db: &mut Db) -> Result<Vec<ScheduleRecord>, Error> {
    Ok(db
        .query("SELECT name, cron, kind, next_at, offset_ms FROM tenantry_schedules ORDER BY name")
        .fetch_all()
        .await?)
}

/// Enqueues a job for each of the tenant's schedules due at `now` (one per schedule, however
/// many firings were missed) and moves each to its next firing after `now`.
pub(crate) async fn fire_due(tx: &mut TenantTransaction, now: i64) -> Result<(), Error> {
    let due: Vec<(String, String, String, String, i64, i64)> = tx
        .query(
            "SELECT name, cron, kind, payload, next_at, offset_ms FROM tenantry_schedules \
             WHERE next_at <= $1",
        )
        .bind(now)
        .fetch_all()
        .await?;
    let zone = zone(tx);
    for (name, cron, kind, payload, next_at, offset_ms) in due {
        let key = format!("schedule:{name}:{next_at}");
        queue::insert(tx, &kind, &payload, DEFAULT_ATTEMPTS, now, Some(&key)).await?;
        tx.enqueued(now);
        let next = match parse(&cron).and_then(|cron| next_firing(&cron, zone, offset_ms, now)) {
            Ok(next) => next,
            Err(error) => {
                tracing::warn!(%error, schedule = %name, "a stored schedule has no next firing");
                i64::MAX
            }
        };
        tx.query("UPDATE tenantry_schedules SET next_at = $2 WHERE name = $1")
            .bind(name)
            .bind(next)
            .execute()
            .await?;
    }
    Ok(())
}

fn zone(tx: &TenantTransaction) -> Zone {
    tx.tenant()
        .settings
        .get("time_zone")
        .and_then(|zone| serde_json::from_value::<Zone>(zone.clone()).ok())
        .unwrap_or_else(|| Branding::default().time_zone)
}

fn check_name(name: &str) -> Result<(), Error> {
    let fine = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    match fine {
        true => Ok(()),
        false => Err(Error::Invalid {
            field: "schedule name",
            message: format!("'{name}' is not 1 to {MAX_NAME} letters, digits, '-', '_' or '.'"),
        }),
    }
}

/// `cron` as five fields, minute first (no seconds, no year).
pub fn parse(cron: &str) -> Result<Cron, Error> {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(cron)
        .map_err(|e| Error::Invalid {
            field: "cron",
            message: format!("'{cron}' is not a cron pattern (minute hour day month weekday): {e}"),
        })
}

/// The first firing after `now` (Unix milliseconds): the pattern's next time in `zone`
/// after `now - offset_ms`, plus the offset.
pub(crate) fn next_firing(cron: &Cron, zone: Zone, offset_ms: i64, now: i64) -> Result<i64, Error> {
    let after = Utc
        .timestamp_millis_opt(now.saturating_sub(offset_ms))
        .single()
        .unwrap_or_else(Utc::now)
        .with_timezone(&zone.tz());
    let next: DateTime<_> =
        cron.find_next_occurrence(&after, false)
            .map_err(|e| Error::Invalid {
                field: "cron",
                message: format!("'{}' never fires again: {e}", cron.as_str()),
            })?;
    Ok(next.timestamp_millis().saturating_add(offset_ms))
}

/// The tenant's offset for the schedule `name` within `spread`: the same on every run, and
/// spread evenly over tenants.
pub fn offset(tenant: uuid::Uuid, name: &str, spread: Duration) -> i64 {
    let spread = u64::try_from(spread.as_millis()).unwrap_or(u64::MAX);
    if spread == 0 {
        return 0;
    }
    let digest = Sha256::new()
        .chain_update(tenant.as_bytes())
        .chain_update(name.as_bytes())
        .finalize();
    let mut first = [0; 8];
    first.copy_from_slice(&digest[..8]);
    i64::try_from(u64::from_le_bytes(first) % spread).unwrap_or(0)
}
