//! Jobs: the tenant's own background jobs, newest first, as its queue holds them.

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{TimeZone, Utc};
use tenantry::TenantDb;
use tenantry::jobs::{self, JobRecord};

use super::{AdminError, Chrome, Site, Staff, page};

/// The most jobs the page lists.
const SHOWN: u32 = 200;

struct JobRow {
    id: i64,
    kind: String,
    state: String,
    attempts: String,
    run_at: String,
    error: String,
}

impl From<JobRecord> for JobRow {
    fn from(job: JobRecord) -> Self {
        Self {
            id: job.id,
            kind: job.kind,
            state: job.state.to_string(),
            attempts: format!("{} of {}", job.attempts, job.max_attempts),
            run_at: Utc
                .timestamp_millis_opt(job.run_at)
                .single()
                .map_or_else(String::new, |at| {
                    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
                }),
            error: job.last_error.unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/jobs.html")]
struct JobList {
    chrome: Chrome,
    jobs: Vec<JobRow>,
}

/// `GET /admin/jobs`: this tenant's jobs, read in its own transaction (never another's).
pub(super) async fn list(
    staff: Staff,
    site: Site,
    mut db: TenantDb,
) -> Result<Response, AdminError> {
    let chrome = Chrome::for_staff(&site, &staff, &mut db).await?;
    let jobs = jobs::list(&mut db, None, SHOWN)
        .await
        .map_err(crate::error::ApiError::from)?;
    Ok(page(
        StatusCode::OK,
        &JobList {
            chrome,
            jobs: jobs.into_iter().map(JobRow::from).collect(),
        },
    ))
}
