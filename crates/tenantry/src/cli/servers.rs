//! `servers ...`: the database servers tenants can be placed on.

use clap::Subcommand;

use super::{CliError, print_table};
use crate::db_server::{DbServerName, DbServerUrl};
use crate::tenancy::Tenancy;

/// `servers ...`: the database servers tenants can be placed on.
#[derive(Debug, Subcommand)]
pub enum ServersCommand {
    /// Register a server; `URL` names the database that will hold its tenants' schemas.
    Add {
        /// The server's name.
        name: DbServerName,
        /// Its PostgreSQL URL.
        url: String,
    },
    /// List servers (passwords hidden) with their tenant counts.
    List,
    /// Remove a server that holds no tenants.
    Remove {
        /// The server's name.
        name: DbServerName,
    },
    /// List the template databases this catalog made (database-mode tenants are copied from
    /// them), on its own server and every registered one.
    Templates,
    /// Drop those template databases, when the deployment is taken down; the next
    /// database-mode tenant builds its template again.
    DropTemplates {
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs a `servers` subcommand.
pub async fn servers(tenancy: &Tenancy, command: ServersCommand) -> Result<(), CliError> {
    match command {
        ServersCommand::Add { name, url } => {
            let url = DbServerUrl::parse(&url)?;
            tenancy.db_servers()?.add(&name, &url).await?;
            println!("added server '{name}' at {url}");
        }
        ServersCommand::List => {
            let servers = tenancy.db_servers()?.list().await?;
            let rows: Vec<Vec<String>> = servers
                .iter()
                .map(|s| vec![s.name.to_string(), s.url.to_string(), s.tenants.to_string()])
                .collect();
            print_table(&["NAME", "URL", "TENANTS"], &rows);
        }
        ServersCommand::Remove { name } => {
            tenancy.db_servers()?.remove(&name).await?;
            println!("removed server '{name}'");
        }
        ServersCommand::Templates => {
            print_table(
                &["SERVER", "TEMPLATE"],
                &template_rows(tenancy.templates().await?),
            );
        }
        ServersCommand::DropTemplates { yes: false } => {
            return Err(CliError::usage(
                "this drops every template database of this catalog; repeat with --yes",
            ));
        }
        ServersCommand::DropTemplates { yes: true } => {
            let dropped = tenancy.drop_templates().await?;
            println!("dropped {} template database(s)", dropped.len());
            print_table(&["SERVER", "TEMPLATE"], &template_rows(dropped));
        }
    }
    Ok(())
}

fn template_rows(templates: Vec<(Option<DbServerName>, String)>) -> Vec<Vec<String>> {
    templates
        .into_iter()
        .map(|(server, name)| vec![server.map_or_else(|| "-".into(), |s| s.to_string()), name])
        .collect()
}
