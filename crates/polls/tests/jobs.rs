//! Background jobs in polls: a poll closes at its closing time by a job, in every mode the
//! jobs run in, seen in the API, its cache and the admin; a `polls worker` killed (`kill -9`)
//! mid-job leaves the job to another worker, which finishes it once; operators list, retry
//! and cancel jobs from the command line.

use crate::support::{self, Mode, TestApp, spawn_app_in, visitor::Visitor};

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenantry::Slug;
use tenantry::jobs::{JobRecord, JobState};

use polls::configuration::JobArgs;

fn slug(name: &str) -> Slug {
    Slug::parse(name).unwrap()
}

/// Waits up to 30 s for `done`, failing with `what`.
async fn until<F: AsyncFnMut() -> bool>(what: &str, mut done: F) {
    for _ in 0..300 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn jobs_of(app: &TestApp, tenant: &str) -> Vec<JobRecord> {
    let mut tx = app.tenancy.begin(&slug(tenant)).await.unwrap();
    let jobs = tenantry::jobs::list(&mut tx, None, 100).await.unwrap();
    tx.commit().await.unwrap();
    jobs
}

/// An RFC 3339 time `ms` from now.
fn in_ms(ms: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::milliseconds(ms)).to_rfc3339()
}

/// A poll of thor's closing in 1.5 s, with one choice: its id and the choice's.
async fn closing_poll(app: &TestApp, token: &str) -> (i64, i64) {
    let host = "thor.polls.test";
    let poll = app
        .request(
            Method::POST,
            host,
            "/polls/",
            Some(token),
            Some(json!({ "question": "Closing?", "closes_at": in_ms(1500) })),
        )
        .await;
    assert_eq!(poll.status, StatusCode::CREATED, "{}", poll.body);
    assert_eq!(
        poll.body["closed"],
        Value::Null,
        "an open poll shows no closed flag"
    );
    assert!(poll.body["closes_at"].as_str().unwrap().ends_with('Z'));
    let id = poll.body["id"].as_i64().unwrap();
    let choice = app
        .request(
            Method::POST,
            host,
            &format!("/polls/{id}/choices/"),
            Some(token),
            Some(json!({ "choice_text": "Yes" })),
        )
        .await;
    assert_eq!(choice.status, StatusCode::CREATED, "{}", choice.body);
    (id, choice.body["id"].as_i64().unwrap())
}

async fn vote(app: &TestApp, token: &str, poll: i64, choice: i64) -> (StatusCode, Value) {
    let reply = app
        .request(
            Method::POST,
            "thor.polls.test",
            &format!("/polls/{poll}/choices/{choice}/vote/"),
            Some(token),
            None,
        )
        .await;
    (reply.status, reply.body)
}

/// A poll with a closing time: bad times refused; votes counted until it, refused after;
/// the job that closes it runs (for a dedicated tenant, in its own server, whose worker
/// the app's skips), flushing the cached list; the admin shows the poll closed and the job,
/// and another tenant's admin shows neither.
async fn a_poll_closes_at_its_closing_time(mode: Mode) {
    let app = spawn_app_in(mode).await;
    let token = app.user("thor.polls.test", "alice").await;
    for (closes_at, message) in [
        (
            json!("tomorrow"),
            "Enter a date and time with its offset, like 2026-12-24T18:00:00Z.",
        ),
        (
            json!(in_ms(-60_000)),
            "The closing time must be in the future.",
        ),
    ] {
        let refused = app
            .request(
                Method::POST,
                "thor.polls.test",
                "/polls/",
                Some(&token),
                Some(json!({ "question": "Bad?", "closes_at": closes_at })),
            )
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert_eq!(refused.body, json!({ "closes_at": [message] }));
    }
    let (poll, choice) = closing_poll(&app, &token).await;
    // The list is cached before the poll closes.
    let listed = app
        .request(
            Method::GET,
            "thor.polls.test",
            "/polls/",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(listed.body[0]["closed"], Value::Null);
    assert_eq!(
        vote(&app, &token, poll, choice).await.0,
        StatusCode::CREATED
    );

    let worker = polls::startup::job_worker(&app.tenancy, &JobArgs::default()).unwrap();
    until("the poll to close", async || {
        let poll = app
            .request(
                Method::GET,
                "thor.polls.test",
                &format!("/polls/{poll}/"),
                Some(&token),
                None,
            )
            .await;
        poll.body["closed"] == json!(true)
    })
    .await;
    worker.stop().await;
    let listed = app
        .request(
            Method::GET,
            "thor.polls.test",
            "/polls/",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        listed.body[0]["closed"],
        json!(true),
        "the job flushed the cached list"
    );
    let bob = app.user("thor.polls.test", "bob").await;
    assert_eq!(
        vote(&app, &bob, poll, choice).await,
        (
            StatusCode::BAD_REQUEST,
            json!({ "detail": "This poll is closed." })
        )
    );
    let jobs = jobs_of(&app, "thor").await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(
        (jobs[0].kind.as_str(), jobs[0].state),
        ("close-poll", JobState::Done)
    );

    app.staff_user("thor", "staff-pass-1").await;
    let mut admin = Visitor::new(&app, "thor.polls.test", "");
    admin.log_in("admin", "staff-pass-1").await;
    let page = admin.get(&format!("/admin/polls/{poll}")).await;
    assert!(
        page.text.contains(r#"<span id="closing">Closed "#),
        "{}",
        page.text
    );
    let page = admin.get("/admin/jobs").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("<td>close-poll</td>"), "{}", page.text);
    assert!(page.text.contains("<td>done</td>"), "{}", page.text);

    app.staff_user("potter", "staff-pass-2").await;
    let mut other = Visitor::new(&app, "potter.polls.test", "");
    other.log_in("admin", "staff-pass-2").await;
    let page = other.get("/admin/jobs").await;
    assert!(page.text.contains("No jobs yet."), "{}", page.text);
}

#[tokio::test]
async fn a_poll_closes_at_its_closing_time_in_schema_mode() {
    a_poll_closes_at_its_closing_time(Mode::Schema).await;
}

#[tokio::test]
async fn a_poll_closes_at_its_closing_time_in_shared_mode() {
    a_poll_closes_at_its_closing_time(Mode::Shared).await;
}

#[tokio::test]
async fn a_poll_closes_at_its_closing_time_in_database_mode() {
    a_poll_closes_at_its_closing_time(Mode::Database).await;
}

#[tokio::test]
async fn a_poll_closes_at_its_closing_time_in_sqlite_mode() {
    a_poll_closes_at_its_closing_time(Mode::Sqlite).await;
}

#[tokio::test]
async fn a_poll_closes_at_its_closing_time_through_pgbouncer() {
    a_poll_closes_at_its_closing_time(Mode::SchemaThroughPgBouncer).await;
}

/// `polls worker` on the app's database, with a lease of `lease` seconds.
fn worker(app: &TestApp, lease: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_polls"))
        .args(["worker", "--job-lease", lease])
        .env(
            "DATABASE_URL",
            app.settings.database_url.as_deref().unwrap(),
        )
        .env("DATABASE_POOLER", "none")
        .env("BASE_DOMAIN", support::BASE)
        .env("RUST_LOG", "error")
        .env_remove("JOB_WORKERS")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the polls binary runs")
}

/// The job closing a poll is blocked mid-way (the test holds the poll's row lock); its
/// worker is killed with SIGKILL; once the lock goes, the job is neither done nor lost: a
/// second worker takes it when its lease ends and finishes it, once.
#[tokio::test]
async fn a_worker_killed_mid_job_leaves_it_to_another_which_finishes_it_once() {
    let app = spawn_app_in(Mode::Schema).await;
    let token = app.user("thor.polls.test", "alice").await;
    let (poll, _) = closing_poll(&app, &token).await;
    let mut holder = app.tenancy.begin(&slug("thor")).await.unwrap();
    holder
        .query("SELECT id FROM polls WHERE id = $1 FOR UPDATE")
        .bind(poll)
        .execute()
        .await
        .unwrap();
    let mut first = worker(&app, "3");
    until("the first worker to take the job", async || {
        jobs_of(&app, "thor").await[0].state == JobState::Running
    })
    .await;
    // It is inside the job now, waiting on the row.
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.kill().unwrap();
    first.wait().unwrap();
    holder.rollback().await.unwrap();
    let job = &jobs_of(&app, "thor").await[0];
    assert_eq!(
        (job.state, job.attempts),
        (JobState::Running, 1),
        "held by its dead worker's lease"
    );

    let mut second = worker(&app, "3");
    until("the second worker to finish the job", async || {
        jobs_of(&app, "thor").await[0].state == JobState::Done
    })
    .await;
    second.kill().unwrap();
    second.wait().unwrap();
    let jobs = jobs_of(&app, "thor").await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].attempts, 2, "run again, and done once");
    let shown = app
        .request(
            Method::GET,
            "thor.polls.test",
            &format!("/polls/{poll}/"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(shown.body["closed"], json!(true));
}

/// `polls jobs list|retry|cancel`: the table, a retry of a dead job, a cancel of a queued
/// one, and the refusals' messages and exit codes.
#[tokio::test]
async fn operators_list_retry_and_cancel_jobs() {
    let app = spawn_app_in(Mode::Schema).await;
    let thor = slug("thor");
    let mut tx = app.tenancy.begin(&thor).await.unwrap();
    let at = chrono::Utc::now() + chrono::Duration::hours(1);
    let later = polls::jobs::ClosePoll { poll: 1, at };
    let queued = tenantry::jobs::Enqueue::new(&later)
        .at(at)
        .send(&mut tx)
        .await
        .unwrap()
        .unwrap();
    let dead = tenantry::jobs::Enqueue::new(&later)
        .at(at)
        .send(&mut tx)
        .await
        .unwrap()
        .unwrap();
    tx.query("UPDATE tenantry_jobs SET state = 'dead', attempts = 5, last_error = 'gave up' WHERE id = $1")
        .bind(dead)
        .execute()
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_polls"))
            .args(args)
            .env(
                "DATABASE_URL",
                app.settings.database_url.as_deref().unwrap(),
            )
            .env("DATABASE_POOLER", "none")
            .env("BASE_DOMAIN", support::BASE)
            .env("RUST_LOG", "error")
            .output()
            .unwrap();
        (
            output.status.code().unwrap(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (code, out, _) = run(&["jobs", "list"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("TENANT"), "{out}");
    assert!(out.contains("gave up") && out.contains("queued"), "{out}");
    let (code, out, _) = run(&["jobs", "list", "--tenant", "thor", "--state", "dead"]);
    assert_eq!((code, out.lines().count()), (0, 2), "{out}");
    let (code, _, err) = run(&["jobs", "list", "--state", "stuck"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("'stuck' is not one of queued, running, done, dead, cancelled"),
        "{err}"
    );
    let (code, _, err) = run(&["jobs", "retry", &dead.to_string()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("job ids are per tenant: name it with --tenant SLUG"),
        "{err}"
    );
    let (code, out, _) = run(&["--tenant", "thor", "jobs", "retry", &dead.to_string()]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        format!("thor: job {dead} (close-poll) queued again")
    );
    let (code, out, _) = run(&["--tenant", "thor", "jobs", "cancel", &queued.to_string()]);
    assert_eq!(
        (code, out.trim()),
        (
            0,
            format!("thor: job {queued} (close-poll) cancelled").as_str()
        )
    );
    let (code, _, err) = run(&["--tenant", "thor", "jobs", "cancel", &queued.to_string()]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains(&format!(
            "job {queued} is cancelled; only a queued or dead job can be cancelled"
        )),
        "{err}"
    );
    let (code, _, err) = run(&["--tenant", "potter", "jobs", "retry", &dead.to_string()]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&format!("tenant 'potter' has no job {dead}")),
        "{err}"
    );
    let states: Vec<JobState> = jobs_of(&app, "thor")
        .await
        .iter()
        .map(|j| j.state)
        .collect();
    assert!(states.contains(&JobState::Cancelled) && states.contains(&JobState::Queued));
}

#[tokio::test]
async fn a_poll_closes_at_its_closing_time_in_dedicated_mode() {
    a_poll_closes_at_its_closing_time(Mode::Dedicated).await;
}

#[tokio::test]
async fn a_poll_closes_at_its_closing_time_in_sqlite_dedicated_mode() {
    a_poll_closes_at_its_closing_time(Mode::SqliteDedicated).await;
}
