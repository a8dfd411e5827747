//! `log`: guest log lines into the host's `tracing` log, tagged with the
//! agent. Scope: none. Per-instance state: the agent name and a size cap.
use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use crate::bindings::agentkernel::agent::log::{self as wit, Level};
use crate::runtime::InstanceState;

/// Longest log line kept; the rest is cut, never rejected.
pub const MAX_LINE_BYTES: usize = 8 * 1024;

pub struct LogState {
    agent: Arc<str>,
    /// Bytes this call may still log; shares the stdout cap's size.
    remaining: u64,
    dropped: u64,
}

impl LogState {
    pub fn new(agent: Arc<str>, max_bytes_per_call: u64) -> Self {
        LogState { agent, remaining: max_bytes_per_call, dropped: 0 }
    }
}

impl Drop for LogState {
    fn drop(&mut self) {
        if self.dropped > 0 {
            tracing::warn!(target: "agent", agent = &*self.agent, "{} log bytes dropped (per-call cap)", self.dropped);
        }
    }
}

struct HasLog;
impl HasData for HasLog {
    type Data<'a> = &'a mut LogState;
}

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    wit::add_to_linker::<InstanceState, HasLog>(linker, |s| &mut s.caps.log)
}

/// Cuts `s` to at most `max` bytes on a char boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl wit::Host for LogState {
    async fn write(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let msg = truncate(&message, MAX_LINE_BYTES);
        // A guest logging in a loop must not flood the host's log.
        if msg.len() as u64 > self.remaining {
            self.dropped += msg.len() as u64;
            return Ok(());
        }
        self.remaining -= msg.len() as u64;
        let agent = &*self.agent;
        match level {
            Level::Trace => tracing::trace!(target: "agent", agent, "{msg}"),
            Level::Debug => tracing::debug!(target: "agent", agent, "{msg}"),
            Level::Info => tracing::info!(target: "agent", agent, "{msg}"),
            Level::Warn => tracing::warn!(target: "agent", agent, "{msg}"),
            Level::Error => tracing::error!(target: "agent", agent, "{msg}"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::bindings::agentkernel::agent::log::Host;

    #[tokio::test]
    async fn logging_past_the_per_call_cap_is_dropped_not_an_error() {
        let mut log = LogState::new("a".into(), 10);
        log.write(Level::Info, "12345".into()).await.unwrap();
        log.write(Level::Info, "1234567".into()).await.unwrap();
        log.write(Level::Info, "12345".into()).await.unwrap();
        assert_eq!((log.remaining, log.dropped), (0, 7));
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
