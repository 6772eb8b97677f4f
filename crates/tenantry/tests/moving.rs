//! Moving tenants between shared, schema and database isolation, in every direction, with
//! failures injected before and at the switch; the read-only state during a move; export and
//! import.

use crate::support;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::json;
use support::{Setup, add_note, call, note_bodies, setup, slug, whoami};
use tenantry::lifecycle::EXPORT_VERSION;
use tenantry::lifecycle::MoveFault;
use tenantry::lifecycle::MoveStage;
use tenantry::lifecycle::MoveTarget;
use tenantry::{Error, IsolationMode, TenancyLayer, TenantDb};
use tower::Layer;

/// The tenant's notes with their ids, read in its context.
async fn notes_with_ids(s: &Setup, name: &str) -> Vec<(i64, String)> {
    s.tenancy
        .in_tenant(
            &slug(name),
            async |db| -> Result<Vec<(i64, String)>, Error> {
                Ok(db
                    .query("SELECT id, body FROM notes ORDER BY id")
                    .fetch_all()
                    .await?)
            },
        )
        .await
        .unwrap()
}

/// Thor (to be moved) with three notes, one deleted so the ids have a gap, and a neighbour
/// in each mode with a note of its own.
async fn populated(from: IsolationMode) -> Setup {
    let s = setup(4).await;
    s.create_in("thor", from).await;
    for body in ["one", "two", "three"] {
        add_note(&s.tenancy, "thor", body).await;
    }
    s.tenancy
        .in_tenant(&slug("thor"), async |db| -> Result<u64, Error> {
            Ok(db
                .query("DELETE FROM notes WHERE body = 'two'")
                .execute()
                .await?)
        })
        .await
        .unwrap();
    s.create_each_with_its_name([
        ("sharer", IsolationMode::Shared),
        ("schemer", IsolationMode::Schema),
        ("owner", IsolationMode::Database),
    ])
    .await;
    s
}

/// Where thor's data physically is: (schemas named thor, thor's databases (named after its
/// id, whichever move made them), thor's rows in the shared schema).
async fn footprint(s: &Setup) -> (i64, i64, i64) {
    let id = s
        .tenancy
        .catalog()
        .details(&slug("thor"))
        .await
        .unwrap()
        .tenant
        .id;
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'thor'), \
         (SELECT count(*) FROM pg_database \
          WHERE datname LIKE 'tenant\\_thor\\_' || left(replace($1::text, '-', ''), 6) || '%'), \
         (SELECT count(*) FROM tenantry_shared.notes WHERE tenant_id = $1)",
    )
    .bind(id)
    .fetch_one(&s.pool)
    .await
    .unwrap()
}

fn expected_footprint(isolation: IsolationMode) -> (i64, i64, i64) {
    match isolation {
        IsolationMode::Schema => (1, 0, 0),
        IsolationMode::Database => (0, 1, 0),
        _ => (0, 0, 2),
    }
}

async fn isolation_of(s: &Setup) -> (IsolationMode, bool) {
    let row: (String, bool) =
        sqlx::query_as("SELECT isolation, moving FROM tenantry.tenants WHERE slug = 'thor'")
            .fetch_one(&s.pool)
            .await
            .unwrap();
    (row.0.parse().unwrap(), row.1)
}

async fn neighbours_untouched(s: &Setup) {
    for name in ["sharer", "schemer", "owner"] {
        assert_eq!(note_bodies(&s.tenancy, name).await, [name]);
    }
}

/// Injected failures leave thor where it was; then the move itself carries every row over
/// with its id, removes the old data and leaves the sequences past the copied ids.
async fn move_between(from: IsolationMode, to: IsolationMode) {
    let s = populated(from).await;
    let before = notes_with_ids(&s, "thor").await;
    assert_eq!(before.len(), 2);
    let target = || MoveTarget {
        isolation: to,
        server: None,
    };
    let unchanged = async |what: &str| {
        assert_eq!(isolation_of(&s).await, (from, false), "{what}");
        assert_eq!(notes_with_ids(&s, "thor").await, before, "{what}");
        assert_eq!(footprint(&s).await, expected_footprint(from), "{what}");
    };
    let before_switch = [
        MoveStage::Marked,
        MoveStage::Built,
        MoveStage::Copied,
        MoveStage::Switching,
    ];
    for stage in before_switch {
        let failed = s
            .tenancy
            .move_tenant_failing(&slug("thor"), target(), MoveFault::Fail(stage))
            .await
            .unwrap_err();
        assert!(failed.to_string().contains("injected"), "{failed}");
        unchanged(&format!("failed at {stage:?}")).await;
    }
    // A process that dies mid-move leaves the tenant marked; --abort undoes the move.
    for stage in before_switch {
        let what = format!("crashed at {stage:?}");
        s.tenancy
            .move_tenant_failing(&slug("thor"), target(), MoveFault::Crash(stage))
            .await
            .unwrap_err();
        assert_eq!(isolation_of(&s).await, (from, true), "{what}");
        let state = s.tenancy.interrupted_move(&slug("thor")).await.unwrap();
        assert!(state.is_some_and(|st| !st.switched), "{what}");
        let again = s.tenancy.move_tenant(&slug("thor"), target()).await;
        assert!(
            again.unwrap_err().to_string().contains("--resume"),
            "{what}"
        );
        s.tenancy.abort_move(&slug("thor")).await.unwrap();
        unchanged(&what).await;
        assert_eq!(
            s.tenancy.interrupted_move(&slug("thor")).await.unwrap(),
            None
        );
    }
    // Crashed before the switch, then resumed: the move is made again from the start.
    s.tenancy
        .move_tenant_failing(&slug("thor"), target(), MoveFault::Crash(MoveStage::Copied))
        .await
        .unwrap_err();
    let moved = s.tenancy.resume_move(&slug("thor")).await.unwrap();
    assert_eq!(moved.tenant.isolation, to);
    assert!(!moved.tenant.moving);
    assert_eq!(isolation_of(&s).await, (to, false));
    assert_eq!(notes_with_ids(&s, "thor").await, before);
    assert_eq!(footprint(&s).await, expected_footprint(to));
    add_note(&s.tenancy, "thor", "after").await;
    let after = notes_with_ids(&s, "thor").await;
    assert!(after[2].0 > before[1].0, "{after:?}");
    neighbours_untouched(&s).await;
    let routes = axum::Router::new().route("/whoami", get(whoami));
    let app = Router::new().fallback_service(TenancyLayer::new(s.tenancy.clone()).layer(routes));
    let (status, body) = call(&app, "GET", "thor.app.test", "/whoami").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["notes"], json!(["one", "three", "after"]));
}

#[tokio::test]
async fn schema_to_shared() {
    move_between(IsolationMode::Schema, IsolationMode::Shared).await;
}

#[tokio::test]
async fn shared_to_schema() {
    move_between(IsolationMode::Shared, IsolationMode::Schema).await;
}

#[tokio::test]
async fn schema_to_database() {
    move_between(IsolationMode::Schema, IsolationMode::Database).await;
}

#[tokio::test]
async fn database_to_schema() {
    move_between(IsolationMode::Database, IsolationMode::Schema).await;
}

#[tokio::test]
async fn shared_to_database() {
    move_between(IsolationMode::Shared, IsolationMode::Database).await;
}

#[tokio::test]
async fn database_to_shared() {
    move_between(IsolationMode::Database, IsolationMode::Shared).await;
}

async fn write_in_a_read(mut db: TenantDb) -> StatusCode {
    match db
        .query("INSERT INTO notes (body) VALUES ('sneaky')")
        .execute()
        .await
    {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::CONFLICT,
    }
}

#[tokio::test]
async fn a_moving_tenant_serves_reads_and_refuses_writes_with_503() {
    let s = populated(IsolationMode::Schema).await;
    let routes = Router::new()
        .route("/whoami", get(whoami).post(whoami))
        .route("/sneak", get(write_in_a_read));
    let app = Router::new().fallback_service(TenancyLayer::new(s.tenancy.clone()).layer(routes));
    sqlx::query("UPDATE tenantry.tenants SET moving = true WHERE slug = 'thor'")
        .execute(&s.pool)
        .await
        .unwrap();
    s.tenancy.catalog().invalidate();
    let (status, body) = call(&app, "GET", "thor.app.test", "/whoami").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["notes"], json!(["one", "three"]));
    let (status, body) = call(&app, "POST", "thor.app.test", "/whoami").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body["detail"],
        "Tenant 'thor' is being moved; writes resume when the move is done, retry shortly."
    );
    // A write hidden in a GET fails too: the transaction is read-only.
    let (status, _) = call(&app, "GET", "thor.app.test", "/sneak").await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Another tenant is not affected.
    let (status, _) = call(&app, "POST", "schemer.app.test", "/whoami").await;
    assert_eq!(status, StatusCode::OK);
    // A second move of a tenant already being moved is refused by the lock, not the mark.
    sqlx::query("UPDATE tenantry.tenants SET moving = false WHERE slug = 'thor'")
        .execute(&s.pool)
        .await
        .unwrap();
    s.tenancy.catalog().invalidate();
    assert_eq!(note_bodies(&s.tenancy, "thor").await, ["one", "three"]);
}

#[tokio::test]
async fn a_move_to_where_the_tenant_is_or_shared_on_a_server_is_refused() {
    let s = populated(IsolationMode::Schema).await;
    let same = MoveTarget {
        isolation: IsolationMode::Schema,
        server: None,
    };
    let refused = s
        .tenancy
        .move_tenant(&slug("thor"), same)
        .await
        .unwrap_err();
    assert_eq!(refused.exit_code(), 2, "{refused}");
    let shared_elsewhere = MoveTarget {
        isolation: IsolationMode::Shared,
        server: Some(tenantry::db_server::DbServerName::parse("elsewhere").unwrap()),
    };
    let refused = s
        .tenancy
        .move_tenant(&slug("thor"), shared_elsewhere)
        .await
        .unwrap_err();
    assert_eq!(refused.exit_code(), 2, "{refused}");
    assert_eq!(isolation_of(&s).await, (IsolationMode::Schema, false));
}

#[tokio::test]
async fn export_then_import_under_a_new_slug_in_another_mode() {
    let s = populated(IsolationMode::Schema).await;
    let export = s.tenancy.export_tenant(&slug("thor")).await.unwrap();
    assert_eq!(export.version, EXPORT_VERSION);
    assert_eq!(export.tables[0].table, "notes");
    let json = serde_json::to_string(&export).unwrap();
    assert!(!json.contains("tenant_id"), "exports carry no tenant ids");
    let copy = s
        .tenancy
        .import_tenant(
            serde_json::from_str(&json).unwrap(),
            Some(slug("thor-copy")),
            Some(IsolationMode::Shared),
        )
        .await
        .unwrap();
    assert_eq!(copy.tenant.isolation, IsolationMode::Shared);
    assert_eq!(
        notes_with_ids(&s, "thor-copy").await,
        notes_with_ids(&s, "thor").await
    );
    // The same export again under the same slug: refused, nothing changed.
    let again = s
        .tenancy
        .import_tenant(export.clone(), Some(slug("thor-copy")), None)
        .await
        .unwrap_err();
    assert!(matches!(again, Error::SlugTaken(_)), "{again}");
    // Exports of another version or migration set are refused before anything is made.
    for broken in [
        tenantry::lifecycle::TenantExport {
            version: EXPORT_VERSION + 1,
            ..export.clone()
        },
        tenantry::lifecycle::TenantExport {
            migration_fingerprint: "0".repeat(64),
            ..export.clone()
        },
    ] {
        let refused = s
            .tenancy
            .import_tenant(broken, Some(slug("thor-bad")), None)
            .await
            .unwrap_err();
        assert_eq!(refused.exit_code(), 2, "{refused}");
    }
    let listed = s.tenancy.catalog().list().await.unwrap();
    assert!(listed.iter().all(|t| t.tenant.slug.as_str() != "thor-bad"));
    // Rows that do not fit leave no tenant behind.
    let mut unfit = export.clone();
    unfit.tables[0].rows[0].insert("body".into(), serde_json::Value::Null);
    let refused = s
        .tenancy
        .import_tenant(unfit, Some(slug("thor-unfit")), Some(IsolationMode::Schema))
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Database(_)), "{refused}");
    assert!(!s.schemas().await.contains(&"thor_unfit".to_owned()));
    let listed = s.tenancy.catalog().list().await.unwrap();
    assert!(
        listed
            .iter()
            .all(|t| t.tenant.slug.as_str() != "thor-unfit")
    );
}

/// A registered server that is the catalog's own database under another name: what a user
/// with one PostgreSQL sets up.
async fn twin_server(s: &Setup) -> tenantry::db_server::DbServerName {
    let twin = tenantry::db_server::DbServerName::parse("twin").unwrap();
    s.tenancy
        .db_servers()
        .unwrap()
        .add(
            &twin,
            &tenantry::db_server::DbServerUrl::parse(&s.db.url()).unwrap(),
        )
        .await
        .unwrap();
    twin
}

#[tokio::test]
async fn a_move_to_a_twin_server_never_drops_the_tenants_data() {
    let s = populated(IsolationMode::Database).await;
    let before = notes_with_ids(&s, "thor").await;
    let twin = twin_server(&s).await;
    // The same database name on the same cluster would be the live database: a move makes
    // a name of its own.
    let moved = s
        .tenancy
        .move_tenant(
            &slug("thor"),
            MoveTarget {
                isolation: IsolationMode::Database,
                server: Some(twin.clone()),
            },
        )
        .await
        .unwrap();
    assert_eq!(moved.tenant.placement.server.as_ref(), Some(&twin));
    assert_eq!(notes_with_ids(&s, "thor").await, before);

    // A schema of the same name already exists in the twin's database: the move fails and
    // leaves the tenant where it was, with its data.
    let before = notes_with_ids(&s, "schemer").await;
    let refused = s
        .tenancy
        .move_tenant(
            &slug("schemer"),
            MoveTarget {
                isolation: IsolationMode::Schema,
                server: Some(twin),
            },
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(notes_with_ids(&s, "schemer").await, before);
    let schemer = s
        .tenancy
        .catalog()
        .details(&slug("schemer"))
        .await
        .unwrap()
        .tenant;
    assert_eq!(schemer.placement.server, None);
    assert!(!schemer.moving);
    // Thor's database now belongs to the twin, which the test database does not clean up.
    s.tenancy.delete_tenant(&slug("thor")).await.unwrap();
}
