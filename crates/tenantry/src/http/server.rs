//! [`serve`]: serves an app with bounds on what slow, idle and numerous clients can hold, and
//! a shutdown that ends on time.
//!
//! - A request's head must arrive within [`ServerLimits::header_read_timeout`] of the server
//!   starting to wait for it, and its body within [`ServerLimits::body_read_timeout`] of the
//!   head.
//! - A connection with no request in progress is closed after
//!   [`ServerLimits::keep_alive_timeout`].
//! - Beyond [`ServerLimits::max_connections`] open connections, a new one is answered at once
//!   with 503 and `Retry-After` and closed.
//! - A connection the server closes while the client still sends is drained for a few
//!   seconds first, so that an answer given before the body was read reaches the client
//!   ([`ServedConnection`]), and what hyper refuses itself is answered in JSON too.
//! - On the first shutdown signal the listener closes and open connections finish their
//!   requests; after [`ServerLimits::shutdown_grace`], or at a second signal, a request whose
//!   body is still arriving is answered 503 with `Retry-After`, and `serve` returns.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::http::client::{ClientAddr, TrustedProxies};
use crate::http::connection::{GiveUp, ServedConnection};

/// How long clients may take and how many may be connected; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// How long a client may take to send a request's head (408 after it).
    pub header_read_timeout: Duration,
    /// How long a client may take between chunks of a request's body.
    pub body_read_timeout: Duration,
    /// How long an idle kept-alive connection stays open.
    pub keep_alive_timeout: Duration,
    /// How many connections are served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// How long requests in progress may finish after shutdown begins.
    pub shutdown_grace: Duration,
    /// The proxies whose forwarding headers name a request's [`ClientAddr`].
    pub trusted_proxies: TrustedProxies,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(15),
            max_connections: 4096,
            shutdown_grace: Duration::from_secs(10),
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` yields (first graceful, then at
/// once). Each request carries its connection's peer, [`ConnectInfo<SocketAddr>`], and its
/// client, [`ClientAddr`] (the peer, or who the trusted proxies say they forwarded for).
///
/// ```no_run
/// # async fn run(app: axum::Router) -> std::io::Result<()> {
/// use tenantry::{ServerLimits, serve};
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
/// let ctrl_c = Box::pin(async {
///     tokio::signal::ctrl_c().await.ok();
/// });
/// serve(listener, app, ServerLimits::default(), futures::stream::once(ctrl_c)).await;
/// # Ok(()) }
/// ```
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    mut shutdown: impl Stream<Item = ()> + Unpin,
) {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopped) = watch::channel(false);
    let (give_up, given_up) = watch::channel(false);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, client)) => match open.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let connection = Connection {
                            app: app.clone(),
                            limits: limits.clone(),
                            client,
                            given_up: given_up.clone(),
                        };
                        let stopped = stopped.clone();
                        tokio::spawn(async move {
                            connection.run(stream, stopped).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        tokio::spawn(refuse(stream));
                    }
                },
                // Out of file descriptors, most likely: wait for some to be given back.
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.next() => break,
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let busy = limits.max_connections - open.available_permits();
    if busy > 0 {
        let connections = match busy {
            1 => "1 connection".to_owned(),
            n => format!("{n} connections"),
        };
        tracing::warn!(
            "shutting down: {connections} still open, waiting up to {} s for them; a second \
             Ctrl-C (or SIGTERM) stops at once",
            limits.shutdown_grace.as_secs()
        );
    }
    let everyone = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    tokio::select! {
        _ = open.acquire_many(everyone) => {
            tracing::info!("every connection finished; stopped");
            return;
        }
        _ = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!("connections still open after the shutdown grace; stopping anyway");
        }
        _ = shutdown.next() => tracing::warn!("stopping at once"),
    }
    // Requests still waiting for their body are answered 503 rather than cut off; a moment
    // for those answers to go out.
    let _ = give_up.send(true);
    let _ = tokio::time::timeout(Duration::from_millis(500), open.acquire_many(everyone)).await;
}

/// The answer to a request whose body was still arriving when the server stopped waiting.
fn shutting_down() -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = r#"{"detail":"The server is shutting down; retry shortly."}"#;
    let headers = [
        (axum::http::header::RETRY_AFTER, "1"),
        (axum::http::header::CONTENT_TYPE, "application/json"),
        (axum::http::header::CONNECTION, "close"),
    ];
    (axum::http::StatusCode::SERVICE_UNAVAILABLE, headers, body).into_response()
}

/// Answers a connection over the limit with 503 and closes it, without waiting on the client
/// for more than a second.
async fn refuse(mut stream: TcpStream) {
    const BODY: &str = r#"{"detail":"Too many open connections; retry shortly."}"#;
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(reply.as_bytes())).await;
}

struct Connection {
    app: Router,
    limits: ServerLimits,
    client: SocketAddr,
    /// Becomes true when the server stops waiting for request bodies.
    given_up: watch::Receiver<bool>,
}

impl Connection {
    async fn run(self, stream: TcpStream, mut stopped: watch::Receiver<bool>) {
        let Self {
            app,
            limits,
            client,
            given_up,
        } = self;
        let activity = Arc::new(Activity::default());
        let requests = activity.clone();
        let mut gave_up = given_up.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            // Most requests have no body, and then no deadline to keep.
            let cut = Arc::new(AtomicBool::new(false));
            let mut request = request.map(|body| match body.is_end_stream() {
                true => Body::empty(),
                false => Body::new(Deadline::new(
                    body,
                    limits.body_read_timeout,
                    (given_up.clone(), cut.clone()),
                )),
            });
            let address = limits
                .trusted_proxies
                .client(client.ip(), request.headers());
            request.extensions_mut().insert(ConnectInfo(client));
            request.extensions_mut().insert(ClientAddr(address));
            let busy = requests.start();
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await;
                drop(busy);
                match cut.load(Ordering::Acquire) {
                    true => Ok(shutting_down()),
                    false => response,
                }
            }
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        builder.http2().timer(TokioTimer::new());
        let busy = activity.clone();
        let give_up = GiveUp {
            given_up: Box::pin(async move {
                let _ = gave_up.wait_for(|given_up| *given_up).await;
            }),
            idle: Box::new(move || busy.busy.load(Ordering::Acquire) == 0),
        };
        let stream = ServedConnection::new(stream, Some(give_up));
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        tokio::pin!(connection);
        let mut watchdog = tokio::time::interval(limits.keep_alive_timeout / 4);
        let mut closing = false;
        loop {
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stopped.changed(), if !closing => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                _ = watchdog.tick(), if !closing => {
                    if activity.idle_for() >= limits.keep_alive_timeout {
                        closing = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }
}

/// Requests in progress on a connection, and when the last one ended.
struct Activity {
    busy: AtomicUsize,
    since: std::sync::Mutex<Instant>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            busy: AtomicUsize::new(0),
            since: std::sync::Mutex::new(Instant::now()),
        }
    }
}

impl Activity {
    fn start(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// How long the connection has had no request in progress.
    fn idle_for(&self) -> Duration {
        if self.busy.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        self.since.lock().expect("activity").elapsed()
    }
}

/// A request in progress; its end starts the idle clock again.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.since.lock().expect("activity") = Instant::now();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request body that fails once its time to arrive is up, or once the server stops
/// waiting for bodies (then marking the request `cut`, which its answer says).
struct Deadline {
    body: Incoming,
    deadline: Pin<Box<Sleep>>,
    given_up: Pin<Box<dyn Future<Output = ()> + Send + Sync>>,
    cut: Arc<AtomicBool>,
}

impl Deadline {
    fn new(
        body: Incoming,
        within: Duration,
        (mut given_up, cut): (watch::Receiver<bool>, Arc<AtomicBool>),
    ) -> Self {
        Self {
            body,
            deadline: Box::pin(tokio::time::sleep(within)),
            given_up: Box::pin(async move {
                let _ = given_up.wait_for(|given_up| *given_up).await;
            }),
            cut,
        }
    }
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err("the request body did not arrive in time".into())));
        }
        if self.given_up.as_mut().poll(cx).is_ready() {
            self.cut.store(true, Ordering::Release);
            return Poll::Ready(Some(Err("the server is shutting down".into())));
        }
        Pin::new(&mut self.body)
            .poll_frame(cx)
            .map_err(axum::BoxError::from)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
