//! Components follow the store: with a backend several hosts share, every
//! install anywhere (a drop-in file, an evolution's swap, a rollback) is a
//! placement in the store ([`agentkernel_storage::components`]), and each
//! host's follower brings its agents directory in step with the latest
//! placement of every agent.
//!
//! Each tick (woken by a PostgreSQL notification, or every
//! [`FollowSettings::interval`] whatever happens) the follower
//! - reads the placements published since the last tick (at most
//!   [`FollowSettings::placements_per_tick`]; when that many were read,
//!   more are waiting and the next tick starts at once, and nothing is
//!   installed until the follower has caught up);
//! - for each agent this host serves in a version that was never placed
//!   (a file dropped into this host's directory), publishes it;
//! - for each agent whose latest placement is not what this host serves,
//!   fetches the bytes, checks their hash, writes them into the agents
//!   directory (temporary file and rename), has the registry load them and
//!   checks it now serves that version. If not, the previous file is put
//!   back, the previous version keeps serving, and the failure is
//!   reported; that placement is not retried until another is published;
//! - reports what it serves per agent (when it changes, and every
//!   [`FollowSettings::report_every`]).
//!
//! No new install starts once a tick has run [`FollowSettings::tick_budget`];
//! the rest wait for the next tick. Installs here and in the evolution
//! engine take [`swap_lock`], so a follower never judges a swap half-done.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use agentkernel_storage::blocking;
use agentkernel_storage::components::{HostReport, Placement, TRANSFER_TIMEOUT, content_hash, valid_file_name};
use agentkernel_storage::{Backend, StorageError};

use crate::host::Host;
use crate::registry::Registry;

/// How a follower paces itself.
#[derive(Debug, Clone)]
pub struct FollowSettings {
    /// The periodic check, when no notification wakes the follower first.
    pub interval: Duration,
    /// Placements read per tick.
    pub placements_per_tick: u32,
    /// No install starts after a tick has run this long.
    pub tick_budget: Duration,
    /// An unchanged report is renewed this often.
    pub report_every: Duration,
    /// How often the registry (in memory) is looked at for a version
    /// loaded here (a drop-in file), which starts a tick at once.
    pub local_check: Duration,
}

impl Default for FollowSettings {
    fn default() -> Self {
        FollowSettings {
            interval: Duration::from_secs(2),
            placements_per_tick: 256,
            tick_budget: Duration::from_secs(30),
            report_every: Duration::from_secs(60),
            local_check: Duration::from_millis(200),
        }
    }
}

/// Serialises component installs in this process: the follower's, and
/// the evolution engine's (swap, rollback).
pub fn swap_lock() -> &'static tokio::sync::Mutex<()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    &LOCK
}

static HOST_NAME: OnceLock<String> = OnceLock::new();

/// This machine's name: `HOSTNAME`, else `/etc/hostname`, else `host`.
pub fn machine_name() -> String {
    let name = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    name.chars().take(63).collect()
}

/// The name this host reports under: `machine:port` (stable across
/// restarts, distinct for several hosts on one machine).
pub fn host_name(listen: std::net::SocketAddr) -> String {
    format!("{}:{}", machine_name(), listen.port())
}

/// The name publishes from this process carry: the serving host's name
/// once its follower started, else `machine (cli)`.
pub fn this_host() -> String {
    HOST_NAME.get().cloned().unwrap_or_else(|| format!("{} (cli)", machine_name()))
}

/// Publishes version `hash` of `agent` (its bytes and the file name it was
/// installed under) as the agent's latest placement.
pub async fn publish(store: Arc<dyn Backend>, agent: &str, hash: &str, file_name: &str, bytes: Vec<u8>) -> Result<i64, StorageError> {
    let (agent, hash, file_name, host) = (agent.to_string(), hash.to_string(), file_name.to_string(), this_host());
    blocking::call(TRANSFER_TIMEOUT + Duration::from_secs(2), move || {
        store.publish_component(&agent, &hash, &file_name, &bytes, &host, now())
    })
    .await
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TickReport {
    /// Placements read.
    pub read: usize,
    /// False when a full page was read: more are waiting.
    pub caught_up: bool,
    /// Agents installed from the store.
    pub installed: Vec<String>,
    /// Agents published from this host's directory.
    pub published: Vec<String>,
    /// Agents whose latest placement failed to install, with why.
    pub failed: Vec<(String, String)>,
    /// Agents left for the next tick (the tick's time was up).
    pub deferred: usize,
}

/// One host's follower. [`spawn`] runs it; tests drive [`Follower::tick`].
pub struct Follower {
    store: Arc<dyn Backend>,
    registry: Arc<Registry>,
    agents_dir: PathBuf,
    host: String,
    settings: FollowSettings,
    cursor: i64,
    latest: BTreeMap<String, Placement>,
    /// Agent → (placed hash, why it did not install): not retried until
    /// another version is placed.
    failed: HashMap<String, (String, String)>,
    /// Agent → (hash, why it could not be published): not retried while
    /// that version serves.
    unpublished: HashMap<String, (String, String)>,
    /// Agent → what was last reported, and when.
    reported: HashMap<String, (String, Option<String>, Instant)>,
}

impl Follower {
    pub fn new(store: Arc<dyn Backend>, registry: Arc<Registry>, agents_dir: PathBuf, host: String, settings: FollowSettings) -> Self {
        Follower {
            store,
            registry,
            agents_dir,
            host,
            settings,
            cursor: 0,
            latest: BTreeMap::new(),
            failed: HashMap::new(),
            unpublished: HashMap::new(),
            reported: HashMap::new(),
        }
    }

    async fn call<T: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn Backend) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        self.call_for(blocking::DEFAULT_TIMEOUT, op).await
    }

    async fn call_for<T: Send + 'static>(
        &self,
        timeout: Duration,
        op: impl FnOnce(&dyn Backend) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let store = self.store.clone();
        blocking::call(timeout, move || op(&*store)).await
    }

    /// One round: read, publish, install, report.
    pub async fn tick(&mut self) -> Result<TickReport, StorageError> {
        let started = Instant::now();
        let mut report = TickReport::default();
        let (after, limit) = (self.cursor, self.settings.placements_per_tick.max(1));
        let page = self.call(move |s| s.placements_after(after, limit)).await?;
        report.read = page.len();
        for p in page {
            self.cursor = self.cursor.max(p.seq);
            self.latest.insert(p.agent.clone(), p);
        }
        if report.read >= limit as usize {
            return Ok(report);
        }
        report.caught_up = true;

        let _swapping = swap_lock().lock().await;
        let serving: BTreeMap<String, (String, Option<PathBuf>)> =
            self.registry.list().iter().map(|a| (a.name().to_string(), (a.hash.clone(), a.source.clone()))).collect();
        let agents: BTreeSet<String> = serving.keys().chain(self.latest.keys()).cloned().collect();
        for agent in agents {
            let here = serving.get(&agent);
            let placed = self.latest.get(&agent).cloned();
            if placed.as_ref().map(|p| &p.hash) == here.map(|h| &h.0) {
                self.failed.remove(&agent);
                continue;
            }
            if started.elapsed() >= self.settings.tick_budget {
                report.deferred += 1;
                continue;
            }
            // Serving a version never placed: this host's own drop-in.
            if let Some((hash, Some(source))) = here.filter(|(_, s)| s.as_deref().is_some_and(|s| self.in_agents_dir(s))) {
                if self.unpublished.get(&agent).is_some_and(|(h, _)| h == hash) {
                    // Not shareable (too large): left as it is, and reported.
                    continue;
                }
                {
                    let (a, h) = (agent.clone(), hash.clone());
                    if !self.call(move |s| s.was_placed(&a, &h)).await? {
                        match self.publish_file(&agent, hash, source).await {
                            Ok(true) => report.published.push(agent.clone()),
                            Ok(false) => {}
                            Err(why) => {
                                tracing::warn!(%agent, "not shared with the other hosts: {why}");
                                self.unpublished.insert(agent.clone(), (hash.clone(), why));
                            }
                        }
                        continue;
                    }
                }
            }
            let Some(placement) = placed else { continue };
            if self.failed.get(&agent).is_some_and(|(h, _)| *h == placement.hash) {
                continue;
            }
            match self.install(&placement).await {
                Ok(()) => {
                    self.failed.remove(&agent);
                    report.installed.push(agent.clone());
                }
                Err(why) => {
                    tracing::error!(%agent, "version {} placed by {} is not served here: {why}", short(&placement.hash), placement.host);
                    report.failed.push((agent.clone(), why.clone()));
                    self.failed.insert(agent.clone(), (placement.hash.clone(), why));
                }
            }
        }
        drop(_swapping);
        self.report().await?;
        Ok(report)
    }

    fn in_agents_dir(&self, path: &Path) -> bool {
        path.parent().is_some_and(|d| same_dir(d, &self.agents_dir))
    }

    /// Publishes the file `agent` serves from; `Ok(false)` when the file
    /// changed since it was loaded (the registry will look again).
    async fn publish_file(&self, agent: &str, hash: &str, source: &Path) -> Result<bool, String> {
        let bytes = std::fs::read(source).map_err(|e| format!("{}: {e}", source.display()))?;
        if content_hash(&bytes) != hash {
            return Ok(false);
        }
        let file_name = source.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let seq = publish(self.store.clone(), agent, hash, &file_name, bytes).await.map_err(|e| e.to_string())?;
        tracing::info!(%agent, hash = short(hash), seq, "published {file_name} for the other hosts");
        Ok(true)
    }

    /// Installs `p` here, or says why not (the previous file is back).
    async fn install(&self, p: &Placement) -> Result<(), String> {
        let hash = p.hash.clone();
        let bytes = self
            .call_for(TRANSFER_TIMEOUT + Duration::from_secs(2), move |s| s.component_bytes(&hash))
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the store no longer keeps version {}", short(&p.hash)))?;
        let actual = content_hash(&bytes);
        if actual != p.hash {
            return Err(format!("the store's bytes of version {} hash to {}", short(&p.hash), short(&actual)));
        }
        let dest = match self.registry.get(&p.agent).and_then(|a| a.source.clone()).filter(|s| self.in_agents_dir(s)) {
            Some(path) => path,
            None if valid_file_name(&p.file_name) => self.agents_dir.join(&p.file_name),
            None => return Err(format!("`{}` is not a file name this host writes", p.file_name)),
        };
        let previous = std::fs::read(&dest).ok();
        write_atomically(&dest, &bytes).map_err(|e| format!("writing {}: {e}", dest.display()))?;
        self.registry.load_path(&dest).await;
        let serving = self.registry.get(&p.agent).map(|a| a.hash.clone());
        if serving.as_deref() == Some(p.hash.as_str()) {
            tracing::info!(agent = %p.agent, hash = short(&p.hash), seq = p.seq, from = %p.host, "installed from the store");
            return Ok(());
        }
        let why = self
            .registry
            .files()
            .into_iter()
            .find(|f| f.path == dest)
            .and_then(|f| f.error)
            .unwrap_or_else(|| format!("it serves {}", serving.as_deref().map(short).unwrap_or("nothing")));
        let restored = match &previous {
            Some(bytes) => write_atomically(&dest, bytes),
            None => std::fs::remove_file(&dest),
        };
        self.registry.load_path(&dest).await;
        Err(format!(
            "cannot load version {} (placed by {}): {why}; {}",
            short(&p.hash),
            p.host,
            match restored {
                Ok(()) if previous.is_some() => "the previous file was restored".to_string(),
                Ok(()) => "the file was removed".to_string(),
                Err(e) => format!("restoring the previous file failed: {e}"),
            }
        ))
    }

    /// Reports what this host serves, per agent, when it changed or is due.
    async fn report(&mut self) -> Result<(), StorageError> {
        let mut due = Vec::new();
        let serving: BTreeMap<String, String> =
            self.registry.list().iter().map(|a| (a.name().to_string(), a.hash.clone())).collect();
        let agents: BTreeSet<&String> = serving.keys().chain(self.failed.keys()).chain(self.unpublished.keys()).collect();
        for agent in agents {
            let hash = serving.get(agent).cloned().unwrap_or_default();
            let latest = self.latest.get(agent).map(|p| p.hash.as_str());
            let error = match (self.failed.get(agent), self.unpublished.get(agent)) {
                (Some((placed, why)), _) if Some(placed.as_str()) == latest => Some(why.clone()),
                (_, Some((h, why))) if *h == hash => Some(format!("not shared: {why}")),
                _ => None,
            };
            let fresh = self.reported.get(agent).is_some_and(|(h, e, at)| {
                *h == hash && *e == error && at.elapsed() < self.settings.report_every
            });
            if !fresh {
                due.push(HostReport { host: self.host.clone(), agent: agent.clone(), hash, error, at: now() });
            }
        }
        for r in due {
            let sent = r.clone();
            self.call(move |s| s.host_report(&sent)).await?;
            self.reported.insert(r.agent, (r.hash, r.error, Instant::now()));
        }
        Ok(())
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// `bytes` at `dest` by a hidden temporary file and a rename: the
/// registry never sees a half-written component.
fn write_atomically(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("agent.wasm");
    let tmp = dest.with_file_name(format!(".{name}.follow{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dest).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// What the registry serves, to notice a local change without the store.
fn serving(registry: &Registry) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = registry.list().iter().map(|a| (a.name().to_string(), a.hash.clone())).collect();
    v.sort();
    v
}

/// Starts `host`'s follower under `name` (see [`host_name`]): a tick at
/// once, then on every notification of a placement, whenever the registry
/// serves something new (a file dropped in here), and at least every
/// `settings.interval`. Only for a shared backend: on SQLite a host is
/// alone, and the server does not start one.
pub fn spawn(host: &Host, name: String, settings: FollowSettings) -> tokio::task::JoinHandle<()> {
    let _ = HOST_NAME.set(name.clone());
    let mut follower =
        Follower::new(host.backend.clone(), host.registry.clone(), host.config.host.agents_dir.clone(), name, settings.clone());
    let mut wake = host.backend.placement_notifications();
    let registry = host.registry.clone();
    tokio::spawn(async move {
        loop {
            let seen = serving(&registry);
            let again = match follower.tick().await {
                Ok(r) => !r.caught_up || r.deferred > 0,
                Err(e) => {
                    tracing::warn!("following the component store: {e}");
                    false
                }
            };
            if again {
                tokio::task::yield_now().await;
                continue;
            }
            let woken = async {
                match wake.as_mut() {
                    Some(rx) => rx.recv().await.is_some(),
                    None => std::future::pending().await,
                }
            };
            let changed_here = async {
                let mut every = tokio::time::interval(settings.local_check.max(Duration::from_millis(10)));
                loop {
                    every.tick().await;
                    if serving(&registry) != seen {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(settings.interval) => {}
                _ = changed_here => {}
                open = woken => {
                    if !open {
                        wake = None;
                    }
                }
            }
            // One tick answers every notification that arrived meanwhile.
            if let Some(rx) = wake.as_mut() {
                while rx.try_recv().is_ok() {}
            }
        }
    })
}
