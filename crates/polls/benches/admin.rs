//! The tenants' web side: `cargo bench -p polls --bench admin`.
//!
//! On a fresh database, in one run so the figures compare as ratios, requests/s of
//! `CLIENTS` concurrent clients over 8 schema tenants (10 polls of 4 choices each) for:
//! - GET /polls/ (the API, token auth): the baseline;
//! - GET /admin/style.css: tenancy plus the settings extractor, no query;
//! - GET /admin: a logged-in staff user's dashboard (session, staff check, logo, counts,
//!   latest polls);
//! - GET /admin/polls: the first page of the poll list;
//! - GET /admin with no session: the redirect to the login page.
//!
//! It prints a Markdown table for BENCHMARKS.md.

use std::net::SocketAddr;
use std::sync::Arc;

use tenantry::testing::TestDatabase;
use tenantry::{IsolationMode, Slug, TenantUpdate};

use polls::startup;

mod common;

use common::{BASE, CLIENTS, ROUNDS, create, load_with, median, seed, serve};

const TENANTS: usize = 8;
const PASSWORD: &str = "bench-password";

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

/// One request of a measured kind, for a tenant: its path and headers, and the status and
/// body start it must answer with.
struct Kind {
    name: &'static str,
    path: &'static str,
    status: u16,
    starts: &'static [u8],
    session: bool,
    token: bool,
}

const KINDS: [Kind; 5] = [
    Kind {
        name: "GET /polls/ (API, token)",
        path: "/polls/",
        status: 200,
        starts: b"[{",
        session: false,
        token: true,
    },
    Kind {
        name: "GET /admin/style.css (settings, no query)",
        path: "/admin/style.css",
        status: 200,
        starts: b":root { --primary: #",
        session: false,
        token: false,
    },
    Kind {
        name: "GET /admin (dashboard, staff session)",
        path: "/admin",
        status: 200,
        starts: b"<!doctype html>",
        session: true,
        token: false,
    },
    Kind {
        name: "GET /admin/polls (list, staff session)",
        path: "/admin/polls",
        status: 200,
        starts: b"<!doctype html>",
        session: true,
        token: false,
    },
    Kind {
        name: "GET /admin without a session (303)",
        path: "/admin",
        status: 303,
        starts: b"",
        session: false,
        token: false,
    },
];

/// A tenant's host, API token and staff session cookie.
struct Visitor {
    host: String,
    token: String,
    session: String,
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
    let tenancy = startup::open(&settings).await.unwrap();
    let addr = serve(startup::app(tenancy.clone(), None)).await;
    let hash = polls::auth::hash_password(PASSWORD);
    let mut visitors = Vec::new();
    for i in 0..TENANTS {
        let slug = Slug::parse(&format!("t{i}")).unwrap();
        create(&tenancy, &slug, IsolationMode::Schema).await;
        let token = seed(&tenancy, &slug).await;
        tenancy
            .in_tenant(&slug, async |db| {
                db.query("UPDATE users SET is_staff = true, password_hash = $1")
                    .bind(&hash)
                    .execute()
                    .await
                    .map_err(tenantry::Error::from)
            })
            .await
            .unwrap();
        let colour = TenantUpdate {
            settings: Some(serde_json::json!({ "primary_color": format!("#00000{i}") })),
            ..TenantUpdate::default()
        };
        tenancy.update_tenant(&slug, colour).await.unwrap();
        let host = format!("{slug}.{BASE}");
        let session = log_in(addr, &host).await;
        visitors.push(Visitor {
            host,
            token,
            session,
        });
    }
    let visitors: Arc<[Visitor]> = visitors.into();
    let mut results = Vec::new();
    for kind in &KINDS {
        let mut rounds = Vec::new();
        for _ in 0..ROUNDS {
            rounds.push(load(addr, &visitors, kind).await);
        }
        results.push((kind.name, median(rounds)));
    }
    let baseline = results[0].1;
    println!("| request ({TENANTS} schema tenants, {CLIENTS} clients) | req/s | ratio |");
    println!("|---|---|---|");
    for (name, rate) in results {
        println!("| {name} | {rate:.0} | {:.2} |", rate / baseline);
    }
}

/// Logs the tenant's staff user in through the form; its session cookie.
async fn log_in(addr: SocketAddr, host: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (cookie, csrf) = common::form_page(&client, addr, host, "/admin/login").await;
    let login = client
        .post(format!("http://{addr}/admin/login"))
        .header("host", host)
        .header("cookie", cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "bench"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    common::first_cookie(&login)
}

/// Requests/s of `kind` over the tenants.
async fn load(addr: SocketAddr, visitors: &Arc<[Visitor]>, kind: &'static Kind) -> f64 {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let visitors = visitors.clone();
    let request = move |client: &reqwest::Client, i: usize| {
        let visitor = &visitors[i % visitors.len()];
        let mut request = client
            .get(format!("http://{addr}{}", kind.path))
            .header("host", &visitor.host);
        if kind.session {
            request = request.header("cookie", &visitor.session);
        }
        if kind.token {
            request = request.header("authorization", format!("Token {}", visitor.token));
        }
        request
    };
    load_with(client, request, |status, body| {
        assert_eq!(status, kind.status, "{}", String::from_utf8_lossy(body));
        assert!(
            body.starts_with(kind.starts),
            "{}",
            String::from_utf8_lossy(body)
        );
    })
    .await
}
