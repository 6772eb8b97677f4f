//! Signup to a logged-in admin page: `cargo bench -p polls --bench signup`.
//!
//! For each isolation mode, without and with pending tenants: `SIGNUPS` signups one after
//! another, each timed from sending the form to receiving the new tenant's admin dashboard
//! (the form's POST, the one-time login link, the dashboard: three requests). The form's
//! page is fetched before the clock starts. Prints a Markdown table of p50 and p90 for
//! BENCHMARKS.md.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use polls::configuration::{Serving, Settings};
use polls::startup;
use tenantry::IsolationMode;
use tenantry::testing::TestDatabase;

mod common;

use common::BASE;

const SIGNUPS: usize = 30;

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

/// Where the tenants of a row live.
#[derive(Clone, Copy)]
enum Store {
    Postgres(IsolationMode),
    Sqlite,
}

async fn run() {
    let rows = [
        ("shared", Store::Postgres(IsolationMode::Shared)),
        ("schema", Store::Postgres(IsolationMode::Schema)),
        ("database", Store::Postgres(IsolationMode::Database)),
        ("dedicated", Store::Postgres(IsolationMode::Dedicated)),
        ("database (SQLite)", Store::Sqlite),
    ];
    println!("| mode | pending tenants | p50 ms | p90 ms |");
    println!("|---|---|---|---|");
    for (name, store) in rows {
        for pending in [0, SIGNUPS] {
            let times = measure(store, pending).await;
            println!(
                "| {name} | {} | {:.1} | {:.1} |",
                if pending == 0 { "none" } else { "enough" },
                percentile(&times, 50),
                percentile(&times, 90)
            );
        }
    }
}

/// The signup times, in ms, of one app of `store` with `pending` pending tenants.
async fn measure(store: Store, pending: usize) -> Vec<f64> {
    let (settings, _guard) = match store {
        Store::Postgres(isolation) => {
            let db = TestDatabase::create().await;
            let mut settings = common::settings(&db.url(), 40, 2);
            settings.default_isolation = Some(isolation);
            let pool = startup::connect(&db.url(), 4, tenantry::Pooler::None)
                .await
                .unwrap();
            tenantry::migrate_shared(&pool, &startup::migrations(), &tenantry::AppRole::default())
                .await
                .unwrap();
            pool.close().await;
            (settings, Box::new(db) as Box<dyn std::any::Any>)
        }
        Store::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let settings = Settings {
                database_url: None,
                data_dir: dir.path().join("data"),
                default_isolation: None,
                ..common::settings("", 40, 2)
            };
            (settings, Box::new(dir) as Box<dyn std::any::Any>)
        }
    };
    let program = env!("CARGO_BIN_EXE_polls").into();
    let tenancy = startup::open_supervising(&settings, program).await.unwrap();
    let mut serving = Serving::default();
    serving.signup.enabled = true;
    serving.signup.signup_pending = pending;
    serving.signup.signup_rate_per_address = 1_000_000.try_into().unwrap();
    let app = startup::app_with(tenancy.clone(), &serving);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(tenantry::serve(
        listener,
        app,
        serving.limits.server(),
        futures::stream::pending(),
    ));
    while tenancy.catalog().list_pending().await.unwrap().len() < pending {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut times = Vec::new();
    for i in 0..SIGNUPS {
        times.push(sign_up(&client, addr, &format!("org{i}")).await);
    }
    times
}

/// One signup as a browser makes it; the ms from the POST to the admin page.
async fn sign_up(client: &reqwest::Client, addr: SocketAddr, slug: &str) -> f64 {
    let (cookie, csrf) = common::form_page(client, addr, BASE, "/signup").await;
    let fields = [
        ("csrf", csrf.as_str()),
        ("organisation", slug),
        ("slug", slug),
        ("username", "ann"),
        ("email", "ann@example.com"),
        ("password", "bench-password"),
        ("website", ""),
    ];
    let started = Instant::now();
    let done = client
        .post(format!("http://{addr}/signup"))
        .header("host", BASE)
        .header("cookie", cookie)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303, "{}", done.text().await.unwrap());
    let link = done.headers()["location"].to_str().unwrap().to_owned();
    let path = link.split_once(BASE).unwrap().1.to_owned();
    let host = format!("{slug}.{BASE}");
    let landed = client
        .get(format!("http://{addr}{path}"))
        .header("host", &host)
        .send()
        .await
        .unwrap();
    assert_eq!(landed.status(), 303);
    let session = common::first_cookie(&landed);
    let admin = client
        .get(format!("http://{addr}/admin"))
        .header("host", &host)
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 200);
    admin.bytes().await.unwrap();
    started.elapsed().as_secs_f64() * 1000.0
}

fn percentile(times: &[f64], p: usize) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}
