//! `jobs`: the background jobs in tenants' queues, and an operator's retry and cancel.

use chrono::{TimeZone, Utc};
use clap::Subcommand;

use super::{CliError, print_table};
use crate::jobs::{self, JobRecord, JobState};
use crate::slug::Slug;
use crate::tenancy::Tenancy;

/// What `jobs` does. Job ids are per tenant: retry and cancel need --tenant SLUG.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first: those of the tenant named by --tenant SLUG, or every
    /// tenant's.
    List {
        /// Only jobs in this state (queued, running, done, dead or cancelled).
        #[arg(long, value_parser = JobState::parse)]
        state: Option<JobState>,
        /// At most this many jobs of each tenant.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Queue a dead or cancelled job of the tenant named by --tenant SLUG again, now, with
    /// its attempts anew.
    Retry {
        /// The job's id in its tenant's queue.
        id: i64,
    },
    /// Cancel a queued or dead job of the tenant named by --tenant SLUG.
    Cancel {
        /// The job's id in its tenant's queue.
        id: i64,
    },
}

/// Runs `command`, for `tenant` if named.
pub async fn jobs(
    tenancy: &Tenancy,
    command: JobsCommand,
    tenant: Option<Slug>,
) -> Result<(), CliError> {
    let needs_tenant = || {
        tenant
            .clone()
            .ok_or_else(|| CliError::usage("job ids are per tenant: name it with --tenant SLUG"))
    };
    match command {
        JobsCommand::List { state, limit } => {
            let slugs = match &tenant {
                Some(slug) => vec![slug.clone()],
                None => tenancy
                    .catalog()
                    .list()
                    .await?
                    .into_iter()
                    .map(|d| d.tenant.slug)
                    .collect(),
            };
            let mut rows = Vec::new();
            for slug in slugs {
                let mut tx = tenancy.begin(&slug).await?;
                let listed = jobs::list(&mut tx, state, limit).await?;
                tx.commit().await?;
                rows.extend(listed.iter().map(|job| row(&slug, job)));
            }
            print_table(
                &[
                    "TENANT",
                    "ID",
                    "KIND",
                    "STATE",
                    "ATTEMPTS",
                    "RUN AT",
                    "LAST ERROR",
                ],
                &rows,
            );
        }
        JobsCommand::Retry { id } => {
            let slug = needs_tenant()?;
            let mut tx = tenancy.begin(&slug).await?;
            let job = jobs::retry(&mut tx, id).await?;
            tx.commit().await?;
            println!("{slug}: job {id} ({}) queued again", job.kind);
        }
        JobsCommand::Cancel { id } => {
            let slug = needs_tenant()?;
            let mut tx = tenancy.begin(&slug).await?;
            let job = jobs::cancel(&mut tx, id).await?;
            tx.commit().await?;
            println!("{slug}: job {id} ({}) cancelled", job.kind);
        }
    }
    Ok(())
}

fn row(slug: &Slug, job: &JobRecord) -> Vec<String> {
    vec![
        slug.to_string(),
        job.id.to_string(),
        job.kind.clone(),
        job.state.to_string(),
        format!("{}/{}", job.attempts, job.max_attempts),
        time(job.run_at),
        job.last_error.clone().unwrap_or_else(|| "-".into()),
    ]
}

/// Unix milliseconds as `2026-12-03T09:00:00Z`.
fn time(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms).single().map_or_else(
        || "-".into(),
        |at| at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}
