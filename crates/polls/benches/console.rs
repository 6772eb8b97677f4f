//! The console's tenant list at 10,000 tenants: `cargo bench -p polls --bench console`.
//!
//! The catalog gets 10,000 shared-mode tenants written straight into its tables (the list
//! reads nothing else), then an operator's pages are timed one request at a time: the first
//! page, a page deep in the list, a search, and a status filter. Prints a Markdown table of
//! p50 and p90 for BENCHMARKS.md.

use std::time::Instant;

use polls::startup;
use tenantry::testing::TestDatabase;

mod common;

use common::BASE;

const TENANTS: usize = 10_000;
const REQUESTS: usize = 100;
const PASSWORD: &str = "bench-operator";

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
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
                    CASE WHEN i % 100 = 0 THEN 'suspended' ELSE 'active' END, now()
             FROM generate_series(1, {TENANTS}) i;
         INSERT INTO tenantry.domains (domain, tenant_id, is_primary)
             SELECT slug || '.{BASE}', id, true FROM tenantry.tenants;
         ANALYZE tenantry.tenants; ANALYZE tenantry.domains;"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let tenancy = startup::open(&settings).await.unwrap();
    let hash = polls::auth::hash_password(PASSWORD);
    tenancy
        .catalog()
        .create_operator("bench", &hash)
        .await
        .unwrap();
    let addr = common::serve(startup::app(tenancy.clone(), None)).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = log_in(&client, addr).await;
    println!("| console page ({TENANTS} tenants) | p50 ms | p90 ms |");
    println!("|---|---|---|");
    for (name, path, expect) in [
        ("first page", "/console", "10000 tenants; page 1 of 200."),
        ("page 150", "/console?page=150", "page 150 of 200."),
        ("search 'b777'", "/console?q=b777", "11 tenants"),
        ("suspended only", "/console?status=suspended", "100 tenants"),
    ] {
        let mut times = Vec::with_capacity(REQUESTS);
        for _ in 0..REQUESTS {
            let started = Instant::now();
            let page = client
                .get(format!("http://{addr}{path}"))
                .header("host", BASE)
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(page.status(), 200);
            let text = page.text().await.unwrap();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            assert!(text.contains(expect), "{name}: {text}");
        }
        times.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.1} | {:.1} |",
            times[REQUESTS / 2],
            times[REQUESTS * 9 / 10]
        );
    }
}

/// An operator's session cookie.
async fn log_in(client: &reqwest::Client, addr: std::net::SocketAddr) -> String {
    let (login_cookie, csrf) = common::form_page(client, addr, BASE, "/console/login").await;
    let done = client
        .post(format!("http://{addr}/console/login"))
        .header("host", BASE)
        .header("cookie", login_cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "bench"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    common::first_cookie(&done)
}
