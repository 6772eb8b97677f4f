//! Shared set-up for tenantry's integration tests: a fresh database with the catalog and a
//! `notes` tenant table.
#![allow(dead_code)]

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tenantry::testing::TestDatabase;
use tenantry::{HostName, Identification, Migrations, NewTenant, Slug, Tenancy};

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
}

/// A migrated catalog on a new database, with a pool of `size` connections.
pub async fn setup(size: u32) -> Setup {
    let db = TestDatabase::create().await;
    let pool = db.pool(size).await;
    let migrations = Migrations::new(Migrator::DEFAULT, notes()).unwrap();
    tenantry::migrate_shared(&pool, &migrations).await.unwrap();
    let tenancy = Tenancy::connect(pool.clone(), identification(), migrations)
        .await
        .unwrap();
    Setup { db, pool, tenancy }
}

impl Setup {
    pub async fn create(&self, s: &str) {
        self.tenancy
            .create_tenant(NewTenant {
                slug: slug(s),
                name: None,
                domains: vec![],
                server: None,
            })
            .await
            .unwrap();
    }

    /// Schemas in the database that look like tenant schemas.
    pub async fn schemas(&self) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' \
             AND nspname NOT IN ('public', 'information_schema', 'tenantry') ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }
}
