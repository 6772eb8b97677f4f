//! The console's migrations page: the tenants not current with this build's migrations, and
//! "migrate all", whose progress (tenant by tenant) streams to its task's page.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use tenantry::Tenant;
use tenantry::lifecycle::{MigrateOptions, TenantOutcome};

use super::tasks::{Progress, to_task};
use super::{ActionForm, Console, ConsoleError, Operator};

#[derive(Template)]
#[template(path = "console/migrations.html")]
struct MigrationsPage {
    operator: String,
    csrf: String,
    pending: Vec<Tenant>,
    current: i64,
}

/// `GET /console/migrations`: every tenant with migrations that may be pending.
pub(super) async fn page(
    State(console): State<Console>,
    operator: Operator,
) -> Result<Response, ConsoleError> {
    let (pending, current) = console.tenancy.tenants_to_migrate().await?;
    let page = MigrationsPage {
        operator: operator.name,
        csrf: operator.csrf,
        pending,
        current,
    };
    Ok(crate::admin::page(StatusCode::OK, &page))
}

/// `POST /console/migrations`: migrates every tenant that is not current, as a task whose
/// page shows each tenant's outcome as it comes; recorded in the audit log.
pub(super) async fn migrate_all(
    State(console): State<Console>,
    operator: Operator,
    Form(form): Form<ActionForm>,
) -> Result<Response, ConsoleError> {
    operator.check(&form.csrf)?;
    let (tenancy, actor) = (console.tenancy.clone(), operator.actor());
    let id = console
        .tasks
        .start("Migrate every tenant".into(), |progress| async move {
            migrate(&tenancy, &actor, &progress).await
        });
    Ok(to_task(id))
}

async fn migrate(
    tenancy: &tenantry::Tenancy,
    actor: &str,
    progress: &Progress,
) -> Result<String, String> {
    let options = MigrateOptions::default();
    let report = tenancy
        .migrate_tenants(
            &options,
            |n| progress.say(format!("{n} tenant(s) to visit")),
            |done| {
                let line = match &done.outcome {
                    TenantOutcome::Applied(applied) => {
                        format!("{}: {} migration(s) applied", done.slug, applied.count)
                    }
                    TenantOutcome::UpToDate => format!("{}: up to date", done.slug),
                    TenantOutcome::Failed(why) => {
                        format!("{}: failed, rolled back: {why}", done.slug)
                    }
                };
                progress.say(line);
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let failed = report.failures().count();
    let summary = format!(
        "{} migrated, {} up to date, {failed} failed",
        report.applied(),
        report.up_to_date()
    );
    let outcome = match failed {
        0 => "ok".to_owned(),
        _ => format!("failed: {summary}"),
    };
    if let Err(error) = tenancy
        .catalog()
        .audit(actor, "tenants.migrate", None, &outcome)
        .await
    {
        tracing::error!(%error, "an audit record was not written");
    }
    match failed {
        0 => Ok(summary),
        _ => Err(summary),
    }
}
