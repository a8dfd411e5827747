//! Persists the process's call counters as coarse hourly buckets
//! (`activity_hourly`): agent calls by outcome, and chat requests by status.
//! The in-memory metrics reset with the process; the KPIs "errors per agent
//! over time" and "chat requests and their outcomes" need history.
//!
//! Off the request path: a task reads the counters every
//! [`FLUSH_INTERVAL`] and writes what changed since its last write in one
//! transaction (attributed to the hour of the write), on the blocking pool.
//! `GET /v1/stats` flushes first, and the server flushes as it stops. Rows
//! are bounded: at most [`MAX_SUBJECTS`] agents per write, fixed outcome
//! codes, 90 days kept.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentkernel_runtime::metrics::Metrics;
use agentkernel_storage::stats::ActivityCount;
use agentkernel_storage::{Backend, StorageError, blocking};

/// How often the counters are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(60);
/// Most agents written per flush (the busiest first are not needed: agents
/// are bounded by the agents directory; this is the backstop).
pub const MAX_SUBJECTS: usize = 1024;
/// The chat routes whose requests are counted.
pub const CHAT_ROUTES: [&str; 2] = ["/v1/chat", "/v1/chat/completions"];

type Key = (&'static str, String, String);

pub struct ActivityRecorder {
    metrics: Arc<Metrics>,
    store: Arc<dyn Backend>,
    /// The counter values last written.
    written: Mutex<BTreeMap<Key, u64>>,
}

impl ActivityRecorder {
    pub fn new(metrics: Arc<Metrics>, store: Arc<dyn Backend>) -> Self {
        ActivityRecorder { metrics, store, written: Mutex::new(BTreeMap::new()) }
    }

    fn counters(&self) -> BTreeMap<Key, u64> {
        let mut now: BTreeMap<Key, u64> = BTreeMap::new();
        let mut agents = 0;
        let mut last_agent = String::new();
        for (agent, outcome, n) in self.metrics.agent_outcome_counts() {
            if agent != last_agent {
                agents += 1;
                last_agent.clone_from(&agent);
            }
            if agents > MAX_SUBJECTS {
                break;
            }
            now.insert(("agent", agent, outcome.to_string()), n);
        }
        for route in CHAT_ROUTES {
            for (status, n) in self.metrics.route_status_counts(route) {
                now.insert(("chat", route.to_string(), status.to_string()), n);
            }
        }
        now
    }

    /// Writes what the counters gained since the last write (blocking).
    /// Two flushes never count the same calls twice: the second waits.
    pub fn flush_blocking(&self) -> Result<(), StorageError> {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let counters = self.counters();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let hour = now - now.rem_euclid(3600);
        let rows: Vec<ActivityCount> = counters
            .iter()
            .filter_map(|((kind, subject, outcome), n)| {
                let gained = n.saturating_sub(written.get(&(*kind, subject.clone(), outcome.clone())).copied().unwrap_or(0));
                (gained > 0).then(|| ActivityCount { hour, kind: kind.to_string(), subject: subject.clone(), outcome: outcome.clone(), n: gained })
            })
            .collect();
        if !rows.is_empty() {
            self.store.activity_add(&rows, now)?;
        }
        *written = counters;
        Ok(())
    }

    /// [`Self::flush_blocking`] on the blocking pool, under the storage timeout.
    pub async fn flush(self: &Arc<Self>) -> Result<(), StorageError> {
        let me = self.clone();
        blocking::call(blocking::DEFAULT_TIMEOUT, move || me.flush_blocking()).await
    }

    /// Flushes every [`FLUSH_INTERVAL`] until the task is aborted.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = me.flush().await {
                    tracing::warn!("writing the activity counters: {e}");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentkernel_storage::sqlite::SqliteStorage;
    use agentkernel_storage::stats::StatsStore;

    #[test]
    fn each_flush_writes_only_what_the_counters_gained() {
        let metrics = Arc::new(Metrics::default());
        let store = Arc::new(SqliteStorage::in_memory().unwrap());
        let recorder = ActivityRecorder::new(metrics.clone(), store.clone());
        metrics.agent_call("echo", "ok", Duration::from_millis(1), None);
        metrics.agent_call("echo", "deadline", Duration::from_millis(1), None);
        metrics.http_request("POST", "/v1/chat", 200, Duration::from_millis(1));
        metrics.http_request("POST", "/v1/agents/{name}/call", 200, Duration::from_millis(1));
        recorder.flush_blocking().unwrap();
        recorder.flush_blocking().unwrap();
        metrics.agent_call("echo", "ok", Duration::from_millis(1), None);
        recorder.flush_blocking().unwrap();
        let rows = store.activity_since(0, 100).unwrap();
        let n = |kind: &str, subject: &str, outcome: &str| {
            rows.iter().filter(|r| r.kind == kind && r.subject == subject && r.outcome == outcome).map(|r| r.n).sum::<u64>()
        };
        assert_eq!(n("agent", "echo", "ok"), 2);
        assert_eq!(n("agent", "echo", "deadline"), 1);
        assert_eq!(n("chat", "/v1/chat", "200"), 1);
        assert_eq!(rows.len(), 3, "other routes are not chat: {rows:?}");
    }
}
