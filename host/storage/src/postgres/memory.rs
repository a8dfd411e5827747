//! PostgreSQL: `Storage` (agent memory and the LLM ledger), with the
//! semantics of the SQLite backend (`sqlite.rs`, `sqlite_memory.rs`).
//!
//! Usage is kept in tables by triggers, counted in bytes (`octet_length`).
//! Every write that checks a quota first takes a transaction advisory lock
//! on its namespace (`lock_key("kv" | "history", namespace)`): hosts sharing
//! the database then serialise per namespace on the server, so what a
//! write reads (usage, a counter, a compared value) cannot change before it
//! commits, at READ COMMITTED.
//!
//! Keys, session ids and turn contents are BYTEA, not TEXT: they come from
//! guests and may hold NUL, which TEXT refuses and SQLite stores; and BYTEA
//! compares bytewise, as SQLite's BINARY collation does, so `kv_list`'s
//! order and prefix ranges are SQLite's.
//!
//! The LLM ledger's `session`, `profile` (a guest's) and `model` (the LLM
//! server's) are TEXT: each NUL in them becomes U+FFFD ([`super::text`];
//! `ledger.rs` does the same), so the row is written rather than lost.
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::{PostgresStorage, lock_key};
use crate::quota::{add_to_counter, parse_counter};
use crate::{
    CommitGate, HistoryQuota, HistoryUsage, KvOp, KvOutcome, KvQuota, LlmTotals, LlmUsageRecord, NamespaceUsage,
    StorageError, StoredTurn, WriteRefused,
};

/// A transaction on a pooled connection.
type Tx<'a> = deadpool_postgres::Transaction<'a>;

pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS kv (
    namespace TEXT COLLATE "C" NOT NULL,
    key       BYTEA NOT NULL,
    value     BYTEA NOT NULL,
    updated   BIGINT NOT NULL DEFAULT (extract(epoch FROM now())::BIGINT),
    PRIMARY KEY (namespace, key)
);
CREATE TABLE IF NOT EXISTS kv_usage (
    namespace TEXT COLLATE "C" PRIMARY KEY,
    keys      BIGINT NOT NULL,
    bytes     BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace TEXT COLLATE "C" NOT NULL,
    session   BYTEA NOT NULL,
    role      TEXT NOT NULL,
    content   BYTEA NOT NULL,
    at        BIGINT NOT NULL DEFAULT (extract(epoch FROM now())::BIGINT)
);
CREATE INDEX IF NOT EXISTS history_by_session ON history (namespace, session, id);
CREATE TABLE IF NOT EXISTS history_usage (
    namespace TEXT COLLATE "C" NOT NULL,
    session   BYTEA NOT NULL,
    turns     BIGINT NOT NULL,
    bytes     BIGINT NOT NULL,
    PRIMARY KEY (namespace, session)
);
CREATE TABLE IF NOT EXISTS history_namespace_usage (
    namespace TEXT COLLATE "C" PRIMARY KEY,
    turns     BIGINT NOT NULL,
    bytes     BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS llm_usage (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at                BIGINT NOT NULL,
    agent             TEXT NOT NULL,
    session           TEXT NOT NULL,
    profile           TEXT NOT NULL,
    model             TEXT NOT NULL,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    latency_ms        BIGINT NOT NULL,
    cost_usd          DOUBLE PRECISION,
    outcome           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS llm_usage_by_agent ON llm_usage (agent, at);

-- Usage follows every change of a row, whoever makes it. An UPDATE counts
-- as the old row leaving and the new one arriving, so one that moved a
-- row (it never happens here) would still be counted right.
CREATE OR REPLACE FUNCTION kv_usage_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE kv_usage SET keys = keys - 1, bytes = bytes - octet_length(OLD.key) - octet_length(OLD.value)
        WHERE namespace = OLD.namespace;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO kv_usage AS u (namespace, keys, bytes)
            VALUES (NEW.namespace, 1, octet_length(NEW.key) + octet_length(NEW.value))
        ON CONFLICT (namespace) DO UPDATE SET keys = u.keys + 1, bytes = u.bytes + excluded.bytes;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER kv_usage_track AFTER INSERT OR UPDATE OR DELETE ON kv
    FOR EACH ROW EXECUTE FUNCTION kv_usage_track();

CREATE OR REPLACE FUNCTION history_usage_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE history_usage SET turns = turns - 1, bytes = bytes - octet_length(OLD.content)
        WHERE namespace = OLD.namespace AND session = OLD.session;
        UPDATE history_namespace_usage SET turns = turns - 1, bytes = bytes - octet_length(OLD.content)
        WHERE namespace = OLD.namespace;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO history_usage AS u (namespace, session, turns, bytes)
            VALUES (NEW.namespace, NEW.session, 1, octet_length(NEW.content))
        ON CONFLICT (namespace, session) DO UPDATE SET turns = u.turns + 1, bytes = u.bytes + excluded.bytes;
        INSERT INTO history_namespace_usage AS u (namespace, turns, bytes)
            VALUES (NEW.namespace, 1, octet_length(NEW.content))
        ON CONFLICT (namespace) DO UPDATE SET turns = u.turns + 1, bytes = u.bytes + excluded.bytes;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER history_usage_track AFTER INSERT OR UPDATE OR DELETE ON history
    FOR EACH ROW EXECUTE FUNCTION history_usage_track();
"#;

impl crate::Storage for PostgresStorage {
    fn kv_get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let (ns, key) = (namespace.to_string(), key.as_bytes().to_vec());
        self.run(move |client| async move {
            let stmt = client.prepare_cached("SELECT value FROM kv WHERE namespace = $1 AND key = $2").await?;
            Ok(client.query_opt(&stmt, &[&ns, &key]).await?.map(|row| row.get(0)))
        })
    }

    fn kv_apply(
        &self,
        namespace: &str,
        ops: &[KvOp],
        quota: &KvQuota,
        gate: &CommitGate,
    ) -> Result<Result<Vec<KvOutcome>, WriteRefused>, StorageError> {
        let (ns, ops, quota, gate) = (namespace.to_string(), ops.to_vec(), *quota, gate.clone());
        self.run(move |mut client| async move {
            let tx = begin(&mut client, &gate, "kv", &ns).await?;
            match kv_steps(&tx, &ns, &ops, &quota).await? {
                Ok(outcomes) => commit(tx, &gate).await.map(|()| Ok(outcomes)),
                Err(refused) => {
                    tx.rollback().await?;
                    Ok(Err(refused))
                }
            }
        })
    }

    fn kv_list(&self, namespace: &str, prefix: &str, limit: u32) -> Result<Vec<String>, StorageError> {
        let (ns, prefix) = (namespace.to_string(), prefix.as_bytes().to_vec());
        self.run(move |client| async move {
            // Keys sharing a prefix are contiguous in byte order: the range
            // [prefix, prefix_end) is exactly them (no LIKE, so `%` and `_`
            // are literal), and an index range scan.
            let limit = i64::from(limit);
            let rows = match prefix_end(&prefix) {
                Some(end) => {
                    let stmt = client
                        .prepare_cached(
                            "SELECT key FROM kv WHERE namespace = $1 AND key >= $2 AND key < $3 ORDER BY key LIMIT $4",
                        )
                        .await?;
                    client.query(&stmt, &[&ns, &prefix, &end, &limit]).await?
                }
                None => {
                    let stmt = client
                        .prepare_cached("SELECT key FROM kv WHERE namespace = $1 AND key >= $2 ORDER BY key LIMIT $3")
                        .await?;
                    client.query(&stmt, &[&ns, &prefix, &limit]).await?
                }
            };
            rows.into_iter().map(|row| text(row.get(0), "a key")).collect()
        })
    }

    fn kv_usage(&self, namespace: &str) -> Result<NamespaceUsage, StorageError> {
        let ns = namespace.to_string();
        self.run(move |client| async move {
            let (keys, bytes) =
                usage_pair(&client, "SELECT keys, bytes FROM kv_usage WHERE namespace = $1", &[&ns]).await?;
            Ok(NamespaceUsage { keys, bytes })
        })
    }

    fn history_append(
        &self,
        namespace: &str,
        session: &str,
        turn: &StoredTurn,
        quota: &HistoryQuota,
        gate: &CommitGate,
    ) -> Result<Result<(), WriteRefused>, StorageError> {
        let size = turn.content.len() as u64;
        // Checked before any transaction, as SQLite does: it cannot fit
        // whatever the session and namespace hold.
        if quota.session_turns == 0 || size > quota.session_bytes {
            return Ok(Err(WriteRefused::Quota(format!(
                "a turn of {size} bytes does not fit a session's history ({} turns, {} bytes)",
                quota.session_turns, quota.session_bytes
            ))));
        }
        let (ns, session, turn, quota, gate) =
            (namespace.to_string(), session.as_bytes().to_vec(), turn.clone(), *quota, gate.clone());
        self.run(move |mut client| async move {
            let tx = begin(&mut client, &gate, "history", &ns).await?;
            if let Err(refused) = history_make_room(&tx, &ns, &session, size, &quota).await? {
                tx.rollback().await?;
                return Ok(Err(refused));
            }
            let stmt = tx
                .prepare_cached("INSERT INTO history (namespace, session, role, content) VALUES ($1, $2, $3, $4)")
                .await?;
            tx.execute(&stmt, &[&ns, &session, &turn.role, &turn.content.as_bytes()]).await?;
            commit(tx, &gate).await.map(Ok)
        })
    }

    fn history_usage(&self, namespace: &str) -> Result<HistoryUsage, StorageError> {
        let ns = namespace.to_string();
        self.run(move |client| async move { history_namespace_usage(&client, &ns).await })
    }

    fn history_tail(&self, namespace: &str, session: &str, limit: u32) -> Result<Vec<StoredTurn>, StorageError> {
        let (ns, session) = (namespace.to_string(), session.as_bytes().to_vec());
        self.run(move |client| async move {
            let stmt = client
                .prepare_cached(
                    "SELECT role, content FROM history WHERE namespace = $1 AND session = $2 ORDER BY id DESC LIMIT $3",
                )
                .await?;
            let rows = client.query(&stmt, &[&ns, &session, &i64::from(limit)]).await?;
            // Newest first from the index; the caller wants oldest first.
            rows.into_iter()
                .rev()
                .map(|row| Ok(StoredTurn { role: row.get(0), content: text(row.get(1), "a history turn")? }))
                .collect()
        })
    }

    fn llm_record(&self, record: &LlmUsageRecord) -> Result<(), StorageError> {
        let r = record.clone();
        self.run(move |client| async move {
            let stmt = client
                .prepare_cached(
                    "INSERT INTO llm_usage (at, agent, session, profile, model, prompt_tokens, completion_tokens,
                                            latency_ms, cost_usd, outcome)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .await?;
            // Token counts and latency are stored as SQLite stores them
            // (`as i64`) and read back clamped at 0.
            let (prompt, completion, latency) =
                (r.prompt_tokens as i64, r.completion_tokens as i64, r.latency_ms as i64);
            client
                .execute(
                    &stmt,
                    &[
                        &r.at,
                        &r.agent,
                        &super::text(&r.session),
                        &super::text(&r.profile),
                        &super::text(&r.model),
                        &prompt,
                        &completion,
                        &latency,
                        &r.cost_usd,
                        &r.outcome,
                    ],
                )
                .await?;
            Ok(())
        })
    }

    fn llm_reserve(
        &self,
        hold: &LlmUsageRecord,
        since: i64,
        budget: &crate::LlmBudget,
    ) -> Result<Result<(i64, u64), LlmTotals>, StorageError> {
        self.ledger_reserve(hold, since, budget)
    }

    fn llm_settle(&self, id: i64, record: &LlmUsageRecord) -> Result<(), StorageError> {
        self.ledger_settle(id, record)
    }

    fn llm_usage(&self, agent: Option<&str>, since: i64) -> Result<Vec<LlmUsageRecord>, StorageError> {
        let agent = agent.map(str::to_string);
        self.run(move |client| async move {
            let stmt = client
                .prepare_cached(
                    "SELECT at, agent, session, profile, model, prompt_tokens, completion_tokens, latency_ms, cost_usd, outcome
                     FROM llm_usage WHERE at >= $1 AND ($2::TEXT IS NULL OR agent = $2) ORDER BY id",
                )
                .await?;
            let rows = client.query(&stmt, &[&since, &agent]).await?;
            Ok(rows.iter().map(usage_record).collect())
        })
    }

    fn llm_totals(&self, agent: &str, since: i64) -> Result<LlmTotals, StorageError> {
        let agent = agent.to_string();
        self.run(move |client| async move {
            // SUM of BIGINT is NUMERIC in PostgreSQL: cast back.
            let stmt = client
                .prepare_cached(
                    "SELECT COUNT(*), COALESCE(SUM(prompt_tokens + completion_tokens), 0)::BIGINT,
                            COALESCE(SUM(cost_usd), 0.0)::DOUBLE PRECISION
                     FROM llm_usage WHERE agent = $1 AND at >= $2",
                )
                .await?;
            let row = client.query_one(&stmt, &[&agent, &since]).await?;
            Ok(LlmTotals { calls: count(row.get(0)), tokens: count(row.get(1)), cost_usd: row.get(2) })
        })
    }
}

/// A write transaction on `kind`'s `namespace`, serialised with every other
/// host's on it by an advisory lock held until it ends. Refused when the
/// caller already gave up (waiting for a connection may have taken long).
async fn begin<'c>(
    client: &'c mut super::Client,
    gate: &CommitGate,
    kind: &str,
    ns: &str,
) -> Result<Tx<'c>, StorageError> {
    if gate.is_cancelled() {
        return Err(StorageError::Cancelled);
    }
    let tx = client.transaction().await?;
    let lock = tx.prepare_cached("SELECT pg_advisory_xact_lock($1)").await?;
    tx.execute(&lock, &[&lock_key(kind, ns)]).await?;
    Ok(tx)
}

/// Commits `tx` unless its caller gave up first (then rolls it back).
async fn commit(tx: Tx<'_>, gate: &CommitGate) -> Result<(), StorageError> {
    if !gate.begin_commit() {
        tx.rollback().await?;
        return Err(StorageError::Cancelled);
    }
    tx.commit().await?;
    Ok(())
}

/// Applies `ops` in order, then checks `quota` against the usage before and
/// after them. The caller rolls back on a refusal.
async fn kv_steps(
    tx: &Tx<'_>,
    ns: &str,
    ops: &[KvOp],
    quota: &KvQuota,
) -> Result<Result<Vec<KvOutcome>, WriteRefused>, StorageError> {
    let before = kv_usage(tx, ns).await?;
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops {
        match kv_step(tx, ns, op).await? {
            Ok(outcome) => outcomes.push(outcome),
            Err(refused) => return Ok(Err(refused)),
        }
    }
    Ok(quota.check(before, kv_usage(tx, ns).await?).map(|()| outcomes))
}

/// One op, as `sqlite_memory::kv_step` does it.
async fn kv_step(tx: &Tx<'_>, ns: &str, op: &KvOp) -> Result<Result<KvOutcome, WriteRefused>, StorageError> {
    Ok(Ok(match op {
        KvOp::Set { key, value } => {
            kv_put(tx, ns, key, value).await?;
            KvOutcome::Written
        }
        KvOp::Delete { key } => KvOutcome::Deleted(kv_delete(tx, ns, key).await?),
        KvOp::CompareAndSwap { key, expected, new } => {
            if kv_current(tx, ns, key).await? != *expected {
                KvOutcome::Swapped(false)
            } else {
                match new {
                    Some(value) => kv_put(tx, ns, key, value).await?,
                    None => {
                        kv_delete(tx, ns, key).await?;
                    }
                }
                KvOutcome::Swapped(true)
            }
        }
        KvOp::Increment { key, delta } => {
            let stored = kv_current(tx, ns, key).await?;
            let next = match parse_counter(key, stored.as_deref()).and_then(|n| add_to_counter(key, n, *delta)) {
                Ok(next) => next,
                Err(refused) => return Ok(Err(refused)),
            };
            kv_put(tx, ns, key, next.to_string().as_bytes()).await?;
            KvOutcome::Counter(next)
        }
        KvOp::Expect { key, value } => {
            if kv_current(tx, ns, key).await? != *value {
                return Ok(Err(WriteRefused::Conflict(format!("`{key}` does not hold the expected value"))));
            }
            KvOutcome::Matched
        }
    }))
}

async fn kv_current(tx: &Tx<'_>, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
    let stmt = tx.prepare_cached("SELECT value FROM kv WHERE namespace = $1 AND key = $2").await?;
    Ok(tx.query_opt(&stmt, &[&ns, &key.as_bytes()]).await?.map(|row| row.get(0)))
}

async fn kv_put(tx: &Tx<'_>, ns: &str, key: &str, value: &[u8]) -> Result<(), StorageError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO kv (namespace, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated = excluded.updated",
        )
        .await?;
    tx.execute(&stmt, &[&ns, &key.as_bytes(), &value]).await?;
    Ok(())
}

async fn kv_delete(tx: &Tx<'_>, ns: &str, key: &str) -> Result<bool, StorageError> {
    let stmt = tx.prepare_cached("DELETE FROM kv WHERE namespace = $1 AND key = $2").await?;
    Ok(tx.execute(&stmt, &[&ns, &key.as_bytes()]).await? > 0)
}

async fn kv_usage(tx: &Tx<'_>, ns: &str) -> Result<NamespaceUsage, StorageError> {
    let (keys, bytes) = usage_pair(tx, "SELECT keys, bytes FROM kv_usage WHERE namespace = $1", &[&ns]).await?;
    Ok(NamespaceUsage { keys, bytes })
}

/// Trims the session to make room for a turn of `size` bytes, then checks
/// the namespace has room for it, as `sqlite_memory::history_append` does.
/// The caller rolls back on a refusal, so the trim is undone with it.
async fn history_make_room(
    tx: &Tx<'_>,
    ns: &str,
    session: &[u8],
    size: u64,
    quota: &HistoryQuota,
) -> Result<Result<(), WriteRefused>, StorageError> {
    let (turns, bytes) = usage_pair(
        tx,
        "SELECT turns, bytes FROM history_usage WHERE namespace = $1 AND session = $2",
        &[&ns, &session],
    )
    .await?;
    // The session is a window: its oldest turns make room for this one.
    let drop_turns = (turns + 1).saturating_sub(quota.session_turns);
    let drop_bytes = (bytes + size).saturating_sub(quota.session_bytes);
    drop_oldest(tx, ns, session, drop_turns, drop_bytes).await?;
    let in_namespace = history_namespace_usage(tx, ns).await?;
    if in_namespace.turns + 1 > quota.namespace_turns || in_namespace.bytes + size > quota.namespace_bytes {
        return Ok(Err(WriteRefused::Quota(format!(
            "the namespace's history holds {} turns and {} bytes; its quota is {} turns and {} bytes",
            in_namespace.turns, in_namespace.bytes, quota.namespace_turns, quota.namespace_bytes
        ))));
    }
    Ok(Ok(()))
}

/// Deletes the session's oldest turns until at least `turns` turns and
/// `bytes` bytes are gone (or the session is empty): the same rows
/// `sqlite_memory::drop_oldest` drops: the last of them is the first turn,
/// in id order, by which enough turns and bytes have gone (running totals,
/// one round trip; a session is as long as its quota at most).
async fn drop_oldest(tx: &Tx<'_>, ns: &str, session: &[u8], turns: u64, bytes: u64) -> Result<(), StorageError> {
    if turns == 0 && bytes == 0 {
        return Ok(());
    }
    let (turns, bytes) = (i64::try_from(turns).unwrap_or(i64::MAX), i64::try_from(bytes).unwrap_or(i64::MAX));
    let stmt = tx
        .prepare_cached(
            "DELETE FROM history WHERE namespace = $1 AND session = $2 AND id <= COALESCE(
                (SELECT id FROM (
                    SELECT id, row_number() OVER w AS dropped, sum(octet_length(content)) OVER w AS freed
                    FROM history WHERE namespace = $1 AND session = $2
                    WINDOW w AS (ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                 ) oldest WHERE dropped >= $3 AND freed >= $4 ORDER BY id LIMIT 1),
                (SELECT max(id) FROM history WHERE namespace = $1 AND session = $2))",
        )
        .await?;
    tx.execute(&stmt, &[&ns, &session, &turns, &bytes]).await?;
    Ok(())
}

async fn history_namespace_usage(client: &impl GenericClient, ns: &str) -> Result<HistoryUsage, StorageError> {
    let (turns, bytes) =
        usage_pair(client, "SELECT turns, bytes FROM history_namespace_usage WHERE namespace = $1", &[&ns]).await?;
    Ok(HistoryUsage { turns, bytes })
}

/// The two counters of a usage row; a namespace or session without one
/// holds nothing.
async fn usage_pair(
    client: &impl GenericClient,
    sql: &str,
    args: &[&(dyn ToSql + Sync)],
) -> Result<(u64, u64), StorageError> {
    let stmt = client.prepare_cached(sql).await?;
    let row = client.query_opt(&stmt, args).await?;
    Ok(row.map(|r| (count(r.get(0)), count(r.get(1)))).unwrap_or((0, 0)))
}

/// The first byte string after every string starting with `prefix`, or
/// `None` when there is none (an empty prefix, or only 0xFF bytes).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Text stored as bytes; the backend only ever stores UTF-8 there.
fn text(bytes: Vec<u8>, what: &str) -> Result<String, StorageError> {
    String::from_utf8(bytes).map_err(|_| StorageError::Corrupt(format!("{what} is not UTF-8")))
}

/// A stored count, which is never negative unless the data is corrupt.
fn count(n: i64) -> u64 {
    n.max(0) as u64
}

fn usage_record(r: &tokio_postgres::Row) -> LlmUsageRecord {
    LlmUsageRecord {
        at: r.get(0),
        agent: r.get(1),
        session: r.get(2),
        profile: r.get(3),
        model: r.get(4),
        prompt_tokens: count(r.get(5)),
        completion_tokens: count(r.get(6)),
        latency_ms: count(r.get(7)),
        cost_usd: r.get(8),
        outcome: r.get(9),
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn a_prefix_range_ends_after_its_last_byte_that_can_grow() {
        assert_eq!(prefix_end(b"p/"), Some(b"p0".to_vec()));
        assert_eq!(prefix_end(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
