//! What the benchmarks share: the tenants they seed, and the load they put on a server.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use tenantry::{Error, IsolationMode, NewTenant, Slug, Tenancy};
use tokio::net::TcpListener;

use polls::configuration::Settings;
use polls::startup;

pub const BASE: &str = "polls.bench";
pub const CLIENTS: usize = 32;
pub const ROUND: Duration = Duration::from_secs(5);
pub const ROUNDS: usize = 3;

/// A tenant and the API token of its user.
pub type TenantToken = (Slug, String);

/// A process's resident set size in KiB, from `/proc/<pid>/status`.
pub fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

pub async fn open_pool(options: PgConnectOptions) -> PgPool {
    startup::pool_options(16)
        .connect_with(options)
        .await
        .unwrap()
}

pub async fn create(tenancy: &Tenancy, slug: &Slug, isolation: IsolationMode) {
    tenancy
        .create_tenant(NewTenant::new(slug.clone(), isolation))
        .await
        .unwrap();
}

/// One user with a token, and 10 polls of 4 choices; returns the token. Ids are read back,
/// since shared-mode tenants draw them from sequences they share.
pub async fn seed(tenancy: &Tenancy, slug: &Slug) -> String {
    let key = polls::auth::new_token_key();
    tenancy
        .in_tenant(slug, async |db| -> Result<(), Error> {
            db.execute_script(sqlx::AssertSqlSafe(format!(
                "INSERT INTO users (username, password_hash) VALUES ('bench', 'x');
                 INSERT INTO tokens (key, user_id) SELECT '{key}', id FROM users;
                 INSERT INTO polls (question, created_by, pub_date)
                     SELECT 'Question ' || i, u.id, now() FROM generate_series(1, 10) i, users u;
                 INSERT INTO choices (poll_id, choice_text)
                     SELECT p.id, 'Choice ' || c FROM polls p, generate_series(1, 4) c;"
            )))
            .await?;
            Ok(())
        })
        .await
        .unwrap();
    key
}

pub async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

pub fn get(
    client: &reqwest::Client,
    addr: SocketAddr,
    (slug, token): &TenantToken,
) -> reqwest::RequestBuilder {
    client
        .get(format!("http://{addr}/polls/"))
        .header("host", format!("{slug}.{BASE}"))
        .header("authorization", format!("Token {token}"))
}

/// Requests/s of `CLIENTS` concurrent clients for `ROUND`, cycling through `tenants`.
pub async fn load(addr: SocketAddr, tenants: &[TenantToken]) -> f64 {
    let tenants: Arc<[TenantToken]> = tenants.into();
    let request =
        move |client: &reqwest::Client, i: usize| get(client, addr, &tenants[i % tenants.len()]);
    load_with(reqwest::Client::new(), request, |status, body| {
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(body));
        // Ten polls of four choices each (ids differ between shared tenants).
        assert!(
            body.starts_with(b"[{\"id\":") && body.len() > 2000,
            "unexpected body"
        );
    })
    .await
}

/// Requests/s of `CLIENTS` concurrent clients for `ROUND`: the `i`-th request is
/// `request(client, i)`, and each reply's status and body must pass `check`.
pub async fn load_with(
    client: reqwest::Client,
    request: impl Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
    check: impl Fn(u16, &[u8]) + Send + Sync + 'static,
) -> f64 {
    let (request, check) = (Arc::new(request), Arc::new(check));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|w| {
            let (client, request, check, done) =
                (client.clone(), request.clone(), check.clone(), done.clone());
            tokio::spawn(async move {
                let mut i = w;
                while started.elapsed() < ROUND {
                    let response = request(&client, i).send().await.unwrap();
                    let status = response.status().as_u16();
                    let body = response.bytes().await.unwrap();
                    check(status, &body);
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

/// The median of a run's rounds.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The app's settings for the benchmark's database at `url`: schema tenants by default,
/// database tenants within `budget` connections, `per_tenant` each.
pub fn settings(url: &str, budget: u32, per_tenant: u32) -> Settings {
    Settings {
        database_url: Some(url.to_owned()),
        data_dir: "unused-with-postgres".into(),
        base_domain: BASE.into(),
        strategies: vec![tenantry::Strategy::Domain, tenantry::Strategy::Subdomain],
        database_pooler: tenantry::Pooler::None,
        pool_size: 16,
        default_isolation: Some(IsolationMode::Schema),
        serving: polls::configuration::Serving {
            bind: String::new(),
            platform_token: None,
            ..Default::default()
        },
        router_secret: None,
        database_budget: budget,
        tenant_pool_size: per_tenant,
        app_role: tenantry::AppRole::default().name().into(),
        app_role_password: None,
        redis_url: None,
        files_url: Some(format!(
            "file://{}",
            std::env::temp_dir().join("polls-bench-files").display()
        )),
    }
}

/// The `name=value` of the first cookie `response` sets.
pub fn first_cookie(response: &reqwest::Response) -> String {
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

/// A form's page at `path` on `host`: the cookie it sets (`name=value`) and the token of
/// its `csrf` field, for posting it.
pub async fn form_page(
    client: &reqwest::Client,
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> (String, String) {
    let form = client
        .get(format!("http://{addr}{path}"))
        .header("host", host)
        .send()
        .await
        .unwrap();
    let cookie = first_cookie(&form);
    let page = form.text().await.unwrap();
    let at = page.find("name=\"csrf\" value=\"").unwrap() + 19;
    (cookie, page[at..at + 64].to_owned())
}
