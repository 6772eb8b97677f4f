//! Self-service signup at `/signup` on the public site, over HTTP as a browser sends it: the
//! form, its live check, the landing in the new tenant's admin, and every refusal.

use crate::support;

use polls::limits::AuthLimits;
use polls::signup::PollsAdmin;
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::visitor::{Page, Visitor};
use support::{Mode, TestApp, spawn_app_serving};
use tenantry::lifecycle::PendingPool;
use tenantry::signup::{FieldError, FirstAdmin, Signup, SignupError, SignupOptions, SignupRequest};
use tenantry::{IsolationMode, Slug};

const PUBLIC: &str = "polls.test";

/// The app with signup open, `per_hour` signups an hour per address and `pending` pending
/// tenants.
async fn signup_app(mode: Mode, per_hour: u32, pending: usize) -> TestApp {
    spawn_app_serving(mode, |serving| {
        serving.signup.enabled = true;
        serving.signup.signup_rate_per_address = per_hour.try_into().unwrap();
        serving.signup.signup_pending = pending;
    })
    .await
}

/// Fills in and sends the signup form as `visitor`; the reply to the POST.
async fn sign_up(visitor: &mut Visitor<'_>, fields: &[(&str, &str)]) -> Page {
    let form = visitor.get("/signup").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    let csrf = form.csrf("/signup");
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    visitor.post("/signup", &all).await
}

fn acme(slug: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("organisation", "Acme & Sons"),
        ("slug", slug),
        ("username", "ann"),
        ("email", "ann@example.com"),
        ("password", "s3cret-pass"),
        ("website", ""),
    ]
}

/// A signup lands its person logged in in the new tenant's admin, where they create a poll,
/// and the new tenant's API answers with it; the link cannot be used twice.
async fn a_signup_lands_logged_in_and_the_new_tenant_works(mode: Mode) {
    let app = signup_app(mode, 10, 0).await;
    let mut visitor = Visitor::new(&app, PUBLIC, "");
    let check: serde_json::Value =
        serde_json::from_str(&visitor.get("/signup/check?slug=acme").await.text).unwrap();
    assert_eq!(check["available"], json!(true), "{check}");

    let done = sign_up(&mut visitor, &acme("acme")).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    // The Host the browser sent has no port, so neither has the tenant's address.
    let prefix = format!("http://acme.{PUBLIC}/admin/login/link?token=");
    let link = done.location().to_owned();
    let token = link
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{link}"));

    let mut acme = Visitor::new(&app, &format!("acme.{PUBLIC}"), "");
    let landed = acme.get(&format!("/admin/login/link?token={token}")).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text);
    assert_eq!(landed.location(), "/admin");
    let dashboard = acme.get("/admin").await;
    assert_eq!(dashboard.status, StatusCode::OK, "{}", dashboard.text);
    assert!(
        dashboard.text.contains("Acme &#38; Sons"),
        "{}",
        dashboard.text
    );
    assert!(dashboard.text.contains("ann"), "{}", dashboard.text);

    let csrf = acme.csrf().await;
    let created = acme
        .post("/admin/polls", &[("csrf", &csrf), ("question", "Lunch?")])
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text);
    let login = app
        .request(
            Method::POST,
            &format!("acme.{PUBLIC}"),
            "/login/",
            None,
            Some(json!({ "username": "ann", "password": "s3cret-pass" })),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let token = format!("Token {}", login.body["token"].as_str().unwrap());
    let polls = app
        .request(
            Method::GET,
            &format!("acme.{PUBLIC}"),
            "/polls/",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(polls.body[0]["question"], json!("Lunch?"), "{}", polls.body);

    let mut again = Visitor::new(&app, &format!("acme.{PUBLIC}"), "");
    let spent = again
        .get(&format!(
            "/admin/login/link?token={}",
            link.rsplit('=').next().unwrap()
        ))
        .await;
    assert_eq!(spent.status, StatusCode::BAD_REQUEST, "single use");
    let details = app
        .tenancy
        .catalog()
        .details(&Slug::parse("acme").unwrap())
        .await
        .unwrap();
    assert_eq!(details.tenant.name, "Acme & Sons");
}

#[tokio::test]
async fn a_signup_lands_logged_in_and_the_new_tenant_works_schema() {
    a_signup_lands_logged_in_and_the_new_tenant_works(Mode::Schema).await;
}

#[tokio::test]
async fn a_signup_lands_logged_in_and_the_new_tenant_works_shared() {
    a_signup_lands_logged_in_and_the_new_tenant_works(Mode::Shared).await;
}

#[tokio::test]
async fn a_signup_lands_logged_in_and_the_new_tenant_works_database() {
    a_signup_lands_logged_in_and_the_new_tenant_works(Mode::Database).await;
}

#[tokio::test]
async fn a_signup_lands_logged_in_and_the_new_tenant_works_sqlite() {
    a_signup_lands_logged_in_and_the_new_tenant_works(Mode::Sqlite).await;
}

#[tokio::test]
async fn a_signup_lands_logged_in_and_the_new_tenant_works_dedicated() {
    a_signup_lands_logged_in_and_the_new_tenant_works(Mode::Dedicated).await;
}

#[tokio::test]
async fn a_signup_takes_a_pending_tenant_and_lands_the_same() {
    let app = signup_app(Mode::Database, 10, 2).await;
    let pending = wait_for_pending(&app, 2).await;
    let mut visitor = Visitor::new(&app, PUBLIC, "");
    let done = sign_up(&mut visitor, &acme("acme")).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    let acme = app
        .tenancy
        .catalog()
        .details(&Slug::parse("acme").unwrap())
        .await
        .unwrap();
    assert!(
        pending.contains(&acme.tenant.id),
        "acme is one of the pending tenants, renamed"
    );
    let mut site = Visitor::new(&app, &format!("acme.{PUBLIC}"), "");
    let token = done.location().rsplit('=').next().unwrap().to_owned();
    let landed = site.get(&format!("/admin/login/link?token={token}")).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text);
    assert_eq!(site.get("/admin").await.status, StatusCode::OK);
    // The pool is refilled in the background.
    wait_for_pending(&app, 2).await;
}

/// The ids of the pending tenants, once there are `count`.
async fn wait_for_pending(app: &TestApp, count: usize) -> Vec<uuid::Uuid> {
    for _ in 0..600 {
        let pending = app.tenancy.catalog().list_pending().await.unwrap();
        if pending.len() == count {
            return pending.iter().map(|p| p.tenant.id).collect();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the pool never held {count} pending tenants");
}

#[tokio::test]
async fn a_taken_slug_a_bad_password_and_a_reserved_name_get_the_form_again() {
    let app = signup_app(Mode::Schema, 30, 0).await;
    let mut visitor = Visitor::new(&app, PUBLIC, "");
    let check: serde_json::Value =
        serde_json::from_str(&visitor.get("/signup/check?slug=thor").await.text).unwrap();
    assert_eq!(
        check,
        json!({ "slug": "thor", "available": false, "message": "'thor' is taken." })
    );

    // Taken between the check and the submit.
    let check: serde_json::Value =
        serde_json::from_str(&visitor.get("/signup/check?slug=acme").await.text).unwrap();
    assert_eq!(check["available"], json!(true));
    app.tenancy
        .create_tenant(tenantry::NewTenant::new(
            Slug::parse("acme").unwrap(),
            tenantry::IsolationMode::Schema,
        ))
        .await
        .unwrap();
    let taken = sign_up(&mut visitor, &acme("acme")).await;
    assert_eq!(taken.status, StatusCode::BAD_REQUEST, "{}", taken.text);
    assert!(
        taken
            .text
            .contains("&#39;acme&#39; is taken: choose another subdomain."),
        "{}",
        taken.text
    );
    assert!(
        taken.text.contains("value=\"Acme &#38; Sons\""),
        "{}",
        taken.text
    );
    assert!(
        !taken.text.contains("s3cret-pass"),
        "the password is not echoed"
    );

    let mut fields = acme("bravo");
    fields[4] = ("password", "");
    let refused = sign_up(&mut visitor, &fields).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.text.contains("id=\"password-error\""),
        "{}",
        refused.text
    );
    for slug in ["www", "Bad Slug", "pg-x"] {
        let refused = sign_up(&mut visitor, &acme(slug)).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{slug}");
        assert!(
            refused.text.contains("id=\"slug-error\""),
            "{slug}: {}",
            refused.text
        );
    }
    let names: Vec<String> = app
        .tenancy
        .catalog()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.tenant.slug.to_string())
        .collect();
    assert_eq!(
        names,
        ["acme", "potter", "thor"],
        "nothing else was created"
    );
}

#[tokio::test]
async fn bots_stale_forms_and_floods_are_refused_and_create_nothing() {
    let app = signup_app(Mode::Schema, 3, 0).await;
    let mut visitor = Visitor::new(&app, PUBLIC, "");
    let mut fields = acme("botco");
    fields[5] = ("website", "http://spam.example");
    let bot = sign_up(&mut visitor, &fields).await;
    assert_eq!(bot.status, StatusCode::BAD_REQUEST, "{}", bot.text);

    // Without the form's cookie, a cross-site post is refused.
    let mut stranger = Visitor::new(&app, PUBLIC, "");
    let mut forged = vec![("csrf", "0".repeat(64))];
    forged.extend(acme("forged").iter().map(|(k, v)| (*k, v.to_string())));
    let forged: Vec<(&str, &str)> = forged.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        stranger.post("/signup", &forged).await.status,
        StatusCode::FORBIDDEN
    );

    // The bot's attempt counted: two more, then 429.
    assert_eq!(
        sign_up(&mut visitor, &acme("one")).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        sign_up(&mut visitor, &acme("two")).await.status,
        StatusCode::SEE_OTHER
    );
    let flooded = sign_up(&mut visitor, &acme("three")).await;
    assert_eq!(
        flooded.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        flooded.text
    );
    let retry: u64 = flooded.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1200).contains(&retry), "{retry}");
    assert!(
        flooded.text.contains("Too many signups"),
        "{}",
        flooded.text
    );
    for slug in ["botco", "forged", "three"] {
        let found = app
            .tenancy
            .catalog()
            .by_slug(&Slug::parse(slug).unwrap())
            .await
            .unwrap();
        assert!(found.is_none(), "{slug} was not created");
    }
}

#[tokio::test]
async fn signup_is_off_unless_configured() {
    let app = support::spawn_app().await;
    let mut visitor = Visitor::new(&app, PUBLIC, "");
    assert_eq!(visitor.get("/signup").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        visitor.get("/signup/check?slug=acme").await.status,
        StatusCode::NOT_FOUND
    );
    let landing = app
        .client
        .get(format!("http://{}/", app.addr))
        .header("host", PUBLIC)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!landing.contains("/signup"), "{landing}");

    let open = signup_app(Mode::Schema, 10, 0).await;
    let landing = open
        .client
        .get(format!("http://{}/", open.addr))
        .header("host", format!("www.{PUBLIC}"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(landing.contains("/signup\" id=\"signup\""), "{landing}");
    assert!(landing.contains("/console\" id=\"console\""), "{landing}");
}

/// A first admin the app refuses to store, after the tenant was made.
struct RefusingAdmin;

impl FirstAdmin for RefusingAdmin {
    type Prepared = ();

    fn check(&self, _: &SignupRequest) -> Vec<FieldError> {
        Vec::new()
    }

    async fn prepare(&self, _: &SignupRequest) -> Result<(), SignupError> {
        Ok(())
    }

    async fn create(&self, _: &mut tenantry::Db, _: ()) -> Result<i64, SignupError> {
        Err(SignupError::Failed(
            "the app refused the first admin".into(),
        ))
    }
}

fn request(slug: &str) -> SignupRequest {
    SignupRequest {
        organisation: format!("Org {slug}"),
        slug: slug.into(),
        username: "ann".into(),
        email: "ann@example.com".into(),
        password: "s3cret-pass".into(),
        website: String::new(),
    }
}

fn admin_of(app: &TestApp, hash_queue: usize) -> PollsAdmin {
    let mut auth = app.settings.serving.limits.auth();
    auth.hash_queue = hash_queue;
    PollsAdmin {
        auth: AuthLimits::new(auth),
    }
}

/// A failure after the tenant was made (built, or taken from the pool) removes it again.
#[tokio::test]
async fn a_signup_that_fails_after_the_tenant_was_made_leaves_nothing() {
    let app = support::spawn_app_in(Mode::Schema).await;
    let signup = Signup::new(app.tenancy.clone(), RefusingAdmin, SignupOptions::default());
    let failed = signup.submit(request("acme"), None).await;
    assert!(matches!(failed, Err(SignupError::Failed(_))), "{failed:?}");
    let pool = PendingPool::start(app.tenancy.clone(), vec![(IsolationMode::Schema, 1)]);
    pool.fill().await.unwrap();
    let pooled = Signup::new(app.tenancy.clone(), RefusingAdmin, SignupOptions::default())
        .with_pending(pool.clone());
    let failed = pooled.submit(request("bravo"), None).await;
    assert!(matches!(failed, Err(SignupError::Failed(_))), "{failed:?}");
    for slug in ["acme", "bravo"] {
        let found = app
            .tenancy
            .catalog()
            .by_slug(&Slug::parse(slug).unwrap())
            .await;
        assert!(found.unwrap().is_none(), "{slug}");
    }
    let pg = sqlx::PgPool::connect(app.settings.database_url.as_deref().unwrap())
        .await
        .unwrap();
    let schemas: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname IN ('acme', 'bravo')")
            .fetch_one(&pg)
            .await
            .unwrap();
    assert_eq!(schemas, 0, "their schemas are dropped too");
}

/// A signup whose request is dropped at once (the client went away) still finishes: the
/// tenant and its first admin, never one without the other.
#[tokio::test]
async fn a_signup_cancelled_by_its_client_finishes_whole() {
    let app = support::spawn_app_in(Mode::Database).await;
    let signup = Signup::new(
        app.tenancy.clone(),
        admin_of(&app, 16),
        SignupOptions::default(),
    );
    let cancelled = tokio::time::timeout(
        std::time::Duration::from_millis(1),
        signup.submit(request("acme"), None),
    )
    .await;
    assert!(
        cancelled.is_err(),
        "the request was dropped before it finished"
    );
    let acme = Slug::parse("acme").unwrap();
    for _ in 0..400 {
        if app
            .tenancy
            .catalog()
            .by_slug(&acme)
            .await
            .unwrap()
            .is_some()
        {
            let staff: Option<i64> = app
                .tenancy
                .in_tenant(&acme, async |db| -> Result<_, tenantry::Error> {
                    Ok(db
                        .query("SELECT id FROM users WHERE username = 'ann' AND is_staff")
                        .fetch_optional_scalar()
                        .await?)
                })
                .await
                .unwrap();
            if staff.is_some() {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the cancelled signup never finished");
}

/// 50 signups at once against a pool of 10 pending tenants: 50 distinct tenants, each with
/// its admin, and no pending tenant handed to two of them.
#[tokio::test]
async fn fifty_concurrent_signups_against_a_pool_of_ten() {
    let app = support::spawn_app_in(Mode::Schema).await;
    let pool = PendingPool::start(app.tenancy.clone(), vec![(IsolationMode::Schema, 10)]);
    pool.fill().await.unwrap();
    let pending: std::collections::HashSet<_> = app
        .tenancy
        .catalog()
        .list_pending()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.tenant.id)
        .collect();
    let signup = Signup::new(
        app.tenancy.clone(),
        admin_of(&app, 64),
        SignupOptions::default(),
    )
    .with_pending(pool);
    let signups = (0..50).map(|i| signup.submit(request(&format!("org{i}")), None));
    let done = futures::future::join_all(signups).await;
    let ids: std::collections::HashSet<_> = done
        .iter()
        .map(|d| d.as_ref().expect("every signup succeeds").tenant.tenant.id)
        .collect();
    assert_eq!(ids.len(), 50, "50 distinct tenants");
    assert!(
        pending.iter().all(|id| ids.contains(id)),
        "the ten pending ones among them"
    );
    for i in 0..50 {
        let slug = Slug::parse(&format!("org{i}")).unwrap();
        let admins: i64 = app
            .tenancy
            .in_tenant(&slug, async |db| -> Result<_, tenantry::Error> {
                Ok(db
                    .query("SELECT count(*) FROM users")
                    .fetch_scalar()
                    .await?)
            })
            .await
            .unwrap();
        assert_eq!(admins, 1, "org{i} has its one admin");
    }
}
