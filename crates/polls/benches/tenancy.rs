//! The tenancy benchmark: `cargo bench -p polls --bench tenancy`.
//!
//! On a fresh database it measures, in one run so the figures compare as ratios:
//! - GET /polls/ (10 polls x 4 choices) requests/s for one tenant, for 50 tenants in
//!   rotation, and for the same handlers with tenancy off (one fixed schema, plain BEGIN);
//! - PostgreSQL round trips per request, counted by a proxy between app and server;
//! - tenant provisioning p50/p90 over 100 tenants;
//! - `polls migrate` with nothing pending over 1,000 tenants, with and without `--verify`.
//!
//! It prints a Markdown report for BENCHMARKS.md.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tenantry::testing::TestDatabase;
use tenantry::{Error, NewTenant, SingleTenantLayer, Slug, Tenancy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

use polls::configuration::Settings;
use polls::routes::tenant_router;
use polls::startup;

const BASE: &str = "polls.bench";
const ROTATION: usize = 50;
const CLIENTS: usize = 32;
const ROUND: Duration = Duration::from_secs(5);
const ROUNDS: usize = 3;

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

async fn run() {
    let db = TestDatabase::create().await;
    let url = db.url();
    let direct = tenantry::connect_options(&url).unwrap();
    let pool = open_pool(direct.clone()).await;
    let migrations = startup::migrations();
    tenantry::migrate_shared(&pool, &migrations).await.unwrap();
    let settings = Settings {
        database_url: url.clone(),
        base_domain: BASE.into(),
        strategies: vec![tenantry::Strategy::Domain, tenantry::Strategy::Subdomain],
        platform_token: None,
        bind: String::new(),
        pool_size: 16,
        default_isolation: tenantry::IsolationMode::Schema,
        database_budget: 40,
        tenant_pool_size: 2,
    };
    let identification = settings.identification().unwrap();
    let tenancy = Tenancy::connect(pool.clone(), identification.clone(), migrations)
        .await
        .unwrap();

    eprintln!("seeding {ROTATION} tenants with 10 polls x 4 choices ...");
    let mut tokens = Vec::new();
    for i in 0..ROTATION {
        let slug = Slug::parse(&format!("tenant-{i}")).unwrap();
        create(&tenancy, &slug).await;
        tokens.push((slug.clone(), seed(&tenancy, &slug).await));
    }
    let thor = tenancy
        .catalog()
        .by_slug(&tokens[0].0)
        .await
        .unwrap()
        .unwrap();

    // Tenancy off: the same handlers over a pool fixed to the first tenant's schema.
    let fixed = PgConnectOptions::from_str(&url)
        .unwrap()
        .options([("search_path", thor.placement.schema.as_str())]);
    let baseline = |pool: PgPool| -> Router {
        let service = NormalizePathLayer::trim_trailing_slash()
            .layer(SingleTenantLayer::new(pool, (*thor).clone()).layer(tenant_router()));
        Router::new().fallback_service(service)
    };

    let one = &tokens[..1];
    let all = &tokens[..];
    let tenancy_addr = serve(startup::app(tenancy.clone(), None)).await;
    let baseline_addr = serve(baseline(open_pool(fixed.clone()).await)).await;

    eprintln!("throughput: {ROUNDS} rounds x 3 scenarios x {ROUND:?}, {CLIENTS} clients ...");
    let mut rates = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        rates[0].push(load(baseline_addr, one).await);
        rates[1].push(load(tenancy_addr, one).await);
        rates[2].push(load(tenancy_addr, all).await);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let [base, single, rotating] = rates.map(|mut v| median(&mut v));

    eprintln!("round trips ...");
    let proxy = Proxy::start(direct.get_host(), direct.get_port()).await;
    let via_proxy = |o: PgConnectOptions| o.port(proxy.port).ssl_mode(PgSslMode::Disable);
    let tenancy_proxied = Tenancy::connect(
        open_pool(via_proxy(direct.clone())).await,
        identification,
        startup::migrations(),
    )
    .await
    .unwrap();
    let rt_tenancy = round_trips(
        &proxy,
        serve(startup::app(tenancy_proxied, None)).await,
        all,
    )
    .await;
    let rt_baseline = round_trips(
        &proxy,
        serve(baseline(open_pool(via_proxy(fixed)).await)).await,
        one,
    )
    .await;

    eprintln!("provisioning 100 tenants ...");
    let mut created = Vec::new();
    for i in 0..100 {
        let started = Instant::now();
        create(&tenancy, &Slug::parse(&format!("new-{i}")).unwrap()).await;
        created.push(started.elapsed());
    }
    created.sort();

    eprintln!("creating tenants up to 1,000 for migrate ...");
    for i in 0..(1000 - ROTATION - 100) {
        create(&tenancy, &Slug::parse(&format!("more-{i}")).unwrap()).await;
    }
    let migrate = migrate_run(&url, &[]);
    let verify = migrate_run(&url, &["--verify"]);

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("| measure | value |");
    println!("|---|---|");
    println!("| GET /polls/, tenancy off (baseline) | {base:.0} req/s (1.00) |");
    println!(
        "| GET /polls/, 1 tenant | {single:.0} req/s ({:.2}) |",
        single / base
    );
    println!(
        "| GET /polls/, {ROTATION} tenants in rotation | {rotating:.0} req/s ({:.2}) |",
        rotating / base
    );
    println!("| PostgreSQL round trips per request, baseline | {rt_baseline:.2} |");
    println!("| PostgreSQL round trips per request, tenancy | {rt_tenancy:.2} |");
    println!(
        "| provisioning p50 / p90 / max (100 tenants) | {:.1} / {:.1} / {:.1} ms |",
        ms(created[49]),
        ms(created[89]),
        ms(created[99])
    );
    println!(
        "| `polls migrate`, nothing pending, 1,000 tenants | {:.0} ms |",
        ms(migrate)
    );
    println!(
        "| `polls migrate --verify`, 1,000 tenants | {:.0} ms |",
        ms(verify)
    );
}

async fn open_pool(options: PgConnectOptions) -> PgPool {
    startup::pool_options(16)
        .connect_with(options)
        .await
        .unwrap()
}

async fn create(tenancy: &Tenancy, slug: &Slug) {
    tenancy
        .create_tenant(NewTenant {
            slug: slug.clone(),
            name: None,
            domains: vec![],
            server: None,
            isolation: tenantry::IsolationMode::Schema,
        })
        .await
        .unwrap();
}

/// One user with a token, and 10 polls of 4 choices; returns the token.
async fn seed(tenancy: &Tenancy, slug: &Slug) -> String {
    let key = polls::auth::new_token_key();
    tenancy
        .in_tenant(slug, async |db| -> Result<(), Error> {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "INSERT INTO users (username, password_hash) VALUES ('bench', 'x');
                 INSERT INTO tokens (key, user_id) VALUES ('{key}', 1);
                 INSERT INTO polls (question, created_by, pub_date)
                     SELECT 'Question ' || i, 1, now() FROM generate_series(1, 10) i;
                 INSERT INTO choices (poll_id, choice_text)
                     SELECT p, 'Choice ' || c FROM generate_series(1, 10) p, generate_series(1, 4) c;"
            )))
            .execute(db)
            .await?;
            Ok(())
        })
        .await
        .unwrap();
    key
}

async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn get(
    client: &reqwest::Client,
    addr: SocketAddr,
    (slug, token): &(Slug, String),
) -> reqwest::RequestBuilder {
    client
        .get(format!("http://{addr}/polls/"))
        .header("host", format!("{slug}.{BASE}"))
        .header("authorization", format!("Token {token}"))
}

/// Requests/s of `CLIENTS` concurrent clients for `ROUND`, cycling through `tenants`.
async fn load(addr: SocketAddr, tenants: &[(Slug, String)]) -> f64 {
    let client = reqwest::Client::new();
    let tenants: Arc<[(Slug, String)]> = tenants.into();
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|w| {
            let (client, tenants, done) = (client.clone(), tenants.clone(), done.clone());
            tokio::spawn(async move {
                let mut i = w;
                while started.elapsed() < ROUND {
                    let response = get(&client, addr, &tenants[i % tenants.len()])
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200);
                    let body = response.bytes().await.unwrap();
                    assert!(body.starts_with(b"[{\"id\":1"), "unexpected body");
                    done.fetch_add(1, Ordering::Relaxed);
                    i += CLIENTS;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Average round trips per request over 200 sequential requests, after a warm-up.
async fn round_trips(proxy: &Proxy, addr: SocketAddr, tenants: &[(Slug, String)]) -> f64 {
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

fn migrate_run(url: &str, extra: &[&str]) -> Duration {
    let started = Instant::now();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_polls"))
        .arg("migrate")
        .args(extra)
        .env("DATABASE_URL", url)
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("1000 up to date"), "{stdout}");
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
