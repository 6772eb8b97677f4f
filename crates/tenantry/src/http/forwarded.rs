//! A request for a dedicated tenant, forwarded to its own server: started again if it died,
//! and a settings change it hands back applied to the catalog.

use axum::extract::Request;
use axum::response::{IntoResponse, Response};

use super::rejection::TenancyRejection;
use super::settings_update;
use crate::dedicated::forward;
use crate::lifecycle::TenantUpdate;
use crate::tenancy::Tenancy;
use crate::tenant::Tenant;

/// Forwards `request` to the tenant's own server. If nothing answers there (it died since it
/// was checked), or it dies under a request without a body, the supervisor starts it again
/// and the request goes to the new one.
pub(super) async fn forward_to(
    tenancy: &Tenancy,
    (tenant, mount): (&Tenant, &str),
    address: std::net::SocketAddr,
    request: Request,
) -> Response {
    let sender = match forward::connect(address).await {
        Some(sender) => sender,
        None => match restart(tenancy, tenant).await {
            Ok(sender) => sender,
            Err(response) => return response,
        },
    };
    let mark = tenancy.router_secret();
    let again = match forward::send(sender, request, (&tenant.slug, mount, mark)).await {
        Ok(response) => return settings_handed_back(tenancy, tenant, response).await,
        Err(Some(again)) => again,
        Err(None) => {
            return TenancyRejection::InstanceUnavailable(tenant.slug.to_string()).into_response();
        }
    };
    // The server died under a request without a body: once more, on its successor.
    match restart(tenancy, tenant).await {
        Ok(sender) => match forward::send(sender, again, (&tenant.slug, mount, mark)).await {
            Ok(response) => response,
            Err(_) => {
                TenancyRejection::InstanceUnavailable(tenant.slug.to_string()).into_response()
            }
        },
        Err(response) => response,
    }
}

/// Applies the settings change the tenant's server handed back in `response`, if any (see
/// [`SettingsUpdate`](super::SettingsUpdate)), before passing the answer on. The answer is
/// read whole first: applying the change hands it to the server (or starts it again).
async fn settings_handed_back(
    tenancy: &Tenancy,
    tenant: &Tenant,
    mut response: Response,
) -> Response {
    let Some(change) = settings_update::take_change(&mut response) else {
        return response;
    };
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(body) => body,
        Err(_) => {
            return TenancyRejection::InstanceUnavailable(tenant.slug.to_string()).into_response();
        }
    };
    let applied = match change {
        Ok(patch) => {
            let update = TenantUpdate {
                settings: Some(patch),
                ..TenantUpdate::default()
            };
            tenancy.update_tenant(&tenant.slug, update).await.map(drop)
        }
        Err(error) => {
            tracing::error!(tenant = %tenant.slug, %error, "a tenant's server handed back a malformed settings change");
            return TenancyRejection::Internal("Malformed settings change.").into_response();
        }
    };
    match applied {
        Ok(()) => Response::from_parts(parts, axum::body::Body::from(body)),
        Err(error) => TenancyRejection::from(error).into_response(),
    }
}

/// The tenant's server started again, connected to.
async fn restart(
    tenancy: &Tenancy,
    tenant: &Tenant,
) -> Result<hyper::client::conn::http1::SendRequest<axum::body::Body>, Response> {
    let address = tenancy
        .restart_instance(tenant)
        .await
        .map_err(|e| TenancyRejection::from(e).into_response())?;
    forward::connect(address).await.ok_or_else(|| {
        TenancyRejection::InstanceUnavailable(tenant.slug.to_string()).into_response()
    })
}
