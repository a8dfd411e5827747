//! SQLite side of agent memory's bounds: usage kept by triggers (counted in
//! bytes), quota-checked writes that check and write in one `BEGIN
//! IMMEDIATE` transaction, history trimmed to its quota, chat transcripts
//! trimmed per session, and the migration that brings older databases here.
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::quota::{add_to_counter, parse_counter};
use super::{
    CommitGate, HistoryQuota, HistoryUsage, KvOp, KvOutcome, KvQuota, NamespaceUsage, StorageError, StoredTurn,
    WriteRefused,
};

/// Schema version, in SQLite's `user_version`.
/// 1: `kv_usage`. 2: usage counted in bytes (`length()` of TEXT counts
/// characters and stops at NUL), history and chat-transcript usage.
pub(super) const SCHEMA_VERSION: i64 = 2;

/// Usage tables and the triggers that keep them. Sizes are
/// `length(CAST(x AS BLOB))`: bytes, whatever the text holds.
const USAGE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv_usage (
    namespace TEXT PRIMARY KEY,
    keys      INTEGER NOT NULL,
    bytes     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history_usage (
    namespace TEXT NOT NULL,
    session   TEXT NOT NULL,
    turns     INTEGER NOT NULL,
    bytes     INTEGER NOT NULL,
    PRIMARY KEY (namespace, session)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history_namespace_usage (
    namespace TEXT PRIMARY KEY,
    turns     INTEGER NOT NULL,
    bytes     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chat_session_usage (
    owner   TEXT NOT NULL,
    session TEXT NOT NULL,
    turns   INTEGER NOT NULL,
    bytes   INTEGER NOT NULL,
    PRIMARY KEY (owner, session)
) WITHOUT ROWID;
DROP TRIGGER IF EXISTS kv_usage_insert;
DROP TRIGGER IF EXISTS kv_usage_update;
DROP TRIGGER IF EXISTS kv_usage_delete;
CREATE TRIGGER kv_usage_insert AFTER INSERT ON kv BEGIN
    INSERT INTO kv_usage (namespace, keys, bytes)
        VALUES (new.namespace, 1, length(CAST(new.key AS BLOB)) + length(CAST(new.value AS BLOB)))
    ON CONFLICT (namespace) DO UPDATE SET keys = keys + 1, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER kv_usage_update AFTER UPDATE OF value ON kv BEGIN
    UPDATE kv_usage SET bytes = bytes - length(CAST(old.value AS BLOB)) + length(CAST(new.value AS BLOB))
    WHERE namespace = new.namespace;
END;
CREATE TRIGGER kv_usage_delete AFTER DELETE ON kv BEGIN
    UPDATE kv_usage SET keys = keys - 1, bytes = bytes - length(CAST(old.key AS BLOB)) - length(CAST(old.value AS BLOB))
    WHERE namespace = old.namespace;
END;
DROP TRIGGER IF EXISTS history_usage_insert;
DROP TRIGGER IF EXISTS history_usage_delete;
CREATE TRIGGER history_usage_insert AFTER INSERT ON history BEGIN
    INSERT INTO history_usage (namespace, session, turns, bytes)
        VALUES (new.namespace, new.session, 1, length(CAST(new.content AS BLOB)))
    ON CONFLICT (namespace, session) DO UPDATE SET turns = turns + 1, bytes = bytes + excluded.bytes;
    INSERT INTO history_namespace_usage (namespace, turns, bytes)
        VALUES (new.namespace, 1, length(CAST(new.content AS BLOB)))
    ON CONFLICT (namespace) DO UPDATE SET turns = turns + 1, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER history_usage_delete AFTER DELETE ON history BEGIN
    UPDATE history_usage SET turns = turns - 1, bytes = bytes - length(CAST(old.content AS BLOB))
    WHERE namespace = old.namespace AND session = old.session;
    UPDATE history_namespace_usage SET turns = turns - 1, bytes = bytes - length(CAST(old.content AS BLOB))
    WHERE namespace = old.namespace;
END;
DROP TRIGGER IF EXISTS chat_session_usage_insert;
DROP TRIGGER IF EXISTS chat_session_usage_delete;
CREATE TRIGGER chat_session_usage_insert AFTER INSERT ON chat_turns BEGIN
    INSERT INTO chat_session_usage (owner, session, turns, bytes)
        VALUES (new.owner, new.session, 1, length(CAST(new.text AS BLOB)) + length(CAST(new.agents AS BLOB))
                + COALESCE(length(CAST(new.detail AS BLOB)), 0))
    ON CONFLICT (owner, session) DO UPDATE SET turns = turns + 1, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER chat_session_usage_delete AFTER DELETE ON chat_turns BEGIN
    UPDATE chat_session_usage SET turns = turns - 1,
        bytes = bytes - length(CAST(old.text AS BLOB)) - length(CAST(old.agents AS BLOB))
                - COALESCE(length(CAST(old.detail AS BLOB)), 0)
    WHERE owner = old.owner AND session = old.session;
END;
DELETE FROM kv_usage;
INSERT INTO kv_usage (namespace, keys, bytes)
    SELECT namespace, COUNT(*), SUM(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))) FROM kv GROUP BY namespace;
DELETE FROM history_usage;
INSERT INTO history_usage (namespace, session, turns, bytes)
    SELECT namespace, session, COUNT(*), SUM(length(CAST(content AS BLOB))) FROM history GROUP BY namespace, session;
DELETE FROM history_namespace_usage;
INSERT INTO history_namespace_usage (namespace, turns, bytes)
    SELECT namespace, COUNT(*), SUM(length(CAST(content AS BLOB))) FROM history GROUP BY namespace;
DELETE FROM chat_session_usage;
INSERT INTO chat_session_usage (owner, session, turns, bytes)
    SELECT owner, session, COUNT(*), SUM(length(CAST(text AS BLOB)) + length(CAST(agents AS BLOB))
                                         + COALESCE(length(CAST(detail AS BLOB)), 0))
    FROM chat_turns GROUP BY owner, session;
";

/// Brings an older (or new, empty) database up to [`SCHEMA_VERSION`] in one
/// transaction: usage tables and triggers (re)created, usage recomputed
/// from the data, so totals written by older, miscounting triggers go.
pub(super) fn migrate(conn: &Connection) -> Result<(), StorageError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    conn.execute_batch(&format!("BEGIN IMMEDIATE; {USAGE_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"))
        .inspect_err(|_| {
            let _ = conn.execute_batch("ROLLBACK");
        })?;
    Ok(())
}

/// Commits `tx` unless its caller gave up first (then rolls it back).
fn commit(tx: Transaction<'_>, gate: &CommitGate) -> Result<(), StorageError> {
    if !gate.begin_commit() {
        tx.rollback()?;
        return Err(StorageError::Cancelled);
    }
    tx.commit()?;
    Ok(())
}

/// A write transaction taken up front (`BEGIN IMMEDIATE`), so what it reads
/// cannot change before it writes.
fn begin<'c>(conn: &'c mut Connection, gate: &CommitGate) -> Result<Transaction<'c>, StorageError> {
    if gate.is_cancelled() {
        return Err(StorageError::Cancelled);
    }
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

pub(super) fn kv_usage(conn: &Connection, ns: &str) -> Result<NamespaceUsage, StorageError> {
    let row: Option<(i64, i64)> = conn
        .prepare_cached("SELECT keys, bytes FROM kv_usage WHERE namespace = ?1")?
        .query_row([ns], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (keys, bytes) = row.unwrap_or((0, 0));
    Ok(NamespaceUsage { keys: keys.max(0) as u64, bytes: bytes.max(0) as u64 })
}

pub(super) fn kv_apply(
    conn: &mut Connection,
    ns: &str,
    ops: &[KvOp],
    quota: &KvQuota,
    gate: &CommitGate,
) -> Result<Result<Vec<KvOutcome>, WriteRefused>, StorageError> {
    let tx = begin(conn, gate)?;
    let outcomes = match kv_apply_in(&tx, ns, ops, quota)? {
        Ok(outcomes) => outcomes,
        // Dropping `tx` rolls back the steps before the refusal.
        Err(refused) => return Ok(Err(refused)),
    };
    commit(tx, gate)?;
    Ok(Ok(outcomes))
}

/// The steps of [`kv_apply`] inside a transaction (or savepoint) the caller
/// holds; on a refusal the caller rolls back what the steps before it did.
pub(super) fn kv_apply_in(
    tx: &Connection,
    ns: &str,
    ops: &[KvOp],
    quota: &KvQuota,
) -> Result<Result<Vec<KvOutcome>, WriteRefused>, StorageError> {
    let before = kv_usage(tx, ns)?;
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops {
        match kv_step(tx, ns, op)? {
            Ok(outcome) => outcomes.push(outcome),
            Err(refused) => return Ok(Err(refused)),
        }
    }
    if let Err(refused) = quota.check(before, kv_usage(tx, ns)?) {
        return Ok(Err(refused));
    }
    Ok(Ok(outcomes))
}

fn kv_step(tx: &Connection, ns: &str, op: &KvOp) -> Result<Result<KvOutcome, WriteRefused>, StorageError> {
    let current = |key: &str| -> Result<Option<Vec<u8>>, StorageError> {
        Ok(tx
            .prepare_cached("SELECT value FROM kv WHERE namespace = ?1 AND key = ?2")?
            .query_row(params![ns, key], |r| r.get(0))
            .optional()?)
    };
    let put = |key: &str, value: &[u8]| -> Result<(), StorageError> {
        tx.prepare_cached(
            "INSERT INTO kv (namespace, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated = unixepoch()",
        )?
        .execute(params![ns, key, value])?;
        Ok(())
    };
    let delete = |key: &str| -> Result<bool, StorageError> {
        Ok(tx.prepare_cached("DELETE FROM kv WHERE namespace = ?1 AND key = ?2")?.execute(params![ns, key])? > 0)
    };
    Ok(Ok(match op {
        KvOp::Set { key, value } => {
            put(key, value)?;
            KvOutcome::Written
        }
        KvOp::Delete { key } => KvOutcome::Deleted(delete(key)?),
        KvOp::CompareAndSwap { key, expected, new } => {
            if current(key)? != *expected {
                KvOutcome::Swapped(false)
            } else {
                match new {
                    Some(value) => put(key, value)?,
                    None => {
                        delete(key)?;
                    }
                }
                KvOutcome::Swapped(true)
            }
        }
        KvOp::Increment { key, delta } => {
            let stored = current(key)?;
            let next = match parse_counter(key, stored.as_deref()).and_then(|n| add_to_counter(key, n, *delta)) {
                Ok(next) => next,
                Err(refused) => return Ok(Err(refused)),
            };
            put(key, next.to_string().as_bytes())?;
            KvOutcome::Counter(next)
        }
        KvOp::Expect { key, value } => {
            if current(key)? != *value {
                return Ok(Err(WriteRefused::Conflict(format!("`{key}` does not hold the expected value"))));
            }
            KvOutcome::Matched
        }
    }))
}

pub(super) fn history_usage(conn: &Connection, ns: &str) -> Result<HistoryUsage, StorageError> {
    usage_row(conn, "SELECT turns, bytes FROM history_namespace_usage WHERE namespace = ?1", params![ns])
}

fn usage_row(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> Result<HistoryUsage, StorageError> {
    let row: Option<(i64, i64)> =
        conn.prepare_cached(sql)?.query_row(args, |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
    let (turns, bytes) = row.unwrap_or((0, 0));
    Ok(HistoryUsage { turns: turns.max(0) as u64, bytes: bytes.max(0) as u64 })
}

pub(super) fn history_append(
    conn: &mut Connection,
    ns: &str,
    session: &str,
    turn: &StoredTurn,
    quota: &HistoryQuota,
    gate: &CommitGate,
) -> Result<Result<(), WriteRefused>, StorageError> {
    let tx = begin(conn, gate)?;
    if let Err(refused) = history_append_in(&tx, ns, session, turn, quota)? {
        return Ok(Err(refused));
    }
    commit(tx, gate)?;
    Ok(Ok(()))
}

/// [`history_append`] inside a transaction (or savepoint) the caller holds;
/// on a refusal the caller rolls back (turns may have been dropped).
pub(super) fn history_append_in(
    tx: &Connection,
    ns: &str,
    session: &str,
    turn: &StoredTurn,
    quota: &HistoryQuota,
) -> Result<Result<(), WriteRefused>, StorageError> {
    let size = turn.content.len() as u64;
    if quota.session_turns == 0 || size > quota.session_bytes {
        return Ok(Err(WriteRefused::Quota(format!(
            "a turn of {size} bytes does not fit a session's history ({} turns, {} bytes)",
            quota.session_turns, quota.session_bytes
        ))));
    }
    let in_session = usage_row(
        tx,
        "SELECT turns, bytes FROM history_usage WHERE namespace = ?1 AND session = ?2",
        params![ns, session],
    )?;
    // The session is a window: its oldest turns make room for this one.
    drop_oldest(
        tx,
        Oldest::History { ns, session },
        (in_session.turns + 1).saturating_sub(quota.session_turns),
        (in_session.bytes + size).saturating_sub(quota.session_bytes),
    )?;
    let in_namespace = history_usage(tx, ns)?;
    if in_namespace.turns + 1 > quota.namespace_turns || in_namespace.bytes + size > quota.namespace_bytes {
        return Ok(Err(WriteRefused::Quota(format!(
            "the namespace's history holds {} turns and {} bytes; its quota is {} turns and {} bytes",
            in_namespace.turns, in_namespace.bytes, quota.namespace_turns, quota.namespace_bytes
        ))));
    }
    tx.prepare_cached("INSERT INTO history (namespace, session, role, content) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![ns, session, turn.role, turn.content])?;
    Ok(Ok(()))
}

/// Whose oldest rows [`drop_oldest`] removes.
pub(super) enum Oldest<'a> {
    History { ns: &'a str, session: &'a str },
    ChatTranscript { owner: &'a str, session: &'a str },
}

/// Deletes the oldest rows of one session until at least `turns` rows and
/// `bytes` bytes are gone (or the session is empty). Reads only as many
/// rows as it drops.
pub(super) fn drop_oldest(tx: &Connection, whose: Oldest<'_>, turns: u64, bytes: u64) -> Result<(), StorageError> {
    if turns == 0 && bytes == 0 {
        return Ok(());
    }
    let (select, delete, a, b) = match whose {
        Oldest::History { ns, session } => (
            "SELECT id, length(CAST(content AS BLOB)) FROM history WHERE namespace = ?1 AND session = ?2 ORDER BY id",
            "DELETE FROM history WHERE namespace = ?1 AND session = ?2 AND id <= ?3",
            ns,
            session,
        ),
        Oldest::ChatTranscript { owner, session } => (
            "SELECT id, length(CAST(text AS BLOB)) + length(CAST(agents AS BLOB)) + COALESCE(length(CAST(detail AS BLOB)), 0)
             FROM chat_turns WHERE owner = ?1 AND session = ?2 ORDER BY id",
            "DELETE FROM chat_turns WHERE owner = ?1 AND session = ?2 AND id <= ?3",
            owner,
            session,
        ),
    };
    let (mut dropped, mut freed, mut last) = (0u64, 0u64, None);
    {
        let mut stmt = tx.prepare_cached(select)?;
        let mut rows = stmt.query(params![a, b])?;
        while dropped < turns || freed < bytes {
            let Some(row) = rows.next()? else { break };
            last = Some(row.get::<_, i64>(0)?);
            dropped += 1;
            freed += row.get::<_, i64>(1)?.max(0) as u64;
        }
    }
    if let Some(id) = last {
        tx.prepare_cached(delete)?.execute(params![a, b, id])?;
    }
    Ok(())
}

/// Turns and bytes one chat session's transcript holds.
pub(super) fn chat_session_usage(conn: &Connection, owner: &str, session: &str) -> Result<HistoryUsage, StorageError> {
    usage_row(
        conn,
        "SELECT turns, bytes FROM chat_session_usage WHERE owner = ?1 AND session = ?2",
        params![owner, session],
    )
}
