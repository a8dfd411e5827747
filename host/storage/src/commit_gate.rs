//! [`CommitGate`]: one decision, made once, between a write that is still
//! running and a caller that may stop waiting for it.
//!
//! A host call waits for storage under a timeout, but the blocking task it
//! started keeps running after the timeout fires. Without a decision point
//! the write could commit after the guest was told it failed. The backend
//! asks the gate just before COMMIT; the caller asks it when it gives up.
//! Whichever comes first wins, so the caller always knows whether the
//! write can still apply.
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

const PENDING: u8 = 0;
const COMMITTING: u8 = 1;
const CANCELLED: u8 = 2;

#[derive(Debug, Clone, Default)]
pub struct CommitGate(Arc<AtomicU8>);

impl CommitGate {
    pub fn new() -> Self {
        Self::default()
    }

    /// Backend, just before COMMIT: `true` means commit (the gate is now
    /// committing and can no longer be cancelled); `false` means the caller
    /// gave up, so roll back.
    pub fn begin_commit(&self) -> bool {
        match self.0.compare_exchange(PENDING, COMMITTING, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => true,
            Err(state) => state == COMMITTING,
        }
    }

    /// Caller, on giving up: `true` means the write will never commit
    /// (it had not reached COMMIT); `false` means COMMIT has begun and the
    /// outcome is the backend's to report.
    pub fn cancel(&self) -> bool {
        match self.0.compare_exchange(PENDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => true,
            Err(state) => state == CANCELLED,
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire) == CANCELLED
    }

    /// Whether COMMIT has begun (its outcome may not be known yet).
    pub fn is_committing(&self) -> bool {
        self.0.load(Ordering::Acquire) == COMMITTING
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_decision_wins() {
        let g = CommitGate::new();
        assert!(g.cancel());
        assert!(!g.begin_commit(), "a cancelled write must roll back");
        assert!(g.is_cancelled());

        let g = CommitGate::new();
        assert!(g.begin_commit());
        assert!(!g.cancel(), "a committing write cannot be cancelled");
        assert!(g.is_committing());
    }
}
