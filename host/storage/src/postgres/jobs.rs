//! PostgreSQL: `JobQueue`. A claim skips rows other hosts have locked
//! (`FOR UPDATE SKIP LOCKED`): hosts claiming at once each get a different
//! job, and none waits for another's transaction.
use super::{PostgresStorage, lock_key};
use crate::StorageError;
use crate::components::TRANSFER_TIMEOUT;
use crate::jobs::{
    JOB_RETENTION_SECS, JobClaim, JobQueue, JobState, MAX_JOB_ATTEMPTS, MAX_OPEN_JOBS, check_enqueue, check_finish,
    failed_error, job_state, open_jobs_refused,
};

/// Migration 2.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS evolution_jobs (
    id          BIGSERIAL PRIMARY KEY,
    run         TEXT NOT NULL,
    payload     TEXT NOT NULL,
    state       TEXT NOT NULL,
    host        TEXT,
    attempts    BIGINT NOT NULL DEFAULT 0,
    lease_until BIGINT,
    result      TEXT,
    component   BYTEA,
    error       TEXT,
    created     BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS evolution_jobs_open ON evolution_jobs (state, id);
CREATE INDEX IF NOT EXISTS evolution_jobs_run ON evolution_jobs (run);
";

impl JobQueue for PostgresStorage {
    fn job_enqueue(&self, run: &str, payload: &str, now: i64) -> Result<i64, StorageError> {
        check_enqueue(run, payload)?;
        // Payloads are JSON: a NUL arrives escaped, never as a byte TEXT refuses.
        let (run, payload) = (run.to_string(), payload.to_string());
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            // The open count is exact across hosts: enqueues take turns.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key("evolution-jobs", "enqueue")]).await?;
            tx.execute("DELETE FROM evolution_jobs WHERE created < $1", &[&(now - JOB_RETENTION_SECS)]).await?;
            let open: i64 =
                tx.query_one("SELECT count(*) FROM evolution_jobs WHERE state IN ('queued', 'running')", &[]).await?.get(0);
            if open >= MAX_OPEN_JOBS {
                return Err(open_jobs_refused(open));
            }
            let id: i64 = tx
                .query_one(
                    "INSERT INTO evolution_jobs (run, payload, state, created) VALUES ($1, $2, 'queued', $3) RETURNING id",
                    &[&run, &payload, &now],
                )
                .await?
                .get(0);
            tx.commit().await?;
            Ok(id)
        })
    }

    fn job_claim(&self, host: &str, run: Option<&str>, ttl_secs: i64, now: i64) -> Result<Option<JobClaim>, StorageError> {
        let (host, run) = (host.to_string(), run.map(str::to_string));
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            tx.execute(
                "UPDATE evolution_jobs SET state = 'failed', error = $1
                 WHERE state = 'running' AND lease_until <= $2 AND attempts >= $3",
                &[&failed_error(), &now, &MAX_JOB_ATTEMPTS],
            )
            .await?;
            let row = tx
                .query_opt(
                    "UPDATE evolution_jobs SET state = 'running', host = $1, lease_until = $2 + $3, attempts = attempts + 1
                     WHERE id = (SELECT id FROM evolution_jobs
                                 WHERE (state = 'queued' OR (state = 'running' AND lease_until <= $2))
                                   AND ($4::TEXT IS NULL OR run = $4)
                                 ORDER BY id LIMIT 1
                                 FOR UPDATE SKIP LOCKED)
                     RETURNING id, run, payload, attempts",
                    &[&host, &now, &ttl_secs, &run],
                )
                .await?;
            tx.commit().await?;
            Ok(row.map(|r| JobClaim { id: r.get(0), run: r.get(1), payload: r.get(2), attempt: r.get(3) }))
        })
    }

    fn job_renew(&self, claim: &JobClaim, host: &str, ttl_secs: i64, now: i64) -> Result<bool, StorageError> {
        let (id, attempt, host) = (claim.id, claim.attempt, host.to_string());
        self.run(move |client| async move {
            let changed = client
                .execute(
                    "UPDATE evolution_jobs SET lease_until = $1
                     WHERE id = $2 AND state = 'running' AND host = $3 AND attempts = $4",
                    &[&(now + ttl_secs), &id, &host, &attempt],
                )
                .await?;
            Ok(changed > 0)
        })
    }

    fn job_finish(&self, claim: &JobClaim, host: &str, result: &str, component: Option<&[u8]>) -> Result<bool, StorageError> {
        check_finish(host, result, component)?;
        let (id, attempt, host, result) = (claim.id, claim.attempt, host.to_string(), result.to_string());
        let component = component.map(<[u8]>::to_vec);
        // A component crosses the network: the bound of a transfer.
        self.run_for(TRANSFER_TIMEOUT, move |client| async move {
            let changed = client
                .execute(
                    "UPDATE evolution_jobs SET state = 'done', result = $1, component = $2, lease_until = NULL
                     WHERE id = $3 AND state = 'running' AND host = $4 AND attempts = $5",
                    &[&result, &component, &id, &host, &attempt],
                )
                .await?;
            Ok(changed > 0)
        })
    }

    fn job_state(&self, id: i64) -> Result<Option<JobState>, StorageError> {
        self.run_for(TRANSFER_TIMEOUT, move |client| async move {
            let row = client
                .query_opt("SELECT state, host, lease_until, result, component, error FROM evolution_jobs WHERE id = $1", &[&id])
                .await?;
            Ok(row.map(|r| job_state(r.get::<_, &str>(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))))
        })
    }

    fn job_delete_run(&self, run: &str) -> Result<u64, StorageError> {
        let run = run.to_string();
        self.run(move |client| async move { Ok(client.execute("DELETE FROM evolution_jobs WHERE run = $1", &[&run]).await?) })
    }
}
