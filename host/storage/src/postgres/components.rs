//! PostgreSQL: `ComponentStore`. Publishes take one transaction-scoped
//! advisory lock, so placements commit in seq order (a follower reading
//! "after seq N" never skips one that commits late), and notify
//! [`NOTIFY_CHANNEL`] with the seq when they commit.
//!
//! A host report's `error` is a load error, which may quote what an
//! untrusted component holds: each NUL in it becomes U+FFFD
//! ([`super::text`]), as TEXT refuses NUL and the report would fail. Names,
//! hashes and file names are checked before they are written.
use super::{PostgresStorage, lock_key, text};
use crate::StorageError;
use crate::components::{
    ComponentStore, HostReport, KEEP_PLACEMENTS, NOTIFY_CHANNEL, Placement, REPORT_RETENTION_SECS, RETAIN_SQL, TRANSFER_TIMEOUT,
    check_publish, clip_error,
};

/// `SET LOCAL statement_timeout` for a transaction moving a component's
/// bytes: over before the call's own bound.
fn transfer_statement_timeout() -> String {
    format!("SET LOCAL statement_timeout = {}", TRANSFER_TIMEOUT.as_millis().saturating_sub(2_000))
}

pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS component_blobs (
    hash  TEXT PRIMARY KEY,
    bytes BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS component_placements (
    seq       BIGSERIAL PRIMARY KEY,
    agent     TEXT COLLATE "C" NOT NULL,
    hash      TEXT NOT NULL,
    file_name TEXT NOT NULL,
    host      TEXT COLLATE "C" NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS component_placements_agent ON component_placements (agent, seq);
CREATE INDEX IF NOT EXISTS component_placements_hash ON component_placements (hash);
CREATE TABLE IF NOT EXISTS component_host_reports (
    host  TEXT COLLATE "C" NOT NULL,
    agent TEXT COLLATE "C" NOT NULL,
    hash  TEXT NOT NULL,
    error TEXT,
    at    BIGINT NOT NULL,
    PRIMARY KEY (host, agent)
);
"#;

fn placement(r: &tokio_postgres::Row) -> Result<Placement, StorageError> {
    Ok(Placement {
        seq: r.try_get(0)?,
        agent: r.try_get(1)?,
        hash: r.try_get(2)?,
        file_name: r.try_get(3)?,
        host: r.try_get(4)?,
        at: r.try_get(5)?,
    })
}

impl ComponentStore for PostgresStorage {
    fn publish_component(
        &self,
        agent: &str,
        hash: &str,
        file_name: &str,
        bytes: &[u8],
        host: &str,
        at: i64,
    ) -> Result<i64, StorageError> {
        check_publish(agent, hash, file_name, bytes, host)?;
        let (agent, hash, file_name, host) = (agent.to_string(), hash.to_string(), file_name.to_string(), host.to_string());
        let bytes = bytes.to_vec();
        self.run_for(TRANSFER_TIMEOUT, move |mut client| async move {
            let tx = client.transaction().await?;
            tx.batch_execute(&transfer_statement_timeout()).await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key("components", "publish")]).await?;
            // Bytes already kept are not sent again.
            if tx.query_opt("SELECT 1 FROM component_blobs WHERE hash = $1", &[&hash]).await?.is_none() {
                tx.execute(
                    "INSERT INTO component_blobs (hash, bytes) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING",
                    &[&hash, &bytes],
                )
                .await?;
            }
            let seq: i64 = tx
                .query_one(
                    "INSERT INTO component_placements (agent, hash, file_name, host, at) VALUES ($1, $2, $3, $4, $5) RETURNING seq",
                    &[&agent, &hash, &file_name, &host, &at],
                )
                .await?
                .try_get(0)?;
            tx.execute(RETAIN_SQL, &[&agent, &KEEP_PLACEMENTS]).await?;
            tx.execute("SELECT pg_notify($1, $2)", &[&NOTIFY_CHANNEL, &seq.to_string()]).await?;
            tx.commit().await?;
            Ok(seq)
        })
    }

    fn placements_after(&self, after: i64, limit: u32) -> Result<Vec<Placement>, StorageError> {
        self.run(move |client| async move {
            let rows = client
                .query(
                    "SELECT seq, agent, hash, file_name, host, at FROM component_placements WHERE seq > $1 ORDER BY seq LIMIT $2",
                    &[&after, &i64::from(limit)],
                )
                .await?;
            rows.iter().map(placement).collect()
        })
    }

    fn latest_placements(&self, limit: u32) -> Result<Vec<Placement>, StorageError> {
        self.run(move |client| async move {
            let rows = client
                .query(
                    "SELECT DISTINCT ON (agent) seq, agent, hash, file_name, host, at FROM component_placements
                     ORDER BY agent, seq DESC LIMIT $1",
                    &[&i64::from(limit)],
                )
                .await?;
            rows.iter().map(placement).collect()
        })
    }

    fn was_placed(&self, agent: &str, hash: &str) -> Result<bool, StorageError> {
        let (agent, hash) = (agent.to_string(), hash.to_string());
        self.run(move |client| async move {
            Ok(client
                .query_opt("SELECT 1 FROM component_placements WHERE agent = $1 AND hash = $2 LIMIT 1", &[&agent, &hash])
                .await?
                .is_some())
        })
    }

    fn component_bytes(&self, hash: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let hash = hash.to_string();
        self.run_for(TRANSFER_TIMEOUT, move |mut client| async move {
            let tx = client.transaction().await?;
            tx.batch_execute(&transfer_statement_timeout()).await?;
            let row = tx.query_opt("SELECT bytes FROM component_blobs WHERE hash = $1", &[&hash]).await?;
            tx.commit().await?;
            Ok(match row {
                Some(r) => Some(r.try_get(0)?),
                None => None,
            })
        })
    }

    fn host_report(&self, r: &HostReport) -> Result<(), StorageError> {
        let r = HostReport { error: clip_error(&r.error), ..r.clone() };
        self.run(move |client| async move {
            client
                .execute(
                    "INSERT INTO component_host_reports (host, agent, hash, error, at) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (host, agent) DO UPDATE SET hash = excluded.hash, error = excluded.error, at = excluded.at",
                    &[&r.host, &r.agent, &r.hash, &r.error.as_deref().map(text), &r.at],
                )
                .await?;
            client.execute("DELETE FROM component_host_reports WHERE at < $1", &[&(r.at - REPORT_RETENTION_SECS)]).await?;
            Ok(())
        })
    }

    fn host_reports(&self, limit: u32) -> Result<Vec<HostReport>, StorageError> {
        self.run(move |client| async move {
            let rows = client
                .query(
                    "SELECT host, agent, hash, error, at FROM component_host_reports ORDER BY agent, host LIMIT $1",
                    &[&i64::from(limit)],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(HostReport { host: r.try_get(0)?, agent: r.try_get(1)?, hash: r.try_get(2)?, error: r.try_get(3)?, at: r.try_get(4)? })
                })
                .collect()
        })
    }

    fn placement_notifications(&self) -> Option<tokio::sync::mpsc::Receiver<String>> {
        Some(self.listen(NOTIFY_CHANNEL))
    }
}
