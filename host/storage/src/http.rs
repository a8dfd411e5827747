//! Agents' outbound HTTP requests (the `http` capability): every request
//! is recorded, and each agent's requests per UTC day are counted against
//! its policy in the same transaction that records them.
use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::StorageError;
use crate::sqlite::SqliteStorage;

/// Records older than this are deleted as new ones are made: the log is a
/// window, not an archive (the daily budget needs one day of it).
pub const RETENTION_SECS: i64 = 30 * 86_400;

/// One request an agent made, or tried to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRecord {
    /// Unix seconds.
    pub at: i64,
    pub agent: String,
    pub method: String,
    pub scheme: String,
    pub host: String,
    pub port: u16,
    pub status: Option<u16>,
    pub bytes: u64,
    /// `ok` or the error code the agent got.
    pub outcome: String,
    pub elapsed_ms: u64,
}

pub trait HttpStore: Send + Sync + 'static {
    /// Takes one of `intent.agent`'s `per_day` requests for the UTC day
    /// that began at `day_start`, counting and recording where the request
    /// goes (`intent`, outcome `pending`) in one transaction, before it is
    /// sent: concurrent calls cannot overshoot, and a request cut off
    /// midway still shows its destination. Returns the reservation to
    /// complete with [`http_finish`](Self::http_finish); `None` when the
    /// day's requests are used up.
    fn http_reserve(&self, intent: &HttpRecord, day_start: i64, per_day: u64) -> Result<Option<i64>, StorageError>;
    /// Records a request refused before it was sent (policy, form, budget):
    /// logged, not counted against the budget, at most `max_per_day` such
    /// records per agent and UTC day (then dropped: `false`), so a guest
    /// hammering forbidden hosts cannot grow the log without bound.
    fn http_note(&self, record: &HttpRecord, day_start: i64, max_per_day: u64) -> Result<bool, StorageError>;
    /// Completes reservation `id` with what happened.
    fn http_finish(&self, id: i64, record: &HttpRecord) -> Result<(), StorageError>;
    /// The newest `limit` records, oldest first, optionally of one agent.
    fn http_log(&self, agent: Option<&str>, limit: u32) -> Result<Vec<HttpRecord>, StorageError>;
}

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS http_requests (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    agent      TEXT NOT NULL,
    method     TEXT NOT NULL DEFAULT '',
    scheme     TEXT NOT NULL DEFAULT '',
    host       TEXT NOT NULL DEFAULT '',
    port       INTEGER NOT NULL DEFAULT 0,
    status     INTEGER,
    bytes      INTEGER NOT NULL DEFAULT 0,
    outcome    TEXT NOT NULL DEFAULT 'pending',
    elapsed_ms INTEGER NOT NULL DEFAULT 0,
    -- 1: sent (or on its way), counted against the daily budget.
    counted    INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS http_requests_by_agent ON http_requests (agent, at);
-- Expiry deletes by time alone: without this it scans every row per write.
CREATE INDEX IF NOT EXISTS http_requests_by_at ON http_requests (at);
";

/// Deletes a bounded batch of records past the retention window (every
/// write does a little, so the table stays a window without a sweeper).
fn expire(tx: &rusqlite::Transaction<'_>, now: i64) -> Result<(), StorageError> {
    tx.execute(
        "DELETE FROM http_requests WHERE id IN (SELECT id FROM http_requests WHERE at < ?1 LIMIT 256)",
        params![now - RETENTION_SECS],
    )?;
    Ok(())
}

impl HttpStore for SqliteStorage {
    fn http_reserve(&self, r: &HttpRecord, day_start: i64, per_day: u64) -> Result<Option<i64>, StorageError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        expire(&tx, r.at)?;
        let used: i64 = tx.query_row(
            "SELECT COUNT(*) FROM http_requests WHERE agent = ?1 AND at >= ?2 AND counted = 1",
            params![r.agent, day_start],
            |row| row.get(0),
        )?;
        if used as u64 >= per_day {
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO http_requests (at, agent, method, scheme, host, port, outcome, counted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 1)",
            params![r.at, r.agent, r.method, r.scheme, r.host, r.port],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(Some(id))
    }

    fn http_note(&self, r: &HttpRecord, day_start: i64, max_per_day: u64) -> Result<bool, StorageError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        expire(&tx, r.at)?;
        let noted: i64 = tx.query_row(
            "SELECT COUNT(*) FROM http_requests WHERE agent = ?1 AND at >= ?2 AND counted = 0",
            params![r.agent, day_start],
            |row| row.get(0),
        )?;
        if noted as u64 >= max_per_day {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO http_requests (at, agent, method, scheme, host, port, status, bytes, outcome, elapsed_ms, counted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0)",
            params![r.at, r.agent, r.method, r.scheme, r.host, r.port, r.status, r.bytes as i64, r.outcome, r.elapsed_ms as i64],
        )?;
        tx.commit()?;
        Ok(true)
    }

    fn http_finish(&self, id: i64, r: &HttpRecord) -> Result<(), StorageError> {
        self.conn().execute(
            "UPDATE http_requests SET method = ?2, scheme = ?3, host = ?4, port = ?5, status = ?6, bytes = ?7,
             outcome = ?8, elapsed_ms = ?9 WHERE id = ?1",
            params![id, r.method, r.scheme, r.host, r.port, r.status, r.bytes as i64, r.outcome, r.elapsed_ms as i64],
        )?;
        Ok(())
    }

    fn http_log(&self, agent: Option<&str>, limit: u32) -> Result<Vec<HttpRecord>, StorageError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT at, agent, method, scheme, host, port, status, bytes, outcome, elapsed_ms FROM
             (SELECT * FROM http_requests WHERE ?1 IS NULL OR agent = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
        )?;
        let rows = stmt.query_map(params![agent, limit], |r| {
            Ok(HttpRecord {
                at: r.get(0)?,
                agent: r.get(1)?,
                method: r.get(2)?,
                scheme: r.get(3)?,
                host: r.get(4)?,
                port: r.get(5)?,
                status: r.get(6)?,
                bytes: r.get::<_, i64>(7)? as u64,
                outcome: r.get(8)?,
                elapsed_ms: r.get::<_, i64>(9)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(agent: &str, at: i64) -> HttpRecord {
        HttpRecord {
            at,
            agent: agent.into(),
            method: "GET".into(),
            scheme: "https".into(),
            host: "example.org".into(),
            port: 443,
            status: None,
            bytes: 0,
            outcome: "pending".into(),
            elapsed_ms: 0,
        }
    }

    #[test]
    fn the_daily_budget_holds_across_threads_and_days() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(SqliteStorage::open(&dir.path().join("db.sqlite")).unwrap());
        let day = 86_400 * 100;
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || (0..10).filter(|_| s.http_reserve(&intent("a", day + 5), day, 25).unwrap().is_some()).count())
            })
            .collect();
        let granted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(granted, 25, "80 concurrent attempts, 25 allowed");
        assert!(s.http_reserve(&intent("b", day + 5), day, 25).unwrap().is_some(), "per agent");
        assert!(s.http_reserve(&intent("a", day + 86_400), day + 86_400, 25).unwrap().is_some(), "a new day");
        let refused = HttpRecord { outcome: "host-not-allowed".into(), ..intent("c", day + 5) };
        assert!(s.http_note(&refused, day, 2).unwrap());
        assert!(s.http_reserve(&intent("c", day + 5), day, 1).unwrap().is_some(), "a refusal is logged, not counted");
        assert!(s.http_note(&refused, day, 2).unwrap());
        assert!(!s.http_note(&refused, day, 2).unwrap(), "refusals past the day's cap are dropped");
        assert_eq!(s.http_log(Some("c"), 10).unwrap().len(), 3);
    }

    #[test]
    fn a_reservation_shows_its_destination_becomes_the_record_and_expires() {
        let s = SqliteStorage::in_memory().unwrap();
        let id = s.http_reserve(&intent("a", 1_000), 0, 10).unwrap().unwrap();
        let pending = s.http_log(Some("a"), 10).unwrap();
        assert_eq!((pending[0].host.as_str(), pending[0].outcome.as_str()), ("example.org", "pending"), "known before it is sent");
        let done = HttpRecord { status: Some(200), bytes: 12, outcome: "ok".into(), elapsed_ms: 3, ..intent("a", 1_000) };
        s.http_finish(id, &done).unwrap();
        assert_eq!(s.http_log(Some("a"), 10).unwrap(), vec![done]);
        let _ = s.http_reserve(&intent("a", 1_000 + RETENTION_SECS + 1), 0, 10).unwrap().unwrap();
        let log = s.http_log(None, 10).unwrap();
        assert_eq!(log.len(), 1, "the expired record is gone");
        assert_eq!(log[0].outcome, "pending");
    }
}
