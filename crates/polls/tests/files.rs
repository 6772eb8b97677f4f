//! Tenants' files in polls: "Export results" queues a job that writes a CSV to the tenant's
//! files, which its admin lists and serves (never another tenant's); a poll's image, told
//! from its bytes, is kept in the tenant's files and served from its site.

use crate::support::{Mode, TestApp, spawn_app_in, visitor::Visitor};

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use polls::configuration::JobArgs;

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

/// Thor's poll with two choices and a vote for the second: its id.
async fn poll_with_votes(app: &TestApp, token: &str) -> i64 {
    let host = "thor.polls.test";
    let poll = app
        .request(
            Method::POST,
            host,
            "/polls/",
            Some(token),
            Some(json!({ "question": "Tea, \"or\" coffee?" })),
        )
        .await;
    let id = poll.body["id"].as_i64().unwrap();
    let mut choices = Vec::new();
    for text in ["Tea", "Coffee, black"] {
        let choice = app
            .request(
                Method::POST,
                host,
                &format!("/polls/{id}/choices/"),
                Some(token),
                Some(json!({ "choice_text": text })),
            )
            .await;
        choices.push(choice.body["id"].as_i64().unwrap());
    }
    let vote = app
        .request(
            Method::POST,
            host,
            &format!("/polls/{id}/choices/{}/vote/", choices[1]),
            Some(token),
            None,
        )
        .await;
    assert_eq!(vote.status, StatusCode::CREATED);
    id
}

async fn export_results(mode: Mode) {
    let app = spawn_app_in(mode).await;
    let token = app.user("thor.polls.test", "alice").await;
    let poll = poll_with_votes(&app, &token).await;
    app.staff_user("thor", "staff-pass-1").await;
    let mut thor = Visitor::new(&app, "thor.polls.test", "");
    thor.log_in("admin", "staff-pass-1").await;
    let page = thor.get(&format!("/admin/polls/{poll}")).await;
    let action = format!("/admin/polls/{poll}/export");
    let csrf = page.csrf(&action);
    let queued = thor.post(&action, &[("csrf", csrf.as_str())]).await;
    assert_eq!(queued.status, StatusCode::SEE_OTHER, "{}", queued.text);
    let page = thor.get("/admin/exports").await;
    assert!(page.text.contains("The export was queued"), "{}", page.text);

    let worker = polls::startup::job_worker(&app.tenancy, &JobArgs::default()).unwrap();
    let mut listed = String::new();
    for _ in 0..300 {
        listed = thor.get("/admin/exports").await.text;
        if listed.contains(".csv</a>") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.stop().await;
    let name = listed
        .split("href=\"/admin/exports/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no export listed: {listed}"))
        .to_owned();
    assert!(name.starts_with(&format!("poll-{poll}-job-")), "{name}");
    let csv = thor.get(&format!("/admin/exports/{name}")).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        csv.text,
        "question,choice,votes\n\"Tea, \"\"or\"\" coffee?\",Tea,0\n\"Tea, \"\"or\"\" coffee?\",\"Coffee, black\",1\n"
    );

    app.staff_user("potter", "staff-pass-2").await;
    let mut potter = Visitor::new(&app, "potter.polls.test", "");
    potter.log_in("admin", "staff-pass-2").await;
    assert!(
        potter
            .get("/admin/exports")
            .await
            .text
            .contains("No exports yet.")
    );
    assert_eq!(
        potter.get(&format!("/admin/exports/{name}")).await.status,
        StatusCode::NOT_FOUND
    );
    for hostile in ["..%2F..%2Fetc%2Fpasswd", "%2E%2Ehidden", "a%5Cb"] {
        let refused = thor.get(&format!("/admin/exports/{hostile}")).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{hostile}");
    }
}

#[tokio::test]
async fn export_results_writes_a_csv_the_admin_lists_and_serves_in_schema_mode() {
    export_results(Mode::Schema).await;
}

#[tokio::test]
async fn export_results_writes_a_csv_the_admin_lists_and_serves_in_sqlite_mode() {
    export_results(Mode::Sqlite).await;
}

async fn poll_image(mode: Mode) {
    let app = spawn_app_in(mode).await;
    let host = "thor.polls.test";
    let alice = app.user(host, "alice").await;
    let poll = poll_with_votes(&app, &alice).await;
    let put = |token: String, body: Vec<u8>| {
        let app = &app;
        async move {
            app.client
                .put(format!("http://{}/polls/{poll}/image/", app.addr))
                .header("host", host)
                .header("authorization", token)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>".to_vec();
    let refused = put(alice.clone(), svg).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        refused.json::<serde_json::Value>().await.unwrap(),
        json!({ "image": ["An image is a PNG, JPEG or WebP file."] })
    );
    let mut big = PNG.to_vec();
    big.resize(polls::routes::IMAGE_MAX_BYTES + 1, 0);
    assert_eq!(
        put(alice.clone(), big).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let bob = app.user(host, "bob").await;
    assert_eq!(
        put(bob.clone(), PNG.to_vec()).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        put(alice.clone(), PNG.to_vec()).await.status(),
        StatusCode::NO_CONTENT
    );

    let shown = app
        .client
        .get(format!("http://{}/polls/{poll}/image/", app.addr))
        .header("host", host)
        .header("authorization", bob)
        .send()
        .await
        .unwrap();
    assert_eq!(shown.status(), StatusCode::OK);
    assert_eq!(shown.headers()["content-type"], "image/png");
    assert_eq!(shown.headers()["x-content-type-options"], "nosniff");
    assert_eq!(shown.bytes().await.unwrap(), PNG);

    let harry = app.user("potter.polls.test", "harry").await;
    let other = app
        .request(
            Method::GET,
            "potter.polls.test",
            &format!("/polls/{poll}/image/"),
            Some(&harry),
            None,
        )
        .await;
    assert_eq!(
        other.status,
        StatusCode::NOT_FOUND,
        "another tenant's site has no such image"
    );

    let deleted = app
        .request(
            Method::DELETE,
            host,
            &format!("/polls/{poll}/"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let thor = tenantry::Slug::parse("thor").unwrap();
    let files = app.tenancy.tenant_files(&thor).await.unwrap();
    assert!(
        files.list("polls/").await.unwrap().is_empty(),
        "the image went with its poll"
    );
}

#[tokio::test]
async fn a_poll_image_is_kept_in_the_tenants_files_in_shared_mode() {
    poll_image(Mode::Shared).await;
}

#[tokio::test]
async fn a_poll_image_is_kept_in_the_tenants_files_in_dedicated_mode() {
    poll_image(Mode::Dedicated).await;
}

#[tokio::test]
async fn a_poll_image_is_kept_in_the_tenants_files_in_sqlite_mode() {
    poll_image(Mode::Sqlite).await;
}

/// The first export sets the tenant's nightly schedule that prunes its exports, in its time
/// zone; the job keeps the newest 20.
#[tokio::test]
async fn old_exports_are_pruned_by_the_tenants_nightly_schedule() {
    let app = spawn_app_in(Mode::Schema).await;
    app.set_settings("thor", json!({ "time_zone": "Asia/Tokyo" }))
        .await;
    let token = app.user("thor.polls.test", "alice").await;
    let poll = poll_with_votes(&app, &token).await;
    app.staff_user("thor", "staff-pass-1").await;
    let mut thor = Visitor::new(&app, "thor.polls.test", "");
    thor.log_in("admin", "staff-pass-1").await;
    let page = thor.get(&format!("/admin/polls/{poll}")).await;
    let action = format!("/admin/polls/{poll}/export");
    let csrf = page.csrf(&action);
    thor.post(&action, &[("csrf", csrf.as_str())]).await;
    let slug = tenantry::Slug::parse("thor").unwrap();
    let mut tx = app.tenancy.begin(&slug).await.unwrap();
    let schedules = tenantry::jobs::schedule::list(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(schedules.len(), 1);
    assert_eq!(
        (schedules[0].name.as_str(), schedules[0].cron.as_str()),
        ("prune-exports", "0 3 * * *")
    );
    // 03:00 in Tokyo is 18:00 UTC, shifted by the tenant's offset.
    let at = schedules[0].next_at - schedules[0].offset_ms;
    assert_eq!(at % 86_400_000, 18 * 3_600_000, "{}", schedules[0].next_at);

    let files = app.tenancy.tenant_files(&slug).await.unwrap();
    for n in 0..(polls::jobs::EXPORTS_KEPT + 2) {
        files
            .put(&format!("exports/old-{n:02}.csv"), "x")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The export itself is cancelled, so that only the prune writes to the exports.
    let mut tx = app.tenancy.begin(&slug).await.unwrap();
    let export = tenantry::jobs::list(&mut tx, None, 10).await.unwrap()[0].id;
    tenantry::jobs::cancel(&mut tx, export).await.unwrap();
    tx.query("UPDATE tenantry_schedules SET next_at = 0")
        .execute()
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let worker = polls::startup::job_worker(&app.tenancy, &JobArgs::default()).unwrap();
    for _ in 0..300 {
        let mut tx = app.tenancy.begin(&slug).await.unwrap();
        let jobs = tenantry::jobs::list(&mut tx, None, 10).await.unwrap();
        tx.commit().await.unwrap();
        let done = |kind: &str| {
            jobs.iter()
                .any(|j| j.kind == kind && j.state == tenantry::jobs::JobState::Done)
        };
        if done("prune-exports") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.stop().await;
    let left: Vec<String> = files
        .list("exports/")
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(left.len(), polls::jobs::EXPORTS_KEPT, "{left:?}");
    assert!(
        !left.contains(&"exports/old-00.csv".to_owned())
            && !left.contains(&"exports/old-01.csv".to_owned()),
        "{left:?}"
    );
}
