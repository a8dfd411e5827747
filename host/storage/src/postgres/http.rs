//! PostgreSQL: `HttpStore`, with the semantics of the SQLite implementation
//! in `crate::http`: a day's budget counted and taken in one transaction,
//! refusals logged up to a daily cap, and a log that is a window.
//!
//! `method` is the guest's, logged before it is checked (a refusal of a bad
//! method is logged too): each NUL in it becomes U+FFFD ([`super::text`]),
//! as TEXT refuses NUL and the record would be lost. `scheme` and `host`
//! come from a parsed URL (which holds no NUL), `outcome` is a fixed code.
use tokio_postgres::Row;

use super::{PostgresStorage, lock_key, text};
use crate::StorageError;
use crate::http::{HttpRecord, HttpStore, RETENTION_SECS};

/// `http_requests_by_time` serves expiry, which every write runs: without
/// it each write would scan the table to find nothing to delete.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS http_requests (
    id         BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
    agent      TEXT NOT NULL,
    method     TEXT NOT NULL DEFAULT '',
    scheme     TEXT NOT NULL DEFAULT '',
    host       TEXT NOT NULL DEFAULT '',
    port       BIGINT NOT NULL DEFAULT 0,
    status     BIGINT,
    bytes      BIGINT NOT NULL DEFAULT 0,
    outcome    TEXT NOT NULL DEFAULT 'pending',
    elapsed_ms BIGINT NOT NULL DEFAULT 0,
    -- 1: sent (or on its way), counted against the daily budget.
    counted    BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS http_requests_by_agent ON http_requests (agent, at);
CREATE INDEX IF NOT EXISTS http_requests_by_time ON http_requests (at);
";

/// What `http_reserve` and `http_note` count is one agent's records of the
/// day: both serialise on this key, so count-then-insert holds across hosts.
fn day_lock(agent: &str) -> i64 {
    lock_key("http-day", agent)
}

/// Deletes a bounded batch of records past the retention window, as the
/// SQLite backend does on every write. `SKIP LOCKED`: two hosts expiring at
/// once take disjoint batches instead of waiting on (or deadlocking over)
/// each other's rows; what one skips, a later write deletes.
async fn expire(tx: &tokio_postgres::Transaction<'_>, now: i64) -> Result<(), StorageError> {
    tx.execute(
        "DELETE FROM http_requests WHERE id IN
             (SELECT id FROM http_requests WHERE at < $1 LIMIT 256 FOR UPDATE SKIP LOCKED)",
        &[&(now - RETENTION_SECS)],
    )
    .await?;
    Ok(())
}

/// The wire's unsigned fields as the BIGINT columns keep them.
fn signed(n: u64, what: &str) -> Result<i64, StorageError> {
    i64::try_from(n).map_err(|_| StorageError::Backend(format!("{what} {n} is too large to store")))
}

fn unsigned<T: TryFrom<i64>>(r: &Row, column: usize, what: &str) -> Result<T, StorageError> {
    let n: i64 = r.try_get(column)?;
    T::try_from(n).map_err(|_| StorageError::Corrupt(format!("http_requests.{what} is out of range: {n}")))
}

fn record_row(r: &Row) -> Result<HttpRecord, StorageError> {
    let status: Option<i64> = r.try_get(6)?;
    Ok(HttpRecord {
        at: r.try_get(0)?,
        agent: r.try_get(1)?,
        method: r.try_get(2)?,
        scheme: r.try_get(3)?,
        host: r.try_get(4)?,
        port: unsigned(r, 5, "port")?,
        status: status
            .map(|s| u16::try_from(s).map_err(|_| StorageError::Corrupt(format!("http_requests.status is out of range: {s}"))))
            .transpose()?,
        bytes: unsigned(r, 7, "bytes")?,
        outcome: r.try_get(8)?,
        elapsed_ms: unsigned(r, 9, "elapsed_ms")?,
    })
}

/// Counts `agent`'s records since `day_start` that are (`counted` = 1) or
/// are not (0) charged to the budget, inside `tx` after its lock.
async fn count_day(tx: &tokio_postgres::Transaction<'_>, agent: &str, day_start: i64, counted: i64) -> Result<u64, StorageError> {
    let n: i64 = tx
        .query_one(
            "SELECT COUNT(*) FROM http_requests WHERE agent = $1 AND at >= $2 AND counted = $3",
            &[&agent, &day_start, &counted],
        )
        .await?
        .try_get(0)?;
    u64::try_from(n).map_err(|_| StorageError::Corrupt(format!("a negative count: {n}")))
}

impl HttpStore for PostgresStorage {
    fn http_reserve(&self, r: &HttpRecord, day_start: i64, per_day: u64) -> Result<Option<i64>, StorageError> {
        let r = r.clone();
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&day_lock(&r.agent)]).await?;
            expire(&tx, r.at).await?;
            if count_day(&tx, &r.agent, day_start, 1).await? >= per_day {
                // Dropping the transaction rolls it back and frees the lock.
                return Ok(None);
            }
            let id: i64 = tx
                .query_one(
                    "INSERT INTO http_requests (at, agent, method, scheme, host, port, outcome, counted)
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', 1) RETURNING id",
                    &[&r.at, &r.agent, &text(&r.method), &r.scheme, &r.host, &i64::from(r.port)],
                )
                .await?
                .try_get(0)?;
            tx.commit().await?;
            Ok(Some(id))
        })
    }

    fn http_note(&self, r: &HttpRecord, day_start: i64, max_per_day: u64) -> Result<bool, StorageError> {
        let r = r.clone();
        let (bytes, elapsed_ms) = (signed(r.bytes, "bytes")?, signed(r.elapsed_ms, "elapsed_ms")?);
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&day_lock(&r.agent)]).await?;
            expire(&tx, r.at).await?;
            if count_day(&tx, &r.agent, day_start, 0).await? >= max_per_day {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO http_requests (at, agent, method, scheme, host, port, status, bytes, outcome, elapsed_ms, counted)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0)",
                &[
                    &r.at,
                    &r.agent,
                    &text(&r.method),
                    &r.scheme,
                    &r.host,
                    &i64::from(r.port),
                    &r.status.map(i64::from),
                    &bytes,
                    &r.outcome,
                    &elapsed_ms,
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn http_finish(&self, id: i64, r: &HttpRecord) -> Result<(), StorageError> {
        let r = r.clone();
        let (bytes, elapsed_ms) = (signed(r.bytes, "bytes")?, signed(r.elapsed_ms, "elapsed_ms")?);
        self.run(move |client| async move {
            client
                .execute(
                    "UPDATE http_requests SET method = $2, scheme = $3, host = $4, port = $5, status = $6, bytes = $7,
                     outcome = $8, elapsed_ms = $9 WHERE id = $1",
                    &[
                        &id,
                        &text(&r.method),
                        &r.scheme,
                        &r.host,
                        &i64::from(r.port),
                        &r.status.map(i64::from),
                        &bytes,
                        &r.outcome,
                        &elapsed_ms,
                    ],
                )
                .await?;
            Ok(())
        })
    }

    fn http_log(&self, agent: Option<&str>, limit: u32) -> Result<Vec<HttpRecord>, StorageError> {
        let (agent, limit) = (agent.map(str::to_string), i64::from(limit));
        self.run(move |client| async move {
            let rows = client
                .query(
                    "SELECT at, agent, method, scheme, host, port, status, bytes, outcome, elapsed_ms FROM
                     (SELECT * FROM http_requests WHERE $1::TEXT IS NULL OR agent = $1 ORDER BY id DESC LIMIT $2) newest
                     ORDER BY id",
                    &[&agent, &limit],
                )
                .await?;
            rows.iter().map(record_row).collect()
        })
    }
}
