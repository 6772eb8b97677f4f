//! `sql`: operator-supplied SQL in each tenant's context.

use futures::TryStreamExt;
use futures::stream::BoxStream;
use sqlx::{AssertSqlSafe, Column, Either, Row, ValueRef};

use super::{CliError, count, print_table};
use crate::error::Error;
use crate::slug::Slug;
use crate::tenancy::Tenancy;

/// Runs operator-supplied SQL in each tenant's context (committing), printing per tenant a
/// table per statement. A tenant's failure is reported and the others still run.
pub async fn sql(tenancy: &Tenancy, tenants: &[Slug], statement: &str) -> Result<(), CliError> {
    let mut failed = 0;
    for slug in tenants {
        println!("== {slug} ==");
        // The SQL is the operator's own, given on the command line as to psql; it never
        // comes from a request.
        let statement = AssertSqlSafe(statement.to_owned());
        let result = tenancy
            .in_tenant(slug, async |db| -> Result<_, Error> {
                if let Some(conn) = db.postgres() {
                    let results = sqlx::raw_sql(statement).fetch_many(conn);
                    // Simple-protocol results arrive as text.
                    let text = |row: &sqlx::postgres::PgRow, i| {
                        row.try_get_raw(i).ok().and_then(|v| match v.is_null() {
                            true => Some("NULL".to_owned()),
                            false => v.as_str().ok().map(str::to_owned),
                        })
                    };
                    return Ok(blocks(results, |done| done.rows_affected(), text).await?);
                }
                #[cfg(feature = "sqlite")]
                if let Some(conn) = db.sqlite() {
                    let results = sqlx::raw_sql(statement).fetch_many(conn);
                    let changed = |done: &sqlx::sqlite::SqliteQueryResult| done.rows_affected();
                    return Ok(blocks(results, changed, sqlite_cell).await?);
                }
                Err(Error::Invalid {
                    field: "tenant",
                    message: "its database engine is not supported by this command".into(),
                })
            })
            .await;
        match result {
            Ok(blocks) => blocks.iter().for_each(Block::print),
            Err(error) => {
                failed += 1;
                println!("ERROR: {error}");
            }
        }
        println!();
    }
    match failed {
        0 => Ok(()),
        n => Err(CliError::failed(format!(
            "the statement failed in {n} tenant(s)"
        ))),
    }
}

/// One statement's result: its column names, each row's cells as text, and how many rows
/// it changed.
struct Block {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    changed: u64,
}

impl Block {
    fn print(&self) {
        if self.rows.is_empty() {
            match self.changed {
                0 => println!("(0 rows)"),
                n => println!("({} changed)", rows(n as usize)),
            }
            return;
        }
        let header: Vec<&str> = self.header.iter().map(String::as_str).collect();
        print_table(&header, &self.rows);
        println!("({})", rows(self.rows.len()));
    }
}

/// `n` rows, in words.
fn rows(n: usize) -> String {
    count(n, "row", "rows")
}

/// Each statement's [`Block`] from `results` (a statement's rows, then its result), with
/// `changed` reading a result and `cell` a row's cell (`?` where it cannot show one).
async fn blocks<R: Row, D>(
    mut results: BoxStream<'_, Result<Either<D, R>, sqlx::Error>>,
    changed: impl Fn(&D) -> u64,
    cell: impl Fn(&R, usize) -> Option<String>,
) -> Result<Vec<Block>, sqlx::Error> {
    let (mut blocks, mut rows) = (Vec::new(), Vec::new());
    while let Some(result) = results.try_next().await? {
        match result {
            Either::Right(row) => rows.push(row),
            Either::Left(done) => {
                let header = rows.first().map_or_else(Vec::new, |row: &R| {
                    row.columns().iter().map(|c| c.name().to_owned()).collect()
                });
                let cells = rows
                    .drain(..)
                    .map(|row| {
                        (0..header.len())
                            .map(|i| cell(&row, i).unwrap_or_else(|| "?".to_owned()))
                            .collect()
                    })
                    .collect();
                let changed = changed(&done);
                blocks.push(Block {
                    header,
                    rows: cells,
                    changed,
                });
            }
        }
    }
    Ok(blocks)
}

/// A SQLite value as text: SQLite values carry their own type, whatever the column says.
#[cfg(feature = "sqlite")]
fn sqlite_cell(row: &sqlx::sqlite::SqliteRow, i: usize) -> Option<String> {
    if row.try_get_raw(i).ok()?.is_null() {
        return Some("NULL".to_owned());
    }
    row.try_get::<i64, _>(i)
        .map(|v| v.to_string())
        .or_else(|_| row.try_get::<f64, _>(i).map(|v| v.to_string()))
        .or_else(|_| row.try_get::<String, _>(i))
        .or_else(|_| {
            row.try_get::<Vec<u8>, _>(i)
                .map(|v| format!("\\x{}", hex::encode(v)))
        })
        .ok()
}
