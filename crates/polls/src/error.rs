//! [`ApiError`]: every way a handler can fail, each sent as a JSON response.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use tenantry::TenancyRejection;

use crate::domain::Refused;

/// Validation messages per field, sent as `{"field": ["message", ...]}`.
#[derive(Debug, Default, Serialize)]
pub struct FieldErrors(BTreeMap<&'static str, Vec<String>>);

impl FieldErrors {
    /// Returns the value of a validated field, or records its message and returns `None`.
    pub fn check<T>(&mut self, field: &'static str, result: Result<T, String>) -> Option<T> {
        result
            .map_err(|message| self.0.entry(field).or_default().push(message))
            .ok()
    }

    /// Every message, field by field.
    pub fn messages(&self) -> Vec<String> {
        self.0.values().flatten().cloned().collect()
    }
}

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404 `{"detail":"Not found."}`.
    #[error("Not found.")]
    NotFound,
    /// 403 `{"detail": message}`.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 400 with one list of messages per invalid field.
    #[error("invalid fields: {0:?}")]
    Fields(FieldErrors),
    /// 400 with this JSON body as is.
    #[error("bad request: {0}")]
    BadRequest(serde_json::Value),
    /// 401 `{"detail": message}` with `WWW-Authenticate: Token`.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 429 with `Retry-After` (seconds): too many sign-ups or logins.
    #[error("throttled for {0} s")]
    Throttled(u64),
    /// 503 with `Retry-After`: too much password hashing queued.
    #[error("busy")]
    Busy,
    /// 503 when the database is busy or its connection was lost, otherwise 500; the details
    /// are logged, not sent.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Whatever the tenancy layer's extractors refused with.
    #[error(transparent)]
    Tenancy(#[from] TenancyRejection),
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Field(field, message) => Self::field(field, message),
            Refused::Database(error) => error.into(),
        }
    }
}

impl From<tenantry::Error> for ApiError {
    fn from(error: tenantry::Error) -> Self {
        Self::Tenancy(TenancyRejection::from(error))
    }
}

impl ApiError {
    /// A 400 for one invalid field.
    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        Self::Fields(FieldErrors(BTreeMap::from([(field, vec![message.into()])])))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::NotFound => detail_response(StatusCode::NOT_FOUND, "Not found."),
            Self::Forbidden(message) => detail_response(StatusCode::FORBIDDEN, message),
            Self::Fields(errors) => (StatusCode::BAD_REQUEST, Json(errors)).into_response(),
            Self::BadRequest(body) => (StatusCode::BAD_REQUEST, Json(body)).into_response(),
            Self::Unauthorized(message) => (
                [(header::WWW_AUTHENTICATE, "Token")],
                detail_response(StatusCode::UNAUTHORIZED, message),
            )
                .into_response(),
            Self::Throttled(seconds) => (
                [(header::RETRY_AFTER, seconds.to_string())],
                detail_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!("Request was throttled. Expected available in {seconds} seconds."),
                ),
            )
                .into_response(),
            Self::Busy => (
                [(header::RETRY_AFTER, "1")],
                detail_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Too many password checks in progress; retry shortly.",
                ),
            )
                .into_response(),
            Self::Database(error) => TenancyRejection::from(error).into_response(),
            Self::Tenancy(rejection) => rejection.into_response(),
        }
    }
}

/// Whether a query failed on a unique constraint (SQLSTATE 23505).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|error| error.is_unique_violation())
}

/// Whether a query failed on a foreign key (SQLSTATE 23503): a row it refers to is gone.
pub fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|error| error.is_foreign_key_violation())
}

/// A response with body `{"detail": detail}`.
pub fn detail_response(status: StatusCode, detail: &str) -> Response {
    (status, Json(json!({ "detail": detail }))).into_response()
}

/// The router's fallback for paths that match no route: 404 `{"detail":"Not found."}`.
pub async fn not_found_fallback() -> ApiError {
    ApiError::NotFound
}

/// The router's fallback for a known path with an unsupported method: 405 in JSON
/// (axum adds the `Allow` header).
pub async fn method_not_allowed(method: Method) -> Response {
    detail_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("Method \"{method}\" not allowed."),
    )
}
