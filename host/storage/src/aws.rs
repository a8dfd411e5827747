//! What the `aws-ec2` capability and `agentkernel genome` keep: the audit
//! log of every EC2 call (allowed or refused), the applied genomes (one
//! current version per owner agent, older ones kept), and genome proposals
//! from agents.
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
    toml       TEXT NOT NULL,
    owner      TEXT NOT NULL DEFAULT ''
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

/// Brings the AWS tables of a database made by an older host up to date.
/// Idempotent and keyed on the columns present, not on `user_version`, so
/// it composes with the other tables' migrations.
///
/// - `genome_versions.owner` (genomes are kept per owner agent): added and
///   filled from each stored TOML's `owner`.
pub(super) fn migrate(conn: &rusqlite::Connection) -> Result<(), StorageError> {
    let has_owner = |c: &rusqlite::Connection| -> Result<bool, rusqlite::Error> {
        c.prepare("SELECT 1 FROM pragma_table_info('genome_versions') WHERE name = 'owner'")?.exists([])
    };
    if !has_owner(conn)? {
        // Write-locked from the start and checked again inside: a server
        // and a CLI opening an old database at once migrate it once.
        let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
        if has_owner(&*tx)? {
            drop(tx);
            return create_owner_index(conn);
        }
        tx.execute_batch("ALTER TABLE genome_versions ADD COLUMN owner TEXT NOT NULL DEFAULT ''")?;
        let rows: Vec<(i64, String)> = tx
            .prepare("SELECT version, toml FROM genome_versions")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (version, text) in rows {
            // Stored by the host after validation, so `owner` is there; a row
            // that does not parse keeps '' and is never any agent's genome.
            let owner = text
                .parse::<toml::Table>()
                .ok()
                .and_then(|t| t.get("owner").and_then(|o| o.as_str()).map(str::to_string))
                .unwrap_or_default();
            tx.execute("UPDATE genome_versions SET owner = ?1 WHERE version = ?2", params![owner, version])?;
        }
        tx.commit()?;
    }
    create_owner_index(conn)
}

fn create_owner_index(conn: &rusqlite::Connection) -> Result<(), StorageError> {
    conn.execute_batch("CREATE INDEX IF NOT EXISTS genome_versions_by_owner ON genome_versions (owner, version)")?;
    Ok(())
}

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
    /// The agent whose genome this is (the TOML's `owner`).
    pub owner: String,
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
    /// `pending`, `applying` (claimed by one approval or auto-apply),
    /// `applied`, `rejected` or `failed`.
    pub status: String,
    pub message: String,
}

/// Leases are a supertrait: the EC2 owner lock is a lease in the same
/// store, so it holds across every process and host that shares it.
pub trait AwsStore: crate::lease::LeaseStore + Send + Sync + 'static {
    fn audit_append(&self, record: &AuditRecord) -> Result<(), StorageError>;
    /// The newest `limit` rows, newest first, optionally for one agent.
    fn audit_list(&self, agent: Option<&str>, limit: u32) -> Result<Vec<AuditRecord>, StorageError>;
    /// `owner`'s current genome (its newest version).
    fn genome_current(&self, owner: &str) -> Result<Option<StoredGenome>, StorageError>;
    /// Every owner's current genome, newest first.
    fn genome_current_all(&self) -> Result<Vec<StoredGenome>, StorageError>;
    /// Records `toml` as `owner`'s current genome; returns its version.
    fn genome_record(&self, owner: &str, toml: &str, applied_by: &str) -> Result<i64, StorageError>;
    fn proposal_add(&self, agent: &str, reason: &str, toml: &str) -> Result<i64, StorageError>;
    fn proposal_get(&self, id: i64) -> Result<Option<StoredProposal>, StorageError>;
    /// Newest first, optionally only those with `status`.
    fn proposal_list(&self, status: Option<&str>, limit: u32) -> Result<Vec<StoredProposal>, StorageError>;
    fn proposal_set_status(&self, id: i64, status: &str, message: &str) -> Result<(), StorageError>;
    /// Moves proposal `id` from `from` to `to` only if it is still `from`,
    /// in one statement; `false` when another caller moved it first.
    fn proposal_transition(&self, id: i64, from: &str, to: &str, message: &str) -> Result<bool, StorageError>;
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
        let conn = self.reader();
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

    fn genome_current(&self, owner: &str) -> Result<Option<StoredGenome>, StorageError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT version, at, owner, applied_by, toml FROM genome_versions WHERE owner = ?1 ORDER BY version DESC LIMIT 1",
            )?
            .query_row(params![owner], genome_row)
            .optional()?)
    }

    fn genome_current_all(&self) -> Result<Vec<StoredGenome>, StorageError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT version, at, owner, applied_by, toml FROM genome_versions
             WHERE version IN (SELECT MAX(version) FROM genome_versions WHERE owner != '' GROUP BY owner)
             ORDER BY version DESC",
        )?;
        let rows = stmt.query_map([], genome_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn genome_record(&self, owner: &str, toml: &str, applied_by: &str) -> Result<i64, StorageError> {
        let conn = self.conn();
        conn.prepare_cached("INSERT INTO genome_versions (at, owner, applied_by, toml) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![now(), owner, applied_by, toml])?;
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
        let conn = self.reader();
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

    fn proposal_transition(&self, id: i64, from: &str, to: &str, message: &str) -> Result<bool, StorageError> {
        let changed = self
            .conn()
            .prepare_cached("UPDATE genome_proposals SET status = ?3, message = ?4 WHERE id = ?1 AND status = ?2")?
            .execute(params![id, from, to, message])?;
        Ok(changed == 1)
    }
}

fn genome_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredGenome> {
    Ok(StoredGenome { version: r.get(0)?, at: r.get(1)?, owner: r.get(2)?, applied_by: r.get(3)?, toml: r.get(4)? })
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
    fn genome_versions_are_kept_per_owner_and_proposals_round_trip() {
        let s = SqliteStorage::in_memory().unwrap();
        assert_eq!(s.genome_current("architect").unwrap(), None);
        s.genome_record("architect", "id = \"one\"", "admin").unwrap();
        let v2 = s.genome_record("architect", "id = \"two\"", "admin").unwrap();
        let other = s.genome_record("builder", "id = \"b\"", "builder").unwrap();
        let current = s.genome_current("architect").unwrap().unwrap();
        assert_eq!((current.version, current.toml.as_str()), (v2, "id = \"two\""), "another owner's genome does not replace it");
        assert_eq!(s.genome_current("builder").unwrap().unwrap().version, other);
        assert_eq!(s.genome_current("nobody").unwrap(), None);
        let all: Vec<_> = s.genome_current_all().unwrap().into_iter().map(|g| (g.owner, g.version)).collect();
        assert_eq!(all, [("builder".to_string(), other), ("architect".to_string(), v2)]);

        let p = s.proposal_add("architect", "more web", "id = \"three\"").unwrap();
        assert_eq!(s.proposal_list(Some("pending"), 10).unwrap().len(), 1);
        assert!(s.proposal_transition(p, "pending", "applying", "").unwrap(), "the first claim wins");
        assert!(!s.proposal_transition(p, "pending", "applying", "").unwrap(), "a second claim loses");
        s.proposal_set_status(p, "applied", "launched 1").unwrap();
        assert!(s.proposal_list(Some("pending"), 10).unwrap().is_empty());
        assert_eq!(s.proposal_get(p).unwrap().unwrap().status, "applied");
    }

    #[test]
    fn an_older_database_gets_genome_owners_from_its_toml() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            // The table as hosts before per-owner genomes made it.
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE genome_versions (version INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL,
                     applied_by TEXT NOT NULL, toml TEXT NOT NULL);
                 INSERT INTO genome_versions (at, applied_by, toml) VALUES (1, 'admin', 'id = \"shop\"\nowner = \"architect\"\n');",
            )
            .unwrap();
        }
        let s = SqliteStorage::open(&path).unwrap();
        let g = s.genome_current("architect").unwrap().expect("the old row is the architect's genome");
        assert!(g.toml.contains("shop"));
        drop(s);
        SqliteStorage::open(&path).expect("opening again is a no-op");
    }
}
