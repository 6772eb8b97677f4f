//! The operators' console at `/console`, over HTTP as a browser sends it: its login and
//! cookie, the tenants list at scale, suspend and resume, impersonation, export, deletion,
//! and the audit log of it all (and of the platform API).

use crate::support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::visitor::Visitor;
use support::{Mode, PLATFORM_TOKEN, TestApp};
use tenantry::catalog::AuditFilter;
use tenantry::{IsolationMode, NewTenant, Slug};

const PUBLIC: &str = "polls.test";
const PASSWORD: &str = "operator-pass-1";

async fn with_operator(mode: Mode) -> TestApp {
    let app = support::spawn_app_in(mode).await;
    let hash = polls::auth::hash_password(PASSWORD);
    app.tenancy
        .catalog()
        .create_operator("olga", &hash)
        .await
        .unwrap();
    app
}

/// Logs in as olga; the reply to the POST.
async fn log_in(console: &mut Visitor<'_>, password: &str) -> support::visitor::Page {
    let form = console.get("/console/login").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    let csrf = form.csrf("/console/login");
    console
        .post(
            "/console/login",
            &[("csrf", &csrf), ("name", "olga"), ("password", password)],
        )
        .await
}

/// The CSRF token of the operator's session, from the logout form.
async fn csrf(console: &mut Visitor<'_>) -> String {
    let page = console.get("/console").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    page.csrf("/console/logout")
}

async fn actions(app: &TestApp, target: &str) -> Vec<(String, String, String)> {
    let filter = AuditFilter {
        target: Some(target.into()),
        ..AuditFilter::default()
    };
    let mut entries: Vec<_> = app
        .tenancy
        .catalog()
        .audit_log(&filter)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.actor, e.action, e.outcome))
        .collect();
    entries.reverse();
    entries
}

async fn site_status(app: &TestApp, host: &str) -> StatusCode {
    app.request(Method::GET, host, "/polls/", None, None)
        .await
        .status
}

#[tokio::test]
async fn an_operator_logs_in_suspends_resumes_impersonates_and_deletes() {
    let app = with_operator(Mode::Schema).await;
    app.staff_user("thor", "staff-pass-123").await;
    let mut console = Visitor::new(&app, PUBLIC, "");
    assert_eq!(console.get("/console").await.location(), "/console/login");
    let wrong = log_in(&mut console, "not-it").await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    let done = log_in(&mut console, PASSWORD).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    let cookie = done.set_cookies()[0].to_owned();
    assert!(cookie.starts_with("tenantry_operator="), "{cookie}");
    assert!(
        cookie.contains("Path=/console") && cookie.contains("HttpOnly"),
        "{cookie}"
    );

    let list = console.get("/console").await;
    assert!(list.text.contains("/console/tenants/thor"), "{}", list.text);
    let csrf = csrf(&mut console).await;

    // Suspend: thor's site answers 403; resume: 200 again.
    let suspended = console
        .post(
            "/console/tenants/thor/status",
            &[("csrf", &csrf), ("status", "suspended")],
        )
        .await;
    assert_eq!(
        suspended.status,
        StatusCode::SEE_OTHER,
        "{}",
        suspended.text
    );
    assert_eq!(
        site_status(&app, "thor.polls.test").await,
        StatusCode::FORBIDDEN
    );
    let page = console.get("/console/tenants/thor").await;
    assert!(page.text.contains("id=\"resume\""), "{}", page.text);
    console
        .post(
            "/console/tenants/thor/status",
            &[("csrf", &csrf), ("status", "active")],
        )
        .await;
    assert_ne!(
        site_status(&app, "thor.polls.test").await,
        StatusCode::FORBIDDEN
    );

    // Impersonate: the tenant's admin, as its staff user, with the banner, for an hour.
    let opened = console
        .post("/console/tenants/thor/impersonate", &[("csrf", &csrf)])
        .await;
    assert_eq!(opened.status, StatusCode::SEE_OTHER, "{}", opened.text);
    let link = opened.location().to_owned();
    let path = link
        .strip_prefix("http://thor.polls.test")
        .unwrap_or_else(|| panic!("{link}"));
    let mut thor = Visitor::new(&app, "thor.polls.test", "");
    let landed = thor.get(path).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text);
    let session = landed.set_cookies()[0].to_owned();
    assert!(session.contains("Max-Age=3600"), "{session}");
    let dashboard = thor.get("/admin").await;
    assert!(
        dashboard
            .text
            .contains("Operator olga is viewing this site as admin"),
        "{}",
        dashboard.text
    );
    assert!(
        thor.get("/admin/polls")
            .await
            .text
            .contains("id=\"impersonation\""),
        "the banner is on every page"
    );

    // The cookies open only their own side.
    let mut crossed = Visitor::new(&app, PUBLIC, "");
    crossed
        .cookies
        .insert("tenantry_operator".into(), thor.session().unwrap());
    assert_eq!(crossed.get("/console").await.status, StatusCode::SEE_OTHER);
    let operator_token = console.cookies["tenantry_operator"].clone();
    let mut crossed = Visitor::new(&app, "thor.polls.test", "");
    crossed
        .cookies
        .insert("tenantry_session".into(), operator_token);
    assert_eq!(crossed.get("/admin").await.status, StatusCode::SEE_OTHER);

    // Deleting needs the slug typed.
    let refused = console
        .post(
            "/console/tenants/potter/delete",
            &[("csrf", &csrf), ("confirm", "thor")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let no_csrf = console
        .post("/console/tenants/potter/delete", &[("confirm", "potter")])
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    let deleted = console
        .post(
            "/console/tenants/potter/delete",
            &[("csrf", &csrf), ("confirm", "potter")],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.text);
    // Kept for the grace period: answering 403, restorable.
    assert_eq!(
        site_status(&app, "potter.polls.test").await,
        StatusCode::FORBIDDEN
    );
    let kept = console.get("/console?status=deleted").await;
    assert!(
        kept.text.contains("/console/tenants/potter"),
        "{}",
        kept.text
    );
    let page = console.get("/console/tenants/potter").await;
    assert!(page.text.contains("id=\"restore\""), "{}", page.text);
    let restored = console
        .post("/console/tenants/potter/restore", &[("csrf", &csrf)])
        .await;
    assert_eq!(restored.status, StatusCode::SEE_OTHER, "{}", restored.text);
    assert_ne!(
        site_status(&app, "potter.polls.test").await,
        StatusCode::FORBIDDEN
    );
    console
        .post(
            "/console/tenants/potter/delete",
            &[("csrf", &csrf), ("confirm", "potter")],
        )
        .await;
    let kept = app
        .tenancy
        .purge_deleted(Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(kept.is_empty(), "within its grace: {kept:?}");
    let purged = app.tenancy.purge_deleted(Duration::ZERO).await.unwrap();
    assert_eq!(purged, [Slug::parse("potter").unwrap()]);
    assert_eq!(
        site_status(&app, "potter.polls.test").await,
        StatusCode::NOT_FOUND
    );

    let export = console.get("/console/tenants/thor/export").await;
    assert_eq!(export.status, StatusCode::OK);
    let export: serde_json::Value = serde_json::from_slice(&export.bytes).unwrap();
    assert_eq!(export["slug"], json!("thor"), "{export}");

    // Every action is in the audit log, in order, with who did it.
    let olga = "operator:olga".to_owned();
    let ok = "ok".to_owned();
    assert_eq!(
        actions(&app, "thor").await,
        [
            (olga.clone(), "tenant.suspend".to_owned(), ok.clone()),
            (olga.clone(), "tenant.resume".to_owned(), ok.clone()),
            (olga.clone(), "tenant.impersonate".to_owned(), ok.clone()),
            (olga.clone(), "tenant.export".to_owned(), ok.clone()),
        ]
    );
    assert_eq!(
        actions(&app, "potter").await,
        [
            (olga.clone(), "tenant.delete".to_owned(), ok.clone()),
            (olga.clone(), "tenant.restore".to_owned(), ok.clone()),
            (olga.clone(), "tenant.delete".to_owned(), ok.clone()),
        ]
    );
    let log = console.get("/console/audit").await;
    assert!(log.text.contains("operator.login"), "{}", log.text);
    assert!(log.text.contains("failed: wrong password"), "{}", log.text);

    let out = console.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(console.get("/console").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_tenant_list_searches_filters_and_pages() {
    let app = with_operator(Mode::Schema).await;
    for i in 0..60 {
        let slug = Slug::parse(&format!("t{i:02}")).unwrap();
        app.tenancy
            .create_tenant(NewTenant::new(slug, IsolationMode::Shared))
            .await
            .unwrap();
    }
    let mut console = Visitor::new(&app, PUBLIC, "");
    log_in(&mut console, PASSWORD).await;
    let first = console.get("/console").await;
    assert!(
        first.text.contains("62 tenants; page 1 of 2."),
        "{}",
        first.text
    );
    assert_eq!(first.text.matches("<tr>\n  <td><a href=").count(), 50);
    let second = console.get("/console?page=2").await;
    assert!(
        second.text.contains("/console/tenants/thor"),
        "{}",
        second.text
    );
    assert_eq!(second.text.matches("<tr>\n  <td><a href=").count(), 12);
    let search = console.get("/console?q=THO").await;
    assert!(
        search.text.contains("1 tenant; page 1 of 1."),
        "{}",
        search.text
    );
    let by_domain = console.get("/console?q=potter.polls").await;
    assert!(
        by_domain.text.contains("/console/tenants/potter"),
        "{}",
        by_domain.text
    );
    let wild = console.get("/console?q=t_1").await;
    assert!(
        wild.text.contains("0 tenants"),
        "'_' is a character, not a wildcard: {}",
        wild.text
    );
    let schema = console.get("/console?mode=schema").await;
    assert!(schema.text.contains("2 tenants"), "{}", schema.text);
    let bad = console.get("/console?mode=castle").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_platform_apis_changes_are_audited() {
    let app = support::spawn_app().await;
    let bearer = format!("Bearer {PLATFORM_TOKEN}");
    let created = app
        .request(
            Method::POST,
            PUBLIC,
            "/api/tenants/",
            Some(&bearer),
            Some(json!({ "slug": "odin" })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let taken = app
        .request(
            Method::POST,
            PUBLIC,
            "/api/tenants/",
            Some(&bearer),
            Some(json!({ "slug": "odin" })),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    app.request(
        Method::DELETE,
        PUBLIC,
        "/api/tenants/odin/",
        Some(&bearer),
        None,
    )
    .await;
    let entries = actions(&app, "odin").await;
    let api = "platform-api".to_owned();
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert_eq!(
        entries[0],
        (api.clone(), "tenant.create".into(), "ok".into())
    );
    assert_eq!(entries[1].1, "tenant.create");
    assert!(entries[1].2.starts_with("failed: "), "{entries:?}");
    assert_eq!(entries[2], (api, "tenant.delete".into(), "ok".into()));
}

#[tokio::test]
async fn the_console_renames_a_tenant_and_lists_the_database_servers() {
    let app = with_operator(Mode::Schema).await;
    let mut console = Visitor::new(&app, PUBLIC, "");
    log_in(&mut console, PASSWORD).await;
    let csrf = csrf(&mut console).await;
    let taken = console
        .post(
            "/console/tenants/thor/rename",
            &[("csrf", &csrf), ("name", "Thor"), ("new_slug", "potter")],
        )
        .await;
    assert_eq!(taken.status, StatusCode::BAD_REQUEST, "{}", taken.text);
    assert!(taken.text.contains("potter"), "{}", taken.text);
    let renamed = console
        .post(
            "/console/tenants/thor/rename",
            &[
                ("csrf", &csrf),
                ("name", "Thunder Inc"),
                ("new_slug", "thunder"),
            ],
        )
        .await;
    assert_eq!(renamed.status, StatusCode::SEE_OTHER, "{}", renamed.text);
    assert_eq!(renamed.location(), "/console/tenants/thunder");
    let page = console.get("/console/tenants/thunder").await;
    assert!(page.text.contains("Thunder Inc"), "{}", page.text);
    assert!(
        page.text.contains("thunder.polls.test (primary)"),
        "{}",
        page.text
    );
    assert_eq!(
        site_status(&app, "thor.polls.test").await,
        StatusCode::NOT_FOUND
    );
    let entries = actions(&app, "thor").await;
    assert_eq!(entries[0].1, "tenant.rename");
    assert!(entries[0].2.starts_with("failed: "), "{entries:?}");
    assert_eq!(entries[1].1, "tenant.rename");
    assert_eq!(entries[1].2, "ok");

    let servers = console.get("/console/servers").await;
    assert_eq!(servers.status, StatusCode::OK);
    assert!(
        servers.text.contains("id=\"no-servers\""),
        "{}",
        servers.text
    );
}

#[tokio::test]
async fn console_logins_are_limited_per_client_address() {
    let app = support::spawn_app_serving(Mode::Schema, |serving| {
        serving.limits.auth_rate_per_address = 3;
    })
    .await;
    let hash = polls::auth::hash_password(PASSWORD);
    app.tenancy
        .catalog()
        .create_operator("olga", &hash)
        .await
        .unwrap();
    let mut console = Visitor::new(&app, PUBLIC, "");
    for _ in 0..3 {
        assert_eq!(
            log_in(&mut console, "wrong").await.status,
            StatusCode::BAD_REQUEST
        );
    }
    // The address's minute is spent: even the right password waits.
    let limited = log_in(&mut console, PASSWORD).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text
    );
    assert!(limited.headers.contains_key("retry-after"));
    assert!(limited.text.contains("Too many logins"), "{}", limited.text);
}

/// The task page a POST led to: its id, then its events' whole stream, read to the end.
async fn follow_task(console: &mut Visitor<'_>, started: &support::visitor::Page) -> String {
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.text);
    let task = started.location().to_owned();
    assert!(task.starts_with("/console/tasks/"), "{task}");
    let page = console.get(&task).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let events = console.get(&format!("{task}/events")).await;
    assert_eq!(events.status, StatusCode::OK);
    assert_eq!(
        events.headers.get("content-type").unwrap(),
        "text/event-stream"
    );
    events.text
}

#[tokio::test]
async fn an_operator_moves_a_tenant_and_migrates_all_watching_progress_stream() {
    let app = with_operator(Mode::Schema).await;
    let token = app.user("thor.polls.test", "ann").await;
    let created = app
        .request(
            Method::POST,
            "thor.polls.test",
            "/polls/",
            Some(&token),
            Some(json!({"question": "Still here?"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let mut console = Visitor::new(&app, PUBLIC, "");
    log_in(&mut console, PASSWORD).await;
    let csrf = csrf(&mut console).await;

    let refused = console
        .post(
            "/console/tenants/thor/move",
            &[("csrf", &csrf), ("isolation", "sideways")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let started = console
        .post(
            "/console/tenants/thor/move",
            &[("csrf", &csrf), ("isolation", "shared"), ("server", "")],
        )
        .await;
    let stream = follow_task(&mut console, &started).await;
    assert!(
        stream.contains("event: line\ndata: Copying thor's data"),
        "{stream}"
    );
    assert!(
        stream.contains("data: Moved: thor is shared now"),
        "{stream}"
    );
    assert!(stream.ends_with("event: done\ndata: ok\n\n"), "{stream}");
    let details = app
        .tenancy
        .catalog()
        .details(&Slug::parse("thor").unwrap())
        .await
        .unwrap();
    assert_eq!(details.tenant.isolation, IsolationMode::Shared);
    let polls = app
        .request(
            Method::GET,
            "thor.polls.test",
            "/polls/",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        polls.body[0]["question"], "Still here?",
        "moved with its data: {:?}",
        polls.body
    );

    // Potter's record says it is behind this build's migrations: the page lists it, and
    // "migrate all" brings it current, tenant by tenant on the stream.
    sqlx::query("UPDATE tenantry.tenants SET migration_fingerprint = 'old' WHERE slug = 'potter'")
        .execute(
            &sqlx::PgPool::connect(app.settings.database_url.as_deref().unwrap())
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    let page = console.get("/console/migrations").await;
    assert!(
        page.text.contains("/console/tenants/potter"),
        "{}",
        page.text
    );
    assert!(
        !page.text.contains("/console/tenants/thor\""),
        "{}",
        page.text
    );
    let started = console
        .post("/console/migrations", &[("csrf", &csrf)])
        .await;
    let stream = follow_task(&mut console, &started).await;
    assert!(stream.contains("data: 1 tenant(s) to visit"), "{stream}");
    assert!(stream.contains("data: potter: up to date"), "{stream}");
    assert!(stream.ends_with("event: done\ndata: ok\n\n"), "{stream}");
    let page = console.get("/console/migrations").await;
    assert!(
        page.text.contains("0 may have migrations pending"),
        "{}",
        page.text
    );

    let log = actions(&app, "thor").await;
    assert!(
        log.contains(&("operator:olga".into(), "tenant.move".into(), "ok".into())),
        "{log:?}"
    );
}

#[tokio::test]
async fn the_console_changes_a_tenants_settings_as_the_schema_allows() {
    let app = with_operator(Mode::Schema).await;
    let mut console = Visitor::new(&app, PUBLIC, "");
    log_in(&mut console, PASSWORD).await;
    let csrf = csrf(&mut console).await;
    let path = "/console/tenants/thor/settings";
    for (patch, said) in [
        ("{not json", "not a JSON object"),
        ("[1]", "a JSON object of the keys to change"),
        (r#"{"primary_color": "red"}"#, "primary_color"),
        (r#"{"no_such_key": 1}"#, "no_such_key"),
    ] {
        let refused = console
            .post(path, &[("csrf", &csrf), ("patch", patch)])
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{patch}");
        assert!(refused.text.contains(said), "{patch}: {}", refused.text);
    }
    let saved = console
        .post(
            path,
            &[
                ("csrf", &csrf),
                ("patch", r##"{"primary_color": "#aa3300"}"##),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let thor = Slug::parse("thor").unwrap();
    let details = app.tenancy.catalog().details(&thor).await.unwrap();
    assert_eq!(details.tenant.settings["primary_color"], "#aa3300");
    let page = console.get("/console/tenants/thor").await;
    assert!(page.text.contains("#aa3300"), "{}", page.text);
    assert!(
        page.text.contains(" kB</dd>"),
        "thor's schema size: {}",
        page.text
    );
    let list = console.get("/console").await;
    assert!(list.text.contains("<td class=\"size\">"), "{}", list.text);
    let log = actions(&app, "thor").await;
    let saved = (
        "operator:olga".into(),
        "tenant.settings".into(),
        "ok".into(),
    );
    assert!(log.contains(&saved), "{log:?}");
}
