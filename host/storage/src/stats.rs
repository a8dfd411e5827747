//! What the KPIs are computed from beyond the other stores: coarse hourly
//! activity counts (agent calls and chat requests by outcome, persisted off
//! the request path from the process's in-memory metrics), and bounded
//! aggregate reads of the LLM ledger, installs and chat transcripts.
//!
//! Every read takes a time window and a row cap, so a stats request costs
//! the same however long the host has run.
use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::StorageError;
use super::evolution::InstallRecord;
use super::sqlite::SqliteStorage;

/// Activity buckets older than this are deleted as new ones are written.
pub const ACTIVITY_RETENTION_SECS: i64 = 90 * 86_400;

/// Created with the rest of the schema (`sqlite::SqliteStorage::open` runs it
/// after the sessions schema: the time index is on `chat_turns`).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS activity_hourly (
    hour    INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    subject TEXT NOT NULL,
    outcome TEXT NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (hour, kind, subject, outcome)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chat_turns_by_time ON chat_turns (at_ms);
CREATE INDEX IF NOT EXISTS agent_installs_by_time ON agent_installs (at);
CREATE INDEX IF NOT EXISTS evolutions_by_start ON evolutions (started_at);
";

/// One hourly count: `n` events of `kind` (`agent`: calls of the agent
/// `subject`; `chat`: requests to the chat route `subject`) with `outcome`
/// (`ok` or an error code; for chat, the HTTP status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityCount {
    /// Unix seconds at the start of the hour.
    pub hour: i64,
    pub kind: String,
    pub subject: String,
    pub outcome: String,
    pub n: u64,
}

/// LLM calls of one agent on one UTC day, from the ledger (prices were
/// applied when each call was recorded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailySpend {
    /// Unix seconds at the start of the UTC day.
    pub day: i64,
    pub agent: String,
    pub calls: u64,
    pub tokens: u64,
    pub cost_usd: f64,
    /// Calls of models without a configured price (their cost is unknown).
    pub unpriced_calls: u64,
}

pub trait StatsStore: Send + Sync {
    /// Adds each count to its bucket (all in one transaction) and deletes
    /// buckets older than [`ACTIVITY_RETENTION_SECS`] before `now`.
    fn activity_add(&self, counts: &[ActivityCount], now: i64) -> Result<(), StorageError>;
    /// Buckets from `since` on, oldest first, at most `limit`.
    fn activity_since(&self, since: i64, limit: u32) -> Result<Vec<ActivityCount>, StorageError>;
    /// Ledger totals per agent per UTC day from `since` on, at most `limit` rows.
    fn llm_spend_by_day(&self, since: i64, limit: u32) -> Result<Vec<DailySpend>, StorageError>;
    /// Installs of every agent from `since` on, oldest first, at most `limit`.
    fn installs_since(&self, since: i64, limit: u32) -> Result<Vec<InstallRecord>, StorageError>;
    /// Assistant turns in chat transcripts from `since` on: the chat
    /// requests that were answered and stored.
    fn chat_answers_since(&self, since: i64) -> Result<u64, StorageError>;
}

impl StatsStore for SqliteStorage {
    fn activity_add(&self, counts: &[ActivityCount], now: i64) -> Result<(), StorageError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO activity_hourly (hour, kind, subject, outcome, n) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (hour, kind, subject, outcome) DO UPDATE SET n = n + excluded.n",
            )?;
            for c in counts {
                stmt.execute(params![c.hour, c.kind, c.subject, c.outcome, c.n as i64])?;
            }
        }
        tx.execute("DELETE FROM activity_hourly WHERE hour < ?1", [now - ACTIVITY_RETENTION_SECS])?;
        tx.commit()?;
        Ok(())
    }

    fn activity_since(&self, since: i64, limit: u32) -> Result<Vec<ActivityCount>, StorageError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT hour, kind, subject, outcome, n FROM activity_hourly WHERE hour >= ?1 ORDER BY hour, kind, subject, outcome LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![since, limit], |r| {
            Ok(ActivityCount { hour: r.get(0)?, kind: r.get(1)?, subject: r.get(2)?, outcome: r.get(3)?, n: r.get::<_, i64>(4)? as u64 })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn llm_spend_by_day(&self, since: i64, limit: u32) -> Result<Vec<DailySpend>, StorageError> {
        let conn = self.reader();
        // The (agent, at) index narrows nothing here; the window does.
        let mut stmt = conn.prepare_cached(
            "SELECT (at / 86400) * 86400 AS day, agent, COUNT(*), COALESCE(SUM(prompt_tokens + completion_tokens), 0),
                    COALESCE(SUM(cost_usd), 0.0), SUM(cost_usd IS NULL)
             FROM llm_usage WHERE at >= ?1 GROUP BY day, agent ORDER BY day, agent LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![since, limit], |r| {
            Ok(DailySpend {
                day: r.get(0)?,
                agent: r.get(1)?,
                calls: r.get::<_, i64>(2)? as u64,
                tokens: r.get::<_, i64>(3)? as u64,
                cost_usd: r.get(4)?,
                unpriced_calls: r.get::<_, i64>(5)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn installs_since(&self, since: i64, limit: u32) -> Result<Vec<InstallRecord>, StorageError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached("SELECT agent, hash, reason, at FROM agent_installs WHERE at >= ?1 ORDER BY id LIMIT ?2")?;
        let rows = stmt
            .query_map(params![since, limit], |r| Ok(InstallRecord { agent: r.get(0)?, hash: r.get(1)?, reason: r.get(2)?, at: r.get(3)? }))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn chat_answers_since(&self, since: i64) -> Result<u64, StorageError> {
        let n: i64 = self
            .reader()
            .prepare_cached("SELECT COUNT(*) FROM chat_turns WHERE at_ms >= ?1 AND role = 'assistant'")?
            .query_row([since.saturating_mul(1000)], |r| r.get(0))?;
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Storage;
    use crate::evolution::EvolutionStore;

    fn count(hour: i64, subject: &str, outcome: &str, n: u64) -> ActivityCount {
        ActivityCount { hour, kind: "agent".into(), subject: subject.into(), outcome: outcome.into(), n }
    }

    #[test]
    fn activity_buckets_add_up_and_old_ones_are_deleted() {
        let s = SqliteStorage::in_memory().unwrap();
        let now = 100 * 86_400;
        s.activity_add(&[count(0, "echo", "ok", 9)], 0).unwrap();
        s.activity_add(&[count(now - 3600, "echo", "ok", 2), count(now - 3600, "echo", "deadline", 1)], now).unwrap();
        s.activity_add(&[count(now - 3600, "echo", "ok", 3)], now).unwrap();
        let rows = s.activity_since(0, 100).unwrap();
        assert_eq!(rows, [count(now - 3600, "echo", "deadline", 1), count(now - 3600, "echo", "ok", 5)], "the 100-day-old bucket is gone");
        assert_eq!(s.activity_since(0, 1).unwrap().len(), 1, "row cap");
    }

    #[test]
    fn spend_is_summed_per_agent_per_day() {
        let s = SqliteStorage::in_memory().unwrap();
        let rec = |at, agent: &str, cost| crate::LlmUsageRecord {
            at,
            agent: agent.into(),
            session: "s".into(),
            profile: "fast".into(),
            model: "m".into(),
            prompt_tokens: 10,
            completion_tokens: 5,
            latency_ms: 1,
            cost_usd: cost,
            outcome: "ok".into(),
        };
        for r in [rec(10, "a", Some(0.25)), rec(20, "a", Some(0.5)), rec(30, "a", None), rec(86_400 + 1, "a", Some(1.0)), rec(40, "b", Some(2.0))] {
            s.llm_record(&r).unwrap();
        }
        let rows = s.llm_spend_by_day(0, 100).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].agent.as_str(), rows[0].calls, rows[0].tokens, rows[0].cost_usd, rows[0].unpriced_calls), ("a", 3, 45, 0.75, 1));
        assert_eq!((rows[1].agent.as_str(), rows[1].cost_usd), ("b", 2.0));
        assert_eq!((rows[2].day, rows[2].cost_usd), (86_400, 1.0));
        assert_eq!(s.llm_spend_by_day(86_400, 100).unwrap().len(), 1, "window");
    }

    #[test]
    fn installs_since_reads_every_agent_in_a_window() {
        let s = SqliteStorage::in_memory().unwrap();
        for (agent, at) in [("a", 1), ("b", 5), ("a", 9)] {
            s.record_install(&InstallRecord { agent: agent.into(), hash: "h".into(), reason: "rollback".into(), at }).unwrap();
        }
        let rows = s.installs_since(5, 10).unwrap();
        assert_eq!(rows.iter().map(|r| (r.agent.as_str(), r.at)).collect::<Vec<_>>(), [("b", 5), ("a", 9)]);
        assert_eq!(s.installs_since(0, 1).unwrap().len(), 1);
    }
}
