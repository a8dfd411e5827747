//! SQLite's group-commit writer: one thread runs the [`StorageCall`]s of
//! agent memory and the LLM ledger, as many as are waiting (up to
//! [`MAX_GROUP_CALLS`], for up to [`MAX_GROUP_TIME`]) in one transaction.
//!
//! Why: a transaction per host call, each on a blocking-pool thread taking
//! the writer's lock in turn, spent more in thread hand-offs, lock queues
//! and commits (WAL frames written again for the same usage pages) than in
//! SQLite itself. One commit now serves the group.
//!
//! Each call runs in a savepoint, so a refused or failed call is rolled back
//! alone and the group goes on. A write asks its [`CommitGate`] when its
//! savepoint is released (a caller that gave up first gets nothing
//! applied). Every answer, reads included, is sent only after the group
//! committed: a read may have seen the group's writes, and must not report
//! what a failed COMMIT then undid. So a read queued after a write sees it,
//! as agent memory promises after `outcome-unknown`.
//!
//! Bounds: at most [`MAX_QUEUED_CALLS`] calls and [`MAX_QUEUED_BYTES`] of
//! their arguments wait; past either, a call is refused at once (agent
//! memory reports `unavailable`) instead of growing the queue.
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::sqlite::{history_tail_in, insert_usage, kv_get_in, kv_list_in, settle_usage};
use crate::sqlite_memory::{history_append_in, kv_apply_in};
use crate::{Answering, StorageAnswer, StorageCall, StorageError};

/// Most calls waiting for the writer.
pub const MAX_QUEUED_CALLS: usize = 4096;
/// Most bytes of arguments waiting for the writer.
pub const MAX_QUEUED_BYTES: usize = 64 << 20;
/// Most calls in one transaction.
pub const MAX_GROUP_CALLS: usize = 128;
/// No call joins a group that has been running this long: the writer's lock
/// is shared with the transcript writer and the rest of the host.
pub const MAX_GROUP_TIME: Duration = Duration::from_millis(5);

type Reply = tokio::sync::oneshot::Sender<Result<StorageAnswer, StorageError>>;

struct Job {
    call: StorageCall,
    size: usize,
    reply: Reply,
}

pub(crate) struct GroupWriter {
    queue: Option<mpsc::SyncSender<Job>>,
    queued_bytes: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GroupWriter {
    pub(crate) fn start(conn: Arc<Mutex<Connection>>) -> Result<Self, StorageError> {
        let (queue, jobs) = mpsc::sync_channel(MAX_QUEUED_CALLS);
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let counter = queued_bytes.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(&conn, &jobs, &counter))
            .map_err(|e| StorageError::Backend(format!("could not start the SQLite writer thread: {e}")))?;
        Ok(GroupWriter { queue: Some(queue), queued_bytes, thread: Some(thread) })
    }

    pub(crate) fn submit(&self, call: StorageCall) -> Answering {
        let size = call.size();
        let refuse = |why: String| -> Answering { Box::pin(std::future::ready(Err(StorageError::Backend(why)))) };
        if self.queued_bytes.fetch_add(size, Ordering::AcqRel) + size > MAX_QUEUED_BYTES {
            self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            return refuse(format!("the storage writer has {MAX_QUEUED_BYTES} bytes of calls waiting; try again"));
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = match &self.queue {
            Some(queue) => queue.try_send(Job { call, size, reply }),
            None => return refuse("the storage writer stopped".into()),
        };
        if let Err(e) = sent {
            self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            return refuse(match e {
                mpsc::TrySendError::Full(_) => format!("the storage writer has {MAX_QUEUED_CALLS} calls waiting; try again"),
                mpsc::TrySendError::Disconnected(_) => "the storage writer stopped".into(),
            });
        }
        Box::pin(async move {
            answer.await.unwrap_or_else(|_| Err(StorageError::Backend("the storage writer dropped the call".into())))
        })
    }
}

impl Drop for GroupWriter {
    /// Closes the queue and waits for the calls in it, so the database is
    /// closed when the storage is dropped.
    fn drop(&mut self) {
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &Mutex<Connection>, jobs: &mpsc::Receiver<Job>, queued_bytes: &AtomicUsize) {
    let take = |job: Job| {
        queued_bytes.fetch_sub(job.size, Ordering::AcqRel);
        job
    };
    while let Ok(first) = jobs.recv() {
        // A panic while holding the lock cannot leave SQLite half-written.
        let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut group = Group { conn: &conn, open: false, held: Vec::new() };
        group.run(take(first));
        let started = Instant::now();
        while group.held.len() < MAX_GROUP_CALLS && started.elapsed() < MAX_GROUP_TIME {
            match jobs.try_recv() {
                Ok(job) => group.run(take(job)),
                Err(_) => break,
            }
        }
        group.commit();
    }
}

/// One transaction and the answers that wait for its COMMIT.
struct Group<'c> {
    conn: &'c Connection,
    open: bool,
    held: Vec<(StorageAnswer, Reply)>,
}

impl Group<'_> {
    fn exec(&self, sql: &str) -> Result<(), StorageError> {
        self.conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    }

    fn run(&mut self, job: Job) {
        let Job { call, reply, .. } = job;
        // Nobody waits for a read whose caller gave up; a write whose caller
        // gave up first must not apply. (A ledger row is written anyway.)
        if (call.is_read() && reply.is_closed()) || call.gate().is_some_and(|g| g.is_cancelled()) {
            let _ = reply.send(Err(StorageError::Cancelled));
            return;
        }
        if !self.open {
            // IMMEDIATE: the write lock is taken now (waiting for another
            // process up to the busy timeout), so what a call reads cannot
            // change before it writes.
            if let Err(e) = self.exec("BEGIN IMMEDIATE") {
                let _ = reply.send(Err(e));
                return;
            }
            self.open = true;
        }
        if let Err(e) = self.exec("SAVEPOINT call") {
            let _ = reply.send(Err(e));
            self.abandon_if_rolled_back();
            return;
        }
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| run_in(self.conn, &call)))
            .unwrap_or_else(|_| Err(StorageError::Backend("a storage call panicked".into())));
        let outcome = match result {
            Ok(answer) if answer.is_refusal() => Err(Ok(answer)),
            Ok(answer) if call.gate().is_none_or(|g| g.begin_commit()) => Ok(answer),
            Ok(_) => Err(Err(StorageError::Cancelled)),
            Err(e) => Err(Err(e)),
        };
        match outcome {
            Ok(answer) => match self.exec("RELEASE call") {
                Ok(()) => self.held.push((answer, reply)),
                Err(e) => {
                    let _ = reply.send(Err(e));
                    self.abandon_if_rolled_back();
                }
            },
            // Refused, cancelled or failed: undo this call alone, answer now.
            Err(answer) => {
                let undone = self.exec("ROLLBACK TO call").and_then(|()| self.exec("RELEASE call"));
                let _ = reply.send(answer);
                if undone.is_err() {
                    self.abandon_if_rolled_back();
                }
            }
        }
    }

    /// Some errors (a full disk, I/O) make SQLite roll back the whole
    /// transaction: the calls held for it then failed too.
    fn abandon_if_rolled_back(&mut self) {
        if self.open && self.conn.is_autocommit() {
            self.open = false;
            self.fail_held("the transaction was rolled back by an error in another call of its group");
        }
    }

    fn fail_held(&mut self, why: &str) {
        for (_, reply) in self.held.drain(..) {
            let _ = reply.send(Err(StorageError::Backend(why.to_string())));
        }
    }

    fn commit(mut self) {
        if !self.open {
            return;
        }
        match self.exec("COMMIT") {
            Ok(()) => {
                for (answer, reply) in self.held.drain(..) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(e) => {
                if !self.conn.is_autocommit() {
                    let _ = self.exec("ROLLBACK");
                }
                self.fail_held(&format!("COMMIT failed: {e}"));
            }
        }
    }
}

/// One call on the writer's connection, inside the group's transaction.
fn run_in(conn: &Connection, call: &StorageCall) -> Result<StorageAnswer, StorageError> {
    Ok(match call {
        StorageCall::KvGet { namespace, key } => StorageAnswer::Value(kv_get_in(conn, namespace, key)?),
        StorageCall::KvApply { namespace, ops, quota, .. } => StorageAnswer::Applied(kv_apply_in(conn, namespace, ops, quota)?),
        StorageCall::KvList { namespace, prefix, limit } => StorageAnswer::Keys(kv_list_in(conn, namespace, prefix, *limit)?),
        StorageCall::HistoryAppend { namespace, session, turn, quota, .. } => {
            StorageAnswer::Appended(history_append_in(conn, namespace, session, turn, quota)?)
        }
        StorageCall::HistoryTail { namespace, session, limit } => {
            StorageAnswer::Turns(history_tail_in(conn, namespace, session, *limit)?)
        }
        StorageCall::LlmRecord(record) => {
            insert_usage(conn, record)?;
            StorageAnswer::Recorded
        }
        StorageCall::LlmSettle { id, record } => {
            settle_usage(conn, *id, record)?;
            StorageAnswer::Recorded
        }
    })
}

#[cfg(test)]
#[path = "sqlite_writer_tests.rs"]
mod tests;
