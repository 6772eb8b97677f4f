//! [`TenancyRejection`]: every way the tenancy layer can refuse a request, as a JSON response.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::host::HostError;

/// A request the tenancy layer or its extractors could not serve.
#[derive(Debug, thiserror::Error)]
pub enum TenancyRejection {
    /// 400: the `Host` header is missing or malformed.
    #[error("Invalid Host header: {0}.")]
    InvalidHost(HostError),
    /// 404: no tenant owns this host.
    #[error("No tenant for host '{0}'")]
    NoTenantForHost(String),
    /// 421: a tenant's own server was sent a host that is not its tenant's (a stale
    /// router configuration); it serves no other tenant's site.
    #[error("This server does not serve host '{0}'.")]
    MisdirectedHost(String),
    /// 404: the path prefix or header names no tenant.
    #[error("No tenant '{0}'")]
    NoTenantNamed(String),
    /// 403: the tenant exists but is suspended.
    #[error("Tenant '{0}' is suspended.")]
    Suspended(String),
    /// 503: the database could not be reached in time; the client may retry.
    #[error("The database is busy; retry shortly.")]
    Unavailable,
    /// 503: the tenant is being moved; reads are served, writes wait for the move.
    #[error("Tenant '{0}' is being moved; writes resume when the move is done, retry shortly.")]
    Moving(String),
    /// 503: the tenant was deleted, moved or renamed while the request ran, which is why it
    /// failed; a retry finds it where it is now, or not at all.
    #[error("Tenant '{0}' changed while this request ran; retry.")]
    Changed(String),
    /// 503: the tenant's own server is starting, or backing off after dying.
    #[error("The server of tenant '{0}' is not available; retry shortly.")]
    InstanceUnavailable(String),
    /// 500: a server-side failure, logged where it happened.
    #[error("{0}")]
    Internal(&'static str),
}

impl From<HostError> for TenancyRejection {
    fn from(error: HostError) -> Self {
        Self::InvalidHost(error)
    }
}

impl From<sqlx::Error> for TenancyRejection {
    fn from(error: sqlx::Error) -> Self {
        match error {
            e if crate::error::is_unavailable(&e) => {
                tracing::warn!(error = %e, "the database is unavailable");
                Self::Unavailable
            }
            other => {
                tracing::error!(error = %other, "database error in tenant context");
                Self::Internal("Database error.")
            }
        }
    }
}

impl From<crate::Error> for TenancyRejection {
    fn from(error: crate::Error) -> Self {
        match error {
            crate::Error::Database(e) => e.into(),
            crate::Error::InstanceUnavailable(slug) => Self::InstanceUnavailable(slug),
            other if other.kind() == crate::ErrorKind::Unavailable => Self::Unavailable,
            other => {
                tracing::error!(error = %other, "tenant catalog error");
                Self::Internal("Tenant catalog error.")
            }
        }
    }
}

impl TenancyRejection {
    /// The status code this rejection is sent with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidHost(_) => StatusCode::BAD_REQUEST,
            Self::NoTenantForHost(_) | Self::NoTenantNamed(_) => StatusCode::NOT_FOUND,
            Self::MisdirectedHost(_) => StatusCode::MISDIRECTED_REQUEST,
            Self::Suspended(_) => StatusCode::FORBIDDEN,
            Self::Unavailable
            | Self::Moving(_)
            | Self::Changed(_)
            | Self::InstanceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for TenancyRejection {
    fn into_response(self) -> Response {
        let mut response =
            (self.status(), Json(json!({ "detail": self.to_string() }))).into_response();
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
