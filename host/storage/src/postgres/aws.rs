//! PostgreSQL: `AwsStore` (the EC2 audit log, genomes per owner, genome
//! proposals). The same semantics as the SQLite tables in `crate::aws`,
//! whose older-column migration has no counterpart here: a PostgreSQL
//! database starts at the final shape.
//!
//! Text a guest or an HTTP client sets (an audit row's region and detail, a
//! proposal's reason and message) has each NUL replaced with U+FFFD
//! ([`super::text`]): TEXT refuses NUL, and the row would be lost. So do
//! the filters a client gives `audit_list` and `proposal_list`. The genome
//! TOML is the toml serializer's (it escapes NUL); `params` is serde_json's.
use tokio_postgres::Row;

use super::{PostgresStorage, text};
use crate::StorageError;
use crate::aws::{AuditRecord, AwsStore, StoredGenome, StoredProposal};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS aws_audit (
    id       BIGSERIAL PRIMARY KEY,
    at       BIGINT NOT NULL,
    agent    TEXT NOT NULL,
    action   TEXT NOT NULL,
    region   TEXT NOT NULL,
    -- The call's parameters as JSON text, byte for byte as written (not
    -- JSONB, which would reorder keys the audit shows).
    params   TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    rule     TEXT,
    detail   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS aws_audit_by_agent ON aws_audit (agent, id);
CREATE TABLE IF NOT EXISTS genome_versions (
    version    BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
    applied_by TEXT NOT NULL,
    toml       TEXT NOT NULL,
    owner      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS genome_versions_by_owner ON genome_versions (owner, version);
CREATE TABLE IF NOT EXISTS genome_proposals (
    id       BIGSERIAL PRIMARY KEY,
    at       BIGINT NOT NULL,
    agent    TEXT NOT NULL,
    reason   TEXT NOT NULL,
    toml     TEXT NOT NULL,
    status   TEXT NOT NULL,
    message  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS genome_proposals_by_status ON genome_proposals (status, id);
";

const AUDIT_COLUMNS: &str = "id, at, agent, action, region, params, outcome, rule, detail";
const GENOME_COLUMNS: &str = "version, at, owner, applied_by, toml";
const PROPOSAL_COLUMNS: &str = "id, at, agent, reason, toml, status, message";

/// Unix seconds on this host, as the SQLite backend stamps genomes and
/// proposals (the other timestamps come from the caller).
fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn audit_row(r: &Row) -> Result<AuditRecord, StorageError> {
    let params: String = r.try_get(5)?;
    Ok(AuditRecord {
        id: r.try_get(0)?,
        at: r.try_get(1)?,
        agent: r.try_get(2)?,
        action: r.try_get(3)?,
        region: r.try_get(4)?,
        // Written by us as JSON; an unreadable row still prints.
        params: serde_json::from_str(&params).unwrap_or(serde_json::Value::String(params)),
        outcome: r.try_get(6)?,
        rule: r.try_get(7)?,
        detail: r.try_get(8)?,
    })
}

fn genome_row(r: &Row) -> Result<StoredGenome, StorageError> {
    Ok(StoredGenome {
        version: r.try_get(0)?,
        at: r.try_get(1)?,
        owner: r.try_get(2)?,
        applied_by: r.try_get(3)?,
        toml: r.try_get(4)?,
    })
}

fn proposal_row(r: &Row) -> Result<StoredProposal, StorageError> {
    Ok(StoredProposal {
        id: r.try_get(0)?,
        at: r.try_get(1)?,
        agent: r.try_get(2)?,
        reason: r.try_get(3)?,
        toml: r.try_get(4)?,
        status: r.try_get(5)?,
        message: r.try_get(6)?,
    })
}

impl AwsStore for PostgresStorage {
    fn audit_append(&self, r: &AuditRecord) -> Result<(), StorageError> {
        let r = r.clone();
        self.run(move |client| async move {
            client
                .execute(
                    "INSERT INTO aws_audit (at, agent, action, region, params, outcome, rule, detail)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[&r.at, &r.agent, &r.action, &text(&r.region), &r.params.to_string(), &r.outcome, &r.rule, &text(&r.detail)],
                )
                .await?;
            Ok(())
        })
    }

    fn audit_list(&self, agent: Option<&str>, limit: u32) -> Result<Vec<AuditRecord>, StorageError> {
        let (agent, limit) = (agent.map(|a| text(a).into_owned()), i64::from(limit));
        self.run(move |client| async move {
            let sql = format!(
                "SELECT {AUDIT_COLUMNS} FROM aws_audit WHERE ($1::TEXT IS NULL OR agent = $1) ORDER BY id DESC LIMIT $2"
            );
            client.query(&sql, &[&agent, &limit]).await?.iter().map(audit_row).collect()
        })
    }

    fn genome_current(&self, owner: &str) -> Result<Option<StoredGenome>, StorageError> {
        let owner = owner.to_string();
        self.run(move |client| async move {
            let sql = format!("SELECT {GENOME_COLUMNS} FROM genome_versions WHERE owner = $1 ORDER BY version DESC LIMIT 1");
            client.query_opt(&sql, &[&owner]).await?.as_ref().map(genome_row).transpose()
        })
    }

    fn genome_current_all(&self) -> Result<Vec<StoredGenome>, StorageError> {
        self.run(move |client| async move {
            // A row without an owner (never written by this backend, kept for
            // parity with SQLite's migrated rows) is no agent's genome.
            let sql = format!(
                "SELECT {GENOME_COLUMNS} FROM genome_versions
                 WHERE version IN (SELECT MAX(version) FROM genome_versions WHERE owner <> '' GROUP BY owner)
                 ORDER BY version DESC"
            );
            client.query(&sql, &[]).await?.iter().map(genome_row).collect()
        })
    }

    fn genome_record(&self, owner: &str, toml: &str, applied_by: &str) -> Result<i64, StorageError> {
        let (owner, toml, applied_by) = (owner.to_string(), toml.to_string(), applied_by.to_string());
        self.run(move |client| async move {
            let row = client
                .query_one(
                    "INSERT INTO genome_versions (at, owner, applied_by, toml) VALUES ($1, $2, $3, $4) RETURNING version",
                    &[&now(), &owner, &applied_by, &toml],
                )
                .await?;
            Ok(row.try_get(0)?)
        })
    }

    fn proposal_add(&self, agent: &str, reason: &str, toml: &str) -> Result<i64, StorageError> {
        let (agent, reason, toml) = (agent.to_string(), reason.to_string(), toml.to_string());
        self.run(move |client| async move {
            let row = client
                .query_one(
                    "INSERT INTO genome_proposals (at, agent, reason, toml, status, message)
                     VALUES ($1, $2, $3, $4, 'pending', '') RETURNING id",
                    &[&now(), &agent, &text(&reason), &toml],
                )
                .await?;
            Ok(row.try_get(0)?)
        })
    }

    fn proposal_get(&self, id: i64) -> Result<Option<StoredProposal>, StorageError> {
        self.run(move |client| async move {
            let sql = format!("SELECT {PROPOSAL_COLUMNS} FROM genome_proposals WHERE id = $1");
            client.query_opt(&sql, &[&id]).await?.as_ref().map(proposal_row).transpose()
        })
    }

    fn proposal_list(&self, status: Option<&str>, limit: u32) -> Result<Vec<StoredProposal>, StorageError> {
        let (status, limit) = (status.map(|s| text(s).into_owned()), i64::from(limit));
        self.run(move |client| async move {
            let sql = format!(
                "SELECT {PROPOSAL_COLUMNS} FROM genome_proposals WHERE ($1::TEXT IS NULL OR status = $1) ORDER BY id DESC LIMIT $2"
            );
            client.query(&sql, &[&status, &limit]).await?.iter().map(proposal_row).collect()
        })
    }

    fn proposal_set_status(&self, id: i64, status: &str, message: &str) -> Result<(), StorageError> {
        let (status, message) = (status.to_string(), message.to_string());
        self.run(move |client| async move {
            client
                .execute("UPDATE genome_proposals SET status = $2, message = $3 WHERE id = $1", &[&id, &status, &text(&message)])
                .await?;
            Ok(())
        })
    }

    fn proposal_transition(&self, id: i64, from: &str, to: &str, message: &str) -> Result<bool, StorageError> {
        let (from, to, message) = (from.to_string(), to.to_string(), message.to_string());
        self.run(move |client| async move {
            // One statement is the claim: under READ COMMITTED a concurrent
            // UPDATE of the same row waits for the first to commit, then
            // re-checks `status = $2` on the new row version and matches
            // nothing, so of any number of hosts exactly one sees 1 row.
            let changed = client
                .execute(
                    "UPDATE genome_proposals SET status = $3, message = $4 WHERE id = $1 AND status = $2",
                    &[&id, &from, &to, &text(&message)],
                )
                .await?;
            Ok(changed == 1)
        })
    }
}
