//! `operators` (the console's) and `audit` (the log of changes made through the console and
//! the platform API).

use chrono::{DateTime, NaiveDate, Utc};
use clap::Subcommand;

use super::CliError;
use super::print_table;
use crate::catalog::AuditFilter;
use crate::tenancy::Tenancy;

/// `operators`: who may log in to the console.
#[derive(Debug, Subcommand)]
pub enum OperatorsCommand {
    /// Add an operator; the password is read from standard input.
    Create {
        /// Their name: a lower-case letter, then lower-case letters, digits and `._-`.
        name: String,
        /// Read the password from the first line of standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List the operators.
    List,
    /// Remove an operator, ending their sessions.
    Delete {
        /// Their name.
        name: String,
    },
}

/// Runs an `operators` command; `password` reads the new operator's password and `hash`
/// hashes it (the app's password hashing).
pub async fn operators(
    tenancy: &Tenancy,
    command: OperatorsCommand,
    password: impl FnOnce() -> Result<String, CliError>,
    hash: impl FnOnce(&str) -> String,
) -> Result<(), CliError> {
    let catalog = tenancy.catalog();
    match command {
        OperatorsCommand::Create { name, .. } => {
            crate::catalog::check_operator_name(&name)?;
            let hashed = hash(&password()?);
            catalog.create_operator(&name, &hashed).await?;
            catalog
                .audit("cli", "operator.create", Some(&name), "ok")
                .await?;
            println!("created operator '{name}'");
        }
        OperatorsCommand::List => {
            let rows: Vec<Vec<String>> = catalog
                .operators()
                .await?
                .into_iter()
                .map(|o| vec![o.name, o.created_at.format("%Y-%m-%d %H:%M").to_string()])
                .collect();
            print_table(&["NAME", "CREATED"], &rows);
        }
        OperatorsCommand::Delete { name } => {
            catalog.delete_operator(&name).await?;
            catalog
                .audit("cli", "operator.delete", Some(&name), "ok")
                .await?;
            println!("deleted operator '{name}'");
        }
    }
    Ok(())
}

/// A `--since` value: an RFC 3339 time or a date (its midnight, UTC).
pub fn parse_since(value: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(value) {
        return Ok(time.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map(|date| date.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        .map_err(|_| {
            format!(
                "'{value}' is not a date (2026-12-01) or an RFC 3339 time (2026-12-01T09:30:00Z)"
            )
        })
}

/// `audit`: the newest `limit` entries about `tenant` (all when absent) since `since`.
pub async fn audit(
    tenancy: &Tenancy,
    tenant: Option<String>,
    since: Option<DateTime<Utc>>,
    limit: u32,
) -> Result<(), CliError> {
    let filter = AuditFilter {
        target: tenant,
        since,
        limit,
    };
    let rows: Vec<Vec<String>> = tenancy
        .catalog()
        .audit_log(&filter)
        .await?
        .into_iter()
        .map(|e| {
            vec![
                e.at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                e.actor,
                e.action,
                e.target.unwrap_or_else(|| "-".into()),
                e.outcome,
            ]
        })
        .collect();
    print_table(&["AT", "ACTOR", "ACTION", "TARGET", "OUTCOME"], &rows);
    Ok(())
}
