//! Chat sessions: the transcript of each conversation with the chat service
//! (`POST /v1/chat`), read back by `GET /v1/sessions/{id}` and used as the
//! history of the session's next request.
//!
//! A narrow trait of its own, so another backend implements it beside
//! [`Storage`](super::Storage) without either growing.
use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::StorageError;
use super::sqlite::SqliteStorage;
use super::sqlite_memory::{Oldest, chat_session_usage, drop_oldest};

/// Most turns one chat session's transcript keeps; older turns are dropped
/// (in the transaction that appends) so a client cannot grow it without bound.
pub const MAX_TRANSCRIPT_TURNS: u64 = 1_000;
/// Most bytes (text, agent list and trace detail) one session's transcript
/// keeps; oldest turns are dropped first.
pub const MAX_TRANSCRIPT_BYTES: u64 = 16 << 20;

/// Created with the rest of the schema (`sqlite::SCHEMA` runs it).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS chat_turns (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    owner   TEXT NOT NULL,
    session TEXT NOT NULL,
    at_ms   INTEGER NOT NULL,
    role    TEXT NOT NULL,
    text    TEXT NOT NULL,
    agents  TEXT NOT NULL,
    detail  TEXT
);
CREATE INDEX IF NOT EXISTS chat_turns_by_session ON chat_turns (owner, session, id);
";

/// One turn of a chat session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptEntry {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// `user` or `assistant`.
    pub role: String,
    pub text: String,
    /// The agents that produced an assistant turn.
    #[serde(default)]
    pub agents: Vec<String>,
    /// For assistant turns: the trace and usage of the request, as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// Sessions belong to an owner (the API token's name), so one client can
/// neither read nor extend another's conversation by guessing its id.
pub trait SessionStore: Send + Sync + 'static {
    /// Appends `turns` to `session` atomically (a request's question and
    /// answer are stored together or not at all). A session keeps at most
    /// [`MAX_TRANSCRIPT_TURNS`] turns and [`MAX_TRANSCRIPT_BYTES`] bytes:
    /// past that its oldest turns are dropped.
    fn session_append(&self, owner: &str, session: &str, turns: &[TranscriptEntry]) -> Result<(), StorageError>;
    /// The last `limit` turns of `session`, oldest first.
    fn session_tail(&self, owner: &str, session: &str, limit: u32) -> Result<Vec<TranscriptEntry>, StorageError>;
    /// The distinct messages users most recently sent that `agent` helped
    /// answer, newest first, at most `limit` (the evolution's shadow stage).
    fn recent_requests(&self, agent: &str, limit: u32) -> Result<Vec<String>, StorageError>;
    /// Appends the turns of several requests at once (group commit): all of
    /// them or none. The default appends one request at a time.
    fn session_append_batch(&self, batch: &[SessionAppend]) -> Result<(), StorageError> {
        batch.iter().try_for_each(|a| self.session_append(&a.owner, &a.session, &a.turns))
    }
}

/// One request's turns, for [`SessionStore::session_append_batch`].
#[derive(Debug, Clone)]
pub struct SessionAppend {
    pub owner: String,
    pub session: String,
    pub turns: Vec<TranscriptEntry>,
}

impl SessionStore for SqliteStorage {
    fn session_append(&self, owner: &str, session: &str, turns: &[TranscriptEntry]) -> Result<(), StorageError> {
        self.session_append_batch(&[SessionAppend { owner: owner.into(), session: session.into(), turns: turns.to_vec() }])
    }

    fn session_append_batch(&self, batch: &[SessionAppend]) -> Result<(), StorageError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO chat_turns (owner, session, at_ms, role, text, agents, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for a in batch {
                for t in &a.turns {
                    let agents = serde_json::to_string(&t.agents).map_err(|e| StorageError::Backend(e.to_string()))?;
                    let detail = t.detail.as_ref().map(|d| d.to_string());
                    stmt.execute(params![a.owner, a.session, t.at_ms, t.role, t.text, agents, detail])?;
                }
            }
        }
        for a in batch {
            let usage = chat_session_usage(&tx, &a.owner, &a.session)?;
            drop_oldest(
                &tx,
                Oldest::ChatTranscript { owner: &a.owner, session: &a.session },
                usage.turns.saturating_sub(MAX_TRANSCRIPT_TURNS),
                usage.bytes.saturating_sub(MAX_TRANSCRIPT_BYTES),
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn recent_requests(&self, agent: &str, limit: u32) -> Result<Vec<String>, StorageError> {
        let conn = self.reader();
        // An assistant turn names the agents that answered; the user turn
        // before it in its session is the request. Agent names are
        // [a-z0-9-], so the JSON-quoted name is a literal LIKE pattern.
        let mut stmt = conn.prepare_cached(
            "SELECT u.text FROM chat_turns a JOIN chat_turns u
               ON u.id = (SELECT MAX(id) FROM chat_turns
                          WHERE owner = a.owner AND session = a.session AND role = 'user' AND id < a.id)
             WHERE a.role = 'assistant' AND a.agents LIKE ?1
             ORDER BY a.id DESC LIMIT ?2",
        )?;
        let pattern = format!("%{}%", serde_json::Value::from(agent));
        // Read more rows than wanted: repeated messages count once.
        let rows = stmt.query_map(params![pattern, i64::from(limit) * 4], |r| r.get::<_, String>(0))?;
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for text in rows {
            let text = text?;
            if out.len() < limit as usize && seen.insert(text.clone()) {
                out.push(text);
            }
        }
        Ok(out)
    }

    fn session_tail(&self, owner: &str, session: &str, limit: u32) -> Result<Vec<TranscriptEntry>, StorageError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT at_ms, role, text, agents, detail FROM chat_turns WHERE owner = ?1 AND session = ?2 ORDER BY id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![owner, session, limit], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?, r.get::<_, Option<String>>(4)?))
        })?;
        let mut turns = Vec::new();
        for row in rows {
            let (at_ms, role, text, agents, detail) = row?;
            let agents = serde_json::from_str(&agents).map_err(|e| StorageError::Corrupt(format!("chat_turns.agents: {e}")))?;
            let detail = match detail {
                Some(d) => Some(serde_json::from_str(&d).map_err(|e| StorageError::Corrupt(format!("chat_turns.detail: {e}")))?),
                None => None,
            };
            turns.push(TranscriptEntry { at_ms, role, text, agents, detail });
        }
        turns.reverse();
        Ok(turns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(role: &str, text: &str) -> TranscriptEntry {
        TranscriptEntry { at_ms: 1, role: role.into(), text: text.into(), agents: vec!["echo".into()], detail: Some(serde_json::json!({"k": 1})) }
    }

    #[test]
    fn sessions_are_separate_and_oldest_first() {
        let s = SqliteStorage::in_memory().unwrap();
        s.session_append("me", "a", &[turn("user", "q1"), turn("assistant", "a1")]).unwrap();
        s.session_append("me", "b", &[turn("user", "other")]).unwrap();
        s.session_append("me", "a", &[turn("user", "q2"), turn("assistant", "a2")]).unwrap();
        s.session_append("you", "a", &[turn("user", "not mine")]).unwrap();
        let a = s.session_tail("me", "a", 10).unwrap();
        assert_eq!(a.iter().map(|t| t.text.as_str()).collect::<Vec<_>>(), ["q1", "a1", "q2", "a2"]);
        assert_eq!(a[1].detail, Some(serde_json::json!({"k": 1})));
        assert_eq!(s.session_tail("me", "a", 2).unwrap()[0].text, "q2");
        assert!(s.session_tail("me", "missing", 10).unwrap().is_empty());
        assert_eq!(s.session_tail("you", "a", 10).unwrap().len(), 1, "owners do not share a session id");
    }

    #[test]
    fn a_transcript_keeps_its_newest_turns_within_the_bounds() {
        let s = SqliteStorage::in_memory().unwrap();
        let n = MAX_TRANSCRIPT_TURNS + 7;
        for i in 0..n {
            s.session_append("me", "long", &[turn("user", &format!("t{i}"))]).unwrap();
        }
        s.session_append("me", "short", &[turn("user", "kept")]).unwrap();
        let all = s.session_tail("me", "long", u32::MAX).unwrap();
        assert_eq!(all.len() as u64, MAX_TRANSCRIPT_TURNS);
        assert_eq!(all[0].text, "t7", "the oldest turns went first");
        assert_eq!(all.last().unwrap().text, format!("t{}", n - 1));
        assert_eq!(s.session_tail("me", "short", 10).unwrap().len(), 1, "other sessions are untouched");

        // Bytes: a few large turns push the oldest out.
        let big = "x".repeat((MAX_TRANSCRIPT_BYTES / 4) as usize);
        for i in 0..6 {
            s.session_append("me", "big", &[turn("user", &format!("{i}{big}"))]).unwrap();
        }
        let kept = s.session_tail("me", "big", u32::MAX).unwrap();
        let bytes: usize = kept.iter().map(|t| t.text.len()).sum();
        assert!(bytes as u64 <= MAX_TRANSCRIPT_BYTES, "{bytes} bytes kept");
        assert!(kept.len() >= 3 && kept.last().unwrap().text.starts_with('5'), "newest kept");
    }
}
