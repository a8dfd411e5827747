//! Runs that outlive their request: A2A tasks, and streamed `/v1/chat`,
//! `/v1/chat/completions` and MCP calls, which run to the end (and are
//! recorded) when the client goes away. Connection caps do not bound them,
//! so each holds a place here until it ends: at most `[server]
//! max_connections` in all, and at most `max_connections_per_ip` for one
//! token, so one client that opens streams and leaves cannot take every
//! place from the others.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// No place is free: in all, or for this token.
#[derive(Debug, PartialEq, Eq)]
pub struct RunsBusy;

impl RunsBusy {
    pub const CODE: &'static str = "busy";
    pub const MESSAGE: &'static str = "too many requests are running; try again later";
}

pub struct DetachedRuns {
    total: Arc<Semaphore>,
    per_owner: Arc<Mutex<HashMap<String, usize>>>,
    per_owner_max: usize,
}

/// One place, given back when dropped (with the run that holds it).
pub struct DetachedPlace {
    _total: OwnedSemaphorePermit,
    owner: String,
    per_owner: Arc<Mutex<HashMap<String, usize>>>,
}

impl DetachedRuns {
    pub fn new(total: usize, per_owner: usize) -> DetachedRuns {
        DetachedRuns { total: Arc::new(Semaphore::new(total)), per_owner: Arc::default(), per_owner_max: per_owner.max(1) }
    }

    /// A place for a run of `owner`'s, if one is free.
    pub fn try_acquire(&self, owner: &str) -> Result<DetachedPlace, RunsBusy> {
        let mut counts = self.per_owner.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.get(owner).copied().unwrap_or(0);
        if count >= self.per_owner_max {
            return Err(RunsBusy);
        }
        let total = self.total.clone().try_acquire_owned().map_err(|_| RunsBusy)?;
        counts.insert(owner.to_string(), count + 1);
        Ok(DetachedPlace { _total: total, owner: owner.to_string(), per_owner: self.per_owner.clone() })
    }
}

impl Drop for DetachedPlace {
    fn drop(&mut self) {
        let mut counts = self.per_owner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.owner) {
            *n -= 1;
            if *n == 0 {
                // Owners are token names; none is kept once its runs end.
                counts.remove(&self.owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_owner_cannot_take_every_place_and_places_come_back() {
        let runs = DetachedRuns::new(3, 2);
        let a1 = runs.try_acquire("a").unwrap();
        let _a2 = runs.try_acquire("a").unwrap();
        assert_eq!(runs.try_acquire("a").err(), Some(RunsBusy), "a's share is 2");
        let b1 = runs.try_acquire("b").unwrap();
        assert_eq!(runs.try_acquire("b").err(), Some(RunsBusy), "3 in all");
        drop(a1);
        let _b2 = runs.try_acquire("b").unwrap();
        drop(b1);
        assert!(runs.per_owner.lock().unwrap().get("b") == Some(&1));
    }
}
