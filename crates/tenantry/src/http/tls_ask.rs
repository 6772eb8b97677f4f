//! The answer to Caddy's on-demand TLS `ask`: whether a name may have a certificate.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;

use crate::host::HostName;
use crate::tenancy::Tenancy;

/// Where [`tls_ask`] answers, on the public site.
pub const TLS_ASK_PATH: &str = "/.well-known/tenantry/tls-ask";

#[derive(serde::Deserialize)]
struct Ask {
    domain: Option<String>,
}

/// A router for the public site answering `GET` [`TLS_ASK_PATH`]`?domain=NAME`: 200 when
/// `NAME` is the platform's own or a verified domain of an active tenant
/// ([`Tenancy::serves_host`]), 404 when it is not (Caddy then issues no certificate), 400
/// when it is no host name.
pub fn tls_ask(tenancy: Tenancy) -> Router {
    Router::new()
        .route(TLS_ASK_PATH, get(answer))
        .with_state(tenancy)
}

async fn answer(State(tenancy): State<Tenancy>, Query(ask): Query<Ask>) -> (StatusCode, String) {
    let Some(domain) = ask.domain else {
        return (StatusCode::BAD_REQUEST, "give the name as ?domain=".into());
    };
    let host = match HostName::parse_domain(&domain) {
        Ok(host) => host,
        Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("'{domain}' is not a host name"),
            );
        }
    };
    match tenancy.serves_host(&host).await {
        Ok(true) => (StatusCode::OK, format!("{host} is served here")),
        Ok(false) => (StatusCode::NOT_FOUND, format!("{host} is not served here")),
        Err(error) => {
            tracing::error!(%error, %host, "the TLS ask could not read the catalog");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the catalog cannot be read".into(),
            )
        }
    }
}
