//! The dedicated-tenant benchmark: `cargo bench -p polls --bench dedicated`.
//!
//! On a fresh database, in one run so the figures compare as ratios, it measures:
//! - tenant provisioning p50/p90 over 30 tenants each of the schema, database and dedicated
//!   modes;
//! - GET /polls/ (10 polls x 4 choices) requests/s through a real `polls serve` process
//!   for a schema, a database and a dedicated tenant; a dedicated tenant straight to its
//!   own server; 8 dedicated tenants in rotation; and the same through real nginx
//!   configured by `deploy nginx`;
//! - the resident memory of each dedicated tenant's server, started and after the load;
//! - the cold start of a dedicated tenant: its first request when its server does not run,
//!   and its first request after an idle stop.
//!
//! It prints a Markdown report for BENCHMARKS.md.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BASE, ROUNDS, TenantToken, create, get, load, median, open_pool, resident_kib, seed};
use tenantry::testing::{TestDatabase, TestNginx};
use tenantry::{IsolationMode, Slug, Tenancy};

use polls::startup;

/// Dedicated tenants served at once in the rotation.
const DEDICATED: usize = 8;
const PROVISIONED: usize = 30;
const PER_TENANT: u32 = 4;

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
    let pool = open_pool(tenantry::connect_options(&url).unwrap()).await;
    tenantry::migrate_shared(&pool, &startup::migrations(), &tenantry::AppRole::default())
        .await
        .unwrap();
    let settings = common::settings(&url, 16, PER_TENANT);
    let tenancy = Tenancy::connect_with(
        pool.clone(),
        settings.identification().unwrap(),
        startup::migrations(),
        settings.options().unwrap(),
    )
    .await
    .unwrap();

    eprintln!("provisioning {PROVISIONED} tenants of each mode ...");
    let mut provisioning = Vec::new();
    for (label, mode) in [
        ("schema", IsolationMode::Schema),
        ("database", IsolationMode::Database),
        ("dedicated", IsolationMode::Dedicated),
    ] {
        let mut times = Vec::new();
        for i in 0..PROVISIONED {
            let slug = Slug::parse(&format!("new-{label}-{i}")).unwrap();
            let started = Instant::now();
            create(&tenancy, &slug, mode).await;
            times.push(started.elapsed());
            // Each dedicated server holds connections; keep the server's 100 for the load.
            if mode != IsolationMode::Schema {
                tenancy.delete_tenant(&slug).await.unwrap();
            }
        }
        times.sort();
        provisioning.push((label, times));
    }

    eprintln!("seeding a schema, a database and {DEDICATED} dedicated tenants ...");
    let seeded = |slug: &str, mode| {
        let tenancy = tenancy.clone();
        let slug = Slug::parse(slug).unwrap();
        async move {
            create(&tenancy, &slug, mode).await;
            let token = seed(&tenancy, &slug).await;
            (slug, token)
        }
    };
    let schema = vec![seeded("sc-0", IsolationMode::Schema).await];
    let database = vec![seeded("db-0", IsolationMode::Database).await];
    let mut dedicated = Vec::new();
    for i in 0..DEDICATED {
        dedicated.push(seeded(&format!("dd-{i}"), IsolationMode::Dedicated).await);
    }

    eprintln!("serving: polls serve with its dedicated servers started eagerly, then nginx ...");
    let (mut serve, addr) = serve_process(&url, &[("DEDICATED_EAGER", "true")]).await;
    for tenant in &dedicated {
        warm(addr, tenant).await;
    }
    let servers = tenancy.instances().await.unwrap();
    let pids: Vec<u32> = servers
        .iter()
        .filter_map(|s| s.pid)
        .map(|p| p as u32)
        .collect();
    assert_eq!(pids.len(), DEDICATED, "every dedicated server runs");
    let rss_started = median(pids.iter().map(|&p| resident_kib(p) as f64).collect());
    let direct: SocketAddr = {
        let id = tenancy
            .catalog()
            .by_slug(&dedicated[0].0)
            .await
            .unwrap()
            .unwrap()
            .id;
        let port = servers
            .iter()
            .find(|s| s.tenant_id == id)
            .unwrap()
            .port
            .unwrap();
        SocketAddr::from(([127, 0, 0, 1], port as u16))
    };
    let nginx_port = free_port();
    let config = tenantry::deploy::nginx(
        &tenancy,
        &tenantry::deploy::NginxOptions {
            listen: nginx_port,
            shared: addr.to_string(),
        },
    )
    .await
    .unwrap();
    let nginx = TestNginx::start(&config);
    nginx.listening(nginx_port).await;
    let nginx_addr = SocketAddr::from(([127, 0, 0, 1], nginx_port));

    let scenarios: [(&str, SocketAddr, &[TenantToken]); 8] = [
        ("schema tenant, through `polls serve`", addr, &schema),
        ("database tenant, through `polls serve`", addr, &database),
        (
            "dedicated tenant, through `polls serve` (the router)",
            addr,
            &dedicated[..1],
        ),
        (
            "dedicated tenant, straight to its own server",
            direct,
            &dedicated[..1],
        ),
        (
            "8 dedicated tenants in rotation, through the router",
            addr,
            &dedicated,
        ),
        (
            "schema tenant, through nginx and `polls serve`",
            nginx_addr,
            &schema,
        ),
        (
            "dedicated tenant, through nginx",
            nginx_addr,
            &dedicated[..1],
        ),
        (
            "8 dedicated tenants in rotation, through nginx",
            nginx_addr,
            &dedicated,
        ),
    ];
    eprintln!(
        "throughput: {ROUNDS} rounds x {} scenarios ...",
        scenarios.len()
    );
    let mut rates = vec![Vec::new(); scenarios.len()];
    for _ in 0..ROUNDS {
        for (rate, (_, addr, tenants)) in rates.iter_mut().zip(&scenarios) {
            rate.push(load(*addr, tenants).await);
        }
    }
    let medians: Vec<f64> = rates.into_iter().map(median).collect();
    let rss_loaded = median(pids.iter().map(|&p| resident_kib(p) as f64).collect());
    let serve_rss = resident_kib(serve.id());
    drop(nginx);
    serve.kill().unwrap();
    serve.wait().unwrap();

    eprintln!("cold starts: a server that does not run, then one stopped when idle ...");
    let (mut serve, addr) = serve_process(&url, &[("DEDICATED_IDLE", "1")]).await;
    let mut first = Vec::new();
    let mut after_idle = Vec::new();
    for tenant in &dedicated {
        first.push(timed(addr, tenant).await);
        let id = tenancy
            .catalog()
            .by_slug(&tenant.0)
            .await
            .unwrap()
            .unwrap()
            .id;
        let deadline = Instant::now() + Duration::from_secs(10);
        while tenancy
            .instances()
            .await
            .unwrap()
            .iter()
            .any(|s| s.tenant_id == id && s.pid.is_some())
        {
            assert!(
                Instant::now() < deadline,
                "{} was not stopped when idle",
                tenant.0
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        after_idle.push(timed(addr, tenant).await);
    }
    serve.kill().unwrap();
    serve.wait().unwrap();
    let database_size: i64 = sqlx::query_scalar(
        "SELECT pg_database_size(database_name) FROM tenantry.tenants WHERE slug = 'dd-0'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let base = medians[0];
    println!("| measure | value |");
    println!("|---|---|");
    for (label, times) in &provisioning {
        println!(
            "| provisioning, {label} tenant, p50 / p90 ({PROVISIONED} tenants) | {:.1} / {:.1} ms |",
            ms(times[PROVISIONED / 2]),
            ms(times[PROVISIONED * 9 / 10])
        );
    }
    for ((name, _, _), rate) in scenarios.iter().zip(&medians) {
        println!(
            "| GET /polls/, {name} | {rate:.0} req/s ({:.2}) |",
            rate / base
        );
    }
    println!(
        "| resident memory of a dedicated server (median of {DEDICATED}), started / after the load | {:.1} / {:.1} MiB |",
        rss_started / 1024.0,
        rss_loaded / 1024.0
    );
    println!(
        "| resident memory of `polls serve` (the router) after the load | {:.1} MiB |",
        serve_rss as f64 / 1024.0
    );
    first.sort();
    after_idle.sort();
    println!(
        "| cold start: first request to a server that does not run, p50 / max ({DEDICATED} tenants) | {:.0} / {:.0} ms |",
        ms(first[DEDICATED / 2]),
        ms(first[DEDICATED - 1])
    );
    println!(
        "| cold start: first request after an idle stop, p50 / max ({DEDICATED} tenants) | {:.0} / {:.0} ms |",
        ms(after_idle[DEDICATED / 2]),
        ms(after_idle[DEDICATED - 1])
    );
    println!(
        "| a dedicated tenant's database (10 polls x 4 choices), on disk | {:.1} MiB |",
        database_size as f64 / 1_048_576.0
    );
}

/// `polls serve` on the benchmark's database with `env`; returns once it answers.
async fn serve_process(url: &str, env: &[(&str, &str)]) -> (Child, SocketAddr) {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_polls"))
        .arg("serve")
        .env("DATABASE_URL", url)
        .env("BIND", addr.to_string())
        .env("BASE_DOMAIN", BASE)
        .env("POOL_SIZE", "16")
        .env("DATABASE_BUDGET", "16")
        .env("TENANT_POOL_SIZE", PER_TENANT.to_string())
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    for _ in 0..200 {
        let health = client
            .get(format!("http://{addr}/health"))
            .header("host", BASE)
            .send()
            .await;
        if health.is_ok_and(|r| r.status().is_success()) {
            return (child, addr);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    panic!("polls serve did not come up");
}

/// Waits until `tenant` answers at `addr`.
async fn warm(addr: SocketAddr, tenant: &TenantToken) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        let reply = get(&client, addr, tenant).send().await;
        if reply.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} did not answer", tenant.0);
}

/// How long one GET /polls/ of `tenant` takes.
async fn timed(addr: SocketAddr, tenant: &TenantToken) -> Duration {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let reply = get(&client, addr, tenant).send().await.unwrap();
    assert_eq!(reply.status(), 200, "{}", tenant.0);
    reply.bytes().await.unwrap();
    started.elapsed()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
