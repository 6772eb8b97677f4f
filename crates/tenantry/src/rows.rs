//! A tenant's rows in any layout, as JSON: reading them, writing them elsewhere, counting and
//! deleting them. Moves, exports and imports are built on these.
//!
//! Every function runs on a connection of the owning role, in an open transaction whose
//! `search_path` is the layout's schema. Each also sets `app.tenant_id`, so Row-Level Security
//! lets an owner that is not a superuser see the tenant's rows, and each names the tenant in
//! its `WHERE` too. Table and column names come from the schema's own system catalogs, and
//! are quoted.

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

use crate::error::Error;
use crate::pooler;
use crate::slug::SchemaName;

/// The rows of one table, without their `tenant_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableRows {
    /// The table's name.
    pub table: String,
    /// One JSON object per row, keyed by column.
    pub rows: Vec<Row>,
}

/// One row as JSON, keyed by column.
type Row = serde_json::Map<String, serde_json::Value>;

/// Quotes a name read from the system catalogs as an SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Sets the transaction's tenant, as a tenant transaction's begin statement does.
pub(crate) async fn enter(conn: &mut PgConnection, tenant: Uuid) -> Result<(), Error> {
    pooler::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The tenant tables of `schema` (all but the ledger), every table after those it refers to.
pub(crate) async fn tables(
    conn: &mut PgConnection,
    schema: &SchemaName,
) -> Result<Vec<String>, Error> {
    let names: Vec<String> = pooler::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname <> 'tenantry_migrations' \
         ORDER BY 1",
    )
    .bind(schema.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let edges: Vec<(String, String)> = pooler::query_as(
        "SELECT c.relname::text, p.relname::text FROM pg_constraint k \
         JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE k.contype = 'f' AND n.nspname = $1 AND k.conrelid <> k.confrelid",
    )
    .bind(schema.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let mut ordered: Vec<String> = Vec::with_capacity(names.len());
    let mut left = names;
    while !left.is_empty() {
        let ready = left.iter().position(|t| {
            edges
                .iter()
                .filter(|(child, _)| child == t)
                .all(|(_, parent)| ordered.contains(parent) || !left.contains(parent))
        });
        match ready {
            Some(i) => ordered.push(left.remove(i)),
            None => {
                return Err(Error::Migration(format!(
                    "the tenant tables refer to each other in a cycle ({}); they cannot be \
                     copied table by table",
                    left.join(", ")
                )));
            }
        }
    }
    Ok(ordered)
}

/// Reads the tenant's rows of every table in `schema`, parents first.
pub(crate) async fn read(
    conn: &mut PgConnection,
    schema: &SchemaName,
    tenant: Uuid,
) -> Result<Vec<TableRows>, Error> {
    enter(conn, tenant).await?;
    let mut out = Vec::new();
    for table in tables(conn, schema).await? {
        let rows: Json<Vec<Row>> = pooler::query_scalar(AssertSqlSafe(format!(
            "SELECT coalesce(jsonb_agg(to_jsonb(t) - 'tenant_id'), '[]') \
                 FROM {}.{} t WHERE t.tenant_id = $1",
            schema.quoted(),
            quote(&table)
        )))
        .bind(tenant)
        .fetch_one(&mut *conn)
        .await?;
        out.push(TableRows {
            table,
            rows: rows.0,
        });
    }
    Ok(out)
}

/// Locks the tables of `schema` against writes until the transaction ends, waiting for the
/// writes already under way; reads go on.
pub(crate) async fn hold_writes(conn: &mut PgConnection, schema: &SchemaName) -> Result<(), Error> {
    let tables = tables(conn, schema).await?;
    if tables.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = tables
        .iter()
        .map(|t| format!("{}.{}", schema.quoted(), quote(t)))
        .collect();
    sqlx::raw_sql(AssertSqlSafe(format!(
        "LOCK TABLE {} IN SHARE MODE",
        list.join(", ")
    )))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Rows per statement when rows are written: about what a copy holds in memory at once.
const BATCH: usize = 2_000;

/// Writes `data` as the tenant's rows into `schema`, moves each sequence past the ids it
/// brought, then checks that every table holds exactly the rows given.
pub(crate) async fn write(
    conn: &mut PgConnection,
    schema: &SchemaName,
    tenant: Uuid,
    data: &[TableRows],
) -> Result<(), Error> {
    enter(conn, tenant).await?;
    let tables = tables(conn, schema).await?;
    if let Some(unknown) = data.iter().find(|d| !tables.contains(&d.table)) {
        return Err(Error::Invalid {
            field: "table",
            message: format!("'{}' is not a tenant table here", unknown.table),
        });
    }
    let mut expected = Vec::with_capacity(tables.len());
    for table in &tables {
        let rows = data
            .iter()
            .find(|d| &d.table == table)
            .map_or(&[][..], |d| &d.rows);
        for batch in rows.chunks(BATCH) {
            insert(conn, schema, table, tenant, batch.to_vec()).await?;
        }
        advance_sequences(conn, schema, table).await?;
        expected.push((table.clone(), rows.len()));
    }
    verify(conn, schema, tenant, &expected).await
}

/// Copies the tenant's rows of every table from schema `from_schema` on `from` into
/// `to_schema` on `to`, parents first, [`BATCH`] rows at a time: memory stays the same
/// whatever the tenant holds. Then moves each sequence past the ids it brought and checks
/// that every table holds as many rows as were read.
pub(crate) async fn copy(
    (from, from_schema): (&mut PgConnection, &SchemaName),
    (to, to_schema): (&mut PgConnection, &SchemaName),
    tenant: Uuid,
) -> Result<(), Error> {
    enter(from, tenant).await?;
    enter(to, tenant).await?;
    let targets = tables(to, to_schema).await?;
    let sources = tables(from, from_schema).await?;
    if let Some(unknown) = sources.iter().find(|t| !targets.contains(t)) {
        return Err(Error::Invalid {
            field: "table",
            message: format!("'{unknown}' is not a tenant table at the target"),
        });
    }
    let mut expected = Vec::with_capacity(targets.len());
    for table in &targets {
        let mut copied = 0;
        if sources.contains(table) {
            let sql = format!(
                "SELECT to_jsonb(t) - 'tenant_id' FROM {}.{} t WHERE t.tenant_id = $1",
                from_schema.quoted(),
                quote(table)
            );
            let mut rows = pooler::query_scalar::<Json<Row>>(AssertSqlSafe(sql))
                .bind(tenant)
                .fetch(&mut *from);
            let mut batch = Vec::with_capacity(BATCH);
            while let Some(Json(row)) = rows.try_next().await? {
                batch.push(row);
                if batch.len() == BATCH {
                    copied += batch.len();
                    insert(to, to_schema, table, tenant, std::mem::take(&mut batch)).await?;
                }
            }
            copied += batch.len();
            insert(to, to_schema, table, tenant, batch).await?;
        }
        advance_sequences(to, to_schema, table).await?;
        expected.push((table.clone(), copied));
    }
    verify(to, to_schema, tenant, &expected).await
}

/// Inserts `rows` into `table` of `schema` as the tenant's.
async fn insert(
    conn: &mut PgConnection,
    schema: &SchemaName,
    table: &str,
    tenant: Uuid,
    rows: Vec<Row>,
) -> Result<(), Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let rows: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|mut row| {
            row.insert("tenant_id".into(), tenant.to_string().into());
            serde_json::Value::Object(row)
        })
        .collect();
    let target = format!("{}.{}", schema.quoted(), quote(table));
    pooler::query(AssertSqlSafe(format!(
        "INSERT INTO {target} SELECT * FROM jsonb_populate_recordset(NULL::{target}, $1)"
    )))
    .bind(Json(rows))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Moves every sequence feeding a column of `table` past the column's highest value.
async fn advance_sequences(
    conn: &mut PgConnection,
    schema: &SchemaName,
    table: &str,
) -> Result<(), Error> {
    let serials: Vec<(String, String)> = pooler::query_as(
        "SELECT a.attname::text, pg_get_serial_sequence(format('%I.%I', $1, $2), a.attname) \
         FROM pg_attribute a WHERE a.attrelid = format('%I.%I', $1, $2)::regclass \
         AND a.attnum > 0 AND NOT a.attisdropped \
         AND pg_get_serial_sequence(format('%I.%I', $1, $2), a.attname) IS NOT NULL",
    )
    .bind(schema.as_str())
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    for (column, sequence) in serials {
        pooler::query(AssertSqlSafe(format!(
            "SELECT setval($1::regclass, greatest( \
                 (SELECT max({column}) FROM {schema}.{table}), \
                 (SELECT last_value FROM {sequence}))) ",
            column = quote(&column),
            schema = schema.quoted(),
            table = quote(table),
        )))
        .bind(&sequence)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Fails unless each table holds the given number of the tenant's rows.
pub(crate) async fn verify(
    conn: &mut PgConnection,
    schema: &SchemaName,
    tenant: Uuid,
    expected: &[(String, usize)],
) -> Result<(), Error> {
    for (table, want) in expected {
        let have: i64 = pooler::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {}.{} WHERE tenant_id = $1",
            schema.quoted(),
            quote(table)
        )))
        .bind(tenant)
        .fetch_one(&mut *conn)
        .await?;
        if usize::try_from(have).ok() != Some(*want) {
            return Err(Error::Incomplete(format!(
                "table {table} holds {have} of the tenant's rows after the copy, not {want}"
            )));
        }
    }
    Ok(())
}

/// Deletes the tenant's rows from every table of `schema`, children first.
pub(crate) async fn delete(
    conn: &mut PgConnection,
    schema: &SchemaName,
    tenant: Uuid,
) -> Result<(), Error> {
    enter(conn, tenant).await?;
    for table in tables(conn, schema).await?.iter().rev() {
        pooler::query(AssertSqlSafe(format!(
            "DELETE FROM {}.{} WHERE tenant_id = $1",
            schema.quoted(),
            quote(table)
        )))
        .bind(tenant)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
