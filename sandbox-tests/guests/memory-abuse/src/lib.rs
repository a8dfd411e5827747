//! Hostile guest `memory-abuse`: tries to take more storage than its grant
//! allows. The mode is the request text:
//!
//! - `flood-history N`: appends N turns of 64 KiB to one session.
//! - `flood-sessions`: appends 64 KiB turns to new sessions until refused (at most 200).
//! - `odd-keys`: stores NUL-led and 4-byte-character keys until refused (at most 1,000).
//! - `set KEY VALUE` / `get KEY`: one write or read, for timeout tests.
//!
//! Answers with what happened, e.g. `appended 2000` or `refused after 15: QuotaExceeded(..)`.
use agentkernel_sdk::prelude::*;

struct Hostile;

const TURN_BYTES: usize = 64 * 1024;

fn flood_history(session: &str, turns: u32) -> String {
    let content = "h".repeat(TURN_BYTES);
    for i in 0..turns {
        if let Err(e) = memory::append_history(session, &Turn::new(Role::User, content.clone())) {
            return format!("refused after {i}: {e:?}");
        }
    }
    format!("appended {turns}")
}

fn flood_sessions() -> String {
    let content = "s".repeat(TURN_BYTES);
    for i in 0..200u32 {
        if let Err(e) = memory::append_history(&format!("flood-{i}"), &Turn::new(Role::User, content.clone())) {
            return format!("refused after {i}: {e:?}");
        }
    }
    "never refused".to_string()
}

fn odd_keys() -> String {
    for i in 0..1_000u32 {
        // Keys SQLite's length() of TEXT undercounts: NUL-led ones (it stops
        // at the NUL) and 4-byte characters (it counts characters).
        let key = if i % 2 == 0 { format!("\0{}{i:06}", "\0".repeat(400)) } else { format!("{}{i:06}", "😀".repeat(100)) };
        if let Err(e) = memory::set(&key, b"v") {
            return format!("refused after {i}: {e:?}");
        }
    }
    "never refused".to_string()
}

impl Agent for Hostile {
    fn describe() -> Manifest {
        Manifest::new("memory-abuse", "0.1.0", "tries to take more storage than its grant allows.")
            .capability("memory", "floods history and keys")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let mut words = req.text.splitn(3, ' ');
        let text = match (words.next().unwrap_or(""), words.next(), words.next()) {
            ("flood-history", Some(n), _) => flood_history(&req.session_id, n.parse().unwrap_or(1)),
            ("flood-sessions", _, _) => flood_sessions(),
            ("odd-keys", _, _) => odd_keys(),
            ("set", Some(key), Some(value)) => match memory::set_string(key, value) {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("{e:?}"),
            },
            ("get", Some(key), _) => match memory::get_string(key) {
                Ok(v) => format!("{v:?}"),
                Err(e) => format!("{e:?}"),
            },
            (mode, _, _) => return Err(AgentError::InvalidRequest(format!("unknown mode `{mode}`"))),
        };
        Ok(Response::text(text))
    }
}

export_agent!(Hostile);
