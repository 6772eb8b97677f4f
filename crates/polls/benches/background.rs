//! Background work and the cache: `cargo bench -p polls --bench background`.
//!
//! On one catalog of 1,000 shared-mode tenants: jobs per second from enqueue to done with
//! every job in one tenant and spread over all 1,000; how long a tenant's job waits behind
//! another tenant's backlog of 10,000 (the fairness bound); how 10,000 tenants' firings of
//! one daily schedule spread over time; and `GET /polls/` with the cache (in process, and
//! Redis) against without it. Prints Markdown tables for BENCHMARKS.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use polls::startup;
use tenantry::cache::Cache;
use tenantry::jobs::schedule::{self, DEFAULT_SPREAD};
use tenantry::jobs::{Enqueue, Job, JobContext, JobError, Jobs, Worker, WorkerOptions};
use tenantry::testing::TestDatabase;
use tenantry::{Slug, Tenancy, TenancyOptions};
use tokio::sync::mpsc;

mod common;

use common::BASE;

const TENANTS: usize = 1_000;
const JOBS: usize = 10_000;
const BACKLOG: usize = 10_000;
const PROBES: usize = 20;

/// What the jobs report to the benchmark.
#[derive(Clone)]
struct Probe {
    done: Arc<AtomicUsize>,
    started: mpsc::UnboundedSender<(usize, Instant)>,
}

/// Does nothing but count: what a job costs the queue itself.
#[derive(serde::Serialize, serde::Deserialize)]
struct Count;

impl Job for Count {
    const KIND: &'static str = "count";
    type State = Probe;

    async fn run(self, cx: &mut JobContext<Probe>) -> Result<(), JobError> {
        cx.state().done.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Takes 20 ms: the backlog.
#[derive(serde::Serialize, serde::Deserialize)]
struct Slow;

impl Job for Slow {
    const KIND: &'static str = "slow";
    type State = Probe;

    async fn run(self, _: &mut JobContext<Probe>) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(())
    }
}

/// Says when it started.
#[derive(serde::Serialize, serde::Deserialize)]
struct Marker(usize);

impl Job for Marker {
    const KIND: &'static str = "marker";
    type State = Probe;

    async fn run(self, cx: &mut JobContext<Probe>) -> Result<(), JobError> {
        let _ = cx.state().started.send((self.0, Instant::now()));
        Ok(())
    }
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

fn slug(i: usize) -> Slug {
    Slug::parse(&format!("b{i}")).unwrap()
}

async fn run() {
    let db = TestDatabase::create().await;
    let settings = common::settings(&db.url(), 20, 2);
    let pool = startup::connect(&db.url(), 4, tenantry::Pooler::None)
        .await
        .unwrap();
    tenantry::migrate_shared(&pool, &startup::migrations(), &tenantry::AppRole::default())
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO tenantry.tenants (id, slug, name, schema_name, isolation, status, created_at)
             SELECT gen_random_uuid(), 'b' || i, 'Bench ' || i, 'tenantry_shared', 'shared',
                    'active', now()
             FROM generate_series(0, {TENANTS} - 1) i;
         INSERT INTO tenantry.domains (domain, tenant_id, is_primary)
             SELECT slug || '.{BASE}', id, true FROM tenantry.tenants;"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let tenancy = startup::open(&settings).await.unwrap();
    let (started, mut starts) = mpsc::unbounded_channel();
    let probe = Probe {
        done: Arc::default(),
        started,
    };
    let jobs = || {
        Jobs::new(probe.clone())
            .register::<Count>()
            .register::<Slow>()
            .register::<Marker>()
    };

    println!("| jobs ({JOBS}, no-op) | enqueue s | enqueue → all done s | jobs/s end to end |");
    println!("|---|---|---|---|");
    for tenants in [1, TENANTS] {
        probe.done.store(0, Ordering::Relaxed);
        let began = Instant::now();
        for t in 0..tenants {
            let mut tx = tenancy.begin(&slug(t)).await.unwrap();
            for _ in 0..JOBS / tenants {
                Enqueue::new(&Count).send(&mut tx).await.unwrap();
            }
            tx.commit().await.unwrap();
        }
        let enqueued = began.elapsed();
        let options = WorkerOptions {
            concurrency: 4,
            per_tenant: 4,
            ..WorkerOptions::default()
        };
        let worker = Worker::start(tenancy.clone(), jobs(), options);
        while probe.done.load(Ordering::Relaxed) < JOBS {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let all = began.elapsed();
        worker.stop().await;
        println!(
            "| in {tenants} tenant(s) | {:.2} | {:.2} | {:.0} |",
            enqueued.as_secs_f64(),
            all.as_secs_f64(),
            JOBS as f64 / all.as_secs_f64()
        );
    }

    // The fairness bound: b0 has a backlog of 20 ms jobs; each probe is another tenant's.
    let mut tx = tenancy.begin(&slug(0)).await.unwrap();
    for _ in 0..BACKLOG {
        Enqueue::new(&Slow).send(&mut tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    let options = WorkerOptions {
        concurrency: 4,
        per_tenant: 2,
        ..WorkerOptions::default()
    };
    let worker = Worker::start(tenancy.clone(), jobs(), options);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut waits = Vec::new();
    for i in 1..=PROBES {
        let sent = Instant::now();
        tenancy
            .enqueue(&slug(i), Enqueue::new(&Marker(i)))
            .await
            .unwrap();
        let (_, at) = starts.recv().await.unwrap();
        waits.push(at.duration_since(sent).as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(worker);
    waits.sort_by(f64::total_cmp);
    println!();
    println!(
        "| another tenant's job behind a backlog of {BACKLOG} (4 workers, 2 per tenant) | p50 ms | max ms |"
    );
    println!("|---|---|---|");
    println!(
        "| enqueue → start, {PROBES} probes | {:.1} | {:.1} |",
        waits[PROBES / 2],
        waits[PROBES - 1]
    );

    // 10,000 tenants' "every day at 09:00": their firings per second.
    let mut per_second = vec![0u32; DEFAULT_SPREAD.as_secs() as usize];
    for _ in 0..10_000 {
        let offset = schedule::offset(uuid::Uuid::new_v4(), "digest", DEFAULT_SPREAD);
        per_second[(offset / 1000) as usize] += 1;
    }
    let most = per_second.iter().max().unwrap();
    let least = per_second.iter().min().unwrap();
    println!();
    println!(
        "| 10,000 tenants, one daily schedule | firings in the busiest second | in the quietest | seconds spread over |"
    );
    println!("|---|---|---|---|");
    println!("| without a spread | 10000 | 10000 | 1 |");
    println!(
        "| spread {} s (the default) | {most} | {least} | {} |",
        DEFAULT_SPREAD.as_secs(),
        per_second.len()
    );

    // GET /polls/ with and without the cache, on one schema tenant of 10 polls.
    println!();
    println!(
        "| GET /polls/ (10 polls of 4 choices, {} clients) | req/s | × without |",
        common::CLIENTS
    );
    println!("|---|---|---|");
    let redis = std::env::var("TENANTRY_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let mut without = 0.0;
    for (i, (label, cache)) in [
        ("without a cache (every read a miss)", Cache::in_process(0)),
        ("in-process cache", Cache::in_process(64 << 20)),
        ("Redis cache", Cache::redis(&redis).unwrap()),
    ]
    .into_iter()
    .enumerate()
    {
        let options = TenancyOptions {
            cache,
            ..settings.options().unwrap()
        };
        let pool = startup::connect(&db.url(), 8, tenantry::Pooler::None)
            .await
            .unwrap();
        let identification = settings.identification().unwrap();
        let tenancy = Tenancy::connect_with(pool, identification, startup::migrations(), options)
            .await
            .unwrap();
        let name = Slug::parse(&format!("c{i}")).unwrap();
        common::create(&tenancy, &name, tenantry::IsolationMode::Schema).await;
        let token = common::seed(&tenancy, &name).await;
        let addr = common::serve(startup::app(tenancy.clone(), None)).await;
        let rate = common::load(addr, &[(name.clone(), token)]).await;
        if without == 0.0 {
            without = rate;
        }
        println!("| {label} | {rate:.0} | {:.2} |", rate / without);
    }
}
