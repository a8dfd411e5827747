//! What the evolution engine keeps: lineage (every version's source,
//! component hash, parent and origin), evolution runs (status, decision,
//! the checkpoint a resume starts from), installs (what rollback walks),
//! and the audit of what agents asked through the `evolution` capability.
//! A narrow trait of its own, beside [`super::Storage`].
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::StorageError;
use super::sqlite::SqliteStorage;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentVersion {
    /// SHA-256 of the component.
    pub hash: String,
    pub agent: String,
    pub parent: Option<String>,
    /// `source` (built from the agent's crate), `installed` (found in the
    /// agents directory), `dir:PATH/NAME`, `llm:...`, `create`.
    pub origin: String,
    /// The `src/` files, as JSON `{path: text}`.
    pub source: String,
    pub evolution: Option<String>,
    pub created: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvolutionRecord {
    pub id: String,
    pub agent: String,
    /// `running`, `finished`, `failed`, `interrupted`.
    pub status: String,
    /// `swapped` or `kept` once finished.
    pub decision: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// JSON state after the last finished generation (resume starts here).
    #[serde(skip)]
    pub checkpoint: Option<String>,
    /// JSON summary once finished (what `--json` printed).
    #[serde(skip)]
    pub summary: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstallRecord {
    pub agent: String,
    pub hash: String,
    /// `evolution ID`, `rollback`, `auto-rollback`, `create`, ...
    pub reason: String,
    pub at: i64,
}

/// One request an agent made through the `evolution` capability, granted
/// or refused (the audit; proposals are the `propose` rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvolutionRequest {
    pub id: i64,
    pub at: i64,
    /// The agent that asked.
    pub agent: String,
    /// `create`, `evolve`, `propose`, `compare`, `stats`.
    pub action: String,
    /// The agent the request is about (empty for `stats`).
    pub target: String,
    /// `pending`, `started`, `proposed`, `answered`, or `refused: CODE`.
    pub outcome: String,
    /// The run started (create/evolve).
    pub run: Option<String>,
    /// What was asked, clipped (a proposal's kind and detail as JSON).
    pub detail: String,
}

/// Audit rows that start no run (refusals, proposals, reads) kept per
/// agent, action and UTC day (then dropped), so a guest looping over
/// requests cannot grow the table or flood the proposals a person reads.
pub const MAX_NOTES_PER_DAY: u64 = 200;

pub trait EvolutionStore: Send + Sync {
    /// Records a version; recording a known hash again changes nothing.
    fn record_version(&self, v: &AgentVersion) -> Result<(), StorageError>;
    fn version(&self, hash: &str) -> Result<Option<AgentVersion>, StorageError>;
    /// Versions of `agent`, oldest first.
    fn versions(&self, agent: &str) -> Result<Vec<AgentVersion>, StorageError>;
    fn upsert_evolution(&self, e: &EvolutionRecord) -> Result<(), StorageError>;
    fn evolution(&self, id: &str) -> Result<Option<EvolutionRecord>, StorageError>;
    /// Newest first.
    fn evolutions(&self, limit: u32) -> Result<Vec<EvolutionRecord>, StorageError>;
    fn record_install(&self, r: &InstallRecord) -> Result<(), StorageError>;
    /// Installs of `agent`, oldest first.
    fn installs(&self, agent: &str) -> Result<Vec<InstallRecord>, StorageError>;
    /// Records a run-starting request (`create`/`evolve`) if `request.agent`
    /// started fewer than `runs_per_day` since `day_start`, atomically (two
    /// calls at once cannot both take the last run), and had fewer than
    /// [`MAX_NOTES_PER_DAY`] such requests refused; `None` otherwise.
    fn evolution_request_reserve(&self, request: &EvolutionRequest, day_start: i64, runs_per_day: u64) -> Result<Option<i64>, StorageError>;
    /// Sets the outcome (and run) of a reserved request.
    fn evolution_request_finish(&self, id: i64, outcome: &str, run: Option<&str>) -> Result<(), StorageError>;
    /// Records a request that starts no run (a refusal, a proposal, a read)
    /// and returns its id; beyond [`MAX_NOTES_PER_DAY`] such rows of one
    /// agent and action since `day_start` it is dropped (`None`).
    fn evolution_request_note(&self, request: &EvolutionRequest, day_start: i64) -> Result<Option<i64>, StorageError>;
    /// The request that started run `run`.
    fn evolution_request_by_run(&self, run: &str) -> Result<Option<EvolutionRequest>, StorageError>;
    /// The newest `limit` requests, newest first, optionally of one action.
    fn evolution_requests(&self, action: Option<&str>, limit: u32) -> Result<Vec<EvolutionRequest>, StorageError>;
}

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS evolution_requests (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    agent   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    outcome TEXT NOT NULL,
    run     TEXT,
    detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS evolution_requests_by_agent ON evolution_requests (agent, at);
CREATE INDEX IF NOT EXISTS evolution_requests_by_run ON evolution_requests (run);
";

const REQUEST_COLUMNS: &str = "id, at, agent, action, target, outcome, run, detail";

fn request_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EvolutionRequest> {
    Ok(EvolutionRequest {
        id: r.get(0)?,
        at: r.get(1)?,
        agent: r.get(2)?,
        action: r.get(3)?,
        target: r.get(4)?,
        outcome: r.get(5)?,
        run: r.get(6)?,
        detail: r.get(7)?,
    })
}

fn evolution_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EvolutionRecord> {
    Ok(EvolutionRecord {
        id: r.get(0)?,
        agent: r.get(1)?,
        status: r.get(2)?,
        decision: r.get(3)?,
        started_at: r.get(4)?,
        finished_at: r.get(5)?,
        checkpoint: r.get(6)?,
        summary: r.get(7)?,
    })
}

fn version_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AgentVersion> {
    Ok(AgentVersion {
        hash: r.get(0)?,
        agent: r.get(1)?,
        parent: r.get(2)?,
        origin: r.get(3)?,
        source: r.get(4)?,
        evolution: r.get(5)?,
        created: r.get(6)?,
    })
}

const EVOLUTION_COLUMNS: &str = "id, agent, status, decision, started_at, finished_at, checkpoint, summary";
const VERSION_COLUMNS: &str = "hash, agent, parent, origin, source, evolution, created";

impl EvolutionStore for SqliteStorage {
    fn record_version(&self, v: &AgentVersion) -> Result<(), StorageError> {
        self.conn().execute(
            "INSERT INTO agent_versions (hash, agent, parent, origin, source, evolution, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (hash) DO NOTHING",
            params![v.hash, v.agent, v.parent, v.origin, v.source, v.evolution, v.created],
        )?;
        Ok(())
    }

    fn version(&self, hash: &str) -> Result<Option<AgentVersion>, StorageError> {
        Ok(self
            .conn()
            .query_row(&format!("SELECT {VERSION_COLUMNS} FROM agent_versions WHERE hash = ?1"), [hash], version_row)
            .optional()?)
    }

    fn versions(&self, agent: &str) -> Result<Vec<AgentVersion>, StorageError> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare(&format!("SELECT {VERSION_COLUMNS} FROM agent_versions WHERE agent = ?1 ORDER BY created, rowid"))?;
        let rows = stmt.query_map([agent], version_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn upsert_evolution(&self, e: &EvolutionRecord) -> Result<(), StorageError> {
        self.conn().execute(
            "INSERT INTO evolutions (id, agent, status, decision, started_at, finished_at, checkpoint, summary)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, decision = excluded.decision,
                 finished_at = excluded.finished_at, checkpoint = excluded.checkpoint, summary = excluded.summary",
            params![e.id, e.agent, e.status, e.decision, e.started_at, e.finished_at, e.checkpoint, e.summary],
        )?;
        Ok(())
    }

    fn evolution(&self, id: &str) -> Result<Option<EvolutionRecord>, StorageError> {
        Ok(self
            .conn()
            .query_row(&format!("SELECT {EVOLUTION_COLUMNS} FROM evolutions WHERE id = ?1"), [id], evolution_row)
            .optional()?)
    }

    fn evolutions(&self, limit: u32) -> Result<Vec<EvolutionRecord>, StorageError> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare(&format!("SELECT {EVOLUTION_COLUMNS} FROM evolutions ORDER BY started_at DESC, rowid DESC LIMIT ?1"))?;
        let rows = stmt.query_map([limit], evolution_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn record_install(&self, r: &InstallRecord) -> Result<(), StorageError> {
        self.conn().execute(
            "INSERT INTO agent_installs (agent, hash, reason, at) VALUES (?1, ?2, ?3, ?4)",
            params![r.agent, r.hash, r.reason, r.at],
        )?;
        Ok(())
    }

    fn installs(&self, agent: &str) -> Result<Vec<InstallRecord>, StorageError> {
        let conn = self.reader();
        let mut stmt = conn.prepare("SELECT agent, hash, reason, at FROM agent_installs WHERE agent = ?1 ORDER BY id")?;
        let rows = stmt
            .query_map([agent], |r| Ok(InstallRecord { agent: r.get(0)?, hash: r.get(1)?, reason: r.get(2)?, at: r.get(3)? }))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn evolution_request_reserve(&self, r: &EvolutionRequest, day_start: i64, runs_per_day: u64) -> Result<Option<i64>, StorageError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let used: i64 = tx.query_row(
            "SELECT COUNT(*) FROM evolution_requests WHERE agent = ?1 AND at >= ?2
                 AND action IN ('create', 'evolve') AND outcome IN ('pending', 'started')",
            params![r.agent, day_start],
            |row| row.get(0),
        )?;
        // Refused run requests leave rows too: capped like notes, so a guest
        // looping over a refused request cannot grow the table.
        let refused: i64 = tx.query_row(
            "SELECT COUNT(*) FROM evolution_requests WHERE agent = ?1 AND action = ?2 AND at >= ?3 AND outcome LIKE 'refused%'",
            params![r.agent, r.action, day_start],
            |row| row.get(0),
        )?;
        if used as u64 >= runs_per_day || refused as u64 >= MAX_NOTES_PER_DAY {
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO evolution_requests (at, agent, action, target, outcome, run, detail) VALUES (?1, ?2, ?3, ?4, 'pending', NULL, ?5)",
            params![r.at, r.agent, r.action, r.target, r.detail],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(Some(id))
    }

    fn evolution_request_finish(&self, id: i64, outcome: &str, run: Option<&str>) -> Result<(), StorageError> {
        self.conn().execute("UPDATE evolution_requests SET outcome = ?2, run = ?3 WHERE id = ?1", params![id, outcome, run])?;
        Ok(())
    }

    fn evolution_request_note(&self, r: &EvolutionRequest, day_start: i64) -> Result<Option<i64>, StorageError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let noted: i64 = tx.query_row(
            "SELECT COUNT(*) FROM evolution_requests WHERE agent = ?1 AND action = ?2 AND at >= ?3
                 AND outcome NOT IN ('pending', 'started')",
            params![r.agent, r.action, day_start],
            |row| row.get(0),
        )?;
        if noted as u64 >= MAX_NOTES_PER_DAY {
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO evolution_requests (at, agent, action, target, outcome, run, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![r.at, r.agent, r.action, r.target, r.outcome, r.run, r.detail],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(Some(id))
    }

    fn evolution_request_by_run(&self, run: &str) -> Result<Option<EvolutionRequest>, StorageError> {
        Ok(self
            .conn()
            .query_row(&format!("SELECT {REQUEST_COLUMNS} FROM evolution_requests WHERE run = ?1 ORDER BY id LIMIT 1"), [run], request_row)
            .optional()?)
    }

    fn evolution_requests(&self, action: Option<&str>, limit: u32) -> Result<Vec<EvolutionRequest>, StorageError> {
        let conn = self.reader();
        let mut stmt = conn.prepare(&format!(
            "SELECT {REQUEST_COLUMNS} FROM evolution_requests WHERE ?1 IS NULL OR action = ?1 ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![action, limit], request_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(agent: &str, action: &str, outcome: &str) -> EvolutionRequest {
        EvolutionRequest {
            id: 0,
            at: 1_000,
            agent: agent.into(),
            action: action.into(),
            target: "t".into(),
            outcome: outcome.into(),
            run: None,
            detail: String::new(),
        }
    }

    #[test]
    fn runs_per_day_are_counted_per_agent_and_notes_are_capped() {
        let s = SqliteStorage::in_memory().unwrap();
        let a = s.evolution_request_reserve(&request("a", "create", "pending"), 0, 2).unwrap().unwrap();
        s.evolution_request_finish(a, "started", Some("run-1")).unwrap();
        assert!(s.evolution_request_reserve(&request("a", "evolve", "pending"), 0, 2).unwrap().is_some());
        assert!(s.evolution_request_reserve(&request("a", "create", "pending"), 0, 2).unwrap().is_none(), "two a day");
        assert!(s.evolution_request_reserve(&request("b", "create", "pending"), 0, 2).unwrap().is_some(), "per agent");
        assert!(s.evolution_request_reserve(&request("a", "create", "pending"), 2_000, 2).unwrap().is_some(), "a new day");
        assert_eq!(s.evolution_request_by_run("run-1").unwrap().unwrap().agent, "a");
        for _ in 0..MAX_NOTES_PER_DAY {
            assert!(s.evolution_request_note(&request("a", "propose", "proposed"), 0).unwrap().is_some());
        }
        assert!(s.evolution_request_note(&request("a", "propose", "proposed"), 0).unwrap().is_none(), "capped");
        assert!(s.evolution_request_note(&request("a", "create", "refused: busy"), 0).unwrap().is_some(), "per action");
        assert_eq!(s.evolution_requests(Some("propose"), 500).unwrap().len() as u64, MAX_NOTES_PER_DAY);
    }

    #[test]
    fn lineage_evolutions_and_installs_round_trip() {
        let s = SqliteStorage::in_memory().unwrap();
        let v = |hash: &str, parent: Option<&str>, created| AgentVersion {
            hash: hash.into(),
            agent: "primes".into(),
            parent: parent.map(Into::into),
            origin: "source".into(),
            source: r#"{"lib.rs":"fn main(){}"}"#.into(),
            evolution: None,
            created,
        };
        s.record_version(&v("a", None, 1)).unwrap();
        s.record_version(&v("b", Some("a"), 2)).unwrap();
        s.record_version(&v("a", Some("zzz"), 3)).unwrap();
        let all = s.versions("primes").unwrap();
        assert_eq!(all.iter().map(|v| v.hash.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(s.version("a").unwrap().unwrap().parent, None, "a known hash is not overwritten");
        assert_eq!(s.version("b").unwrap().unwrap().parent.as_deref(), Some("a"));

        let mut e = EvolutionRecord {
            id: "e1".into(),
            agent: "primes".into(),
            status: "running".into(),
            decision: None,
            started_at: 10,
            finished_at: None,
            checkpoint: Some("{}".into()),
            summary: None,
        };
        s.upsert_evolution(&e).unwrap();
        e.status = "finished".into();
        e.decision = Some("swapped".into());
        e.finished_at = Some(20);
        s.upsert_evolution(&e).unwrap();
        assert_eq!(s.evolution("e1").unwrap().unwrap(), e);
        assert_eq!(s.evolutions(10).unwrap().len(), 1);

        s.record_install(&InstallRecord { agent: "primes".into(), hash: "a".into(), reason: "x".into(), at: 1 }).unwrap();
        s.record_install(&InstallRecord { agent: "primes".into(), hash: "b".into(), reason: "y".into(), at: 2 }).unwrap();
        assert_eq!(s.installs("primes").unwrap().iter().map(|i| i.hash.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    }
}
