//! `deploy ...`: deployment files written from the catalog.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{Args, Subcommand};

use super::CliError;
use crate::deploy::{
    CaddyOptions, ComposeOptions, Files, KUBERNETES_VERSION, KubernetesOptions, NginxOptions,
    caddyfile, compose, kubernetes, nginx,
};
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
        /// The app server (`host:port`) everything else goes to; by default the address
        /// `serve` listens on as BIND says.
        #[arg(long, value_name = "HOST:PORT")]
        upstream: Option<String>,
        /// Then check the whole configuration with `nginx -t` and, if it passes, reload nginx.
        #[arg(long)]
        reload: bool,
    },
    /// Write a Caddyfile that puts Caddy in front of this app with a TLS certificate issued
    /// on demand for each name the app confirms: the base domain, `www`, the named sites and
    /// the verified custom domains of active tenants.
    Caddy(CaddyArgs),
    /// Write a Docker Compose project: per dedicated tenant its app, its PostgreSQL and its
    /// one-shot migration, with its credentials in an env file of its own; the shared
    /// server and its database; nginx in front. Run it with `docker compose up -d` in DIR.
    Compose {
        /// The folder to write (passwords already there are kept).
        #[arg(long, value_name = "DIR")]
        output: PathBuf,
        /// The source tree the image is built from.
        #[arg(long, default_value = ".")]
        context: PathBuf,
        /// The host port nginx publishes.
        #[arg(long, default_value_t = 8080)]
        listen: u16,
    },
    /// Write Kubernetes manifests: per dedicated tenant a namespace with its server, Secret,
    /// Ingress, migration Job, NetworkPolicy and ResourceQuota; the shared server for
    /// everything else. Sets each tenant role's password to its Secret's. Apply with
    /// `kubectl apply -R -f DIR`.
    Kubernetes {
        /// The folder to write (passwords already there are kept).
        #[arg(long, value_name = "DIR")]
        output: PathBuf,
        /// The app's image.
        #[arg(long)]
        image: String,
        /// The IngressClass of the ingress controller.
        #[arg(long, default_value = "nginx")]
        ingress_class: String,
        /// The ingress controller's namespace, the only one let in to tenant servers.
        #[arg(long, default_value = "ingress-nginx")]
        ingress_namespace: String,
        /// The database servers' `host:port` as the cluster reaches them, when it differs.
        #[arg(long)]
        database_address: Option<String>,
        /// Write a loopback database address or a `.localhost` base domain, which are
        /// refused otherwise: no cluster but one on this machine reaches them.
        #[arg(long)]
        allow_local: bool,
    },
}

/// `deploy caddy`'s options.
#[derive(Debug, Args)]
pub struct CaddyArgs {
    /// The file to write.
    #[arg(long)]
    output: PathBuf,
    /// The app server (`host:port`) requests go to; by default the address `serve` listens
    /// on as BIND says.
    #[arg(long, value_name = "HOST:PORT")]
    upstream: Option<String>,
    /// The loopback port on which Caddy asks the app whether a name may have a certificate.
    #[arg(long, default_value_t = 5555)]
    ask_port: u16,
    /// Issue certificates from Caddy's own CA (`local_certs`) instead of a public CA: for
    /// tests and internal networks whose clients trust its root.
    #[arg(long)]
    internal_ca: bool,
    /// The email the public CA sends notices to.
    #[arg(long)]
    email: Option<String>,
    /// Caddy's HTTP port, when not 80.
    #[arg(long)]
    http_port: Option<u16>,
    /// Caddy's HTTPS port, when not 443.
    #[arg(long)]
    https_port: Option<u16>,
    /// Caddy's admin endpoint (`HOST:PORT`, or `off`); Caddy's default when not given.
    #[arg(long)]
    admin: Option<String>,
}

/// Where the app runs, as `deploy` needs it.
#[derive(Debug, Clone, Copy)]
pub struct DeploySite<'a> {
    /// The address this app's server listens on.
    pub bind: &'a str,
    /// Where `bind` came from, as the output names it (`"BIND"`, `"the default"`).
    pub bind_from: &'a str,
    /// The catalog's database URL, written once to the shared server's Secret.
    pub database_url: Option<&'a str>,
}

/// Runs a `deploy` subcommand.
pub async fn deploy(
    tenancy: &Tenancy,
    command: DeployCommand,
    site: DeploySite<'_>,
) -> Result<(), CliError> {
    match command {
        DeployCommand::Nginx {
            output,
            listen,
            upstream,
            reload,
        } => {
            let (shared, from) = match upstream {
                Some(upstream) => {
                    host_and_port("--upstream", &upstream)?;
                    (upstream, "--upstream")
                }
                None => (reachable(site.bind), site.bind_from),
            };
            let options = NginxOptions { listen, shared };
            write_nginx(tenancy, &options, &output, from).await?;
            if reload {
                run(&["-t"])?;
                run(&["-s", "reload"])?;
                println!("nginx checked the configuration and reloaded it");
            }
        }
        DeployCommand::Caddy(args) => write_caddy(tenancy, args, site)?,
        DeployCommand::Compose {
            output,
            context,
            listen,
        } => {
            let options = ComposeOptions {
                context,
                listen,
                ..ComposeOptions::new(output.clone(), &binary()?)
            };
            write(&compose(tenancy, &options).await?, &output)?;
        }
        DeployCommand::Kubernetes {
            output,
            image,
            ingress_class,
            ingress_namespace,
            database_address,
            allow_local,
        } => {
            let shared_database_url = site
                .database_url
                .ok_or_else(|| CliError::usage("Kubernetes manifests need DATABASE_URL"))?
                .to_owned();
            for (option, value) in [
                ("--ingress-class", &ingress_class),
                ("--ingress-namespace", &ingress_namespace),
            ] {
                dns_label(option, value)?;
            }
            if let Some(address) = &database_address {
                host_and_port("--database-address", address)?;
            }
            if image.is_empty() || image.contains(char::is_whitespace) {
                return Err(CliError::usage("--image: an image reference has no spaces"));
            }
            let options = KubernetesOptions {
                output: output.clone(),
                image,
                ingress_class,
                ingress_namespace,
                database_address,
                shared_database_url,
                allow_local,
            };
            write(&kubernetes(tenancy, &options).await?, &output)?;
            println!("for Kubernetes {KUBERNETES_VERSION}");
        }
    }
    Ok(())
}

/// `deploy caddy`: checks the options, then writes the Caddyfile.
fn write_caddy(tenancy: &Tenancy, args: CaddyArgs, site: DeploySite<'_>) -> Result<(), CliError> {
    let upstream = match args.upstream {
        Some(upstream) => {
            host_and_port("--upstream", &upstream)?;
            upstream
        }
        None => reachable(site.bind),
    };
    let unsafe_text = |c: char| c.is_whitespace() || "{}\"#".contains(c);
    if let Some(email) = args
        .email
        .as_deref()
        .filter(|e| !e.contains('@') || e.contains(unsafe_text))
    {
        return Err(CliError::usage(format!(
            "--email '{email}' is not an email address"
        )));
    }
    if let Some(admin) = args.admin.as_deref().filter(|a| *a != "off") {
        host_and_port("--admin", admin)?;
    }
    let options = CaddyOptions {
        upstream,
        ask_port: args.ask_port,
        internal_ca: args.internal_ca,
        email: args.email,
        http_port: args.http_port,
        https_port: args.https_port,
        admin: args.admin,
    };
    let output = &args.output;
    std::fs::write(output, caddyfile(tenancy, &options))
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", output.display())))?;
    println!(
        "wrote {}: Caddy in front of {}, with certificates on demand",
        output.display(),
        options.upstream
    );
    Ok(())
}

/// Refuses what Kubernetes would refuse as a name: a DNS label (RFC 1123).
fn dns_label(option: &str, value: &str) -> Result<(), CliError> {
    let valid = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    match valid {
        true => Ok(()),
        false => Err(CliError::usage(format!(
            "{option} '{value}' is not a DNS label (lower-case letters, digits and '-', at \
             most 63)"
        ))),
    }
}

/// Writes the nginx configuration to `output`, saying where everything else goes and where
/// that address came `from`.
async fn write_nginx(
    tenancy: &Tenancy,
    options: &NginxOptions,
    output: &Path,
    from: &str,
) -> Result<(), CliError> {
    let config = nginx(tenancy, options).await?;
    std::fs::write(output, config)
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", output.display())))?;
    println!(
        "wrote {}: every host but a running dedicated tenant's goes to {} ({from})",
        output.display(),
        options.shared
    );
    Ok(())
}

/// Where a server listening on `bind` is reached from this machine: a wildcard address
/// (`0.0.0.0`, `[::]`) is not one to connect to, its loopback is.
fn reachable(bind: &str) -> String {
    match bind.rsplit_once(':') {
        Some(("0.0.0.0", port)) => format!("127.0.0.1:{port}"),
        Some(("[::]", port)) => format!("[::1]:{port}"),
        _ => bind.to_owned(),
    }
}

/// Refuses an `option` value that is not `host:port`.
fn host_and_port(option: &str, address: &str) -> Result<(), CliError> {
    let valid = address.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && port.parse::<u16>().is_ok_and(|p| p > 0)
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
    });
    match valid {
        true => Ok(()),
        false => Err(CliError::usage(format!(
            "{option} '{address}' is not host:port"
        ))),
    }
}

/// This program's name: the binary the images run.
fn binary() -> Result<String, CliError> {
    std::env::current_exe()
        .ok()
        .and_then(|path| Some(path.file_stem()?.to_string_lossy().into_owned()))
        .ok_or_else(|| CliError::failed("cannot tell this program's name"))
}

fn write(files: &Files, dir: &Path) -> Result<(), CliError> {
    let done = files.write(dir)?;
    let list = |paths: &[PathBuf]| {
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "{}: {} written, {} unchanged, {} removed",
        dir.display(),
        done.written.len(),
        done.unchanged.len(),
        done.removed.len()
    );
    for (what, paths) in [("written", &done.written), ("removed", &done.removed)] {
        if !paths.is_empty() {
            println!("  {what}: {}", list(paths));
        }
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
