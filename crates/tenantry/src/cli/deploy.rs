//! `deploy ...`: routing files written from the catalog.

use std::path::PathBuf;
use std::process::Command;

use clap::Subcommand;

use super::CliError;
use crate::deploy::{NginxOptions, nginx};
use crate::tenancy::Tenancy;

/// `deploy ...`.
#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// Write the nginx configuration (upstreams and servers, for nginx's `http` block) that
    /// routes each running dedicated tenant's hosts to its own server and everything else to
    /// this app's server.
    Nginx {
        /// The file to write.
        #[arg(long)]
        output: PathBuf,
        /// The port nginx listens on.
        #[arg(long, default_value_t = 8080)]
        listen: u16,
        /// Then check the whole configuration with `nginx -t` and, if it passes, reload nginx.
        #[arg(long)]
        reload: bool,
    },
}

/// Runs a `deploy` subcommand; `shared` is the address this app's server listens on.
pub async fn deploy(
    tenancy: &Tenancy,
    command: DeployCommand,
    shared: &str,
) -> Result<(), CliError> {
    let DeployCommand::Nginx {
        output,
        listen,
        reload,
    } = command;
    let options = NginxOptions {
        listen,
        shared: shared.to_owned(),
    };
    let config = nginx(tenancy, &options).await?;
    std::fs::write(&output, config)
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", output.display())))?;
    println!("wrote {}", output.display());
    if reload {
        run(&["-t"])?;
        run(&["-s", "reload"])?;
        println!("nginx checked the configuration and reloaded it");
    }
    Ok(())
}

fn run(args: &[&str]) -> Result<(), CliError> {
    let output = Command::new("nginx")
        .args(args)
        .output()
        .map_err(|e| CliError::failed(format!("cannot run nginx: {e}")))?;
    if !output.status.success() {
        return Err(CliError::failed(format!(
            "nginx {} failed; nothing was reloaded:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(())
}
