//! The template database that database-mode tenants are created from, kept at the newest
//! tenant migration: creating a tenant is then one `CREATE DATABASE ... TEMPLATE`.
//!
//! A template is named after the catalog it serves (one server may serve several catalogs)
//! and the fingerprint of the migration set it holds, so a stale one is never used. It is built under a temporary name and published by renaming, so a half-built
//! one is never used either. It refuses connections, as `CREATE DATABASE` requires of a
//! template, and older templates are dropped once a newer one is published.

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, PgPool};

use sha2::{Digest, Sha256};

use crate::error::{DUPLICATE_DATABASE, Error, sqlstate};
use crate::migrate::{Migrations, migrate_new_schema};
use crate::pooler;
use crate::role::AppRole;
use crate::slug::SchemaName;

/// The start of the names of one catalog's templates: only hex digits follow `tenantry_`.
pub(crate) fn family(catalog: &PgConnectOptions) -> String {
    let identity = format!(
        "{}:{}/{}",
        catalog.get_host(),
        catalog.get_port(),
        catalog.get_database().unwrap_or_default()
    );
    let digest = hex::encode(Sha256::digest(identity.as_bytes()));
    format!("tenantry_template_{}_", &digest[..8])
}

/// Makes sure the server has `catalog`'s template for `migrations` and returns its name.
pub(crate) async fn ensure_template(
    server: &PgPool,
    catalog: &PgConnectOptions,
    migrations: &Migrations,
    role: &AppRole,
) -> Result<String, Error> {
    let family = family(catalog);
    let name = format!("{family}{}", &migrations.tenant_fingerprint()[..16]);
    if exists(server, &name).await? {
        return Ok(name);
    }
    let building = format!("tenantry_building_{}", uuid::Uuid::new_v4().simple());
    server
        .execute(AssertSqlSafe(format!(
            "CREATE DATABASE \"{building}\" TEMPLATE template0"
        )))
        .await?;
    let options = server
        .connect_options()
        .as_ref()
        .clone()
        .database(&building);
    role.ensure(server).await?;
    let build = Build { migrations, role };
    match build_and_publish(server, options, build, &building, &name).await {
        Ok(()) => {}
        Err(error) => {
            drop_database(server, &building).await?;
            return Err(error);
        }
    }
    drop_older_templates(server, &family, &name).await?;
    Ok(name)
}

async fn exists(server: &PgPool, name: &str) -> Result<bool, Error> {
    Ok(
        pooler::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(pooler::Pinned(server))
            .await?,
    )
}

/// What a template is built with.
struct Build<'a> {
    migrations: &'a Migrations,
    role: &'a AppRole,
}

async fn build_and_publish(
    server: &PgPool,
    options: PgConnectOptions,
    build: Build<'_>,
    building: &str,
    name: &str,
) -> Result<(), Error> {
    let mut conn = PgConnection::connect_with(&options).await?;
    let mut tx = conn.begin().await?;
    let schema = SchemaName::own_database().quoted();
    tx.execute(AssertSqlSafe(format!(
        "CREATE SCHEMA {schema}; SET LOCAL search_path TO {schema}"
    )))
    .await?;
    migrate_new_schema(
        &mut tx,
        &SchemaName::own_database(),
        build.migrations,
        build.role,
    )
    .await?;
    tx.commit().await?;
    conn.close().await?;
    server
        .execute(AssertSqlSafe(format!(
            "ALTER DATABASE \"{building}\" WITH ALLOW_CONNECTIONS false"
        )))
        .await?;
    // The server may take a moment to let go of the connection just closed, and a pooler
    // keeps its own session to the database open: nobody else uses it, so it is ended.
    let mut attempts = 0;
    loop {
        pooler::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(building)
        .execute(pooler::Pinned(server))
        .await?;
        let renamed = server
            .execute(AssertSqlSafe(format!(
                "ALTER DATABASE \"{building}\" RENAME TO \"{name}\""
            )))
            .await;
        match renamed {
            Ok(_) => break,
            // Another process published the same template first: use theirs.
            Err(e) if sqlstate(&e).as_deref() == Some(DUPLICATE_DATABASE) => {
                drop_database(server, building).await?;
                return Ok(());
            }
            Err(_) if attempts < 100 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    server
        .execute(AssertSqlSafe(format!(
            "ALTER DATABASE \"{name}\" WITH IS_TEMPLATE true"
        )))
        .await?;
    Ok(())
}

async fn drop_older_templates(server: &PgPool, family: &str, current: &str) -> Result<(), Error> {
    for name in in_family(server, family).await? {
        if name != current {
            drop_template(server, &name).await?;
        }
    }
    Ok(())
}

/// The template databases `catalog` made on `server` (not one still being built, which has
/// a temporary name).
pub(crate) async fn templates_of(
    server: &PgPool,
    catalog: &PgConnectOptions,
) -> Result<Vec<String>, Error> {
    in_family(server, &family(catalog)).await
}

async fn in_family(server: &PgPool, family: &str) -> Result<Vec<String>, Error> {
    Ok(pooler::query_scalar(
        "SELECT datname::text FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1",
    )
    .bind(family)
    .fetch_all(pooler::Pinned(server))
    .await?)
}

/// Drops a template database; the next database-mode tenant builds one again.
pub(crate) async fn drop_template(server: &PgPool, name: &str) -> Result<(), Error> {
    // The name was read from pg_database and matched our prefix; it is quoted anyway.
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    server
        .execute(AssertSqlSafe(format!(
            "ALTER DATABASE {quoted} WITH IS_TEMPLATE false"
        )))
        .await?;
    drop_database(server, name).await
}

/// Drops a database, closing whatever connections it still has.
pub(crate) async fn drop_database(server: &PgPool, name: &str) -> Result<(), Error> {
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    server
        .execute(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"
        )))
        .await?;
    Ok(())
}
