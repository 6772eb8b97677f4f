//! The tenants' admin over HTTP: sessions (rotation, expiry, logout, cookie attributes),
//! CSRF, login throttling, logos, settings and users, in several modes.

use crate::support;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::visitor::{Page, Visitor};
use support::{Mode, PIXEL_PNG, TestApp, spawn_app_in};
use tenantry::Slug;

const PASSWORD: &str = "staff-pass-123";

async fn sessions_rotate_expire_and_end_with_logout(mode: Mode) {
    let app = spawn_app_in(mode).await;
    app.staff_user("thor", PASSWORD).await;
    let mut thor = Visitor::new(&app, "thor.polls.test", "");
    let anonymous = thor.get("/admin").await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    assert_eq!(anonymous.location(), "/admin/login");

    let login = thor.log_in("admin", PASSWORD).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.text);
    assert_eq!(login.location(), "/admin");
    let cookie = login.set_cookies()[0].to_owned();
    assert!(cookie.starts_with("tenantry_session="), "{cookie}");
    let attributes: Vec<&str> = cookie.split("; ").skip(1).collect();
    for attribute in ["Path=/", "HttpOnly", "SameSite=Lax"] {
        assert!(attributes.contains(&attribute), "{attribute}: {cookie}");
    }
    assert!(
        !attributes.contains(&"Secure"),
        "no Secure over plain http: {cookie}"
    );
    let first = thor.session().unwrap();
    assert_eq!(thor.get("/admin").await.status, StatusCode::OK);

    // Logging in again (with the old cookie sent) gives a new id and ends the old one.
    thor.log_in("admin", PASSWORD).await;
    let second = thor.session().unwrap();
    assert_ne!(first, second);
    let mut stale = Visitor::new(&app, "thor.polls.test", "");
    stale.cookies.insert("tenantry_session".into(), first);
    assert_eq!(stale.get("/admin").await.status, StatusCode::SEE_OTHER);

    // Logging out ends the session, which its cookie cannot bring back.
    let csrf = thor.csrf().await;
    let out = thor.post("/admin/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(thor.session().is_none(), "the cookie is cleared");
    thor.cookies.insert("tenantry_session".into(), second);
    assert_eq!(thor.get("/admin").await.status, StatusCode::SEE_OTHER);

    // An expired session is no session.
    thor.log_in("admin", PASSWORD).await;
    assert_eq!(thor.get("/admin").await.status, StatusCode::OK);
    app.tenancy
        .in_tenant(&Slug::parse("thor").unwrap(), async |db| {
            db.query("UPDATE web_sessions SET expires_at = 0")
                .execute()
                .await
                .map_err(tenantry::Error::from)
        })
        .await
        .unwrap();
    assert_eq!(thor.get("/admin").await.status, StatusCode::SEE_OTHER);

    // Over https (as a proxy says), cookies are Secure; a path-prefix tenant's are scoped
    // to its mount.
    let mut secure = Visitor::new(&app, "thor.polls.test", "");
    secure.headers.push(("x-forwarded-proto", "https"));
    let login = secure.log_in("admin", PASSWORD).await;
    assert!(
        login.set_cookies()[0].split("; ").any(|a| a == "Secure"),
        "{:?}",
        login.set_cookies()
    );
    let mut prefixed = Visitor::new(&app, "polls.test", "/t/thor");
    let login = prefixed.log_in("admin", PASSWORD).await;
    assert_eq!(login.location(), "/t/thor/admin");
    assert!(
        login.set_cookies()[0].contains("; Path=/t/thor;"),
        "{:?}",
        login.set_cookies()
    );

    // A login form's token must match its cookie.
    let mut forger = Visitor::new(&app, "thor.polls.test", "");
    forger.get("/admin/login").await;
    let forged = [
        ("csrf", "0".repeat(64)),
        ("username", "admin".into()),
        ("password", PASSWORD.into()),
    ];
    let forged: Vec<(&str, &str)> = forged.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        forger.post("/admin/login", &forged).await.status,
        StatusCode::FORBIDDEN
    );

    // By custom domain: thor's session opens thor's admin there, and potter's nowhere.
    app.staff_user("potter", PASSWORD).await;
    for (slug, domain) in [
        ("thor", "polls.thor.example"),
        ("potter", "polls.potter.example"),
    ] {
        let domain = tenantry::HostName::parse(domain).unwrap();
        let slug = Slug::parse(slug).unwrap();
        app.tenancy.add_domain(&slug, &domain).await.unwrap();
    }
    let mut custom = Visitor::new(&app, "polls.thor.example", "");
    let login = custom.log_in("admin", PASSWORD).await;
    assert_eq!(login.location(), "/admin");
    assert_eq!(custom.get("/admin").await.status, StatusCode::OK);
    custom.host = "polls.potter.example".into();
    let elsewhere = custom.get("/admin").await;
    assert_eq!(
        elsewhere.status,
        StatusCode::SEE_OTHER,
        "thor's session on potter's domain"
    );
    custom.host = "potter.polls.test".into();
    assert_eq!(custom.get("/admin").await.status, StatusCode::SEE_OTHER);
    custom.host = "polls.test".into();
    custom.mount = "/t/potter".into();
    assert_eq!(custom.get("/admin").await.status, StatusCode::SEE_OTHER);
}

async fn logins_are_throttled_per_tenant_and_username(mode: Mode) {
    let app = spawn_app_in(mode).await;
    app.staff_user("thor", PASSWORD).await;
    app.staff_user("potter", PASSWORD).await;
    let mut thor = Visitor::new(&app, "thor.polls.test", "");
    for _ in 0..5 {
        let wrong = thor.log_in("admin", "wrong-password").await;
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
        assert!(wrong.text.contains("Wrong username or password."));
    }
    let locked = thor.log_in("admin", PASSWORD).await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        locked.text
    );
    let wait: u64 = locked.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
    assert!(thor.session().is_none());
    // Another tenant's account of the same name, and another account of this tenant, are not.
    let mut potter = Visitor::new(&app, "potter.polls.test", "");
    assert_eq!(
        potter.log_in("admin", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let other = thor.log_in("nobody", "x").await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST);
}

/// `POST /login/` of the API for `admin` of the tenant at `host`.
async fn api_login(app: &TestApp, host: &str, password: &str) -> support::Reply {
    let body = json!({ "username": "admin", "password": password });
    app.request(Method::POST, host, "/login/", None, Some(body))
        .await
}

/// The admin's login and the API's `/login/` share one lockout per tenant and username, and
/// attempts made at once cannot get more passwords checked than the limit.
async fn one_lockout_for_every_door(mode: Mode) {
    let app = spawn_app_in(mode).await;
    app.staff_user("thor", PASSWORD).await;
    app.staff_user("potter", PASSWORD).await;
    // Wrong passwords through the API lock the admin's door, and the API's own.
    for _ in 0..5 {
        let wrong = api_login(&app, "thor.polls.test", "wrong-password").await;
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.body);
    }
    let mut thor = Visitor::new(&app, "thor.polls.test", "");
    let locked = thor.log_in("admin", PASSWORD).await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        locked.text
    );
    let locked = api_login(&app, "thor.polls.test", PASSWORD).await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        locked.body
    );
    assert!(locked.headers.contains_key("retry-after"));
    assert!(locked.body["detail"].is_string(), "{}", locked.body);

    // 30 wrong attempts at once, half through each door: at most 5 are checked.
    let admin_tries = (0..15).map(|_| async {
        let mut visitor = Visitor::new(&app, "potter.polls.test", "");
        visitor.log_in("admin", "wrong-password").await.status
    });
    let api_tries =
        (0..15).map(|_| async { api_login(&app, "potter.polls.test", "wrong").await.status });
    let (admin, api) = futures::join!(
        futures::future::join_all(admin_tries),
        futures::future::join_all(api_tries)
    );
    let statuses: Vec<StatusCode> = admin.into_iter().chain(api).collect();
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::BAD_REQUEST)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(checked + refused, 30, "{statuses:?}");
    assert!(
        checked <= 5,
        "{checked} of 30 concurrent attempts were checked"
    );
    let locked = api_login(&app, "potter.polls.test", PASSWORD).await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        locked.body
    );
}

async fn forms_need_their_sessions_csrf_token(mode: Mode) {
    let app = spawn_app_in(mode).await;
    app.staff_user("thor", PASSWORD).await;
    app.staff_user("potter", PASSWORD).await;
    let mut thor = Visitor::new(&app, "thor.polls.test", "");
    thor.log_in("admin", PASSWORD).await;
    let mut potter = Visitor::new(&app, "potter.polls.test", "");
    potter.log_in("admin", PASSWORD).await;
    let potters_token = potter.csrf().await;
    let thors_token = thor.csrf().await;
    for (token, expected) in [
        (None, StatusCode::FORBIDDEN),
        (Some(potters_token.as_str()), StatusCode::FORBIDDEN),
        (Some("short"), StatusCode::FORBIDDEN),
        (Some(thors_token.as_str()), StatusCode::SEE_OTHER),
    ] {
        let mut form = vec![("question", "Which hammer?"), ("choices", "Mjolnir")];
        if let Some(token) = token {
            form.push(("csrf", token));
        }
        let reply = thor.post("/admin/polls", &form).await;
        assert_eq!(reply.status, expected, "{token:?}: {}", reply.text);
    }
    let dashboard = thor.get("/admin").await;
    assert!(
        dashboard.text.contains(r#"id="count-polls">1<"#),
        "{}",
        dashboard.text
    );
    // A malformed form is a 400, not a 500.
    let bad = thor
        .post(
            "/admin/polls",
            &[("csrf", &thors_token), ("question", "a"), ("question", "b")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
}

async fn upload(
    visitor: &mut Visitor<'_>,
    csrf: &str,
    name: &str,
    data: Vec<u8>,
    kind: &str,
) -> Page {
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf.to_owned())
        .part(
            "logo",
            reqwest::multipart::Part::bytes(data)
                .file_name(name.to_owned())
                .mime_str(kind)
                .unwrap(),
        );
    let content_type = format!("multipart/form-data; boundary={}", form.boundary());
    let body = reqwest::Body::wrap_stream(form.into_stream());
    visitor
        .send(
            Method::POST,
            "/admin/settings/logo",
            Some(body),
            Some(content_type),
        )
        .await
}

async fn logos_are_checked_from_their_bytes_and_stay_with_their_tenant(mode: Mode) {
    let app = spawn_app_in(mode).await;
    app.staff_user("thor", PASSWORD).await;
    let mut thor = Visitor::new(&app, "thor.polls.test", "");
    thor.log_in("admin", PASSWORD).await;
    let csrf = thor.csrf().await;
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>".to_vec();
    let refused = upload(&mut thor, &csrf, "logo.png", svg, "image/png").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.text.contains("a logo is a PNG, JPEG or WebP image"),
        "{}",
        refused.text
    );
    let mut big = PIXEL_PNG.to_vec();
    big.resize(300 * 1024, 0);
    let too_big = upload(&mut thor, &csrf, "big.png", big, "image/png").await;
    assert_eq!(
        too_big.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        too_big.text
    );
    // Said in the tenant's frame, with the rule and what to do.
    assert!(
        too_big.text.contains("A logo may be at most 256 KiB")
            && too_big.text.contains(r#"<header class="brand">"#)
            && too_big.text.contains("Back to the dashboard"),
        "{}",
        too_big.text
    );
    let forged = upload(
        &mut thor,
        &"0".repeat(64),
        "logo.png",
        PIXEL_PNG.to_vec(),
        "image/png",
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(thor.get("/admin/logo").await.status, StatusCode::NOT_FOUND);

    // Named and typed as an SVG, but a PNG by its bytes: served as a PNG.
    let saved = upload(
        &mut thor,
        &csrf,
        "logo.svg",
        PIXEL_PNG.to_vec(),
        "image/svg+xml",
    )
    .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let logo = thor.get("/admin/logo").await;
    assert_eq!(logo.status, StatusCode::OK);
    assert_eq!(logo.headers["content-type"], "image/png");
    assert_eq!(logo.headers["x-content-type-options"], "nosniff");
    assert_eq!(logo.bytes, PIXEL_PNG);
    let mut potter = Visitor::new(&app, "potter.polls.test", "");
    assert_eq!(
        potter.get("/admin/logo").await.status,
        StatusCode::NOT_FOUND
    );

    // The logo moves with its tenant's data.
    if matches!(mode, Mode::Schema) {
        let thor_slug = Slug::parse("thor").unwrap();
        for isolation in [
            tenantry::IsolationMode::Database,
            tenantry::IsolationMode::Shared,
        ] {
            let target = tenantry::lifecycle::MoveTarget {
                isolation,
                server: None,
            };
            app.tenancy.move_tenant(&thor_slug, target).await.unwrap();
            let moved = thor.get("/admin/logo").await;
            assert_eq!(
                moved.status,
                StatusCode::OK,
                "after a move to {isolation:?}"
            );
            assert_eq!(moved.bytes, PIXEL_PNG);
        }
    }
}

/// Every admin page a logged-in staff user reaches by a GET; `{poll}` is a poll's id.
const PAGES: [&str; 6] = [
    "/admin",
    "/admin/polls",
    "/admin/polls/new",
    "/admin/users",
    "/admin/settings",
    "/admin/polls/{poll}",
];

/// Visits every admin page of `visitor`'s tenant, logged out (the login page) and logged
/// in, and checks each answers 200 and shows the logo exactly when the tenant has one.
async fn every_page_answers(visitor: &mut Visitor<'_>, has_logo: bool) {
    let logo = format!("src=\"{}/admin/logo\"", visitor.mount);
    let login = visitor.get("/admin/login").await;
    assert_eq!(
        login.status,
        StatusCode::OK,
        "{}: {}",
        visitor.host,
        login.text
    );
    assert_eq!(login.text.contains(&logo), has_logo, "{}", login.text);
    let landed = visitor.log_in("admin", PASSWORD).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text);
    let csrf = visitor.csrf().await;
    let created = visitor
        .post(
            "/admin/polls",
            &[
                ("csrf", csrf.as_str()),
                ("question", "Logo or not?"),
                ("choices", "Yes\nNo"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text);
    let poll = created.location().rsplit('/').next().unwrap().to_owned();
    for path in PAGES {
        let path = path.replace("{poll}", &poll);
        let page = visitor.get(&path).await;
        assert_eq!(
            page.status,
            StatusCode::OK,
            "{} {path}: {}",
            visitor.host,
            page.text
        );
        assert_eq!(page.text.contains(&logo), has_logo, "{path}: {}", page.text);
    }
    let logout = visitor.csrf().await;
    let out = visitor
        .post("/admin/logout", &[("csrf", logout.as_str())])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.text);
}

/// With a logo stored, every admin page of its tenant still answers, the login page
/// first (staff must be able to reach the page that removes it), on every engine; a
/// tenant without one is unchanged.
async fn every_page_answers_with_and_without_a_logo(mode: Mode) {
    let app = spawn_app_in(mode).await;
    for slug in ["thor", "potter"] {
        app.staff_user(slug, PASSWORD).await;
    }
    let mut thor = Visitor::new(&app, "thor.polls.test", "");
    let mut potter = Visitor::new(&app, "potter.polls.test", "");
    every_page_answers(&mut thor, false).await;
    thor.log_in("admin", PASSWORD).await;
    let csrf = thor.csrf().await;
    let saved = upload(
        &mut thor,
        &csrf,
        "logo.png",
        PIXEL_PNG.to_vec(),
        "image/png",
    )
    .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let logout = thor.csrf().await;
    thor.post("/admin/logout", &[("csrf", logout.as_str())])
        .await;
    every_page_answers(&mut thor, true).await;
    every_page_answers(&mut potter, false).await;
    // By path prefix too, where the router serves dedicated tenants as well.
    if !matches!(mode, Mode::DedicatedBehindNginx) {
        let mut by_path = Visitor::new(&app, "polls.test", "/t/thor");
        every_page_answers(&mut by_path, true).await;
    }
}

async fn settings_and_users_pages(mode: Mode) {
    let app = spawn_app_in(mode).await;
    app.staff_user("thor", PASSWORD).await;
    let mut thor = Visitor::new(&app, "thor.polls.test", "");
    // nginx takes a dedicated tenant's host straight to its server, which cannot reach the
    // catalog; only a router that applies changes handed back may mark a request so, and
    // nginx removes a client's mark.
    let editable = !matches!(mode, Mode::DedicatedBehindNginx);
    thor.headers.push(("x-tenantry-router", "settings"));
    thor.log_in("admin", PASSWORD).await;
    let csrf = thor.csrf().await;
    let form = |color: &'static str, max: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("display_name", "Asgard".to_owned()),
            ("primary_color", color.to_owned()),
            ("time_zone", "Asia/Tokyo".to_owned()),
            ("max_choices_per_poll", max.to_owned()),
            ("allow_vote_change", "true".to_owned()),
        ]
    };
    let post_form = async |visitor: &mut Visitor<'_>, fields: Vec<(&'static str, String)>| {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        visitor.post("/admin/settings", &fields).await
    };
    if editable {
        // The form as it is shown, saved unchanged, stores nothing: defaults stay defaults.
        let untouched = vec![
            ("csrf", csrf.clone()),
            ("display_name", String::new()),
            ("primary_color", "#2f5d8a".to_owned()),
            ("time_zone", "UTC".to_owned()),
            ("signup_open", "true".to_owned()),
            ("max_choices_per_poll", String::new()),
        ];
        let saved = post_form(&mut thor, untouched).await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
        let thor_slug = Slug::parse("thor").unwrap();
        let stored = app.tenancy.catalog().details(&thor_slug).await.unwrap();
        assert_eq!(stored.tenant.settings, json!({}));
        let page = thor.get("/admin/settings").await.text;
        assert!(page.contains("The settings were saved."), "{page}");
    }
    let invalid = post_form(&mut thor, form("red;}", "0")).await;
    if !editable {
        assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
        assert!(
            invalid.text.contains("changed by the platform"),
            "{}",
            invalid.text
        );
        assert!(
            thor.get("/admin/settings")
                .await
                .text
                .contains("<fieldset disabled>")
        );
    } else {
        assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
        assert!(
            invalid
                .text
                .contains("primary_color: &#39;red;}&#39; is not a colour"),
            "{}",
            invalid.text
        );
        assert!(
            invalid
                .text
                .contains("max_choices_per_poll: a limit is 1 to 100"),
            "{}",
            invalid.text
        );
        let mut far = form("#336699", "");
        far.retain(|(key, _)| *key != "time_zone");
        far.push(("time_zone", "Mars/Base".to_owned()));
        let refused = post_form(&mut thor, far).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert!(
            refused
                .text
                .contains("time_zone: &#39;Mars/Base&#39; is not a time zone"),
            "{}",
            refused.text
        );
        let saved = post_form(&mut thor, form("#336699", "")).await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
        let tenant = app
            .tenancy
            .catalog()
            .details(&Slug::parse("thor").unwrap())
            .await
            .unwrap()
            .tenant;
        assert_eq!(
            tenant.settings,
            json!({
                "display_name": "Asgard", "primary_color": "#336699", "signup_open": false,
                "allow_vote_change": true, "time_zone": "Asia/Tokyo"
            }),
            "an unchecked box is false, an empty limit none"
        );
        let style = thor.get("/admin/style.css").await;
        assert!(
            style.text.starts_with(
                ":root { --primary: #336699; --on-primary: #ffffff; --primary-text: #336699; }"
            ),
            "{}",
            style.text
        );
        let closed = app
            .request(
                Method::POST,
                "thor.polls.test",
                "/users/",
                None,
                Some(json!({"username": "x", "password": "long-enough-1"})),
            )
            .await;
        assert_eq!(closed.status, StatusCode::FORBIDDEN, "{}", closed.body);
    }

    // Users: created with a staff flag, their password reset (ending their sessions).
    let created = thor
        .post(
            "/admin/users",
            &[
                ("csrf", &csrf),
                ("username", "loki"),
                ("email", "loki@asgard.test"),
                ("password", "mischief-123"),
                ("staff", "true"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text);
    let duplicate = thor
        .post(
            "/admin/users",
            &[
                ("csrf", &csrf),
                ("username", "loki"),
                ("password", "mischief-123"),
            ],
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::BAD_REQUEST);
    assert!(duplicate.text.contains("already exists"));
    let mut loki = Visitor::new(&app, "thor.polls.test", "");
    assert_eq!(
        loki.log_in("loki", "mischief-123").await.status,
        StatusCode::SEE_OTHER
    );
    let users = thor.get("/admin/users").await;
    let id_start = users.text.find("/admin/users/").unwrap() + 13;
    let ids: Vec<&str> = users.text[id_start..].split('/').take(1).collect();
    // loki sorts after admin: the second user's forms.
    let loki_id = users
        .text
        .match_indices("/admin/users/")
        .map(|(at, _)| users.text[at + 13..].split('/').next().unwrap())
        .find(|id| *id != ids[0])
        .unwrap()
        .to_owned();
    let reset = thor
        .post(
            &format!("/admin/users/{loki_id}/password"),
            &[("csrf", &csrf), ("password", "new-mischief-1")],
        )
        .await;
    assert_eq!(reset.status, StatusCode::SEE_OTHER, "{}", reset.text);
    assert_eq!(
        loki.get("/admin").await.status,
        StatusCode::SEE_OTHER,
        "loki's session ended"
    );
    assert_eq!(
        loki.log_in("loki", "mischief-123").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        loki.log_in("loki", "new-mischief-1").await.status,
        StatusCode::SEE_OTHER
    );
    let demoted = thor
        .post(
            &format!("/admin/users/{loki_id}/staff"),
            &[("csrf", &csrf), ("staff", "false")],
        )
        .await;
    assert_eq!(demoted.status, StatusCode::SEE_OTHER);
    assert_eq!(
        loki.get("/admin").await.status,
        StatusCode::SEE_OTHER,
        "no longer staff"
    );
    assert_eq!(
        loki.log_in("loki", "new-mischief-1").await.status,
        StatusCode::FORBIDDEN
    );
    let own = thor
        .post(
            &format!("/admin/users/{}/staff", ids[0]),
            &[("csrf", &csrf), ("staff", "false")],
        )
        .await;
    assert_eq!(own.status, StatusCode::BAD_REQUEST, "one's own flag stays");
}

async fn polls_are_searched_paged_edited_and_deleted_under_the_rules(mode: Mode) {
    let app = spawn_app_in(mode).await;
    app.staff_user("thor", PASSWORD).await;
    let mut thor = Visitor::new(&app, "thor.polls.test", "");
    thor.log_in("admin", PASSWORD).await;
    let csrf = thor.csrf().await;
    for n in 1..=25 {
        let question = match n {
            7 => "Is 100% of Asgard_burning?".to_owned(),
            n => format!("Question {n}"),
        };
        let made = thor
            .post(
                "/admin/polls",
                &[("csrf", &csrf), ("question", &question), ("choices", "")],
            )
            .await;
        assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.text);
    }
    let rows = |page: &Page| page.text.matches("<tr><td><a href=\"/admin/polls/").count();
    let first = thor.get("/admin/polls").await;
    assert_eq!(rows(&first), 20);
    assert!(
        first.text.contains("Page 1 of 2 (25 polls)"),
        "{}",
        first.text
    );
    let second = thor.get("/admin/polls?page=2").await;
    assert_eq!(rows(&second), 5);
    let beyond = thor.get("/admin/polls?page=99&q=").await;
    assert!(
        beyond.text.contains("Page 2 of 2"),
        "a page past the end is the last"
    );
    // Search is by substring in any case, and `%` and `_` are only themselves.
    for (query, found) in [
        ("QUESTION 2", 7),
        ("100%", 1),
        ("%", 1),
        ("_", 1),
        ("nothing", 0),
    ] {
        let path = format!(
            "/admin/polls?q={}",
            serde_urlencoded::to_string([("", query)])
                .unwrap()
                .trim_start_matches('=')
        );
        let page = thor.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(rows(&page), found, "{query}: {}", page.text);
    }

    // A poll's page: edit, the tenant's limit on choices, removing a choice, deleting.
    app.set_settings("thor", json!({ "max_choices_per_poll": 2 }))
        .await;
    let made = thor
        .post(
            "/admin/polls",
            &[
                ("csrf", &csrf),
                ("question", "Hammers?"),
                ("choices", "Mjolnir\nStormbreaker\nJarnbjorn"),
            ],
        )
        .await;
    assert_eq!(
        made.status,
        StatusCode::BAD_REQUEST,
        "three choices break the limit"
    );
    assert!(
        made.text.contains("the most choices this site allows (2)"),
        "{}",
        made.text
    );
    let made = thor
        .post(
            "/admin/polls",
            &[
                ("csrf", &csrf),
                ("question", "Hammers?"),
                ("choices", "Mjolnir\nStormbreaker"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER);
    let poll = made.location().to_owned();
    let third = thor
        .post(
            &format!("{poll}/choices"),
            &[("csrf", &csrf), ("choice_text", "Jarnbjorn")],
        )
        .await;
    assert_eq!(third.status, StatusCode::BAD_REQUEST);
    let blank = thor
        .post(&poll, &[("csrf", &csrf), ("question", "  ")])
        .await;
    assert_eq!(blank.status, StatusCode::BAD_REQUEST);
    assert!(
        blank.text.contains("This field may not be blank."),
        "{}",
        blank.text
    );
    let edited = thor
        .post(&poll, &[("csrf", &csrf), ("question", "Which hammer?")])
        .await;
    assert_eq!(edited.status, StatusCode::SEE_OTHER);
    let page = thor.get(&poll).await;
    assert!(
        page.text
            .contains(r#"<h1 id="question">Which hammer?</h1>"#),
        "{}",
        page.text
    );
    let choice = page
        .text
        .split("/choices/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    // Removing asks first, saying what goes; only the confirmation removes.
    let remove = format!("{poll}/choices/{choice}/delete");
    for asked in [
        thor.get(&remove).await,
        thor.post(&remove, &[("csrf", &csrf)]).await,
    ] {
        assert_eq!(asked.status, StatusCode::OK, "{}", asked.text);
        assert!(asked.text.contains("Remove this choice?"), "{}", asked.text);
        assert!(asked.text.contains("with its 0 votes"), "{}", asked.text);
    }
    assert!(thor.get(&poll).await.text.contains(">Mjolnir<"));
    let removed = thor
        .post(&remove, &[("csrf", &csrf), ("confirm", "yes")])
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    let after = thor.get(&poll).await.text;
    assert!(!after.contains(">Mjolnir<"));
    assert!(
        after.contains("The choice was removed, with its votes."),
        "{after}"
    );
    // Said once: the next page does not say it again.
    assert!(
        !thor
            .get(&poll)
            .await
            .text
            .contains("The choice was removed")
    );
    let asked = thor
        .post(&format!("{poll}/delete"), &[("csrf", &csrf)])
        .await;
    assert_eq!(asked.status, StatusCode::OK);
    assert!(asked.text.contains("Delete this poll?"), "{}", asked.text);
    assert_eq!(thor.get(&poll).await.status, StatusCode::OK);
    let deleted = thor
        .post(
            &format!("{poll}/delete"),
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert_eq!(thor.get(&poll).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        thor.get("/admin/polls/abc").await.status,
        StatusCode::NOT_FOUND
    );
}

/// A change made through one server is seen by another on the same catalog (within its
/// polling interval, a second; the deadline here is generous for a busy machine).
async fn a_settings_change_reaches_every_server_within_a_second(mode: Mode) {
    let app = spawn_app_in(mode).await;
    let other = polls::startup::open(&app.settings).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, polls::startup::app(other, None)).into_future());
    let sign_up = || async {
        reqwest::Client::new()
            .post(format!("http://{addr}/users/"))
            .header("host", "thor.polls.test")
            .json(
                &json!({ "username": format!("u{}", rand_suffix()), "password": "long-enough-1" }),
            )
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(sign_up().await, StatusCode::CREATED);
    app.set_settings("thor", json!({ "signup_open": false }))
        .await;
    let changed = Instant::now();
    while sign_up().await != StatusCode::FORBIDDEN {
        assert!(
            changed.elapsed() < Duration::from_secs(30),
            "the other server never closed sign-up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

macro_rules! in_modes {
    ($($test:ident),* $(,)?) => {
        mod schema_tenants {
            use super::Mode;
            $(#[tokio::test] async fn $test() { super::$test(Mode::Schema).await })*
        }
        mod shared_tenants {
            use super::Mode;
            $(#[tokio::test] async fn $test() { super::$test(Mode::Shared).await })*
        }
        mod sqlite_tenants {
            use super::Mode;
            $(#[tokio::test] async fn $test() { super::$test(Mode::Sqlite).await })*
        }
        mod dedicated_tenants {
            use super::Mode;
            $(#[tokio::test] async fn $test() { super::$test(Mode::Dedicated).await })*
        }
    };
}

in_modes!(
    sessions_rotate_expire_and_end_with_logout,
    logins_are_throttled_per_tenant_and_username,
    one_lockout_for_every_door,
    forms_need_their_sessions_csrf_token,
    logos_are_checked_from_their_bytes_and_stay_with_their_tenant,
    every_page_answers_with_and_without_a_logo,
    settings_and_users_pages,
    polls_are_searched_paged_edited_and_deleted_under_the_rules,
);

/// Every page with and without a logo, in the modes `in_modes!` leaves out.
macro_rules! logos_in {
    ($($test:ident => $mode:expr),* $(,)?) => {
        mod logos_in_every_mode {
            use super::Mode;
            $(#[tokio::test] async fn $test() {
                super::every_page_answers_with_and_without_a_logo($mode).await
            })*
        }
    };
}

logos_in!(
    database_tenants => Mode::Database,
    schema_through_pgbouncer => Mode::SchemaThroughPgBouncer,
    shared_through_pgbouncer => Mode::SharedThroughPgBouncer,
    database_through_pgbouncer => Mode::DatabaseThroughPgBouncer,
    sqlite_dedicated => Mode::SqliteDedicated,
    dedicated_behind_nginx => Mode::DedicatedBehindNginx,
);

/// A dedicated tenant's site straight from nginx: its settings are read-only there.
mod dedicated_tenants_behind_nginx {
    use super::Mode;

    #[tokio::test]
    async fn settings_and_users_pages() {
        super::settings_and_users_pages(Mode::DedicatedBehindNginx).await
    }
}

mod two_servers {
    use super::Mode;

    #[tokio::test]
    async fn schema_tenants() {
        super::a_settings_change_reaches_every_server_within_a_second(Mode::Schema).await
    }

    #[tokio::test]
    async fn through_pgbouncer() {
        super::a_settings_change_reaches_every_server_within_a_second(Mode::SchemaThroughPgBouncer)
            .await
    }

    #[tokio::test]
    async fn sqlite_tenants() {
        super::a_settings_change_reaches_every_server_within_a_second(Mode::Sqlite).await
    }
}
