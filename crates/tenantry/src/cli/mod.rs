//! Command-line building blocks any tenantry app can mount in its own clap CLI, one file per
//! command group: `migrate`, `tenants ...`, `servers ...` and `sql` in each tenant; here the
//! error type, the `--tenant`/`--all-tenants` targets and table printing.

mod deploy;
mod jobs;
mod migrate;
mod platform;
mod servers;
mod sql;
mod tenants;

use clap::Args;

use crate::error::Error;
use crate::slug::Slug;
use crate::tenancy::Tenancy;

pub use deploy::{DeployCommand, DeploySite, deploy};
pub use jobs::{JobsCommand, jobs};
pub use migrate::{MigrateArgs, check_shared, migrate_shared, migrate_tenants};
pub use platform::{OperatorsCommand, audit, operators, parse_since};
pub use servers::{ServersCommand, servers};
pub use sql::sql;
pub use tenants::{DomainsCommand, TenantsCommand, tenants};

/// A failed command: the message for standard error and the process exit code.
#[derive(Debug)]
pub struct CliError {
    /// The process's exit code.
    pub code: u8,
    /// What went wrong and what to do, for standard error.
    pub message: String,
}

impl CliError {
    /// A failure with exit code 1.
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: message.into(),
        }
    }

    /// Invalid input, exit code 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }
}

impl From<Error> for CliError {
    fn from(error: Error) -> Self {
        Self {
            code: error.exit_code(),
            message: error.to_string(),
        }
    }
}

impl From<sqlx::Error> for CliError {
    fn from(error: sqlx::Error) -> Self {
        Error::from(error).into()
    }
}

/// `n` things in words: `1 row`, `2 rows`.
pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    match n {
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    }
}

pub(crate) fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// The `--tenant SLUG` / `--all-tenants` flags of commands that act inside tenants. They
/// are accepted before or after the command but hidden from every command's help, since
/// most commands refuse them: mention them in the help of those that take them.
#[derive(Debug, Args)]
pub struct TenantTargets {
    /// Run the command in this tenant's context.
    #[arg(long, global = true, hide = true)]
    pub tenant: Option<Slug>,
    /// Run the command in every tenant's context, one after another.
    #[arg(long, global = true, hide = true, conflicts_with = "tenant")]
    pub all_tenants: bool,
}

impl TenantTargets {
    /// The tenants named, checked against the catalog; an error if none was named.
    pub async fn resolve(&self, tenancy: &Tenancy) -> Result<Vec<Slug>, CliError> {
        match (&self.tenant, self.all_tenants) {
            (Some(slug), _) => {
                tenancy.catalog().details(slug).await?;
                Ok(vec![slug.clone()])
            }
            (None, true) => Ok(tenancy
                .catalog()
                .list()
                .await?
                .into_iter()
                .map(|d| d.tenant.slug)
                .collect()),
            (None, false) => Err(CliError::usage(
                "this command runs inside tenants: give --tenant SLUG or --all-tenants",
            )),
        }
    }
}
