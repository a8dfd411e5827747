//! PostgreSQL: `SessionStore`. Chat transcripts with the per-session bounds
//! of the SQLite backend: `chat_session_usage` holds each session's turns
//! and bytes (SQLite keeps it with triggers; here the appending transaction
//! updates it), and a session past [`MAX_TRANSCRIPT_TURNS`] or
//! [`MAX_TRANSCRIPT_BYTES`] loses its oldest turns in that transaction.
//!
//! Several hosts may append to one session at once: each appending
//! transaction first takes an advisory lock per session it writes, so the
//! usage it reads, the ids it allocates and the turns it trims belong to
//! one writer at a time (ids within a session follow commit order).
//!
//! Owners and session ids are checked by the chat service before they are
//! written (TEXT refuses NUL). A session id a client asks for
//! (`session_tail`) may hold NUL: it is replaced with U+FFFD
//! ([`super::text`]), so the lookup finds nothing, as on SQLite, instead of
//! failing.
use std::collections::BTreeSet;

use super::{PostgresStorage, lock_key, text};
use crate::StorageError;
use crate::sessions::{MAX_TRANSCRIPT_BYTES, MAX_TRANSCRIPT_TURNS, SessionAppend, SessionStore, TranscriptEntry};

/// `text` is BYTEA, not TEXT: PostgreSQL's TEXT cannot hold NUL, which a
/// message (or an agent's answer) may contain and SQLite stores as is; one
/// such turn would otherwise fail a whole group commit of other requests.
/// `agents` and `detail` are serde_json output, which escapes NUL.
/// `bytes` is what SQLite's triggers count per turn (UTF-8 bytes of text,
/// agents and detail), generated so it cannot disagree with the row.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS chat_turns (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner   TEXT NOT NULL,
    session TEXT NOT NULL,
    at_ms   BIGINT NOT NULL,
    role    TEXT NOT NULL,
    text    BYTEA NOT NULL,
    agents  TEXT NOT NULL,
    detail  TEXT,
    bytes   BIGINT GENERATED ALWAYS AS
                (octet_length(text) + octet_length(agents) + COALESCE(octet_length(detail), 0)) STORED
);
CREATE INDEX IF NOT EXISTS chat_turns_by_session ON chat_turns (owner, session, id);
-- For `StatsStore::chat_answers_since` (SQLite creates it with the stats schema).
CREATE INDEX IF NOT EXISTS chat_turns_by_time ON chat_turns (at_ms);
CREATE TABLE IF NOT EXISTS chat_session_usage (
    owner   TEXT NOT NULL,
    session TEXT NOT NULL,
    turns   BIGINT NOT NULL,
    bytes   BIGINT NOT NULL,
    PRIMARY KEY (owner, session)
);
";

/// Inserts every turn in order (ordinality: ids follow the batch) and adds
/// them to their sessions' usage, in one statement; answers each written
/// session's usage after the append.
const APPEND: &str = "
WITH added AS (
    INSERT INTO chat_turns (owner, session, at_ms, role, text, agents, detail)
    SELECT owner, session, at_ms, role, text, agents, detail
    FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::BYTEA[], $6::TEXT[], $7::TEXT[])
         WITH ORDINALITY AS t(owner, session, at_ms, role, text, agents, detail, n)
    ORDER BY n
    RETURNING owner, session, bytes
)
INSERT INTO chat_session_usage (owner, session, turns, bytes)
SELECT owner, session, count(*), sum(bytes)::BIGINT FROM added GROUP BY owner, session
ON CONFLICT (owner, session) DO UPDATE
    SET turns = chat_session_usage.turns + excluded.turns, bytes = chat_session_usage.bytes + excluded.bytes
RETURNING owner, session, turns, bytes";

/// For each session over its bounds, with how many turns and bytes must
/// go: deletes its oldest turns up to and including the first at which
/// both are met (all of them if none is), as SQLite's `drop_oldest` does,
/// and takes them off the usage.
const TRIM: &str = "
WITH over AS (
    SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[]) AS o(owner, session, turns, bytes)
), ranked AS (
    SELECT t.owner, t.session, t.id, o.turns AS want_turns, o.bytes AS want_bytes,
           count(*) OVER w AS turns, sum(t.bytes) OVER w AS bytes
    FROM chat_turns t JOIN over o ON t.owner = o.owner AND t.session = o.session
    WINDOW w AS (PARTITION BY t.owner, t.session ORDER BY t.id ROWS UNBOUNDED PRECEDING)
), cut AS (
    SELECT owner, session, COALESCE(min(id) FILTER (WHERE turns >= want_turns AND bytes >= want_bytes), max(id)) AS id
    FROM ranked GROUP BY owner, session
), gone AS (
    DELETE FROM chat_turns t USING cut
    WHERE t.owner = cut.owner AND t.session = cut.session AND t.id <= cut.id
    RETURNING t.owner, t.session, t.bytes
), freed AS (
    SELECT owner, session, count(*) AS turns, sum(bytes)::BIGINT AS bytes FROM gone GROUP BY owner, session
)
UPDATE chat_session_usage u SET turns = u.turns - f.turns, bytes = u.bytes - f.bytes
FROM freed f WHERE u.owner = f.owner AND u.session = f.session";

/// The advisory lock of one chat session. The owner's length keeps
/// ("ab", "c") and ("a", "bc") apart.
fn session_lock(owner: &str, session: &str) -> i64 {
    lock_key("chat-session", &format!("{}:{owner}{session}", owner.len()))
}

/// A batch as the columns `APPEND` unnests, plus the sessions' locks.
#[derive(Default)]
struct Columns {
    owners: Vec<String>,
    sessions: Vec<String>,
    at_ms: Vec<i64>,
    roles: Vec<String>,
    texts: Vec<Vec<u8>>,
    agents: Vec<String>,
    details: Vec<Option<String>>,
    /// Sorted: every host takes a batch's locks in the same order, so two
    /// batches sharing sessions cannot deadlock.
    locks: Vec<i64>,
}

impl Columns {
    fn of(batch: &[SessionAppend]) -> Result<Self, StorageError> {
        let mut c = Columns::default();
        let mut locks = BTreeSet::new();
        for a in batch.iter().filter(|a| !a.turns.is_empty()) {
            locks.insert(session_lock(&a.owner, &a.session));
            for t in &a.turns {
                c.owners.push(a.owner.clone());
                c.sessions.push(a.session.clone());
                c.at_ms.push(t.at_ms);
                c.roles.push(t.role.clone());
                c.texts.push(t.text.as_bytes().to_vec());
                c.agents.push(serde_json::to_string(&t.agents).map_err(|e| StorageError::Backend(e.to_string()))?);
                c.details.push(t.detail.as_ref().map(|d| d.to_string()));
            }
        }
        c.locks = locks.into_iter().collect();
        Ok(c)
    }
}

/// Sessions over a bound after an append, with what must go (`TRIM`'s
/// parameters).
#[derive(Default)]
struct Over {
    owners: Vec<String>,
    sessions: Vec<String>,
    turns: Vec<i64>,
    bytes: Vec<i64>,
}

fn text_of(bytes: Vec<u8>) -> Result<String, StorageError> {
    String::from_utf8(bytes).map_err(|e| StorageError::Corrupt(format!("chat_turns.text: {e}")))
}

fn entry(row: &tokio_postgres::Row) -> Result<TranscriptEntry, StorageError> {
    let agents: String = row.try_get(3)?;
    let detail: Option<String> = row.try_get(4)?;
    Ok(TranscriptEntry {
        at_ms: row.try_get(0)?,
        role: row.try_get(1)?,
        text: text_of(row.try_get(2)?)?,
        agents: serde_json::from_str(&agents).map_err(|e| StorageError::Corrupt(format!("chat_turns.agents: {e}")))?,
        detail: match detail {
            Some(d) => Some(serde_json::from_str(&d).map_err(|e| StorageError::Corrupt(format!("chat_turns.detail: {e}")))?),
            None => None,
        },
    })
}

impl SessionStore for PostgresStorage {
    fn session_append(&self, owner: &str, session: &str, turns: &[TranscriptEntry]) -> Result<(), StorageError> {
        self.session_append_batch(&[SessionAppend { owner: owner.into(), session: session.into(), turns: turns.to_vec() }])
    }

    /// The whole batch in one transaction: every request's turns or none.
    fn session_append_batch(&self, batch: &[SessionAppend]) -> Result<(), StorageError> {
        let c = Columns::of(batch)?;
        if c.owners.is_empty() {
            return Ok(());
        }
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            // The array is scanned in order, so the locks are taken in order.
            tx.execute("SELECT pg_advisory_xact_lock(k) FROM unnest($1::BIGINT[]) AS k", &[&c.locks]).await?;
            let usage = tx
                .query(APPEND, &[&c.owners, &c.sessions, &c.at_ms, &c.roles, &c.texts, &c.agents, &c.details])
                .await?;
            let mut over = Over::default();
            for row in &usage {
                let (turns, bytes): (i64, i64) = (row.try_get(2)?, row.try_get(3)?);
                let excess_turns = (turns.max(0) as u64).saturating_sub(MAX_TRANSCRIPT_TURNS);
                let excess_bytes = (bytes.max(0) as u64).saturating_sub(MAX_TRANSCRIPT_BYTES);
                if excess_turns > 0 || excess_bytes > 0 {
                    over.owners.push(row.try_get(0)?);
                    over.sessions.push(row.try_get(1)?);
                    over.turns.push(excess_turns as i64);
                    over.bytes.push(excess_bytes as i64);
                }
            }
            if !over.owners.is_empty() {
                tx.execute(TRIM, &[&over.owners, &over.sessions, &over.turns, &over.bytes]).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn session_tail(&self, owner: &str, session: &str, limit: u32) -> Result<Vec<TranscriptEntry>, StorageError> {
        let (owner, session) = (owner.to_string(), text(session).into_owned());
        self.run(move |client| async move {
            let rows = client
                .query(
                    "SELECT at_ms, role, text, agents, detail FROM chat_turns
                     WHERE owner = $1 AND session = $2 ORDER BY id DESC LIMIT $3",
                    &[&owner, &session, &i64::from(limit)],
                )
                .await?;
            let mut turns = rows.iter().map(entry).collect::<Result<Vec<_>, _>>()?;
            turns.reverse();
            Ok(turns)
        })
    }

    fn recent_requests(&self, agent: &str, limit: u32) -> Result<Vec<String>, StorageError> {
        // The JSON-quoted name found literally in the agents list (SQLite
        // uses LIKE, the same for agent names, which are [a-z0-9-]).
        let quoted = serde_json::Value::from(agent).to_string();
        self.run(move |client| async move {
            // An assistant turn names the agents that answered; the user
            // turn before it in its session is the request. More rows than
            // wanted are read: repeated messages count once.
            let rows = client
                .query(
                    "SELECT u.text FROM chat_turns a
                     JOIN LATERAL (SELECT text FROM chat_turns
                                   WHERE owner = a.owner AND session = a.session AND role = 'user' AND id < a.id
                                   ORDER BY id DESC LIMIT 1) u ON true
                     WHERE a.role = 'assistant' AND strpos(a.agents, $1) > 0
                     ORDER BY a.id DESC LIMIT $2",
                    &[&quoted, &(i64::from(limit) * 4)],
                )
                .await?;
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::new();
            for row in rows {
                let text = text_of(row.try_get(0)?)?;
                if out.len() < limit as usize && seen.insert(text.clone()) {
                    out.push(text);
                }
            }
            Ok(out)
        })
    }
}
