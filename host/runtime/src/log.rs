//! `log`: guest log lines into the host's `tracing` log, tagged with the
//! agent. Scope: none. Per-instance state: the agent name and the call's
//! log budget, which the guest's stdout/stderr lines are charged to as well.
//!
//! The budget counts lines as well as bytes, and charges every line a fixed
//! overhead: what a line costs the host's log is mostly its prefix
//! (timestamp, level, target, agent), so a budget of message bytes alone
//! let a guest write a million empty lines.
use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use crate::bindings::agentkernel::agent::log::{self as wit, Level};
use crate::call::InstanceState;
use crate::capability::{CallInfo, Grant, HostCapability, PrepareError, PreparedCapability};

/// Longest log line kept; the rest is cut, never rejected.
pub const MAX_LINE_BYTES: usize = 8 * 1024;

/// Bytes every line is charged beyond its message: about what the host's
/// log adds to it (timestamp, level, target and agent fields).
pub const LINE_OVERHEAD_BYTES: u64 = 64;

/// What one call may still write to the host log, through `log` and
/// stdout/stderr together, and what it was refused.
pub struct LogState {
    agent: Arc<str>,
    bytes_left: u64,
    lines_left: u64,
    dropped_lines: u64,
    dropped_bytes: u64,
}

impl LogState {
    pub fn new(agent: Arc<str>, max_bytes_per_call: u64, max_lines_per_call: u64) -> Self {
        LogState { agent, bytes_left: max_bytes_per_call, lines_left: max_lines_per_call, dropped_lines: 0, dropped_bytes: 0 }
    }

    /// Charges one line of `len` message bytes; false (and counted as
    /// dropped) when the call's line or byte budget cannot pay for it.
    fn admit(&mut self, len: usize) -> bool {
        let cost = len as u64 + LINE_OVERHEAD_BYTES;
        if self.lines_left == 0 || cost > self.bytes_left {
            self.dropped_lines += 1;
            self.dropped_bytes += len as u64;
            return false;
        }
        self.lines_left -= 1;
        self.bytes_left -= cost;
        true
    }

    /// One line the guest printed on stdout/stderr, under the same budget.
    pub fn stdio_line(&mut self, line: &str) {
        let line = truncate(line, MAX_LINE_BYTES);
        if self.admit(line.len()) {
            tracing::info!(target: "agent::stdio", agent = &*self.agent, "{line}");
        }
    }

    /// Bytes the guest printed that were never captured (the capture
    /// buffer's own cap), reported with the rest at the end of the call.
    pub fn stdio_overflow(&mut self, bytes: u64) {
        self.dropped_bytes += bytes;
    }
}

impl Drop for LogState {
    fn drop(&mut self) {
        if self.dropped_lines > 0 || self.dropped_bytes > 0 {
            tracing::warn!(
                target: "agent",
                agent = &*self.agent,
                "log budget spent: {} lines ({} bytes) dropped",
                self.dropped_lines,
                self.dropped_bytes
            );
        }
    }
}

struct HasLog;
impl HasData for HasLog {
    type Data<'a> = &'a mut LogState;
}

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    wit::add_to_linker::<InstanceState, HasLog>(linker, |s| &mut s.log)
}

/// The `log` capability. Its per-call state is the runtime's own (every
/// instance has a log budget, for stdout/stderr), so preparing adds none.
pub struct Log;

struct PreparedLog;

impl PreparedCapability for PreparedLog {
    fn instance_state(&self, _: &CallInfo<'_>) -> Option<Box<dyn std::any::Any + Send>> {
        None
    }
}

impl HostCapability for Log {
    fn name(&self) -> &'static str {
        "log"
    }
    fn granted_by_default(&self) -> bool {
        true
    }
    fn check_scope(&self, scope: &toml::Table) -> Result<(), String> {
        if scope.is_empty() { Ok(()) } else { Err("log takes no scope: use true or false".into()) }
    }
    fn link(&self, linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
        add_to_linker(linker)
    }
    fn prepare(&self, _: &Grant<'_>) -> Result<Box<dyn PreparedCapability>, PrepareError> {
        Ok(Box::new(PreparedLog))
    }
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
        if !self.admit(msg.len()) {
            return Ok(());
        }
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
    async fn logging_past_the_per_call_bytes_is_dropped_not_an_error() {
        let mut log = LogState::new("a".into(), 2 * LINE_OVERHEAD_BYTES + 10, 100);
        log.write(Level::Info, "12345".into()).await.unwrap();
        log.write(Level::Info, "1234567".into()).await.unwrap();
        log.write(Level::Info, "12345".into()).await.unwrap();
        assert_eq!((log.bytes_left, log.dropped_lines, log.dropped_bytes), (0, 1, 7));
    }

    #[tokio::test]
    async fn empty_lines_spend_the_line_budget() {
        let mut log = LogState::new("a".into(), 1 << 20, 3);
        for _ in 0..10 {
            log.write(Level::Info, String::new()).await.unwrap();
        }
        log.stdio_line("x");
        assert_eq!((log.lines_left, log.dropped_lines), (0, 8));
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
