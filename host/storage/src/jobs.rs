//! The evolution job queue: work of one evolution (a candidate's build and
//! benchmark) that any host sharing the backend may take. The run's owner
//! enqueues a job per candidate; a host claims the oldest free one with a
//! lease it renews while it works (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, so hosts never wait on each other's claims); the result is
//! written back to the row, and only by the claim that still holds it. A
//! job whose host died (its lease ran out) is claimed again elsewhere, at
//! most [`MAX_JOB_ATTEMPTS`] times in all, then marked failed. The owner
//! reads results in its own order and deletes its run's jobs when done.
//!
//! Bounds: a payload is at most [`MAX_JOB_PAYLOAD_BYTES`], a result
//! [`MAX_JOB_RESULT_BYTES`] plus one component of at most
//! [`MAX_COMPONENT_BYTES`]; at most [`MAX_OPEN_JOBS`] jobs wait or run at
//! once (an owner refused falls back to doing the work itself); rows older
//! than [`JOB_RETENTION_SECS`] are deleted when a job is enqueued.
use rusqlite::{OptionalExtension, params};

use crate::StorageError;
use crate::components::MAX_COMPONENT_BYTES;
use crate::sqlite::SqliteStorage;

/// The largest payload a job carries (a candidate's source and its suite).
pub const MAX_JOB_PAYLOAD_BYTES: usize = 8 << 20;
/// The largest result a job carries (besides its component).
pub const MAX_JOB_RESULT_BYTES: usize = 8 << 20;
/// Claims a job may have before it is marked failed (its hosts kept dying).
pub const MAX_JOB_ATTEMPTS: i64 = 3;
/// Jobs queued or running across every host, at most.
pub const MAX_OPEN_JOBS: i64 = 1000;
/// Rows older than this are deleted (an owner that died never deleted them).
pub const JOB_RETENTION_SECS: i64 = 86_400;
/// Longest host name and error kept.
pub const MAX_JOB_TEXT_CHARS: usize = 1000;

/// A job a host has claimed: it must finish it with the same `attempt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobClaim {
    pub id: i64,
    pub run: String,
    pub payload: String,
    /// How many claims the job has had, this one included.
    pub attempt: i64,
}

/// Where a job is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running { host: String, lease_until: i64 },
    Done { host: String, result: String, component: Option<Vec<u8>> },
    /// Claimed [`MAX_JOB_ATTEMPTS`] times without a result.
    Failed { error: String },
}

pub trait JobQueue: Send + Sync + 'static {
    /// Appends a job of `run`; its id. Refused when the payload is too
    /// large or [`MAX_OPEN_JOBS`] are open; deletes rows past retention.
    fn job_enqueue(&self, run: &str, payload: &str, now: i64) -> Result<i64, StorageError>;
    /// Claims for `host`, until `now + ttl_secs`, the oldest job that is
    /// queued or whose lease ran out (only `run`'s when given). Jobs whose
    /// lease ran out after their last allowed attempt are marked failed.
    fn job_claim(&self, host: &str, run: Option<&str>, ttl_secs: i64, now: i64) -> Result<Option<JobClaim>, StorageError>;
    /// Extends `claim`'s lease; `false` when it is no longer held (expired
    /// and claimed again, or deleted): the holder should stop.
    fn job_renew(&self, claim: &JobClaim, host: &str, ttl_secs: i64, now: i64) -> Result<bool, StorageError>;
    /// Writes `claim`'s result; `false` (and nothing written) when the
    /// claim no longer holds the job.
    fn job_finish(&self, claim: &JobClaim, host: &str, result: &str, component: Option<&[u8]>) -> Result<bool, StorageError>;
    /// The job's state; `None` when it was deleted.
    fn job_state(&self, id: i64) -> Result<Option<JobState>, StorageError>;
    /// Deletes every job of `run`; how many.
    fn job_delete_run(&self, run: &str) -> Result<u64, StorageError>;
}

pub(crate) fn check_enqueue(run: &str, payload: &str) -> Result<(), StorageError> {
    if payload.len() > MAX_JOB_PAYLOAD_BYTES {
        return Err(StorageError::Backend(format!(
            "a job's payload is {} bytes, more than the {MAX_JOB_PAYLOAD_BYTES} a job may carry",
            payload.len()
        )));
    }
    if run.is_empty() || run.len() > MAX_JOB_TEXT_CHARS {
        return Err(StorageError::Backend("a job's run id must be 1-1000 bytes".into()));
    }
    Ok(())
}

pub(crate) fn check_finish(host: &str, result: &str, component: Option<&[u8]>) -> Result<(), StorageError> {
    if result.len() > MAX_JOB_RESULT_BYTES {
        return Err(StorageError::Backend(format!("a job's result is {} bytes, more than {MAX_JOB_RESULT_BYTES}", result.len())));
    }
    if component.is_some_and(|c| c.len() > MAX_COMPONENT_BYTES) {
        return Err(StorageError::Backend(format!("a job's component is more than {MAX_COMPONENT_BYTES} bytes")));
    }
    if host.len() > MAX_JOB_TEXT_CHARS {
        return Err(StorageError::Backend("a host name must be at most 1000 bytes".into()));
    }
    Ok(())
}

pub(crate) fn open_jobs_refused(open: i64) -> StorageError {
    StorageError::Backend(format!("{open} evolution jobs are open, the most there may be ({MAX_OPEN_JOBS}): do the work here"))
}

pub(crate) fn failed_error() -> String {
    format!("claimed {MAX_JOB_ATTEMPTS} times and never finished (its hosts stopped renewing it)")
}

/// Both backends' statements are written so that they read the same; the
/// placeholders differ (`?N` here, `$N` there).
pub(crate) const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS evolution_jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run         TEXT NOT NULL,
    payload     TEXT NOT NULL,
    state       TEXT NOT NULL,
    host        TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    lease_until INTEGER,
    result      TEXT,
    component   BLOB,
    error       TEXT,
    created     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS evolution_jobs_open ON evolution_jobs (state, id);
CREATE INDEX IF NOT EXISTS evolution_jobs_run ON evolution_jobs (run);
";

impl JobQueue for SqliteStorage {
    fn job_enqueue(&self, run: &str, payload: &str, now: i64) -> Result<i64, StorageError> {
        check_enqueue(run, payload)?;
        let mut conn = self.conn();
        // IMMEDIATE: the open count cannot change before the insert, in
        // this process or another one on the same file.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.prepare_cached("DELETE FROM evolution_jobs WHERE created < ?1")?.execute(params![now - JOB_RETENTION_SECS])?;
        let open: i64 = tx.query_row("SELECT count(*) FROM evolution_jobs WHERE state IN ('queued', 'running')", [], |r| r.get(0))?;
        if open >= MAX_OPEN_JOBS {
            return Err(open_jobs_refused(open));
        }
        tx.prepare_cached("INSERT INTO evolution_jobs (run, payload, state, created) VALUES (?1, ?2, 'queued', ?3)")?
            .execute(params![run, payload, now])?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(id)
    }

    fn job_claim(&self, host: &str, run: Option<&str>, ttl_secs: i64, now: i64) -> Result<Option<JobClaim>, StorageError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.prepare_cached(
            "UPDATE evolution_jobs SET state = 'failed', error = ?1
             WHERE state = 'running' AND lease_until <= ?2 AND attempts >= ?3",
        )?
        .execute(params![failed_error(), now, MAX_JOB_ATTEMPTS])?;
        let claim = tx
            .prepare_cached(
                "UPDATE evolution_jobs SET state = 'running', host = ?1, lease_until = ?2 + ?3, attempts = attempts + 1
                 WHERE id = (SELECT id FROM evolution_jobs
                             WHERE (state = 'queued' OR (state = 'running' AND lease_until <= ?2))
                               AND (?4 IS NULL OR run = ?4)
                             ORDER BY id LIMIT 1)
                 RETURNING id, run, payload, attempts",
            )?
            .query_row(params![host, now, ttl_secs, run], |r| {
                Ok(JobClaim { id: r.get(0)?, run: r.get(1)?, payload: r.get(2)?, attempt: r.get(3)? })
            })
            .optional()?;
        tx.commit()?;
        Ok(claim)
    }

    fn job_renew(&self, claim: &JobClaim, host: &str, ttl_secs: i64, now: i64) -> Result<bool, StorageError> {
        let changed = self
            .conn()
            .prepare_cached(
                "UPDATE evolution_jobs SET lease_until = ?1
                 WHERE id = ?2 AND state = 'running' AND host = ?3 AND attempts = ?4",
            )?
            .execute(params![now + ttl_secs, claim.id, host, claim.attempt])?;
        Ok(changed > 0)
    }

    fn job_finish(&self, claim: &JobClaim, host: &str, result: &str, component: Option<&[u8]>) -> Result<bool, StorageError> {
        check_finish(host, result, component)?;
        let changed = self
            .conn()
            .prepare_cached(
                "UPDATE evolution_jobs SET state = 'done', result = ?1, component = ?2, lease_until = NULL
                 WHERE id = ?3 AND state = 'running' AND host = ?4 AND attempts = ?5",
            )?
            .execute(params![result, component, claim.id, host, claim.attempt])?;
        Ok(changed > 0)
    }

    fn job_state(&self, id: i64) -> Result<Option<JobState>, StorageError> {
        let row = self
            .reader()
            .prepare_cached("SELECT state, host, lease_until, result, component, error FROM evolution_jobs WHERE id = ?1")?
            .query_row(params![id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<Vec<u8>>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            })
            .optional()?;
        Ok(row.map(|(state, host, lease_until, result, component, error)| job_state(&state, host, lease_until, result, component, error)))
    }

    fn job_delete_run(&self, run: &str) -> Result<u64, StorageError> {
        let deleted = self.conn().prepare_cached("DELETE FROM evolution_jobs WHERE run = ?1")?.execute(params![run])?;
        Ok(deleted as u64)
    }
}

/// A row's state, the same on both backends.
pub(crate) fn job_state(
    state: &str,
    host: Option<String>,
    lease_until: Option<i64>,
    result: Option<String>,
    component: Option<Vec<u8>>,
    error: Option<String>,
) -> JobState {
    match state {
        "queued" => JobState::Queued,
        "running" => JobState::Running { host: host.unwrap_or_default(), lease_until: lease_until.unwrap_or(0) },
        "done" => JobState::Done { host: host.unwrap_or_default(), result: result.unwrap_or_default(), component },
        _ => JobState::Failed { error: error.unwrap_or_else(|| format!("unknown job state `{state}`")) },
    }
}
