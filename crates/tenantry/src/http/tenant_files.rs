//! [`TenantFiles`] as an extractor: a handler's files, always its own tenant's.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::files::TenantFiles;
use crate::http::rejection::TenancyRejection;
use crate::http::scope::RequestScope;

impl<S: Send + Sync> FromRequestParts<S> for TenantFiles {
    type Rejection = TenancyRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let scope = RequestScope::of(parts)?;
        match &scope.files {
            Some(files) => Ok(files.tenant(scope.tenant.id)),
            None => {
                tracing::error!("a handler asked for TenantFiles, and no file store is configured");
                Err(TenancyRejection::Internal("No file store is configured."))
            }
        }
    }
}
