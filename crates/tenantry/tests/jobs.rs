//! Background jobs: enqueued with their request's commit and never without it, run in their
//! tenant's context in every mode, retried then dead, kept once by an idempotency key, fair
//! between tenants under a backlog with a cap held across workers, and waiting, going or
//! following as their tenant is suspended, deleted or moved.

use crate::support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::post;
use support::{call, slug};
use tenantry::jobs::schedule::{self, Schedule};
use tenantry::jobs::{
    Enqueue, Job, JobContext, JobError, JobRecord, JobState, Jobs, Worker, WorkerOptions,
};
use tenantry::lifecycle::MoveTarget;
use tenantry::{
    IsolationMode, Migrations, NewTenant, Tenancy, TenancyLayer, TenantDb, TenantStatus,
    TenantUpdate,
};
use tower::Layer;

/// What the test jobs saw, shared with the test.
#[derive(Clone, Default)]
struct Probe {
    /// Runs of each job id, by tenant.
    runs: Arc<Mutex<HashMap<(String, i64), u32>>>,
    /// Slow jobs finished, by tenant.
    finished: Arc<Mutex<HashMap<String, usize>>>,
    /// Slow jobs running now, and the most ever at once.
    current: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    /// The first tenant's finished slow jobs when the marker ran.
    at_marker: Arc<Mutex<Option<usize>>>,
}

impl Probe {
    fn ran(&self, cx: &JobContext<Probe>) -> u32 {
        let mut runs = self.runs.lock().unwrap();
        let count = runs
            .entry((cx.tenant().slug.to_string(), cx.id()))
            .or_default();
        *count += 1;
        *count
    }

    fn finished(&self, tenant: &str) -> usize {
        self.finished
            .lock()
            .unwrap()
            .get(tenant)
            .copied()
            .unwrap_or(0)
    }
}

/// Writes a note saying how many notes its tenant had.
#[derive(serde::Serialize, serde::Deserialize)]
struct Note {
    body: String,
}

impl Job for Note {
    const KIND: &'static str = "note";
    type State = Probe;

    async fn run(self, cx: &mut JobContext<Probe>) -> Result<(), JobError> {
        cx.state().clone().ran(cx);
        let seen: i64 = cx
            .query("SELECT count(*) FROM notes")
            .fetch_scalar()
            .await?;
        cx.query("INSERT INTO notes (body) VALUES ($1)")
            .bind(format!("{} saw {seen}", self.body))
            .execute()
            .await?;
        Ok(())
    }
}

/// Fails its first `fails` runs (a permanent failure if `permanent`), writing a note each
/// time that the failure must roll back.
#[derive(serde::Serialize, serde::Deserialize)]
struct Flaky {
    fails: u32,
    permanent: bool,
}

impl Job for Flaky {
    const KIND: &'static str = "flaky";
    type State = Probe;

    async fn run(self, cx: &mut JobContext<Probe>) -> Result<(), JobError> {
        let run = cx.state().clone().ran(cx);
        cx.query("INSERT INTO notes (body) VALUES ($1)")
            .bind(format!("flaky run {run}"))
            .execute()
            .await?;
        match (run <= self.fails, self.permanent) {
            (false, _) => Ok(()),
            (true, false) => Err(JobError::new(format!("flaky run {run}"))),
            (true, true) => Err(JobError::permanent("never")),
        }
    }
}

/// Panics.
#[derive(serde::Serialize, serde::Deserialize)]
struct Panics;

impl Job for Panics {
    const KIND: &'static str = "panics";
    type State = Probe;

    async fn run(self, _: &mut JobContext<Probe>) -> Result<(), JobError> {
        panic!("a job's bug")
    }
}

/// Takes `ms`, counting how many run at once.
#[derive(serde::Serialize, serde::Deserialize)]
struct Slow {
    ms: u64,
}

impl Job for Slow {
    const KIND: &'static str = "slow";
    type State = Probe;

    async fn run(self, cx: &mut JobContext<Probe>) -> Result<(), JobError> {
        let probe = cx.state().clone();
        let now = probe.current.fetch_add(1, Ordering::SeqCst) + 1;
        probe.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(self.ms)).await;
        probe.current.fetch_sub(1, Ordering::SeqCst);
        let tenant = cx.tenant().slug.to_string();
        *probe.finished.lock().unwrap().entry(tenant).or_default() += 1;
        Ok(())
    }
}

/// Records how far the first tenant's backlog had gone.
#[derive(serde::Serialize, serde::Deserialize)]
struct Marker {
    backlog_of: String,
}

impl Job for Marker {
    const KIND: &'static str = "marker";
    type State = Probe;

    async fn run(self, cx: &mut JobContext<Probe>) -> Result<(), JobError> {
        let probe = cx.state().clone();
        *probe.at_marker.lock().unwrap() = Some(probe.finished(&self.backlog_of));
        Ok(())
    }
}

fn jobs(probe: &Probe) -> Jobs<Probe> {
    Jobs::new(probe.clone())
        .register::<Note>()
        .register::<Flaky>()
        .register::<Panics>()
        .register::<Slow>()
        .register::<Marker>()
}

fn quick() -> WorkerOptions {
    WorkerOptions {
        poll: Duration::from_millis(100),
        backoff: Duration::from_millis(50),
        ..WorkerOptions::default()
    }
}

/// Waits up to 30 s for `done`, failing with `what`.
async fn until<F: AsyncFnMut() -> bool>(what: &str, mut done: F) {
    for _ in 0..300 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn jobs_of(tenancy: &Tenancy, tenant: &str) -> Vec<JobRecord> {
    let mut tx = tenancy.begin(&slug(tenant)).await.unwrap();
    let jobs = tenantry::jobs::list(&mut tx, None, 100_000).await.unwrap();
    tx.commit().await.unwrap();
    jobs
}

/// Enqueues a note job with the request's note; `?fail` answers 400, rolling both back.
async fn add(
    mut db: TenantDb,
    Query(query): Query<HashMap<String, String>>,
) -> Result<StatusCode, tenantry::TenancyRejection> {
    let body = query.get("body").cloned().unwrap_or_default();
    db.query("INSERT INTO notes (body) VALUES ($1)")
        .bind(&body)
        .execute()
        .await?;
    tenantry::jobs::enqueue(&mut db, &Note { body }).await?;
    Ok(match query.contains_key("fail") {
        true => StatusCode::BAD_REQUEST,
        false => StatusCode::CREATED,
    })
}

fn app(tenancy: &Tenancy) -> Router {
    let routes = Router::new().route("/notes", post(add));
    Router::new().fallback_service(TenancyLayer::new(tenancy.clone()).layer(routes))
}

fn postgres_jobs() -> Migrations {
    Migrations::new(
        sqlx::migrate::Migrator::DEFAULT,
        sqlx::migrate!("./tests/migrations/jobs"),
    )
    .unwrap()
}

/// A catalog on a new database whose tenants (and shared-mode schema) have the jobs tables.
async fn postgres() -> (support::Setup, Tenancy) {
    let s = support::setup(16).await;
    tenantry::migrate_shared(&s.pool, &postgres_jobs(), &tenantry::AppRole::default())
        .await
        .unwrap();
    let tenancy = s.upgraded(postgres_jobs()).await;
    (s, tenancy)
}

fn sqlite_jobs() -> Migrations {
    Migrations::new(
        sqlx::migrate::Migrator::DEFAULT,
        sqlx::migrate::Migrator::DEFAULT,
    )
    .and_then(|m| m.with_sqlite(sqlx::migrate!("./tests/migrations/jobs-sqlite")))
    .unwrap()
}

/// Two tenants each enqueue through a request; a refused request leaves no job; each job
/// runs once, seeing only its own tenant's notes.
async fn commit_and_run_in_context(tenancy: &Tenancy, isolation: IsolationMode) {
    for (name, notes) in [("thor", 3), ("odin", 1)] {
        tenancy
            .create_tenant(NewTenant::new(slug(name), isolation))
            .await
            .unwrap();
        for n in 1..notes {
            support::add_note(tenancy, name, &format!("{name} {n}")).await;
        }
    }
    let app = app(tenancy);
    let (status, _) = call(&app, "POST", "thor.app.test", "/notes?body=refused&fail").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for name in ["thor", "odin"] {
        let (status, _) = call(
            &app,
            "POST",
            &format!("{name}.app.test"),
            &format!("/notes?body={name}-job"),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let probe = Probe::default();
    let worker = Worker::start(tenancy.clone(), jobs(&probe), quick());
    for name in ["thor", "odin"] {
        until(&format!("{name}'s job"), async || {
            jobs_of(tenancy, name)
                .await
                .iter()
                .all(|j| j.state == JobState::Done)
        })
        .await;
        let jobs = jobs_of(tenancy, name).await;
        assert_eq!(jobs.len(), 1, "{name}: the refused request left no job");
    }
    worker.stop().await;
    // Each job counted its own tenant's notes only: thor has two more than odin.
    for name in ["thor", "odin"] {
        let notes = support::note_bodies(tenancy, name).await;
        assert_eq!(
            notes.last(),
            Some(&format!("{name}-job saw {}", notes.len() - 1))
        );
        assert!(!notes.contains(&"refused".to_owned()), "{notes:?}");
    }
    assert!(probe.runs.lock().unwrap().values().all(|&runs| runs == 1));
}

macro_rules! each_mode {
    ($($name:ident: $isolation:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            let (_s, tenancy) = postgres().await;
            commit_and_run_in_context(&tenancy, $isolation).await;
        }
    )*};
}

each_mode! {
    jobs_commit_with_their_request_and_run_in_schema_tenants: IsolationMode::Schema;
    jobs_commit_with_their_request_and_run_in_shared_tenants: IsolationMode::Shared;
    jobs_commit_with_their_request_and_run_in_database_tenants: IsolationMode::Database;
}

async fn sqlite() -> (tempfile::TempDir, Tenancy) {
    let dir = tempfile::tempdir().unwrap();
    let tenancy = Tenancy::open_sqlite_with(
        dir.path(),
        support::identification(),
        sqlite_jobs(),
        Default::default(),
    )
    .await
    .unwrap();
    (dir, tenancy)
}

#[tokio::test]
async fn jobs_commit_with_their_request_and_run_in_sqlite_tenants() {
    let (_dir, tenancy) = sqlite().await;
    commit_and_run_in_context(&tenancy, IsolationMode::Database).await;
}

/// Retries with backoff, dead after the last attempt with the reason, a permanent failure
/// and a panic dead or retried as they should be, the failed runs' writes rolled back; an
/// operator's retry and cancel; one job per idempotency key.
async fn failures_and_operators(tenancy: &Tenancy) {
    tenancy
        .create_tenant(NewTenant::new(slug("thor"), tenancy.default_isolation()))
        .await
        .unwrap();
    let thor = slug("thor");
    let recovers = tenancy
        .enqueue(
            &thor,
            Enqueue::new(&Flaky {
                fails: 2,
                permanent: false,
            })
            .attempts(3),
        )
        .await
        .unwrap()
        .unwrap();
    let dies = tenancy
        .enqueue(
            &thor,
            Enqueue::new(&Flaky {
                fails: 2,
                permanent: false,
            })
            .attempts(2),
        )
        .await
        .unwrap()
        .unwrap();
    let permanent = tenancy
        .enqueue(
            &thor,
            Enqueue::new(&Flaky {
                fails: 1,
                permanent: true,
            }),
        )
        .await
        .unwrap()
        .unwrap();
    let panics = tenancy
        .enqueue(&thor, Enqueue::new(&Panics).attempts(1))
        .await
        .unwrap()
        .unwrap();
    let keyed = Note {
        body: "keyed".into(),
    };
    let first = tenancy
        .enqueue(&thor, Enqueue::new(&keyed).key("once"))
        .await
        .unwrap();
    let second = tenancy
        .enqueue(&thor, Enqueue::new(&keyed).key("once"))
        .await
        .unwrap();
    assert!(first.is_some());
    assert_eq!(second, None, "a second enqueue with the key is a no-op");
    let later = tenancy
        .enqueue(&thor, Enqueue::new(&keyed).after(Duration::from_secs(3600)))
        .await
        .unwrap()
        .unwrap();

    let probe = Probe::default();
    let worker = Worker::start(tenancy.clone(), jobs(&probe), quick());
    let state = async |id: i64| {
        let jobs = jobs_of(tenancy, "thor").await;
        jobs.into_iter().find(|j| j.id == id).unwrap()
    };
    until("the failures to settle", async || {
        state(recovers).await.state == JobState::Done
            && state(dies).await.state == JobState::Dead
            && state(permanent).await.state == JobState::Dead
            && state(panics).await.state == JobState::Dead
    })
    .await;
    let died = state(dies).await;
    assert_eq!(
        (died.attempts, died.last_error.as_deref()),
        (2, Some("flaky run 2"))
    );
    assert_eq!(state(recovers).await.attempts, 3);
    assert_eq!(
        state(permanent).await.attempts,
        1,
        "a permanent failure is not retried"
    );
    assert_eq!(
        state(panics).await.last_error.as_deref(),
        Some("the job panicked")
    );
    let notes = support::note_bodies(tenancy, "thor").await;
    assert_eq!(
        notes.iter().filter(|n| n.starts_with("flaky")).count(),
        1,
        "only the run that succeeded wrote: {notes:?}"
    );
    assert_eq!(notes.iter().filter(|n| n.starts_with("keyed")).count(), 1);

    let mut tx = tenancy.begin(&thor).await.unwrap();
    let retried = tenantry::jobs::retry(&mut tx, dies).await.unwrap();
    assert_eq!((retried.state, retried.attempts), (JobState::Queued, 0));
    let cancelled = tenantry::jobs::cancel(&mut tx, later).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    let refused = tenantry::jobs::cancel(&mut tx, recovers).await.unwrap_err();
    assert_eq!(
        refused.to_string(),
        format!("job {recovers} is done; only a queued or dead job can be cancelled")
    );
    assert!(matches!(
        tenantry::jobs::retry(&mut tx, 999_999).await,
        Err(tenantry::Error::JobNotFound { id: 999_999, .. })
    ));
    tx.commit().await.unwrap();
    until("the retried job", async || {
        state(dies).await.state == JobState::Done
    })
    .await;
    worker.stop().await;
    assert_eq!(state(later).await.state, JobState::Cancelled);
}

#[tokio::test]
async fn failures_retry_then_die_and_operators_retry_and_cancel() {
    let (_s, tenancy) = postgres().await;
    failures_and_operators(&tenancy).await;
}

#[tokio::test]
async fn failures_retry_then_die_and_operators_retry_and_cancel_on_sqlite() {
    let (_dir, tenancy) = sqlite().await;
    failures_and_operators(&tenancy).await;
}

/// One tenant with 10,000 queued jobs: another tenant's job runs while only a few of them
/// finish, and no more than `per_tenant` of the backlog run at once across two workers.
#[tokio::test]
async fn a_backlog_does_not_hold_back_another_tenant_and_the_cap_holds_across_workers() {
    let (_s, tenancy) = postgres().await;
    for name in ["big", "small"] {
        tenancy
            .create_tenant(NewTenant::new(slug(name), IsolationMode::Schema))
            .await
            .unwrap();
    }
    let mut tx = tenancy.begin(&slug("big")).await.unwrap();
    for _ in 0..10_000 {
        Enqueue::new(&Slow { ms: 50 }).send(&mut tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    let probe = Probe::default();
    let options = WorkerOptions {
        concurrency: 4,
        per_tenant: 2,
        ..quick()
    };
    let one = Worker::start(tenancy.clone(), jobs(&probe), options.clone());
    let two = Worker::start(tenancy.clone(), jobs(&probe), options);
    until("the backlog to start", async || probe.finished("big") >= 10).await;
    let before = probe.finished("big");
    tenancy
        .enqueue(
            &slug("small"),
            Enqueue::new(&Marker {
                backlog_of: "big".into(),
            }),
        )
        .await
        .unwrap();
    until("the other tenant's job", async || {
        probe.at_marker.lock().unwrap().is_some()
    })
    .await;
    let at_marker = probe.at_marker.lock().unwrap().unwrap();
    drop((one, two));
    assert!(
        at_marker - before <= 8,
        "the other tenant's job waited for {} of the backlog's jobs",
        at_marker - before
    );
    assert_eq!(
        probe.most.load(Ordering::SeqCst),
        2,
        "the per-tenant cap across both workers"
    );
}

/// A suspended tenant's jobs wait and run once it is resumed; a deleted tenant's go with it
/// and leave no hint; jobs queued and running while their tenant moves all finish where it
/// went, each one's writes there exactly once.
#[tokio::test]
async fn jobs_wait_for_suspended_tenants_go_with_deleted_ones_and_follow_moves() {
    let (s, tenancy) = postgres().await;
    for name in ["sleepy", "gone", "mover"] {
        tenancy
            .create_tenant(NewTenant::new(slug(name), IsolationMode::Schema))
            .await
            .unwrap();
    }
    let note = |body: &str| Note { body: body.into() };
    tenancy
        .enqueue(&slug("sleepy"), Enqueue::new(&note("waited")))
        .await
        .unwrap();
    tenancy
        .enqueue(&slug("gone"), Enqueue::new(&note("never")))
        .await
        .unwrap();
    let status = |status| TenantUpdate {
        status: Some(status),
        ..TenantUpdate::default()
    };
    tenancy
        .update_tenant(&slug("sleepy"), status(TenantStatus::Suspended))
        .await
        .unwrap();
    tenancy.delete_tenant(&slug("gone")).await.unwrap();
    let mut tx = tenancy.begin(&slug("mover")).await.unwrap();
    for n in 0..20 {
        Enqueue::new(&note(&format!("moved {n}")))
            .send(&mut tx)
            .await
            .unwrap();
        Enqueue::new(&Slow { ms: 20 }).send(&mut tx).await.unwrap();
    }
    let marker = Marker {
        backlog_of: String::new(),
    };
    let weekly = Schedule::new("weekly", "0 9 * * mon", &marker);
    let weekly = schedule::set(&mut tx, weekly).await.unwrap();
    let weekly_at = weekly.next_at;
    tx.commit().await.unwrap();

    let probe = Probe::default();
    let worker = Worker::start(tenancy.clone(), jobs(&probe), quick());
    until("some of the mover's jobs", async || {
        probe.finished("mover") >= 2
    })
    .await;
    tenancy
        .move_tenant(
            &slug("mover"),
            MoveTarget {
                isolation: IsolationMode::Database,
                server: None,
            },
        )
        .await
        .unwrap();
    until("the mover's jobs, where it went", async || {
        jobs_of(&tenancy, "mover")
            .await
            .iter()
            .all(|j| j.state == JobState::Done)
    })
    .await;
    let notes = support::note_bodies(&tenancy, "mover").await;
    for n in 0..20 {
        let prefix = format!("moved {n} saw");
        assert_eq!(
            notes.iter().filter(|b| b.starts_with(&prefix)).count(),
            1,
            "{prefix}: {notes:?}"
        );
    }
    // At least once: a slow job cut short by the move ran again where the tenant went.
    assert!(probe.finished("mover") >= 20);
    let mut tx = tenancy.begin(&slug("mover")).await.unwrap();
    assert_eq!(
        schedule::list(&mut tx).await.unwrap(),
        [weekly],
        "the schedule moved too"
    );
    tx.commit().await.unwrap();

    assert_eq!(
        jobs_of(&tenancy, "sleepy").await[0].state,
        JobState::Queued,
        "suspended: waits"
    );
    tenancy
        .update_tenant(&slug("sleepy"), status(TenantStatus::Active))
        .await
        .unwrap();
    until("the resumed tenant's job", async || {
        jobs_of(&tenancy, "sleepy").await[0].state == JobState::Done
    })
    .await;
    // The deleted tenant's hint went with it; the others are settled: only the mover's
    // schedule is left, due at its next firing.
    let mover = tenancy
        .catalog()
        .by_slug(&slug("mover"))
        .await
        .unwrap()
        .unwrap()
        .id;
    until("the hints to settle", async || {
        let hints: Vec<(uuid::Uuid, i64)> =
            sqlx::query_as("SELECT tenant_id, due_at FROM tenantry.job_due")
                .fetch_all(&s.pool)
                .await
                .unwrap();
        hints == [(mover, weekly_at)]
    })
    .await;
    worker.stop().await;
}

/// In shared mode a job row without a tenant cannot exist: the table refuses it.
#[tokio::test]
async fn a_job_without_a_tenant_is_refused() {
    let (s, tenancy) = postgres().await;
    tenancy
        .create_tenant(NewTenant::new(slug("thor"), IsolationMode::Shared))
        .await
        .unwrap();
    let refused = sqlx::query(
        "INSERT INTO tenantry_shared.tenantry_jobs (kind, payload, max_attempts, run_at, created_at) \
         VALUES ('note', '{}', 1, 0, 0)",
    )
    .execute(&s.pool)
    .await;
    assert!(refused.is_err(), "a job with no tenant was stored");
}

/// A schedule fires in its tenant's time zone, shifted by the tenant's offset; bad patterns,
/// names and zones are refused with the reason.
#[tokio::test]
async fn schedules_fire_in_the_tenants_time_zone_shifted_by_its_offset() {
    let (_s, tenancy) = postgres().await;
    let thor = slug("thor");
    tenancy
        .create_tenant(NewTenant::new(thor.clone(), IsolationMode::Schema))
        .await
        .unwrap();
    let zone = |name: &str| TenantUpdate {
        settings: Some(serde_json::json!({ "time_zone": name })),
        ..TenantUpdate::default()
    };
    let refused = tenancy
        .update_tenant(&thor, zone("Mars/Base"))
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("'Mars/Base' is not a time zone"),
        "{refused}"
    );
    // Tokyo has no daylight saving: 09:00 there is always 00:00 UTC.
    tenancy
        .update_tenant(&thor, zone("Asia/Tokyo"))
        .await
        .unwrap();
    let mut tx = tenancy.begin(&thor).await.unwrap();
    let job = Note {
        body: "daily".into(),
    };
    let spread = Duration::from_secs(300);
    let set = schedule::set(
        &mut tx,
        Schedule::new("daily", "0 9 * * *", &job).spread(spread),
    )
    .await
    .unwrap();
    let offset = schedule::offset(tx.tenant().id, "daily", spread);
    assert_eq!(set.offset_ms, offset);
    let day = 86_400_000;
    let after = chrono::Utc::now().timestamp_millis() - offset;
    assert_eq!(set.next_at, (after / day + 1) * day + offset);
    for (name, cron, message) in [
        ("daily", "61 * * * *", "'61 * * * *' is not a cron pattern"),
        ("daily", "0 0 9 * * *", "is not a cron pattern"),
        ("no spaces", "* * * * *", "is not 1 to 64 letters"),
    ] {
        let refused = schedule::set(&mut tx, Schedule::new(name, cron, &job))
            .await
            .unwrap_err();
        assert!(refused.to_string().contains(message), "{refused}");
    }
    assert_eq!(schedule::list(&mut tx).await.unwrap(), [set]);
    tx.commit().await.unwrap();
}

/// A schedule whose firings were missed while no worker ran enqueues one job, not one per
/// missed firing, and moves on to its next firing.
#[tokio::test]
async fn a_missed_firing_runs_once_when_workers_return() {
    let (_s, tenancy) = postgres().await;
    let thor = slug("thor");
    tenancy
        .create_tenant(NewTenant::new(thor.clone(), IsolationMode::Shared))
        .await
        .unwrap();
    let mut tx = tenancy.begin(&thor).await.unwrap();
    let job = Note {
        body: "minutely".into(),
    };
    schedule::set(
        &mut tx,
        Schedule::new("minutely", "* * * * *", &job).spread(Duration::ZERO),
    )
    .await
    .unwrap();
    // Ten missed firings.
    tx.query("UPDATE tenantry_schedules SET next_at = next_at - 600000")
        .execute()
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let probe = Probe::default();
    let worker = Worker::start(tenancy.clone(), jobs(&probe), quick());
    until("the missed firing's job", async || {
        jobs_of(&tenancy, "thor")
            .await
            .iter()
            .any(|j| j.state == JobState::Done)
    })
    .await;
    worker.stop().await;
    let jobs = jobs_of(&tenancy, "thor").await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert!(
        jobs[0]
            .idempotency_key
            .as_deref()
            .unwrap()
            .starts_with("schedule:minutely:")
    );
    let mut tx = tenancy.begin(&thor).await.unwrap();
    let next = schedule::list(&mut tx).await.unwrap()[0].next_at;
    tx.commit().await.unwrap();
    assert!(
        next > chrono::Utc::now().timestamp_millis(),
        "moved past now"
    );
}

/// 10,000 tenants' offsets for one schedule cover the spread evenly: no second of five
/// minutes gets more than a small multiple of its share.
#[test]
fn ten_thousand_tenants_offsets_spread_their_firings() {
    let spread = Duration::from_secs(300);
    let mut per_second = vec![0u32; 300];
    for _ in 0..10_000 {
        let offset = schedule::offset(uuid::Uuid::new_v4(), "digest", spread);
        assert!((0..300_000).contains(&offset));
        per_second[usize::try_from(offset / 1000).unwrap()] += 1;
    }
    let most = per_second.iter().max().unwrap();
    assert!(
        *most < 80,
        "{most} tenants in one second (33 is the even share)"
    );
    assert!(per_second.iter().all(|&n| n > 0));
}
