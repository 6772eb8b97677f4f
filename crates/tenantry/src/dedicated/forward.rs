//! Forwarding a request to a dedicated tenant's own server: the body streamed both ways,
//! `Host` kept, `X-Forwarded-For` added to and `X-Forwarded-Proto` added if absent.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderValue;
use axum::response::Response;
use http_body::Body as _;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use super::{MOUNT_HEADER, ROUTER_HEADER};
use crate::slug::Slug;

/// A connection to the tenant's server, ready for one request; `None` if nothing answers
/// at `address` (the server died since it was last checked).
pub(crate) async fn connect(address: SocketAddr) -> Option<SendRequest<Body>> {
    let stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(sender)
}

/// Sends `request` on `sender`, with the forwarding headers, and streams the reply back;
/// `Err` if the connection failed before an answer, with the request if it has no body
/// (so that it can be sent again elsewhere).
pub(crate) async fn send(
    mut sender: SendRequest<Body>,
    mut request: Request,
    (slug, mount, mark): (&Slug, &str, Option<&str>),
) -> Result<Response, Option<Request>> {
    // Set by us alone: a client's own headers are replaced.
    let headers = request.headers_mut();
    headers.remove(ROUTER_HEADER);
    if let Some(value) = mark.and_then(|m| HeaderValue::from_str(m).ok()) {
        headers.insert(ROUTER_HEADER, value);
    }
    headers.remove(MOUNT_HEADER);
    if let Ok(value) = HeaderValue::from_str(mount)
        && !mount.is_empty()
    {
        headers.insert(MOUNT_HEADER, value);
    }
    let again = (request.body().size_hint().exact() == Some(0)).then(|| {
        let mut copy = Request::new(Body::empty());
        *copy.method_mut() = request.method().clone();
        *copy.uri_mut() = request.uri().clone();
        *copy.headers_mut() = request.headers().clone();
        *copy.version_mut() = request.version();
        if let Some(info) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
            copy.extensions_mut().insert(*info);
        }
        copy
    });
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(client)| client.ip().to_string());
    let headers = request.headers_mut();
    if let Some(client) = client {
        let chain = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(earlier) => format!("{earlier}, {client}"),
            None => client,
        };
        if let Ok(value) = HeaderValue::from_str(&chain) {
            headers.insert("x-forwarded-for", value);
        }
    }
    // A proxy in front (nginx terminating TLS) said how the client came; else plain http.
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    }
    match sender.send_request(request).await {
        Ok(response) => Ok(response.map(Body::new)),
        Err(error) => {
            tracing::warn!(tenant = %slug, %error, "the tenant's server did not answer");
            Err(again)
        }
    }
}
