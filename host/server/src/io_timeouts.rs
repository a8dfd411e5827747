//! Timeouts on the bytes of a connection: a write the client does not
//! read ([`GuardedIo`]) and a request body the client stops sending
//! ([`StallTimeoutBody`]) fail after a configured time without progress.
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::listener::Activity;

/// The socket, with a write timeout: a write (or flush) still pending
/// `write_timeout` after it first blocked fails with `TimedOut`, so hyper
/// drops the connection and whatever it was sending. Reads and writes that
/// move bytes are reported to the connection's [`Activity`].
pub(super) struct GuardedIo {
    stream: TcpStream,
    write_timeout: Duration,
    /// Running while a write is blocked; reset whenever one succeeds.
    stalled: Option<Pin<Box<Sleep>>>,
    activity: Arc<Activity>,
}

impl GuardedIo {
    pub(super) fn new(stream: TcpStream, write_timeout: Duration, activity: Arc<Activity>) -> Self {
        GuardedIo { stream, write_timeout, stalled: None, activity }
    }

    /// Maps a write's poll result through the stall timer.
    fn guard<T>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<T>>, progressed: impl Fn(&T) -> bool) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(Ok(value)) => {
                if progressed(&value) {
                    self.stalled = None;
                    self.activity.write_progress();
                }
                Poll::Ready(Ok(value))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let timeout = self.write_timeout;
                let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match stalled.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the client read nothing for {} ms", timeout.as_millis()),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_progress();
        }
        polled
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, data);
        self.guard(cx, polled, |n: &usize| *n > 0)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.guard(cx, polled, |n: &usize| *n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.stream).poll_flush(cx);
        self.guard(cx, polled, |_: &()| false)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.stream).poll_shutdown(cx);
        self.guard(cx, polled, |_: &()| false)
    }
}

/// How many stall timeouts the whole body may take: a client trickling a
/// byte just inside each stall timeout is still cut off.
pub(super) const WHOLE_BODY_TIMEOUTS: u32 = 3;

/// A request body whose next frame must arrive within `timeout` of the
/// client being asked for it, and whose whole within
/// [`WHOLE_BODY_TIMEOUTS`] × `timeout`: a client that announces a body and
/// stops sending it, or sends it a byte at a time, cannot hold a handler
/// (and its connection) for long.
pub(super) struct StallTimeoutBody {
    body: Incoming,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
    whole: Pin<Box<Sleep>>,
}

impl StallTimeoutBody {
    pub(super) fn new(body: Incoming, timeout: Duration) -> Self {
        let whole = Box::pin(tokio::time::sleep(timeout * WHOLE_BODY_TIMEOUTS));
        StallTimeoutBody { body, timeout, stalled: None, whole }
    }
}

impl Body for StallTimeoutBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if !self.body.is_end_stream() && self.whole.as_mut().poll(cx).is_ready() {
            let limit = self.timeout * WHOLE_BODY_TIMEOUTS;
            return Poll::Ready(Some(Err(format!("the request body took longer than {} ms", limit.as_millis()).into())));
        }
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.stalled = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match stalled.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(
                        format!("the client sent none of the request body for {} ms", timeout.as_millis()).into()
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
