//! Signup and the operators' console in headless Chromium: a visitor signs up (the live
//! check, the "taken" message, the per-address rate), lands logged in in the new tenant's admin and creates a
//! poll the API then lists; an operator suspends, resumes, impersonates, deletes, restores
//! and moves it (its progress streamed to the page), and finds it all in the audit log.

use crate::support;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::browser::Browser;
use support::{Mode, TestApp, spawn_app_serving};
use tenantry::{IsolationMode, Slug};

const OPERATOR_PASSWORD: &str = "operator-pass-1";

/// Waits until the element `css` finds says `expected`.
async fn wait_for_text(browser: &Browser, css: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = browser.text(css).await;
        if text.contains(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{css} says '{text}', not '{expected}'"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// acme's polls as its API lists them to `token`.
async fn acme_polls(app: &TestApp, token: &str) -> support::Reply {
    app.request(Method::GET, "acme.polls.test", "/polls/", Some(token), None)
        .await
}

/// Replaces what the field `css` holds with `text`, as typed.
async fn retype(browser: &Browser, css: &str, text: &str) {
    browser
        .run(&format!("document.querySelector('{css}').value = ''"))
        .await;
    browser.fill(css, text).await;
}

async fn status_of(app: &TestApp, host: &str) -> StatusCode {
    app.request(Method::GET, host, "/polls/", None, None)
        .await
        .status
}

async fn sign_up_in_chromium(mode: Mode, name: &str) {
    let app = spawn_app_serving(mode, |serving| {
        serving.signup.enabled = true;
        serving.signup.signup_rate_per_address = std::num::NonZeroU32::new(2).unwrap();
    })
    .await;
    let hash = polls::auth::hash_password(OPERATOR_PASSWORD);
    app.tenancy
        .catalog()
        .create_operator("olga", &hash)
        .await
        .unwrap();
    let port = app.addr.port();
    let public = format!("http://polls.test:{port}");
    let acme_site = format!("http://acme.polls.test:{port}");
    let browser = Browser::start().await;

    // From the landing page to the form; the subdomain is checked as it is typed.
    browser.goto(&format!("{public}/")).await;
    let link = browser
        .run("return document.querySelector('#signup').href")
        .await;
    assert_eq!(link, json!(format!("{public}/signup")));
    browser.goto(&format!("{public}/signup")).await;
    browser.fill("#slug", "thor").await;
    wait_for_text(&browser, "#slug-status", "'thor' is taken.").await;
    retype(&browser, "#slug", "acme").await;
    wait_for_text(&browser, "#slug-status", "'acme' is available.").await;
    assert_eq!(browser.unlabelled().await, json!([]));
    browser.screenshot(&format!("{name}-signup")).await;
    browser.fill("#organisation", "Acme").await;
    browser.fill("#username", "ann").await;
    browser.fill("#email", "ann@example.com").await;
    browser.fill("#password", "s3cret-pass").await;
    browser.submit("#signup button[type=submit]").await;

    // Logged in, in the new tenant's admin.
    assert_eq!(browser.url().await, format!("{acme_site}/admin"));
    assert_eq!(browser.text("#site-name").await, "Acme");
    browser.goto(&format!("{acme_site}/admin/polls/new")).await;
    browser.fill("#question", "Lunch or dinner?").await;
    browser.fill("#choices", "Lunch\nDinner").await;
    browser.submit("form.stacked button[type=submit]").await;
    let token = app.user("acme.polls.test", "bob").await;
    let polls = acme_polls(&app, &token).await;
    assert_eq!(
        polls.body[0]["question"],
        json!("Lunch or dinner?"),
        "{}",
        polls.body
    );

    // The same subdomain again: the form, saying it is taken.
    browser.delete_cookies().await;
    browser.goto(&format!("{public}/signup")).await;
    for (field, value) in [
        ("#organisation", "Acme again"),
        ("#slug", "acme"),
        ("#username", "ann"),
        ("#email", "ann@example.com"),
        ("#password", "s3cret-pass"),
    ] {
        browser.fill(field, value).await;
    }
    browser.submit("#signup button[type=submit]").await;
    assert_eq!(
        browser.text("#slug-error").await,
        "'acme' is taken: choose another subdomain."
    );

    // A third signup from this address within the hour: refused (429), nothing made.
    retype(&browser, "#slug", "acme-two").await;
    browser.fill("#password", "s3cret-pass").await;
    browser.submit("#signup button[type=submit]").await;
    assert_eq!(
        browser.text("#form-error").await,
        "Too many signups from your address. Try again later."
    );
    let acme_two = Slug::parse("acme-two").unwrap();
    assert!(
        app.tenancy
            .catalog()
            .by_slug(&acme_two)
            .await
            .unwrap()
            .is_none()
    );

    // The operator: suspend, resume, impersonate, delete and restore.
    browser.goto(&format!("{public}/console/login")).await;
    browser.fill("#name", "olga").await;
    browser.fill("#password", OPERATOR_PASSWORD).await;
    browser.submit("form.stacked button[type=submit]").await;
    browser.goto(&format!("{public}/console?q=acme")).await;
    wait_for_text(&browser, "#count", "1 tenant;").await;
    assert_eq!(browser.unlabelled().await, json!([]));
    browser.screenshot(&format!("{name}-console")).await;
    browser
        .goto(&format!("{public}/console/tenants/acme"))
        .await;
    wait_for_text(&browser, "#status", "active").await;
    browser.submit("#suspend").await;
    wait_for_text(&browser, "#status", "suspended").await;
    assert_eq!(
        status_of(&app, "acme.polls.test").await,
        StatusCode::FORBIDDEN
    );
    browser.submit("#resume").await;
    wait_for_text(&browser, "#status", "active").await;
    assert_ne!(
        status_of(&app, "acme.polls.test").await,
        StatusCode::FORBIDDEN
    );

    browser.submit("#impersonate").await;
    assert_eq!(browser.url().await, format!("{acme_site}/admin"));
    assert_eq!(
        browser.text("#impersonation").await,
        "Operator olga is viewing this site as ann. Log out to end it; it ends by itself within an hour."
    );
    browser.screenshot(&format!("{name}-impersonation")).await;

    browser
        .goto(&format!("{public}/console/tenants/acme"))
        .await;
    browser.fill("#confirm", "acme").await;
    browser.submit("#delete").await;
    wait_for_text(&browser, "#status", "deleted").await;
    assert_eq!(
        status_of(&app, "acme.polls.test").await,
        StatusCode::FORBIDDEN
    );
    browser.submit("#restore").await;
    wait_for_text(&browser, "#status", "active").await;
    assert_eq!(
        acme_polls(&app, &token).await.body[0]["question"],
        json!("Lunch or dinner?"),
        "restored with its data"
    );

    // A move to another isolation, its progress arriving on the task's page as it runs.
    let acme = Slug::parse("acme").unwrap();
    let isolation = app
        .tenancy
        .catalog()
        .details(&acme)
        .await
        .unwrap()
        .tenant
        .isolation;
    let to = match (mode, isolation) {
        (Mode::Sqlite, _) => None,
        (_, IsolationMode::Schema) => Some("shared"),
        _ => Some("schema"),
    };
    if let Some(to) = to {
        browser
            .goto(&format!("{public}/console/tenants/acme"))
            .await;
        browser
            .run(&format!(
                "document.getElementById('isolation').value = '{to}';"
            ))
            .await;
        browser.submit("#move").await;
        let lines = async || browser.text("#lines").await;
        let outcome = browser.text("#outcome").await;
        assert!(!outcome.contains("Failed"), "{}", lines().await);
        wait_for_text(&browser, "#outcome", "Done.").await;
        let lines = lines().await;
        assert!(
            lines.contains(&format!("Moved: acme is {to} now")),
            "{lines}"
        );
        browser.screenshot(&format!("{name}-move")).await;
        let polls = acme_polls(&app, &token).await;
        assert_eq!(
            polls.body[0]["question"],
            json!("Lunch or dinner?"),
            "moved with its data"
        );
    }

    browser.goto(&format!("{public}/console/audit")).await;
    let log = browser.text("#audit").await;
    for action in [
        "tenant.suspend",
        "tenant.resume",
        "tenant.impersonate",
        "tenant.delete",
        "tenant.restore",
        "operator.login",
    ] {
        assert!(log.contains(action), "{action}: {log}");
    }
    assert_eq!(log.contains("tenant.move"), to.is_some(), "{log}");
    browser.screenshot(&format!("{name}-audit")).await;
}

#[tokio::test]
async fn sign_up_and_operate_in_chromium_schema() {
    sign_up_in_chromium(Mode::Schema, "platform-schema").await;
}

#[tokio::test]
async fn sign_up_and_operate_in_chromium_shared() {
    sign_up_in_chromium(Mode::Shared, "platform-shared").await;
}

#[tokio::test]
async fn sign_up_and_operate_in_chromium_database() {
    sign_up_in_chromium(Mode::Database, "platform-database").await;
}

#[tokio::test]
async fn sign_up_and_operate_in_chromium_sqlite() {
    sign_up_in_chromium(Mode::Sqlite, "platform-sqlite").await;
}
