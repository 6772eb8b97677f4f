//! The platform API on the public site: creating, listing, changing and deleting tenants over
//! HTTP, and the tenants it makes serving (or not) right away.

use crate::support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{PLATFORM_TOKEN, Reply, TestApp, assert_reply, spawn_app};

const PUBLIC: &str = "polls.test";
const BEARER: &str = "Bearer platform-secret";

async fn platform(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Reply {
    app.request(method, PUBLIC, path, Some(BEARER), body).await
}

async fn create(app: &TestApp, body: Value) -> Reply {
    platform(app, Method::POST, "/api/tenants/", Some(body)).await
}

/// The slugs the platform API lists, in order.
async fn slugs(app: &TestApp) -> Vec<String> {
    let reply = platform(app, Method::GET, "/api/tenants/", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap().to_owned())
        .collect()
}

/// Checks a tenant as the platform API shows it; returns it.
#[track_caller]
fn check_tenant(tenant: &Value, slug: &str, name: &str, status: &str, domains: Value) {
    assert_eq!(tenant["slug"], slug, "{tenant}");
    assert_eq!(tenant["name"], name, "{tenant}");
    assert_eq!(tenant["status"], status, "{tenant}");
    assert_eq!(tenant["isolation"], "schema", "{tenant}");
    assert_eq!(
        tenant["placement"],
        json!({ "server": null, "database": null, "schema": slug.replace('-', "_") }),
        "{tenant}"
    );
    assert_eq!(
        tenant["migration_version"],
        support::latest_version(),
        "{tenant}"
    );
    assert_eq!(tenant["domains"], domains, "{tenant}");
    assert!(
        tenant["id"].as_str().is_some_and(|id| id.len() == 36),
        "{tenant}"
    );
    assert!(tenant["created_at"].is_string(), "{tenant}");
    assert_eq!(tenant["settings"], json!({}), "{tenant}");
}

async fn sign_up(app: &TestApp, host: &str, username: &str) -> Reply {
    app.request(
        Method::POST,
        host,
        "/users/",
        None,
        Some(json!({ "username": username, "password": "pw-12345" })),
    )
    .await
}

#[tokio::test]
async fn a_created_tenant_serves_at_once() {
    let app = spawn_app().await;
    let created = create(&app, json!({ "slug": "loki", "name": "Loki" })).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    check_tenant(
        &created.body,
        "loki",
        "Loki",
        "active",
        json!([{ "domain": "loki.polls.test", "is_primary": true }]),
    );
    assert_reply(
        &sign_up(&app, "loki.polls.test", "ann").await,
        StatusCode::CREATED,
        json!({ "id": 1, "username": "ann", "email": "" }),
    );
    let token = app.user("loki.polls.test", "bob").await;
    let poll = app
        .request(
            Method::POST,
            "loki.polls.test",
            "/polls/",
            Some(&token),
            Some(json!({ "question": "Mischief?" })),
        )
        .await;
    assert_eq!(poll.status, StatusCode::CREATED, "{}", poll.body);
    // Through the path prefix too, and in its own schema: thor has no such user.
    let listed = app
        .request(Method::GET, PUBLIC, "/t/loki/polls/", Some(&token), None)
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    let thor = app
        .request(
            Method::GET,
            "thor.polls.test",
            "/polls/",
            Some(&token),
            None,
        )
        .await;
    assert_reply(
        &thor,
        StatusCode::UNAUTHORIZED,
        json!({ "detail": "Invalid token." }),
    );

    // Extra domains, and no name (the slug is the name).
    let created = create(
        &app,
        json!({ "slug": "freya-2", "domains": ["Freya.Example.com", "freya.example.org."] }),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    check_tenant(
        &created.body,
        "freya-2",
        "freya-2",
        "active",
        json!([
            { "domain": "freya-2.polls.test", "is_primary": true },
            { "domain": "freya.example.com", "is_primary": false },
            { "domain": "freya.example.org", "is_primary": false },
        ]),
    );
    for host in [
        "freya.example.com",
        "FREYA.example.org:443",
        "freya-2.polls.test",
    ] {
        let reply = app.request(Method::GET, host, "/polls/", None, None).await;
        assert_reply(
            &reply,
            StatusCode::UNAUTHORIZED,
            json!({ "detail": "Authentication credentials were not provided." }),
        );
    }
    assert_eq!(
        sign_up(&app, "freya.example.com", "ann").await.status,
        StatusCode::CREATED
    );
    assert_reply(
        &sign_up(&app, "freya-2.polls.test", "ann").await,
        StatusCode::BAD_REQUEST,
        json!({ "username": ["A user with that username already exists."] }),
    );
}

#[tokio::test]
async fn creating_refuses_conflicts_and_invalid_input() {
    let app = spawn_app().await;
    assert_eq!(
        create(&app, json!({ "slug": "loki", "name": "Loki" }))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_reply(
        &create(&app, json!({ "slug": "loki", "name": "Loki again" })).await,
        StatusCode::CONFLICT,
        json!({ "detail": "a tenant with slug 'loki' already exists" }),
    );
    assert_reply(
        &create(&app, json!({ "slug": "thor" })).await,
        StatusCode::CONFLICT,
        json!({ "detail": "a tenant with slug 'thor' already exists" }),
    );
    assert_reply(
        &create(
            &app,
            json!({ "slug": "odin", "domains": ["thor.polls.test"] }),
        )
        .await,
        StatusCode::BAD_REQUEST,
        json!({ "domains": ["'thor.polls.test': names under the base domain are reserved for tenant slugs"] }),
    );
    let long = "a".repeat(41);
    for (slug, message) in [
        ("Bad Slug", "a slug starts with a lower-case letter (a-z)"),
        (
            "'; DROP SCHEMA public; --",
            "a slug starts with a lower-case letter (a-z)",
        ),
        (
            "bad slug",
            "a slug has only lower-case letters, digits and '-'",
        ),
        (
            "thor'; DROP SCHEMA thor CASCADE; --",
            "a slug has only lower-case letters, digits and '-'",
        ),
        ("../thor", "a slug starts with a lower-case letter (a-z)"),
        (
            "under_score",
            "a slug has only lower-case letters, digits and '-'",
        ),
        ("þór", "a slug starts with a lower-case letter (a-z)"),
        ("loki-", "a slug cannot end with '-'"),
        ("", "a slug cannot be empty"),
        (long.as_str(), "a slug has at most 40 characters"),
        ("public", "'public' is reserved"),
        ("api", "'api' is reserved"),
        ("pg-toast", "'pg-toast' is reserved"),
    ] {
        assert_reply(
            &create(&app, json!({ "slug": slug })).await,
            StatusCode::BAD_REQUEST,
            json!({ "slug": [message] }),
        );
    }
    assert_eq!(
        create(&app, json!({ "slug": "a".repeat(40) })).await.status,
        StatusCode::CREATED
    );
    assert_reply(
        &create(&app, json!({ "name": "No slug" })).await,
        StatusCode::BAD_REQUEST,
        json!({ "slug": ["This field is required."] }),
    );
    assert_reply(
        &create(&app, json!({ "slug": "odin", "name": "  " })).await,
        StatusCode::BAD_REQUEST,
        json!({ "name": ["a name has 1 to 100 characters"] }),
    );
    assert_reply(
        &create(&app, json!({ "slug": "odin", "domains": ["bad domain"] })).await,
        StatusCode::BAD_REQUEST,
        json!({ "domains": ["'bad domain': not a valid host name"] }),
    );
    // The base domain is the public site's, and names under it belong to the slugs they spell.
    assert_reply(
        &create(&app, json!({ "slug": "odin", "domains": ["polls.test"] })).await,
        StatusCode::BAD_REQUEST,
        json!({ "domains": ["'polls.test': the base domain is the public site"] }),
    );
    assert_reply(
        &create(
            &app,
            json!({ "slug": "odin", "domains": ["nobody.polls.test"] }),
        )
        .await,
        StatusCode::BAD_REQUEST,
        json!({ "domains": ["'nobody.polls.test': names under the base domain are reserved for tenant slugs"] }),
    );
    // Without a JSON content type the body is refused with 415, as on the tenant API.
    let reply = app
        .request_text(
            Method::POST,
            PUBLIC,
            "/api/tenants/",
            Some(BEARER),
            None,
            "{\"slug\": \"odin\"}",
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        reply.body
    );
    assert!(reply.body["detail"].is_string(), "{}", reply.body);
    for body in ["{\"slug\": ", "not json", "{\"slug\": 5}", "[]"] {
        let reply = app
            .request_text(
                Method::POST,
                PUBLIC,
                "/api/tenants/",
                Some(BEARER),
                Some("application/json"),
                body,
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.body
        );
        let detail = reply.body["detail"].as_str().unwrap_or_default();
        assert!(detail.starts_with("JSON parse error - "), "{}", reply.body);
    }
    // A body over the 2 MB limit is too large, not malformed.
    let huge = format!(
        "{{\"slug\": \"odin\", \"name\": \"{}\"}}",
        "a".repeat(3_000_000)
    );
    let reply = app
        .request_text(
            Method::POST,
            PUBLIC,
            "/api/tenants/",
            Some(BEARER),
            Some("application/json"),
            &huge,
        )
        .await;
    assert_reply(
        &reply,
        StatusCode::PAYLOAD_TOO_LARGE,
        json!({ "detail": "Failed to buffer the request body: length limit exceeded" }),
    );
    // Nothing refused was created: no odin, no schema for it.
    assert_eq!(
        slugs(&app).await,
        ["a".repeat(40).as_str(), "loki", "potter", "thor"]
    );
    let reply = app
        .request(Method::GET, "odin.polls.test", "/polls/", None, None)
        .await;
    assert_reply(
        &reply,
        StatusCode::NOT_FOUND,
        json!({ "detail": "No tenant for host 'odin.polls.test'" }),
    );
}

#[tokio::test]
async fn every_route_needs_the_platform_token() {
    let app = spawn_app().await;
    let not_provided = json!({ "detail": "Authentication credentials were not provided." });
    let invalid = json!({ "detail": "Invalid token." });
    let routes = [
        (Method::GET, "/api/tenants/", None),
        (
            Method::POST,
            "/api/tenants/",
            Some(json!({ "slug": "loki" })),
        ),
        (Method::GET, "/api/tenants/thor/", None),
        (
            Method::PATCH,
            "/api/tenants/thor/",
            Some(json!({ "status": "suspended" })),
        ),
        (Method::DELETE, "/api/tenants/thor/", None),
    ];
    for (method, path, body) in routes {
        for (auth, expected) in [
            (None, &not_provided),
            (Some("Token platform-secret"), &not_provided),
            (Some("platform-secret"), &not_provided),
            (Some("Bearer wrong"), &invalid),
            (Some("Bearer platform-secret-and-more"), &invalid),
            (Some("Bearer platform-secre"), &invalid),
            (Some("Bearer"), &not_provided),
        ] {
            let reply = app
                .request(method.clone(), PUBLIC, path, auth, body.clone())
                .await;
            assert_reply(&reply, StatusCode::UNAUTHORIZED, expected.clone());
            assert_eq!(
                reply
                    .headers
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap()),
                Some("Bearer"),
                "{method} {path} {auth:?}"
            );
        }
    }
    // None of that did anything.
    assert_eq!(slugs(&app).await, ["potter", "thor"]);
    let thor = app.user("thor.polls.test", "ann").await;
    let reply = app
        .request(Method::GET, "thor.polls.test", "/polls/", Some(&thor), None)
        .await;
    assert_reply(&reply, StatusCode::OK, json!([]));
}

#[tokio::test]
async fn list_show_and_unknown_tenants() {
    let app = spawn_app().await;
    let created = create(&app, json!({ "slug": "loki", "name": "Loki" })).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let list = platform(&app, Method::GET, "/api/tenants/", None).await;
    assert_eq!(list.status, StatusCode::OK);
    let tenants = list.body.as_array().unwrap();
    assert_eq!(tenants.len(), 3, "{}", list.body);
    check_tenant(
        &tenants[0],
        "loki",
        "Loki",
        "active",
        json!([{ "domain": "loki.polls.test", "is_primary": true }]),
    );
    check_tenant(
        &tenants[1],
        "potter",
        "potter",
        "active",
        json!([{ "domain": "potter.polls.test", "is_primary": true }]),
    );
    check_tenant(
        &tenants[2],
        "thor",
        "thor",
        "active",
        json!([{ "domain": "thor.polls.test", "is_primary": true }]),
    );
    // Without the trailing slash too.
    assert_eq!(
        platform(&app, Method::GET, "/api/tenants", None).await.body,
        list.body
    );

    let shown = platform(&app, Method::GET, "/api/tenants/loki/", None).await;
    assert_reply(&shown, StatusCode::OK, created.body.clone());
    assert_reply(
        &platform(&app, Method::GET, "/api/tenants/loki", None).await,
        StatusCode::OK,
        created.body,
    );
    for (path, slug) in [
        ("/api/tenants/nobody/", "nobody"),
        ("/api/tenants/Thor/", "Thor"),
        ("/api/tenants/public/", "public"),
        (
            "/api/tenants/%27%3B%20DROP%20SCHEMA%20thor%3B%20--/",
            "'; DROP SCHEMA thor; --",
        ),
    ] {
        let no_tenant = json!({ "detail": format!("no tenant '{slug}'") });
        for method in [Method::GET, Method::DELETE] {
            assert_reply(
                &platform(&app, method, path, None).await,
                StatusCode::NOT_FOUND,
                no_tenant.clone(),
            );
        }
        assert_reply(
            &platform(&app, Method::PATCH, path, Some(json!({ "name": "X" }))).await,
            StatusCode::NOT_FOUND,
            no_tenant,
        );
    }
    assert_reply(
        &platform(&app, Method::GET, "/api/nothing/", None).await,
        StatusCode::NOT_FOUND,
        json!({ "detail": "Not found." }),
    );
    assert_eq!(slugs(&app).await, ["loki", "potter", "thor"]);
}

#[tokio::test]
async fn suspend_resume_and_rename_over_http() {
    let app = spawn_app().await;
    assert_eq!(
        create(&app, json!({ "slug": "loki", "name": "Loki" }))
            .await
            .status,
        StatusCode::CREATED
    );
    let token = app.user("loki.polls.test", "ann").await;
    let poll = app
        .request(
            Method::POST,
            "loki.polls.test",
            "/polls/",
            Some(&token),
            Some(json!({ "question": "Kept?" })),
        )
        .await;
    assert_eq!(poll.status, StatusCode::CREATED);
    let polls = |host: &'static str| {
        let token = token.clone();
        let app = &app;
        async move {
            app.request(Method::GET, host, "/polls/", Some(&token), None)
                .await
        }
    };

    // Suspend: 403 on its host, data kept; resume: served again.
    let suspended = platform(
        &app,
        Method::PATCH,
        "/api/tenants/loki/",
        Some(json!({ "status": "suspended" })),
    )
    .await;
    assert_eq!(suspended.status, StatusCode::OK, "{}", suspended.body);
    check_tenant(
        &suspended.body,
        "loki",
        "Loki",
        "suspended",
        json!([{ "domain": "loki.polls.test", "is_primary": true }]),
    );
    assert_reply(
        &polls("loki.polls.test").await,
        StatusCode::FORBIDDEN,
        json!({ "detail": "Tenant 'loki' is suspended." }),
    );
    let resumed = platform(
        &app,
        Method::PATCH,
        "/api/tenants/loki/",
        Some(json!({ "status": "active" })),
    )
    .await;
    assert_eq!(resumed.status, StatusCode::OK);
    assert_eq!(resumed.body["status"], "active");
    let listed = polls("loki.polls.test").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body[0]["question"], "Kept?");

    // Name.
    let renamed = platform(
        &app,
        Method::PATCH,
        "/api/tenants/loki/",
        Some(json!({ "name": "Loki of Asgard" })),
    )
    .await;
    assert_eq!(renamed.status, StatusCode::OK);
    check_tenant(
        &renamed.body,
        "loki",
        "Loki of Asgard",
        "active",
        json!([{ "domain": "loki.polls.test", "is_primary": true }]),
    );
    assert_eq!(
        platform(&app, Method::GET, "/api/tenants/loki/", None)
            .await
            .body,
        renamed.body
    );

    // Invalid changes are refused and change nothing.
    for (body, expected) in [
        (
            json!({ "name": "" }),
            json!({ "name": ["a name has 1 to 100 characters"] }),
        ),
        (
            json!({ "settings": [] }),
            json!({ "settings": ["settings are a JSON object"] }),
        ),
        (
            json!({ "settings": {
                "primary_color": "red", "max_choices_per_poll": 0, "signup_open": "no",
                "colour": "green", "display_name": " "
            } }),
            json!({ "settings": {
                "colour": "unknown setting",
                "display_name": "a display name has 1 to 100 characters",
                "max_choices_per_poll": "a limit is 1 to 100, or null for none",
                "primary_color": "'red' is not a colour of the form #rrggbb",
                "signup_open": "invalid type: string \"no\", expected a boolean",
            } }),
        ),
        (
            json!({ "slug": "Bad Slug" }),
            json!({ "slug": ["a slug starts with a lower-case letter (a-z)"] }),
        ),
        (
            json!({ "slug": "tenantry" }),
            json!({ "slug": ["'tenantry' is reserved"] }),
        ),
    ] {
        assert_reply(
            &platform(&app, Method::PATCH, "/api/tenants/loki/", Some(body)).await,
            StatusCode::BAD_REQUEST,
            expected,
        );
    }
    for body in [json!({ "status": "deleted" }), json!({ "colour": "green" })] {
        let reply = platform(&app, Method::PATCH, "/api/tenants/loki/", Some(body)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        let detail = reply.body["detail"].as_str().unwrap_or_default();
        assert!(detail.starts_with("JSON parse error - "), "{}", reply.body);
    }
    let reply = app
        .request_text(
            Method::PATCH,
            PUBLIC,
            "/api/tenants/loki/",
            Some(BEARER),
            Some("application/json"),
            "{\"name\": ",
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap_or_default()
            .starts_with("JSON parse error - ")
    );
    assert_reply(
        &platform(
            &app,
            Method::PATCH,
            "/api/tenants/loki/",
            Some(json!({ "slug": "thor" })),
        )
        .await,
        StatusCode::CONFLICT,
        json!({ "detail": "a tenant with slug 'thor' already exists" }),
    );
    assert_eq!(
        platform(&app, Method::GET, "/api/tenants/loki/", None)
            .await
            .body,
        renamed.body
    );

    // Slug: schema and primary domain follow; the data comes along.
    let moved = platform(
        &app,
        Method::PATCH,
        "/api/tenants/loki/",
        Some(json!({ "slug": "odin" })),
    )
    .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    check_tenant(
        &moved.body,
        "odin",
        "Loki of Asgard",
        "active",
        json!([{ "domain": "odin.polls.test", "is_primary": true }]),
    );
    assert_eq!(moved.body["id"], renamed.body["id"]);
    assert_reply(
        &polls("loki.polls.test").await,
        StatusCode::NOT_FOUND,
        json!({ "detail": "No tenant for host 'loki.polls.test'" }),
    );
    let listed = polls("odin.polls.test").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body[0]["question"], "Kept?");
    assert_reply(
        &app.request(Method::GET, PUBLIC, "/t/loki/polls/", Some(&token), None)
            .await,
        StatusCode::NOT_FOUND,
        json!({ "detail": "No tenant 'loki'" }),
    );
    assert_eq!(
        app.request(Method::GET, PUBLIC, "/t/odin/polls/", Some(&token), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_reply(
        &platform(&app, Method::GET, "/api/tenants/loki/", None).await,
        StatusCode::NOT_FOUND,
        json!({ "detail": "no tenant 'loki'" }),
    );
    assert_eq!(slugs(&app).await, ["odin", "potter", "thor"]);
    // The old slug is free again.
    assert_eq!(
        create(&app, json!({ "slug": "loki" })).await.status,
        StatusCode::CREATED
    );
    assert_reply(
        &polls("loki.polls.test").await,
        StatusCode::UNAUTHORIZED,
        json!({ "detail": "Invalid token." }),
    );
}

#[tokio::test]
async fn deleting_a_tenant_drops_it_everywhere() {
    let app = spawn_app().await;
    assert_eq!(
        create(
            &app,
            json!({ "slug": "loki", "domains": ["loki.example.com"] })
        )
        .await
        .status,
        StatusCode::CREATED
    );
    let token = app.user("loki.polls.test", "ann").await;
    let deleted = platform(&app, Method::DELETE, "/api/tenants/loki/", None).await;
    assert_reply(&deleted, StatusCode::NO_CONTENT, Value::Null);
    for host in ["loki.polls.test", "loki.example.com"] {
        let reply = app
            .request(Method::GET, host, "/polls/", Some(&token), None)
            .await;
        assert_reply(
            &reply,
            StatusCode::NOT_FOUND,
            json!({ "detail": format!("No tenant for host '{host}'") }),
        );
    }
    assert_reply(
        &platform(&app, Method::GET, "/api/tenants/loki/", None).await,
        StatusCode::NOT_FOUND,
        json!({ "detail": "no tenant 'loki'" }),
    );
    assert_reply(
        &platform(&app, Method::DELETE, "/api/tenants/loki/", None).await,
        StatusCode::NOT_FOUND,
        json!({ "detail": "no tenant 'loki'" }),
    );
    assert_eq!(slugs(&app).await, ["potter", "thor"]);
    // Created again, it starts empty: the old schema and its users are gone.
    assert_eq!(
        create(&app, json!({ "slug": "loki" })).await.status,
        StatusCode::CREATED
    );
    let reply = app
        .request(
            Method::GET,
            "loki.polls.test",
            "/polls/",
            Some(&token),
            None,
        )
        .await;
    assert_reply(
        &reply,
        StatusCode::UNAUTHORIZED,
        json!({ "detail": "Invalid token." }),
    );
    assert_reply(
        &sign_up(&app, "loki.polls.test", "ann").await,
        StatusCode::CREATED,
        json!({ "id": 1, "username": "ann", "email": "" }),
    );
    // Deleting one tenant leaves the others alone.
    let thor = app.user("thor.polls.test", "ann").await;
    let reply = app
        .request(Method::GET, "thor.polls.test", "/polls/", Some(&thor), None)
        .await;
    assert_reply(&reply, StatusCode::OK, json!([]));
}

#[tokio::test]
async fn the_platform_api_is_not_served_on_tenant_hosts() {
    let app = spawn_app().await;
    let not_found = json!({ "detail": "Not found." });
    for (host, path) in [
        ("thor.polls.test", "/api/tenants/"),
        ("thor.polls.test", "/api/tenants/thor/"),
        ("potter.polls.test", "/api/tenants"),
        (PUBLIC, "/t/thor/api/tenants/"),
    ] {
        let reply = app
            .request(Method::GET, host, path, Some(BEARER), None)
            .await;
        assert_reply(&reply, StatusCode::NOT_FOUND, not_found.clone());
        let reply = app
            .request(
                Method::POST,
                host,
                path,
                Some(BEARER),
                Some(json!({ "slug": "loki" })),
            )
            .await;
        assert_reply(&reply, StatusCode::NOT_FOUND, not_found.clone());
    }
    assert_eq!(slugs(&app).await, ["potter", "thor"]);
    // The public site has a health check, but no tenant routes.
    assert_reply(
        &app.request(Method::GET, PUBLIC, "/health", None, None)
            .await,
        StatusCode::OK,
        json!({ "status": "ok" }),
    );
    assert_reply(
        &app.request(Method::GET, PUBLIC, "/polls/", None, None)
            .await,
        StatusCode::NOT_FOUND,
        not_found.clone(),
    );
    assert_reply(
        &app.request(Method::GET, "thor.polls.test", "/health", None, None)
            .await,
        StatusCode::NOT_FOUND,
        not_found,
    );
    assert_eq!(PLATFORM_TOKEN, BEARER.strip_prefix("Bearer ").unwrap());
}

/// Like the tenant routes, the public site answers a wrong method with 405 and a JSON body.
/// (It currently sends an empty body: `public_router` in src/startup.rs sets a JSON 404
/// fallback but no `method_not_allowed_fallback`.)
#[tokio::test]
async fn wrong_methods_on_the_public_site_are_json() {
    let app = spawn_app().await;
    let mut got = Vec::new();
    let mut expected = Vec::new();
    for (method, path) in [
        (Method::PUT, "/api/tenants/"),
        (Method::DELETE, "/api/tenants"),
        (Method::POST, "/api/tenants/thor/"),
        (Method::PUT, "/api/tenants/thor/"),
        (Method::DELETE, "/health"),
        (Method::POST, "/health"),
    ] {
        let reply = app
            .request_text(method.clone(), PUBLIC, path, Some(BEARER), None, "")
            .await;
        let content_type = reply
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        got.push((
            format!("{method} {path}"),
            reply.status,
            content_type,
            reply.body,
        ));
        expected.push((
            format!("{method} {path}"),
            StatusCode::METHOD_NOT_ALLOWED,
            Some("application/json".to_owned()),
            json!({ "detail": format!("Method \"{method}\" not allowed.") }),
        ));
    }
    assert_eq!(got, expected);
    // Nothing was changed by them.
    assert_eq!(slugs(&app).await, ["potter", "thor"]);
}

#[tokio::test]
async fn tenants_can_be_created_in_database_mode() {
    let app = spawn_app().await;
    let created = create(&app, json!({ "slug": "loki", "isolation": "database" })).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["isolation"], "database");
    assert_eq!(created.body["placement"]["schema"], "tenant");
    let database = created.body["placement"]["database"].as_str().unwrap();
    assert!(database.starts_with("tenant_loki_"), "{database}");
    let signed_up = app
        .request(
            Method::POST,
            "loki.polls.test",
            "/users/",
            None,
            Some(json!({ "username": "ann", "email": "", "password": "s3cret-pass" })),
        )
        .await;
    assert_eq!(signed_up.status, StatusCode::CREATED, "{}", signed_up.body);
    assert_reply(
        &create(&app, json!({ "slug": "odin", "isolation": "cluster" })).await,
        StatusCode::BAD_REQUEST,
        json!({ "isolation": ["unknown isolation mode 'cluster' (expected shared, schema, database or dedicated)"] }),
    );
    let deleted = platform(&app, Method::DELETE, "/api/tenants/loki/", None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn settings_are_patched_key_by_key_and_reset_with_null() {
    let app = spawn_app().await;
    let patch = |settings: Value| {
        let app = &app;
        async move {
            let body = json!({ "settings": settings });
            platform(app, Method::PATCH, "/api/tenants/thor/", Some(body)).await
        }
    };
    let first = patch(json!({ "primary_color": "#123ABC", "signup_open": false })).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(
        first.body["settings"],
        json!({ "primary_color": "#123ABC", "signup_open": false })
    );
    let second = patch(json!({ "max_choices_per_poll": 4, "signup_open": null })).await;
    assert_eq!(
        second.body["settings"],
        json!({ "primary_color": "#123ABC", "max_choices_per_poll": 4 }),
        "keys not named are kept, null resets"
    );
    let refused = patch(json!({ "max_choices_per_poll": 101 })).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let shown = platform(&app, Method::GET, "/api/tenants/thor/", None).await;
    assert_eq!(
        shown.body["settings"], second.body["settings"],
        "a refusal changes nothing"
    );
    let potter = platform(&app, Method::GET, "/api/tenants/potter/", None).await;
    assert_eq!(potter.body["settings"], json!({}));
}
