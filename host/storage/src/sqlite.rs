//! SQLite backend (rusqlite, WAL). One writer connection behind a mutex:
//! SQLite serialises writes anyway, and agent memory calls are short.
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::sqlite_memory;
use super::sqlite_checkpoint::Checkpointer;
use super::sqlite_writer::GroupWriter;
use super::{
    CommitGate, HistoryQuota, HistoryUsage, KvOp, KvOutcome, KvQuota, LlmBudget, LlmTotals, LlmUsageRecord, NamespaceUsage,
    Storage, StorageError, StoredTurn, WriteRefused,
};

/// SQLite in WAL mode: one writer connection (SQLite serialises writers
/// anyway) and a small pool of read-only connections, so reads that need
/// no ordering with writes in flight (chat transcripts, the LLM ledger's
/// totals, audit and evolution listings) run in parallel with each other
/// and with the write in progress instead of queueing behind it.
///
/// Agent memory reads stay on the writer: after `outcome-unknown` a guest
/// is told to read the key back, and that read must wait for the write
/// still committing, not see the snapshot from before it. In-memory
/// databases are private to their connection and read through the writer.
pub struct SqliteStorage {
    conn: Arc<Mutex<Connection>>,
    /// Runs agent memory's and the ledger's [`crate::StorageCall`]s on
    /// `conn`, committing them in groups.
    writer: GroupWriter,
    /// File databases: WAL checkpoints off the writers' path.
    checkpointer: Option<Checkpointer>,
    readers: Vec<Mutex<Connection>>,
    next_reader: std::sync::atomic::AtomicUsize,
}

/// Read-only connections per file database.
pub const READERS: usize = 4;

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        StorageError::Backend(e.to_string())
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    namespace TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     BLOB NOT NULL,
    updated   INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL,
    session   TEXT NOT NULL,
    role      TEXT NOT NULL,
    content   TEXT NOT NULL,
    at        INTEGER NOT NULL DEFAULT (unixepoch())
);
CREATE INDEX IF NOT EXISTS history_by_session ON history (namespace, session, id);
CREATE TABLE IF NOT EXISTS llm_usage (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    at                INTEGER NOT NULL,
    agent             TEXT NOT NULL,
    session           TEXT NOT NULL,
    profile           TEXT NOT NULL,
    model             TEXT NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    latency_ms        INTEGER NOT NULL,
    cost_usd          REAL,
    outcome           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS llm_usage_by_agent ON llm_usage (agent, at);
-- Usage tables and their triggers: `sqlite_memory` (created by the migration).
-- Evolution: every agent version (lineage), every evolution run, and
-- every install into the agents directory (what rollback walks back).
CREATE TABLE IF NOT EXISTS agent_versions (
    hash      TEXT PRIMARY KEY,
    agent     TEXT NOT NULL,
    parent    TEXT,
    origin    TEXT NOT NULL,
    source    TEXT NOT NULL,
    evolution TEXT,
    created   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS agent_versions_by_agent ON agent_versions (agent, created);
CREATE TABLE IF NOT EXISTS evolutions (
    id          TEXT PRIMARY KEY,
    agent       TEXT NOT NULL,
    status      TEXT NOT NULL,
    decision    TEXT,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    checkpoint  TEXT,
    summary     TEXT
);
CREATE TABLE IF NOT EXISTS agent_installs (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    agent  TEXT NOT NULL,
    hash   TEXT NOT NULL,
    reason TEXT NOT NULL,
    at     INTEGER NOT NULL
);
";

/// What an acknowledged write survives (`[storage] durability`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// The process being killed (crash, OOM, `kill -9`), not power loss or
    /// an OS crash, which may lose the last commits (never corrupts):
    /// WAL with `synchronous = NORMAL`, no fsync per commit.
    #[default]
    Process,
    /// Power loss and OS crashes too: `synchronous = FULL`, an fsync of the
    /// WAL per commit (slower writes).
    Power,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::Process => "NORMAL",
            Durability::Power => "FULL",
        }
    }
}

/// `[storage]` in `agentkernel.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// SQLite only (PostgreSQL's durability is the server's own settings).
    #[serde(default)]
    pub durability: Durability,
    /// `postgres://user[:password]@host[:port]/database`: keep everything in
    /// PostgreSQL, shared by every host given the same url. Unset: SQLite in
    /// the data directory. `AGENTKERNEL_STORAGE_URL` overrides it (so a
    /// password need not sit in the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// PostgreSQL connections this host keeps (default
    /// [`crate::postgres::DEFAULT_POOL_SIZE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<usize>,
}

/// The variable that overrides `[storage] url`.
pub const STORAGE_URL_VAR: &str = "AGENTKERNEL_STORAGE_URL";

impl StorageConfig {
    /// Checks what can be checked without connecting.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err("[storage] url must be a postgres:// url (unset it for SQLite in the data directory)".into());
            }
        }
        if self.pool_size == Some(0) || self.pool_size.is_some_and(|n| n > 1024) {
            return Err("[storage] pool_size must be 1-1024".into());
        }
        Ok(())
    }

    /// Applies `AGENTKERNEL_STORAGE_URL` when it is set and not empty.
    pub fn apply_env(&mut self) {
        if let Ok(url) = std::env::var(STORAGE_URL_VAR) {
            if !url.trim().is_empty() {
                self.url = Some(url.trim().to_string());
            }
        }
    }
}

/// How long a statement waits for another connection's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Puts the database in WAL mode, which lets readers (e.g. `agentkernel`
/// CLI queries) run beside the server.
///
/// Two processes opening one new file at once (two `genome apply` runs, a
/// CLI beside a starting server) both read the header in rollback mode and
/// then both need the write lock to switch it; SQLite never calls the busy
/// handler for that upgrade (waiting could deadlock), so the loser got
/// "database is locked" at once. It retries here, for as long as the busy
/// timeout would have waited; once one of them has switched the file the
/// other finds it in WAL mode and needs no write.
fn enable_wal(conn: &Connection) -> Result<(), StorageError> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)) {
            Ok(_) => return Ok(()),
            Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path`, with the default
    /// durability.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        Self::open_with(path, Durability::default())
    }

    /// Opens (creating if needed) the database at `path`.
    pub fn open_with(path: &Path, durability: Durability) -> Result<Self, StorageError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StorageError::Backend(format!("{}: {e}", dir.display())))?;
        }
        let mut storage = Self::init(Connection::open(path)?, durability)?;
        // After `init`: the schema exists and the database is in WAL mode.
        storage.conn().execute_batch(&Checkpointer::writer_pragmas())?;
        storage.checkpointer = Some(Checkpointer::start(path, durability.pragma(), BUSY_TIMEOUT)?);
        for _ in 0..READERS {
            let reader = Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            reader.busy_timeout(BUSY_TIMEOUT)?;
            storage.readers.push(Mutex::new(reader));
        }
        Ok(storage)
    }

    /// A private in-memory database (tests, benchmarks, evolution doubles).
    pub fn in_memory() -> Result<Self, StorageError> {
        Self::init(Connection::open_in_memory()?, Durability::default())
    }

    fn init(conn: Connection, durability: Durability) -> Result<Self, StorageError> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        enable_wal(&conn)?;
        conn.execute_batch(&format!("PRAGMA synchronous={}; PRAGMA foreign_keys=ON;", durability.pragma()))?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(super::aws::SCHEMA)?;
        super::aws::migrate(&conn)?;
        conn.execute_batch(super::sessions::SCHEMA)?;
        conn.execute_batch(super::http::SCHEMA)?;
        conn.execute_batch(super::research::SCHEMA)?;
        conn.execute_batch(super::stats::SCHEMA)?;
        conn.execute_batch(super::evolution::SCHEMA)?;
        conn.execute_batch(super::lease::SQLITE_SCHEMA)?;
        conn.execute_batch(super::components::SQLITE_SCHEMA)?;
        conn.execute_batch(super::jobs::SQLITE_SCHEMA)?;
        sqlite_memory::migrate(&conn)?;
        let conn = Arc::new(Mutex::new(conn));
        let writer = GroupWriter::start(conn.clone())?;
        Ok(SqliteStorage { conn, writer, checkpointer: None, readers: Vec::new(), next_reader: Default::default() })
    }

    /// Stores `value` without a quota: seeding test and benchmark databases.
    pub fn seed(&self, ns: &str, key: &str, value: &[u8]) -> Result<(), StorageError> {
        let ops = [KvOp::Set { key: key.into(), value: value.to_vec() }];
        self.kv_apply(ns, &ops, &KvQuota::UNLIMITED, &CommitGate::new())?
            .map_err(|refused| StorageError::Backend(format!("seeding without a quota was refused: {refused}")))?;
        Ok(())
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written
        // (statements are atomic), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection for a read: a free reader if one is, else the next in
    /// turn (waiting for it), else the writer (in-memory databases). Each
    /// statement is its own read transaction, so it sees every write that
    /// committed before it began.
    pub(crate) fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        if self.readers.is_empty() {
            return self.conn();
        }
        let start = self.next_reader.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = self.readers.len();
        for i in 0..n {
            if let Ok(guard) = self.readers[(start + i) % n].try_lock() {
                return guard;
            }
        }
        self.readers[start % n].lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Storage for SqliteStorage {
    fn kv_get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        kv_get_in(&self.conn(), ns, key)
    }

    fn kv_apply(
        &self,
        ns: &str,
        ops: &[KvOp],
        quota: &KvQuota,
        gate: &CommitGate,
    ) -> Result<Result<Vec<KvOutcome>, WriteRefused>, StorageError> {
        sqlite_memory::kv_apply(&mut self.conn(), ns, ops, quota, gate)
    }

    fn kv_list(&self, ns: &str, prefix: &str, limit: u32) -> Result<Vec<String>, StorageError> {
        kv_list_in(&self.conn(), ns, prefix, limit)
    }

    fn kv_usage(&self, ns: &str) -> Result<NamespaceUsage, StorageError> {
        sqlite_memory::kv_usage(&self.conn(), ns)
    }

    fn history_append(
        &self,
        ns: &str,
        session: &str,
        turn: &StoredTurn,
        quota: &HistoryQuota,
        gate: &CommitGate,
    ) -> Result<Result<(), WriteRefused>, StorageError> {
        sqlite_memory::history_append(&mut self.conn(), ns, session, turn, quota, gate)
    }

    fn history_usage(&self, ns: &str) -> Result<HistoryUsage, StorageError> {
        sqlite_memory::history_usage(&self.conn(), ns)
    }

    fn llm_record(&self, r: &LlmUsageRecord) -> Result<(), StorageError> {
        insert_usage(&self.conn(), r)
    }

    fn llm_usage(&self, agent: Option<&str>, since: i64) -> Result<Vec<LlmUsageRecord>, StorageError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT at, agent, session, profile, model, prompt_tokens, completion_tokens, latency_ms, cost_usd, outcome
             FROM llm_usage WHERE at >= ?1 AND (?2 IS NULL OR agent = ?2) ORDER BY id",
        )?;
        let rows = stmt.query_map(params![since, agent], usage_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn llm_totals(&self, agent: &str, since: i64) -> Result<LlmTotals, StorageError> {
        llm_totals_in(&self.reader(), agent, since)
    }

    fn llm_reserve(&self, hold: &LlmUsageRecord, since: i64, budget: &LlmBudget) -> Result<Result<(i64, u64), LlmTotals>, StorageError> {
        let mut conn = self.conn();
        // IMMEDIATE: the totals read cannot change before the insert, in
        // this process or another one on the same file.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let used = llm_totals_in(&tx, &hold.agent, since)?;
        let Some(granted) = budget.grant(&used, hold.prompt_tokens, hold.completion_tokens, hold.cost_usd.unwrap_or(0.0)) else {
            return Ok(Err(used));
        };
        insert_usage(&tx, &LlmUsageRecord { completion_tokens: granted, ..hold.clone() })?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(Ok((id, granted)))
    }

    fn llm_settle(&self, id: i64, r: &LlmUsageRecord) -> Result<(), StorageError> {
        settle_usage(&self.conn(), id, r)
    }

    fn history_tail(&self, ns: &str, session: &str, limit: u32) -> Result<Vec<StoredTurn>, StorageError> {
        history_tail_in(&self.conn(), ns, session, limit)
    }

    fn submit(self: std::sync::Arc<Self>, call: crate::StorageCall) -> crate::Answering {
        self.writer.submit(call)
    }
}

pub(crate) fn kv_get_in(conn: &Connection, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
    Ok(conn
        .prepare_cached("SELECT value FROM kv WHERE namespace = ?1 AND key = ?2")?
        .query_row(params![ns, key], |r| r.get(0))
        .optional()?)
}

pub(crate) fn kv_list_in(conn: &Connection, ns: &str, prefix: &str, limit: u32) -> Result<Vec<String>, StorageError> {
    // Keys sharing a prefix are contiguous in byte order (BINARY
    // collation), so a range scan from `prefix` stops at the first key
    // without it. (LIKE would be case-insensitive and need escaping.)
    let mut stmt = conn.prepare_cached("SELECT key FROM kv WHERE namespace = ?1 AND key >= ?2 ORDER BY key")?;
    let mut rows = stmt.query(params![ns, prefix])?;
    let mut keys = Vec::new();
    while keys.len() < limit as usize {
        let Some(row) = rows.next()? else { break };
        let key: String = row.get(0)?;
        if !key.starts_with(prefix) {
            break;
        }
        keys.push(key);
    }
    Ok(keys)
}

pub(crate) fn history_tail_in(conn: &Connection, ns: &str, session: &str, limit: u32) -> Result<Vec<StoredTurn>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT role, content FROM history WHERE namespace = ?1 AND session = ?2 ORDER BY id DESC LIMIT ?3",
    )?;
    let mut turns = stmt
        .query_map(params![ns, session, limit], |r| Ok(StoredTurn { role: r.get(0)?, content: r.get(1)? }))?
        .collect::<Result<Vec<_>, _>>()?;
    turns.reverse();
    Ok(turns)
}

pub(crate) fn settle_usage(conn: &Connection, id: i64, r: &LlmUsageRecord) -> Result<(), StorageError> {
    conn.prepare_cached(
        "UPDATE llm_usage SET at = ?2, agent = ?3, session = ?4, profile = ?5, model = ?6, prompt_tokens = ?7,
         completion_tokens = ?8, latency_ms = ?9, cost_usd = ?10, outcome = ?11 WHERE id = ?1",
    )?
    .execute(params![
        id,
        r.at,
        r.agent,
        r.session,
        r.profile,
        r.model,
        r.prompt_tokens as i64,
        r.completion_tokens as i64,
        r.latency_ms as i64,
        r.cost_usd,
        r.outcome
    ])?;
    Ok(())
}

pub(crate) fn insert_usage(conn: &Connection, r: &LlmUsageRecord) -> Result<(), StorageError> {
    conn.prepare_cached(
        "INSERT INTO llm_usage (at, agent, session, profile, model, prompt_tokens, completion_tokens, latency_ms, cost_usd, outcome)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        r.at,
        r.agent,
        r.session,
        r.profile,
        r.model,
        r.prompt_tokens as i64,
        r.completion_tokens as i64,
        r.latency_ms as i64,
        r.cost_usd,
        r.outcome
    ])?;
    Ok(())
}

fn llm_totals_in(conn: &Connection, agent: &str, since: i64) -> Result<LlmTotals, StorageError> {
    let (calls, tokens, cost): (i64, i64, f64) = conn
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(prompt_tokens + completion_tokens), 0), COALESCE(SUM(cost_usd), 0.0)
             FROM llm_usage WHERE agent = ?1 AND at >= ?2",
        )?
        .query_row(params![agent, since], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(LlmTotals { calls: calls.max(0) as u64, tokens: tokens.max(0) as u64, cost_usd: cost })
}

fn usage_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LlmUsageRecord> {
    Ok(LlmUsageRecord {
        at: r.get(0)?,
        agent: r.get(1)?,
        session: r.get(2)?,
        profile: r.get(3)?,
        model: r.get(4)?,
        prompt_tokens: r.get::<_, i64>(5)?.max(0) as u64,
        completion_tokens: r.get::<_, i64>(6)?.max(0) as u64,
        latency_ms: r.get::<_, i64>(7)?.max(0) as u64,
        cost_usd: r.get(8)?,
        outcome: r.get(9)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Processes opening one new database file at the same moment all open
    /// it (connections of their own, as separate processes would have).
    #[test]
    fn many_openers_of_one_new_file_all_succeed() {
        const OPENERS: usize = 16;
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(format!("race-{round}.db"));
            let start = std::sync::Arc::new(std::sync::Barrier::new(OPENERS));
            let openers: Vec<_> = (0..OPENERS)
                .map(|i| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        let db = SqliteStorage::open(&path)?;
                        db.seed("ns", &format!("k{i}"), b"v")
                    })
                })
                .collect();
            for opener in openers {
                opener.join().unwrap().expect("every opener opens the new file");
            }
            let db = SqliteStorage::open(&path).unwrap();
            for i in 0..OPENERS {
                assert_eq!(db.kv_get("ns", &format!("k{i}")).unwrap().as_deref(), Some(&b"v"[..]));
            }
            let mode: String = db.conn().query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
            assert_eq!(mode, "wal");
        }
    }

    /// Unbounded, ungated writes: what these tests exercise is elsewhere.
    impl SqliteStorage {
        fn put(&self, ns: &str, key: &str, value: &[u8]) -> Result<(), StorageError> {
            self.seed(ns, key, value)
        }
        fn del(&self, ns: &str, key: &str) -> Result<bool, StorageError> {
            let ops = [KvOp::Delete { key: key.into() }];
            let out = self.kv_apply(ns, &ops, &KvQuota::UNLIMITED, &CommitGate::new())?.unwrap();
            Ok(out[0] == KvOutcome::Deleted(true))
        }
        fn append(&self, ns: &str, session: &str, turn: &StoredTurn) -> Result<(), StorageError> {
            self.history_append(ns, session, turn, &HistoryQuota::UNLIMITED, &CommitGate::new())?.unwrap();
            Ok(())
        }
    }

    #[test]
    fn namespaces_are_isolated() {
        let s = SqliteStorage::in_memory().unwrap();
        s.put("a", "k", b"1").unwrap();
        assert_eq!(s.kv_get("a", "k").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.kv_get("b", "k").unwrap(), None);
        assert!(!s.del("b", "k").unwrap());
        assert_eq!(s.kv_get("a", "k").unwrap(), Some(b"1".to_vec()));
    }

    #[test]
    fn list_matches_prefix_literally() {
        let s = SqliteStorage::in_memory().unwrap();
        for k in ["p/1", "p/2", "P/3", "p_x", "q/1"] {
            s.put("n", k, b"").unwrap();
        }
        assert_eq!(s.kv_list("n", "p/", 10).unwrap(), vec!["p/1", "p/2"]);
        assert_eq!(s.kv_list("n", "p_", 10).unwrap(), vec!["p_x"]);
        assert_eq!(s.kv_list("n", "p/", 1).unwrap(), vec!["p/1"]);
        assert_eq!(s.kv_usage("n").unwrap().keys, 5);
    }

    #[test]
    fn usage_tracks_inserts_overwrites_and_deletes() {
        let s = SqliteStorage::in_memory().unwrap();
        s.put("n", "ab", b"1234").unwrap();
        s.put("n", "c", b"1").unwrap();
        assert_eq!(s.kv_usage("n").unwrap(), NamespaceUsage { keys: 2, bytes: 8 });
        s.put("n", "ab", b"12").unwrap();
        assert_eq!(s.kv_usage("n").unwrap(), NamespaceUsage { keys: 2, bytes: 6 });
        s.del("n", "c").unwrap();
        assert_eq!(s.kv_usage("n").unwrap(), NamespaceUsage { keys: 1, bytes: 4 });
        assert_eq!(s.kv_usage("other").unwrap(), NamespaceUsage::default());
    }

    #[test]
    fn history_tail_is_oldest_first_and_per_session() {
        let s = SqliteStorage::in_memory().unwrap();
        for i in 0..5 {
            s.append("n", "s1", &StoredTurn { role: "user".into(), content: format!("m{i}") }).unwrap();
        }
        s.append("n", "s2", &StoredTurn { role: "user".into(), content: "other".into() }).unwrap();
        let tail: Vec<_> = s.history_tail("n", "s1", 2).unwrap().into_iter().map(|t| t.content).collect();
        assert_eq!(tail, vec!["m3", "m4"]);
        assert!(s.history_tail("other-ns", "s1", 10).unwrap().is_empty());
    }

    #[test]
    fn migration_backfills_usage_of_older_databases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let s = SqliteStorage::open(&path).unwrap();
            s.put("n", "k", b"vv").unwrap();
            // Simulate a database written before usage tracking existed.
            let c = s.conn();
            c.execute_batch("DELETE FROM kv_usage; PRAGMA user_version = 0;").unwrap();
        }
        let s = SqliteStorage::open(&path).unwrap();
        assert_eq!(s.kv_usage("n").unwrap(), NamespaceUsage { keys: 1, bytes: 3 });
    }

    #[test]
    fn llm_ledger_totals_by_agent_and_time() {
        let s = SqliteStorage::in_memory().unwrap();
        let rec = |agent: &str, at: i64, p: u64, c: u64, cost: Option<f64>| LlmUsageRecord {
            at,
            agent: agent.into(),
            session: "s".into(),
            profile: "fast".into(),
            model: "m".into(),
            prompt_tokens: p,
            completion_tokens: c,
            latency_ms: 1,
            cost_usd: cost,
            outcome: "ok".into(),
        };
        s.llm_record(&rec("a", 100, 10, 5, Some(0.5))).unwrap();
        s.llm_record(&rec("a", 200, 1, 1, None)).unwrap();
        s.llm_record(&rec("b", 200, 7, 7, Some(1.0))).unwrap();
        assert_eq!(s.llm_totals("a", 0).unwrap(), LlmTotals { calls: 2, tokens: 17, cost_usd: 0.5 });
        assert_eq!(s.llm_totals("a", 150).unwrap().tokens, 2);
        assert_eq!(s.llm_usage(Some("b"), 0).unwrap().len(), 1);
        assert_eq!(s.llm_usage(None, 0).unwrap().len(), 3);
        assert_eq!(s.llm_usage(None, 0).unwrap()[0], rec("a", 100, 10, 5, Some(0.5)));
    }

    #[test]
    fn data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        SqliteStorage::open(&path).unwrap().put("n", "k", b"v").unwrap();
        assert_eq!(SqliteStorage::open(&path).unwrap().kv_get("n", "k").unwrap(), Some(b"v".to_vec()));
    }

    /// The triggers of schema version 1: `length()` of TEXT counts
    /// characters and stops at the first NUL.
    const V1_TRIGGERS: &str = "
        DROP TRIGGER kv_usage_insert; DROP TRIGGER kv_usage_update; DROP TRIGGER kv_usage_delete;
        CREATE TRIGGER kv_usage_insert AFTER INSERT ON kv BEGIN
            INSERT INTO kv_usage (namespace, keys, bytes) VALUES (new.namespace, 1, length(new.key) + length(new.value))
            ON CONFLICT (namespace) DO UPDATE SET keys = keys + 1, bytes = bytes + length(new.key) + length(new.value);
        END;
        CREATE TRIGGER kv_usage_update AFTER UPDATE OF value ON kv BEGIN
            UPDATE kv_usage SET bytes = bytes - length(old.value) + length(new.value) WHERE namespace = new.namespace;
        END;
        CREATE TRIGGER kv_usage_delete AFTER DELETE ON kv BEGIN
            UPDATE kv_usage SET keys = keys - 1, bytes = bytes - length(old.key) - length(old.value)
            WHERE namespace = old.namespace;
        END;
        PRAGMA user_version = 1;";

    #[test]
    fn a_version_1_database_is_recounted_in_bytes_and_stays_counted_in_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let nul_key = "\0".repeat(100);
        let wide_key = "😀".repeat(25);
        {
            let s = SqliteStorage::open(&path).unwrap();
            s.conn().execute_batch(V1_TRIGGERS).unwrap();
            s.put("n", &nul_key, b"v").unwrap();
            s.put("n", &wide_key, b"v").unwrap();
            assert!(s.kv_usage("n").unwrap().bytes < 100, "version 1 miscounted: {:?}", s.kv_usage("n").unwrap());
        }
        let s = SqliteStorage::open(&path).unwrap();
        assert_eq!(s.kv_usage("n").unwrap(), NamespaceUsage { keys: 2, bytes: 100 + 1 + 100 + 1 });
        s.put("n", &format!("\0{wide_key}"), b"").unwrap();
        assert_eq!(s.kv_usage("n").unwrap().bytes, 202 + 101, "new writes are counted in bytes");
        s.del("n", &nul_key).unwrap();
        assert_eq!(s.kv_usage("n").unwrap(), NamespaceUsage { keys: 2, bytes: 101 + 101 });
        let version: i64 = s.conn().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, sqlite_memory::SCHEMA_VERSION);
    }

    #[test]
    fn migration_counts_history_written_before_history_quotas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let s = SqliteStorage::open(&path).unwrap();
            s.append("n", "s", &StoredTurn { role: "user".into(), content: "héllo".into() }).unwrap();
            s.conn().execute_batch("DELETE FROM history_namespace_usage; PRAGMA user_version = 1;").unwrap();
        }
        let s = SqliteStorage::open(&path).unwrap();
        assert_eq!(s.history_usage("n").unwrap(), HistoryUsage { turns: 1, bytes: 6 });
    }

    #[test]
    fn durability_sets_the_synchronous_pragma() {
        let dir = tempfile::tempdir().unwrap();
        let synchronous = |d: Durability| -> i64 {
            let s = SqliteStorage::open_with(&dir.path().join("db.sqlite"), d).unwrap();
            s.conn().query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap()
        };
        assert_eq!(synchronous(Durability::Process), 1, "NORMAL");
        assert_eq!(synchronous(Durability::Power), 2, "FULL");
        assert_eq!(Durability::default(), Durability::Process);
        let config: StorageConfig = toml::from_str("durability = \"power\"\n").unwrap();
        assert_eq!(config.durability, Durability::Power);
        assert!(toml::from_str::<StorageConfig>("durability = \"disk\"\n").is_err());
    }

    #[test]
    fn ledger_reads_run_beside_a_write_in_progress_and_memory_reads_wait_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(SqliteStorage::open(&dir.path().join("db.sqlite")).unwrap());
        let record = LlmUsageRecord {
            at: 10,
            agent: "a".into(),
            session: "s".into(),
            profile: "fast".into(),
            model: "m".into(),
            prompt_tokens: 2,
            completion_tokens: 3,
            latency_ms: 1,
            cost_usd: None,
            outcome: "ok".into(),
        };
        s.llm_record(&record).unwrap();
        s.seed("n", "k", b"old").unwrap();
        // A write in progress: the writer connection held, inside a transaction.
        let writer = s.conn();
        writer.execute_batch("BEGIN IMMEDIATE; UPDATE kv SET value = CAST('new' AS BLOB) WHERE namespace = 'n' AND key = 'k';").unwrap();
        let (ledger, ledger_rx) = std::sync::mpsc::channel();
        let reader = s.clone();
        std::thread::spawn(move || {
            let _ = ledger.send(reader.llm_totals("a", 0).unwrap());
        });
        let totals = ledger_rx.recv_timeout(Duration::from_secs(5)).expect("the ledger read did not wait for the writer");
        assert_eq!(totals.tokens, 5);
        let (memory, memory_rx) = std::sync::mpsc::channel();
        let reader = s.clone();
        std::thread::spawn(move || {
            let _ = memory.send(reader.kv_get("n", "k").unwrap());
        });
        assert!(memory_rx.recv_timeout(Duration::from_millis(300)).is_err(), "a memory read waits for the write in flight");
        writer.execute_batch("COMMIT").unwrap();
        drop(writer);
        let value = memory_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(value.as_deref(), Some(&b"new"[..]), "and then sees its outcome (the read-back after outcome-unknown)");
    }
}
