//! GET /polls/ from the tenant's cache: each tenant its own list under one key, in every
//! kind of tenant, and no write that was answered missing from a read after it, with
//! writers and readers at once.

use crate::support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Mode, TestApp};
use tenantry::Slug;

async fn questions(app: &TestApp, host: &str, token: &str) -> Vec<Value> {
    let reply = app
        .request(Method::GET, host, "/polls/", Some(token), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["question"].clone())
        .collect()
}

async fn create(app: &TestApp, host: &str, token: &str, question: &str) {
    let body = Some(json!({ "question": question }));
    let reply = app
        .request(Method::POST, host, "/polls/", Some(token), body)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

async fn one_key_two_tenants(mode: Mode) {
    let app = support::spawn_app_in(mode).await;
    let thor = app.user("thor.polls.test", "ann").await;
    let potter = app.user("potter.polls.test", "bob").await;
    create(&app, "thor.polls.test", &thor, "Thor's?").await;
    create(&app, "potter.polls.test", &potter, "Potter's?").await;
    for _ in 0..2 {
        assert_eq!(
            questions(&app, "thor.polls.test", &thor).await,
            [json!("Thor's?")]
        );
        assert_eq!(
            questions(&app, "potter.polls.test", &potter).await,
            [json!("Potter's?")]
        );
    }
    // A row written behind the app's back is not seen (the list is cached) until a write
    // through the app flushes the tenant's cache.
    app.tenancy
        .in_tenant(&Slug::parse("thor").unwrap(), async |db| {
            db.query("INSERT INTO polls (question, created_by, pub_date) SELECT 'Behind?', id, pub_date FROM polls LIMIT 1")
                .execute()
                .await
                .map_err(tenantry::Error::from)
        })
        .await
        .unwrap();
    assert_eq!(
        questions(&app, "thor.polls.test", &thor).await,
        [json!("Thor's?")]
    );
    create(&app, "potter.polls.test", &potter, "Potter again?").await;
    assert_eq!(
        questions(&app, "thor.polls.test", &thor).await,
        [json!("Thor's?")],
        "potter's write leaves thor's cache"
    );
    create(&app, "thor.polls.test", &thor, "Thor again?").await;
    assert_eq!(
        questions(&app, "thor.polls.test", &thor).await,
        [json!("Thor's?"), json!("Behind?"), json!("Thor again?")]
    );
}

#[tokio::test]
async fn one_key_two_tenants_schema() {
    one_key_two_tenants(Mode::Schema).await;
}

#[tokio::test]
async fn one_key_two_tenants_shared() {
    one_key_two_tenants(Mode::Shared).await;
}

#[tokio::test]
async fn one_key_two_tenants_database() {
    one_key_two_tenants(Mode::Database).await;
}

#[tokio::test]
async fn one_key_two_tenants_sqlite() {
    one_key_two_tenants(Mode::Sqlite).await;
}

#[tokio::test]
async fn one_key_two_tenants_dedicated() {
    one_key_two_tenants(Mode::Dedicated).await;
}

#[tokio::test]
async fn no_answered_write_is_missing_from_a_later_read() {
    let app = std::sync::Arc::new(support::spawn_app_in(Mode::Schema).await);
    let token = app.user("thor.polls.test", "ann").await;
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (app, token) = (app.clone(), token.clone());
            tokio::spawn(async move {
                for _ in 0..60 {
                    questions(&app, "thor.polls.test", &token).await;
                }
            })
        })
        .collect();
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (app, token) = (app.clone(), token.clone());
            tokio::spawn(async move {
                for n in 0..8 {
                    let question = format!("w{w}-{n}?");
                    create(&app, "thor.polls.test", &token, &question).await;
                    let listed = questions(&app, "thor.polls.test", &token).await;
                    assert!(
                        listed.contains(&json!(question)),
                        "{question} missing from {listed:?}"
                    );
                }
            })
        })
        .collect();
    for task in writers.into_iter().chain(readers) {
        task.await.unwrap();
    }
    assert_eq!(questions(&app, "thor.polls.test", &token).await.len(), 24);
}
