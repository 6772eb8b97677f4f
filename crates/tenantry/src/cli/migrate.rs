//! `migrate`: the shared set, then every tenant, with progress and a summary.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::CliError;
use crate::lifecycle::{
    MigrateOptions, MigrationReport, ServerUpgrade, TenantMigration, TenantOutcome,
};
use crate::migrate::Migrations;
use crate::pooler::Pooler;
use crate::role::prepare_roles;
use crate::slug::Slug;
use crate::tenancy::Tenancy;

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
    /// Upgrade dedicated tenants in waves of N: a wave's databases are migrated, then their
    /// servers are stopped and started again on this binary through the running `serve`
    /// (at BIND), each of which must pass its health check; the first that fails stops the
    /// upgrade, leaving later waves untouched. Exits 1 then.
    #[arg(long, value_name = "N", conflicts_with = "check",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub wave_size: Option<u16>,
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

/// `migrate --check` on PostgreSQL, first half: what the shared half would apply, applying
/// nothing.
pub async fn check_shared(pool: &sqlx::PgPool, migrations: &Migrations) -> Result<(), CliError> {
    let pending = crate::migrate::pending_shared(pool, migrations).await?;
    println!("shared: {pending} migration(s) pending");
    match pending {
        0 => Ok(()),
        n => Err(CliError::failed(format!(
            "{n} shared migration(s) pending; run migrate to apply them"
        ))),
    }
}

/// `migrate`, second half: every tenant (or `tenant`), printing progress and a summary,
/// then, with `--wave-size`, the dedicated tenants' upgrade through the server at `router`.
/// Fails (exit 1) if any tenant failed.
pub async fn migrate_tenants(
    tenancy: &Tenancy,
    args: &MigrateArgs,
    tenant: Option<Slug>,
    router: &str,
) -> Result<(), CliError> {
    let router = upgrade_router(args, tenant.is_some(), router)?;
    let started = Instant::now();
    let options = MigrateOptions {
        jobs: usize::from(args.jobs),
        tenant,
        verify: args.verify,
        check: args.check,
        skip_dedicated: router.is_some(),
    };
    let verb = if args.check { "pending" } else { "applied" };
    let bar = ProgressBar::hidden();
    let report = with_progress(tenancy, &options, &bar, verb).await?;
    bar.finish_and_clear();
    let failures: Vec<_> = report.failures().collect();
    let not_visited = match report.skipped_current {
        0 => String::new(),
        n => format!(" ({n} not visited: shared-mode, or current per the catalog)"),
    };
    println!(
        "tenants: {} {}, {} up to date{not_visited}, {} failed ({} ms)",
        report.applied(),
        if args.check {
            "with migrations pending"
        } else {
            "migrated"
        },
        report.up_to_date(),
        failures.len(),
        started.elapsed().as_millis()
    );
    for (slug, error) in &failures {
        println!("  {slug}: {error}");
    }
    if let (Some(router), Some(wave)) = (router, args.wave_size) {
        upgrade(tenancy, usize::from(wave), router).await?;
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

/// Where the running `serve` listens, for `--wave-size`'s upgrade through it.
fn upgrade_router(
    args: &MigrateArgs,
    one_tenant: bool,
    router: &str,
) -> Result<Option<SocketAddr>, CliError> {
    match args.wave_size {
        Some(_) if one_tenant => Err(CliError::usage(
            "--wave-size upgrades every dedicated tenant, not --tenant",
        )),
        Some(_) => Ok(Some(router.parse::<SocketAddr>().map_err(|e| {
            CliError::usage(format!(
                "BIND '{router}' is not the address of the running serve: {e}"
            ))
        })?)),
        None => Ok(None),
    }
}

/// Migrates the tenants `options` name, drawing `bar` on a terminal and printing a line per
/// tenant otherwise.
async fn with_progress(
    tenancy: &Tenancy,
    options: &MigrateOptions,
    bar: &ProgressBar,
    verb: &str,
) -> Result<MigrationReport, CliError> {
    let interactive = std::io::stderr().is_terminal();
    let report = tenancy
        .migrate_tenants(
            options,
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
    Ok(report)
}

/// The dedicated tenants' upgrade in waves, a line per tenant: its version and its server.
async fn upgrade(tenancy: &Tenancy, wave: usize, router: SocketAddr) -> Result<(), CliError> {
    let lines = tenancy
        .upgrade_dedicated(wave, router, |line| {
            let version = line.version.map_or("none".to_owned(), |v| v.to_string());
            let server = match &line.server {
                ServerUpgrade::Restarted { pid, version } => format!(
                    "restarted on this binary (pid {pid}{})",
                    version
                        .as_ref()
                        .map(|v| format!(", version {v}"))
                        .unwrap_or_default()
                ),
                ServerUpgrade::NotRunning => "not running; starts on this binary".into(),
                ServerUpgrade::Failed(error) => format!("FAILED: {error}"),
                ServerUpgrade::Untouched => "untouched (after a failure)".into(),
            };
            println!("{}: version {version}, server {server}", line.slug);
        })
        .await?;
    let failed = lines
        .iter()
        .find(|l| matches!(l.server, ServerUpgrade::Failed(_)));
    let untouched = lines
        .iter()
        .filter(|l| l.server == ServerUpgrade::Untouched)
        .count();
    match failed {
        None => {
            println!("dedicated: {} upgraded in waves of {wave}", lines.len());
            Ok(())
        }
        Some(line) => Err(CliError::failed(format!(
            "the upgrade stopped at '{}'; {untouched} tenant(s) left untouched",
            line.slug
        ))),
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
