//! `GET /`: links to the API's collections.

use axum::http::{HeaderMap, header};
use serde_json::{Value, json};
use tenantry::http::MountPath;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::json::ApiJson;

/// `{"polls": "http://<host><mount>/polls/"}`, with the request's own `Host` header.
pub(super) async fn index(
    _user: AuthUser,
    MountPath(mount): MountPath,
    headers: HeaderMap,
) -> Result<ApiJson<Value>, ApiError> {
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .ok_or_else(|| ApiError::BadRequest(json!({ "detail": "Missing Host header." })))?;
    Ok(ApiJson(
        json!({ "polls": format!("http://{host}{mount}/polls/") }),
    ))
}
