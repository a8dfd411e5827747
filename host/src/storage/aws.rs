//! What the `aws-ec2` capability and `agentkernel genome` keep: the audit
//! log of every EC2 call (allowed or refused), the applied genome (one
//! current version, older ones kept), and genome proposals from agents.
//!
//! A narrow trait of its own, beside [`super::Storage`], so a networked
//! backend can implement it later without widening the memory interface.
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::StorageError;
use super::sqlite::SqliteStorage;

/// Tables, created beside the memory schema when a database opens.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS aws_audit (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    agent    TEXT NOT NULL,
    action   TEXT NOT NULL,
    region   TEXT NOT NULL,
    params   TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    rule     TEXT,
    detail   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS aws_audit_by_agent ON aws_audit (agent, id);
CREATE TABLE IF NOT EXISTS genome_versions (
    version    INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    applied_by TEXT NOT NULL,
    toml       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS genome_proposals (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    agent    TEXT NOT NULL,
    reason   TEXT NOT NULL,
    toml     TEXT NOT NULL,
    status   TEXT NOT NULL,
    message  TEXT NOT NULL
);
";

/// One EC2 call as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Row id (0 before it is stored).
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// The agent that asked (or `admin` for the CLI and admin API).
    pub agent: String,
    /// The WIT function name (`run-instances`, ...) or `genome-apply`/`genome-cleanup`.
    pub action: String,
    pub region: String,
    /// The call's parameters.
    pub params: serde_json::Value,
    /// `ok`, `dry-run`, `denied` or `error`.
    pub outcome: String,
    /// For `denied`: the policy rule that refused (`not-owned` for ownership).
    pub rule: Option<String>,
    /// What changed (instance ids), or the error message.
    pub detail: String,
}

/// A genome as applied, in its TOML form.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredGenome {
    pub version: i64,
    pub at: i64,
    pub applied_by: String,
    pub toml: String,
}

/// An agent's proposed genome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredProposal {
    pub id: i64,
    pub at: i64,
    pub agent: String,
    pub reason: String,
    pub toml: String,
    /// `pending`, `applied`, `rejected` or `failed`.
    pub status: String,
    pub message: String,
}

pub trait AwsStore: Send + Sync + 'static {
    fn audit_append(&self, record: &AuditRecord) -> Result<(), StorageError>;
    /// The newest `limit` rows, newest first, optionally for one agent.
    fn audit_list(&self, agent: Option<&str>, limit: u32) -> Result<Vec<AuditRecord>, StorageError>;
    fn genome_current(&self) -> Result<Option<StoredGenome>, StorageError>;
    /// Records `toml` as the current genome; returns its version.
    fn genome_record(&self, toml: &str, applied_by: &str) -> Result<i64, StorageError>;
    fn proposal_add(&self, agent: &str, reason: &str, toml: &str) -> Result<i64, StorageError>;
    fn proposal_get(&self, id: i64) -> Result<Option<StoredProposal>, StorageError>;
    /// Newest first, optionally only those with `status`.
    fn proposal_list(&self, status: Option<&str>, limit: u32) -> Result<Vec<StoredProposal>, StorageError>;
    fn proposal_set_status(&self, id: i64, status: &str, message: &str) -> Result<(), StorageError>;
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl AwsStore for SqliteStorage {
    fn audit_append(&self, r: &AuditRecord) -> Result<(), StorageError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO aws_audit (at, agent, action, region, params, outcome, rule, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![r.at, r.agent, r.action, r.region, r.params.to_string(), r.outcome, r.rule, r.detail])?;
        Ok(())
    }

    fn audit_list(&self, agent: Option<&str>, limit: u32) -> Result<Vec<AuditRecord>, StorageError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, at, agent, action, region, params, outcome, rule, detail FROM aws_audit
             WHERE (?1 IS NULL OR agent = ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![agent, limit], |r| {
            let params: String = r.get(5)?;
            Ok(AuditRecord {
                id: r.get(0)?,
                at: r.get(1)?,
                agent: r.get(2)?,
                action: r.get(3)?,
                region: r.get(4)?,
                // Written by us as JSON; an unreadable row still prints.
                params: serde_json::from_str(&params).unwrap_or(serde_json::Value::String(params)),
                outcome: r.get(6)?,
                rule: r.get(7)?,
                detail: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn genome_current(&self) -> Result<Option<StoredGenome>, StorageError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT version, at, applied_by, toml FROM genome_versions ORDER BY version DESC LIMIT 1")?
            .query_row([], |r| Ok(StoredGenome { version: r.get(0)?, at: r.get(1)?, applied_by: r.get(2)?, toml: r.get(3)? }))
            .optional()?)
    }

    fn genome_record(&self, toml: &str, applied_by: &str) -> Result<i64, StorageError> {
        let conn = self.conn();
        conn.prepare_cached("INSERT INTO genome_versions (at, applied_by, toml) VALUES (?1, ?2, ?3)")?
            .execute(params![now(), applied_by, toml])?;
        Ok(conn.last_insert_rowid())
    }

    fn proposal_add(&self, agent: &str, reason: &str, toml: &str) -> Result<i64, StorageError> {
        let conn = self.conn();
        conn.prepare_cached(
            "INSERT INTO genome_proposals (at, agent, reason, toml, status, message) VALUES (?1, ?2, ?3, ?4, 'pending', '')",
        )?
        .execute(params![now(), agent, reason, toml])?;
        Ok(conn.last_insert_rowid())
    }

    fn proposal_get(&self, id: i64) -> Result<Option<StoredProposal>, StorageError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT id, at, agent, reason, toml, status, message FROM genome_proposals WHERE id = ?1")?
            .query_row(params![id], proposal_row)
            .optional()?)
    }

    fn proposal_list(&self, status: Option<&str>, limit: u32) -> Result<Vec<StoredProposal>, StorageError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, at, agent, reason, toml, status, message FROM genome_proposals
             WHERE (?1 IS NULL OR status = ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![status, limit], proposal_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn proposal_set_status(&self, id: i64, status: &str, message: &str) -> Result<(), StorageError> {
        self.conn()
            .prepare_cached("UPDATE genome_proposals SET status = ?2, message = ?3 WHERE id = ?1")?
            .execute(params![id, status, message])?;
        Ok(())
    }
}

fn proposal_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredProposal> {
    Ok(StoredProposal {
        id: r.get(0)?,
        at: r.get(1)?,
        agent: r.get(2)?,
        reason: r.get(3)?,
        toml: r.get(4)?,
        status: r.get(5)?,
        message: r.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(agent: &str, outcome: &str) -> AuditRecord {
        AuditRecord {
            id: 0,
            at: 1,
            agent: agent.into(),
            action: "run-instances".into(),
            region: "us-east-1".into(),
            params: serde_json::json!({"count": 1}),
            outcome: outcome.into(),
            rule: (outcome == "denied").then(|| "instance-type".into()),
            detail: String::new(),
        }
    }

    #[test]
    fn audit_lists_newest_first_and_filters_by_agent() {
        let s = SqliteStorage::in_memory().unwrap();
        s.audit_append(&record("a", "ok")).unwrap();
        s.audit_append(&record("b", "denied")).unwrap();
        s.audit_append(&record("a", "denied")).unwrap();
        let all = s.audit_list(None, 10).unwrap();
        assert_eq!(all.iter().map(|r| r.agent.as_str()).collect::<Vec<_>>(), ["a", "b", "a"]);
        assert_eq!(all[0].outcome, "denied");
        assert_eq!(all[0].params["count"], 1);
        let a = s.audit_list(Some("a"), 1).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].rule.as_deref(), Some("instance-type"));
    }

    #[test]
    fn genome_versions_and_proposals_round_trip() {
        let s = SqliteStorage::in_memory().unwrap();
        assert_eq!(s.genome_current().unwrap(), None);
        s.genome_record("id = \"one\"", "admin").unwrap();
        let v2 = s.genome_record("id = \"two\"", "admin").unwrap();
        let current = s.genome_current().unwrap().unwrap();
        assert_eq!((current.version, current.toml.as_str()), (v2, "id = \"two\""));
        let p = s.proposal_add("architect", "more web", "id = \"three\"").unwrap();
        assert_eq!(s.proposal_list(Some("pending"), 10).unwrap().len(), 1);
        s.proposal_set_status(p, "applied", "launched 1").unwrap();
        assert!(s.proposal_list(Some("pending"), 10).unwrap().is_empty());
        assert_eq!(s.proposal_get(p).unwrap().unwrap().status, "applied");
    }
}
