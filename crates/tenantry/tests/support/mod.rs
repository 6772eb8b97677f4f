//! Shared set-up for tenantry's integration tests: a fresh database with the catalog and a
//! `notes` tenant table.
#![allow(dead_code)]

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::{Json, Router};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tenantry::testing::{TestDatabase, TestPgBouncer};
use tenantry::{
    Error, HostName, Identification, Migrations, NewTenant, Pooler, Slug, Tenancy, Tenant, TenantDb,
};
use tower::ServiceExt;

/// The test tenant set: one `notes` table.
pub fn notes() -> Migrator {
    sqlx::migrate!("./tests/migrations/tenant")
}

pub fn slug(s: &str) -> Slug {
    Slug::parse(s).unwrap()
}

pub fn identification() -> Identification {
    Identification::new(HostName::parse("app.test").unwrap())
}

pub struct Setup {
    pub db: TestDatabase,
    pub pool: PgPool,
    pub tenancy: Tenancy,
    /// The PgBouncer every connection goes through, if any.
    pub bouncer: Option<TestPgBouncer>,
}

/// A migrated catalog on a new database, with a pool of `size` connections.
pub async fn setup(size: u32) -> Setup {
    let db = TestDatabase::create().await;
    let pool = db.pool(size).await;
    setup_on(db, pool).await
}

/// [`setup`] with every connection going through a [`slow_link`] that holds each reply for
/// `delay`.
pub async fn setup_slow(size: u32, delay: std::time::Duration) -> Setup {
    let mut db = TestDatabase::create().await;
    let server = db.options();
    let port = slow_link((server.get_host().to_owned(), server.get_port()), delay).await;
    db.reached_through(port);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(size)
        .test_before_acquire(false)
        .connect_with(server.host("127.0.0.1").port(port))
        .await
        .unwrap();
    setup_on(db, pool).await
}

/// [`setup`] with every connection going through a PgBouncer in transaction mode that keeps
/// `backends` server connections per database and role.
pub async fn setup_pooled(size: u32, backends: u32) -> Setup {
    let bouncer = TestPgBouncer::start(backends);
    let mut db = TestDatabase::create().await;
    db.reached_through(bouncer.port());
    let options = Pooler::Transaction
        .connect_options(&bouncer.url(db.name()))
        .unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(size)
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .unwrap();
    let mut s = setup_with(db, pool, Pooler::Transaction).await;
    s.bouncer = Some(bouncer);
    s
}

/// [`setup`], through PgBouncer if `pooled`.
pub async fn setup_via(size: u32, pooled: bool) -> Setup {
    if pooled {
        setup_pooled(size, 1).await
    } else {
        setup(size).await
    }
}

async fn setup_on(db: TestDatabase, pool: PgPool) -> Setup {
    setup_with(db, pool, Pooler::None).await
}

async fn setup_with(db: TestDatabase, pool: PgPool, pooler: Pooler) -> Setup {
    let migrations = Migrations::new(Migrator::DEFAULT, notes()).unwrap();
    let role = tenantry::AppRole::default();
    tenantry::migrate_shared(&pool, &migrations, &role)
        .await
        .unwrap();
    if pooler == Pooler::Transaction {
        tenantry::role::prepare_roles(&pool, &role).await.unwrap();
    }
    let options = tenantry::TenancyOptions {
        pooler,
        ..tenantry::TenancyOptions::default()
    };
    let tenancy = Tenancy::connect_with(pool.clone(), identification(), migrations, options)
        .await
        .unwrap();
    Setup {
        db,
        pool,
        tenancy,
        bouncer: None,
    }
}

impl Setup {
    /// The same catalog, with the notes set, opened again with `options` (a cache, a file
    /// store).
    pub async fn with_options(&self, options: tenantry::TenancyOptions) -> Tenancy {
        let migrations = Migrations::new(Migrator::DEFAULT, notes()).unwrap();
        Tenancy::connect_with(self.pool.clone(), identification(), migrations, options)
            .await
            .unwrap()
    }

    /// The same catalog served by a build with `migrations`, as after an upgrade.
    pub async fn upgraded(&self, migrations: Migrations) -> Tenancy {
        let options = tenantry::TenancyOptions {
            pooler: if self.bouncer.is_some() {
                Pooler::Transaction
            } else {
                Pooler::None
            },
            ..tenantry::TenancyOptions::default()
        };
        Tenancy::connect_with(self.pool.clone(), identification(), migrations, options)
            .await
            .unwrap()
    }

    pub async fn create(&self, s: &str) {
        self.create_in(s, tenantry::IsolationMode::Schema).await;
    }

    pub async fn create_in(&self, s: &str, isolation: tenantry::IsolationMode) {
        self.tenancy
            .create_tenant(NewTenant::new(slug(s), isolation))
            .await
            .unwrap();
    }

    /// Creates each tenant with one note, its own name.
    pub async fn create_each_with_its_name(
        &self,
        tenants: impl IntoIterator<Item = (&str, tenantry::IsolationMode)>,
    ) {
        for (name, isolation) in tenants {
            self.create_in(name, isolation).await;
            add_note(&self.tenancy, name, name).await;
        }
    }

    /// Schemas in the database that look like tenant schemas.
    pub async fn schemas(&self) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' \
             AND nspname NOT IN ('public', 'information_schema', 'tenantry', 'tenantry_shared') \
             ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }
}

/// Where am I? The schema, tenant setting and notes the handler's transaction sees.
pub async fn whoami(tenant: Tenant, mut db: TenantDb) -> Json<Value> {
    let (schema, setting): (String, String) =
        sqlx::query_as("SELECT current_schema()::text, current_setting('app.tenant_id')")
            .fetch_one(db.postgres().unwrap())
            .await
            .unwrap();
    let notes: Vec<String> = sqlx::query_scalar("SELECT body FROM notes ORDER BY id")
        .fetch_all(db.postgres().unwrap())
        .await
        .unwrap();
    Json(json!({
        "slug": tenant.slug, "id": tenant.id.to_string(), "schema": schema,
        "setting": setting, "notes": notes,
    }))
}

pub async fn call(app: &Router, method: &str, host: &str, path: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, body)
}

/// The tenant's notes, read in its context (on any engine).
pub async fn note_bodies(tenancy: &Tenancy, tenant: &str) -> Vec<String> {
    tenancy
        .in_tenant(&slug(tenant), async |db| -> Result<Vec<(String,)>, Error> {
            Ok(db
                .query("SELECT body FROM notes ORDER BY id")
                .fetch_all()
                .await?)
        })
        .await
        .unwrap()
        .into_iter()
        .map(|(body,)| body)
        .collect()
}

/// Adds a note in the tenant's context (on any engine).
pub async fn add_note(tenancy: &Tenancy, tenant: &str, body: &str) {
    tenancy
        .in_tenant(&slug(tenant), async |db| -> Result<u64, Error> {
            Ok(db
                .query("INSERT INTO notes (body) VALUES ($1)")
                .bind(body)
                .execute()
                .await?)
        })
        .await
        .unwrap();
}

/// `set` with a second migration, version 2, running `sql`.
pub fn then(set: Migrator, sql: &'static str) -> Migrator {
    use sqlx::SqlSafeStr;
    let mut all: Vec<sqlx::migrate::Migration> = set.iter().cloned().collect();
    all.push(sqlx::migrate::Migration::new(
        2,
        "v2".into(),
        sqlx::migrate::MigrationType::Simple,
        sqlx::AssertSqlSafe(sql).into_sql_str(),
        false,
    ));
    Migrator::with_migrations(all)
}

/// The notes set with a second migration, version 2, running `sql`.
pub fn notes_then(sql: &'static str) -> Migrations {
    Migrations::new(Migrator::DEFAULT, then(notes(), sql)).unwrap()
}

/// Makes every later attempt to record a tenant's migration version in the catalog fail: a
/// failure injected after the tenant's own side of a create has committed.
pub async fn fail_catalog_records(pool: &PgPool) {
    sqlx::raw_sql(
        "CREATE FUNCTION tenantry.refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'injected catalog failure'; END $$; \
         CREATE TRIGGER refuse BEFORE UPDATE OF migration_version ON tenantry.tenants \
         FOR EACH ROW EXECUTE FUNCTION tenantry.refuse();",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// Sets a tenant's status.
pub async fn set_status(tenancy: &Tenancy, tenant: &str, status: tenantry::TenantStatus) {
    tenancy
        .update_tenant(
            &slug(tenant),
            tenantry::TenantUpdate {
                status: Some(status),
                ..tenantry::TenantUpdate::default()
            },
        )
        .await
        .unwrap();
}

/// Renames a tenant's slug.
pub async fn rename_slug(tenancy: &Tenancy, from: &str, to: &str) {
    tenancy
        .update_tenant(
            &slug(from),
            tenantry::TenantUpdate {
                slug: Some(slug(to)),
                ..tenantry::TenantUpdate::default()
            },
        )
        .await
        .unwrap();
}

/// A TCP relay on a free port to `target` that holds every chunk the server sends for
/// `delay`: a slow network, which keeps replies in flight long enough for a request to be
/// cancelled while it waits for one. Returns the relay's port; it runs until the test ends.
pub async fn slow_link(target: (String, u16), delay: std::time::Duration) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = server.into_split();
                let up = async move { tokio::io::copy(&mut from_client, &mut to_server).await };
                let down = async move {
                    let mut buffer = vec![0; 1 << 16];
                    loop {
                        let n = from_server.read(&mut buffer).await?;
                        if n == 0 {
                            return Ok::<_, std::io::Error>(());
                        }
                        tokio::time::sleep(delay).await;
                        to_client.write_all(&buffer[..n]).await?;
                    }
                };
                let _ = tokio::join!(up, down);
            });
        }
    });
    port
}

/// The notes set of a SQLite deployment.
pub fn sqlite_notes() -> Migrations {
    Migrations::new(Migrator::DEFAULT, Migrator::DEFAULT)
        .and_then(|m| m.with_sqlite(sqlx::migrate!("./tests/migrations/tenant-sqlite")))
        .unwrap()
}
