//! Installing versions into the agents directory, rollback, and the
//! post-swap watch that rolls back automatically when the live error rate
//! gets worse.
//!
//! Every installed component is also kept under the data directory
//! (`evolve/components/HASH.wasm`), so any earlier version can come back.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agentkernel_core::config::HostConfig;
use agentkernel_core::registry::Registry;
use agentkernel_storage::Backend;
use agentkernel_storage::evolution::{EvolutionStore, InstallRecord};

#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    NotFound(String),
    /// The registry did not load the installed version; the previous
    /// file was put back.
    #[error("{0}")]
    NotLoaded(String),
    #[error(transparent)]
    Storage(#[from] agentkernel_storage::StorageError),
}

/// Where kept components live.
pub fn components_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("evolve").join("components")
}

/// Keeps `bytes` as version `hash` (idempotent).
pub fn keep_component(data_dir: &Path, hash: &str, bytes: &[u8]) -> Result<PathBuf, SwapError> {
    let dir = components_dir(data_dir);
    std::fs::create_dir_all(&dir).map_err(|e| SwapError::Io(format!("{}: {e}", dir.display())))?;
    let path = dir.join(format!("{hash}.wasm"));
    if !path.exists() {
        let tmp = dir.join(format!(".{hash}.tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(|e| SwapError::Io(format!("{}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(|e| SwapError::Io(format!("{}: {e}", path.display())))?;
    }
    Ok(path)
}

/// The file in `agents_dir` that serves `agent`: the one the registry
/// loaded it from, else `AGENT.wasm`.
pub fn agent_file(agents_dir: &Path, agent: &str, registry: Option<&Registry>) -> PathBuf {
    registry
        .and_then(|r| r.get(agent))
        .and_then(|a| a.source.clone())
        .filter(|p| p.parent().is_some_and(|d| same_dir(d, agents_dir)))
        .unwrap_or_else(|| agents_dir.join(format!("{agent}.wasm")))
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Installs kept version `hash` of `agent` atomically (temporary file and
/// rename, so the registry never sees a half-written component) and,
/// given the registry, loads it at once and checks that the registry now
/// serves `hash`. If it does not (the component fails to load there), the
/// file it replaced is put back and reloaded, nothing is recorded, and the
/// result is [`SwapError::NotLoaded`]. A successful install is recorded
/// and published as the agent's latest placement, so every host sharing
/// the store serves it (a rollback to an older version included). A
/// version not kept here (installed on another host) is fetched from the
/// store's components.
pub async fn install(
    data_dir: &Path,
    agents_dir: &Path,
    agent: &str,
    hash: &str,
    reason: &str,
    store: &dyn Backend,
    registry: Option<&Registry>,
) -> Result<PathBuf, SwapError> {
    let kept = components_dir(data_dir).join(format!("{hash}.wasm"));
    if !kept.exists() {
        match store.component_bytes(hash)? {
            Some(bytes) if agentkernel_storage::components::content_hash(&bytes) == hash => {
                keep_component(data_dir, hash, &bytes)?;
            }
            _ => return Err(SwapError::NotFound(format!("version {hash} of `{agent}` is not kept in {}", kept.display()))),
        }
    }
    // No follower judges what this host serves while the swap is half-done.
    let _swapping = agentkernel_core::follow::swap_lock().lock().await;
    let dest = agent_file(agents_dir, agent, registry);
    let file_name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("agent.wasm").to_string();
    let replaced = std::fs::read(&dest).ok();
    let dest = agentkernel_core::scaffold::install_component(&kept, agents_dir, &file_name).map_err(|e| SwapError::Io(e.to_string()))?;
    if let Some(r) = registry {
        r.load_path(&dest).await;
        let serving = r.get(agent).map(|a| a.hash.clone());
        if serving.as_deref() != Some(hash) {
            let why = r
                .files()
                .into_iter()
                .find(|f| f.path == dest)
                .and_then(|f| f.error)
                .unwrap_or_else(|| format!("it serves {}", serving.as_deref().map(|h| &h[..h.len().min(12)]).unwrap_or("nothing")));
            let restored = restore(&dest, replaced.as_deref());
            r.load_path(&dest).await;
            return Err(SwapError::NotLoaded(format!(
                "the registry did not load version {} of `{agent}` from {} ({why}); {}",
                &hash[..hash.len().min(12)],
                dest.display(),
                match restored {
                    Ok(()) if replaced.is_some() => "the previous file was restored".to_string(),
                    Ok(()) => "the file was removed".to_string(),
                    Err(e) => format!("restoring the previous file failed: {e}"),
                }
            )));
        }
    }
    store.record_install(&InstallRecord { agent: agent.into(), hash: hash.into(), reason: reason.into(), at: agentkernel_llm::now_unix() })?;
    let bytes = std::fs::read(&kept).map_err(|e| SwapError::Io(format!("{}: {e}", kept.display())))?;
    let file_name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("agent.wasm").to_string();
    let host = agentkernel_core::follow::this_host();
    store.publish_component(agent, hash, &file_name, &bytes, &host, agentkernel_llm::now_unix()).map_err(|e| {
        SwapError::Io(format!(
            "installed version {} of `{agent}` here but could not publish it to the other hosts ({e}); \
             with a shared store this host's follower puts the latest placement back",
            &hash[..hash.len().min(12)]
        ))
    })?;
    Ok(dest)
}

/// Puts `previous` back at `dest` atomically, or removes `dest` if there was nothing.
fn restore(dest: &Path, previous: Option<&[u8]>) -> std::io::Result<()> {
    match previous {
        Some(bytes) => {
            let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("agent.wasm");
            let tmp = dest.with_file_name(format!(".{name}.restore{}", std::process::id()));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, dest)
        }
        None => std::fs::remove_file(dest),
    }
}

/// The version a rollback installs: `to` (a hash or unique prefix of one
/// of the agent's versions), else the one installed before the current.
pub fn rollback_target(store: &dyn EvolutionStore, agent: &str, current: Option<&str>, to: Option<&str>) -> Result<String, SwapError> {
    if let Some(prefix) = to {
        let matches: Vec<String> =
            store.versions(agent)?.into_iter().map(|v| v.hash).filter(|h| h.starts_with(prefix)).collect();
        return match matches.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(SwapError::NotFound(format!("`{agent}` has no version {prefix} (see `agentkernel versions {agent}`)"))),
            _ => Err(SwapError::NotFound(format!("version prefix {prefix} is ambiguous ({} matches)", matches.len()))),
        };
    }
    let installs = store.installs(agent)?;
    let current = current.map(str::to_string).or_else(|| installs.last().map(|i| i.hash.clone()));
    installs
        .iter()
        .rev()
        .map(|i| &i.hash)
        .find(|h| Some(*h) != current.as_ref())
        .cloned()
        .ok_or_else(|| SwapError::NotFound(format!("`{agent}` has no earlier installed version to roll back to")))
}

/// Settings of the post-swap watch (`[evolution]`).
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// Calls observed after the swap before judging.
    pub calls: u64,
    /// Roll back when the error rate exceeds the previous one by more than this.
    pub tolerance: f64,
    /// Give up watching (and keep the new version) after this long.
    pub max_wait: Duration,
}

/// What the watch decided.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum WatchOutcome {
    Kept { error_rate: f64, before: f64 },
    RolledBack { error_rate: f64, before: f64, to: String },
    /// Replayed on the previous version, sampled live requests got other
    /// answers: the previous version was reinstalled.
    AnswersDiffered { sampled: usize, differed: usize, to: String },
    /// The error rate rose but reinstalling the previous version failed:
    /// the swapped-in version still serves.
    RollbackFailed { error_rate: f64, before: f64, to: String, error: String },
    /// Another version replaced the watched one (a newer swap or a manual
    /// rollback): it is not this watch's to judge or undo.
    Superseded { current: Option<String> },
    /// Not enough calls arrived in time.
    Inconclusive { calls: u64 },
}

/// Watches the next `settings.calls` live calls of `agent` after version
/// `swapped_in` replaced `previous`, and reinstalls `previous` if their
/// error rate is worse than before the swap, or if the requests they
/// carried (a sample, see [`agentkernel_runtime::sampling`]) get other answers from
/// `previous` than from `swapped_in`, both replayed in benchmark instances
/// with doubled capabilities (the live answers depend on live memory). `before` is `(calls,
/// errors)` from the metrics at swap time. The watch ends without
/// touching anything as soon as the registry serves another version.
#[allow(clippy::too_many_arguments)]
pub async fn watch_after_swap(
    registry: Arc<Registry>,
    store: Arc<dyn Backend>,
    config: Arc<HostConfig>,
    agent: String,
    previous: String,
    swapped_in: String,
    before: (u64, u64),
    settings: WatchSettings,
) -> WatchOutcome {
    let (data_dir, agents_dir) = (config.host.data_dir.clone(), config.host.agents_dir.clone());
    let metrics = registry.runtime().metrics().clone();
    let samples = registry.runtime().samples().clone();
    let arming = samples.arm(&agent);
    // Disarmed however the watch ends (never a newer watch's arming).
    struct Disarm(Arc<agentkernel_runtime::sampling::CallSamples>, String, agentkernel_runtime::sampling::Arming);
    impl Drop for Disarm {
        fn drop(&mut self) {
            self.0.disarm(&self.1, self.2);
        }
    }
    let _disarm = Disarm(samples.clone(), agent.clone(), arming);
    let rate_before = if before.0 == 0 { 0.0 } else { before.1 as f64 / before.0 as f64 };
    let started = std::time::Instant::now();
    let current = || registry.get(&agent).map(|a| a.hash.clone());
    loop {
        if current().as_deref() != Some(swapped_in.as_str()) {
            tracing::info!(%agent, "post-swap watch ended: another version replaced {swapped_in}");
            return WatchOutcome::Superseded { current: current() };
        }
        let (total, errors) = metrics.agent_call_counts(&agent);
        let (calls, failed) = (total.saturating_sub(before.0), errors.saturating_sub(before.1));
        if calls >= settings.calls.max(1) {
            let rate = failed as f64 / calls as f64;
            if rate > rate_before + settings.tolerance {
                tracing::warn!(%agent, rate, rate_before, "error rate rose after the swap: rolling back to {previous}");
                return match install(&data_dir, &agents_dir, &agent, &previous, "auto-rollback", &*store, Some(&registry)).await {
                    Ok(_) => WatchOutcome::RolledBack { error_rate: rate, before: rate_before, to: previous },
                    Err(e) => {
                        tracing::error!(%agent, "automatic rollback failed: {e}");
                        WatchOutcome::RollbackFailed { error_rate: rate, before: rate_before, to: previous, error: e.to_string() }
                    }
                };
            }
            // The error rate held: do the answers?
            let live = samples.disarm(&agent, arming);
            if let Some(report) = replay(&config, &agent, &previous, &swapped_in, &live).await {
                if !report.disagreements.is_empty() {
                    tracing::warn!(%agent, differed = report.disagreements.len(), "answers changed after the swap: rolling back to {previous}");
                    let (sampled, differed) = (report.sampled, report.disagreements.len());
                    return match install(&data_dir, &agents_dir, &agent, &previous, "auto-rollback", &*store, Some(&registry)).await {
                        Ok(_) => WatchOutcome::AnswersDiffered { sampled, differed, to: previous },
                        Err(e) => WatchOutcome::RollbackFailed { error_rate: rate, before: rate_before, to: previous, error: e.to_string() },
                    };
                }
            }
            tracing::info!(%agent, rate, rate_before, "post-swap watch passed");
            return WatchOutcome::Kept { error_rate: rate, before: rate_before };
        }
        if started.elapsed() > settings.max_wait {
            return WatchOutcome::Inconclusive { calls };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The previous version answers the sampled live requests in a benchmark
/// runtime (doubled capabilities, one seeded environment). An agent that
/// imports no capability with state of its own (only `log`) answers from
/// the request alone, so its live answers are compared with the previous
/// version's directly: a version that behaves one way when it believes it
/// is judged and another live is caught here. Otherwise (its live answers
/// depend on live memory, models or other agents) the new version is
/// replayed too and the two replays compared. `None` when there is nothing
/// to compare or a version cannot be loaded (the error rate still decides).
async fn replay(
    config: &HostConfig,
    agent: &str,
    previous: &str,
    swapped_in: &str,
    live: &[agentkernel_runtime::sampling::Sample],
) -> Option<super::shadow::ShadowReport> {
    if live.is_empty() {
        return None;
    }
    let limits: super::suite::BenchLimits = toml::from_str("").ok()?;
    let seed = super::environment::BenchEnvironment::random_seed();
    let data_dir = &config.host.data_dir;
    let bench = match super::bench::Bench::new(config, agent, &limits, seed).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(%agent, "post-swap watch cannot compare answers: {e}");
            return None;
        }
    };
    let load = async |hash: &str| {
        let bytes = std::fs::read(components_dir(data_dir).join(format!("{hash}.wasm"))).ok()?;
        bench.load(&bytes).await.ok()
    };
    let (Some(before), Some(after)) = (load(previous).await, load(swapped_in).await) else {
        tracing::warn!(%agent, "post-swap watch cannot compare answers: a version is not kept or does not load");
        return None;
    };
    let stateless = after.imports.capabilities.iter().all(|c| *c == agentkernel_runtime::policy::Capability::LOG);
    let requests: Vec<String> = live.iter().map(|s| s.request.clone()).collect();
    if !stateless {
        let no_suite = super::bench::BenchResult { cases: vec![], passed: 0, total_fuel: 0, total_wall_ms: vec![], duration_ms: 0.0 };
        let suite = super::shadow::SuiteResults { cases: &[], incumbent: &no_suite, candidate: None };
        return Some(super::shadow::compare(&bench, &before, &after, &requests, &suite).await);
    }
    let mut report = super::shadow::ShadowReport::default();
    for (i, sample) in live.iter().enumerate() {
        let expected = bench.answer(&before, i, &sample.request).await;
        report.sampled += 1;
        if expected == sample.answer {
            report.agreed += 1;
        } else {
            report.disagreements.push(super::shadow::Disagreement::new(&sample.request, &expected, &sample.answer, None));
        }
    }
    Some(report)
}
