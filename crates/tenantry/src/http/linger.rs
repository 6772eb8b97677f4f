//! [`Lingering`]: a connection that, when the server closes it, first reads and discards
//! what the client is still sending, for a bounded time, as nginx's `lingering_close` does.
//!
//! A server may answer before it has read a request's body (401, 405, 413). Closing the
//! socket with unread data in it makes the kernel send a reset instead of a FIN, and a reset
//! can discard the answer before the client has read it: the client (or a router in front)
//! sees a broken connection instead of the 413. Shutting down the sending side first and
//! draining the rest lets the answer arrive.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// How long a closing connection keeps reading what its client still sends.
const LINGER: Duration = Duration::from_secs(5);

/// An I/O stream whose shutdown lingers; see the module documentation.
pub(crate) struct Lingering<T> {
    inner: T,
    /// Set once the sending side is shut down: until when the rest is drained.
    draining: Option<Pin<Box<Sleep>>>,
}

impl<T> Lingering<T> {
    pub(crate) fn new(inner: T) -> Self {
        Self {
            inner,
            draining: None,
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Lingering<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Lingering<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
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
