//! Command-line building blocks any tenantry app can mount in its own clap CLI: `migrate`,
//! `tenants ...`, the `--tenant`/`--all-tenants` targets, and `sql` in each tenant.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::{AssertSqlSafe, Column, Row, ValueRef};

use crate::catalog::TenantDetails;
use crate::error::Error;
use crate::host::HostName;
use crate::lifecycle::export::TenantExport;
use crate::lifecycle::moving::MoveTarget;
use crate::lifecycle::rollout::{MigrateOptions, TenantMigration, TenantOutcome};
use crate::lifecycle::{NewTenant, TenantUpdate};
use crate::migrate::Migrations;
use crate::pooler::Pooler;
use crate::role::prepare_roles;
use crate::servers::{ServerName, ServerUrl};
use crate::slug::Slug;
use crate::tenancy::Tenancy;
use crate::tenant::{IsolationMode, TenantStatus};

/// A failed command: the message for standard error and the process exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
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

/// `migrate`: shared migrations, then every tenant.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// How many tenants to migrate at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Visit every tenant and apply what is pending there, instead of trusting the catalog's
    /// record of which tenants are current.
    #[arg(long)]
    pub verify: bool,
    /// Apply nothing: visit every tenant and report its pending tenant migrations (each
    /// run in a transaction that is rolled back, so a failing one shows); exit 1 if any is
    /// pending or fails. The shared set is not checked.
    #[arg(long, conflicts_with = "verify")]
    pub check: bool,
}

/// `migrate` on PostgreSQL, first half: the catalog's migrations and the app's shared set
/// (and, behind a transaction pooler, the roles' settings), before a [`Tenancy`] can start.
pub async fn migrate_shared(
    pool: &sqlx::PgPool,
    migrations: &Migrations,
    options: &crate::TenancyOptions,
) -> Result<(), CliError> {
    let shared = crate::migrate_shared(pool, migrations, &options.role).await?;
    if options.pooler == Pooler::Transaction {
        prepare_roles(pool, &options.role).await?;
    }
    println!("shared: {} migration(s) applied", shared.count);
    Ok(())
}

/// `migrate`, second half: every tenant (or `tenant`), printing progress and a summary.
/// Fails (exit 1) if any tenant failed.
pub async fn migrate_tenants(
    tenancy: &Tenancy,
    args: &MigrateArgs,
    tenant: Option<Slug>,
) -> Result<(), CliError> {
    let started = Instant::now();
    let options = MigrateOptions {
        jobs: usize::from(args.jobs),
        tenant,
        verify: args.verify,
        check: args.check,
    };
    let verb = if args.check { "pending" } else { "applied" };
    let interactive = std::io::stderr().is_terminal();
    let bar = ProgressBar::hidden();
    let report = tenancy
        .migrate_tenants(
            &options,
            |total| {
                if interactive {
                    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                    bar.set_length(total as u64);
                    bar.set_style(
                        ProgressStyle::with_template("{bar:40} {pos}/{len} tenants {msg}")
                            .expect("the template is valid"),
                    );
                }
            },
            |done| {
                if interactive {
                    bar.inc(1);
                    bar.set_message(done.slug.to_string());
                } else {
                    println!("{}", describe(done, verb));
                }
            },
        )
        .await?;
    bar.finish_and_clear();
    let failures: Vec<_> = report.failures().collect();
    println!(
        "tenants: {} {}, {} up to date, {} failed ({:.2?})",
        report.applied(),
        if args.check {
            "with migrations pending"
        } else {
            "migrated"
        },
        report.up_to_date(),
        failures.len(),
        started.elapsed()
    );
    for (slug, error) in &failures {
        println!("  {slug}: {error}");
    }
    if args.check && report.applied() > 0 && failures.is_empty() {
        return Err(CliError::failed(format!(
            "{} tenant(s) have migrations pending; run migrate to apply them",
            report.applied()
        )));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CliError::failed(format!(
            "{} tenant(s) failed to migrate; fix the cause and run migrate again",
            failures.len()
        )))
    }
}

/// One tenant's line; `verb` says what happened to its migrations ("applied" or "pending").
fn describe(done: &TenantMigration, verb: &str) -> String {
    let version = |v: Option<i64>| v.map_or("none".to_owned(), |v| v.to_string());
    match &done.outcome {
        TenantOutcome::Applied(a) => format!(
            "{}: {verb} {} migration(s) ({} -> {})",
            done.slug,
            a.count,
            version(a.from),
            version(a.to)
        ),
        TenantOutcome::UpToDate => format!("{}: up to date", done.slug),
        TenantOutcome::Failed(error) => format!("{}: FAILED: {error}", done.slug),
    }
}

/// `tenants ...`: the tenant lifecycle.
#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant: its schema, its tables and its primary domain, all or nothing.
    Create {
        slug: Slug,
        /// Display name (defaults to the slug).
        #[arg(long)]
        name: Option<String>,
        /// An extra domain (custom domain); repeat for several.
        #[arg(long = "domain")]
        domains: Vec<String>,
        /// Place the tenant on this registered server (see `servers add`).
        #[arg(long)]
        server: Option<ServerName>,
        /// `shared` (rows beside other tenants' in shared tables, kept apart by Row-Level
        /// Security), `schema` (a schema of its own in a shared database) or `database` (a
        /// database of its own); the configured default when absent.
        #[arg(long)]
        isolation: Option<IsolationMode>,
    },
    /// List tenants with status, migration version and domains.
    List,
    /// Show one tenant.
    Show { slug: Slug },
    /// Add or remove a tenant's domains.
    Domains {
        #[command(subcommand)]
        command: DomainsCommand,
    },
    /// Change the display name, or the slug (which renames the schema and primary domain).
    Rename {
        slug: Slug,
        #[arg(long)]
        name: Option<String>,
        #[arg(long = "slug")]
        new_slug: Option<Slug>,
    },
    /// Refuse the tenant's requests with 403, keeping its data.
    Suspend { slug: Slug },
    /// Serve a suspended tenant again.
    Resume { slug: Slug },
    /// Move the tenant to another isolation mode or server, copying its rows. Reads go on
    /// during the move; writes get 503 until it is done. A move whose process died is
    /// finished with --resume or undone with --abort (`tenants show` reports it).
    Move {
        slug: Slug,
        /// `shared`, `schema` or `database`.
        #[arg(long, required_unless_present_any = ["resume", "abort"])]
        to: Option<IsolationMode>,
        /// A registered server for schema or database isolation.
        #[arg(long, requires = "to")]
        server: Option<ServerName>,
        /// Finish an interrupted move.
        #[arg(long, conflicts_with_all = ["to", "abort"])]
        resume: bool,
        /// Undo an interrupted move, dropping only what it built (once the catalog has
        /// switched, it can only be finished).
        #[arg(long, conflicts_with = "to")]
        abort: bool,
    },
    /// Write the tenant (catalog entry and rows) to a JSON file.
    Export {
        slug: Slug,
        /// The file to write; `-` for standard output.
        #[arg(long)]
        output: std::path::PathBuf,
    },
    /// Create a tenant from an export file.
    Import {
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
        slug: Slug,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
}

/// `tenants domains ...`.
#[derive(Debug, Subcommand)]
pub enum DomainsCommand {
    /// Add a custom domain.
    Add { slug: Slug, domain: String },
    /// Remove a domain (not the primary one).
    Remove { slug: Slug, domain: String },
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
            let started = Instant::now();
            let domains = domains.iter().map(|d| host(d)).collect::<Result<_, _>>()?;
            let created = tenancy
                .create_tenant(NewTenant {
                    slug,
                    name,
                    domains,
                    server,
                    isolation: isolation.unwrap_or(tenancy.default_isolation()),
                })
                .await?;
            println!(
                "created tenant '{}' in {:.1?}",
                created.tenant.slug,
                started.elapsed()
            );
            print_details(&created);
        }
        TenantsCommand::List => print_list(&tenancy.catalog().list().await?),
        TenantsCommand::Show { slug } => {
            let details = tenancy.catalog().details(&slug).await?;
            print_details(&details);
            if let Some(state) = &details.tenant.move_state {
                let to = &state.to;
                let place = to
                    .server
                    .as_ref()
                    .map_or(String::new(), |s| format!(" on {s}"));
                let what = match tenancy.interrupted_move(&slug).await? {
                    None => "in progress",
                    Some(_) if state.switched => {
                        "interrupted after the switch (old data left; run `tenants move --resume`)"
                    }
                    Some(_) => "interrupted (run `tenants move --resume` or `--abort`)",
                };
                println!("move:      to {}{place}, {what}", to.isolation.as_str());
            }
        }
        TenantsCommand::Domains { command } => match command {
            DomainsCommand::Add { slug, domain } => {
                tenancy.add_domain(&slug, &host(&domain)?).await?;
                println!("added {domain} to '{slug}'");
            }
            DomainsCommand::Remove { slug, domain } => {
                tenancy.remove_domain(&slug, &host(&domain)?).await?;
                println!("removed {domain} from '{slug}'");
            }
        },
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
            let started = Instant::now();
            let (moved, done) = match to {
                _ if resume => (tenancy.resume_move(&slug).await?, "finished the move of"),
                _ if abort => (tenancy.abort_move(&slug).await?, "undid the move of"),
                Some(isolation) => {
                    let target = MoveTarget { isolation, server };
                    (tenancy.move_tenant(&slug, target).await?, "moved")
                }
                None => return Err(CliError::usage("move needs --to, --resume or --abort")),
            };
            println!("{done} tenant '{slug}' in {:.1?}", started.elapsed());
            print_details(&moved);
        }
        TenantsCommand::Export { slug, output } => {
            let export = tenancy.export_tenant(&slug).await?;
            let rows: usize = export.tables.iter().map(|t| t.rows.len()).sum();
            let json = serde_json::to_vec_pretty(&export)
                .map_err(|e| CliError::failed(format!("cannot encode the export: {e}")))?;
            if output.as_os_str() == "-" {
                std::io::stdout()
                    .write_all(&json)
                    .map_err(|e| CliError::failed(format!("cannot write the export: {e}")))?;
                eprintln!("exported tenant '{slug}' ({rows} rows)");
            } else {
                std::fs::write(&output, json).map_err(|e| {
                    CliError::failed(format!("cannot write {}: {e}", output.display()))
                })?;
                println!(
                    "exported tenant '{slug}' ({rows} rows) to {}",
                    output.display()
                );
            }
        }
        TenantsCommand::Import {
            file,
            new_slug,
            isolation,
        } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| CliError::usage(format!("cannot read {}: {e}", file.display())))?;
            let export: TenantExport = serde_json::from_slice(&bytes).map_err(|e| {
                CliError::usage(format!("{} is not a tenant export: {e}", file.display()))
            })?;
            let imported = tenancy.import_tenant(export, new_slug, isolation).await?;
            println!("imported tenant '{}'", imported.tenant.slug);
            print_details(&imported);
        }
        TenantsCommand::Delete { slug, yes } => {
            if !yes {
                let tenant = tenancy.catalog().details(&slug).await?.tenant;
                return Err(CliError::usage(format!(
                    "deleting '{slug}' drops {} and all its data; repeat with --yes",
                    tenancy.what_deleting_drops(&tenant)?
                )));
            }
            tenancy.delete_tenant(&slug).await?;
            println!("deleted tenant '{slug}'");
        }
    }
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
                    .map_or("-".into(), ServerName::to_string),
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
    println!("({} tenants)", tenants.len());
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

fn print_table(header: &[&str], rows: &[Vec<String>]) {
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

/// `servers ...`: the database servers tenants can be placed on.
#[derive(Debug, Subcommand)]
pub enum ServersCommand {
    /// Register a server; `URL` names the database that will hold its tenants' schemas.
    Add { name: ServerName, url: String },
    /// List servers (passwords hidden) with their tenant counts.
    List,
    /// Remove a server that holds no tenants.
    Remove { name: ServerName },
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
            let url = ServerUrl::parse(&url)?;
            tenancy.servers()?.add(&name, &url).await?;
            println!("added server '{name}' at {url}");
        }
        ServersCommand::List => {
            let servers = tenancy.servers()?.list().await?;
            let rows: Vec<Vec<String>> = servers
                .iter()
                .map(|s| vec![s.name.to_string(), s.url.to_string(), s.tenants.to_string()])
                .collect();
            print_table(&["NAME", "URL", "TENANTS"], &rows);
        }
        ServersCommand::Remove { name } => {
            tenancy.servers()?.remove(&name).await?;
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

fn template_rows(templates: Vec<(Option<ServerName>, String)>) -> Vec<Vec<String>> {
    templates
        .into_iter()
        .map(|(server, name)| vec![server.map_or_else(|| "-".into(), |s| s.to_string()), name])
        .collect()
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
                let conn = db.sqlite().ok_or(Error::Invalid {
                    field: "tenant",
                    message: "its database engine is not supported by this command".into(),
                })?;
                let rows = sqlx::raw_sql(statement).fetch_all(conn).await?;
                Ok(cells(&rows, sqlite_cell))
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
