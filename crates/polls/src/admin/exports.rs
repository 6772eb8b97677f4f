//! Exports: the tenant's poll results as CSV files, made by a background job and kept in its
//! files; listed and downloaded here (only its own: its files are under its prefix).

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tenantry::TenantDb;
use tenantry::files::TenantFiles;

use super::{AdminError, AdminPath, CheckedForm, Chrome, Done, Site, Staff, done, page};
use crate::error::ApiError;
use crate::jobs::{self, EXPORTS};

/// A form with nothing but its CSRF token.
#[derive(serde::Deserialize)]
pub(super) struct NoFields {}

struct ExportRow {
    name: String,
    size: u64,
    made: String,
}

#[derive(Template)]
#[template(path = "admin/exports.html")]
struct ExportList {
    chrome: Chrome,
    exports: Vec<ExportRow>,
}

/// `GET /admin/exports`: the tenant's exports, newest first.
pub(super) async fn list(
    staff: Staff,
    site: Site,
    files: TenantFiles,
    mut db: TenantDb,
) -> Result<Response, AdminError> {
    let chrome = Chrome::for_staff(&site, &staff, &mut db).await?;
    let mut listed = files.list(EXPORTS).await.map_err(ApiError::from)?;
    listed.sort_by_key(|file| std::cmp::Reverse(file.modified));
    let exports = listed
        .into_iter()
        .map(|file| ExportRow {
            name: file.name.trim_start_matches(EXPORTS).to_owned(),
            size: file.size,
            made: file.modified.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        })
        .collect();
    Ok(page(StatusCode::OK, &ExportList { chrome, exports }))
}

/// `GET /admin/exports/{name}`: one export, as a download.
pub(super) async fn download(
    _staff: Staff,
    files: TenantFiles,
    AdminPath(name): AdminPath<String>,
) -> Result<Response, AdminError> {
    if name.contains('/') {
        return Err(AdminError::NotFound);
    }
    let bytes = files
        .get(&format!("{EXPORTS}{name}"))
        .await
        .map_err(|_| AdminError::NotFound)?
        .ok_or(AdminError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `POST /admin/polls/{id}/export`: queues the export of the poll's results.
pub(super) async fn queue(
    _staff: Staff,
    site: Site,
    AdminPath(id): AdminPath<i64>,
    mut db: TenantDb,
    CheckedForm(_): CheckedForm<NoFields>,
) -> Result<Response, AdminError> {
    let exists: Option<i64> = db
        .query("SELECT id FROM polls WHERE id = $1")
        .bind(id)
        .fetch_optional_scalar()
        .await?;
    exists.ok_or(AdminError::NotFound)?;
    jobs::export(&mut db, id).await.map_err(ApiError::from)?;
    Ok(done(&site, "/admin/exports", Done::ExportQueued))
}
