//! A2A tasks: what `GetTask` and `CancelTask` find, held in memory and
//! bounded (a client cannot make the host keep its tasks forever).
//!
//! A task is one chat request. It belongs to the token that sent it (a task
//! id of another token is "not found"), runs in a task of its own (so a
//! client that goes away neither cancels it nor loses its result), and is
//! kept [`KEEP_FINISHED`] after it ends. Each token has a store of its own,
//! so one client's flood cannot push out or lock out another's tasks: at
//! most [`MAX_RUNNING`] of its tasks run at once, and at most [`MAX_TASKS`]
//! tasks and [`MAX_BYTES`] of their messages are held; its oldest finished
//! ones make room, and when only running ones are left a new task is
//! refused. Tokens come from the configuration, so the whole store is
//! bounded by their number times these.
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::task::AbortHandle;

use agentkernel_core::chat::ChatResponse;

pub const MAX_TASKS: usize = 500;
pub const MAX_BYTES: usize = 16 << 20;
pub const MAX_RUNNING: usize = 64;
pub const KEEP_FINISHED: Duration = Duration::from_secs(3600);

/// The protocol's task states (the ones this server uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Submitted,
    Working,
    Completed,
    Failed,
    Canceled,
    Rejected,
}

impl State {
    pub fn wire(self) -> &'static str {
        match self {
            State::Submitted => "TASK_STATE_SUBMITTED",
            State::Working => "TASK_STATE_WORKING",
            State::Completed => "TASK_STATE_COMPLETED",
            State::Failed => "TASK_STATE_FAILED",
            State::Canceled => "TASK_STATE_CANCELED",
            State::Rejected => "TASK_STATE_REJECTED",
        }
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, State::Submitted | State::Working)
    }

    /// A finished chat request's state: answered (wholly or in part),
    /// no agent could take it, or every chosen agent failed.
    pub fn of(resp: &ChatResponse) -> State {
        match resp.status.as_str() {
            "ok" | "partial" => State::Completed,
            "no-match" => State::Rejected,
            _ => State::Failed,
        }
    }
}

/// An RFC 3339 UTC timestamp, as the protocol's JSON wants.
pub fn timestamp() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs() as i64;
    let day = secs.rem_euclid(86_400);
    let date = agentkernel_storage::research::date_of(secs);
    format!("{date}T{:02}:{:02}:{:02}.{:03}Z", day / 3600, day / 60 % 60, day % 60, now.subsec_millis())
}

/// A message as the protocol writes it.
pub fn message(role: &str, task_id: &str, context_id: &str, parts: Vec<Value>) -> Value {
    json!({
        "messageId": format!("{task_id}-{}", role.to_ascii_lowercase()),
        "contextId": context_id,
        "taskId": task_id,
        "role": role,
        "parts": parts,
    })
}

#[derive(Debug)]
struct Entry {
    id: String,
    context_id: String,
    state: State,
    timestamp: String,
    /// The agents' answer as a status message, once there is one.
    status_message: Option<Value>,
    artifacts: Vec<Value>,
    history: Vec<Value>,
    /// Stops the request's calls (`CancelTask`).
    abort: Option<AbortHandle>,
    finished: Option<Instant>,
    bytes: usize,
}

impl Entry {
    fn to_json(&self, history_length: Option<usize>) -> Value {
        let mut status = json!({"state": self.state.wire(), "timestamp": self.timestamp});
        if let Some(m) = &self.status_message {
            status["message"] = m.clone();
        }
        let skip = history_length.map_or(0, |n| self.history.len().saturating_sub(n));
        json!({
            "id": self.id,
            "contextId": self.context_id,
            "status": status,
            "artifacts": self.artifacts,
            "history": self.history[skip..],
        })
    }

    fn measure(&mut self) {
        let size = |v: &Value| serde_json::to_string(v).map_or(0, |s| s.len());
        self.bytes = self.history.iter().chain(&self.artifacts).chain(&self.status_message).map(size).sum::<usize>() + 256;
    }
}

/// Why a task was not found or not changed.
#[derive(Debug, PartialEq, Eq)]
pub enum TaskError {
    NotFound,
    NotCancelable(&'static str),
    /// Only running tasks are held and the token's store is full, or
    /// [`MAX_RUNNING`] of its tasks are running.
    Full,
}

/// Every token's tasks, each token's bounded on its own.
#[derive(Default)]
pub struct TaskStore {
    inner: Mutex<HashMap<String, Inner>>,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, Entry>,
    /// Ids oldest first (finished ones are evicted in this order).
    order: VecDeque<String>,
    bytes: usize,
}

impl Inner {
    /// Forgets finished tasks: expired ones, then the oldest while over a bound.
    fn make_room(&mut self, extra_tasks: usize, extra_bytes: usize) {
        let now = Instant::now();
        let Inner { by_id, order, bytes } = self;
        order.retain(|id| {
            let Some(e) = by_id.get(id) else { return false };
            let expired = e.finished.is_some_and(|f| now.duration_since(f) > KEEP_FINISHED);
            let over = by_id.len() + extra_tasks > MAX_TASKS || *bytes + extra_bytes > MAX_BYTES;
            if e.finished.is_some() && (expired || over) {
                *bytes -= e.bytes;
                by_id.remove(id);
                return false;
            }
            true
        });
    }
}

impl TaskStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Inner>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on `owner`'s tasks; `NotFound` when it has none.
    fn with_owner<T>(&self, owner: &str, f: impl FnOnce(&mut Inner) -> Result<T, TaskError>) -> Result<T, TaskError> {
        let mut all = self.lock();
        f(all.get_mut(owner).ok_or(TaskError::NotFound)?)
    }

    /// A new working task holding the user's message.
    pub fn create(&self, owner: &str, id: &str, context_id: &str, user_message: Value) -> Result<Value, TaskError> {
        let mut entry = Entry {
            id: id.to_string(),
            context_id: context_id.to_string(),
            state: State::Submitted,
            timestamp: timestamp(),
            status_message: None,
            artifacts: Vec::new(),
            history: vec![user_message],
            abort: None,
            finished: None,
            bytes: 0,
        };
        entry.measure();
        let mut all = self.lock();
        let inner = all.entry(owner.to_string()).or_default();
        inner.make_room(1, entry.bytes);
        let running = inner.by_id.values().filter(|e| !e.state.is_terminal()).count();
        if running >= MAX_RUNNING || inner.by_id.len() >= MAX_TASKS || inner.bytes + entry.bytes > MAX_BYTES {
            return Err(TaskError::Full);
        }
        let snapshot = entry.to_json(None);
        inner.bytes += entry.bytes;
        inner.order.push_back(id.to_string());
        inner.by_id.insert(id.to_string(), entry);
        Ok(snapshot)
    }

    /// The task is running: `abort` stops its calls.
    pub fn start(&self, owner: &str, id: &str, abort: AbortHandle) {
        let mut all = self.lock();
        match all.get_mut(owner).and_then(|inner| inner.by_id.get_mut(id)) {
            // Canceled before it started, or since dropped from the store:
            // nothing could stop it later, so it stops now.
            None => abort.abort(),
            Some(e) if e.state.is_terminal() => abort.abort(),
            Some(e) => {
                e.state = State::Working;
                e.timestamp = timestamp();
                e.abort = Some(abort);
            }
        }
    }

    /// Records how the task ended, unless it was canceled meanwhile; the
    /// task as it now is.
    pub fn finish(&self, owner: &str, id: &str, state: State, answer: Option<Value>, artifacts: Vec<Value>) -> Option<Value> {
        let mut all = self.lock();
        let inner = all.get_mut(owner)?;
        let Inner { by_id, bytes, .. } = &mut *inner;
        let e = by_id.get_mut(id)?;
        if !e.state.is_terminal() {
            e.state = state;
            e.timestamp = timestamp();
            if let Some(answer) = answer {
                e.history.push(answer.clone());
                e.status_message = Some(answer);
            }
            e.artifacts = artifacts;
        }
        e.abort = None;
        e.finished.get_or_insert_with(Instant::now);
        let before = e.bytes;
        e.measure();
        *bytes = *bytes - before + e.bytes;
        let snapshot = e.to_json(None);
        inner.make_room(0, 0);
        Some(snapshot)
    }

    pub fn get(&self, owner: &str, id: &str, history_length: Option<usize>) -> Result<Value, TaskError> {
        self.with_owner(owner, |inner| Ok(inner.by_id.get(id).ok_or(TaskError::NotFound)?.to_json(history_length)))
    }

    /// Cancels a task that has not ended: its calls are stopped where they
    /// are (an agent mid-call is dropped with its instance).
    pub fn cancel(&self, owner: &str, id: &str) -> Result<Value, TaskError> {
        self.with_owner(owner, |inner| {
            let e = inner.by_id.get_mut(id).ok_or(TaskError::NotFound)?;
            if e.state.is_terminal() {
                return Err(TaskError::NotCancelable(e.state.wire()));
            }
            if let Some(abort) = e.abort.take() {
                abort.abort();
            }
            e.state = State::Canceled;
            e.timestamp = timestamp();
            e.finished = Some(Instant::now());
            Ok(e.to_json(None))
        })
    }

    /// Who owns a task and in which context, for a follow-up message.
    pub fn context_of(&self, owner: &str, id: &str) -> Result<(String, State), TaskError> {
        self.with_owner(owner, |inner| {
            let e = inner.by_id.get(id).ok_or(TaskError::NotFound)?;
            Ok((e.context_id.clone(), e.state))
        })
    }

    #[cfg(test)]
    fn len(&self, owner: &str) -> usize {
        self.lock().get(owner).map_or(0, |inner| inner.by_id.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> Value {
        message("ROLE_USER", "t", "c", vec![json!({"text": text})])
    }

    #[test]
    fn tasks_belong_to_their_owner_and_end_once() {
        let store = TaskStore::default();
        store.create("alice", "t1", "c1", user("hi")).unwrap();
        assert_eq!(store.get("bob", "t1", None), Err(TaskError::NotFound), "another token's task is not found");
        let canceled = store.cancel("alice", "t1").unwrap();
        assert_eq!(canceled["status"]["state"], "TASK_STATE_CANCELED");
        // The run ending afterwards does not overwrite the cancellation.
        let after = store.finish("alice", "t1", State::Completed, Some(user("late")), vec![]).unwrap();
        assert_eq!(after["status"]["state"], "TASK_STATE_CANCELED");
        assert_eq!(store.cancel("alice", "t1"), Err(TaskError::NotCancelable("TASK_STATE_CANCELED")));
        assert_eq!(store.get("alice", "t1", Some(0)).unwrap()["history"], json!([]));
    }

    #[test]
    fn finished_tasks_make_room_and_running_ones_are_never_dropped() {
        let store = TaskStore::default();
        for i in 0..MAX_RUNNING {
            store.create("a", &format!("t{i}"), "c", user("x")).unwrap();
        }
        assert_eq!(store.create("a", "one-more", "c", user("x")), Err(TaskError::Full), "as many running as allowed: refused");
        // Another token is not locked out by this one.
        store.create("b", "b0", "c", user("x")).unwrap();
        for i in 0..MAX_RUNNING {
            store.finish("a", &format!("t{i}"), State::Completed, None, vec![]);
        }
        for i in MAX_RUNNING..MAX_TASKS {
            store.create("a", &format!("t{i}"), "c", user("x")).unwrap();
            store.finish("a", &format!("t{i}"), State::Completed, None, vec![]);
        }
        assert_eq!(store.len("a"), MAX_TASKS);
        store.create("a", "one-more", "c", user("x")).unwrap();
        assert_eq!(store.get("a", "t0", None), Err(TaskError::NotFound), "the oldest finished task made room");
        assert_eq!(store.len("a"), MAX_TASKS);
        assert!(store.get("b", "b0", None).is_ok(), "only the token's own tasks make room");
    }

    #[test]
    fn bytes_are_bounded_too() {
        let store = TaskStore::default();
        let big = "x".repeat(MAX_BYTES / 4);
        for i in 0..3 {
            store.create("a", &format!("t{i}"), "c", user(&big)).unwrap();
            store.finish("a", &format!("t{i}"), State::Completed, None, vec![]);
        }
        store.create("a", "t3", "c", user(&big)).unwrap();
        store.create("a", "t4", "c", user(&big)).unwrap();
        assert_eq!(store.get("a", "t0", None), Err(TaskError::NotFound));
        assert!(store.lock()["a"].bytes <= MAX_BYTES);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = timestamp();
        assert_eq!(t.len(), "2026-12-04T18:42:14.123Z".len(), "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
    }
}
