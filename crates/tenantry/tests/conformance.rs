//! The isolation contract, run over every layout: shared (Row-Level Security), schema,
//! database on PostgreSQL, a SQLite file, schema and database placed on a second server, and
//! dedicated on PostgreSQL and on SQLite (its requests here go through a transaction of its
//! own, as in a process with no supervisor; `polls/tests/serve.rs` and the polls API suite
//! cover its own server).
//! Each test below runs once per layout (`every_layout!` at the end). Adding a layout means
//! implementing `Layout` in the library, adding it to `LAYOUTS` and to `Deployed::new`; the
//! tests then say what it is missing.
//!
//! What each layout must do: create, rename (name and slug), suspend and resume, delete;
//! migrate, with a migration that fails in one tenant; move to every other layout, with a
//! fault injected at every step (failing, and dying, then aborted or resumed), and under
//! concurrent reads and writes that never get a 500 and never lose an acknowledged write;
//! export and import; concurrent creates of one slug; and the isolation attacks (a panic, a
//! cancelled request, an error response, a rolled-back savepoint, many concurrent requests of
//! different tenants on a small pool).

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use sqlx::migrate::Migrator;
use support::{Setup, add_note, call, identification, note_bodies, slug};
use tempfile::TempDir;
use tenantry::db_server::{DbServerName, DbServerUrl};
use tenantry::lifecycle::{MigrateOptions, MoveFault, MoveStage, MoveTarget, TenantOutcome};
use tenantry::testing::TestDatabase;
use tenantry::{
    DatabaseBudget, Error, IsolationMode, Migrations, NewTenant, Tenancy, TenancyLayer,
    TenancyRejection, TenantDb, TenantStatus, TenantUpdate,
};
use tower::{Layer, ServiceExt};

/// One way a tenant's data can be laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Shared,
    Schema,
    Database,
    SqliteFile,
    SchemaOnServer,
    DatabaseOnServer,
    Dedicated,
    SqliteDedicated,
}

/// Every layout the suite covers.
const LAYOUTS: [Layout; 8] = [
    Layout::Shared,
    Layout::Schema,
    Layout::Database,
    Layout::SqliteFile,
    Layout::SchemaOnServer,
    Layout::DatabaseOnServer,
    Layout::Dedicated,
    Layout::SqliteDedicated,
];

impl Layout {
    fn isolation(self) -> IsolationMode {
        match self {
            Self::Shared => IsolationMode::Shared,
            Self::Schema | Self::SchemaOnServer => IsolationMode::Schema,
            Self::Database | Self::DatabaseOnServer | Self::SqliteFile => IsolationMode::Database,
            Self::Dedicated | Self::SqliteDedicated => IsolationMode::Dedicated,
        }
    }

    fn on_server(self) -> bool {
        matches!(self, Self::SchemaOnServer | Self::DatabaseOnServer)
    }

    fn sqlite(self) -> bool {
        matches!(self, Self::SqliteFile | Self::SqliteDedicated)
    }
}

/// The second migration of every upgrade here: fails in a tenant with two equal notes.
const PG_V2: &str = "CREATE UNIQUE INDEX notes_body ON notes (tenant_id, body)";
const SQLITE_V2: &str = "CREATE UNIQUE INDEX notes_body ON notes (body)";

fn sqlite_set(v2: bool) -> Migrations {
    let set = sqlx::migrate!("./tests/migrations/tenant-sqlite");
    let set = if v2 {
        support::then(set, SQLITE_V2)
    } else {
        set
    };
    Migrations::new(Migrator::DEFAULT, Migrator::DEFAULT)
        .and_then(|m| m.with_sqlite(set))
        .unwrap()
}

/// A deployment with `layout`'s tenants: PostgreSQL (with a second server registered when
/// the layout is placed there) or a SQLite data directory.
struct Deployed {
    layout: Layout,
    tenancy: Tenancy,
    setup: Option<Setup>,
    dir: Option<TempDir>,
    server: Option<DbServerName>,
    _second: Option<TestDatabase>,
}

impl Deployed {
    async fn new(layout: Layout, pool: u32) -> Self {
        if layout.sqlite() {
            let dir = tempfile::tempdir().unwrap();
            let budget = DatabaseBudget {
                per_tenant: pool,
                ..DatabaseBudget::default()
            };
            let tenancy =
                Tenancy::open_sqlite(dir.path(), identification(), sqlite_set(false), budget)
                    .await
                    .unwrap();
            return Self {
                layout,
                tenancy,
                setup: None,
                dir: Some(dir),
                server: None,
                _second: None,
            };
        }
        let setup = support::setup(pool).await;
        let second = TestDatabase::create().await;
        let name = DbServerName::parse("second").unwrap();
        setup
            .tenancy
            .db_servers()
            .unwrap()
            .add(&name, &DbServerUrl::parse(&second.url()).unwrap())
            .await
            .unwrap();
        Self {
            layout,
            tenancy: setup.tenancy.clone(),
            setup: Some(setup),
            dir: None,
            server: layout.on_server().then_some(name),
            _second: Some(second),
        }
    }

    fn new_tenant(&self, name: &str) -> NewTenant {
        NewTenant {
            server: self.server.clone(),
            ..NewTenant::new(slug(name), self.layout.isolation())
        }
    }

    async fn create(&self, name: &str) {
        self.tenancy
            .create_tenant(self.new_tenant(name))
            .await
            .unwrap_or_else(|e| panic!("{:?}: creating {name}: {e}", self.layout));
    }

    /// The same deployment served by a build whose tenant set adds a unique index on notes.
    async fn upgraded(&self) -> Tenancy {
        match (&self.setup, &self.dir) {
            (Some(setup), _) => setup.upgraded(support::notes_then(PG_V2)).await,
            (None, Some(dir)) => Tenancy::open_sqlite(
                dir.path(),
                identification(),
                sqlite_set(true),
                DatabaseBudget::default(),
            )
            .await
            .unwrap(),
            (None, None) => unreachable!("a deployment is PostgreSQL or SQLite"),
        }
    }

    fn target(&self, to: Layout) -> MoveTarget {
        MoveTarget {
            isolation: to.isolation(),
            server: to
                .on_server()
                .then(|| DbServerName::parse("second").unwrap()),
        }
    }
}

async fn notes(mut db: TenantDb) -> Result<Json<Vec<String>>, TenancyRejection> {
    let rows: Vec<(String,)> = db
        .query("SELECT body FROM notes ORDER BY id")
        .fetch_all()
        .await?;
    Ok(Json(rows.into_iter().map(|(body,)| body).collect()))
}

async fn add(Path(body): Path<String>, mut db: TenantDb) -> Result<StatusCode, TenancyRejection> {
    db.query("INSERT INTO notes (body) VALUES ($1)")
        .bind(body)
        .execute()
        .await?;
    Ok(StatusCode::CREATED)
}

async fn add_then_panic(mut db: TenantDb) -> &'static str {
    db.query("INSERT INTO notes (body) VALUES ('from a panic')")
        .execute()
        .await
        .unwrap();
    panic!("handler bug");
}

async fn add_then_hang(mut db: TenantDb) -> &'static str {
    db.query("INSERT INTO notes (body) VALUES ('from a cancelled request')")
        .execute()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    "never"
}

async fn add_then_fail(mut db: TenantDb) -> StatusCode {
    db.query("INSERT INTO notes (body) VALUES ('from a failed request')")
        .execute()
        .await
        .unwrap();
    StatusCode::BAD_REQUEST
}

/// Writes inside a savepoint, rolls it back, then reads: the write is gone and the request
/// is still its tenant's.
async fn savepoint(mut db: TenantDb) -> Result<Json<Vec<String>>, TenancyRejection> {
    db.query("SAVEPOINT s").execute().await?;
    db.query("INSERT INTO notes (body) VALUES ('in a savepoint')")
        .execute()
        .await?;
    db.query("ROLLBACK TO SAVEPOINT s").execute().await?;
    notes(db).await
}

fn app(tenancy: Tenancy) -> Router {
    let routes = Router::new()
        .route("/notes", get(notes))
        .route("/notes/{body}", post(add))
        .route("/panic", post(add_then_panic))
        .route("/hang", post(add_then_hang))
        .route("/fail", post(add_then_fail))
        .route("/savepoint", get(savepoint));
    Router::new().fallback_service(TenancyLayer::new(tenancy).layer(routes))
}

fn host(name: &str) -> String {
    format!("{name}.app.test")
}

async fn create_rename_suspend_resume_delete(layout: Layout) {
    let d = Deployed::new(layout, 4).await;
    d.create("thor").await;
    d.create("potter").await;
    add_note(&d.tenancy, "thor", "thor's note").await;
    add_note(&d.tenancy, "potter", "potter's note").await;
    let app = app(d.tenancy.clone());

    let renamed = d
        .tenancy
        .update_tenant(
            &slug("thor"),
            TenantUpdate {
                name: Some("Odin".into()),
                slug: Some(slug("odin")),
                ..TenantUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.tenant.name, "Odin");
    assert_eq!(renamed.tenant.slug, slug("odin"));
    assert_eq!(call(&app, "GET", &host("thor"), "/notes").await.0, 404);
    let (status, body) = call(&app, "GET", &host("odin"), "/notes").await;
    assert_eq!((status, body), (StatusCode::OK, json!(["thor's note"])));
    // A slug taken by another tenant is refused, and nothing is renamed.
    let taken = d
        .tenancy
        .update_tenant(
            &slug("odin"),
            TenantUpdate {
                slug: Some(slug("potter")),
                ..TenantUpdate::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(taken, Error::SlugTaken(_)), "{taken}");
    assert_eq!(note_bodies(&d.tenancy, "odin").await, ["thor's note"]);

    support::set_status(&d.tenancy, "odin", TenantStatus::Suspended).await;
    assert_eq!(call(&app, "GET", &host("odin"), "/notes").await.0, 403);
    support::set_status(&d.tenancy, "odin", TenantStatus::Active).await;
    assert_eq!(call(&app, "GET", &host("odin"), "/notes").await.0, 200);

    d.tenancy.delete_tenant(&slug("odin")).await.unwrap();
    assert_eq!(call(&app, "GET", &host("odin"), "/notes").await.0, 404);
    // The slug is free again, and a new tenant under it starts empty.
    d.create("odin").await;
    assert!(note_bodies(&d.tenancy, "odin").await.is_empty());
    assert_eq!(note_bodies(&d.tenancy, "potter").await, ["potter's note"]);
}

async fn migrate_with_a_failing_tenant(layout: Layout) {
    let d = Deployed::new(layout, 4).await;
    for name in ["alpha", "bravo", "charlie"] {
        d.create(name).await;
        add_note(&d.tenancy, name, "one").await;
    }
    add_note(&d.tenancy, "bravo", "one").await;
    if layout == Layout::Shared {
        // One set of tables holds every shared tenant: it migrates with the shared tables,
        // for all of them at once, and a migration that cannot apply applies to none.
        let setup = d.setup.as_ref().unwrap();
        let failed = tenantry::migrate_shared(
            &setup.pool,
            &support::notes_then(PG_V2),
            &tenantry::AppRole::default(),
        )
        .await
        .unwrap_err();
        assert!(failed.to_string().contains("notes_body"), "{failed}");
        let v2 = d.upgraded().await;
        let report = v2
            .migrate_tenants(&MigrateOptions::default(), |_| {}, |_| {})
            .await
            .unwrap();
        assert!(report.visited.is_empty(), "{report:?}");
        assert_eq!(note_bodies(&d.tenancy, "bravo").await, ["one", "one"]);
        return;
    }
    let v2 = d.upgraded().await;
    let options = MigrateOptions {
        jobs: 2,
        ..MigrateOptions::default()
    };
    let checked = v2
        .migrate_tenants(
            &MigrateOptions {
                check: true,
                ..options.clone()
            },
            |_| {},
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(checked.applied(), 2, "{checked:?}");
    let report = v2.migrate_tenants(&options, |_| {}, |_| {}).await.unwrap();
    assert_eq!(report.applied(), 2, "{report:?}");
    let failed: Vec<_> = report.failures().map(|(s, _)| s.to_string()).collect();
    assert_eq!(failed, ["bravo"], "{report:?}");
    // The failed tenant is where it was: its notes, and its migration still pending.
    assert_eq!(note_bodies(&v2, "bravo").await, ["one", "one"]);
    v2.in_tenant(&slug("bravo"), async |db| -> Result<u64, Error> {
        Ok(db
            .query("DELETE FROM notes WHERE id = (SELECT max(id) FROM notes)")
            .execute()
            .await?)
    })
    .await
    .unwrap();
    let rerun = v2.migrate_tenants(&options, |_| {}, |_| {}).await.unwrap();
    assert_eq!(rerun.applied(), 1, "{rerun:?}");
    assert!(
        rerun
            .visited
            .iter()
            .all(|t| !matches!(t.outcome, TenantOutcome::Failed(_)))
    );
    let idle = v2.migrate_tenants(&options, |_| {}, |_| {}).await.unwrap();
    assert!(idle.visited.is_empty(), "{idle:?}");
}

/// Thor with two notes, one deleted so the ids have a gap.
async fn populated(d: &Deployed) -> Vec<String> {
    d.create("thor").await;
    d.create("potter").await;
    for body in ["one", "two", "three"] {
        add_note(&d.tenancy, "thor", body).await;
    }
    add_note(&d.tenancy, "potter", "potter's").await;
    d.tenancy
        .in_tenant(&slug("thor"), async |db| -> Result<u64, Error> {
            Ok(db
                .query("DELETE FROM notes WHERE body = 'two'")
                .execute()
                .await?)
        })
        .await
        .unwrap();
    note_bodies(&d.tenancy, "thor").await
}

async fn isolation_and_moving(d: &Deployed) -> (IsolationMode, bool) {
    let thor = d.tenancy.catalog().details(&slug("thor")).await.unwrap();
    (thor.tenant.isolation, thor.tenant.moving)
}

async fn moves_to_every_other_layout_with_faults(layout: Layout) {
    let d = Deployed::new(layout, 6).await;
    let before = populated(&d).await;
    if layout.sqlite() {
        let refused = d
            .tenancy
            .move_tenant(&slug("thor"), d.target(Layout::Schema))
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("needs PostgreSQL"),
            "{refused}"
        );
        return;
    }
    let mut at = layout;
    for to in LAYOUTS.into_iter().filter(|l| *l != layout && !l.sqlite()) {
        let what = |s: &str| format!("{at:?} -> {to:?}: {s}");
        let stages = [
            MoveStage::Marked,
            MoveStage::Built,
            MoveStage::Copied,
            MoveStage::Switching,
        ];
        for stage in stages {
            d.tenancy
                .move_tenant_failing(&slug("thor"), d.target(to), MoveFault::Fail(stage))
                .await
                .unwrap_err();
            assert_eq!(
                isolation_and_moving(&d).await,
                (at.isolation(), false),
                "{}",
                what(&format!("failed at {stage:?}"))
            );
            assert_eq!(note_bodies(&d.tenancy, "thor").await, before);
        }
        for stage in stages {
            d.tenancy
                .move_tenant_failing(&slug("thor"), d.target(to), MoveFault::Crash(stage))
                .await
                .unwrap_err();
            let state = d.tenancy.interrupted_move(&slug("thor")).await.unwrap();
            assert!(
                state.is_some(),
                "{}",
                what(&format!("crashed at {stage:?}"))
            );
            d.tenancy.abort_move(&slug("thor")).await.unwrap();
            assert_eq!(isolation_and_moving(&d).await, (at.isolation(), false));
            assert_eq!(note_bodies(&d.tenancy, "thor").await, before);
        }
        // Dying after the switch leaves the old data; --resume removes it.
        d.tenancy
            .move_tenant_failing(
                &slug("thor"),
                d.target(to),
                MoveFault::Crash(MoveStage::Switched),
            )
            .await
            .unwrap_err();
        assert_eq!(isolation_and_moving(&d).await, (to.isolation(), false));
        let state = d.tenancy.interrupted_move(&slug("thor")).await.unwrap();
        assert!(
            state.is_some_and(|s| s.switched),
            "{}",
            what("after the switch")
        );
        let moved = d.tenancy.resume_move(&slug("thor")).await.unwrap();
        assert!(moved.tenant.move_state.is_none());
        assert_eq!(moved.tenant.placement.server, d.target(to).server);
        assert_eq!(
            note_bodies(&d.tenancy, "thor").await,
            before,
            "{}",
            what("moved")
        );
        assert_eq!(note_bodies(&d.tenancy, "potter").await, ["potter's"]);
        at = to;
    }
    assert_eq!(no_leftovers(&d).await, 0, "data left behind by moves");
}

/// Rows of thor outside its current placement: in the shared tables, in schemas named thor
/// or in databases made for it, other than where it is.
async fn no_leftovers(d: &Deployed) -> i64 {
    let setup = d.setup.as_ref().unwrap();
    let thor = d
        .tenancy
        .catalog()
        .details(&slug("thor"))
        .await
        .unwrap()
        .tenant;
    let shared: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tenantry_shared.notes WHERE tenant_id = $1")
            .bind(thor.id)
            .fetch_one(&setup.pool)
            .await
            .unwrap();
    let databases: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_database WHERE shobj_description(oid, 'pg_database') = $1 \
         AND datname IS DISTINCT FROM $2",
    )
    .bind(format!("tenantry tenant {}", thor.id))
    .bind(
        thor.placement
            .database
            .as_ref()
            .map(|d| d.as_str().to_owned()),
    )
    .fetch_one(&setup.pool)
    .await
    .unwrap();
    let here = thor.isolation == IsolationMode::Shared;
    shared * i64::from(!here) + databases
}

/// Reads and writes against thor while it moves through every other layout: every response
/// is a success or 503 with `Retry-After`, and every write answered with success is there.
async fn moves_under_load(layout: Layout) {
    let d = Deployed::new(layout, 8).await;
    populated(&d).await;
    if layout.sqlite() {
        return;
    }
    let app = app(d.tenancy.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (app, stop) = (app.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut acknowledged, mut refused, mut reads) = (Vec::new(), 0, 0);
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    n += 1;
                    let body = format!("c{client}-{n}");
                    for (method, path) in
                        [("POST", format!("/notes/{body}")), ("GET", "/notes".into())]
                    {
                        let request = Request::builder()
                            .method(method)
                            .uri(&path)
                            .header("host", host("thor"))
                            .body(Body::empty())
                            .unwrap();
                        let response = app.clone().oneshot(request).await.unwrap();
                        let status = response.status();
                        let retry = response.headers().contains_key("retry-after");
                        match status {
                            StatusCode::CREATED => acknowledged.push(body.clone()),
                            StatusCode::OK => reads += 1,
                            StatusCode::SERVICE_UNAVAILABLE if retry => refused += 1,
                            other => {
                                let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
                                    .await
                                    .unwrap();
                                panic!(
                                    "{method} {path}: {other} {}",
                                    String::from_utf8_lossy(&bytes)
                                );
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                (acknowledged, refused, reads)
            })
        })
        .collect();
    let mut at = layout;
    for to in LAYOUTS.into_iter().filter(|l| *l != layout && !l.sqlite()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        d.tenancy
            .move_tenant(&slug("thor"), d.target(to))
            .await
            .unwrap_or_else(|e| panic!("{at:?} -> {to:?}: {e}"));
        at = to;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Release);
    let (mut acknowledged, mut refused, mut reads) = (Vec::new(), 0, 0);
    for client in clients {
        let (a, r, n) = client.await.unwrap();
        acknowledged.extend(a);
        refused += r;
        reads += n;
    }
    let stored = note_bodies(&d.tenancy, "thor").await;
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|b| !stored.contains(b))
        .collect();
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
    assert!(
        !acknowledged.is_empty() && reads > 0,
        "the load did not run"
    );
    eprintln!(
        "{layout:?}: {} writes acknowledged, {reads} reads, {refused} refused with 503",
        acknowledged.len()
    );
}

async fn export_and_import(layout: Layout) {
    let d = Deployed::new(layout, 4).await;
    let before = populated(&d).await;
    let exported = d.tenancy.export_tenant(&slug("thor")).await;
    if layout.sqlite() {
        let refused = exported.unwrap_err();
        assert!(
            refused.to_string().contains("needs PostgreSQL"),
            "{refused}"
        );
        return;
    }
    let export = exported.unwrap();
    let copy = d
        .tenancy
        .import_tenant(export, Some(slug("thor-copy")), None)
        .await
        .unwrap();
    assert_eq!(copy.tenant.isolation, layout.isolation());
    assert_eq!(note_bodies(&d.tenancy, "thor-copy").await, before);
    // The copy is a tenant of its own: writing to it leaves the original alone.
    add_note(&d.tenancy, "thor-copy", "copy's").await;
    assert_eq!(note_bodies(&d.tenancy, "thor").await, before);
}

async fn concurrent_creates_of_one_slug(layout: Layout) {
    let d = Deployed::new(layout, 8).await;
    let creates = (0..6).map(|_| d.tenancy.create_tenant(d.new_tenant("thor")));
    let results = futures::future::join_all(creates).await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(created, 1, "{results:?}");
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(matches!(refused, Error::SlugTaken(_)), "{refused}");
    }
    add_note(&d.tenancy, "thor", "mine").await;
    assert_eq!(note_bodies(&d.tenancy, "thor").await, ["mine"]);
}

async fn isolation_attacks(layout: Layout) {
    let d = Deployed::new(layout, 2).await;
    d.create("thor").await;
    d.create("potter").await;
    add_note(&d.tenancy, "thor", "thor's").await;
    add_note(&d.tenancy, "potter", "potter's").await;
    let app = app(d.tenancy.clone());
    for _ in 0..3 {
        let (status, _) = call(&app, "POST", &host("thor"), "/panic").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let request = Request::builder()
            .method("POST")
            .uri("/hang")
            .header("host", host("thor"))
            .body(Body::empty())
            .unwrap();
        let cancelled =
            tokio::time::timeout(Duration::from_millis(100), app.clone().oneshot(request)).await;
        assert!(cancelled.is_err(), "the request should still be hanging");
        assert_eq!(call(&app, "POST", &host("thor"), "/fail").await.0, 400);
    }
    let (status, body) = call(&app, "GET", &host("thor"), "/savepoint").await;
    assert_eq!((status, body), (StatusCode::OK, json!(["thor's"])));
    assert_eq!(note_bodies(&d.tenancy, "thor").await, ["thor's"]);

    let names = ["t-one", "t-two", "t-three", "t-four", "t-five"];
    for name in names {
        d.create(name).await;
        add_note(&d.tenancy, name, name).await;
    }
    let requests = (0..200).map(|i| {
        let app = app.clone();
        let name = names[i % names.len()];
        tokio::spawn(async move {
            match i % 10 {
                3 => {
                    call(&app, "POST", &host(name), "/panic").await;
                    None
                }
                7 => {
                    let request = Request::builder()
                        .method("POST")
                        .uri("/hang")
                        .header("host", host(name))
                        .body(Body::empty())
                        .unwrap();
                    let _ =
                        tokio::time::timeout(Duration::from_millis(5), app.oneshot(request)).await;
                    None
                }
                _ => Some((name, call(&app, "GET", &host(name), "/notes").await)),
            }
        })
    });
    let mut checked = 0;
    for result in futures::future::join_all(requests).await {
        if let Some((name, (status, body))) = result.unwrap() {
            assert_eq!(status, StatusCode::OK, "{name}: {body}");
            assert_eq!(body, json!([name]), "{name} saw another tenant's rows");
            checked += 1;
        }
    }
    assert_eq!(checked, 160);
    assert_eq!(note_bodies(&d.tenancy, "potter").await, ["potter's"]);
}

/// Runs each test above once per layout, in a module named after the layout.
macro_rules! every_layout {
    ($($test:ident),* $(,)?) => {
        every_layout!(@mod shared, Shared; $($test),*);
        every_layout!(@mod schema, Schema; $($test),*);
        every_layout!(@mod database, Database; $($test),*);
        every_layout!(@mod sqlite_file, SqliteFile; $($test),*);
        every_layout!(@mod schema_on_a_second_server, SchemaOnServer; $($test),*);
        every_layout!(@mod database_on_a_second_server, DatabaseOnServer; $($test),*);
        every_layout!(@mod dedicated, Dedicated; $($test),*);
        every_layout!(@mod sqlite_dedicated, SqliteDedicated; $($test),*);
    };
    (@mod $name:ident, $layout:ident; $($test:ident),*) => {
        mod $name {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Layout::$layout).await
            })*
        }
    };
}

every_layout!(
    create_rename_suspend_resume_delete,
    migrate_with_a_failing_tenant,
    moves_to_every_other_layout_with_faults,
    moves_under_load,
    export_and_import,
    concurrent_creates_of_one_slug,
    isolation_attacks,
);
