//! PostgreSQL: `EvolutionStore` (lineage, runs, installs, and the audit of
//! what agents asked through the `evolution` capability), with the
//! semantics of the SQLite implementation in `crate::evolution`.
//!
//! Free text a guest or client can reach has each NUL replaced with U+FFFD
//! ([`super::text`]), as TEXT refuses NUL and the row would be lost: a
//! version's `origin`, an install's `reason`, a request's `target` and
//! `detail`. So do the keys guests and clients look up by: a run id
//! (`evolution`, `evolution_request_by_run`, and `run` where it is written)
//! and an agent name (`versions`, which a guest's comparison reaches
//! unchecked). Hashes, agent names written, actions and outcomes are the
//! host's; `source`, `checkpoint` and `summary` are serde_json's.
use tokio_postgres::Row;

use super::{PostgresStorage, lock_key, text};
use crate::StorageError;
use crate::evolution::{AgentVersion, EvolutionRecord, EvolutionRequest, EvolutionStore, InstallRecord, MAX_NOTES_PER_DAY};

/// `seq` stands in for SQLite's implicit `rowid`: the tie-break that keeps
/// versions created in the same second, and runs started in the same
/// second, in the order they were written. `agent_installs` keeps the
/// column names `stats` reads (`installs_since`).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS agent_versions (
    hash      TEXT PRIMARY KEY,
    agent     TEXT NOT NULL,
    parent    TEXT,
    origin    TEXT NOT NULL,
    source    TEXT NOT NULL,
    evolution TEXT,
    created   BIGINT NOT NULL,
    seq       BIGSERIAL NOT NULL
);
CREATE INDEX IF NOT EXISTS agent_versions_by_agent ON agent_versions (agent, created, seq);
CREATE TABLE IF NOT EXISTS evolutions (
    id          TEXT PRIMARY KEY,
    agent       TEXT NOT NULL,
    status      TEXT NOT NULL,
    decision    TEXT,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    checkpoint  TEXT,
    summary     TEXT,
    seq         BIGSERIAL NOT NULL
);
CREATE TABLE IF NOT EXISTS agent_installs (
    id     BIGSERIAL PRIMARY KEY,
    agent  TEXT NOT NULL,
    hash   TEXT NOT NULL,
    reason TEXT NOT NULL,
    at     BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS agent_installs_by_agent ON agent_installs (agent, id);
-- The KPIs read installs and runs by time (`StatsStore`).
CREATE INDEX IF NOT EXISTS agent_installs_by_time ON agent_installs (at);
CREATE TABLE IF NOT EXISTS evolution_requests (
    id      BIGSERIAL PRIMARY KEY,
    at      BIGINT NOT NULL,
    agent   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    outcome TEXT NOT NULL,
    run     TEXT,
    detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS evolutions_by_start ON evolutions (started_at);
CREATE INDEX IF NOT EXISTS evolution_requests_by_agent ON evolution_requests (agent, at);
CREATE INDEX IF NOT EXISTS evolution_requests_by_run ON evolution_requests (run);
";

const VERSION_COLUMNS: &str = "hash, agent, parent, origin, source, evolution, created";
const EVOLUTION_COLUMNS: &str = "id, agent, status, decision, started_at, finished_at, checkpoint, summary";
const REQUEST_COLUMNS: &str = "id, at, agent, action, target, outcome, run, detail";

/// What `evolution_request_reserve` and `evolution_request_note` count is
/// one agent's requests of the day: both serialise on this key, so the
/// count and the insert after it hold across hosts.
fn day_lock(agent: &str) -> i64 {
    lock_key("evolution-day", agent)
}

fn version_row(r: &Row) -> Result<AgentVersion, StorageError> {
    Ok(AgentVersion {
        hash: r.try_get(0)?,
        agent: r.try_get(1)?,
        parent: r.try_get(2)?,
        origin: r.try_get(3)?,
        source: r.try_get(4)?,
        evolution: r.try_get(5)?,
        created: r.try_get(6)?,
    })
}

fn evolution_row(r: &Row) -> Result<EvolutionRecord, StorageError> {
    Ok(EvolutionRecord {
        id: r.try_get(0)?,
        agent: r.try_get(1)?,
        status: r.try_get(2)?,
        decision: r.try_get(3)?,
        started_at: r.try_get(4)?,
        finished_at: r.try_get(5)?,
        checkpoint: r.try_get(6)?,
        summary: r.try_get(7)?,
    })
}

fn request_row(r: &Row) -> Result<EvolutionRequest, StorageError> {
    Ok(EvolutionRequest {
        id: r.try_get(0)?,
        at: r.try_get(1)?,
        agent: r.try_get(2)?,
        action: r.try_get(3)?,
        target: r.try_get(4)?,
        outcome: r.try_get(5)?,
        run: r.try_get(6)?,
        detail: r.try_get(7)?,
    })
}

/// A count from the database, against a cap given as `u64`.
fn count(row: &Row) -> Result<u64, StorageError> {
    let n: i64 = row.try_get(0)?;
    u64::try_from(n).map_err(|_| StorageError::Corrupt(format!("a negative count: {n}")))
}

impl EvolutionStore for PostgresStorage {
    fn record_version(&self, v: &AgentVersion) -> Result<(), StorageError> {
        let v = v.clone();
        self.run(move |client| async move {
            // A known hash keeps its first record (its lineage never changes).
            client
                .execute(
                    "INSERT INTO agent_versions (hash, agent, parent, origin, source, evolution, created)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (hash) DO NOTHING",
                    &[&v.hash, &v.agent, &v.parent, &text(&v.origin), &v.source, &v.evolution, &v.created],
                )
                .await?;
            Ok(())
        })
    }

    fn version(&self, hash: &str) -> Result<Option<AgentVersion>, StorageError> {
        let hash = hash.to_string();
        self.run(move |client| async move {
            let sql = format!("SELECT {VERSION_COLUMNS} FROM agent_versions WHERE hash = $1");
            client.query_opt(&sql, &[&hash]).await?.as_ref().map(version_row).transpose()
        })
    }

    fn versions(&self, agent: &str) -> Result<Vec<AgentVersion>, StorageError> {
        let agent = text(agent).into_owned();
        self.run(move |client| async move {
            let sql = format!("SELECT {VERSION_COLUMNS} FROM agent_versions WHERE agent = $1 ORDER BY created, seq");
            client.query(&sql, &[&agent]).await?.iter().map(version_row).collect()
        })
    }

    fn upsert_evolution(&self, e: &EvolutionRecord) -> Result<(), StorageError> {
        let e = e.clone();
        self.run(move |client| async move {
            // An update keeps the row's `seq` (and its agent and start), as
            // SQLite's upsert keeps its rowid.
            client
                .execute(
                    "INSERT INTO evolutions (id, agent, status, decision, started_at, finished_at, checkpoint, summary)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (id) DO UPDATE SET status = excluded.status, decision = excluded.decision,
                         finished_at = excluded.finished_at, checkpoint = excluded.checkpoint, summary = excluded.summary",
                    &[&text(&e.id), &e.agent, &e.status, &e.decision, &e.started_at, &e.finished_at, &e.checkpoint, &e.summary],
                )
                .await?;
            Ok(())
        })
    }

    fn evolution(&self, id: &str) -> Result<Option<EvolutionRecord>, StorageError> {
        let id = text(id).into_owned();
        self.run(move |client| async move {
            let sql = format!("SELECT {EVOLUTION_COLUMNS} FROM evolutions WHERE id = $1");
            client.query_opt(&sql, &[&id]).await?.as_ref().map(evolution_row).transpose()
        })
    }

    fn evolutions(&self, limit: u32) -> Result<Vec<EvolutionRecord>, StorageError> {
        let limit = i64::from(limit);
        self.run(move |client| async move {
            let sql = format!("SELECT {EVOLUTION_COLUMNS} FROM evolutions ORDER BY started_at DESC, seq DESC LIMIT $1");
            client.query(&sql, &[&limit]).await?.iter().map(evolution_row).collect()
        })
    }

    fn record_install(&self, r: &InstallRecord) -> Result<(), StorageError> {
        let r = r.clone();
        self.run(move |client| async move {
            client
                .execute(
                    "INSERT INTO agent_installs (agent, hash, reason, at) VALUES ($1, $2, $3, $4)",
                    &[&r.agent, &r.hash, &text(&r.reason), &r.at],
                )
                .await?;
            Ok(())
        })
    }

    fn installs(&self, agent: &str) -> Result<Vec<InstallRecord>, StorageError> {
        let agent = agent.to_string();
        self.run(move |client| async move {
            let rows = client.query("SELECT agent, hash, reason, at FROM agent_installs WHERE agent = $1 ORDER BY id", &[&agent]).await?;
            rows.iter()
                .map(|r| {
                    Ok(InstallRecord { agent: r.try_get(0)?, hash: r.try_get(1)?, reason: r.try_get(2)?, at: r.try_get(3)? })
                })
                .collect()
        })
    }

    fn evolution_request_reserve(&self, r: &EvolutionRequest, day_start: i64, runs_per_day: u64) -> Result<Option<i64>, StorageError> {
        let r = r.clone();
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&day_lock(&r.agent)]).await?;
            let used = count(
                &tx.query_one(
                    "SELECT COUNT(*) FROM evolution_requests WHERE agent = $1 AND at >= $2
                         AND action IN ('create', 'evolve') AND outcome IN ('pending', 'started')",
                    &[&r.agent, &day_start],
                )
                .await?,
            )?;
            // Refused run requests leave rows too: capped like notes, so a
            // guest looping over a refused request cannot grow the table.
            let refused = count(
                &tx.query_one(
                    "SELECT COUNT(*) FROM evolution_requests
                     WHERE agent = $1 AND action = $2 AND at >= $3 AND outcome LIKE 'refused%'",
                    &[&r.agent, &r.action, &day_start],
                )
                .await?,
            )?;
            if used >= runs_per_day || refused >= MAX_NOTES_PER_DAY {
                // Dropping the transaction rolls it back and frees the lock.
                return Ok(None);
            }
            let id: i64 = tx
                .query_one(
                    "INSERT INTO evolution_requests (at, agent, action, target, outcome, run, detail)
                     VALUES ($1, $2, $3, $4, 'pending', NULL, $5) RETURNING id",
                    &[&r.at, &r.agent, &r.action, &text(&r.target), &text(&r.detail)],
                )
                .await?
                .try_get(0)?;
            tx.commit().await?;
            Ok(Some(id))
        })
    }

    fn evolution_request_finish(&self, id: i64, outcome: &str, run: Option<&str>) -> Result<(), StorageError> {
        let (outcome, run) = (outcome.to_string(), run.map(|r| text(r).into_owned()));
        self.run(move |client| async move {
            client.execute("UPDATE evolution_requests SET outcome = $2, run = $3 WHERE id = $1", &[&id, &outcome, &run]).await?;
            Ok(())
        })
    }

    fn evolution_request_note(&self, r: &EvolutionRequest, day_start: i64) -> Result<Option<i64>, StorageError> {
        let r = r.clone();
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&day_lock(&r.agent)]).await?;
            let noted = count(
                &tx.query_one(
                    "SELECT COUNT(*) FROM evolution_requests WHERE agent = $1 AND action = $2 AND at >= $3
                         AND outcome NOT IN ('pending', 'started')",
                    &[&r.agent, &r.action, &day_start],
                )
                .await?,
            )?;
            if noted >= MAX_NOTES_PER_DAY {
                return Ok(None);
            }
            let id: i64 = tx
                .query_one(
                    "INSERT INTO evolution_requests (at, agent, action, target, outcome, run, detail)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                    &[&r.at, &r.agent, &r.action, &text(&r.target), &r.outcome, &r.run.as_deref().map(text), &text(&r.detail)],
                )
                .await?
                .try_get(0)?;
            tx.commit().await?;
            Ok(Some(id))
        })
    }

    fn evolution_request_by_run(&self, run: &str) -> Result<Option<EvolutionRequest>, StorageError> {
        let run = text(run).into_owned();
        self.run(move |client| async move {
            let sql = format!("SELECT {REQUEST_COLUMNS} FROM evolution_requests WHERE run = $1 ORDER BY id LIMIT 1");
            client.query_opt(&sql, &[&run]).await?.as_ref().map(request_row).transpose()
        })
    }

    fn evolution_requests(&self, action: Option<&str>, limit: u32) -> Result<Vec<EvolutionRequest>, StorageError> {
        let (action, limit) = (action.map(str::to_string), i64::from(limit));
        self.run(move |client| async move {
            let sql = format!(
                "SELECT {REQUEST_COLUMNS} FROM evolution_requests WHERE $1::TEXT IS NULL OR action = $1 ORDER BY id DESC LIMIT $2"
            );
            client.query(&sql, &[&action, &limit]).await?.iter().map(request_row).collect()
        })
    }
}
