//! `sql`: operator-supplied SQL in each tenant's context.

use sqlx::{AssertSqlSafe, Column, Row, ValueRef};

use super::{CliError, print_table};
use crate::error::Error;
use crate::slug::Slug;
use crate::tenancy::Tenancy;

/// Runs operator-supplied SQL in each tenant's context (committing), printing one result
/// block per tenant. A tenant's failure is reported and the others still run.
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
                    let rows = sqlx::raw_sql(statement).fetch_all(conn).await?;
                    // Simple-protocol results arrive as text.
                    return Ok(cells(&rows, |row, i| {
                        row.try_get_raw(i).ok().and_then(|v| match v.is_null() {
                            true => Some("NULL".to_owned()),
                            false => v.as_str().ok().map(str::to_owned),
                        })
                    }));
                }
                #[cfg(feature = "sqlite")]
                if let Some(conn) = db.sqlite() {
                    let rows = sqlx::raw_sql(statement).fetch_all(conn).await?;
                    return Ok(cells(&rows, sqlite_cell));
                }
                Err(Error::Invalid {
                    field: "tenant",
                    message: "its database engine is not supported by this command".into(),
                })
            })
            .await;
        match result {
            Ok((header, rows)) => print_rows(&header, &rows),
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

/// The column names and each row's cells as text, `?` where `cell` cannot show one.
fn cells<R: Row>(
    rows: &[R],
    cell: impl Fn(&R, usize) -> Option<String>,
) -> (Vec<String>, Vec<Vec<String>>) {
    let Some(first) = rows.first() else {
        return (Vec::new(), Vec::new());
    };
    let header: Vec<String> = first
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let cells = rows
        .iter()
        .map(|row| {
            (0..header.len())
                .map(|i| cell(row, i).unwrap_or_else(|| "?".to_owned()))
                .collect()
        })
        .collect();
    (header, cells)
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

fn print_rows(header: &[String], rows: &[Vec<String>]) {
    if rows.is_empty() {
        println!("(0 rows)");
        return;
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    print_table(&header, rows);
    println!("({} rows)", rows.len());
}
