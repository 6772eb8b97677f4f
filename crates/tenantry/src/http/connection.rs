//! [`ServedConnection`]: the server's side of a client's connection, which mends two things
//! hyper does on its own.
//!
//! **Lingering close.** When the server closes a connection, it first reads and discards what
//! the client is still sending, for a bounded time, as nginx's `lingering_close` does. A
//! server may answer before it has read a request's body (401, 405, 413). Closing the
//! socket with unread data in it makes the kernel send a reset instead of a FIN, and a reset
//! can discard the answer before the client has read it: the client (or a router in front)
//! sees a broken connection instead of the 413. Shutting down the sending side first and
//! draining the rest lets the answer arrive.
//!
//! **A head cut short by shutdown.** When the server stops waiting (its shutdown grace is
//! over), a client still sending a request's head, which hyper cannot answer, is answered
//! `503` with `Retry-After` here, in place of a bare close.
//!
//! **JSON refusals.** hyper answers a request it cannot parse (400), whose URI (414) or head
//! (431) is too long, itself, with an empty body and no hook for another. Its answer is
//! recognised by its first bytes (no handler's answer has a `connection` header first and no
//! body) and replaced with one that says what was wrong, in JSON like every other error.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// How long a closing connection keeps reading what its client still sends.
const LINGER: Duration = Duration::from_secs(5);

/// hyper's own refusals, as it writes their heads, and the JSON that replaces their bodies.
const REFUSALS: [(&[u8], &str); 3] = [
    (
        b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n",
        r#"{"detail":"Bad request: the request line or a header is malformed."}"#,
    ),
    (
        b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\n",
        r#"{"detail":"The request URI is too long."}"#,
    ),
    (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n",
        r#"{"detail":"The request headers are too large."}"#,
    ),
];

/// The answer to a request whose head was still arriving when the server stopped waiting.
const SHUTTING_DOWN: &str = r#"{"detail":"The server is shutting down; retry shortly."}"#;

/// When the server stops waiting, and whether a request is being served then.
pub(crate) struct GiveUp {
    /// Ready once the server stops waiting for clients.
    pub(crate) given_up: Pin<Box<dyn Future<Output = ()> + Send + Sync>>,
    /// Whether no request is being served (its head, if any, is still arriving).
    pub(crate) idle: Box<dyn Fn() -> bool + Send + Sync>,
}

/// A client's connection as the server uses it; see the module documentation.
pub(crate) struct ServedConnection<T> {
    inner: T,
    /// Set once the sending side is shut down: until when the rest is drained.
    draining: Option<Pin<Box<Sleep>>>,
    /// A refusal being written in place of hyper's: the bytes left, and how many of hyper's
    /// bytes to report written once they are.
    replacing: Option<(Vec<u8>, usize)>,
    give_up: Option<GiveUp>,
    /// Whether the client sent bytes since the last answer: a head may be arriving.
    sent: bool,
    /// The shutdown answer being written, before the end of the connection.
    shutting_down: Option<Vec<u8>>,
}

impl<T> ServedConnection<T> {
    pub(crate) fn new(inner: T, give_up: Option<GiveUp>) -> Self {
        Self {
            inner,
            draining: None,
            replacing: None,
            give_up,
            sent: false,
            shutting_down: None,
        }
    }
}

impl<T: AsyncWrite + Unpin> ServedConnection<T> {
    /// Whether the server stopped waiting while a head was arriving: then the shutdown
    /// answer is written and the connection ends (`true`).
    fn cut_short(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<bool>> {
        if self.shutting_down.is_none()
            && let Some(give_up) = &mut self.give_up
            && give_up.given_up.as_mut().poll(cx).is_ready()
        {
            let idle = (give_up.idle)();
            self.give_up = None;
            if !(self.sent && idle) {
                return Poll::Ready(Ok(false));
            }
            let answer = format!(
                "HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\n\
                 content-type: application/json\r\nconnection: close\r\n\
                 content-length: {}\r\n\r\n{SHUTTING_DOWN}",
                SHUTTING_DOWN.len()
            );
            self.shutting_down = Some(answer.into_bytes());
        }
        let Some(left) = &mut self.shutting_down else {
            return Poll::Ready(Ok(false));
        };
        while !left.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, left))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            left.drain(..n);
        }
        Poll::Ready(Ok(true))
    }
}

/// The JSON answer to write instead of `head`, if `head` is one of hyper's own refusals.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    // hyper writes such an answer whole, in one write of its head alone (it has no body):
    // a chunk of another answer's body is never taken for one.
    if head.len() > 256 || !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let (prefix, detail) = REFUSALS
        .iter()
        .find(|(prefix, _)| head.starts_with(prefix))?;
    let status = &prefix[..prefix.iter().position(|b| *b == b'\r')?];
    let mut answer = status.to_vec();
    answer.extend_from_slice(
        format!(
            "\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{detail}",
            detail.len()
        )
        .as_bytes(),
    );
    Some(answer)
}

impl<T: AsyncWrite + Unpin> ServedConnection<T> {
    /// Writes `buf`, or the JSON refusal in its place when it is hyper's own.
    fn write_head(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        // An answer: what the client sent so far had its request.
        self.sent = false;
        if self.replacing.is_none() {
            match replacement(buf) {
                Some(answer) => self.replacing = Some((answer, buf.len())),
                None => return Pin::new(&mut self.inner).poll_write(cx, buf),
            }
        }
        let (left, reported) = self.replacing.as_mut().expect("a refusal under way");
        while !left.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, left))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            left.drain(..n);
        }
        let reported = *reported;
        self.replacing = None;
        Poll::Ready(Ok(reported))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for ServedConnection<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        // The end of the connection, for hyper, once the shutdown answer is out.
        if ready!(self.cut_short(cx))? {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        self.sent |= buf.filled().len() > before;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ServedConnection<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_head(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.sent = false;
        // A head is always the first slice of hyper's writes.
        match bufs.first() {
            Some(first) if self.replacing.is_some() || replacement(first).is_some() => {
                self.write_head(cx, first)
            }
            _ => Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    /// Sends FIN, then reads until the client closes too, or for [`LINGER`] at most.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.draining.is_none() {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.draining = Some(Box::pin(tokio::time::sleep(LINGER)));
        }
        let mut scratch = [0u8; 16 * 1024];
        loop {
            if let Some(deadline) = &mut this.draining
                && deadline.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match ready!(Pin::new(&mut this.inner).poll_read(cx, &mut buf)) {
                Ok(()) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Ok(()) => {}
                // The client is gone: nothing more to wait for.
                Err(_) => return Poll::Ready(Ok(())),
            }
        }
    }
}
