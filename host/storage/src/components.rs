//! Components in the store: what lets every host sharing a backend serve
//! the same version of each agent. A placement says "agent A is now
//! version H, from file F" and is appended whenever a component is
//! installed anywhere (a drop-in file, an evolution's swap, a rollback);
//! the component's bytes are kept beside it, addressed by their SHA-256.
//! Each host follows the placements (`agentkernel_core::follow`) and
//! reports what it serves, per agent, so any host can show every host's
//! versions.
//!
//! Bounds: a component is at most [`MAX_COMPONENT_BYTES`]; the bytes of
//! each agent's last [`KEEP_PLACEMENTS`] placements are kept and older
//! ones deleted on publish; a host's report lives [`REPORT_RETENTION_SECS`]
//! past its last renewal; readers page with a limit.
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::StorageError;
use crate::sqlite::SqliteStorage;

/// The largest component the store takes (64 MiB).
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;
/// Bytes are kept for each agent's last this-many placements (what a
/// rollback on another host can still fetch); older blobs are deleted.
pub const KEEP_PLACEMENTS: i64 = 8;
/// A host report not renewed for this long (its host is gone) is deleted.
pub const REPORT_RETENTION_SECS: i64 = 3600;
/// How long a call that moves a component's bytes (publish, fetch) may
/// take: longer than other calls, since up to [`MAX_COMPONENT_BYTES`]
/// cross the network.
pub const TRANSFER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// The PostgreSQL channel a publish notifies, with the placement's seq.
pub const NOTIFY_CHANNEL: &str = "agentkernel_components";
/// Longest agent name, host name and error kept.
pub const MAX_NAME_CHARS: usize = 128;
pub const MAX_ERROR_CHARS: usize = 1000;

/// One install of a component, somewhere.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Placement {
    /// Increasing across every host (commit order).
    pub seq: i64,
    pub agent: String,
    /// SHA-256 of the component, lowercase hex.
    pub hash: String,
    /// The file name the component had where it was installed.
    pub file_name: String,
    /// The host that published it.
    pub host: String,
    /// Unix seconds.
    pub at: i64,
}

/// What one host serves for one agent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostReport {
    pub host: String,
    pub agent: String,
    /// The version it serves (empty when it serves none).
    pub hash: String,
    /// Why it does not serve the agent's latest placement, if it does not.
    pub error: Option<String>,
    /// Unix seconds of the report.
    pub at: i64,
}

pub trait ComponentStore: Send + Sync + 'static {
    /// Stores `bytes` under `hash` (refused unless `hash` is their SHA-256
    /// in lowercase hex and they are at most [`MAX_COMPONENT_BYTES`]) and
    /// appends a placement of `agent`; returns its seq. Blobs no agent's
    /// last [`KEEP_PLACEMENTS`] placements use any more are deleted. On
    /// PostgreSQL the commit notifies [`NOTIFY_CHANNEL`].
    fn publish_component(
        &self,
        agent: &str,
        hash: &str,
        file_name: &str,
        bytes: &[u8],
        host: &str,
        at: i64,
    ) -> Result<i64, StorageError>;
    /// Placements with a seq above `after`, oldest first, at most `limit`.
    fn placements_after(&self, after: i64, limit: u32) -> Result<Vec<Placement>, StorageError>;
    /// The latest placement of each agent (by agent name), at most `limit`.
    fn latest_placements(&self, limit: u32) -> Result<Vec<Placement>, StorageError>;
    /// Whether `hash` was ever placed for `agent`.
    fn was_placed(&self, agent: &str, hash: &str) -> Result<bool, StorageError>;
    /// The bytes stored under `hash`, if they are still kept.
    fn component_bytes(&self, hash: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// Records what `report.host` serves for `report.agent` (one row per
    /// host and agent, replaced), and deletes reports older than
    /// [`REPORT_RETENTION_SECS`] before `report.at`.
    fn host_report(&self, report: &HostReport) -> Result<(), StorageError>;
    /// Every report kept, by agent then host, at most `limit`.
    fn host_reports(&self, limit: u32) -> Result<Vec<HostReport>, StorageError>;
    /// Wakes a follower when a placement is published on any host: each
    /// notification's payload (the placement's seq; empty after the
    /// listening connection was re-established, when some may have been
    /// missed). `None` when the backend cannot notify (SQLite: one host;
    /// the follower's periodic check is all there is).
    fn placement_notifications(&self) -> Option<tokio::sync::mpsc::Receiver<String>> {
        None
    }
}

/// SHA-256 of `bytes`, lowercase hex (the registry's content hash).
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A file name a component may be written under on another host: a
/// plain `*.wasm` name, no directories, not hidden.
pub fn valid_file_name(name: &str) -> bool {
    name.len() <= 255
        && name.len() > ".wasm".len()
        && name.ends_with(".wasm")
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Checks a publish before anything is written.
pub(crate) fn check_publish(agent: &str, hash: &str, file_name: &str, bytes: &[u8], host: &str) -> Result<(), StorageError> {
    let refuse = |why: String| Err(StorageError::Backend(format!("component of `{agent}` refused: {why}")));
    if bytes.len() > MAX_COMPONENT_BYTES {
        return refuse(format!("{} bytes is more than the {MAX_COMPONENT_BYTES} a component may be", bytes.len()));
    }
    if agent.is_empty() || agent.chars().count() > MAX_NAME_CHARS {
        return refuse(format!("an agent name must be 1-{MAX_NAME_CHARS} characters"));
    }
    if host.chars().count() > MAX_NAME_CHARS {
        return refuse(format!("a host name must be at most {MAX_NAME_CHARS} characters"));
    }
    if !valid_file_name(file_name) {
        return refuse(format!("`{file_name}` is not a plain *.wasm file name"));
    }
    let actual = content_hash(bytes);
    if actual != hash {
        return refuse(format!("its bytes hash to {actual}, not {hash}"));
    }
    Ok(())
}

/// `error` clipped to [`MAX_ERROR_CHARS`].
pub(crate) fn clip_error(error: &Option<String>) -> Option<String> {
    error.as_ref().map(|e| match e.char_indices().nth(MAX_ERROR_CHARS) {
        Some((i, _)) => format!("{}…", &e[..i]),
        None => e.clone(),
    })
}

/// Deletes the blobs of `agent`'s versions that none of the last
/// [`KEEP_PLACEMENTS`] placements of any agent that placed them uses. The
/// same statement on both backends (`$1`: the agent, `$2`: how many to keep).
pub(crate) const RETAIN_SQL: &str = "
WITH candidates AS (
    SELECT DISTINCT hash FROM component_placements WHERE agent = $1
),
owners AS (
    SELECT DISTINCT agent FROM component_placements WHERE hash IN (SELECT hash FROM candidates)
),
ranked AS (
    SELECT hash, row_number() OVER (PARTITION BY agent ORDER BY seq DESC) AS rn
    FROM component_placements WHERE agent IN (SELECT agent FROM owners)
)
DELETE FROM component_blobs
WHERE hash IN (SELECT hash FROM candidates)
  AND hash NOT IN (SELECT hash FROM ranked WHERE rn <= $2)";

/// SQLite's tables. Created on first use (the follower never runs on
/// SQLite; installs publish there too, so the log stays one shape).
pub(crate) const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS component_blobs (
    hash  TEXT PRIMARY KEY,
    bytes BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS component_placements (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    agent     TEXT NOT NULL,
    hash      TEXT NOT NULL,
    file_name TEXT NOT NULL,
    host      TEXT NOT NULL,
    at        INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS component_placements_agent ON component_placements (agent, seq);
CREATE INDEX IF NOT EXISTS component_placements_hash ON component_placements (hash);
CREATE TABLE IF NOT EXISTS component_host_reports (
    host  TEXT NOT NULL,
    agent TEXT NOT NULL,
    hash  TEXT NOT NULL,
    error TEXT,
    at    INTEGER NOT NULL,
    PRIMARY KEY (host, agent)
);
";

impl SqliteStorage {
    /// The writer connection (the component tables are created with the
    /// rest of the schema, in `SqliteStorage::init`).
    fn components_conn(&self) -> Result<std::sync::MutexGuard<'_, rusqlite::Connection>, StorageError> {
        Ok(self.conn())
    }
}

fn placement(r: &rusqlite::Row<'_>) -> rusqlite::Result<Placement> {
    Ok(Placement { seq: r.get(0)?, agent: r.get(1)?, hash: r.get(2)?, file_name: r.get(3)?, host: r.get(4)?, at: r.get(5)? })
}

impl ComponentStore for SqliteStorage {
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
        let mut conn = self.components_conn()?;
        let tx = conn.transaction()?;
        tx.prepare_cached("INSERT INTO component_blobs (hash, bytes) VALUES (?1, ?2) ON CONFLICT (hash) DO NOTHING")?
            .execute(params![hash, bytes])?;
        tx.prepare_cached(
            "INSERT INTO component_placements (agent, hash, file_name, host, at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![agent, hash, file_name, host, at])?;
        let seq = tx.last_insert_rowid();
        tx.prepare_cached(RETAIN_SQL)?.execute(params![agent, KEEP_PLACEMENTS])?;
        tx.commit()?;
        Ok(seq)
    }

    fn placements_after(&self, after: i64, limit: u32) -> Result<Vec<Placement>, StorageError> {
        let conn = self.components_conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT seq, agent, hash, file_name, host, at FROM component_placements WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit], placement)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn latest_placements(&self, limit: u32) -> Result<Vec<Placement>, StorageError> {
        let conn = self.components_conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT seq, agent, hash, file_name, host, at FROM component_placements
             WHERE seq IN (SELECT max(seq) FROM component_placements GROUP BY agent)
             ORDER BY agent LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit], placement)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn was_placed(&self, agent: &str, hash: &str) -> Result<bool, StorageError> {
        Ok(self
            .components_conn()?
            .prepare_cached("SELECT 1 FROM component_placements WHERE agent = ?1 AND hash = ?2 LIMIT 1")?
            .query_row(params![agent, hash], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn component_bytes(&self, hash: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .components_conn()?
            .prepare_cached("SELECT bytes FROM component_blobs WHERE hash = ?1")?
            .query_row([hash], |r| r.get(0))
            .optional()?)
    }

    fn host_report(&self, r: &HostReport) -> Result<(), StorageError> {
        let conn = self.components_conn()?;
        conn.prepare_cached(
            "INSERT INTO component_host_reports (host, agent, hash, error, at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (host, agent) DO UPDATE SET hash = excluded.hash, error = excluded.error, at = excluded.at",
        )?
        .execute(params![r.host, r.agent, r.hash, clip_error(&r.error), r.at])?;
        conn.prepare_cached("DELETE FROM component_host_reports WHERE at < ?1")?
            .execute([r.at - REPORT_RETENTION_SECS])?;
        Ok(())
    }

    fn host_reports(&self, limit: u32) -> Result<Vec<HostReport>, StorageError> {
        let conn = self.components_conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT host, agent, hash, error, at FROM component_host_reports ORDER BY agent, host LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok(HostReport { host: r.get(0)?, agent: r.get(1)?, hash: r.get(2)?, error: r.get(3)?, at: r.get(4)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_wasm_file_names_are_valid() {
        for ok in ["echo.wasm", "echo-v2.wasm", "my_agent.1.wasm"] {
            assert!(valid_file_name(ok), "{ok}");
        }
        for bad in [".echo.wasm", "../echo.wasm", "a/echo.wasm", "echo.wat", ".wasm", "e cho.wasm", "échо.wasm"] {
            assert!(!valid_file_name(bad), "{bad}");
        }
    }

    #[test]
    fn long_errors_are_clipped() {
        let long = Some("x".repeat(MAX_ERROR_CHARS + 10));
        assert_eq!(clip_error(&long).unwrap().chars().count(), MAX_ERROR_CHARS + 1);
        assert_eq!(clip_error(&Some("short".into())).as_deref(), Some("short"));
    }
}
