//! The real `polls` binary against a fresh database: migrate, the tenant lifecycle, and
//! commands run inside tenants.

use crate::support;

use std::io::Write;
use std::process::{Command, Stdio};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;
use tenantry::testing::{TestDatabase, TestPgBouncer};
use tenantry::{Slug, Tenancy};
use tower::ServiceExt;

use polls::startup;

/// The newest tenant migration, as `tenants list` and `show` print it.
fn latest() -> String {
    support::latest_version().to_string()
}

/// What a run of the binary did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `polls args...` on `db`, with `stdin` as standard input (closed if `None`).
fn polls(db: &TestDatabase, args: &[&str], stdin: Option<&str>) -> Run {
    polls_on(&db.url(), "none", args, stdin)
}

/// Runs `polls args...` on the database at `url`, reached through `pooler`.
fn polls_on(url: &str, pooler: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_polls"));
    command
        .args(args)
        .env("DATABASE_URL", url)
        .env("DATABASE_POOLER", pooler)
        .env("BASE_DOMAIN", support::BASE)
        .env("RUST_LOG", "error")
        .env("NO_COLOR", "1")
        .env_remove("TENANT_STRATEGIES")
        .env_remove("PLATFORM_TOKEN")
        .env_remove("BIND")
        .env_remove("POOL_SIZE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = command.spawn().expect("the polls binary runs");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        // A binary that fails before reading closes the pipe; its exit code and stderr,
        // checked by the caller, say why.
        if let Err(e) = pipe.write_all(input.as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
    }
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code().expect("the binary exited, not killed"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Runs `polls args...` and asserts it exits with `code`.
#[track_caller]
fn expect(db: &TestDatabase, args: &[&str], code: i32) -> Run {
    let run = polls(db, args, None);
    assert_eq!(run.code, code, "polls {}\n{run}", args.join(" "));
    run
}

/// A fresh database, migrated by the binary.
async fn migrated() -> TestDatabase {
    let db = TestDatabase::create().await;
    expect(&db, &["migrate"], 0);
    db
}

/// The non-blank lines of a table's body (after the header), split into cells.
fn table_rows(stdout: &str) -> Vec<Vec<&str>> {
    stdout
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty() && !line.starts_with('('))
        .map(|line| line.split_whitespace().collect())
        .collect()
}

/// The value of a `key:   value` line of `tenants show`, all of them for `domain`.
fn field<'a>(stdout: &'a str, key: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix(&format!("{key}:")))
        .map(str::trim)
        .collect()
}

/// The value and origin of a setting in `tenants settings`' table, spaces collapsed.
fn setting(stdout: &str, key: &str) -> String {
    let line = stdout
        .lines()
        .find(|line| line.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no setting {key} in {stdout}"));
    line.split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ")
}

async fn schema_exists(db: &TestDatabase, schema: &str) -> bool {
    let pool = db.pool(1).await;
    let exists = sqlx::query_scalar(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = $1)",
    )
    .bind(schema)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    exists
}

/// The app on `db`, as `polls serve` would serve it.
async fn served(db: &TestDatabase) -> axum::Router {
    let settings = support::settings(db);
    let url = settings.database_url.as_deref().expect("a PostgreSQL URL");
    let pool = startup::connect(url, 2, tenantry::Pooler::None)
        .await
        .unwrap();
    let identification = settings.identification().unwrap();
    let tenancy = Tenancy::connect(pool, identification, startup::migrations())
        .await
        .unwrap();
    startup::app(tenancy, None)
}

/// Sends one request to the app served on `db`, as `polls serve` would serve it.
async fn http(
    db: &TestDatabase,
    method: &str,
    host: &str,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = served(db).await.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn migrate_applies_once_then_reports_up_to_date() {
    let db = TestDatabase::create().await;
    // Nothing works before the catalog exists, and says why.
    let run = expect(&db, &["tenants", "list"], 1);
    assert!(
        run.stderr.contains("run the migrate command first"),
        "{run}"
    );

    // --check applies nothing, not even the shared half, and says what is pending.
    let check = expect(&db, &["migrate", "--check"], 1);
    let pending = check.stdout.strip_prefix("shared: ").unwrap_or_default();
    assert!(pending.ends_with(" migration(s) pending\n"), "{check}");
    expect(&db, &["tenants", "list"], 1);

    let first = expect(&db, &["migrate"], 0);
    let applied: usize = first
        .stdout
        .lines()
        .find_map(|line| {
            line.strip_prefix("shared: ")?
                .strip_suffix(" migration(s) applied")
        })
        .unwrap_or_else(|| panic!("no shared summary\n{first}"))
        .parse()
        .unwrap();
    assert!(applied >= 1, "{first}");
    assert!(
        first
            .stdout
            .contains("tenants: 0 migrated, 0 up to date, 0 failed ("),
        "{first}"
    );

    let second = expect(&db, &["migrate"], 0);
    assert!(
        second
            .stdout
            .starts_with("shared: 0 migration(s) applied\n"),
        "{second}"
    );
    assert!(
        second
            .stdout
            .contains("tenants: 0 migrated, 0 up to date, 0 failed ("),
        "{second}"
    );

    // Tenants are created migrated; migrate then has nothing to do for them.
    expect(&db, &["tenants", "create", "thor"], 0);
    expect(&db, &["tenants", "create", "potter"], 0);
    let run = expect(&db, &["migrate"], 0);
    assert!(
        run.stdout.starts_with("shared: 0 migration(s) applied\n"),
        "{run}"
    );
    assert!(
        run.stdout.contains(
            "tenants: 0 migrated, 2 up to date (2 not visited: shared-mode, or current per \
             the catalog), 0 failed ("
        ),
        "{run}"
    );
    // --check applies nothing, the shared half included, and names what it visited.
    let run = expect(&db, &["migrate", "--check"], 0);
    assert!(
        run.stdout.starts_with("shared: 0 migration(s) pending\n"),
        "{run}"
    );
    assert!(run.stdout.contains("potter: up to date\n"), "{run}");
    let run = expect(&db, &["migrate", "--verify"], 0);
    assert!(run.stdout.contains("potter: up to date\n"), "{run}");
    assert!(run.stdout.contains("thor: up to date\n"), "{run}");
    assert!(
        run.stdout
            .contains("tenants: 0 migrated, 2 up to date, 0 failed ("),
        "{run}"
    );
    let run = expect(&db, &["migrate", "--tenant", "thor"], 0);
    assert!(
        run.stdout
            .contains("tenants: 0 migrated, 1 up to date (1 not visited"),
        "{run}"
    );

    // A tenant whose tables are gone is migrated again, and only that one.
    let pool = db.pool(1).await;
    sqlx::raw_sql(
        "DROP TABLE thor.tenantry_jobs, thor.tenantry_schedules, thor.web_login_links, thor.web_sessions, \
         thor.branding_files, thor.votes, thor.choices, \
         thor.polls, thor.tokens, thor.users, thor.tenantry_migrations; \
         UPDATE tenantry.tenants SET migration_version = NULL, migration_fingerprint = NULL \
         WHERE slug = 'thor'",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let run = expect(&db, &["migrate"], 0);
    assert!(
        // The PostgreSQL set is numbered 1, 2, ... without gaps: as many as the newest.
        run.stdout.contains(&format!(
            "thor: applied {0} migration(s) (none -> {0})\n",
            latest()
        )),
        "{run}"
    );
    assert!(!run.stdout.contains("potter:"), "{run}");
    assert!(
        run.stdout
            .contains("tenants: 1 migrated, 1 up to date (1 not visited"),
        "{run}"
    );
    let run = expect(
        &db,
        &["--tenant", "thor", "sql", "SELECT count(*) AS n FROM users"],
        0,
    );
    assert_eq!(run.stdout, "== thor ==\nn\n0\n(1 row)\n\n");
    let show = expect(&db, &["tenants", "show", "thor"], 0);
    assert_eq!(field(&show.stdout, "version"), [latest()], "{show}");
}

#[tokio::test]
async fn migrate_refuses_unknown_tenants_and_bad_flags() {
    let db = migrated().await;
    let run = expect(&db, &["migrate", "--tenant", "nobody"], 3);
    assert!(run.stderr.contains("error: no tenant 'nobody'"), "{run}");
    let run = expect(&db, &["migrate", "--tenant", "Nobody"], 2);
    assert!(run.stderr.contains("invalid value 'Nobody'"), "{run}");
    expect(&db, &["migrate", "--jobs", "0"], 2);
}

#[tokio::test]
async fn tenants_create_list_and_show() {
    let db = migrated().await;
    let run = expect(
        &db,
        &[
            "tenants",
            "create",
            "thor",
            "--name",
            "Thor",
            "--domain",
            "thor.example.com",
        ],
        0,
    );
    assert!(run.stdout.starts_with("created tenant 'thor' in "), "{run}");
    assert_eq!(field(&run.stdout, "slug"), ["thor"], "{run}");
    assert_eq!(field(&run.stdout, "name"), ["Thor"], "{run}");
    assert_eq!(field(&run.stdout, "status"), ["active"], "{run}");
    assert_eq!(field(&run.stdout, "schema"), ["thor"], "{run}");
    assert_eq!(field(&run.stdout, "version"), [latest()], "{run}");
    assert_eq!(
        field(&run.stdout, "domain"),
        ["thor.polls.test (primary)", "thor.example.com"],
        "{run}"
    );

    let again = expect(&db, &["tenants", "create", "thor"], 4);
    assert!(
        again
            .stderr
            .contains("error: a tenant with slug 'thor' already exists"),
        "{again}"
    );
    for bad in [
        "Bad_Slug",
        "bad_slug",
        "'; DROP SCHEMA thor; --",
        "www",
        "thor-",
    ] {
        let run = expect(&db, &["tenants", "create", bad], 2);
        assert!(
            run.stderr.contains(&format!("invalid value '{bad}'")),
            "{run}"
        );
    }
    let run = expect(
        &db,
        &["tenants", "create", "odin", "--domain", "bad domain"],
        2,
    );
    assert!(run.stderr.contains("'bad domain'"), "{run}");
    expect(
        &db,
        &["tenants", "create", "odin", "--domain", "polls.test"],
        2,
    );
    let run = expect(
        &db,
        &["tenants", "create", "odin", "--domain", "thor.example.com"],
        4,
    );
    assert!(run.stderr.contains("thor.example.com"), "{run}");
    // The refused creates left nothing behind.
    assert!(!schema_exists(&db, "odin").await);

    expect(&db, &["tenants", "create", "potter-2"], 0);
    let list = expect(&db, &["tenants", "list"], 0);
    assert_eq!(
        list.stdout
            .lines()
            .next()
            .map(|h| h.split_whitespace().collect::<Vec<_>>()),
        Some(vec![
            "SLUG",
            "NAME",
            "STATUS",
            "ISOLATION",
            "SERVER",
            "SCHEMA",
            "VERSION",
            "DOMAINS"
        ]),
        "{list}"
    );
    assert_eq!(
        table_rows(&list.stdout),
        [
            vec![
                "potter-2",
                "potter-2",
                "active",
                "schema",
                "-",
                "potter_2",
                &latest(),
                "potter-2.polls.test"
            ],
            vec![
                "thor",
                "Thor",
                "active",
                "schema",
                "-",
                "thor",
                &latest(),
                "thor.polls.test",
                "thor.example.com"
            ],
        ],
        "{list}"
    );
    assert!(list.stdout.ends_with("(2 tenants)\n"), "{list}");

    let show = expect(&db, &["tenants", "show", "thor"], 0);
    assert_eq!(field(&show.stdout, "slug"), ["thor"], "{show}");
    assert_eq!(field(&show.stdout, "name"), ["Thor"], "{show}");
    assert_eq!(field(&show.stdout, "isolation"), ["schema"], "{show}");
    assert_eq!(field(&show.stdout, "data"), ["schema \"thor\""], "{show}");
    assert_eq!(field(&show.stdout, "settings"), ["{}"], "{show}");
    assert_eq!(
        field(&show.stdout, "domain"),
        ["thor.polls.test (primary)", "thor.example.com"],
        "{show}"
    );
    let run = expect(&db, &["tenants", "show", "nobody"], 3);
    assert!(run.stderr.contains("error: no tenant 'nobody'"), "{run}");
    assert!(schema_exists(&db, "potter_2").await);

    // Settings: shown with their defaults, set as JSON or text, reset, and refused per key.
    let shown = expect(&db, &["tenants", "settings", "thor"], 0);
    assert_eq!(
        setting(&shown.stdout, "signup_open"),
        "true default",
        "{shown}"
    );
    let set = [
        "tenants",
        "settings",
        "thor",
        "--set",
        "primary_color=#aa0000",
        "--set",
        "max_choices_per_poll=3",
        "--set",
        "signup_open=false",
    ];
    let set = expect(&db, &set, 0);
    assert_eq!(
        setting(&set.stdout, "primary_color"),
        "\"#aa0000\" set",
        "{set}"
    );
    assert_eq!(
        setting(&set.stdout, "max_choices_per_poll"),
        "3 set",
        "{set}"
    );
    assert_eq!(setting(&set.stdout, "signup_open"), "false set", "{set}");
    let reset = expect(
        &db,
        &["tenants", "settings", "thor", "--reset", "signup_open"],
        0,
    );
    assert_eq!(
        setting(&reset.stdout, "signup_open"),
        "true default",
        "{reset}"
    );
    let bad = [
        "tenants",
        "settings",
        "thor",
        "--set",
        "primary_color=red",
        "--set",
        "theme=dark",
    ];
    let bad = expect(&db, &bad, 2);
    assert!(
        bad.stderr.contains(
            "invalid settings: primary_color: 'red' is not a colour of the form #rrggbb; \
             theme: unknown setting"
        ),
        "{bad}"
    );
    let missing = expect(&db, &["tenants", "settings", "thor", "--set", "novalue"], 2);
    assert!(missing.stderr.contains("expected KEY=VALUE"), "{missing}");
    let kept = expect(&db, &["tenants", "show", "thor"], 0);
    assert_eq!(
        field(&kept.stdout, "settings"),
        [r##"{"max_choices_per_poll":3,"primary_color":"#aa0000"}"##],
        "{kept}"
    );
}

#[tokio::test]
async fn createsuperuser_reads_the_password_from_stdin() {
    let db = migrated().await;
    expect(&db, &["tenants", "create", "thor"], 0);
    expect(&db, &["tenants", "create", "potter"], 0);
    let args = [
        "--tenant",
        "thor",
        "createsuperuser",
        "--username",
        "admin",
        "--password-stdin",
    ];
    let run = polls(&db, &args, Some("pw-123\n"));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.stdout, "created superuser 'admin' in 'thor'\n");

    let run = expect(
        &db,
        &[
            "--tenant",
            "thor",
            "sql",
            "SELECT username, is_superuser FROM users",
        ],
        0,
    );
    assert_eq!(
        table_rows(run.stdout.strip_prefix("== thor ==\n").unwrap()),
        [["admin", "t"]],
        "{run}"
    );
    assert!(
        run.stdout
            .starts_with("== thor ==\nusername  is_superuser\n"),
        "{run}"
    );
    assert!(run.stdout.contains("(1 row)"), "{run}");
    // Only in thor.
    let run = expect(
        &db,
        &[
            "--tenant",
            "potter",
            "sql",
            "SELECT count(*) AS n FROM users",
        ],
        0,
    );
    assert_eq!(run.stdout, "== potter ==\nn\n0\n(1 row)\n\n");

    // The password is the line without its newline, and the API accepts it.
    let (status, body) = http(
        &db,
        "POST",
        "thor.polls.test",
        "/login/",
        json!({ "username": "admin", "password": "pw-123" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token"].as_str().map(str::len), Some(40), "{body}");
    let (status, body) = http(
        &db,
        "POST",
        "thor.polls.test",
        "/login/",
        json!({ "username": "admin", "password": "pw-123\n" }),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({ "error": "Wrong Credentials" })
        )
    );

    let again = polls(&db, &args, Some("other\n"));
    assert_eq!(again.code, 4, "{again}");
    assert!(
        again
            .stderr
            .contains("user 'admin' already exists in 'thor'"),
        "{again}"
    );

    // No password, no tenant, an unknown tenant.
    let run = polls(&db, &args, None);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr
            .contains("the password on standard input is empty"),
        "{run}"
    );
    let run = polls(&db, &args, Some("\n"));
    assert_eq!(run.code, 2, "{run}");
    let run = polls(&db, &args[2..], Some("pw\n"));
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains("give --tenant SLUG or --all-tenants"),
        "{run}"
    );
    let run = polls(
        &db,
        &[
            "--tenant",
            "nobody",
            "createsuperuser",
            "--username",
            "x",
            "--password-stdin",
        ],
        Some("pw\n"),
    );
    assert_eq!(run.code, 3, "{run}");
    let run = polls(
        &db,
        &["--tenant", "thor", "createsuperuser", "--username", "x"],
        Some("pw\n"),
    );
    assert_eq!(run.code, 2, "{run}");

    // In every tenant at once.
    let run = polls(
        &db,
        &[
            "--all-tenants",
            "createsuperuser",
            "--username",
            "root",
            "--password-stdin",
        ],
        Some("pw-root\n"),
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        run.stdout,
        "created superuser 'root' in 'potter'\ncreated superuser 'root' in 'thor'\n"
    );
    let run = expect(
        &db,
        &["--all-tenants", "sql", "SELECT count(*) AS n FROM users"],
        0,
    );
    assert_eq!(
        run.stdout,
        "== potter ==\nn\n1\n(1 row)\n\n== thor ==\nn\n2\n(1 row)\n\n"
    );

    // Tenants that have the user do not stop the others; the end sums up.
    expect(&db, &["tenants", "create", "freya"], 0);
    let root = ["--all-tenants", "createsuperuser", "--username", "root"];
    let run = polls(
        &db,
        &[&root[..], &["--password-stdin"]].concat(),
        Some("pw\n"),
    );
    assert_eq!(run.code, 4, "{run}");
    assert_eq!(run.stdout, "created superuser 'root' in 'freya'\n", "{run}");
    for slug in ["potter", "thor"] {
        let exists = format!("error: user 'root' already exists in '{slug}'");
        assert!(run.stderr.contains(&exists), "{run}");
    }
    assert!(
        run.stderr
            .contains("createsuperuser failed in 2 of 3 tenants"),
        "{run}"
    );
}

#[tokio::test]
async fn sql_runs_in_each_tenant() {
    let db = migrated().await;
    expect(&db, &["tenants", "create", "thor"], 0);
    expect(&db, &["tenants", "create", "potter"], 0);
    expect(
        &db,
        &[
            "--tenant",
            "thor",
            "sql",
            "INSERT INTO users (username, password_hash) VALUES ('a', 'x'), ('b', 'x')",
        ],
        0,
    );
    let run = expect(
        &db,
        &["--all-tenants", "sql", "SELECT count(*) AS n FROM users"],
        0,
    );
    assert_eq!(
        run.stdout,
        "== potter ==\nn\n0\n(1 row)\n\n== thor ==\nn\n2\n(1 row)\n\n"
    );
    let run = expect(
        &db,
        &["--all-tenants", "sql", "SELECT current_schema() AS s"],
        0,
    );
    assert_eq!(
        run.stdout,
        "== potter ==\ns\npotter\n(1 row)\n\n== thor ==\ns\nthor\n(1 row)\n\n"
    );
    let run = expect(
        &db,
        &[
            "--tenant",
            "thor",
            "sql",
            "SELECT username FROM users WHERE false",
        ],
        0,
    );
    assert_eq!(run.stdout, "== thor ==\n(0 rows)\n\n");

    // Several statements: a table (or a count of changed rows) for each.
    let run = expect(
        &db,
        &[
            "--tenant",
            "thor",
            "sql",
            "SELECT 1 AS a; SELECT 2 AS b, 3 AS c; UPDATE users SET email = email",
        ],
        0,
    );
    assert_eq!(
        run.stdout,
        "== thor ==\na\n1\n(1 row)\nb  c\n2  3\n(1 row)\n(2 rows changed)\n\n"
    );

    // A statement failing everywhere: an error per tenant, and a non-zero exit.
    let run = expect(
        &db,
        &["--all-tenants", "sql", "SELECT * FROM nonexistent"],
        1,
    );
    assert!(run.stdout.contains("== potter ==\nERROR: "), "{run}");
    assert!(run.stdout.contains("== thor ==\nERROR: "), "{run}");
    assert_eq!(run.stdout.matches("ERROR: ").count(), 2, "{run}");
    assert_eq!(
        run.stdout.matches("\"nonexistent\" does not exist").count(),
        2,
        "{run}"
    );
    assert!(
        run.stderr
            .contains("error: the statement failed in 2 tenant(s)"),
        "{run}"
    );

    // Failing in one tenant only: the other still runs, and its result is shown.
    let run = expect(
        &db,
        &[
            "--all-tenants",
            "sql",
            "SELECT 10 / count(*) AS q FROM users",
        ],
        1,
    );
    assert!(run.stdout.contains("== potter ==\nERROR: "), "{run}");
    assert!(run.stdout.contains("division by zero"), "{run}");
    assert!(run.stdout.contains("== thor ==\nq\n5\n(1 row)\n"), "{run}");
    assert!(
        run.stderr
            .contains("error: the statement failed in 1 tenant(s)"),
        "{run}"
    );

    // A failed statement is rolled back.
    expect(
        &db,
        &[
            "--tenant",
            "thor",
            "sql",
            "INSERT INTO users (username, password_hash) VALUES ('c', 'x'); SELECT 1/0",
        ],
        1,
    );
    let run = expect(
        &db,
        &["--tenant", "thor", "sql", "SELECT count(*) AS n FROM users"],
        0,
    );
    assert_eq!(run.stdout, "== thor ==\nn\n2\n(1 row)\n\n");

    // Targets are required, exclusive and checked.
    let run = expect(&db, &["sql", "SELECT 1"], 2);
    assert!(
        run.stderr.contains("give --tenant SLUG or --all-tenants"),
        "{run}"
    );
    expect(
        &db,
        &["--tenant", "thor", "--all-tenants", "sql", "SELECT 1"],
        2,
    );
    let run = expect(&db, &["--tenant", "nobody", "sql", "SELECT 1"], 3);
    assert!(run.stderr.contains("no tenant 'nobody'"), "{run}");
}

#[tokio::test]
async fn the_tenant_lifecycle_from_the_command_line() {
    let db = migrated().await;
    expect(
        &db,
        &[
            "tenants",
            "create",
            "thor",
            "--name",
            "Thor",
            "--domain",
            "thor.example.com",
        ],
        0,
    );
    expect(&db, &["tenants", "create", "potter"], 0);
    expect(
        &db,
        &[
            "--tenant",
            "thor",
            "sql",
            "INSERT INTO users (username, password_hash) VALUES ('kept', 'x')",
        ],
        0,
    );

    // Rename: schema and primary domain follow, custom domains and data stay.
    let run = expect(&db, &["tenants", "rename", "thor", "--slug", "odin"], 0);
    assert_eq!(field(&run.stdout, "slug"), ["odin"], "{run}");
    assert_eq!(field(&run.stdout, "name"), ["Thor"], "{run}");
    assert_eq!(field(&run.stdout, "schema"), ["odin"], "{run}");
    assert_eq!(
        field(&run.stdout, "domain"),
        ["odin.polls.test (primary)", "thor.example.com"],
        "{run}"
    );
    assert!(!schema_exists(&db, "thor").await);
    assert!(schema_exists(&db, "odin").await);
    expect(&db, &["tenants", "show", "thor"], 3);
    let run = expect(
        &db,
        &["--tenant", "odin", "sql", "SELECT username FROM users"],
        0,
    );
    assert_eq!(run.stdout, "== odin ==\nusername\nkept\n(1 row)\n\n");
    let run = expect(&db, &["tenants", "rename", "odin", "--name", "Odin"], 0);
    assert_eq!(field(&run.stdout, "name"), ["Odin"], "{run}");
    let run = expect(&db, &["tenants", "rename", "odin"], 2);
    assert!(
        run.stderr.contains("rename needs --name, --slug or both"),
        "{run}"
    );
    let run = expect(&db, &["tenants", "rename", "odin", "--slug", "potter"], 4);
    assert!(
        run.stderr
            .contains("a tenant with slug 'potter' already exists"),
        "{run}"
    );
    expect(&db, &["tenants", "rename", "nobody", "--name", "X"], 3);
    expect(&db, &["tenants", "rename", "odin", "--slug", "Bad_Slug"], 2);

    // Suspend and resume.
    let run = expect(&db, &["tenants", "suspend", "odin"], 0);
    assert_eq!(run.stdout, "tenant 'odin' is now suspended\n");
    let show = expect(&db, &["tenants", "show", "odin"], 0);
    assert_eq!(field(&show.stdout, "status"), ["suspended"], "{show}");
    let (status, body) = http(&db, "POST", "odin.polls.test", "/login/", json!({})).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::FORBIDDEN,
            json!({ "detail": "Tenant 'odin' is suspended." })
        )
    );
    let run = expect(&db, &["tenants", "resume", "odin"], 0);
    assert_eq!(run.stdout, "tenant 'odin' is now active\n");
    let show = expect(&db, &["tenants", "show", "odin"], 0);
    assert_eq!(field(&show.stdout, "status"), ["active"], "{show}");
    expect(&db, &["tenants", "suspend", "nobody"], 3);

    // Domains.
    let run = expect(
        &db,
        &["tenants", "domains", "add", "odin", "Odin.Example.org"],
        0,
    );
    assert_eq!(run.stdout, "added Odin.Example.org to 'odin'\n");
    let show = expect(&db, &["tenants", "show", "odin"], 0);
    assert_eq!(
        field(&show.stdout, "domain"),
        [
            "odin.polls.test (primary)",
            "odin.example.org",
            "thor.example.com"
        ],
        "{show}"
    );
    let (status, _) = http(&db, "POST", "odin.example.org", "/login/", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let run = expect(
        &db,
        &["tenants", "domains", "add", "potter", "odin.example.org"],
        4,
    );
    assert!(
        run.stderr
            .contains("domain 'odin.example.org' already belongs to a tenant"),
        "{run}"
    );
    expect(&db, &["tenants", "domains", "add", "odin", "bad domain"], 2);
    expect(&db, &["tenants", "domains", "add", "odin", "polls.test"], 2);
    expect(
        &db,
        &["tenants", "domains", "add", "nobody", "x.example.org"],
        3,
    );
    let run = expect(
        &db,
        &["tenants", "domains", "remove", "odin", "odin.example.org"],
        0,
    );
    assert_eq!(run.stdout, "removed odin.example.org from 'odin'\n");
    let run = expect(
        &db,
        &["tenants", "domains", "remove", "odin", "odin.example.org"],
        3,
    );
    assert!(
        run.stderr
            .contains("'odin.example.org' is not one of this tenant's domains"),
        "{run}"
    );
    let run = expect(
        &db,
        &["tenants", "domains", "remove", "odin", "odin.polls.test"],
        4,
    );
    assert!(
        run.stderr
            .contains("primary domain 'odin.polls.test' cannot be removed"),
        "{run}"
    );
    let show = expect(&db, &["tenants", "show", "odin"], 0);
    assert_eq!(
        field(&show.stdout, "domain"),
        ["odin.polls.test (primary)", "thor.example.com"],
        "{show}"
    );

    // Delete needs --yes.
    let run = expect(&db, &["tenants", "delete", "odin"], 2);
    assert!(
        run.stderr
            .contains("deleting 'odin' drops schema \"odin\" and all its data; repeat with --yes"),
        "{run}"
    );
    expect(&db, &["tenants", "show", "odin"], 0);
    assert!(schema_exists(&db, "odin").await);
    let run = expect(&db, &["tenants", "delete", "odin", "--yes"], 0);
    assert_eq!(run.stdout, "deleted tenant 'odin'\n");
    assert!(!schema_exists(&db, "odin").await);
    expect(&db, &["tenants", "show", "odin"], 3);
    expect(&db, &["tenants", "delete", "odin", "--yes"], 3);
    let list = expect(&db, &["tenants", "list"], 0);
    assert_eq!(
        table_rows(&list.stdout),
        [vec![
            "potter",
            "potter",
            "active",
            "schema",
            "-",
            "potter",
            &latest(),
            "potter.polls.test"
        ]],
        "{list}"
    );
    // Its domains are free again.
    expect(
        &db,
        &["tenants", "create", "thor", "--domain", "thor.example.com"],
        0,
    );
    assert!(schema_exists(&db, "potter").await);
}

#[tokio::test]
async fn servers_from_the_command_line() {
    let db = migrated().await;
    let cluster = tenantry::testing::TestCluster::start();
    let url = cluster
        .url("postgres")
        .replace("postgres@", "postgres:hidden-pw@");
    let run = expect(&db, &["servers", "add", "east", &url], 0);
    assert!(!run.stdout.contains("hidden-pw"), "{run}");
    expect(&db, &["servers", "add", "east", &url], 4);
    expect(&db, &["servers", "add", "Bad_Name", &url], 2);
    expect(&db, &["servers", "add", "west", "mysql://x@y/z"], 2);
    expect(&db, &["tenants", "create", "thor", "--server", "east"], 0);
    expect(
        &db,
        &["tenants", "create", "loki", "--server", "nowhere"],
        3,
    );
    let list = expect(&db, &["servers", "list"], 0);
    assert!(!list.stdout.contains("hidden-pw"), "{list}");
    assert!(list.stdout.contains("postgres:***@127.0.0.1"), "{list}");
    assert_eq!(table_rows(&list.stdout)[0][2], "1", "{list}");
    let show = expect(&db, &["tenants", "show", "thor"], 0);
    assert!(show.stdout.contains("server:    east"), "{show}");
    assert_eq!(
        field(&show.stdout, "data"),
        ["schema \"thor\" on server 'east'"],
        "{show}"
    );
    let remove = expect(&db, &["servers", "remove", "east"], 4);
    assert!(remove.stderr.contains("still holds tenants"), "{remove}");
    expect(&db, &["tenants", "delete", "thor", "--yes"], 0);
    expect(&db, &["servers", "remove", "east"], 0);
}

#[tokio::test]
async fn database_tenants_from_the_command_line() {
    let db = migrated().await;
    expect(
        &db,
        &["tenants", "create", "loki", "--isolation", "database"],
        0,
    );
    expect(
        &db,
        &["tenants", "create", "odin", "--isolation", "cluster"],
        2,
    );
    let show = expect(&db, &["tenants", "show", "loki"], 0);
    assert!(show.stdout.contains("isolation: database"), "{show}");
    assert!(show.stdout.contains("schema:    tenant"), "{show}");
    let run = polls(
        &db,
        &[
            "--tenant",
            "loki",
            "createsuperuser",
            "--username",
            "admin",
            "--password-stdin",
        ],
        Some("pw-123\n"),
    );
    assert_eq!(run.code, 0, "{run}");
    let sql = expect(
        &db,
        &[
            "--tenant",
            "loki",
            "sql",
            "SELECT current_database() LIKE 'tenant_loki_%' AS own, count(*) AS users FROM users",
        ],
        0,
    );
    // After the "== loki ==" line come the header and the row.
    assert_eq!(table_rows(&sql.stdout)[1..], [vec!["t", "1"]], "{sql}");
    expect(&db, &["tenants", "delete", "loki", "--yes"], 0);
    expect(&db, &["tenants", "show", "loki"], 3);
}

#[tokio::test]
async fn output_into_a_closed_pipe_ends_quietly() {
    let db = migrated().await;
    expect(&db, &["tenants", "create", "thor"], 0);
    // Far more than a pipe buffers, so `polls` is still writing when `head` stops reading.
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' --tenant thor sql 'SELECT generate_series(1, 200000) AS n' | head -n 1",
            env!("CARGO_BIN_EXE_polls")
        ))
        .env("DATABASE_URL", db.url())
        .env("BASE_DOMAIN", support::BASE)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "== thor ==\n");
}

/// Creates the superuser `admin` (password `pw-123`) in tenant `slug`.
#[track_caller]
fn create_admin(db: &TestDatabase, slug: &str) {
    let args = ["--tenant", slug, "createsuperuser", "--username", "admin"];
    let run = polls(
        db,
        &[&args[..], &["--password-stdin"]].concat(),
        Some("pw-123\n"),
    );
    assert_eq!(run.code, 0, "{run}");
}

/// `polls args...` on `db`, logging errors only, its output discarded.
fn quiet_polls(db: &TestDatabase, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_polls"));
    command
        .args(args)
        .env("DATABASE_URL", db.url())
        .env("BASE_DOMAIN", support::BASE)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null());
    command
}

/// Runs `polls args...` on `db` to its end and returns the peak of its resident memory in KiB.
fn peak_memory(db: &TestDatabase, args: &[&str]) -> u64 {
    let mut child = quiet_polls(db, args)
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        // The high-water mark only grows, so the last reading before the exit is the peak
        // up to the last few milliseconds.
        if let Ok(text) = std::fs::read_to_string(&status)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        {
            peak = kib;
        }
        if let Some(exit) = child.try_wait().unwrap() {
            assert!(exit.success(), "polls {} failed", args.join(" "));
            return peak;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[tokio::test]
async fn a_move_holds_the_same_memory_however_many_rows_the_tenant_has() {
    let db = migrated().await;
    let fill = |slug: &str, questions: u32| {
        expect(
            &db,
            &["tenants", "create", slug, "--isolation", "shared"],
            0,
        );
        create_admin(&db, slug);
        let insert = format!(
            "INSERT INTO polls (question, created_by, pub_date) \
             SELECT repeat('q', 90) || g, (SELECT id FROM users), now() \
             FROM generate_series(1, {questions}) g"
        );
        expect(&db, &["--tenant", slug, "sql", &insert], 0);
    };
    fill("small", 1_000);
    fill("large", 200_000);
    let small = peak_memory(&db, &["tenants", "move", "small", "--to", "schema"]);
    let large = peak_memory(&db, &["tenants", "move", "large", "--to", "schema"]);
    // 200,000 rows are about 30 MB as JSON text: holding them at once would show here.
    assert!(
        large < small + 12 * 1024,
        "moving 200,000 rows peaked at {large} KiB, 1,000 rows at {small} KiB"
    );
    let count = expect(
        &db,
        &[
            "--tenant",
            "large",
            "sql",
            "SELECT count(*), current_schema() FROM polls",
        ],
        0,
    );
    assert_eq!(table_rows(&count.stdout)[1..], [vec!["200000", "large"]]);
}

#[tokio::test]
async fn tenants_move_export_and_import_from_the_command_line() {
    let db = migrated().await;
    expect(
        &db,
        &["tenants", "create", "loki", "--isolation", "shared"],
        0,
    );
    create_admin(&db, "loki");
    let users = |slug: &str| {
        let sql = expect(
            &db,
            &[
                "--tenant",
                slug,
                "sql",
                "SELECT username, current_schema() FROM users",
            ],
            0,
        );
        table_rows(&sql.stdout)[1..]
            .iter()
            .map(|row| row.iter().map(|cell| cell.to_string()).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    assert_eq!(users("loki"), [vec!["admin", "tenantry_shared"]]);
    let moved = expect(&db, &["tenants", "move", "loki", "--to", "database"], 0);
    assert!(moved.stdout.contains("isolation: database"), "{moved}");
    assert_eq!(users("loki"), [vec!["admin", "tenant"]]);
    expect(&db, &["tenants", "move", "loki", "--to", "cluster"], 2);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("loki.json");
    let file = file.to_str().unwrap();
    let exported = expect(&db, &["tenants", "export", "loki", "--output", file], 0);
    assert!(exported.stdout.contains("(1 row)"), "{exported}");
    let text = std::fs::read_to_string(file).unwrap();
    assert!(
        text.contains("\"format\": \"tenantry-tenant-export\""),
        "{text}"
    );
    // It holds password hashes and API tokens: its owner's alone, also when it replaces a
    // file that was readable by others, and nothing is left beside it.
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &str| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(file), 0o600);
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    expect(&db, &["tenants", "export", "loki", "--output", file], 0);
    assert_eq!(mode(file), 0o600);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    expect(
        &db,
        &[
            "tenants",
            "import",
            file,
            "--slug",
            "thor",
            "--isolation",
            "schema",
        ],
        0,
    );
    assert_eq!(users("thor"), [vec!["admin", "thor"]]);
    expect(&db, &["tenants", "import", file, "--slug", "thor"], 4);
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"format\": 1}").unwrap();
    let refused = expect(
        &db,
        &[
            "tenants",
            "import",
            broken.to_str().unwrap(),
            "--slug",
            "odin",
        ],
        2,
    );
    assert!(
        refused.stderr.contains("is not a tenant export"),
        "{refused}"
    );
}

/// Runs `polls args...` through `bouncer` and asserts it exits with `code`.
#[track_caller]
fn expect_through(
    bouncer: &TestPgBouncer,
    db: &TestDatabase,
    args: &[&str],
    stdin: Option<&str>,
    code: i32,
) -> Run {
    let run = polls_on(&bouncer.url(db.name()), "transaction", args, stdin);
    assert_eq!(run.code, code, "polls {}\n{run}", args.join(" "));
    run
}

#[tokio::test]
async fn every_command_works_through_pgbouncer_in_transaction_mode() {
    let bouncer = TestPgBouncer::start(2);
    let mut db = TestDatabase::create().await;
    db.reached_through(bouncer.port());
    let via = |args: &[&str], code| expect_through(&bouncer, &db, args, None, code);
    via(&["migrate"], 0);
    for (slug, isolation) in [("thor", "schema"), ("ann", "shared"), ("loki", "database")] {
        via(&["tenants", "create", slug, "--isolation", isolation], 0);
        let run = expect_through(
            &bouncer,
            &db,
            &[
                "--tenant",
                slug,
                "createsuperuser",
                "--username",
                "admin",
                "--password-stdin",
            ],
            Some("pw-123\n"),
            0,
        );
        assert!(run.stdout.contains("created superuser"), "{run}");
    }
    let again = via(&["migrate", "--verify"], 0);
    assert!(again.stdout.contains("0 failed"), "{again}");
    let list = via(&["tenants", "list"], 0);
    assert_eq!(table_rows(&list.stdout).len(), 3, "{list}");
    via(&["tenants", "suspend", "thor"], 0);
    via(&["tenants", "resume", "thor"], 0);
    via(&["tenants", "rename", "thor", "--slug", "odin"], 0);
    via(&["tenants", "move", "odin", "--to", "database"], 0);
    via(&["tenants", "move", "loki", "--to", "shared"], 0);
    let sql = via(
        &[
            "--all-tenants",
            "sql",
            "SELECT count(*) AS users FROM users",
        ],
        0,
    );
    assert_eq!(sql.stdout.matches("== ").count(), 3, "{sql}");
    assert_eq!(
        table_rows(&sql.stdout)
            .iter()
            .filter(|row| row == &&vec!["1"])
            .count(),
        3,
        "{sql}"
    );
    via(&["tenants", "delete", "ann", "--yes"], 0);
    via(&["tenants", "show", "ann"], 3);
}

/// Runs `polls args...` in a SQLite deployment under `data` with `DATABASE_URL` set to `url`.
fn polls_with_url(url: &str, data: &std::path::Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_polls"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("DATA_DIR", data)
        .env("BASE_DOMAIN", support::BASE)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        code: output.status.code().expect("the binary exited, not killed"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

#[tokio::test]
async fn an_empty_database_url_means_sqlite_and_another_engine_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = polls_with_url("", &data, &["tenants", "create", "thor"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(data.join("tenants/thor.sqlite3").exists(), "{run}");
    let run = polls_with_url(
        "mysql://root:hidden-pw@db/polls",
        &data,
        &["tenants", "list"],
    );
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("postgres://"), "{run}");
    assert!(!run.stderr.contains("hidden-pw"), "{run}");
}

#[tokio::test]
async fn options_go_where_they_belong_and_serve_takes_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_dir = data.to_str().unwrap();
    // Connection settings before or after the command.
    let run = polls_with_url(
        "",
        &data,
        &["tenants", "create", "thor", "--data-dir", data_dir],
    );
    assert_eq!(run.code, 0, "{run}");
    let run = polls_with_url("", &data, &["--data-dir", data_dir, "tenants", "list"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("thor"), "{run}");
    // The root's help is one screen, without serving options; serve's has them.
    let help = polls_with_url("", &data, &["--help"]);
    assert!(help.stdout.lines().count() <= 50, "{}", help.stdout);
    assert!(!help.stdout.contains("--bind"), "{}", help.stdout);
    let help = polls_with_url("", &data, &["serve", "--help"]);
    for option in [
        "--bind",
        "--header-read-timeout",
        "--dedicated-eager",
        "--database-url",
    ] {
        assert!(help.stdout.contains(option), "{option}: {}", help.stdout);
    }
    let help = polls_with_url("", &data, &["tenants", "list", "--help"]);
    assert!(!help.stdout.contains("--bind"), "{}", help.stdout);
    // A serving option before the command is refused with the place it goes.
    let run = polls_with_url("", &data, &["--bind", "127.0.0.1:1", "serve"]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("polls serve --bind"), "{run}");
    // `serve --bind` serves there.
    let addr = format!("127.0.0.1:{}", support::free_port());
    let mut serve = Command::new(env!("CARGO_BIN_EXE_polls"))
        .args(["serve", "--bind", &addr, "--data-dir", data_dir])
        .env("DATABASE_URL", "")
        .env("BASE_DOMAIN", support::BASE)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let answered = loop {
        match std::net::TcpStream::connect(&addr) {
            Ok(mut stream) => {
                write!(
                    stream,
                    "GET /health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    support::BASE
                )
                .unwrap();
                let mut reply = String::new();
                std::io::Read::read_to_string(&mut stream, &mut reply).unwrap();
                break reply;
            }
            Err(_) if std::time::Instant::now() < deadline => {
                assert!(serve.try_wait().unwrap().is_none(), "serve exited");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("nothing listens on {addr}: {e}"),
        }
    };
    serve.kill().unwrap();
    serve.wait().unwrap();
    assert!(answered.starts_with("HTTP/1.1 200 "), "{answered}");
}

#[tokio::test]
async fn export_to_a_dash_writes_standard_output() {
    let db = migrated().await;
    expect(&db, &["tenants", "create", "thor"], 0);
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_polls"))
        .args(["tenants", "export", "thor", "--output", "-"])
        .current_dir(dir.path())
        .env("DATABASE_URL", db.url())
        .env("BASE_DOMAIN", support::BASE)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let export: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(export["slug"], "thor", "{export}");
    assert!(!dir.path().join("-").exists());
    let message = String::from_utf8(output.stderr).unwrap();
    assert!(message.contains("exported tenant 'thor'"), "{message}");

    // `export --output - | import -` copies a tenant.
    let piped = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{polls}' tenants export thor --output - | '{polls}' tenants import - --slug thor2",
            polls = env!("CARGO_BIN_EXE_polls")
        ))
        .env("DATABASE_URL", db.url())
        .env("BASE_DOMAIN", support::BASE)
        .output()
        .unwrap();
    assert!(piped.status.success(), "{piped:?}");
    let stdout = String::from_utf8_lossy(&piped.stdout);
    assert!(stdout.contains("imported tenant 'thor2'"), "{stdout}");
    expect(&db, &["tenants", "show", "thor2"], 0);
    // Nothing on standard input is a clear refusal.
    let empty = Command::new(env!("CARGO_BIN_EXE_polls"))
        .args(["tenants", "import", "-"])
        .env("DATABASE_URL", db.url())
        .env("BASE_DOMAIN", support::BASE)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(empty.status.code(), Some(2), "{empty:?}");
    let message = String::from_utf8_lossy(&empty.stderr);
    assert!(message.contains("is not a tenant export"), "{message}");
}

#[tokio::test]
async fn delete_without_yes_says_what_it_would_drop_in_every_mode() {
    let db = migrated().await;
    for (slug, isolation) in [("thor", "schema"), ("ann", "shared"), ("loki", "database")] {
        expect(
            &db,
            &["tenants", "create", slug, "--isolation", isolation],
            0,
        );
    }
    let refused = |slug: &str| expect(&db, &["tenants", "delete", slug], 2).stderr;
    assert!(
        refused("thor").contains("drops schema \"thor\" and all its data"),
        "{}",
        refused("thor")
    );
    assert!(
        refused("ann").contains("drops its rows in the shared tables (schema \"tenantry_shared\")"),
        "{}",
        refused("ann")
    );
    assert!(
        refused("loki").contains("drops database \"tenant_loki_"),
        "{}",
        refused("loki")
    );

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = polls_with_url("", &data, &["tenants", "create", "odin"]);
    assert_eq!(run.code, 0, "{run}");
    let run = polls_with_url("", &data, &["tenants", "delete", "odin"]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("drops file "), "{run}");
    assert!(run.stderr.contains("tenants/odin.sqlite3"), "{run}");
}

#[tokio::test]
async fn tenant_targets_are_refused_where_they_mean_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for args in [
        &["--tenant", "thor", "serve"][..],
        &["--all-tenants", "tenants", "list"],
        &["tenants", "list", "--tenant", "thor"],
    ] {
        let run = polls_with_url("", &data, args);
        assert_eq!(run.code, 2, "{args:?}\n{run}");
        assert!(
            run.stderr.contains(
                "--tenant and --all-tenants apply to migrate, createsuperuser, sql, login-link"
            ),
            "{run}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_postgresql_is_named_with_its_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres:hidden-pw@127.0.0.1:{port}/nowhere");
    let run = polls_on(&url, "none", &["tenants", "list"], None);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains(&format!(
            "cannot reach PostgreSQL at 127.0.0.1:{port} (database nowhere)"
        )),
        "{run}"
    );
    assert!(run.stderr.to_lowercase().contains("refused"), "{run}");
    assert!(!run.stderr.contains("hidden-pw"), "{run}");

    // A server reached that lacks the database says so, and how to make it, in its own
    // words only (no position in PostgreSQL's source).
    let server = support::settings(&TestDatabase::create().await);
    let url = server.database_url.unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    let run = polls_on(&format!("{base}/no_such_db"), "none", &["migrate"], None);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("has no database no_such_db: create it (createdb -h "),
        "{run}"
    );
    assert!(run.stderr.contains(" no_such_db) or name another"), "{run}");
    assert!(!run.stderr.contains(" at line "), "{run}");
}

#[tokio::test]
async fn template_databases_can_be_listed_and_dropped() {
    let db = migrated().await;
    expect(
        &db,
        &["tenants", "create", "loki", "--isolation", "database"],
        0,
    );
    let listed = expect(&db, &["servers", "templates"], 0);
    let rows = table_rows(&listed.stdout);
    assert_eq!(rows.len(), 1, "{listed}");
    assert!(rows[0][1].starts_with("tenantry_template_"), "{listed}");
    let refused = expect(&db, &["servers", "drop-templates"], 2);
    assert!(refused.stderr.contains("repeat with --yes"), "{refused}");
    let dropped = expect(&db, &["servers", "drop-templates", "--yes"], 0);
    assert!(
        dropped.stdout.contains("dropped 1 template database(s)"),
        "{dropped}"
    );
    let pool = db.pool(1).await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(rows[0][1])
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(left, 0);
    assert!(table_rows(&expect(&db, &["servers", "templates"], 0).stdout).is_empty());
    // The next database tenant builds the template again.
    expect(
        &db,
        &["tenants", "create", "odin", "--isolation", "database"],
        0,
    );
    assert_eq!(
        table_rows(&expect(&db, &["servers", "templates"], 0).stdout).len(),
        1
    );
}

/// Starts `polls tenants move thor --to schema` and kills it with SIGKILL as soon as `at`
/// holds of thor's catalog row (read every few milliseconds).
async fn kill_move_when(db: &TestDatabase, pool: &sqlx::PgPool, at: &str) {
    let mut mover = quiet_polls(db, &["tenants", "move", "thor", "--to", "schema"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sql = format!("SELECT count(*) FROM tenantry.tenants WHERE slug = 'thor' AND {at}");
    loop {
        let reached: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_one(pool)
            .await
            .unwrap();
        if reached == 1 {
            break;
        }
        assert!(
            mover.try_wait().unwrap().is_none(),
            "the move ended before it could be killed at {at}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    mover.kill().unwrap();
    mover.wait().unwrap();
}

#[tokio::test]
async fn a_move_killed_with_sigkill_is_reported_then_aborted_or_resumed_leaving_no_orphans() {
    let db = migrated().await;
    expect(
        &db,
        &["tenants", "create", "thor", "--isolation", "shared"],
        0,
    );
    let in_thor = |sql: &str| expect(&db, &["--tenant", "thor", "sql", sql], 0);
    in_thor("INSERT INTO users (username, password_hash) VALUES ('u', 'x')");
    in_thor(
        "INSERT INTO polls (question, created_by, pub_date) \
         SELECT 'q' || g, (SELECT id FROM users), now() FROM generate_series(1, 100000) g",
    );
    let pool = db.pool(2).await;
    let count = |table: &'static str| {
        let pool = pool.clone();
        async move {
            let sql = format!(
                "SELECT count(*) FROM {table} WHERE tenant_id = \
                 (SELECT id FROM tenantry.tenants WHERE slug = 'thor')"
            );
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };

    // Killed while copying: reported, then undone; the tenant is where it was.
    kill_move_when(
        &db,
        &pool,
        "moving AND NOT (move_state->>'switched')::boolean",
    )
    .await;
    let show = expect(&db, &["tenants", "show", "thor"], 0);
    assert!(show.stdout.contains("interrupted (run"), "{show}");
    let write = expect(&db, &["tenants", "move", "thor", "--to", "database"], 2);
    assert!(write.stderr.contains("--resume"), "{write}");
    expect(&db, &["tenants", "move", "thor", "--abort"], 0);
    let show = expect(&db, &["tenants", "show", "thor"], 0);
    assert_eq!(field(&show.stdout, "isolation"), ["shared"]);
    assert!(!show.stdout.contains("move:"), "{show}");
    assert_eq!(count("tenantry_shared.polls").await, 100_000);
    assert!(!schema_exists(&db, "thor").await);

    // Killed while removing the old rows: the tenant is served from its schema already, and
    // --resume removes what is left in the shared tables.
    kill_move_when(
        &db,
        &pool,
        "isolation = 'schema' AND move_state IS NOT NULL",
    )
    .await;
    let show = expect(&db, &["tenants", "show", "thor"], 0);
    assert!(
        show.stdout.contains("interrupted after the switch"),
        "{show}"
    );
    assert_eq!(field(&show.stdout, "isolation"), ["schema"]);
    expect(&db, &["tenants", "move", "thor", "--resume"], 0);
    assert_eq!(count("thor.polls").await, 100_000);
    assert_eq!(count("tenantry_shared.polls").await, 0, "orphan rows");
    assert_eq!(count("tenantry_shared.users").await, 0, "orphan rows");
    let show = expect(&db, &["tenants", "show", "thor"], 0);
    assert!(!show.stdout.contains("move:"), "{show}");
}

/// `polls serve` on `url` (with `DEDICATED_EAGER`), once it answers; killed on drop.
struct Serving(std::process::Child, std::net::SocketAddr);

impl Serving {
    async fn start(url: &str) -> Self {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], support::free_port()));
        let child = Command::new(env!("CARGO_BIN_EXE_polls"))
            .arg("serve")
            .env("DATABASE_URL", url)
            .env("BASE_DOMAIN", support::BASE)
            .env("BIND", addr.to_string())
            .env_remove("PLATFORM_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "serve did not come up"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Self(child, addr)
    }

    /// Signs a user up in the tenant at `host`; the status.
    async fn sign_up(&self, host: &str) -> u16 {
        reqwest::Client::new()
            .post(format!("http://{}/users/", self.1))
            .header("host", host)
            .json(&serde_json::json!({"username": "ann", "password": "s3cret-pass"}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn postgresql_over_tls_up_to_verify_full_for_every_connection() {
    let cluster = tenantry::testing::TestCluster::start_tls();
    let ca = cluster.ca_file();
    let ca = ca.to_str().unwrap();
    let verified =
        cluster.localhost_url("postgres", &format!("sslmode=verify-full&sslrootcert={ca}"));

    // The server takes TLS only; a certificate for another name is refused.
    let plain = polls_on(
        &cluster.localhost_url("postgres", "sslmode=disable"),
        "none",
        &["migrate"],
        None,
    );
    assert_eq!(plain.code, 1, "{plain}");
    assert!(plain.stderr.contains("no encryption"), "{plain}");
    let wrong_name = verified.replace("@localhost:", "@127.0.0.1:");
    let refused = polls_on(&wrong_name, "none", &["migrate"], None);
    assert_eq!(refused.code, 1, "{refused}");
    assert!(
        refused.stderr.to_lowercase().contains("certificate"),
        "{refused}"
    );
    let unknown_ca = polls_on(
        &cluster.localhost_url("postgres", "sslmode=verify-full"),
        "none",
        &["migrate"],
        None,
    );
    assert_eq!(unknown_ca.code, 1, "{unknown_ca}");

    // The catalog, schema, database and dedicated tenants over verified TLS, served.
    let run = |args: &[&str]| {
        let run = polls_on(&verified, "none", args, None);
        assert_eq!(run.code, 0, "polls {}\n{run}", args.join(" "));
    };
    run(&["migrate"]);
    run(&["tenants", "create", "thor"]);
    run(&["tenants", "create", "loki", "--isolation", "database"]);
    run(&["tenants", "create", "freya", "--isolation", "dedicated"]);
    let serving = Serving::start(&verified).await;
    for host in ["thor.polls.test", "loki.polls.test", "freya.polls.test"] {
        assert_eq!(serving.sign_up(host).await, 201, "{host}");
    }
    drop(serving);

    // A registered server reached over TLS, from a catalog that is not.
    let db = migrated().await;
    let east = cluster.localhost_url("postgres", &format!("sslmode=require&sslrootcert={ca}"));
    expect(&db, &["servers", "add", "east", &east], 0);
    expect(
        &db,
        &[
            "tenants",
            "create",
            "odin",
            "--server",
            "east",
            "--isolation",
            "database",
        ],
        0,
    );
    expect(
        &db,
        &[
            "tenants",
            "create",
            "tyr",
            "--server",
            "east",
            "--isolation",
            "dedicated",
        ],
        0,
    );
    let counted = expect(
        &db,
        &["--tenant", "odin", "sql", "SELECT count(*) AS n FROM polls"],
        0,
    );
    assert!(counted.stdout.contains('0'), "{counted}");
    let serving = Serving::start(&db.url()).await;
    for host in ["odin.polls.test", "tyr.polls.test"] {
        assert_eq!(serving.sign_up(host).await, 201, "{host}");
    }
}

#[tokio::test]
async fn names_with_control_or_direction_characters_are_refused() {
    let db = migrated().await;
    let clear_screen = "Loki\u{1b}[2J";
    let refused = expect(
        &db,
        &["tenants", "create", "loki", "--name", clear_screen],
        2,
    );
    assert!(
        refused.stderr.contains("control or text-direction"),
        "{refused}"
    );
    expect(
        &db,
        &["tenants", "create", "loki", "--name", "Loki's Hall"],
        0,
    );
    let reversed = "exe.\u{202E}gnp";
    expect(&db, &["tenants", "rename", "loki", "--name", reversed], 2);
    let set = format!("display_name={reversed}");
    let refused = expect(&db, &["tenants", "settings", "loki", "--set", &set], 2);
    assert!(refused.stderr.contains("display_name"), "{refused}");
}

#[tokio::test]
async fn migrate_on_a_server_that_asks_for_passwords_says_what_to_set_then_works() {
    let cluster = tenantry::testing::TestCluster::start_with_passwords();
    let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres"))
        .await
        .expect("postgres with its password");
    sqlx::raw_sql("CREATE DATABASE polls")
        .execute(&mut admin)
        .await
        .unwrap();
    let url = cluster.url("polls");
    let without = polls_on(&url, "none", &["migrate"], None);
    assert_eq!(without.code, 1, "{without}");
    assert!(
        without.stderr.contains("asks role 'tenantry_app'")
            && without.stderr.contains("for a password")
            && without.stderr.contains("APP_ROLE_PASSWORD")
            && without.stderr.contains("run migrate again"),
        "{without}"
    );
    let with = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_polls"))
            .args(args)
            .env("DATABASE_URL", &url)
            .env("APP_ROLE_PASSWORD", "app-secret-1")
            .env("BASE_DOMAIN", support::BASE)
            .env("RUST_LOG", "error")
            .env_remove("DATABASE_POOLER")
            .output()
            .unwrap();
        assert!(output.status.success(), "polls {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    with(&["migrate"]);
    with(&["tenants", "create", "thor"]);
    let listed = with(&["tenants", "list"]);
    assert!(listed.contains("thor"), "{listed}");
    // The role's password is the configured one: it logs in with it over TCP.
    let app = cluster
        .url("polls")
        .replace("postgres:postgres-secret@", "tenantry_app:app-secret-1@");
    sqlx::PgConnection::connect(&app)
        .await
        .expect("the app role with the configured password");
}

#[tokio::test]
async fn pgbouncer_without_the_pooler_setting_is_named_and_the_demo_runs_through_it() {
    let bouncer = TestPgBouncer::start(2);
    let mut db = TestDatabase::create().await;
    db.reached_through(bouncer.port());
    let url = bouncer.url(db.name());
    let refused = polls_on(&url, "none", &["migrate"], None);
    assert_eq!(refused.code, 1, "{refused}");
    assert!(
        refused.stderr.contains("unsupported startup parameter")
            && refused.stderr.contains("set DATABASE_POOLER=transaction"),
        "{refused}"
    );
    // The demo, which first makes sure its database exists, runs through it too.
    let port = support::free_port();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_polls"))
        .arg("demo")
        .env("DATABASE_URL", &url)
        .env("DATABASE_POOLER", "transaction")
        .env("BASE_DOMAIN", support::BASE)
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(demo.stdout.take().unwrap()));
    let serving = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("Serving on"));
    let _ = demo.kill();
    let status = demo.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut demo.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(serving.is_some(), "{status:?}: {stderr}");
}

#[tokio::test]
async fn a_setting_that_takes_text_takes_the_text_given() {
    let db = migrated().await;
    expect(&db, &["tenants", "create", "thor"], 0);
    let named = expect(
        &db,
        &["tenants", "settings", "thor", "--set", "display_name=12345"],
        0,
    );
    assert_eq!(
        setting(&named.stdout, "display_name"),
        "\"12345\" set",
        "{named}"
    );
    let colour = expect(
        &db,
        &[
            "tenants",
            "settings",
            "thor",
            "--set",
            "primary_color=336699",
        ],
        2,
    );
    assert!(
        colour
            .stderr
            .contains("'336699' is not a colour of the form #rrggbb"),
        "{colour}"
    );
    let typed = expect(
        &db,
        &[
            "tenants",
            "settings",
            "thor",
            "--set",
            "signup_open=false",
            "--set",
            "max_choices_per_poll=5",
        ],
        0,
    );
    assert_eq!(
        setting(&typed.stdout, "signup_open"),
        "false set",
        "{typed}"
    );
    assert_eq!(
        setting(&typed.stdout, "max_choices_per_poll"),
        "5 set",
        "{typed}"
    );
}

#[tokio::test]
async fn a_bad_bind_address_is_a_usage_error() {
    let db = migrated().await;
    for bind in ["127.0.0.1:99999", "nonsense"] {
        let run = expect(&db, &["serve", "--bind", bind], 2);
        assert!(run.stderr.contains(&format!("--bind '{bind}'")), "{run}");
    }
}

/// A GET to the app served on `db`: its status, `Location` and `Set-Cookie` headers, and
/// its body as text.
async fn get_page(db: &TestDatabase, host: &str, path: &str) -> (StatusCode, String, String) {
    let request = Request::get(path)
        .header("host", host)
        .body(Body::empty())
        .unwrap();
    let response = served(db).await.oneshot(request).await.unwrap();
    let status = response.status();
    let header = |name| {
        let values = response.headers().get_all(name).iter();
        values
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (location, cookies) = (header("location"), header("set-cookie"));
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (status, format!("{location}\n{cookies}"), text)
}

#[tokio::test]
async fn a_login_link_logs_its_staff_user_in_once_on_its_own_tenant_only() {
    let db = migrated().await;
    expect(&db, &["tenants", "create", "thor"], 0);
    expect(&db, &["tenants", "create", "potter"], 0);
    let admin = ["--tenant", "thor", "createsuperuser", "--username", "admin"];
    let made = polls(
        &db,
        &[&admin[..], &["--password-stdin"]].concat(),
        Some("pw-123\n"),
    );
    assert_eq!(made.code, 0, "{made}");
    let link = |slug: &'static str| {
        let run = expect(
            &db,
            &["--tenant", slug, "login-link", "--username", "admin"],
            0,
        );
        run.stdout.trim().to_owned()
    };
    let url = link("thor");
    let prefix = "http://thor.polls.test:8000/admin/login/link?token=";
    let token = url.strip_prefix(prefix).unwrap_or_else(|| panic!("{url}"));
    assert_eq!(token.len(), 64, "{url}");
    let path = format!("/admin/login/link?token={token}");
    // On another tenant's site it means nothing, and is not spent there.
    let (status, _, page) = get_page(&db, "potter.polls.test", &path).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("expired or was used already"), "{page}");
    // On its own: a session, and the way to the dashboard.
    let (status, headers, _) = get_page(&db, "thor.polls.test", &path).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{headers}");
    assert!(headers.starts_with("/admin\n"), "{headers}");
    assert!(headers.contains("tenantry_session="), "{headers}");
    // Once only.
    let (status, headers, page) = get_page(&db, "thor.polls.test", &path).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{headers}");
    assert!(!headers.contains("tenantry_session=") && page.contains("used already"));
    // Not after its minute; only its digest is stored.
    let late = link("thor");
    let late_token = late.strip_prefix(prefix).unwrap().to_owned();
    let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    let stored: Vec<String> = sqlx::query_scalar("SELECT id FROM thor.web_login_links")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], late_token);
    sqlx::raw_sql("UPDATE thor.web_login_links SET expires_at = expires_at - 61")
        .execute(&mut conn)
        .await
        .unwrap();
    let late_path = format!("/admin/login/link?token={late_token}");
    let (status, _, _) = get_page(&db, "thor.polls.test", &late_path).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A user who is not staff gets no link.
    let none = expect(
        &db,
        &["--tenant", "thor", "login-link", "--username", "nobody"],
        3,
    );
    assert!(none.stderr.contains("no staff user 'nobody'"), "{none}");
}

#[tokio::test]
async fn tenants_list_shows_pending_tenants_only_when_asked() {
    let db = migrated().await;
    expect(&db, &["tenants", "create", "thor"], 0);
    let tenancy = startup::open(&support::settings(&db)).await.unwrap();
    let pending = tenancy
        .create_pending(tenantry::IsolationMode::Schema)
        .await
        .unwrap();
    let hidden = pending.tenant.slug.to_string();
    let list = expect(&db, &["tenants", "list"], 0);
    let slugs: Vec<&str> = table_rows(&list.stdout).iter().map(|row| row[0]).collect();
    assert_eq!(slugs, ["thor"], "{list}");
    let list = expect(&db, &["tenants", "list", "--pending"], 0);
    let rows = table_rows(&list.stdout);
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!(rows[0][0], hidden);
    assert!(rows[0].contains(&"pending"), "{list}");
    expect(&db, &["tenants", "show", &hidden], 3);
}

#[tokio::test]
async fn operators_and_the_audit_log_from_the_command_line() {
    let db = migrated().await;
    let created = polls(
        &db,
        &["operators", "create", "olga", "--password-stdin"],
        Some("operator-pass-1\n"),
    );
    assert_eq!(created.code, 0, "{created}");
    assert_eq!(created.stdout, "created operator 'olga'\n");
    let again = polls(
        &db,
        &["operators", "create", "olga", "--password-stdin"],
        Some("x\n"),
    );
    assert_eq!(again.code, 4, "{again}");
    let bad = polls(
        &db,
        &["operators", "create", "Olga!", "--password-stdin"],
        Some("x\n"),
    );
    assert_eq!(bad.code, 2, "{bad}");
    assert!(bad.stderr.contains("is not an operator name"), "{bad}");
    let list = expect(&db, &["operators", "list"], 0);
    assert_eq!(table_rows(&list.stdout)[0][0], "olga", "{list}");

    expect(&db, &["tenants", "create", "thor"], 0);
    expect(&db, &["operators", "delete", "olga"], 0);
    expect(&db, &["operators", "delete", "olga"], 3);
    let tenancy = startup::open(&support::settings(&db)).await.unwrap();
    tenancy
        .catalog()
        .audit("platform-api", "tenant.update", Some("thor"), "ok")
        .await
        .unwrap();
    let all = expect(&db, &["audit"], 0);
    let actions: Vec<&str> = table_rows(&all.stdout).iter().map(|r| r[2]).collect();
    assert_eq!(
        actions,
        ["tenant.update", "operator.delete", "operator.create"],
        "{all}"
    );
    let thor = expect(&db, &["--tenant", "thor", "audit"], 0);
    assert_eq!(table_rows(&thor.stdout).len(), 1, "{thor}");
    let future = expect(&db, &["audit", "--since", "2999-01-01"], 0);
    assert!(table_rows(&future.stdout).is_empty(), "{future}");
    let wrong = expect(&db, &["audit", "--since", "yesterday"], 2);
    assert!(wrong.stderr.contains("is not a date"), "{wrong}");
}

#[tokio::test]
async fn tenants_restore_and_purge_from_the_command_line() {
    let db = migrated().await;
    expect(&db, &["tenants", "create", "thor"], 0);
    let tenancy = startup::open(&support::settings(&db)).await.unwrap();
    let thor = Slug::parse("thor").unwrap();
    tenancy.delete_tenant_later(&thor).await.unwrap();
    let list = expect(&db, &["tenants", "list"], 0);
    assert!(table_rows(&list.stdout)[0].contains(&"deleted"), "{list}");
    let restored = expect(&db, &["tenants", "restore", "thor"], 0);
    assert_eq!(restored.stdout, "restored 'thor'\n");
    expect(&db, &["tenants", "restore", "thor"], 2);
    tenancy.delete_tenant_later(&thor).await.unwrap();
    let kept = expect(&db, &["tenants", "purge"], 0);
    assert_eq!(kept.stdout, "0 tenant(s) purged\n", "within 30 days");
    let purged = expect(&db, &["tenants", "purge", "--older-than-days", "0"], 0);
    assert_eq!(purged.stdout, "purged 'thor'\n1 tenant(s) purged\n");
    assert!(!schema_exists(&db, "thor").await);
}
