//! The platform API, served on the public site: manage tenants over HTTP.
//!
//! `POST /api/tenants` creates a tenant, `GET /api/tenants` lists them, and
//! `GET|PATCH|DELETE /api/tenants/{slug}` read, change and delete one. Every route needs
//! `Authorization: Bearer <platform token>`. Mount it behind a layer that trims trailing
//! slashes, as the polls app does, to accept `/api/tenants/` too. Every change is recorded
//! in the catalog's audit log as `platform-api`'s.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::db_server::DbServerName;
use crate::error::{Error, ErrorKind};
use crate::host::HostName;
use crate::http::input::{NUL_MESSAGE, nul_character_at};
use crate::lifecycle::{NewTenant, TenantUpdate};
use crate::secret::same_token;
use crate::slug::Slug;
use crate::tenancy::Tenancy;
use crate::tenant::{IsolationMode, TenantStatus};

/// Who the audit log says made the platform API's changes.
const ACTOR: &str = "platform-api";

/// The platform API's routes, guarded by `token`.
pub fn router(tenancy: Tenancy, token: String) -> Router {
    Router::new()
        .route("/api/tenants", get(list).post(create))
        .route(
            "/api/tenants/{slug}",
            get(show).patch(update).delete(delete),
        )
        .route_layer(middleware::from_fn_with_state(token, require_token))
        .with_state(tenancy)
}

/// An error of the platform API, as JSON with a deliberate status.
struct ApiError(StatusCode, serde_json::Value);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(self.1)).into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let kind = error.kind();
        match &error {
            Error::Invalid { field, message } => {
                ApiError(kind.status(), json!({ *field: [message] }))
            }
            Error::InvalidSettings(errors) => {
                ApiError(kind.status(), json!({ "settings": errors }))
            }
            // A server named in a request body: that field is wrong.
            Error::DbServerNotFound(_) => ApiError(
                StatusCode::BAD_REQUEST,
                json!({ "server": [error.to_string()] }),
            ),
            _ if kind == ErrorKind::Internal => {
                tracing::error!(%error, "platform API failure");
                ApiError(kind.status(), json!({ "detail": "Internal server error." }))
            }
            _ => ApiError(kind.status(), json!({ "detail": error.to_string() })),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({ "detail": "Unsupported media type; send application/json." }),
            ),
            // The body could not be read: too large (413), or cut off.
            JsonRejection::BytesRejection(unread) => ApiError(
                unread.status(),
                json!({ "detail": super::input::without_position(&unread.body_text()) }),
            ),
            other => ApiError(
                StatusCode::BAD_REQUEST,
                json!({
                    "detail": format!(
                        "JSON parse error - {}",
                        super::input::without_position(&other.body_text())
                    )
                }),
            ),
        }
    }
}

async fn require_token(State(token): State<String>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let detail = match given {
        None => "Authentication credentials were not provided.",
        Some(given) if same_token(&token, given) => {
            return next.run(request).await;
        }
        Some(_) => "Invalid token.",
    };
    let mut response =
        (StatusCode::UNAUTHORIZED, Json(json!({ "detail": detail }))).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// A JSON body as `T`; a NUL character in any of its text is refused naming the field.
fn parse<T: DeserializeOwned>(
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<T, ApiError> {
    let Json(body) = body?;
    if let Some(field) = nul_character_at(&body) {
        return Err(field_error(&field, NUL_MESSAGE));
    }
    serde_json::from_value(body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            json!({ "detail": format!("JSON parse error - {e}") }),
        )
    })
}

/// A slug from the URL; one that cannot be valid names no tenant.
fn path_slug(raw: &str) -> Result<Slug, ApiError> {
    Slug::parse(raw).map_err(|_| Error::TenantNotFound(raw.to_owned()).into())
}

fn field_error(field: &str, message: impl ToString) -> ApiError {
    ApiError(
        StatusCode::BAD_REQUEST,
        json!({ field: [message.to_string()] }),
    )
}

async fn list(State(tenancy): State<Tenancy>) -> Result<Response, ApiError> {
    Ok(Json(tenancy.catalog().list().await?).into_response())
}

#[derive(Deserialize)]
struct CreateBody {
    slug: Option<String>,
    name: Option<String>,
    #[serde(default)]
    domains: Vec<String>,
    server: Option<String>,
    isolation: Option<String>,
}

async fn create(
    State(tenancy): State<Tenancy>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body: CreateBody = parse(body)?;
    let slug = body
        .slug
        .ok_or_else(|| field_error("slug", "This field is required."))?;
    let slug = Slug::parse(&slug).map_err(|e| field_error("slug", e))?;
    let domains = body
        .domains
        .iter()
        .map(|d| HostName::parse(d).map_err(|e| field_error("domains", format!("'{d}': {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let server = body
        .server
        .as_deref()
        .map(DbServerName::parse)
        .transpose()?;
    let isolation = match body.isolation.as_deref() {
        None => tenancy.default_isolation(),
        Some(raw) => raw
            .parse::<IsolationMode>()
            .map_err(|e| field_error("isolation", e))?,
    };
    let new = NewTenant {
        slug,
        name: body.name,
        domains,
        server,
        isolation,
    };
    let target = new.slug.to_string();
    let change = {
        let tenancy = tenancy.clone();
        async move { tenancy.create_tenant(new).await }
    };
    let created = tenancy
        .audited(ACTOR, "tenant.create", &target, change)
        .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn show(
    State(tenancy): State<Tenancy>,
    Path(slug): Path<String>,
) -> Result<Response, ApiError> {
    let slug = path_slug(&slug)?;
    Ok(Json(tenancy.catalog().details(&slug).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    name: Option<String>,
    slug: Option<String>,
    status: Option<SettableStatus>,
    settings: Option<serde_json::Value>,
}

/// The statuses the API sets: a tenant is pending or deleted by other means.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum SettableStatus {
    Active,
    Suspended,
}

impl From<SettableStatus> for TenantStatus {
    fn from(status: SettableStatus) -> Self {
        match status {
            SettableStatus::Active => Self::Active,
            SettableStatus::Suspended => Self::Suspended,
        }
    }
}

async fn update(
    State(tenancy): State<Tenancy>,
    Path(slug): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let slug = path_slug(&slug)?;
    let body: UpdateBody = parse(body)?;
    let new_slug = body
        .slug
        .map(|s| Slug::parse(&s).map_err(|e| field_error("slug", e)))
        .transpose()?;
    let update = TenantUpdate {
        name: body.name,
        slug: new_slug,
        status: body.status.map(TenantStatus::from),
        settings: body.settings,
    };
    let target = slug.to_string();
    let change = {
        let tenancy = tenancy.clone();
        async move { tenancy.update_tenant(&slug, update).await }
    };
    let updated = tenancy
        .audited(ACTOR, "tenant.update", &target, change)
        .await?;
    Ok(Json(updated).into_response())
}

async fn delete(
    State(tenancy): State<Tenancy>,
    Path(slug): Path<String>,
) -> Result<Response, ApiError> {
    let slug = path_slug(&slug)?;
    let target = slug.to_string();
    let change = {
        let tenancy = tenancy.clone();
        async move { tenancy.delete_tenant(&slug).await }
    };
    tenancy
        .audited(ACTOR, "tenant.delete", &target, change)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
