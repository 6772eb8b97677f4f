//! `tenants ...`: the tenant lifecycle.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use clap::Subcommand;

use super::{CliError, count, print_table};
use crate::catalog::TenantDetails;
use crate::db_server::DbServerName;
use crate::dedicated::{Instance, host_name, serves};
use crate::dns::DnsResolver;
use crate::host::HostName;
use crate::lifecycle::{DomainCheck, MoveTarget, NewTenant, TenantExport, TenantUpdate};
use crate::slug::Slug;
use crate::tenancy::Tenancy;
use crate::tenant::{IsolationMode, Tenant, TenantStatus};

/// `tenants ...`: the tenant lifecycle.
#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant: its schema, its tables and its primary domain, all or nothing.
    Create {
        /// The tenant's slug (its subdomain, and its schema's name).
        slug: Slug,
        /// Display name (defaults to the slug).
        #[arg(long)]
        name: Option<String>,
        /// An extra domain (custom domain); repeat for several.
        #[arg(long = "domain")]
        domains: Vec<String>,
        /// Place the tenant on this registered server (see `servers add`).
        #[arg(long)]
        server: Option<DbServerName>,
        /// `shared` (rows beside other tenants' in shared tables, kept apart by Row-Level
        /// Security), `schema` (a schema of its own in a shared database), `database` (a
        /// database of its own) or `dedicated` (a database, role and app server of its own);
        /// the configured default when absent.
        #[arg(long)]
        isolation: Option<IsolationMode>,
    },
    /// List tenants with status, migration version and domains.
    List {
        /// List the pending tenants instead: built ahead for signups, not yet taken.
        #[arg(long)]
        pending: bool,
    },
    /// Show one tenant.
    Show {
        /// The tenant's slug.
        slug: Slug,
    },
    /// Add or remove a tenant's domains.
    Domains {
        /// What to do with them.
        #[command(subcommand)]
        command: DomainsCommand,
    },
    /// Change the display name, or the slug (which renames the schema and primary domain).
    Rename {
        /// The tenant's slug.
        slug: Slug,
        #[arg(long)]
        /// A new display name.
        name: Option<String>,
        #[arg(long = "slug")]
        /// A new slug: renames its schema or file and its primary domain.
        new_slug: Option<Slug>,
    },
    /// Show the tenant's settings (branding and the app's), or change them.
    Settings {
        /// The tenant's slug.
        slug: Slug,
        /// Set a setting: KEY=VALUE, the value as JSON (`true`, `3`) or else as text
        /// (`#336699`); repeat for several.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Reset a setting to its default; repeat for several.
        #[arg(long = "reset", value_name = "KEY")]
        reset: Vec<String>,
    },
    /// Refuse the tenant's requests with 403, keeping its data.
    Suspend {
        /// The tenant's slug.
        slug: Slug,
    },
    /// Serve a suspended tenant again.
    Resume {
        /// The tenant's slug.
        slug: Slug,
    },
    /// Move the tenant to another isolation mode or server, copying its rows. Reads go on
    /// during the move; writes get 503 until it is done. A move whose process died is
    /// finished with --resume or undone with --abort (`tenants show` reports it).
    Move {
        /// The tenant's slug.
        slug: Slug,
        /// `shared`, `schema`, `database` or `dedicated`.
        #[arg(long, required_unless_present_any = ["resume", "abort"])]
        to: Option<IsolationMode>,
        /// A registered server for schema or database isolation.
        #[arg(long, requires = "to")]
        server: Option<DbServerName>,
        /// Finish an interrupted move.
        #[arg(long, conflicts_with_all = ["to", "abort"])]
        resume: bool,
        /// Undo an interrupted move, dropping only what it built (once the catalog has
        /// switched, it can only be finished).
        #[arg(long, conflicts_with = "to")]
        abort: bool,
    },
    /// Write the tenant (catalog entry and rows, password hashes and API tokens included) to
    /// a JSON file readable by its owner alone.
    Export {
        /// The tenant's slug.
        slug: Slug,
        /// The file to write; `-` for standard output.
        #[arg(long)]
        output: std::path::PathBuf,
    },
    /// Create a tenant from an export file.
    Import {
        /// The export file; `-` for standard input.
        file: std::path::PathBuf,
        /// Import under this slug instead of the exported one (custom domains are left out).
        #[arg(long = "slug")]
        new_slug: Option<Slug>,
        /// The isolation of the new tenant; the exported tenant's when absent.
        #[arg(long)]
        isolation: Option<IsolationMode>,
    },
    /// Drop the tenant's schema, database or file and all its data (a shared-mode tenant's
    /// rows).
    Delete {
        /// The tenant's slug.
        slug: Slug,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
    /// Bring back a tenant the console deleted, while its grace period lasts.
    Restore {
        /// The tenant's slug.
        slug: Slug,
    },
    /// Purge, for good, the tenants deleted (in the console) at least --older-than-days ago.
    Purge {
        /// Days a deleted tenant is kept before it is purged.
        #[arg(long, default_value_t = 30)]
        older_than_days: u64,
    },
}

/// `tenants domains ...`.
#[derive(Debug, Subcommand)]
pub enum DomainsCommand {
    /// List the tenant's domains and the claims waiting for their DNS record.
    List {
        /// The tenant's slug.
        slug: Slug,
    },
    /// Claim a custom domain for the tenant: it is routed once the TXT record printed
    /// holds the token printed, as `check` (or the server's background check) finds.
    Claim {
        /// The tenant's slug.
        slug: Slug,
        /// The host name.
        domain: String,
    },
    /// Look up a claimed domain's TXT record now; verified, it is routed at once.
    Check {
        /// The tenant's slug.
        slug: Slug,
        /// The host name.
        domain: String,
        /// The name servers to ask: `system`, or IP[:PORT] separated by commas.
        #[arg(long, env = "DNS_RESOLVER", default_value = "system")]
        resolver: String,
    },
    /// Add a custom domain the operator vouches for: routed at once, with no DNS check.
    Add {
        /// The tenant's slug.
        slug: Slug,
        /// The host name.
        domain: String,
    },
    /// Remove a domain (not the primary one), or withdraw a claim.
    Remove {
        /// The tenant's slug.
        slug: Slug,
        /// The host name.
        domain: String,
    },
}

/// Applies `set` and `reset` (if any), then prints every setting: `KEY  VALUE  (default)`
/// for those not set.
async fn settings(
    tenancy: &Tenancy,
    slug: &Slug,
    set: &[String],
    reset: &[String],
) -> Result<(), CliError> {
    let mut patch = serde_json::Map::new();
    let current = match set.is_empty() {
        true => serde_json::Value::Null,
        false => tenancy.catalog().details(slug).await?.tenant.settings,
    };
    for pair in set {
        let (key, raw) = pair
            .split_once('=')
            .ok_or_else(|| CliError::usage(format!("--set '{pair}': expected KEY=VALUE")))?;
        // Text, unless only its JSON reading is valid for the key (`signup_open=false`,
        // `max_choices_per_poll=5`): `primary_color=336699` is refused as the text it is.
        let text = serde_json::Value::String(raw.to_owned());
        let as_text = serde_json::json!({ key: text });
        let json = serde_json::from_str(raw).ok().filter(|json| {
            let as_json = serde_json::json!({ key: json });
            tenancy.settings().apply(&current, &as_text).is_err()
                && tenancy.settings().apply(&current, &as_json).is_ok()
        });
        let value = json.unwrap_or(text);
        patch.insert(key.to_owned(), value);
    }
    for key in reset {
        patch.insert(key.clone(), serde_json::Value::Null);
    }
    let tenant = match patch.is_empty() {
        true => tenancy.catalog().details(slug).await?.tenant,
        false => {
            let update = TenantUpdate {
                settings: Some(serde_json::Value::Object(patch)),
                ..TenantUpdate::default()
            };
            tenancy.update_tenant(slug, update).await?.tenant
        }
    };
    let stored = tenant.settings.as_object().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = tenancy
        .settings()
        .effective(&tenant.settings)
        .into_iter()
        .map(|(key, value)| {
            let origin = match stored.contains_key(&key) {
                true => "set",
                false => "default",
            };
            vec![key, value.to_string(), origin.to_owned()]
        })
        .collect();
    print_table(&["SETTING", "VALUE", ""], &rows);
    Ok(())
}

fn host(raw: &str) -> Result<HostName, CliError> {
    HostName::parse(raw).map_err(|e| CliError::usage(format!("'{raw}': {e}")))
}

/// Runs a `tenants` subcommand, printing its result.
pub async fn tenants(tenancy: &Tenancy, command: TenantsCommand) -> Result<(), CliError> {
    match command {
        TenantsCommand::Create {
            slug,
            name,
            domains,
            server,
            isolation,
        } => {
            let isolation = isolation.unwrap_or(tenancy.default_isolation());
            create(
                tenancy,
                NewTenant::new(slug, isolation),
                name,
                &domains,
                server,
            )
            .await?
        }
        TenantsCommand::List { pending } => list(tenancy, pending).await?,
        TenantsCommand::Show { slug } => show(tenancy, &slug).await?,
        TenantsCommand::Domains { command } => domains(tenancy, command).await?,
        TenantsCommand::Rename {
            slug,
            name,
            new_slug,
        } => {
            if name.is_none() && new_slug.is_none() {
                return Err(CliError::usage("rename needs --name, --slug or both"));
            }
            let update = TenantUpdate {
                name,
                slug: new_slug,
                ..TenantUpdate::default()
            };
            print_details(&tenancy.update_tenant(&slug, update).await?);
        }
        TenantsCommand::Settings { slug, set, reset } => {
            settings(tenancy, &slug, &set, &reset).await?
        }
        TenantsCommand::Suspend { slug } => {
            set_status(tenancy, &slug, TenantStatus::Suspended).await?
        }
        TenantsCommand::Resume { slug } => set_status(tenancy, &slug, TenantStatus::Active).await?,
        TenantsCommand::Move {
            slug,
            to,
            server,
            resume,
            abort,
        } => {
            let target = to.map(|isolation| MoveTarget { isolation, server });
            move_tenant(tenancy, &slug, target, (resume, abort)).await?
        }
        TenantsCommand::Export { slug, output } => export(tenancy, &slug, &output).await?,
        TenantsCommand::Import {
            file,
            new_slug,
            isolation,
        } => import(tenancy, &file, new_slug, isolation).await?,
        TenantsCommand::Delete { slug, yes } => delete(tenancy, &slug, yes).await?,
        TenantsCommand::Restore { slug } => {
            tenancy.restore_tenant(&slug).await?;
            println!("restored '{slug}'");
        }
        TenantsCommand::Purge { older_than_days } => {
            let grace = std::time::Duration::from_secs(older_than_days.saturating_mul(86_400));
            let purged = tenancy.purge_deleted(grace).await?;
            for slug in &purged {
                println!("purged '{slug}'");
            }
            println!("{} tenant(s) purged", purged.len());
        }
    }
    Ok(())
}

/// `tenants create`.
async fn create(
    tenancy: &Tenancy,
    new: NewTenant,
    name: Option<String>,
    domains: &[String],
    server: Option<DbServerName>,
) -> Result<(), CliError> {
    let started = Instant::now();
    let domains = domains.iter().map(|d| host(d)).collect::<Result<_, _>>()?;
    let new = NewTenant {
        name,
        domains,
        server,
        ..new
    };
    let created = tenancy.create_tenant(new).await?;
    println!(
        "created tenant '{}' in {:.1?}",
        created.tenant.slug,
        started.elapsed()
    );
    print_details(&created);
    Ok(())
}

/// `tenants list`: the table, then how each dedicated tenant's server runs; `--pending`,
/// the pending tenants' table.
async fn list(tenancy: &Tenancy, pending: bool) -> Result<(), CliError> {
    if pending {
        print_list(&tenancy.catalog().list_pending().await?);
        return Ok(());
    }
    let tenants = tenancy.catalog().list().await?;
    print_list(&tenants);
    let instances = tenancy.instances().await?;
    for details in tenants.iter().filter(|d| tenancy.has_own_server(&d.tenant)) {
        println!(
            "{}: {}",
            details.tenant.slug,
            server_line(&instances, &details.tenant)
        );
    }
    Ok(())
}

/// `tenants domains add|remove`.
async fn domains(tenancy: &Tenancy, command: DomainsCommand) -> Result<(), CliError> {
    match command {
        DomainsCommand::List { slug } => {
            for domain in tenancy.catalog().details(&slug).await?.domains {
                let kind = if domain.is_primary {
                    "primary"
                } else {
                    "verified"
                };
                println!("{}\t{kind}", domain.domain);
            }
            for claim in tenancy.domain_claims(&slug).await? {
                let why = claim.last_error.as_deref().unwrap_or("not checked yet");
                println!("{}\tpending: {why}", claim.domain);
            }
        }
        DomainsCommand::Claim { slug, domain } => {
            let claim = tenancy.claim_domain(&slug, &host(&domain)?).await?;
            println!(
                "claimed {domain} for '{slug}': add a TXT record\n  {}  TXT  \"{}\"\n\
                 then run `tenants domains check {slug} {domain}`",
                claim.record_name(),
                claim.token
            );
        }
        DomainsCommand::Check {
            slug,
            domain,
            resolver,
        } => {
            let dns = DnsResolver::parse(&resolver)?;
            match tenancy
                .check_domain_claim(&slug, &host(&domain)?, &dns)
                .await?
            {
                DomainCheck::Verified => println!("{domain} is verified and routed to '{slug}'"),
                DomainCheck::NotYet(why) => {
                    return Err(CliError::failed(format!("{domain} is not verified: {why}")));
                }
            }
        }
        DomainsCommand::Add { slug, domain } => {
            tenancy.add_domain(&slug, &host(&domain)?).await?;
            println!("added {domain} to '{slug}'");
        }
        DomainsCommand::Remove { slug, domain } => {
            tenancy.remove_domain(&slug, &host(&domain)?).await?;
            println!("removed {domain} from '{slug}'");
        }
    }
    Ok(())
}

/// `tenants delete`: refused, saying what would be dropped, without `--yes`.
async fn delete(tenancy: &Tenancy, slug: &Slug, yes: bool) -> Result<(), CliError> {
    if !yes {
        let tenant = tenancy.catalog().details(slug).await?.tenant;
        return Err(CliError::usage(format!(
            "deleting '{slug}' drops {} and all its data; repeat with --yes",
            tenancy.what_deleting_drops(&tenant)?
        )));
    }
    tenancy.delete_tenant(slug).await?;
    println!("deleted tenant '{slug}'");
    Ok(())
}

/// How a dedicated tenant's own server runs, as its supervisors published it.
fn server_line(servers: &[Instance], tenant: &Tenant) -> String {
    let lines: Vec<String> = servers
        .iter()
        .filter(|s| s.tenant_id == tenant.id)
        .map(|s| match (s.pid, s.port) {
            // Published by a supervisor on this machine that died without saying so.
            (Some(pid), _) if s.host == host_name() && !serves(pid, tenant.id) => format!(
                "stopped on {} (pid {pid} is gone: its supervisor died), {} restart(s)",
                s.host, s.restarts
            ),
            (Some(pid), Some(port)) => format!(
                "runs on {} as pid {pid}, port {port}, up {} s, {} restart(s)",
                s.host,
                s.uptime_secs.unwrap_or(0),
                s.restarts
            ),
            _ => format!("stopped on {}, {} restart(s)", s.host, s.restarts),
        })
        .collect();
    match lines.is_empty() {
        true => "its server has not run yet".into(),
        false => lines.join("; "),
    }
}

/// `tenants show`: the tenant, its own server if it is dedicated, and its move if one runs
/// or was interrupted.
async fn show(tenancy: &Tenancy, slug: &Slug) -> Result<(), CliError> {
    let details = tenancy.catalog().details(slug).await?;
    print_details(&details);
    // Its schema, database or file, where, and a dedicated tenant's role.
    println!(
        "data:      {}",
        tenancy.what_deleting_drops(&details.tenant)?
    );
    if tenancy.has_own_server(&details.tenant) {
        let servers = tenancy.instances().await?;
        println!("app server: {}", server_line(&servers, &details.tenant));
    }
    if let Some(state) = &details.tenant.move_state {
        let to = &state.to;
        let place = to
            .server
            .as_ref()
            .map_or(String::new(), |s| format!(" on {s}"));
        let what = match tenancy.interrupted_move(slug).await? {
            None => "in progress",
            Some(_) if state.switched => {
                "interrupted after the switch (old data left; run `tenants move --resume`)"
            }
            Some(_) => "interrupted (run `tenants move --resume` or `--abort`)",
        };
        println!("move:      to {}{place}, {what}", to.isolation.as_str());
    }
    Ok(())
}

/// `tenants move`: to `target`, or finishing (`resume`) or undoing (`abort`) an interrupted
/// move.
async fn move_tenant(
    tenancy: &Tenancy,
    slug: &Slug,
    target: Option<MoveTarget>,
    (resume, abort): (bool, bool),
) -> Result<(), CliError> {
    let started = Instant::now();
    let (moved, done) = match target {
        _ if resume => (tenancy.resume_move(slug).await?, "finished the move of"),
        _ if abort => (tenancy.abort_move(slug).await?, "undid the move of"),
        Some(target) => (tenancy.move_tenant(slug, target).await?, "moved"),
        None => return Err(CliError::usage("move needs --to, --resume or --abort")),
    };
    println!("{done} tenant '{slug}' in {:.1?}", started.elapsed());
    print_details(&moved);
    Ok(())
}

/// `tenants export`: to a file, or to standard output for `-`.
async fn export(tenancy: &Tenancy, slug: &Slug, output: &Path) -> Result<(), CliError> {
    let export = tenancy.export_tenant(slug).await?;
    let rows: usize = export.tables.iter().map(|t| t.rows.len()).sum();
    let json = serde_json::to_vec_pretty(&export)
        .map_err(|e| CliError::failed(format!("cannot encode the export: {e}")))?;
    if output.as_os_str() == "-" {
        std::io::stdout()
            .write_all(&json)
            .map_err(|e| CliError::failed(format!("cannot write the export: {e}")))?;
        eprintln!("exported tenant '{slug}' ({})", count(rows, "row", "rows"));
    } else {
        write_private(output, &json)
            .map_err(|e| CliError::failed(format!("cannot write {}: {e}", output.display())))?;
        println!(
            "exported tenant '{slug}' ({}) to {}",
            count(rows, "row", "rows"),
            output.display()
        );
    }
    Ok(())
}

/// Writes `bytes` to `path` readable by its owner alone (an export holds password hashes
/// and live API tokens), whole or not at all: written beside it, then renamed over it.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let partial = path.with_file_name(format!(".{file_name}.{}.partial", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&partial, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// `tenants import`: a tenant from an export file, or standard input for `-`.
async fn import(
    tenancy: &Tenancy,
    file: &Path,
    slug: Option<Slug>,
    isolation: Option<IsolationMode>,
) -> Result<(), CliError> {
    let bytes = match file.as_os_str() == "-" {
        true => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| CliError::usage(format!("cannot read standard input: {e}")))?;
            bytes
        }
        false => std::fs::read(file)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", file.display())))?,
    };
    let source = match file.as_os_str() == "-" {
        true => "standard input".to_owned(),
        false => file.display().to_string(),
    };
    let export: TenantExport = serde_json::from_slice(&bytes)
        .map_err(|e| CliError::usage(format!("{source} is not a tenant export: {e}")))?;
    let imported = tenancy.import_tenant(export, slug, isolation).await?;
    println!("imported tenant '{}'", imported.tenant.slug);
    print_details(&imported);
    Ok(())
}

async fn set_status(tenancy: &Tenancy, slug: &Slug, status: TenantStatus) -> Result<(), CliError> {
    let update = TenantUpdate {
        status: Some(status),
        ..TenantUpdate::default()
    };
    tenancy.update_tenant(slug, update).await?;
    println!("tenant '{slug}' is now {}", status.as_str());
    Ok(())
}

fn print_list(tenants: &[TenantDetails]) {
    let rows: Vec<Vec<String>> = tenants
        .iter()
        .map(|d| {
            let t = &d.tenant;
            vec![
                t.slug.to_string(),
                t.name.clone(),
                t.status.as_str().to_owned(),
                t.isolation.as_str().to_owned(),
                t.placement
                    .server
                    .as_ref()
                    .map_or("-".into(), DbServerName::to_string),
                t.placement.schema.to_string(),
                t.migration_version.map_or("-".into(), |v| v.to_string()),
                d.domains
                    .iter()
                    .map(|d| d.domain.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        })
        .collect();
    print_table(
        &[
            "SLUG",
            "NAME",
            "STATUS",
            "ISOLATION",
            "SERVER",
            "SCHEMA",
            "VERSION",
            "DOMAINS",
        ],
        &rows,
    );
    println!("({})", count(tenants.len(), "tenant", "tenants"));
}

fn print_details(details: &TenantDetails) {
    let t = &details.tenant;
    println!("slug:      {}", t.slug);
    println!("name:      {}", t.name);
    println!("id:        {}", t.id);
    println!("status:    {}", t.status.as_str());
    println!("isolation: {}", t.isolation.as_str());
    if let Some(server) = &t.placement.server {
        println!("server:    {server}");
    }
    println!("schema:    {}", t.placement.schema);
    println!(
        "version:   {}",
        t.migration_version.map_or("-".into(), |v| v.to_string())
    );
    println!("created:   {}", t.created_at.to_rfc3339());
    println!("settings:  {}", t.settings);
    for d in &details.domains {
        let primary = if d.is_primary { " (primary)" } else { "" };
        println!("domain:    {}{primary}", d.domain);
    }
}
