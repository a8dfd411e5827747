//! Candidate work spread across hosts (`agentkernel_storage::jobs`): with
//! a shared backend a run puts each candidate's build and benchmark in the
//! job queue; any host that opted in (`[evolution] take_jobs`) takes one
//! at a time, builds it in its own sandbox under the package name the
//! owner chose (so every host builds the same bytes), benchmarks it with
//! the run's seed and suite, and writes back the component, its results
//! and the engine hash its fuel was measured under. The owner takes what
//! nobody took within [`OWNER_GRACE`], reads results in candidate order,
//! and judges them itself: selection and repairs stay with the owner, and
//! a result measured under another engine is measured again here.
//!
//! Bounds: one job at a time per host; a job's lease ([`JOB_LEASE_SECS`])
//! is renewed while it runs and a holder whose renewal fails stops; a
//! run's owner waits at most a deadline per wave (every attempt's build
//! timeout and benchmark) and then does the rest itself; the queue's
//! own bounds (payload, result, open jobs, attempts) are the store's.
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::bench::{Bench, Measured};
use crate::report::BuildReport;
use crate::sandbox_build::{self, BuildOutcome, BuildSettings};
use crate::source_check::CandidateSource;
use crate::suite::Suite;
use agentkernel_core::config::HostConfig;
use agentkernel_llm::now_unix;
use agentkernel_storage::Backend;
use agentkernel_storage::jobs::{JobClaim, JobState};

/// A claim's lease; renewed every third of it while the work runs.
pub const JOB_LEASE_SECS: i64 = 60;
/// How long an idle host waits before it looks for a job again.
pub const IDLE_POLL: Duration = Duration::from_secs(1);
/// How long a run's jobs are left to other hosts before the owner takes them.
pub const OWNER_GRACE: Duration = Duration::from_secs(2);
const OWNER_POLL: Duration = Duration::from_millis(200);
/// A store call's bound; one that carries a component (up to 64 MiB) gets
/// the component store's, as publishes and fetches do.
const STORE_CALL: Duration = agentkernel_storage::blocking::DEFAULT_TIMEOUT;
const TRANSFER: Duration = Duration::from_secs(agentkernel_storage::components::TRANSFER_TIMEOUT.as_secs() + 2);

/// One candidate's build and benchmark, as the queue carries it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CandidateJob {
    pub agent: String,
    /// The crate name the owner chose (`c-` and 20 hex digits): every host
    /// builds the same source under the same name.
    pub package: String,
    pub source: CandidateSource,
    /// The suite file's text, held-out cases included (hosts sharing a
    /// backend trust each other; candidates never see a job).
    pub suite: String,
    pub run_seed: u64,
    /// Runs per case the owner asked for; a host takes at most
    /// [`MAX_JOB_REPEATS`] (fuel needs one run: spread suites are fuel suites).
    pub repeats: u32,
    /// What the benchmark's outcome depends on besides the engine: the
    /// owner's `[limits]` and the agent's policy section, hashed
    /// ([`policy_hash`]). A host whose own differs does not measure.
    pub policy: String,
}

/// The most runs per case a job may ask of a host.
pub const MAX_JOB_REPEATS: u32 = 10;
/// How long a host that could not do a job (its sandbox, its SDK, its
/// policy) waits before it claims another, so that it does not claim and
/// hand back every job in the queue.
pub const UNAVAILABLE_BACKOFF: Duration = Duration::from_secs(30);

/// The hash of what, besides the engine, decides how a candidate of
/// `agent` fares in a benchmark on this host: its grants and limits.
pub fn policy_hash(config: &HostConfig, agent: &str) -> String {
    let policy = serde_json::json!({"limits": config.limits, "agent": config.agents.get(agent)});
    agentkernel_runtime::content_hash(policy.to_string().as_bytes())
}

/// What a host did with a job.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CandidateWork {
    pub host: String,
    pub build: BuildReport,
    /// The benchmark of the built component (none when it did not build).
    pub measured: Option<Measured>,
    /// Why the host could not do the job at all (its sandbox, its disk):
    /// the owner does it itself.
    pub unavailable: Option<String>,
}

/// This process's name in the queue: the machine and the process.
pub fn worker_name() -> String {
    format!("{}/{}", agentkernel_core::follow::machine_name(), std::process::id())
}

/// Whether a run of this host spreads its candidates through the queue.
pub fn spreads(config: &HostConfig) -> bool {
    config.evolution.spread.unwrap_or(config.storage.url.is_some())
}

/// A package name a job may carry (it names a directory here).
fn valid_package(package: &str) -> bool {
    package.len() == 22 && package.starts_with("c-") && package[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Builds and benchmarks `job` on this host.
pub async fn perform(config: &HostConfig, job: &CandidateJob, host: &str) -> (CandidateWork, Option<Vec<u8>>) {
    let mut work = CandidateWork { host: host.to_string(), ..Default::default() };
    let suite = match Suite::parse(&job.suite) {
        Ok(s) => s,
        Err(e) => {
            work.unavailable = Some(format!("the job's suite: {e}"));
            return (work, None);
        }
    };
    if job.policy != policy_hash(config, &job.agent) {
        work.unavailable = Some(format!("`{}`'s grants or limits differ on this host", job.agent));
        return (work, None);
    }
    if !valid_package(&job.package) {
        work.unavailable = Some(format!("`{}` is not a candidate package name", job.package));
        return (work, None);
    }
    let data_dir = &config.host.data_dir;
    let settings = match BuildSettings::resolve(&config.evolution, data_dir) {
        Ok(s) => s,
        Err(e) => {
            work.unavailable = Some(e.to_string());
            return (work, None);
        }
    };
    let work_dir = crate::build_dir(data_dir, &job.package[2..]);
    let started = Instant::now();
    let result = sandbox_build::build(&settings, &job.source, &work_dir, &job.package).await;
    work.build.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let built = match BuildOutcome::from(result) {
        BuildOutcome::Built(built) => built,
        BuildOutcome::Failed { kind, errors, violations } => {
            work.build.kind = Some(kind.into());
            work.build.errors = errors;
            work.build.violations = violations;
            return (work, None);
        }
        BuildOutcome::Unavailable(e) => {
            work.unavailable = Some(e.to_string());
            return (work, None);
        }
    };
    work.build.ok = true;
    match Bench::new(config, &job.agent, &suite.limits, job.run_seed).await {
        Ok(bench) => {
            let repeats = job.repeats.clamp(1, MAX_JOB_REPEATS);
            let mut measured = bench.measure(&built.component, &suite.cases, repeats).await;
            measured.host = Some(host.to_string());
            work.measured = Some(measured);
        }
        Err(e) => work.unavailable = Some(e.to_string()),
    }
    (work, Some(built.component))
}

/// A store call off the async threads, under `timeout` (a PostgreSQL
/// round trip blocks; a store that hangs must not hold a run forever).
async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Backend>,
    timeout: Duration,
    call: impl FnOnce(&dyn Backend) -> Result<T, agentkernel_storage::StorageError> + Send + 'static,
) -> Result<T, String> {
    let store = store.clone();
    agentkernel_storage::blocking::call(timeout, move || call(store.as_ref())).await.map_err(|e| e.to_string())
}

/// Does the job `claim` holds and writes its result back, renewing the
/// lease meanwhile; stops (writing nothing) when the lease is lost. Says
/// why when this host could not do the job at all.
pub async fn perform_claim(config: &HostConfig, store: &Arc<dyn Backend>, host: &str, claim: JobClaim) -> Option<String> {
    let job: Result<CandidateJob, _> = serde_json::from_str(&claim.payload);
    let renewing = {
        let (store, claim, host) = (store.clone(), claim.clone(), host.to_string());
        async move {
            // A renewal that fails is tried again while the lease lasts:
            // one blip of the store does not throw the work away.
            let job_id = claim.id;
            let mut renewed = Instant::now();
            let lease = Duration::from_secs(JOB_LEASE_SECS as u64);
            loop {
                tokio::time::sleep(lease / 3).await;
                let (claim, host) = (claim.clone(), host.clone());
                let attempt = Instant::now();
                match blocking(&store, STORE_CALL, move |s| s.job_renew(&claim, &host, JOB_LEASE_SECS, now_unix())).await {
                    Ok(true) => renewed = attempt,
                    Ok(false) => return "the job was taken back (its lease ran out, or its run ended)".to_string(),
                    Err(e) if renewed.elapsed() + lease / 3 >= lease => return format!("renewing the job's lease: {e}"),
                    Err(e) => tracing::warn!(job = job_id, "renewing a candidate job's lease (trying again): {e}"),
                }
            }
        }
    };
    let doing = async {
        match &job {
            Ok(job) => perform(config, job, host).await,
            Err(e) => (CandidateWork { host: host.into(), unavailable: Some(format!("unreadable job: {e}")), ..Default::default() }, None),
        }
    };
    let (work, component) = tokio::select! {
        done = doing => done,
        why = renewing => {
            tracing::warn!(job = claim.id, run = %claim.run, "stopped a candidate job: {why}");
            return None;
        }
    };
    let unavailable = work.unavailable.clone();
    let result = serde_json::to_string(&work).unwrap_or_default();
    let (id, run, host) = (claim.id, claim.run.clone(), host.to_string());
    match blocking(store, TRANSFER, move |s| s.job_finish(&claim, &host, &result, component.as_deref())).await {
        Ok(true) => tracing::info!(job = id, %run, "finished a candidate job"),
        Ok(false) => tracing::warn!(job = id, %run, "a candidate job was taken back before it finished: its result is dropped"),
        Err(e) => tracing::warn!(job = id, %run, "writing a candidate job's result: {e}"),
    }
    unavailable
}

/// `serve` with `[evolution] take_jobs`: takes other hosts' candidate
/// jobs, one at a time, until dropped (abort the task).
/// A host that cannot build candidates (no SDK, no toolchain) or would
/// build them unsandboxed takes no jobs at all, and says so.
pub fn spawn_worker(config: Arc<HostConfig>, store: Arc<dyn Backend>) -> tokio::task::JoinHandle<()> {
    let host = worker_name();
    tokio::spawn(async move {
        match BuildSettings::resolve(&config.evolution, &config.host.data_dir) {
            Ok(settings) if settings.sandbox == crate::SandboxMode::None => {
                tracing::error!("`take_jobs` is on but `[evolution] sandbox = \"none\"`: other hosts' candidates are built only in the bwrap sandbox; taking no jobs");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!("`take_jobs` is on but this host cannot build candidates ({e}); taking no jobs");
                return;
            }
        }
        tracing::info!(%host, "taking candidate jobs from the shared queue");
        loop {
            let name = host.clone();
            match blocking(&store, STORE_CALL, move |s| s.job_claim(&name, None, JOB_LEASE_SECS, now_unix())).await {
                Ok(Some(claim)) => {
                    // Its own task: a panic in one job does not end the worker.
                    let (config, store, host) = (config.clone(), store.clone(), host.clone());
                    let job = tokio::spawn(async move { perform_claim(&config, &store, &host, claim).await });
                    match job.await {
                        Ok(None) => {}
                        Ok(Some(why)) => {
                            tracing::warn!("could not do a candidate job ({why}); claiming again in {} s", UNAVAILABLE_BACKOFF.as_secs());
                            tokio::time::sleep(UNAVAILABLE_BACKOFF).await;
                        }
                        Err(e) => tracing::error!("a candidate job failed: {e}"),
                    }
                }
                Ok(None) => tokio::time::sleep(IDLE_POLL).await,
                Err(e) => {
                    tracing::warn!("claiming a candidate job: {e}");
                    tokio::time::sleep(IDLE_POLL * 5).await;
                }
            }
        }
    })
}

/// A run's side of the queue: enqueues its jobs, waits for them (doing
/// what nobody took), and deletes them when dropped.
pub struct RunJobs {
    store: Arc<dyn Backend>,
    config: Arc<HostConfig>,
    run: String,
    owner: String,
    closed: bool,
}

impl RunJobs {
    pub fn new(store: Arc<dyn Backend>, config: Arc<HostConfig>, run: &str) -> RunJobs {
        RunJobs { store, config, run: run.to_string(), owner: worker_name(), closed: false }
    }

    pub async fn enqueue(&self, job: &CandidateJob) -> Result<i64, String> {
        let payload = serde_json::to_string(job).map_err(|e| e.to_string())?;
        let run = self.run.clone();
        blocking(&self.store, STORE_CALL, move |s| s.job_enqueue(&run, &payload, now_unix())).await
    }

    /// Waits for every job of `ids`; each one's work and component, or why
    /// none came (the owner then does it itself). Jobs nobody took within
    /// [`OWNER_GRACE`] the owner does here meanwhile.
    pub async fn wait(&self, ids: &[i64], deadline: Duration) -> Vec<Result<(CandidateWork, Option<Vec<u8>>), String>> {
        let started = Instant::now();
        let mut results: Vec<Option<Result<(CandidateWork, Option<Vec<u8>>), String>>> = vec![None; ids.len()];
        loop {
            for (slot, id) in results.iter_mut().zip(ids) {
                if slot.is_some() {
                    continue;
                }
                let id = *id;
                *slot = match blocking(&self.store, TRANSFER, move |s| s.job_state(id)).await {
                    Ok(Some(JobState::Done { result, component, .. })) => Some(
                        serde_json::from_str::<CandidateWork>(&result)
                            .map(|w| (w, component))
                            .map_err(|e| format!("job {id}'s result is unreadable: {e}")),
                    ),
                    Ok(Some(JobState::Failed { error })) => Some(Err(format!("job {id}: {error}"))),
                    Ok(None) => Some(Err(format!("job {id} was deleted"))),
                    Ok(Some(JobState::Queued | JobState::Running { .. })) => None,
                    Err(e) => {
                        // Asked again until the deadline.
                        tracing::warn!(job = id, "reading a candidate job: {e}");
                        None
                    }
                };
            }
            if results.iter().all(Option::is_some) {
                break;
            }
            if started.elapsed() > deadline {
                break;
            }
            if started.elapsed() >= OWNER_GRACE {
                let (owner, run) = (self.owner.clone(), self.run.clone());
                match blocking(&self.store, STORE_CALL, move |s| s.job_claim(&owner, Some(&run), JOB_LEASE_SECS, now_unix())).await {
                    Ok(Some(claim)) => {
                        let _ = perform_claim(&self.config, &self.store, &self.owner, claim).await;
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(run = %self.run, "claiming the run's own job: {e}"),
                }
            }
            tokio::time::sleep(OWNER_POLL).await;
        }
        let waited = started.elapsed().as_secs();
        // What was read is here; what was not is done by the owner now.
        // Either way the wave's jobs are over: deleting them keeps a late
        // one from being claimed (by the owner, ahead of the next wave's)
        // and a done one's component from staying in the store.
        self.clear().await;
        results.into_iter().map(|r| r.unwrap_or_else(|| Err(format!("no host finished it within {waited} s")))).collect()
    }
}

impl RunJobs {
    /// Deletes the run's jobs (a worker still on one finds it gone at its
    /// next renewal and stops); also what a resumed run's earlier process left.
    pub async fn clear(&self) {
        let run = self.run.clone();
        if let Err(e) = blocking(&self.store, STORE_CALL, move |s| s.job_delete_run(&run)).await {
            tracing::warn!(run = %self.run, "deleting the run's candidate jobs: {e}");
        }
    }

    pub async fn close(mut self) {
        self.closed = true;
        self.clear().await;
    }
}

impl Drop for RunJobs {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // A run that ended early (an error, a cancelled future).
        // Off the async threads: a PostgreSQL round trip blocks.
        let (store, run) = (self.store.clone(), self.run.clone());
        std::thread::spawn(move || {
            if let Err(e) = store.job_delete_run(&run) {
                tracing::warn!(%run, "deleting the run's candidate jobs: {e}");
            }
        });
    }
}
