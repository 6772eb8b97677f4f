//! [`ApiJson`]: axum's `Json` with JSON error bodies.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tenantry::http::input::{NUL_MESSAGE, nul_character_at, without_position};

use crate::error::detail_response;

/// A JSON request body or response. A body that cannot be read is refused with
/// 400 `{"detail":"JSON parse error - ..."}`, or 415 when it is not sent as JSON; text
/// holding a NUL character with 400 `{"<field>":["Null characters are not allowed."]}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
        match Json::<Value>::from_request(req, state).await {
            Ok(Json(value)) => {
                if let Some(field) = nul_character_at(&value) {
                    let errors = json!({ field: [NUL_MESSAGE] });
                    return Err((StatusCode::BAD_REQUEST, Json(errors)).into_response());
                }
                T::deserialize(value).map(Self).map_err(|e| parse_error(&e))
            }
            Err(JsonRejection::MissingJsonContentType(_)) => {
                let media_type = content_type
                    .as_ref()
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default();
                Err(detail_response(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    &format!("Unsupported media type \"{media_type}\" in request."),
                ))
            }
            Err(JsonRejection::JsonDataError(error)) => Err(parse_error(&error)),
            Err(JsonRejection::JsonSyntaxError(error)) => Err(parse_error(&error)),
            Err(other) => Err(detail_response(
                other.status(),
                without_position(&other.body_text()),
            )),
        }
    }
}

/// 400 naming what serde could not parse, without axum's prefix.
fn parse_error(error: &dyn std::error::Error) -> Response {
    let cause = error.source().unwrap_or(error);
    detail_response(
        StatusCode::BAD_REQUEST,
        &format!(
            "JSON parse error - {}",
            without_position(&cause.to_string())
        ),
    )
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}
