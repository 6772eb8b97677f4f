//! `GET /`: links to the API's collections; a browser gets the tenant's welcome page.

use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tenantry::Tenant;
use tenantry::http::MountPath;

use crate::auth::AuthUser;
use crate::domain::rules::Settings;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::welcome;

/// `{"polls": "http://<host><mount>/polls/"}`, with the request's own `Host` header, for a
/// logged-in API client; a short page with the ways in for a browser.
pub(super) async fn index(
    user: Result<AuthUser, ApiError>,
    tenant: Tenant,
    settings: Settings,
    MountPath(mount): MountPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if welcome::wants_html(&headers) {
        let name = settings
            .branding
            .display_name
            .as_deref()
            .unwrap_or(&tenant.name);
        return Ok(welcome::tenant(&headers, name, &mount));
    }
    user?;
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .ok_or_else(|| ApiError::BadRequest(json!({ "detail": "Missing Host header." })))?;
    let links: ApiJson<Value> = ApiJson(json!({ "polls": format!("http://{host}{mount}/polls/") }));
    Ok(links.into_response())
}
