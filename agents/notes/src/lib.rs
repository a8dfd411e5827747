//! `notes`: remembers what it is told and recalls it, per session, through
//! the `memory` capability.
//!
//! - `remember <text>` / `note <text>`: stores a note for this session.
//! - `recall` / `what do you remember`: lists this session's notes.
//! - `forget`: deletes this session's notes.
use agentkernel_sdk::prelude::*;

pub struct Notes;

/// The most notes listed by `recall`.
const MAX_NOTES: u32 = 100;

/// What a request asks for; parsing is pure so it is unit-tested natively.
#[derive(Debug, PartialEq)]
pub enum Command<'a> {
    Remember(&'a str),
    Recall,
    Forget,
    Unknown,
}

pub fn parse(text: &str) -> Command<'_> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    for prefix in ["remember that ", "remember ", "note that ", "note "] {
        if lower.starts_with(prefix) {
            let rest = t[prefix.len()..].trim();
            return if rest.is_empty() { Command::Unknown } else { Command::Remember(rest) };
        }
    }
    if lower.starts_with("recall") || lower.contains("what do you remember") || lower.contains("my notes") {
        return Command::Recall;
    }
    if lower.starts_with("forget") {
        return Command::Forget;
    }
    Command::Unknown
}

fn session_prefix(session: &str) -> String {
    format!("session/{session}/note/")
}

/// The session's note counter; outside the notes' prefix, so `recall` does
/// not list it.
fn counter_key(session: &str) -> String {
    format!("session/{session}/next-note")
}

/// A note number no other call of this session gets, even when several
/// "remember"s run at once: the memory host's atomic `increment` hands them
/// out (counting existing keys, then writing, would let two calls pick the
/// same number and one note overwrite the other).
fn next_note_number(session: &str) -> Result<i64, AgentError> {
    let counter = counter_key(session);
    if memory::get(&counter)?.is_none() {
        // A session from before the counter starts after its existing notes.
        // Only the first seed lands (compare-and-swap from absent), and no
        // number is handed out before the counter exists, so none repeats.
        let existing = memory::list_keys(&session_prefix(session), MAX_NOTES * 10)?.len();
        memory::compare_and_swap(&counter, None, Some(existing.to_string().as_bytes()))?;
    }
    Ok(memory::increment(&counter, 1)? - 1)
}

impl Agent for Notes {
    fn describe() -> Manifest {
        Manifest::new("notes", "0.1.0", "Remembers notes per session and recalls them on request.")
            .skill(Skill::new("remember", "Store a note for later").keywords(["remember", "note", "save"]))
            .skill(Skill::new("recall", "List what was remembered").keywords(["recall", "notes", "forget"]))
            .capability("memory", "stores notes and the conversation history")
            .capability("log", "reports what it stored")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        memory::append_history(&req.session_id, &Turn::new(Role::User, req.text.clone()))?;
        let prefix = session_prefix(&req.session_id);
        let answer = match parse(&req.text) {
            Command::Remember(note) => {
                // Keys sort lexically, so a zero-padded number keeps notes in order.
                let number = next_note_number(&req.session_id)?;
                memory::set_string(&format!("{prefix}{number:08}"), note)?;
                log::info(&format!("stored note {number} for session {}", req.session_id));
                Response::text(format!("Noted: {note}"))
            }
            Command::Recall => {
                let keys = memory::list_keys(&prefix, MAX_NOTES)?;
                let mut notes = Vec::with_capacity(keys.len());
                for key in &keys {
                    if let Some(note) = memory::get_string(key)? {
                        notes.push(note);
                    }
                }
                let text = if notes.is_empty() {
                    "I have no notes for this session.".to_string()
                } else {
                    format!("You asked me to remember: {}", notes.join("; "))
                };
                Response::text(text).with_data(&notes)
            }
            Command::Forget => {
                let keys = memory::list_keys(&prefix, u32::MAX)?;
                for key in &keys {
                    memory::delete(key)?;
                }
                Response::text(format!("Forgot {} notes.", keys.len()))
            }
            Command::Unknown => Response::text(
                "Tell me `remember <something>`, ask me to `recall`, or say `forget`.",
            ),
        };
        memory::append_history(&req.session_id, &Turn::new(Role::Assistant, answer.text.clone()))?;
        Ok(answer)
    }
}

export_agent!(Notes);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(parse("Remember that milk is low"), Command::Remember("milk is low"));
        assert_eq!(parse("note  buy eggs "), Command::Remember("buy eggs"));
        assert_eq!(parse("remember "), Command::Unknown);
        assert_eq!(parse("What do you remember?"), Command::Recall);
        assert_eq!(parse("recall"), Command::Recall);
        assert_eq!(parse("forget everything"), Command::Forget);
        assert_eq!(parse("hello"), Command::Unknown);
    }

    #[test]
    fn notes_are_scoped_by_session() {
        assert_ne!(session_prefix("a"), session_prefix("b"));
        assert!(session_prefix("a").starts_with("session/a/"));
        assert!(!counter_key("a").starts_with(&session_prefix("a")), "recall must not list the counter");
    }
}
