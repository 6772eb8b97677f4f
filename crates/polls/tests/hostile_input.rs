//! A generated corpus of hostile requests (hosts, paths, methods, headers and JSON bodies)
//! written by hand over TCP: every reply must be below 500 and, when it has a body, JSON.
//! The corpus comes from a fixed seed, so a failure names a case that can be replayed.

use crate::support;

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Mode, PLATFORM_TOKEN, TestApp, spawn_app_in};

const CASES: usize = 10_000;

const HOSTS: &[&[u8]] = &[
    b"thor.polls.test",
    b"potter.polls.test",
    b"polls.test",
    b"nobody.polls.test",
    b"thor.polls.test:8000",
    b"thor.polls.test:65536",
    b"thor.polls.test:99999999999999999999",
    b"THOR.Polls.Test.",
    b"",
    b"[::1]:80",
    b"thor..polls.test",
    b"thor.polls.test'; DROP SCHEMA thor CASCADE; --",
    b"../../etc/passwd",
    b"\xfe\xff.polls.test",
    b"a.thor.polls.test",
];

const PATHS: &[&str] = &[
    "/",
    "/polls/",
    "/polls",
    "/polls/1/",
    "/polls/2",
    "/polls/-1/",
    "/polls/99999999999999999999999/",
    "/polls/abc/",
    "/polls/1/choices/",
    "/polls/1/choices/1/vote/",
    "/polls/1/choices/abc/vote/",
    "/users/",
    "/login/",
    "/health",
    "/api/tenants/",
    "/api/tenants/thor/",
    "/api/tenants/%00/",
    "/api/tenants/fuzz-a/",
    "/t/thor/polls/",
    "/t/nobody/polls/",
    "/t/%2e%2e/polls/",
    "/%00",
    "/polls/%00/",
    "//",
    "/..",
    "/polls/1/choices/1/vote/extra/",
];

/// The routes that exist, with the fields their bodies have: most cases aim at one of them,
/// so that hostile values reach the handlers and the database.
const ROUTES: &[(&str, &str, &[&str])] = &[
    ("POST", "/users/", &["username", "email", "password"]),
    ("POST", "/login/", &["username", "password"]),
    ("GET", "/polls/", &[]),
    ("POST", "/polls/", &["question"]),
    ("PUT", "/polls/1/", &["question"]),
    ("PATCH", "/polls/1/", &["question"]),
    ("DELETE", "/polls/2/", &[]),
    ("GET", "/polls/1/choices/", &[]),
    ("POST", "/polls/1/choices/", &["choice_text"]),
    ("POST", "/polls/1/choices/1/vote/", &[]),
    ("GET", "/api/tenants/", &[]),
    (
        "POST",
        "/api/tenants/",
        &["slug", "name", "isolation", "domains", "server"],
    ),
    (
        "PATCH",
        "/api/tenants/fuzz-1/",
        &["name", "slug", "status", "settings"],
    ),
    ("DELETE", "/api/tenants/fuzz-2/", &[]),
];

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "FOO",
];

const FIELDS: &[&str] = &[
    "question",
    "choice_text",
    "username",
    "email",
    "password",
    "slug",
    "name",
    "isolation",
    "status",
    "settings",
    "domains",
    "server",
];

const CONTENT_TYPES: &[Option<&str>] = &[
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("text/plain"),
    None,
];

/// A JSON value of a random type, often a string that is hostile to some backend.
fn value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.random_range(0..12) {
        0 => json!(null),
        1 => json!(rng.random::<bool>()),
        2 => json!(rng.random::<i64>()),
        3 => json!(1e308),
        4 => json!(""),
        5 => json!("a\u{0}b"),
        6 => json!("x".repeat(rng.random_range(100..5_000))),
        7 => json!("þór 🚀 \u{202e}"),
        8 if depth < 3 => Value::Array((0..3).map(|_| value(rng, depth + 1)).collect()),
        9 if depth < 3 => object(rng, &[], depth + 1),
        10 => json!(["shared", "schema", "database", "suspended", "active"].choose(rng)),
        _ => json!(format!("fuzz-{}", rng.random_range(0..50))),
    }
}

/// An object with some of `fields` (any field when empty), now and then a hostile key.
fn object(rng: &mut StdRng, fields: &[&str], depth: u32) -> Value {
    let fields = if fields.is_empty() { FIELDS } else { fields };
    let entries = (0..rng.random_range(0..=fields.len() + 1)).map(|_| {
        let key = match rng.random_range(0..20) {
            0 => "ke\u{0}y".to_owned(),
            _ => fields.choose(rng).unwrap().to_string(),
        };
        (key, value(rng, depth))
    });
    Value::Object(entries.collect())
}

/// The body of a request: none, a JSON object, or bytes that are not quite JSON.
fn body(rng: &mut StdRng, fields: &[&str]) -> Option<Vec<u8>> {
    match rng.random_range(0..10) {
        0..=1 => None,
        2..=7 => Some(object(rng, fields, 0).to_string().into_bytes()),
        8 => Some(
            [
                "{",
                "[",
                "{\"question\":",
                "\"\\u0000\"",
                "nul\u{0}",
                "{\"a\":1}}",
            ]
            .choose(rng)
            .unwrap()
            .as_bytes()
            .to_vec(),
        ),
        _ => Some((0..rng.random_range(1..64)).map(|_| rng.random()).collect()),
    }
}

/// One request of the corpus, written as HTTP/1.1 bytes.
fn case(rng: &mut StdRng, tokens: &[String]) -> Vec<u8> {
    let (method, path, fields) = match rng.random_range(0..10) {
        0..=6 => *ROUTES.choose(rng).unwrap(),
        _ => (
            *METHODS.choose(rng).unwrap(),
            *PATHS.choose(rng).unwrap(),
            &[][..],
        ),
    };
    let good_host: &[u8] = match (path.starts_with("/api/"), rng.random::<bool>()) {
        (true, _) => b"polls.test",
        (false, true) => b"thor.polls.test",
        (false, false) => b"potter.polls.test",
    };
    let mut request = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
    let hosts = match rng.random_range(0..20) {
        0 => 0,
        1 => 2,
        _ => 1,
    };
    for _ in 0..hosts {
        request.extend_from_slice(b"Host: ");
        match rng.random_range(0..10) {
            0..=6 => request.extend_from_slice(good_host),
            _ => request.extend_from_slice(HOSTS.choose(rng).unwrap()),
        }
        request.extend_from_slice(b"\r\n");
    }
    match rng.random_range(0..8) {
        0 => {}
        1 | 2 => request
            .extend_from_slice(format!("Authorization: Bearer {PLATFORM_TOKEN}\r\n").as_bytes()),
        3 => request.extend_from_slice(b"Authorization: Token garbage\r\n"),
        _ => {
            let token = tokens.choose(rng).unwrap();
            request.extend_from_slice(format!("Authorization: {token}\r\n").as_bytes());
        }
    }
    if let Some(body) = body(rng, fields) {
        if let Some(content_type) = CONTENT_TYPES.choose(rng).unwrap() {
            request.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        request.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        request.extend_from_slice(b"Connection: close\r\n\r\n");
        request.extend_from_slice(&body);
    } else {
        request.extend_from_slice(b"Connection: close\r\n\r\n");
    }
    request
}

async fn the_corpus_gets_no_5xx_and_only_json(mode: Mode) {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    let app = spawn_app_in(mode).await;
    let mut tokens = Vec::new();
    for host in ["thor.polls.test", "potter.polls.test"] {
        let token = app.user(host, "ann").await;
        // Two polls and a choice, so that the corpus's `/polls/1/...` paths find something
        // (in shared mode only in thor, since ids are shared there).
        let mut poll_ids = Vec::new();
        for question in ["Tea or coffee?", "Cats or dogs?"] {
            let body = json!({ "question": question });
            let reply = app
                .request(Method::POST, host, "/polls/", Some(&token), Some(body))
                .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
            poll_ids.push(reply.body["id"].clone());
        }
        let path = format!("/polls/{}/choices/", poll_ids[0]);
        let body = json!({ "choice_text": "Tea" });
        let reply = app
            .request(Method::POST, host, &path, Some(&token), Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        tokens.push(token);
    }
    let mut rng = StdRng::seed_from_u64(9);
    let corpus: Vec<Vec<u8>> = (0..CASES).map(|_| case(&mut rng, &tokens)).collect();
    let failures: Vec<String> = futures::stream::iter(corpus.iter().enumerate())
        .map(|(i, request)| check(&app, i, request))
        .buffer_unordered(8)
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    assert_eq!(failures, Vec::<String>::new());
}

/// Sends one case; a description of it if the reply was a server error other than 503 with
/// `Retry-After` (a tenant the corpus deleted or renamed while requests for it ran).
async fn check(app: &TestApp, i: usize, request: &[u8]) -> Option<String> {
    let reply = app.raw(request).await;
    let retry = reply.status == StatusCode::SERVICE_UNAVAILABLE.as_u16()
        && reply.header("retry-after").is_some();
    (reply.status >= StatusCode::INTERNAL_SERVER_ERROR.as_u16() && !retry).then(|| {
        format!(
            "case {i}: {} -> {} {}",
            String::from_utf8_lossy(request)
                .chars()
                .take(300)
                .collect::<String>(),
            reply.status,
            reply.body
        )
    })
}

#[tokio::test]
async fn schema_tenants() {
    the_corpus_gets_no_5xx_and_only_json(Mode::Schema).await
}

#[tokio::test]
async fn shared_tenants() {
    the_corpus_gets_no_5xx_and_only_json(Mode::Shared).await
}

#[tokio::test]
async fn sqlite_tenants() {
    the_corpus_gets_no_5xx_and_only_json(Mode::Sqlite).await
}
