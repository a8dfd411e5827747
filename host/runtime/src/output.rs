//! Guest stdout/stderr: captured per call up to a byte cap, then forwarded
//! to the host log tagged with the agent. Writes past the cap are counted
//! and dropped but reported as written, so a chatty guest is never trapped
//! (Rust's `println!` panics on a failed write) and never floods the host.
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

#[derive(Clone)]
pub struct CapturedOutput {
    inner: Arc<Mutex<Buffer>>,
}

struct Buffer {
    bytes: Vec<u8>,
    capacity: usize,
    dropped: u64,
}

impl CapturedOutput {
    pub fn new(capacity: usize) -> Self {
        CapturedOutput { inner: Arc::new(Mutex::new(Buffer { bytes: Vec::new(), capacity, dropped: 0 })) }
    }

    fn append(&self, data: &[u8]) {
        let mut b = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let room = b.capacity.saturating_sub(b.bytes.len());
        let kept = room.min(data.len());
        b.bytes.extend_from_slice(&data[..kept]);
        b.dropped += (data.len() - kept) as u64;
    }

    /// Captured text (lossy UTF-8) and how many bytes were dropped.
    pub fn take(&self) -> (String, u64) {
        let mut b = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let text = String::from_utf8_lossy(&b.bytes).into_owned();
        b.bytes.clear();
        (text, std::mem::take(&mut b.dropped))
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    /// A synchronous stream instead of the default adapter, which hands
    /// every write to a background task and waits for it: with `println!`
    /// flushing each line, a guest printing 100 000 lines paid two task
    /// switches per line and could spend its whole deadline printing.
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

/// Every write is taken at once (kept or counted as dropped), so the stream
/// is always ready and never full.
#[async_trait::async_trait]
impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[async_trait::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

/// What `check-write` grants: the most a guest may hand over in one write
/// (WASI's usual 4 KiB pipe permit would only multiply host calls).
const WRITE_PERMIT: usize = 64 * 1024;

impl AsyncWrite for CapturedOutput {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_capacity_and_counts_the_rest() {
        let out = CapturedOutput::new(4);
        out.append(b"abc");
        out.append(b"defg");
        assert_eq!(out.take(), ("abcd".to_string(), 3));
        assert_eq!(out.take(), (String::new(), 0));
    }
}
