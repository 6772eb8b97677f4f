//! The polls API of the book, served per tenant over real HTTP: the whole flow, isolation
//! between tenants, trailing slashes and path prefixes, and JSON errors for everything,
//! hostile hosts included.

use crate::support;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Mode, Reply, TestApp, assert_reply, spawn_app_in};

const THOR: &str = "thor.polls.test";
const POTTER: &str = "potter.polls.test";
const REQUIRED: &str = "This field is required.";

/// Checks `pub_date` is ISO 8601 in UTC with microseconds and a `Z`, and returns it.
#[track_caller]
fn pub_date(poll: &Value) -> DateTime<Utc> {
    let raw = poll["pub_date"]
        .as_str()
        .unwrap_or_else(|| panic!("no pub_date in {poll}"));
    assert!(raw.ends_with('Z'), "{raw}");
    assert_eq!(raw.len(), "2024-05-01T12:00:00.000000Z".len(), "{raw}");
    assert_eq!(&raw[10..11], "T", "{raw}");
    DateTime::parse_from_rfc3339(raw)
        .unwrap_or_else(|e| panic!("{raw}: {e}"))
        .with_timezone(&Utc)
}

async fn get(app: &TestApp, host: &str, path: &str, token: &str) -> Reply {
    app.request(Method::GET, host, path, Some(token), None)
        .await
}

async fn post(app: &TestApp, host: &str, path: &str, token: &str, body: Value) -> Reply {
    app.request(Method::POST, host, path, Some(token), Some(body))
        .await
}

async fn register(app: &TestApp, host: &str, username: &str, password: &str) -> Reply {
    app.request(
        Method::POST,
        host,
        "/users/",
        None,
        Some(json!({
            "username": username, "email": format!("{username}@example.com"), "password": password
        })),
    )
    .await
}

async fn login(app: &TestApp, host: &str, username: &str, password: &str) -> Reply {
    app.request(
        Method::POST,
        host,
        "/login/",
        None,
        Some(json!({ "username": username, "password": password })),
    )
    .await
}

/// Creates a poll and returns its JSON, checking the response.
async fn create_poll(app: &TestApp, host: &str, token: &str, question: &str) -> Value {
    let reply = post(app, host, "/polls/", token, json!({ "question": question })).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body
}

/// The questions of every poll the tenant at `host` lists.
async fn questions(app: &TestApp, host: &str, token: &str) -> Vec<String> {
    let reply = get(app, host, "/polls/", token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|poll| poll["question"].as_str().unwrap().to_owned())
        .collect()
}

/// The book's whole flow in the tenant at `host`, with data labelled `label`. Every id is
/// the tenant's own, so both tenants see the same ids.
async fn book_flow(app: &TestApp, host: &str, label: &str) {
    // Sign up and log in.
    let alice = register(app, host, "alice", "alice-pass").await;
    assert_reply(
        &alice,
        StatusCode::CREATED,
        json!({ "id": 1, "username": "alice", "email": "alice@example.com" }),
    );
    let bob = register(app, host, "bob", "bob-pass").await;
    assert_reply(
        &bob,
        StatusCode::CREATED,
        json!({ "id": 2, "username": "bob", "email": "bob@example.com" }),
    );
    let login_reply = login(app, host, "alice", "alice-pass").await;
    assert_eq!(login_reply.status, StatusCode::OK, "{}", login_reply.body);
    let key = login_reply.body["token"].as_str().unwrap().to_owned();
    assert_eq!(login_reply.body, json!({ "token": key }));
    assert_eq!(key.len(), 40, "{key}");
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{key}"
    );
    // Logging in again gives the same token.
    assert_reply(
        &login(app, host, "alice", "alice-pass").await,
        StatusCode::OK,
        json!({ "token": key }),
    );
    let alice = format!("Token {key}");
    let bob_login = login(app, host, "bob", "bob-pass").await;
    assert_eq!(bob_login.status, StatusCode::OK);
    let bob = format!("Token {}", bob_login.body["token"].as_str().unwrap());
    assert_ne!(alice, bob);

    // Polls.
    assert_reply(
        &get(app, host, "/polls/", &alice).await,
        StatusCode::OK,
        json!([]),
    );
    let question = format!("{label}: favourite colour?");
    let poll = post(
        app,
        host,
        "/polls/",
        &alice,
        json!({ "question": question }),
    )
    .await;
    let created_at = pub_date(&poll.body);
    let created_date = poll.body["pub_date"].clone();
    assert_reply(
        &poll,
        StatusCode::CREATED,
        json!({
            "id": 1, "choices": [], "question": question, "pub_date": created_date,
            "created_by": 1
        }),
    );
    let other_question = format!("{label}: tea or coffee?");
    let other = create_poll(app, host, &bob, &other_question).await;
    assert_eq!(other["id"], 2);
    assert_eq!(other["created_by"], 2);

    // Choices: only the creator adds them.
    let red = post(
        app,
        host,
        "/polls/1/choices/",
        &alice,
        json!({ "choice_text": "Red" }),
    )
    .await;
    assert_reply(
        &red,
        StatusCode::CREATED,
        json!({ "id": 1, "votes": [], "choice_text": "Red", "poll": 1 }),
    );
    let blue = post(
        app,
        host,
        "/polls/1/choices/",
        &alice,
        json!({ "choice_text": label }),
    )
    .await;
    assert_reply(
        &blue,
        StatusCode::CREATED,
        json!({ "id": 2, "votes": [], "choice_text": label, "poll": 1 }),
    );
    assert_reply(
        &post(
            app,
            host,
            "/polls/1/choices/",
            &bob,
            json!({ "choice_text": "Green" }),
        )
        .await,
        StatusCode::FORBIDDEN,
        json!({ "detail": "You can not create choice for this poll." }),
    );
    let tea = post(
        app,
        host,
        "/polls/2/choices/",
        &bob,
        json!({ "choice_text": "Tea" }),
    )
    .await;
    assert_reply(
        &tea,
        StatusCode::CREATED,
        json!({ "id": 3, "votes": [], "choice_text": "Tea", "poll": 2 }),
    );
    assert_reply(
        &post(
            app,
            host,
            "/polls/99/choices/",
            &alice,
            json!({ "choice_text": "X" }),
        )
        .await,
        StatusCode::NOT_FOUND,
        json!({ "detail": "Not found." }),
    );
    assert_reply(
        &get(app, host, "/polls/1/choices/", &bob).await,
        StatusCode::OK,
        json!([
            { "id": 1, "votes": [], "choice_text": "Red", "poll": 1 },
            { "id": 2, "votes": [], "choice_text": label, "poll": 1 },
        ]),
    );
    assert_reply(
        &get(app, host, "/polls/99/choices/", &bob).await,
        StatusCode::NOT_FOUND,
        json!({ "detail": "Not found." }),
    );

    // Votes: one per user and poll, and only for a choice of that poll.
    let vote = post(app, host, "/polls/1/choices/2/vote/", &bob, json!({})).await;
    assert_reply(
        &vote,
        StatusCode::CREATED,
        json!({ "id": 1, "choice": 2, "poll": 1, "voted_by": 2 }),
    );
    let again = post(app, host, "/polls/1/choices/1/vote/", &bob, json!({})).await;
    assert_reply(
        &again,
        StatusCode::BAD_REQUEST,
        json!({ "detail": "You have already voted in this poll." }),
    );
    assert_reply(
        &post(app, host, "/polls/1/choices/3/vote/", &alice, json!({})).await,
        StatusCode::NOT_FOUND,
        json!({ "detail": "Not found." }),
    );
    assert_reply(
        &post(app, host, "/polls/1/choices/99/vote/", &alice, json!({})).await,
        StatusCode::NOT_FOUND,
        json!({ "detail": "Not found." }),
    );
    // The refused vote may have used up a sequence value, so later ids are read back and
    // only required to increase.
    let alice_vote = post(app, host, "/polls/1/choices/2/vote/", &alice, json!({})).await;
    let alice_vote_id = alice_vote.body["id"].as_i64().unwrap_or_default();
    assert!(alice_vote_id > 1, "{}", alice_vote.body);
    assert_reply(
        &alice_vote,
        StatusCode::CREATED,
        json!({ "id": alice_vote_id, "choice": 2, "poll": 1, "voted_by": 1 }),
    );
    let bob_tea = post(app, host, "/polls/2/choices/3/vote/", &bob, json!({})).await;
    let bob_tea_id = bob_tea.body["id"].as_i64().unwrap_or_default();
    assert!(bob_tea_id > alice_vote_id, "{}", bob_tea.body);
    assert_reply(
        &bob_tea,
        StatusCode::CREATED,
        json!({ "id": bob_tea_id, "choice": 3, "poll": 2, "voted_by": 2 }),
    );

    // The list nests choices and votes, everything by id.
    let first = json!({
        "id": 1, "question": question, "pub_date": created_date, "created_by": 1,
        "choices": [
            { "id": 1, "votes": [], "choice_text": "Red", "poll": 1 },
            { "id": 2, "choice_text": label, "poll": 1, "votes": [
                { "id": 1, "choice": 2, "poll": 1, "voted_by": 2 },
                { "id": alice_vote_id, "choice": 2, "poll": 1, "voted_by": 1 },
            ] },
        ],
    });
    let second = json!({
        "id": 2, "question": other_question, "pub_date": other["pub_date"], "created_by": 2,
        "choices": [
            { "id": 3, "choice_text": "Tea", "poll": 2, "votes": [
                { "id": bob_tea_id, "choice": 3, "poll": 2, "voted_by": 2 },
            ] },
        ],
    });
    assert_reply(
        &get(app, host, "/polls/", &bob).await,
        StatusCode::OK,
        json!([first.clone(), second.clone()]),
    );
    assert_reply(
        &get(app, host, "/polls/1/", &bob).await,
        StatusCode::OK,
        first.clone(),
    );
    assert_reply(
        &get(app, host, "/polls/99/", &bob).await,
        StatusCode::NOT_FOUND,
        json!({ "detail": "Not found." }),
    );

    // PUT replaces the question and stamps pub_date; PATCH may leave the question out.
    let put_question = format!("{label}: favourite color?");
    let put = app
        .request(
            Method::PUT,
            host,
            "/polls/1/",
            Some(&alice),
            Some(json!({ "question": put_question })),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    let put_at = pub_date(&put.body);
    assert!(put_at > created_at, "{put_at} after {created_at}");
    let mut expected = get(app, host, "/polls/1/", &bob).await.body;
    assert_eq!(expected["question"], put_question.as_str());
    assert_eq!(expected["pub_date"], put.body["pub_date"]);
    assert_eq!(expected["choices"], first["choices"]);
    assert_eq!(put.body, expected);
    let patch = app
        .request(
            Method::PATCH,
            host,
            "/polls/1/",
            Some(&alice),
            Some(json!({})),
        )
        .await;
    assert_eq!(patch.status, StatusCode::OK, "{}", patch.body);
    let patch_at = pub_date(&patch.body);
    assert!(patch_at > put_at, "{patch_at} after {put_at}");
    expected["pub_date"] = patch.body["pub_date"].clone();
    assert_eq!(patch.body, expected);
    let patch = app
        .request(
            Method::PATCH,
            host,
            "/polls/1/",
            Some(&alice),
            Some(json!({ "question": "  Patched?  " })),
        )
        .await;
    assert_eq!(patch.status, StatusCode::OK, "{}", patch.body);
    assert_eq!(patch.body["question"], "Patched?");
    assert!(pub_date(&patch.body) > patch_at);
    for method in [Method::PUT, Method::PATCH] {
        let missing = app
            .request(
                method,
                host,
                "/polls/99/",
                Some(&alice),
                Some(json!({ "question": "Nobody?" })),
            )
            .await;
        assert_reply(
            &missing,
            StatusCode::NOT_FOUND,
            json!({ "detail": "Not found." }),
        );
    }
    assert_reply(
        &app.request(
            Method::PUT,
            host,
            "/polls/1/",
            Some(&alice),
            Some(json!({})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        json!({ "question": [REQUIRED] }),
    );

    // Only the creator deletes; choices and votes go with the poll.
    assert_reply(
        &app.request(Method::DELETE, host, "/polls/1/", Some(&bob), None)
            .await,
        StatusCode::FORBIDDEN,
        json!({ "detail": "You can not delete this poll." }),
    );
    assert_reply(
        &app.request(Method::DELETE, host, "/polls/99/", Some(&bob), None)
            .await,
        StatusCode::NOT_FOUND,
        json!({ "detail": "Not found." }),
    );
    let deleted = app
        .request(Method::DELETE, host, "/polls/1/", Some(&alice), None)
        .await;
    assert_reply(&deleted, StatusCode::NO_CONTENT, Value::Null);
    assert_reply(
        &get(app, host, "/polls/1/", &alice).await,
        StatusCode::NOT_FOUND,
        json!({ "detail": "Not found." }),
    );
    assert_reply(
        &get(app, host, "/polls/1/choices/", &alice).await,
        StatusCode::NOT_FOUND,
        json!({ "detail": "Not found." }),
    );
    assert_reply(
        &get(app, host, "/polls/", &alice).await,
        StatusCode::OK,
        json!([second]),
    );
    // With poll 1 gone, alice can vote in poll 2; ids keep counting.
    assert_reply(
        &post(app, host, "/polls/2/choices/3/vote/", &alice, json!({})).await,
        StatusCode::CREATED,
        json!({ "id": bob_tea_id + 1, "choice": 3, "poll": 2, "voted_by": 1 }),
    );
}

async fn the_book_flow_works_in_each_tenant(mode: Mode) {
    let app = spawn_app_in(mode).await;
    book_flow(&app, THOR, "thor").await;
    // The flow expects each tenant's ids to start at 1. Shared-mode tenants draw from one
    // sequence per table, so their second tenant starts elsewhere; it gets its own app, and
    // `the_same_ids_hold_different_data_in_each_tenant` checks two shared tenants side by side.
    let second;
    let potter_app = if mode.shares_tables() {
        second = spawn_app_in(mode).await;
        &second
    } else {
        &app
    };
    book_flow(potter_app, POTTER, "potter").await;

    // Each tenant ends with its own poll 2 and nothing of the other's.
    let thor = app.user(THOR, "carol").await;
    let potter = potter_app.user(POTTER, "carol").await;
    assert_eq!(questions(&app, THOR, &thor).await, ["thor: tea or coffee?"]);
    assert_eq!(
        questions(potter_app, POTTER, &potter).await,
        ["potter: tea or coffee?"]
    );
    if mode.shares_tables() {
        let potter = app.user(POTTER, "dan").await;
        assert!(questions(&app, POTTER, &potter).await.is_empty());
    }
}

async fn non_creators_may_update_a_poll_as_in_the_book(mode: Mode) {
    // The book's PollDetail guards only destroy: any signed-in user may PUT or PATCH.
    let app = spawn_app_in(mode).await;
    let alice = app.user(THOR, "alice").await;
    let bob = app.user(THOR, "bob").await;
    create_poll(&app, THOR, &alice, "Alice's?").await;
    let put = app
        .request(
            Method::PUT,
            THOR,
            "/polls/1/",
            Some(&bob),
            Some(json!({ "question": "Bob's now?" })),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(put.body["question"], "Bob's now?");
    assert_eq!(put.body["created_by"], 1);
}

async fn the_same_ids_hold_different_data_in_each_tenant(mode: Mode) {
    let app = spawn_app_in(mode).await;
    // Shared-mode tenants draw ids from one sequence per table; every other layout has its
    // own, so there both tenants start at 1. Either way each tenant sees only its own rows.
    let same_ids = !mode.shares_tables();
    let ids = |thor: &Value, potter: &Value| {
        if same_ids {
            assert_eq!(thor, potter, "each tenant numbers its own rows");
        } else {
            assert_ne!(thor, potter, "shared-mode tenants share the sequences");
        }
    };
    // The same username in both tenants, with different passwords: separate users.
    let thor_alice = register(&app, THOR, "alice", "thor-pass").await;
    let potter_alice = register(&app, POTTER, "alice", "potter-pass").await;
    for (alice, reply) in [(&thor_alice, &thor_alice), (&potter_alice, &potter_alice)] {
        assert_reply(
            reply,
            StatusCode::CREATED,
            json!({ "id": alice.body["id"], "username": "alice", "email": "alice@example.com" }),
        );
    }
    ids(&thor_alice.body["id"], &potter_alice.body["id"]);
    let (thor_user, potter_user) = (
        thor_alice.body["id"].clone(),
        potter_alice.body["id"].clone(),
    );
    assert_reply(
        &login(&app, POTTER, "alice", "thor-pass").await,
        StatusCode::BAD_REQUEST,
        json!({ "error": "Wrong Credentials" }),
    );
    assert_reply(
        &login(&app, THOR, "alice", "potter-pass").await,
        StatusCode::BAD_REQUEST,
        json!({ "error": "Wrong Credentials" }),
    );
    let thor_login = login(&app, THOR, "alice", "thor-pass").await;
    let potter_login = login(&app, POTTER, "alice", "potter-pass").await;
    assert_eq!(thor_login.status, StatusCode::OK);
    assert_eq!(potter_login.status, StatusCode::OK);
    let thor = format!("Token {}", thor_login.body["token"].as_str().unwrap());
    let potter = format!("Token {}", potter_login.body["token"].as_str().unwrap());
    assert_ne!(thor, potter);

    // A token is only good in its own tenant, by host or by path prefix.
    let invalid = json!({ "detail": "Invalid token." });
    assert_reply(
        &get(&app, POTTER, "/polls/", &thor).await,
        StatusCode::UNAUTHORIZED,
        invalid.clone(),
    );
    assert_reply(
        &get(&app, THOR, "/polls/", &potter).await,
        StatusCode::UNAUTHORIZED,
        invalid.clone(),
    );
    assert_reply(
        &get(&app, "polls.test", "/t/potter/polls/", &thor).await,
        StatusCode::UNAUTHORIZED,
        invalid.clone(),
    );
    assert_reply(
        &post(
            &app,
            POTTER,
            "/polls/",
            &thor,
            json!({ "question": "Sneaky?" }),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        invalid.clone(),
    );

    // A poll, a choice and a vote in each, each with its own data.
    let thor_poll = create_poll(&app, THOR, &thor, "Thor's hammer?").await;
    let potter_poll = create_poll(&app, POTTER, &potter, "Potter's wand?").await;
    ids(&thor_poll["id"], &potter_poll["id"]);
    let (tp, pp) = (&thor_poll["id"], &potter_poll["id"]);
    let thor_choice = post(
        &app,
        THOR,
        &format!("/polls/{tp}/choices/"),
        &thor,
        json!({ "choice_text": "Mjolnir" }),
    )
    .await;
    let potter_choice = post(
        &app,
        POTTER,
        &format!("/polls/{pp}/choices/"),
        &potter,
        json!({ "choice_text": "Holly" }),
    )
    .await;
    let (tc, pc) = (&thor_choice.body["id"], &potter_choice.body["id"]);
    ids(tc, pc);
    assert_reply(
        &thor_choice,
        StatusCode::CREATED,
        json!({ "id": tc, "votes": [], "choice_text": "Mjolnir", "poll": tp }),
    );
    assert_reply(
        &potter_choice,
        StatusCode::CREATED,
        json!({ "id": pc, "votes": [], "choice_text": "Holly", "poll": pp }),
    );
    let thor_vote = post(
        &app,
        THOR,
        &format!("/polls/{tp}/choices/{tc}/vote/"),
        &thor,
        json!({}),
    )
    .await;
    let tv = &thor_vote.body["id"];
    assert_reply(
        &thor_vote,
        StatusCode::CREATED,
        json!({ "id": tv, "choice": tc, "poll": tp, "voted_by": thor_user }),
    );
    // A vote in thor does not count as a vote in potter's poll.
    let potter_vote = post(
        &app,
        POTTER,
        &format!("/polls/{pp}/choices/{pc}/vote/"),
        &potter,
        json!({}),
    )
    .await;
    let pv = &potter_vote.body["id"];
    ids(tv, pv);
    assert_reply(
        &potter_vote,
        StatusCode::CREATED,
        json!({ "id": pv, "choice": pc, "poll": pp, "voted_by": potter_user }),
    );
    let thor_detail = get(&app, THOR, &format!("/polls/{tp}/"), &thor).await;
    assert_reply(
        &thor_detail,
        StatusCode::OK,
        json!({
            "id": tp, "question": "Thor's hammer?", "pub_date": thor_poll["pub_date"],
            "created_by": thor_user, "choices": [{ "id": tc, "choice_text": "Mjolnir",
            "poll": tp, "votes": [{ "id": tv, "choice": tc, "poll": tp, "voted_by": thor_user }] }],
        }),
    );
    let potter_detail = get(&app, POTTER, &format!("/polls/{pp}/"), &potter).await;
    assert_reply(
        &potter_detail,
        StatusCode::OK,
        json!({
            "id": pp, "question": "Potter's wand?", "pub_date": potter_poll["pub_date"],
            "created_by": potter_user, "choices": [{ "id": pc, "choice_text": "Holly",
            "poll": pp, "votes": [{ "id": pv, "choice": pc, "poll": pp,
            "voted_by": potter_user }] }],
        }),
    );
    if !same_ids {
        // Each tenant's ids are unknown in the other, whatever the route.
        for (host, token, poll, choice) in [(POTTER, &potter, tp, tc), (THOR, &thor, pp, pc)] {
            assert_reply(
                &get(&app, host, &format!("/polls/{poll}/"), token).await,
                StatusCode::NOT_FOUND,
                json!({ "detail": "Not found." }),
            );
            let vote = format!("/polls/{poll}/choices/{choice}/vote/");
            let reply = post(&app, host, &vote, token, json!({})).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
        }
    }

    // Writes in one tenant never show in the other: thor writes 4 more polls, potter 1.
    for n in 2..=5 {
        create_poll(&app, THOR, &thor, &format!("Thor {n}?")).await;
    }
    create_poll(&app, POTTER, &potter, "Potter 2?").await;
    assert_eq!(
        questions(&app, THOR, &thor).await,
        ["Thor's hammer?", "Thor 2?", "Thor 3?", "Thor 4?", "Thor 5?"]
    );
    assert_eq!(
        questions(&app, POTTER, &potter).await,
        ["Potter's wand?", "Potter 2?"]
    );
    // Thor's newest poll does not exist in potter, whatever the verb.
    let thor_last = create_poll(&app, THOR, &thor, "Thor 6?").await["id"].clone();
    let not_found = json!({ "detail": "Not found." });
    assert_reply(
        &get(&app, POTTER, &format!("/polls/{thor_last}/"), &potter).await,
        StatusCode::NOT_FOUND,
        not_found.clone(),
    );
    assert_reply(
        &app.request(
            Method::DELETE,
            POTTER,
            &format!("/polls/{thor_last}/"),
            Some(&potter),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        not_found.clone(),
    );
    assert_reply(
        &app.request(
            Method::PUT,
            POTTER,
            &format!("/polls/{thor_last}/"),
            Some(&potter),
            Some(json!({ "question": "Mine?" })),
        )
        .await,
        StatusCode::NOT_FOUND,
        not_found.clone(),
    );
    assert_reply(
        &post(
            &app,
            POTTER,
            &format!("/polls/{thor_last}/choices/"),
            &potter,
            json!({ "choice_text": "x" }),
        )
        .await,
        StatusCode::NOT_FOUND,
        not_found.clone(),
    );
    // Thor's host does not reach potter through a path prefix either.
    assert_reply(
        &get(&app, THOR, "/t/potter/polls/", &thor).await,
        StatusCode::NOT_FOUND,
        not_found.clone(),
    );
    assert_eq!(questions(&app, THOR, &thor).await.len(), 6);
    assert_eq!(questions(&app, POTTER, &potter).await.len(), 2);

    // A user registered in only one tenant does not exist in the other.
    let dave = app.user(THOR, "dave").await;
    assert_reply(
        &get(&app, POTTER, "/polls/", &dave).await,
        StatusCode::UNAUTHORIZED,
        invalid,
    );
    assert_reply(
        &login(&app, POTTER, "dave", "s3cret-pass").await,
        StatusCode::BAD_REQUEST,
        json!({ "error": "Wrong Credentials" }),
    );
}

async fn trailing_slashes_are_optional(mode: Mode) {
    let app = spawn_app_in(mode).await;
    let created = app
        .request(
            Method::POST,
            THOR,
            "/users",
            None,
            Some(json!({ "username": "ann", "password": "pw-12345" })),
        )
        .await;
    assert_reply(
        &created,
        StatusCode::CREATED,
        json!({ "id": 1, "username": "ann", "email": "" }),
    );
    let login = app
        .request(
            Method::POST,
            THOR,
            "/login",
            None,
            Some(json!({ "username": "ann", "password": "pw-12345" })),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK);
    let token = format!("Token {}", login.body["token"].as_str().unwrap());
    let poll = post(
        &app,
        THOR,
        "/polls",
        &token,
        json!({ "question": "Slashes?" }),
    )
    .await;
    assert_eq!(poll.status, StatusCode::CREATED, "{}", poll.body);
    let choice = post(
        &app,
        THOR,
        "/polls/1/choices",
        &token,
        json!({ "choice_text": "No" }),
    )
    .await;
    assert_eq!(choice.status, StatusCode::CREATED, "{}", choice.body);
    let vote = post(&app, THOR, "/polls/1/choices/1/vote", &token, json!({})).await;
    assert_eq!(vote.status, StatusCode::CREATED, "{}", vote.body);
    let with = get(&app, THOR, "/polls/", &token).await;
    let without = get(&app, THOR, "/polls", &token).await;
    assert_eq!(with.status, StatusCode::OK);
    assert_eq!(with.body.as_array().unwrap().len(), 1);
    assert_eq!(with.body, without.body);
    let with = get(&app, THOR, "/polls/1/", &token).await;
    let without = get(&app, THOR, "/polls/1", &token).await;
    assert_eq!(with.status, StatusCode::OK);
    assert_eq!(with.body, without.body);
    assert_eq!(
        get(&app, THOR, "/polls/1/choices", &token).await.body,
        get(&app, THOR, "/polls/1/choices/", &token).await.body
    );
    let patched = app
        .request(
            Method::PATCH,
            THOR,
            "/polls/1",
            Some(&token),
            Some(json!({ "question": "Yes?" })),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    let deleted = app
        .request(Method::DELETE, THOR, "/polls/1", Some(&token), None)
        .await;
    assert_reply(&deleted, StatusCode::NO_CONTENT, Value::Null);
}

async fn the_root_links_to_polls_with_the_host_as_sent(mode: Mode) {
    let app = spawn_app_in(mode).await;
    let token = app.user(THOR, "ann").await;
    assert_reply(
        &get(&app, THOR, "/", &token).await,
        StatusCode::OK,
        json!({ "polls": "http://thor.polls.test/polls/" }),
    );
    assert_reply(
        &get(&app, "thor.polls.test:8080", "/", &token).await,
        StatusCode::OK,
        json!({ "polls": "http://thor.polls.test:8080/polls/" }),
    );
    for path in ["/t/thor/", "/t/thor"] {
        assert_reply(
            &get(&app, "polls.test", path, &token).await,
            StatusCode::OK,
            json!({ "polls": "http://polls.test/t/thor/polls/" }),
        );
    }
    assert_reply(
        &get(&app, "polls.test:8000", "/t/thor/", &token).await,
        StatusCode::OK,
        json!({ "polls": "http://polls.test:8000/t/thor/polls/" }),
    );
    // The root needs a token like everything else but sign-up and login.
    let anonymous = app.request(Method::GET, THOR, "/", None, None).await;
    assert_reply(
        &anonymous,
        StatusCode::UNAUTHORIZED,
        json!({ "detail": "Authentication credentials were not provided." }),
    );
    // A browser gets a page with the ways in, at a tenant's root and the public site's; an
    // API client asking for JSON first still gets JSON.
    let browse = async |host: &str, path: &str, accept: &str| {
        let reply = app
            .client
            .get(format!("http://{}{path}", app.addr))
            .header("host", host)
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        let kind = reply.headers()["content-type"].to_str().unwrap().to_owned();
        (reply.status(), kind, reply.text().await.unwrap())
    };
    let html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    for (host, path, admin) in [
        (THOR, "/", r#"href="/admin/""#),
        ("polls.test", "/t/thor/", r#"href="/t/thor/admin/""#),
    ] {
        let (status, kind, page) = browse(host, path, html).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(kind.starts_with("text/html"), "{kind}");
        assert!(
            page.contains(admin) && page.contains("/polls/</code>"),
            "{page}"
        );
    }
    let (status, kind, _) = browse(THOR, "/", "application/json, text/html").await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::UNAUTHORIZED, "application/json")
    );
    let (status, kind, page) = browse("polls.test", "/", html).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        kind.starts_with("text/html") && page.contains("SLUG.polls.test"),
        "{page}"
    );
    let public = app
        .request(Method::GET, "polls.test", "/", None, None)
        .await;
    assert_eq!(public.status, StatusCode::NOT_FOUND);
}

async fn the_whole_flow_works_through_the_path_prefix(mode: Mode) {
    let app = spawn_app_in(mode).await;
    let base = "polls.test";
    let created = app
        .request(
            Method::POST,
            base,
            "/t/thor/users/",
            None,
            Some(json!({ "username": "pat", "email": "pat@example.com", "password": "pw-pat" })),
        )
        .await;
    assert_reply(
        &created,
        StatusCode::CREATED,
        json!({ "id": 1, "username": "pat", "email": "pat@example.com" }),
    );
    let login = app
        .request(
            Method::POST,
            base,
            "/t/thor/login/",
            None,
            Some(json!({ "username": "pat", "password": "pw-pat" })),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let token = format!("Token {}", login.body["token"].as_str().unwrap());
    let poll = post(
        &app,
        base,
        "/t/thor/polls/",
        &token,
        json!({ "question": "Prefixed?" }),
    )
    .await;
    assert_eq!(poll.status, StatusCode::CREATED, "{}", poll.body);
    let choice = post(
        &app,
        base,
        "/t/thor/polls/1/choices/",
        &token,
        json!({ "choice_text": "Yes" }),
    )
    .await;
    assert_reply(
        &choice,
        StatusCode::CREATED,
        json!({ "id": 1, "votes": [], "choice_text": "Yes", "poll": 1 }),
    );
    let vote = post(
        &app,
        base,
        "/t/thor/polls/1/choices/1/vote/",
        &token,
        json!({}),
    )
    .await;
    assert_reply(
        &vote,
        StatusCode::CREATED,
        json!({ "id": 1, "choice": 1, "poll": 1, "voted_by": 1 }),
    );
    let expected = json!([{
        "id": 1, "question": "Prefixed?", "pub_date": poll.body["pub_date"], "created_by": 1,
        "choices": [{ "id": 1, "choice_text": "Yes", "poll": 1,
            "votes": [{ "id": 1, "choice": 1, "poll": 1, "voted_by": 1 }] }],
    }]);
    for path in ["/t/thor/polls/", "/t/thor/polls"] {
        assert_reply(
            &get(&app, base, path, &token).await,
            StatusCode::OK,
            expected.clone(),
        );
    }
    // The prefix and the host are the same tenant; potter's prefix is another.
    assert_reply(
        &get(&app, THOR, "/polls/", &token).await,
        StatusCode::OK,
        expected,
    );
    let potter = app.user(POTTER, "pat").await;
    assert_reply(
        &get(&app, base, "/t/potter/polls/", &potter).await,
        StatusCode::OK,
        json!([]),
    );
    // Errors inside the prefix are the tenant's own JSON errors.
    assert_reply(
        &get(&app, base, "/t/thor/nothing/", &token).await,
        StatusCode::NOT_FOUND,
        json!({ "detail": "Not found." }),
    );
    assert_reply(
        &get(&app, base, "/t/nobody/polls/", &token).await,
        StatusCode::NOT_FOUND,
        json!({ "detail": "No tenant 'nobody'" }),
    );
}

async fn authentication_errors(mode: Mode) {
    let app = spawn_app_in(mode).await;
    let token = app.user(THOR, "ann").await;
    create_poll(&app, THOR, &token, "Auth?").await;
    let not_provided = json!({ "detail": "Authentication credentials were not provided." });
    let invalid = json!({ "detail": "Invalid token." });
    for (method, path) in [
        (Method::GET, "/"),
        (Method::GET, "/polls/"),
        (Method::POST, "/polls/"),
        (Method::GET, "/polls/1/"),
        (Method::PUT, "/polls/1/"),
        (Method::PATCH, "/polls/1/"),
        (Method::DELETE, "/polls/1/"),
        (Method::GET, "/polls/1/choices/"),
        (Method::POST, "/polls/1/choices/"),
        (Method::POST, "/polls/1/choices/1/vote/"),
    ] {
        let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
        let reply = app
            .request(method.clone(), THOR, path, None, body.clone())
            .await;
        assert_reply(&reply, StatusCode::UNAUTHORIZED, not_provided.clone());
        assert_eq!(
            reply
                .headers
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some("Token"),
            "{method} {path}"
        );
        let bad_key = format!("Token {}", "0".repeat(40));
        let reply = app
            .request(method.clone(), THOR, path, Some(&bad_key), body)
            .await;
        assert_reply(&reply, StatusCode::UNAUTHORIZED, invalid.clone());
        assert_eq!(
            reply
                .headers
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some("Token"),
            "{method} {path}"
        );
    }
    let key = token.strip_prefix("Token ").unwrap();
    for (header, expected) in [
        ("Bearer abc".to_owned(), not_provided.clone()),
        (format!("Basic {key}"), not_provided.clone()),
        (
            "Token".to_owned(),
            json!({ "detail": "Invalid token header. No credentials provided." }),
        ),
        (
            "Token a b".to_owned(),
            json!({ "detail": "Invalid token header. Token string should not contain spaces." }),
        ),
        (
            "Token ' OR '1'='1".to_owned(),
            json!({ "detail": "Invalid token header. Token string should not contain spaces." }),
        ),
        ("Token '--".to_owned(), invalid.clone()),
        (format!("Token {}", &key[..39]), invalid.clone()),
        (format!("Token {key}0"), invalid.clone()),
        (format!("Token {}", key.to_uppercase()), invalid.clone()),
    ] {
        let reply = get(&app, THOR, "/polls/", &header).await;
        assert_reply(&reply, StatusCode::UNAUTHORIZED, expected);
    }
    // The scheme is case-insensitive and extra whitespace is fine.
    for header in [format!("token {key}"), format!("TOKEN   {key} ")] {
        assert_eq!(
            get(&app, THOR, "/polls/", &header).await.status,
            StatusCode::OK
        );
    }
}

async fn nul_characters_and_ambiguous_hosts_are_refused(mode: Mode) {
    let app = spawn_app_in(mode).await;
    let token = app.user(THOR, "ann").await;
    let poll = create_poll(&app, THOR, &token, "Tea?").await;
    let nul = "a\u{0}b";
    let refused = |field: &str| json!({ field: ["Null characters are not allowed."] });
    for (method, path, auth, body, field) in [
        (
            Method::POST,
            "/users/".to_owned(),
            None,
            json!({"username": nul, "email": "a@b.c", "password": "s3cret-pass"}),
            "username",
        ),
        (
            Method::POST,
            "/users/".to_owned(),
            None,
            json!({"username": "bob", "email": "a@b.c", "password": nul}),
            "password",
        ),
        (
            Method::POST,
            "/login/".to_owned(),
            None,
            json!({"username": "ann", "password": nul}),
            "password",
        ),
        (
            Method::POST,
            "/polls/".to_owned(),
            Some(&token),
            json!({"question": nul}),
            "question",
        ),
        (
            Method::PUT,
            format!("/polls/{}/", poll["id"]),
            Some(&token),
            json!({"question": nul}),
            "question",
        ),
        (
            Method::PATCH,
            format!("/polls/{}/", poll["id"]),
            Some(&token),
            json!({"question": nul}),
            "question",
        ),
        (
            Method::POST,
            format!("/polls/{}/choices/", poll["id"]),
            Some(&token),
            json!({"choice_text": nul}),
            "choice_text",
        ),
    ] {
        let reply = app
            .request(method, THOR, &path, auth.map(String::as_str), Some(body))
            .await;
        assert_reply(&reply, StatusCode::BAD_REQUEST, refused(field));
    }
    let platform = format!("Bearer {}", support::PLATFORM_TOKEN);
    let reply = app
        .request(
            Method::POST,
            support::BASE,
            "/api/tenants/",
            Some(&platform),
            Some(json!({"slug": "loki", "name": nul})),
        )
        .await;
    assert_reply(&reply, StatusCode::BAD_REQUEST, refused("name"));
    // Nothing refused was stored.
    let polls = get(&app, THOR, "/polls/", &token).await.body;
    assert_eq!(polls[0]["question"], "Tea?");
    assert_eq!(polls[0]["choices"], json!([]));

    let two_hosts = format!(
        "GET /polls/ HTTP/1.1\r\nHost: {THOR}\r\nHost: potter.polls.test\r\n\
         Authorization: {token}\r\nConnection: close\r\n\r\n"
    );
    let reply = app.raw(two_hosts.as_bytes()).await;
    assert_eq!(reply.status, 400);
    app.assert_refused(
        &reply.body,
        &json!({ "detail": "Invalid Host header: more than one Host header." }),
        "two hosts",
    );
    for host in ["thor.polls.test:65536", "thor.polls.test:4294967297"] {
        let reply = app.raw_get(Some(host.as_bytes()), "/polls/").await;
        assert_eq!(reply.status, 400, "{host}");
        app.assert_refused(
            &reply.body,
            &json!({ "detail": "Invalid Host header: the port is not a number from 0 to 65535." }),
            host,
        );
    }
}

async fn every_error_is_json(mode: Mode) {
    let app = spawn_app_in(mode).await;
    let token = app.user(THOR, "ann").await;
    let not_found = json!({ "detail": "Not found." });
    for path in [
        "/nothing/",
        "/polls/1/",
        "/polls/abc/",
        "/polls/1/choices/x/",
        "/users/1/",
        "/polls/99999999999999999999/",
    ] {
        assert_reply(
            &get(&app, THOR, path, &token).await,
            StatusCode::NOT_FOUND,
            not_found.clone(),
        );
    }
    assert_reply(
        &app.request(Method::GET, THOR, "/nothing/", None, None)
            .await,
        StatusCode::NOT_FOUND,
        not_found.clone(),
    );

    // Wrong methods: 405 with an Allow header.
    for (method, path, name) in [
        (Method::DELETE, "/polls/", "DELETE"),
        (Method::GET, "/users/", "GET"),
        (Method::GET, "/login/", "GET"),
        (Method::POST, "/polls/1/", "POST"),
        (Method::GET, "/polls/1/choices/1/vote/", "GET"),
    ] {
        let reply = app.request(method, THOR, path, Some(&token), None).await;
        assert_reply(
            &reply,
            StatusCode::METHOD_NOT_ALLOWED,
            json!({ "detail": format!("Method \"{name}\" not allowed.") }),
        );
        assert!(reply.headers.contains_key("allow"), "{path}");
    }
    let reply = app
        .request(Method::DELETE, THOR, "/polls/", Some(&token), None)
        .await;
    let allow = reply.headers["allow"].to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");

    // Bodies that are not JSON, or not the right JSON.
    for (path, body) in [
        ("/polls/", "{\"question\": "),
        ("/polls/", "not json"),
        ("/polls/", "{\"question\": 5}"),
        ("/polls/", "[]"),
        ("/users/", "{\"username\": [\"a\"]}"),
        ("/login/", "{"),
    ] {
        let reply = app
            .request_text(
                Method::POST,
                THOR,
                path,
                Some(&token),
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
        let detail = reply.body["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("{}", reply.body));
        assert!(detail.starts_with("JSON parse error - "), "{detail}");
        assert_eq!(reply.body.as_object().unwrap().len(), 1, "{}", reply.body);
    }
    let reply = app
        .request_text(
            Method::POST,
            THOR,
            "/polls/",
            Some(&token),
            None,
            "{\"question\": \"Q?\"}",
        )
        .await;
    assert_reply(
        &reply,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        json!({ "detail": "Unsupported media type \"\" in request." }),
    );
    let reply = app
        .request_text(
            Method::POST,
            THOR,
            "/polls/",
            Some(&token),
            Some("text/plain"),
            "{\"question\": \"Q?\"}",
        )
        .await;
    assert_reply(
        &reply,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        json!({ "detail": "Unsupported media type \"text/plain\" in request." }),
    );

    // Per-field validation.
    let sign_up = async |body: Value| {
        app.request(Method::POST, THOR, "/users/", None, Some(body))
            .await
    };
    assert_reply(
        &sign_up(json!({})).await,
        StatusCode::BAD_REQUEST,
        json!({ "username": [REQUIRED], "password": [REQUIRED] }),
    );
    assert_reply(
        &sign_up(json!({ "username": " ", "email": "nope", "password": "" })).await,
        StatusCode::BAD_REQUEST,
        json!({
            "username": ["This field may not be blank."],
            "email": ["Enter a valid email address."],
            "password": ["This field may not be blank."],
        }),
    );
    assert_reply(
        &sign_up(json!({ "username": "ann b", "password": "pw" })).await,
        StatusCode::BAD_REQUEST,
        json!({ "username": [
            "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."
        ] }),
    );
    assert_reply(
        &sign_up(json!({ "username": "ann", "password": "other" })).await,
        StatusCode::BAD_REQUEST,
        json!({ "username": ["A user with that username already exists."] }),
    );
    assert_reply(
        &sign_up(json!({ "username": " ann ", "password": "other" })).await,
        StatusCode::BAD_REQUEST,
        json!({ "username": ["A user with that username already exists."] }),
    );
    let long_question = "q".repeat(101);
    assert_reply(
        &post(
            &app,
            THOR,
            "/polls/",
            &token,
            json!({ "question": long_question }),
        )
        .await,
        StatusCode::BAD_REQUEST,
        json!({ "question": ["Ensure this field has no more than 100 characters."] }),
    );
    assert_reply(
        &post(&app, THOR, "/polls/", &token, json!({})).await,
        StatusCode::BAD_REQUEST,
        json!({ "question": [REQUIRED] }),
    );
    assert_reply(
        &post(&app, THOR, "/polls/", &token, json!({ "question": "   " })).await,
        StatusCode::BAD_REQUEST,
        json!({ "question": ["This field may not be blank."] }),
    );
    // 100 characters, multi-byte ones included, is fine.
    let longest = "é".repeat(100);
    let poll = create_poll(&app, THOR, &token, &longest).await;
    assert_eq!(poll["question"], longest.as_str());
    assert_reply(
        &post(
            &app,
            THOR,
            "/polls/1/choices/",
            &token,
            json!({ "choice_text": "c".repeat(101) }),
        )
        .await,
        StatusCode::BAD_REQUEST,
        json!({ "choice_text": ["Ensure this field has no more than 100 characters."] }),
    );
    assert_reply(
        &post(&app, THOR, "/polls/1/choices/", &token, json!({})).await,
        StatusCode::BAD_REQUEST,
        json!({ "choice_text": [REQUIRED] }),
    );
    assert_reply(
        &app.request(
            Method::PATCH,
            THOR,
            "/polls/1/",
            Some(&token),
            Some(json!({ "question": "" })),
        )
        .await,
        StatusCode::BAD_REQUEST,
        json!({ "question": ["This field may not be blank."] }),
    );

    // Login failures all look alike.
    let wrong = json!({ "error": "Wrong Credentials" });
    for body in [
        json!({ "username": "ann", "password": "wrong" }),
        json!({ "username": "nobody", "password": "s3cret-pass" }),
        json!({ "username": "ann" }),
        json!({}),
    ] {
        let reply = app
            .request(Method::POST, THOR, "/login/", None, Some(body))
            .await;
        assert_reply(&reply, StatusCode::BAD_REQUEST, wrong.clone());
    }

    // None of the refused requests left anything behind.
    let polls = get(&app, THOR, "/polls/", &token).await.body;
    assert_eq!(polls.as_array().unwrap().len(), 1, "{polls}");
    assert_eq!(polls[0]["choices"], json!([]));
    assert_eq!(polls[0]["question"], longest.as_str());
}

async fn hostile_hosts_get_clean_json_errors(mode: Mode) {
    let app = spawn_app_in(mode).await;
    let token = app.user(THOR, "ann").await;
    create_poll(&app, THOR, &token, "Still here?").await;

    assert_reply(
        &get(&app, "nobody.polls.test", "/polls/", &token).await,
        StatusCode::NOT_FOUND,
        json!({ "detail": "No tenant for host 'nobody.polls.test'" }),
    );
    // reqwest sends this one as is.
    let reply = get(&app, "'; DROP SCHEMA thor CASCADE; --", "/polls/", &token).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    app.assert_refused(
        &reply.body,
        &json!({ "detail": "Invalid Host header: not a valid host name." }),
        "reqwest",
    );

    let invalid = json!({ "detail": "Invalid Host header: not a valid host name." });
    let long_label = format!("{}.polls.test", "a".repeat(300));
    let long_host = vec!["abc"; 100].join(".");
    let cases: Vec<(Vec<u8>, u16, Value)> = vec![
        (
            b"'; DROP SCHEMA thor CASCADE; --".to_vec(),
            400,
            invalid.clone(),
        ),
        (
            b"thor.polls.test'; DROP SCHEMA thor CASCADE; --".to_vec(),
            400,
            invalid.clone(),
        ),
        (b"../".to_vec(), 400, invalid.clone()),
        (b"../../etc/passwd".to_vec(), 400, invalid.clone()),
        (b"thor.polls.test/../potter".to_vec(), 400, invalid.clone()),
        (long_label.into_bytes(), 400, invalid.clone()),
        (long_host.into_bytes(), 400, invalid.clone()),
        ("þór.polls.test".as_bytes().to_vec(), 400, invalid.clone()),
        (b"\xfe\xff.polls.test".to_vec(), 400, invalid.clone()),
        (b"".to_vec(), 400, invalid.clone()),
        (b"thor..polls.test".to_vec(), 400, invalid.clone()),
        (b"th_or.polls.test".to_vec(), 400, invalid.clone()),
        (b"thor polls test".to_vec(), 400, invalid.clone()),
        (b"[::1]:80".to_vec(), 400, invalid.clone()),
        (b"thor.polls.test:80x".to_vec(), 400, invalid.clone()),
        (b"thor.polls.test:".to_vec(), 400, invalid.clone()),
        (
            b"nobody.polls.test".to_vec(),
            404,
            json!({ "detail": "No tenant for host 'nobody.polls.test'" }),
        ),
        (
            b"a.thor.polls.test".to_vec(),
            404,
            json!({ "detail": "No tenant for host 'a.thor.polls.test'" }),
        ),
        (
            b"public.polls.test".to_vec(),
            404,
            json!({ "detail": "No tenant for host 'public.polls.test'" }),
        ),
        (
            b"evil.example".to_vec(),
            404,
            json!({ "detail": "No tenant for host 'evil.example'" }),
        ),
    ];
    for (host, status, body) in &cases {
        let reply = app.raw_get(Some(host), "/polls/").await;
        let shown = String::from_utf8_lossy(host);
        assert_eq!(reply.status, *status, "{shown:?}: {}", reply.body);
        app.assert_refused(&reply.body, body, &shown);
        assert_eq!(
            reply.header("content-type"),
            Some("application/json"),
            "{shown:?}"
        );
    }
    let reply = app.raw_get(None, "/polls/").await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    app.assert_refused(
        &reply.body,
        &json!({ "detail": "Invalid Host header: no host given." }),
        "no host",
    );

    // Hostile tenant names in the path prefix name no tenant.
    for (path, label) in [
        (
            "/t/%27%3B%20DROP%20SCHEMA%20thor%20CASCADE%3B%20--/polls/",
            "%27%3B%20DROP%20SCHEMA%20thor%20CASCADE%3B%20--",
        ),
        ("/t/..%2Fpotter/polls/", "..%2Fpotter"),
        ("/t/public/polls/", "public"),
        ("/t/tenantry/polls/", "tenantry"),
        ("/t/THOR/polls/", "THOR"),
    ] {
        let reply = app.raw_get(Some(b"polls.test"), path).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.body);
        assert_eq!(
            reply.body,
            json!({ "detail": format!("No tenant '{label}'") }),
            "{path}"
        );
    }
    let reply = app
        .raw_get(Some(b"polls.test"), "/t/../t/thor/polls/")
        .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(reply.body, json!({ "detail": "No tenant '..'" }));

    // A path that climbs out of thor's prefix stays in thor, where no such route exists.
    for path in [
        "/t/thor/../potter/polls/",
        "/t/thor/%2e%2e/potter/polls/",
        "/t/thor/..%2Fpotter/polls/",
    ] {
        let reply = app.raw_get(Some(b"polls.test"), path).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.body);
        assert_eq!(reply.body, json!({ "detail": "Not found." }), "{path}");
    }

    // Case, a port and a trailing dot still find thor.
    for host in [
        "THOR.Polls.Test",
        "thor.polls.test:8080",
        "thor.polls.test.",
    ] {
        assert_eq!(
            questions(&app, host, &token).await,
            ["Still here?"],
            "{host}"
        );
    }
    // After all that, thor and potter are intact.
    assert_eq!(questions(&app, THOR, &token).await, ["Still here?"]);
    let potter = app.user(POTTER, "ann").await;
    assert_eq!(questions(&app, POTTER, &potter).await, Vec::<String>::new());
}

async fn a_suspended_tenant_is_refused_with_403(mode: Mode) {
    let app = spawn_app_in(mode).await;
    let thor = app.user(THOR, "ann").await;
    let potter = app.user(POTTER, "ann").await;
    create_poll(&app, THOR, &thor, "Suspended?").await;
    let suspend = |status| tenantry::TenantUpdate {
        status: Some(status),
        ..Default::default()
    };
    let slug = tenantry::Slug::parse("thor").unwrap();
    app.tenancy
        .update_tenant(&slug, suspend(tenantry::TenantStatus::Suspended))
        .await
        .unwrap();
    let refused = json!({ "detail": "Tenant 'thor' is suspended." });
    assert_reply(
        &get(&app, THOR, "/polls/", &thor).await,
        StatusCode::FORBIDDEN,
        refused.clone(),
    );
    assert_reply(
        &get(&app, "polls.test", "/t/thor/polls/", &thor).await,
        StatusCode::FORBIDDEN,
        refused.clone(),
    );
    assert_reply(
        &app.request(Method::GET, THOR, "/nothing/", None, None)
            .await,
        StatusCode::FORBIDDEN,
        refused.clone(),
    );
    assert_reply(
        &register(&app, THOR, "eve", "eve-pass").await,
        StatusCode::FORBIDDEN,
        refused.clone(),
    );
    assert_reply(
        &login(&app, THOR, "ann", "s3cret-pass").await,
        StatusCode::FORBIDDEN,
        refused.clone(),
    );
    assert_reply(
        &post(
            &app,
            THOR,
            "/polls/",
            &thor,
            json!({ "question": "Sneak in?" }),
        )
        .await,
        StatusCode::FORBIDDEN,
        refused,
    );
    // Potter is unaffected.
    assert_eq!(questions(&app, POTTER, &potter).await, Vec::<String>::new());

    // Resumed, thor serves its data again with the same token; nothing was written meanwhile.
    app.tenancy
        .update_tenant(&slug, suspend(tenantry::TenantStatus::Active))
        .await
        .unwrap();
    assert_eq!(questions(&app, THOR, &thor).await, ["Suspended?"]);
    assert_reply(
        &login(&app, THOR, "eve", "eve-pass").await,
        StatusCode::BAD_REQUEST,
        json!({ "error": "Wrong Credentials" }),
    );
}

async fn cancelled_requests_leave_no_write_and_no_stuck_connection(mode: Mode) {
    use tokio::io::AsyncWriteExt;

    let app = spawn_app_in(mode).await;
    let token = app.user(THOR, "ann").await;
    let half = json!({ "question": "Half sent?" }).to_string();
    let whole = json!({ "question": "Sent whole?" }).to_string();
    // Requests cut off mid-body, and requests whose client leaves before the answer: more
    // than every pool (two connections per tenant) could hold if one leaked.
    for i in 0..30 {
        let body = if i % 2 == 0 { &half } else { &whole };
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let head = format!(
            "POST /polls/ HTTP/1.1\r\nHost: {THOR}\r\nAuthorization: {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let sent = if i % 2 == 0 {
            body.len() / 2
        } else {
            body.len()
        };
        stream.write_all(&body.as_bytes()[..sent]).await.unwrap();
        drop(stream);
    }
    // Within a few seconds thor answers again; no half-sent poll exists (a request whose
    // client left after sending it all may or may not have committed).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let polls = loop {
        let reply = get(&app, THOR, "/polls/", &token).await;
        if reply.status == StatusCode::OK {
            break reply.body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "thor still answers {}: {}",
            reply.status,
            reply.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let questions_now: Vec<&str> = polls
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["question"].as_str().unwrap())
        .collect();
    assert!(
        questions_now.iter().all(|q| *q == "Sent whole?"),
        "{questions_now:?}"
    );
    create_poll(&app, THOR, &token, "Whole?").await;
    let potter = app.user(POTTER, "ann").await;
    assert_eq!(questions(&app, POTTER, &potter).await, Vec::<String>::new());
}

async fn concurrent_requests_of_two_tenants_each_see_only_their_own(mode: Mode) {
    let app = spawn_app_in(mode).await;
    let thor = app.user(THOR, "ann").await;
    let potter = app.user(POTTER, "ann").await;
    create_poll(&app, THOR, &thor, "Thor's?").await;
    create_poll(&app, POTTER, &potter, "Potter's?").await;
    // 200 requests at once, the two tenants interleaved, on pools of two connections.
    let requests = (0..200).map(|i| {
        let (host, token, own) = match i % 2 {
            0 => (THOR, &thor, "Thor's?"),
            _ => (POTTER, &potter, "Potter's?"),
        };
        let app = &app;
        async move {
            let reply = get(app, host, "/polls/", token).await;
            (host, own, reply)
        }
    });
    let mut answered = 0;
    for (host, own, reply) in futures::future::join_all(requests).await {
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            continue;
        }
        assert_eq!(reply.status, StatusCode::OK, "{host}: {}", reply.body);
        let questions: Vec<&str> = reply
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["question"].as_str().unwrap())
            .collect();
        assert_eq!(questions, [own], "{host} saw another tenant's polls");
        answered += 1;
    }
    assert!(answered >= 100, "only {answered} of 200 answered");
}

/// The polls rules of two tenants of one running server differ: thor closes sign-up,
/// allows two choices per poll and lets a vote be changed; potter keeps the defaults.
async fn each_tenant_has_its_own_rules(mode: Mode) {
    let app = spawn_app_in(mode).await;
    let thor_token = app.user(THOR, "ann").await;
    let potter_token = app.user(POTTER, "ann").await;
    let rules = json!({
        "signup_open": false, "max_choices_per_poll": 2, "allow_vote_change": true
    });
    app.set_settings("thor", rules).await;

    let sign_up = json!({ "username": "bob", "email": "", "password": "s3cret-pass" });
    let closed = app
        .request(Method::POST, THOR, "/users/", None, Some(sign_up.clone()))
        .await;
    assert_reply(
        &closed,
        StatusCode::FORBIDDEN,
        json!({ "detail": "Sign-up is closed on this site." }),
    );
    let open = app
        .request(Method::POST, POTTER, "/users/", None, Some(sign_up))
        .await;
    assert_eq!(open.status, StatusCode::CREATED, "{}", open.body);

    for (host, token, allowed) in [(THOR, &thor_token, 2), (POTTER, &potter_token, 3)] {
        let poll = post(&app, host, "/polls/", token, json!({ "question": "Q?" })).await;
        assert_eq!(poll.status, StatusCode::CREATED, "{}", poll.body);
        let path = format!("/polls/{}/choices/", poll.body["id"]);
        let mut choices = Vec::new();
        for n in 0..3 {
            let choice = post(
                &app,
                host,
                &path,
                token,
                json!({ "choice_text": format!("c{n}") }),
            )
            .await;
            if n < allowed {
                assert_eq!(
                    choice.status,
                    StatusCode::CREATED,
                    "{host}: {}",
                    choice.body
                );
                choices.push(choice.body["id"].clone());
            } else {
                assert_reply(
                    &choice,
                    StatusCode::BAD_REQUEST,
                    json!({ "choice_text": [
                        "This poll already has the most choices this site allows (2)."
                    ] }),
                );
            }
        }
        let vote = |choice: &Value| format!("/polls/{}/choices/{choice}/vote/", poll.body["id"]);
        let first = post(&app, host, &vote(&choices[0]), token, json!({})).await;
        assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
        let second = post(&app, host, &vote(&choices[1]), token, json!({})).await;
        let detail = get(&app, host, &format!("/polls/{}/", poll.body["id"]), token).await;
        let votes: Vec<usize> = detail.body["choices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["votes"].as_array().unwrap().len())
            .collect();
        if host == THOR {
            assert_eq!(second.status, StatusCode::OK, "{}", second.body);
            assert_eq!(second.body["id"], first.body["id"], "the vote itself moved");
            assert_eq!(second.body["choice"], choices[1]);
            assert_eq!(votes, [0, 1], "{}", detail.body);
        } else {
            assert_reply(
                &second,
                StatusCode::BAD_REQUEST,
                json!({ "detail": "You have already voted in this poll." }),
            );
            assert_eq!(votes, [1, 0, 0], "{}", detail.body);
        }
    }
}

/// The tenant's limit on choices holds when many additions race: the poll is locked while
/// its choices are counted.
async fn the_choice_limit_holds_under_concurrent_adds(mode: Mode) {
    let app = spawn_app_in(mode).await;
    let token = app.user(THOR, "ann").await;
    app.set_settings("thor", json!({ "max_choices_per_poll": 3 }))
        .await;
    let poll = post(
        &app,
        THOR,
        "/polls/",
        &token,
        json!({ "question": "Race?" }),
    )
    .await;
    let path = format!("/polls/{}/choices/", poll.body["id"]);
    let adds = (0..20).map(|n| {
        let body = json!({ "choice_text": format!("c{n}") });
        post(&app, THOR, &path, &token, body)
    });
    let replies = futures::future::join_all(adds).await;
    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    for reply in &replies {
        assert!(
            [
                StatusCode::CREATED,
                StatusCode::BAD_REQUEST,
                StatusCode::SERVICE_UNAVAILABLE
            ]
            .contains(&reply.status),
            "{} {}",
            reply.status,
            reply.body
        );
    }
    assert!(
        created <= 3,
        "{created} choices were created past the limit of 3"
    );
    let listed = get(&app, THOR, &path, &token).await;
    assert_eq!(
        listed.body.as_array().unwrap().len(),
        created,
        "{}",
        listed.body
    );
    assert!(created >= 1, "none of 20 additions went through");
}

/// Where votes may change, a user's racing votes in one poll all succeed and leave one vote.
async fn racing_votes_leave_one_vote_where_votes_may_change(mode: Mode) {
    let app = spawn_app_in(mode).await;
    let token = app.user(THOR, "ann").await;
    app.set_settings("thor", json!({ "allow_vote_change": true }))
        .await;
    let poll = post(
        &app,
        THOR,
        "/polls/",
        &token,
        json!({ "question": "Race?" }),
    )
    .await;
    let path = format!("/polls/{}/choices/", poll.body["id"]);
    let mut choices = Vec::new();
    for n in 0..2 {
        let body = json!({ "choice_text": format!("c{n}") });
        choices.push(post(&app, THOR, &path, &token, body).await.body["id"].clone());
    }
    let paths: Vec<String> = (0..12)
        .map(|n| format!("{path}{}/vote/", choices[n % 2]))
        .collect();
    let votes = paths
        .iter()
        .map(|vote| post(&app, THOR, vote, &token, json!({})));
    let replies = futures::future::join_all(votes).await;
    for reply in &replies {
        assert!(
            [
                StatusCode::CREATED,
                StatusCode::OK,
                StatusCode::SERVICE_UNAVAILABLE
            ]
            .contains(&reply.status),
            "{} {}",
            reply.status,
            reply.body
        );
    }
    let first = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(first, 1, "exactly one vote was cast, the others moved it");
    let listed = get(&app, THOR, &path, &token).await;
    let votes: usize = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["votes"].as_array().unwrap().len())
        .sum();
    assert_eq!(votes, 1, "{}", listed.body);
}

/// Runs each test above once per kind of tenant: the same API, the same assertions.
macro_rules! in_every_mode {
    ($($test:ident),* $(,)?) => {
        mod schema_tenants {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Mode::Schema).await
            })*
        }
        mod shared_tenants {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Mode::Shared).await
            })*
        }
        mod database_tenants {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Mode::Database).await
            })*
        }
        /// Every connection through a PgBouncer in transaction mode, two server
        /// connections per database and role.
        mod schema_tenants_through_pgbouncer {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Mode::SchemaThroughPgBouncer).await
            })*
        }
        mod shared_tenants_through_pgbouncer {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Mode::SharedThroughPgBouncer).await
            })*
        }
        mod database_tenants_through_pgbouncer {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Mode::DatabaseThroughPgBouncer).await
            })*
        }
        /// Each tenant's requests forwarded to its own server.
        mod dedicated_tenants {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Mode::Dedicated).await
            })*
        }
        mod dedicated_tenants_behind_nginx {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Mode::DedicatedBehindNginx).await
            })*
        }
        /// These need no PostgreSQL at all.
        mod sqlite_tenants {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Mode::Sqlite).await
            })*
        }
        /// Neither do these: each tenant a SQLite file served by a process of its own.
        mod sqlite_dedicated_tenants {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Mode::SqliteDedicated).await
            })*
        }
    };
}

in_every_mode!(
    the_book_flow_works_in_each_tenant,
    non_creators_may_update_a_poll_as_in_the_book,
    the_same_ids_hold_different_data_in_each_tenant,
    trailing_slashes_are_optional,
    the_root_links_to_polls_with_the_host_as_sent,
    the_whole_flow_works_through_the_path_prefix,
    authentication_errors,
    every_error_is_json,
    nul_characters_and_ambiguous_hosts_are_refused,
    hostile_hosts_get_clean_json_errors,
    a_suspended_tenant_is_refused_with_403,
    cancelled_requests_leave_no_write_and_no_stuck_connection,
    concurrent_requests_of_two_tenants_each_see_only_their_own,
    each_tenant_has_its_own_rules,
    the_choice_limit_holds_under_concurrent_adds,
    racing_votes_leave_one_vote_where_votes_may_change,
);
