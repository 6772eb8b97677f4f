//! `/polls/{id}/image`: a poll's image, a PNG, JPEG or WebP file (its type told from its
//! bytes) kept in the tenant's files.

use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tenantry::TenantDb;
use tenantry::files::TenantFiles;

use crate::auth::AuthUser;
use crate::domain::polls;
use crate::error::ApiError;
use crate::path::ApiPath;

/// The largest image accepted.
pub const IMAGE_MAX_BYTES: usize = 1024 * 1024;

fn name(poll: i64) -> String {
    format!("polls/{poll}/image")
}

/// `PUT /polls/{id}/image`: 204 with the body as the poll's image, replacing any; only the
/// poll's creator may. Anything but a PNG, JPEG or WebP image is refused (400).
pub(super) async fn put(
    user: AuthUser,
    ApiPath(id): ApiPath<i64>,
    files: TenantFiles,
    mut db: TenantDb,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    if polls::creator(&mut db, id)
        .await?
        .ok_or(ApiError::NotFound)?
        != user.id
    {
        return Err(ApiError::Forbidden("You can not change this poll's image."));
    }
    if tenantry::web::image_type(&body).is_none() {
        return Err(ApiError::field(
            "image",
            "An image is a PNG, JPEG or WebP file.",
        ));
    }
    files.put(&name(id), body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /polls/{id}/image`: the poll's image, with the type its bytes show; 404 without one.
pub(super) async fn get(
    _user: AuthUser,
    ApiPath(id): ApiPath<i64>,
    files: TenantFiles,
) -> Result<Response, ApiError> {
    let bytes = files.get(&name(id)).await?.ok_or(ApiError::NotFound)?;
    let kind = tenantry::web::image_type(&bytes).ok_or(ApiError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'"),
        ],
        bytes,
    )
        .into_response())
}

/// Deletes poll `id`'s image, if it has one.
pub(super) async fn remove(files: &TenantFiles, id: i64) -> Result<(), ApiError> {
    files.delete(&name(id)).await?;
    Ok(())
}
