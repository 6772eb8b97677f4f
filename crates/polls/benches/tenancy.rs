//! The tenancy benchmark: `cargo bench -p polls --bench tenancy`.
//!
//! On a fresh database it measures, in one run so the figures compare as ratios:
//! - GET /polls/ (10 polls x 4 choices) requests/s with tenancy off (one fixed schema, plain
//!   BEGIN), and for shared-, schema- and database-mode tenants, one and in rotation; and
//!   for shared and schema tenants through a PgBouncer in transaction mode;
//! - PostgreSQL round trips per request, counted by a proxy between app and server;
//! - tenant provisioning p50/p90 over 100 tenants, in each mode;
//! - `polls migrate` with nothing pending over the schema tenants, with and without `--verify`;
//! - the connections open while 1,000 tenants of each mode are served;
//! - the memory (resident set) of a `polls serve` process before and after it has served
//!   one request to each of 1,000 tenants of one mode, per mode.
//!
//! It prints a Markdown report for BENCHMARKS.md.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use futures::StreamExt;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tenantry::http::SingleTenantLayer;
use tenantry::testing::{TestDatabase, TestPgBouncer};
use tenantry::{IsolationMode, Slug, Tenancy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

use polls::startup;
use polls::startup::tenant_router;

mod common;

use common::{
    BASE, CLIENTS, ROUND, ROUNDS, TenantToken, create, get, load, open_pool, resident_kib, seed,
    serve,
};

const ROTATION: usize = 50;
/// Connections of the database-mode tenants. The server allows 100 in all, and the `polls
/// migrate` runs below need room of their own.
const BUDGET: u32 = 32;
const PER_TENANT: u32 = 4;

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

async fn run() {
    let mut db = TestDatabase::create().await;
    let url = db.url();
    let direct = tenantry::connect_options(&url).unwrap();
    let pool = open_pool(direct.clone()).await;
    let migrations = startup::migrations();
    tenantry::migrate_shared(&pool, &migrations, &tenantry::AppRole::default())
        .await
        .unwrap();
    let settings = common::settings(&url, BUDGET, PER_TENANT);
    let identification = settings.identification().unwrap();
    let tenancy = Tenancy::connect_with(
        pool.clone(),
        identification.clone(),
        migrations,
        settings.options().unwrap(),
    )
    .await
    .unwrap();

    eprintln!(
        "seeding {ROTATION} shared, schema and database tenants each, 10 polls x 4 choices ..."
    );
    let mut shared_tenants = Vec::new();
    let mut schema_tenants = Vec::new();
    let mut database_tenants = Vec::new();
    for i in 0..ROTATION {
        for (prefix, mode, list) in [
            ("shtenant", IsolationMode::Shared, &mut shared_tenants),
            ("tenant", IsolationMode::Schema, &mut schema_tenants),
            ("dbtenant", IsolationMode::Database, &mut database_tenants),
        ] {
            let slug = Slug::parse(&format!("{prefix}-{i}")).unwrap();
            create(&tenancy, &slug, mode).await;
            list.push((slug.clone(), seed(&tenancy, &slug).await));
        }
    }
    let thor = tenancy
        .catalog()
        .by_slug(&schema_tenants[0].0)
        .await
        .unwrap()
        .unwrap();

    // Tenancy off: the same handlers over a pool fixed to the first tenant's schema.
    let fixed = PgConnectOptions::from_str(&url)
        .unwrap()
        .options([("search_path", thor.placement.schema.as_str())]);
    let baseline = |pool: PgPool| -> Router {
        let service = NormalizePathLayer::trim_trailing_slash().layer(
            SingleTenantLayer::new(pool, (*thor).clone()).layer(tenant_router(
                polls::limits::AuthLimits::new(Default::default()),
                tenantry::dns::DnsResolver::system(),
            )),
        );
        Router::new().fallback_service(service)
    };

    // The same catalog through a PgBouncer in transaction mode, with 6 server connections
    // per database and role (the server's 100 connections also hold the direct pools).
    let bouncer = TestPgBouncer::start(6);
    db.reached_through(bouncer.port());
    tenantry::role::prepare_roles(&pool, &tenantry::AppRole::default())
        .await
        .unwrap();
    let pooled = Tenancy::connect_with(
        open_pool(
            tenantry::Pooler::Transaction
                .connect_options(&bouncer.url(db.name()))
                .unwrap(),
        )
        .await,
        identification.clone(),
        startup::migrations(),
        tenantry::TenancyOptions {
            pooler: tenantry::Pooler::Transaction,
            ..settings.options().unwrap()
        },
    )
    .await
    .unwrap();
    let pooled_addr = serve(startup::app(pooled, None)).await;

    let tenancy_addr = serve(startup::app(tenancy.clone(), None)).await;
    let baseline_pool = open_pool(fixed.clone()).await;
    let baseline_addr = serve(baseline(baseline_pool.clone())).await;
    let fitting = (BUDGET / PER_TENANT) as usize;
    let scenarios: [(&str, SocketAddr, &[TenantToken]); 10] = [
        (
            "tenancy off (baseline)",
            baseline_addr,
            &schema_tenants[..1],
        ),
        ("shared mode, 1 tenant", tenancy_addr, &shared_tenants[..1]),
        (
            "shared mode, 50 tenants in rotation",
            tenancy_addr,
            &shared_tenants[..],
        ),
        ("schema mode, 1 tenant", tenancy_addr, &schema_tenants[..1]),
        (
            "schema mode, 50 tenants in rotation",
            tenancy_addr,
            &schema_tenants[..],
        ),
        (
            "database mode, 1 tenant",
            tenancy_addr,
            &database_tenants[..1],
        ),
        (
            "database mode, 8 tenants in rotation (pools stay open)",
            tenancy_addr,
            &database_tenants[..fitting],
        ),
        (
            "database mode, 50 tenants in rotation (pools close and open)",
            tenancy_addr,
            &database_tenants[..],
        ),
        (
            "shared mode, 50 tenants in rotation, through PgBouncer",
            pooled_addr,
            &shared_tenants[..],
        ),
        (
            "schema mode, 50 tenants in rotation, through PgBouncer",
            pooled_addr,
            &schema_tenants[..],
        ),
    ];
    eprintln!(
        "throughput: {ROUNDS} rounds x {} scenarios x {ROUND:?}, {CLIENTS} clients ...",
        scenarios.len()
    );
    let mut rates = vec![Vec::new(); scenarios.len()];
    for _ in 0..ROUNDS {
        for (rate, (_, addr, tenants)) in rates.iter_mut().zip(&scenarios) {
            rate.push(load(*addr, tenants).await);
        }
    }
    let medians: Vec<f64> = rates.into_iter().map(common::median).collect();

    eprintln!("round trips ...");
    let proxy = Proxy::start(direct.get_host(), direct.get_port()).await;
    let via_proxy = |o: PgConnectOptions| o.port(proxy.port).ssl_mode(PgSslMode::Disable);
    let proxied_pool = open_pool(via_proxy(direct.clone())).await;
    let tenancy_proxied =
        Tenancy::connect(proxied_pool.clone(), identification, startup::migrations())
            .await
            .unwrap();
    let rt_tenancy = round_trips(
        &proxy,
        serve(startup::app(tenancy_proxied, None)).await,
        &schema_tenants,
    )
    .await;
    let proxied_baseline = open_pool(via_proxy(fixed)).await;
    let rt_baseline = round_trips(
        &proxy,
        serve(baseline(proxied_baseline.clone())).await,
        &schema_tenants[..1],
    )
    .await;
    // Their servers stay up; their connections are not needed any more.
    for pool in [baseline_pool, proxied_pool, proxied_baseline] {
        pool.close().await;
    }

    eprintln!("provisioning 100 tenants in each mode ...");
    let data = tempfile::tempdir().unwrap();
    let sqlite = Tenancy::open_sqlite(
        data.path(),
        settings.identification().unwrap(),
        startup::migrations(),
        tenantry::DatabaseBudget::default(),
    )
    .await
    .unwrap();
    let mut provisioning = Vec::new();
    for (label, tenancy, mode) in [
        ("shared", &tenancy, IsolationMode::Shared),
        ("schema", &tenancy, IsolationMode::Schema),
        ("PostgreSQL database", &tenancy, IsolationMode::Database),
        ("SQLite database", &sqlite, IsolationMode::Database),
    ] {
        let mut times = Vec::new();
        for i in 0..100 {
            let started = Instant::now();
            let slug = Slug::parse(&format!("new-{}-{i}", provisioning.len())).unwrap();
            create(tenancy, &slug, mode).await;
            times.push(started.elapsed());
        }
        times.sort();
        provisioning.push((label, times));
    }

    eprintln!("creating schema tenants up to 1,000 for migrate ...");
    for i in 0..(1000 - ROTATION - 100) {
        create(
            &tenancy,
            &Slug::parse(&format!("more-{i}")).unwrap(),
            IsolationMode::Schema,
        )
        .await;
    }
    let migrate = migrate_run(&url, &[], 1000 + 2 * (ROTATION + 100));
    let verify = migrate_run(&url, &["--verify"], 1000 + 2 * (ROTATION + 100));

    eprintln!("creating database tenants up to 1,000, then one request to each of 2,000 ...");
    for i in 0..(1000 - ROTATION - 100) {
        let slug = Slug::parse(&format!("moredb-{i}")).unwrap();
        create(&tenancy, &slug, IsolationMode::Database).await;
    }
    let schema_peak = active(&tenancy, tenancy_addr, IsolationMode::Schema).await;
    let database_peak = active(&tenancy, tenancy_addr, IsolationMode::Database).await;

    eprintln!("creating shared tenants up to 1,000, then a server per mode serving 1,000 ...");
    for i in 0..(1000 - ROTATION - 100) {
        let slug = Slug::parse(&format!("moresh-{i}")).unwrap();
        create(&tenancy, &slug, IsolationMode::Shared).await;
    }
    let mut memory = Vec::new();
    for mode in [
        IsolationMode::Shared,
        IsolationMode::Schema,
        IsolationMode::Database,
    ] {
        memory.push((mode, server_memory(&tenancy, &url, mode).await));
    }

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let base = medians[0];
    println!("| measure | value |");
    println!("|---|---|");
    for ((name, _, _), rate) in scenarios.iter().zip(&medians) {
        println!(
            "| GET /polls/, {name} | {rate:.0} req/s ({:.2}) |",
            rate / base
        );
    }
    println!("| PostgreSQL round trips per request, baseline | {rt_baseline:.2} |");
    println!("| PostgreSQL round trips per request, schema mode | {rt_tenancy:.2} |");
    for (label, times) in &provisioning {
        println!(
            "| provisioning, {label} tenant, p50 / p90 / max (100 tenants) | {:.1} / {:.1} / {:.1} ms |",
            ms(times[49]),
            ms(times[89]),
            ms(times[99])
        );
    }
    println!(
        "| `polls migrate`, nothing pending, 1,300 tenants (1,000 schema, 150 database, 150 shared) | {:.0} ms |",
        ms(migrate)
    );
    println!(
        "| `polls migrate --verify`, 1,300 tenants (1,000 schema, 150 database, 150 shared) | {:.0} ms |",
        ms(verify)
    );
    println!(
        "| connections open (peak), 1,000 schema tenants served | {} (the app role's pool, max 16; {} busy replies retried) |",
        schema_peak.0, schema_peak.1
    );
    println!(
        "| connections open (peak), 1,000 database tenants served | {} (budget {BUDGET}; {} busy replies retried) |",
        database_peak.0, database_peak.1
    );
    for (mode, (idle, served)) in &memory {
        println!(
            "| `polls serve` resident memory, {} mode: started / after serving 1,000 tenants | {:.1} / {:.1} MiB |",
            mode.as_str(),
            *idle as f64 / 1024.0,
            *served as f64 / 1024.0
        );
    }
}

/// Starts `polls serve` on the benchmark's database, reads its resident memory (KiB), sends
/// one request to each tenant of `mode` and reads it again.
async fn server_memory(tenancy: &Tenancy, url: &str, mode: IsolationMode) -> (u64, u64) {
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_polls"))
        .arg("serve")
        .env("DATABASE_URL", url)
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("BASE_DOMAIN", BASE)
        .env("POOL_SIZE", "16")
        .env("DATABASE_BUDGET", BUDGET.to_string())
        .env("TENANT_POOL_SIZE", PER_TENANT.to_string())
        // The benchmark logs in to every tenant from one address: that is its workload, not
        // an attack to throttle.
        .env("AUTH_RATE_PER_ADDRESS", "1000000")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        let health = client
            .get(format!("http://{addr}/health"))
            .header("host", BASE)
            .send()
            .await;
        if health.is_ok_and(|r| r.status().is_success()) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "polls serve did not come up");
    let idle = resident_kib(server.id());
    let (served, _) = active_on(tenancy, addr, mode).await;
    let after = resident_kib(server.id());
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(served >= 1000, "{served} {mode:?} tenants served");
    (idle, after)
}

/// One request to each tenant of a mode, 32 at a time, while sampling the connections that
/// serve them; returns the peak and the 503s retried. Database tenants: the server's count
/// of connections to their databases. Schema tenants share the catalog database with the
/// benchmark's other pools, so there the size of the pool their requests use (the app
/// role's) is sampled.
async fn active(tenancy: &Tenancy, addr: SocketAddr, mode: IsolationMode) -> (i64, u64) {
    let some = tenancy.catalog().list().await.unwrap();
    let some = some.iter().find(|d| d.tenant.isolation == mode).unwrap();
    let requests_pool = tenancy.request_pool(&some.tenant.placement).await.unwrap();
    let databases: Vec<String> = sqlx::query_scalar(
        "SELECT database_name FROM tenantry.tenants WHERE database_name IS NOT NULL",
    )
    .fetch_all(tenancy.postgres().unwrap())
    .await
    .unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (pool, done) = (tenancy.postgres().unwrap().clone(), done.clone());
        let requests_pool = requests_pool.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while !done.load(Ordering::Acquire) {
                let open: i64 = match mode {
                    IsolationMode::Database => sqlx::query_scalar(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY($1)",
                    )
                    .bind(&databases)
                    .fetch_one(&pool)
                    .await
                    .unwrap(),
                    _ => i64::from(requests_pool.size()),
                };
                peak = peak.max(open);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            peak
        })
    };
    let (_, busy) = active_on(tenancy, addr, mode).await;
    done.store(true, Ordering::Release);
    (sampler.await.unwrap(), busy)
}

/// One request to each tenant of `mode` at the server on `addr`, 32 at a time, retried like a
/// client honouring `Retry-After` when it is refused as busy (503); returns how many tenants
/// were served and how many 503s were retried.
async fn active_on(tenancy: &Tenancy, addr: SocketAddr, mode: IsolationMode) -> (usize, u64) {
    let tenants: Vec<Slug> = tenancy
        .catalog()
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.tenant.isolation == mode)
        .map(|d| d.tenant.slug)
        .collect();
    let served = tenants.len();
    let busy = Arc::new(AtomicU64::new(0));
    let client = reqwest::Client::new();
    futures::stream::iter(tenants)
        .map(|slug| {
            let (client, busy) = (client.clone(), busy.clone());
            async move {
                // Login looks the user up in the tenant's database; with no such user it is a
                // quick 400.
                loop {
                    let login = client
                        .post(format!("http://{addr}/login/"))
                        .header("host", format!("{slug}.{BASE}"))
                        .json(&serde_json::json!({ "username": "nobody", "password": "x" }))
                        .send()
                        .await
                        .unwrap()
                        .status();
                    if login == 503 {
                        busy.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    assert_eq!(login, 400, "{slug}");
                    break;
                }
            }
        })
        .buffer_unordered(CLIENTS)
        .collect::<Vec<()>>()
        .await;
    (served, busy.load(Ordering::Relaxed))
}

/// Average round trips per request over 200 sequential requests, after a warm-up.
async fn round_trips(proxy: &Proxy, addr: SocketAddr, tenants: &[TenantToken]) -> f64 {
    let client = reqwest::Client::new();
    for i in 0..200 {
        get(&client, addr, &tenants[i % tenants.len()])
            .send()
            .await
            .unwrap();
    }
    let before = proxy.round_trips.load(Ordering::SeqCst);
    for i in 0..200 {
        let response = get(&client, addr, &tenants[i % tenants.len()])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    (proxy.round_trips.load(Ordering::SeqCst) - before) as f64 / 200.0
}

fn migrate_run(url: &str, extra: &[&str], tenants: usize) -> Duration {
    let started = Instant::now();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_polls"))
        .arg("migrate")
        .args(extra)
        .env("DATABASE_URL", url)
        .env("POOL_SIZE", "8")
        .env("DATABASE_BUDGET", "16")
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("{tenants} up to date")),
        "{stdout}"
    );
    elapsed
}

/// A TCP proxy in front of PostgreSQL that counts the client messages the server answers
/// with ReadyForQuery: simple queries (`Q`) and extended-protocol syncs (`S`). Each one is a
/// round trip the client waits for.
struct Proxy {
    port: u16,
    round_trips: Arc<AtomicU64>,
}

impl Proxy {
    async fn start(host: &str, port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap().port();
        let upstream = format!("{host}:{port}");
        let round_trips = Arc::new(AtomicU64::new(0));
        let counter = round_trips.clone();
        tokio::spawn(async move {
            loop {
                let (client, _) = listener.accept().await.unwrap();
                let server = TcpStream::connect(&upstream).await.unwrap();
                tokio::spawn(pipe(client, server, counter.clone()));
            }
        });
        Self {
            port: local,
            round_trips,
        }
    }
}

async fn pipe(client: TcpStream, server: TcpStream, counter: Arc<AtomicU64>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async move {
        let mut pending: Vec<u8> = Vec::new();
        let mut started = false;
        let mut chunk = [0u8; 16384];
        loop {
            let n = match client_read.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if server_write.write_all(&chunk[..n]).await.is_err() {
                return;
            }
            pending.extend_from_slice(&chunk[..n]);
            loop {
                // The startup message has no type byte; every later message has one.
                let header = if started { 5 } else { 4 };
                if pending.len() < header {
                    break;
                }
                let at = header - 4;
                let len = u32::from_be_bytes(pending[at..at + 4].try_into().unwrap()) as usize;
                let total = at + len;
                if pending.len() < total {
                    break;
                }
                if started && matches!(pending[0], b'Q' | b'S') {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                started = true;
                pending.drain(..total);
            }
        }
    };
    let downstream = tokio::io::copy(&mut server_read, &mut client_write);
    let _ = tokio::join!(upstream, downstream);
}
