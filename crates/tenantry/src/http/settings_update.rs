//! [`SettingsUpdate`]: how a handler changes its own tenant's settings, in every mode.
//!
//! A handler served by [`TenancyLayer`](crate::TenancyLayer) changes the catalog itself. A
//! dedicated tenant's own server cannot reach the catalog: it checks the change against the
//! schema and answers with it in [`SETTINGS_HEADER`], which the router that forwarded the
//! request applies to that tenant, and to no other, before passing the answer on. Only a
//! router that applies such answers marks the requests it forwards ([`ROUTER_HEADER`](crate::http::ROUTER_HEADER));
//! anything else that reaches the server directly (nginx removes the mark) gets no
//! update, so a change can never be acknowledged and then lost.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use serde_json::Value;

use crate::error::Error;
use crate::http::rejection::TenancyRejection;
use crate::http::scope::{RequestScope, SettingsWriter};
use crate::lifecycle::TenantUpdate;
use crate::tenant::Tenant;

/// A settings change a dedicated tenant's server hands back to its router: the patch, as
/// hex-encoded JSON (so that any text fits a header).
pub const SETTINGS_HEADER: HeaderName = HeaderName::from_static("x-tenantry-settings");

/// Changes the request's own tenant's settings, wherever the request is served.
pub struct SettingsUpdate {
    tenant: Arc<Tenant>,
    writer: SettingsWriter,
}

impl<S: Send + Sync> FromRequestParts<S> for SettingsUpdate {
    type Rejection = TenancyRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let scope = RequestScope::of(parts)?;
        Ok(Self {
            tenant: scope.tenant.clone(),
            writer: scope.settings.clone(),
        })
    }
}

impl SettingsUpdate {
    /// Whether this server can change the settings.
    pub fn available(&self) -> bool {
        !matches!(self.writer, SettingsWriter::None)
    }

    /// Applies `patch` (as [`SettingsSchema::apply`] takes it) and answers `response`, or
    /// refuses it ([`Error::InvalidSettings`] for invalid keys, [`Error::Invalid`] where the
    /// settings cannot be changed here). Through a router, the change is made when the
    /// router receives `response`.
    pub async fn apply(&self, patch: Value, mut response: Response) -> Result<Response, Error> {
        match &self.writer {
            SettingsWriter::Catalog(tenancy) => {
                let update = TenantUpdate {
                    settings: Some(patch),
                    ..TenantUpdate::default()
                };
                tenancy.update_tenant(&self.tenant.slug, update).await?;
            }
            SettingsWriter::Router(schema) => {
                schema.apply(&self.tenant.settings, &patch)?;
                let encoded = hex::encode(patch.to_string());
                let value = HeaderValue::try_from(encoded).expect("hex is a valid header value");
                response.headers_mut().insert(SETTINGS_HEADER, value);
            }
            SettingsWriter::None => {
                return Err(Error::Invalid {
                    field: "settings",
                    message: "this server cannot change the tenant's settings".into(),
                });
            }
        }
        Ok(response)
    }
}

/// The settings change a tenant's server handed back in `response`, removed from it.
/// `Err` if the header is not what [`SettingsUpdate::apply`] writes.
#[cfg(feature = "dedicated")]
pub(crate) fn take_change(response: &mut Response) -> Option<Result<Value, String>> {
    let value = response.headers_mut().remove(SETTINGS_HEADER)?;
    let decoded = hex::decode(value.as_bytes())
        .map_err(|e| e.to_string())
        .and_then(|json| serde_json::from_slice(&json).map_err(|e| e.to_string()));
    Some(decoded)
}
