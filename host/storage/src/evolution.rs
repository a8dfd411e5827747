//! What the evolution engine keeps: lineage (every version's source,
//! component hash, parent and origin), evolution runs (status, decision,
//! the checkpoint a resume starts from) and installs (what rollback walks).
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
