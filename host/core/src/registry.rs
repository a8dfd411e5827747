//! The set of loaded agents, kept in step with the agents directory.
//!
//! Agents are held as `Arc<LoadedAgent>` in a map swapped under a short
//! lock: a call clones the `Arc` and runs outside the lock, so calls in
//! flight finish on the version they started with while new calls get the
//! new one. A file that fails to load never disturbs what is loaded.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use agentkernel_runtime::bindings::Request;
use agentkernel_runtime::{AgentDirectory, AgentTable, CallError, CallOutcome, LoadedAgent, Runtime};

/// How often the directory is rescanned even without file events, in case
/// an event was missed (network filesystems, editors' rename tricks).
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(2);
/// Quiet time after a file event before the directory is scanned.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// What the registry knows about one file of the agents directory.
#[derive(Debug, Clone, Serialize)]
pub struct FileStatus {
    pub path: PathBuf,
    /// Agent currently served from this file, if any.
    pub agent: Option<String>,
    /// Why the file's current contents are not served, if they are not.
    pub error: Option<String>,
    #[serde(skip)]
    fingerprint: Option<Fingerprint>,
}

pub struct Registry {
    runtime: Arc<Runtime>,
    dir: Option<PathBuf>,
    /// The runtime's agent directory (its [`AgentTable`] service), which
    /// agent-to-agent calls look callees up in.
    agents: Arc<AgentTable>,
    files: Mutex<BTreeMap<PathBuf, FileStatus>>,
    /// Loads are serialised so name-conflict checks see a settled map.
    load_lock: tokio::sync::Mutex<()>,
}

fn is_agent_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    // Hidden files are how careful writers stage a file before renaming it in.
    name.ends_with(".wasm") && !name.starts_with('.')
}

/// What tells a file's contents changed without reading them. Size and
/// mtime alone are not enough: `cp -p`, `rsync -t`, tar and reproducible
/// builds write new bytes under the old size and mtime. The inode changes
/// when a file is replaced by rename, and the ctime (which no user can set)
/// on every write in place; together they catch both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    modified: SystemTime,
    #[cfg(unix)]
    inode: (u64, u64),
    #[cfg(unix)]
    changed: (i64, i64),
}

fn fingerprint(meta: &std::fs::Metadata) -> Fingerprint {
    #[cfg(unix)]
    use std::os::unix::fs::MetadataExt;
    Fingerprint {
        len: meta.len(),
        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        #[cfg(unix)]
        inode: (meta.dev(), meta.ino()),
        #[cfg(unix)]
        changed: (meta.ctime(), meta.ctime_nsec()),
    }
}

impl Registry {
    /// A registry watching nothing (agents are added with [`Registry::insert`]).
    pub fn new(runtime: Arc<Runtime>) -> Arc<Self> {
        Self::build(runtime, None)
    }

    /// A registry of the `*.wasm` files in `dir` (created if missing).
    pub fn for_dir(runtime: Arc<Runtime>, dir: &Path) -> std::io::Result<Arc<Self>> {
        std::fs::create_dir_all(dir)?;
        Ok(Self::build(runtime, Some(dir.to_path_buf())))
    }

    fn build(runtime: Arc<Runtime>, dir: Option<PathBuf>) -> Arc<Self> {
        // A runtime assembled without a table (an embedder's) gets one here;
        // its agents then cannot call each other.
        let agents = runtime.services().get::<AgentTable>().unwrap_or_default();
        Arc::new(Registry {
            runtime,
            dir,
            agents,
            files: Mutex::new(BTreeMap::new()),
            load_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    pub fn get(&self, name: &str) -> Option<Arc<LoadedAgent>> {
        self.agents.get(name)
    }

    /// Changes to the loaded agents so far (see [`AgentTable::generation`]).
    pub fn generation(&self) -> u64 {
        self.agents.generation()
    }

    pub fn list(&self) -> Vec<Arc<LoadedAgent>> {
        self.agents.list()
    }

    pub fn files(&self) -> Vec<FileStatus> {
        self.files.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Calls `name` with `req`.
    pub async fn call(&self, name: &str, req: &Request) -> Result<CallOutcome, CallError> {
        let agent = self.get(name).ok_or_else(|| CallError::NotFound { agent: name.to_string() })?;
        agent.call(req).await
    }

    /// Adds an agent that did not come from the directory (tests, `run`).
    pub fn insert(&self, agent: LoadedAgent) -> Arc<LoadedAgent> {
        let agent = Arc::new(agent);
        self.agents.insert(agent.clone());
        agent
    }

    /// Brings the registry in step with the directory: loads new and changed
    /// files, unloads agents whose files are gone. Files are visited in name
    /// order, so of two files claiming one agent name the later is refused.
    pub async fn scan(&self) {
        let Some(dir) = self.dir.clone() else { return };
        let mut present: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| is_agent_file(p)).collect(),
            Err(e) => {
                tracing::error!("cannot read agents directory {}: {e}", dir.display());
                return;
            }
        };
        present.sort();
        let known: Vec<PathBuf> = self.files.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        for gone in known.iter().filter(|p| !present.contains(p)) {
            self.unload_path(gone).await;
        }
        for path in &present {
            self.load_path(path).await;
        }
    }

    /// Loads `path` if its contents changed since the last look.
    pub async fn load_path(&self, path: &Path) {
        let _serial = self.load_lock.lock().await;
        let Ok(before) = std::fs::metadata(path) else {
            drop(_serial);
            return self.unload_path(path).await;
        };
        let fp = fingerprint(&before);
        let (previous_agent, unchanged) = {
            let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
            let f = files.get(path);
            (f.and_then(|f| f.agent.clone()), f.is_some_and(|f| f.fingerprint == Some(fp)))
        };
        if unchanged {
            return;
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => return self.record(path, previous_agent, Some(format!("cannot read: {e}")), None),
        };
        // A writer still at work: look again on the next event or rescan.
        match std::fs::metadata(path) {
            Ok(after) if fingerprint(&after) == fp && after.len() == bytes.len() as u64 => {}
            _ => return,
        }
        let hash = agentkernel_runtime::content_hash(&bytes);
        if let Some(current) = previous_agent.as_deref().and_then(|n| self.get(n)) {
            if current.hash == hash {
                return self.record(path, previous_agent, None, Some(fp));
            }
        }
        match self.runtime.load_hashed(bytes.into(), hash, Some(path.to_path_buf())).await {
            Ok(agent) => {
                let name = agent.name().to_string();
                if let Some(other) = self.get(&name).and_then(|a| a.source.clone()).filter(|p| p != path) {
                    let msg = format!(
                        "agent name `{name}` is already provided by {}; refusing {} (rename the agent or remove one file)",
                        other.display(),
                        path.display()
                    );
                    tracing::error!("{msg}");
                    return self.record(path, previous_agent, Some(msg), Some(fp));
                }
                let version = agent.manifest.version.clone();
                let hash = agent.hash.clone();
                self.agents.replace(previous_agent.as_deref(), Arc::new(agent));
                tracing::info!(agent = %name, %version, hash = &hash[..12], "loaded {}", path.display());
                self.record(path, Some(name), None, Some(fp));
            }
            Err(e) => {
                let msg = e.to_string();
                tracing::error!("cannot load {}: {msg}", path.display());
                // Whatever this file served before keeps serving.
                self.record(path, previous_agent, Some(msg), Some(fp));
            }
        }
    }

    /// Unloads whatever `path` provided.
    pub async fn unload_path(&self, path: &Path) {
        let _serial = self.load_lock.lock().await;
        let removed = self.files.lock().unwrap_or_else(|p| p.into_inner()).remove(path);
        if let Some(name) = removed.and_then(|f| f.agent) {
            if self.agents.remove_if(&name, |a| a.source.as_deref() == Some(path)).is_some() {
                tracing::info!(agent = %name, "unloaded (file {} removed)", path.display());
            }
        }
        // A file refused for a name conflict may be loadable now.
        for f in self.files.lock().unwrap_or_else(|p| p.into_inner()).values_mut() {
            if f.error.is_some() {
                f.fingerprint = None;
            }
        }
    }

    fn record(&self, path: &Path, agent: Option<String>, error: Option<String>, fp: Option<Fingerprint>) {
        self.files.lock().unwrap_or_else(|p| p.into_inner()).insert(
            path.to_path_buf(),
            FileStatus { path: path.to_path_buf(), agent, error, fingerprint: fp },
        );
    }

    /// Watches the directory until the registry is dropped: file events
    /// trigger a (debounced) scan, and a periodic rescan catches anything
    /// the events missed.
    pub fn watch(self: &Arc<Self>) -> anyhow::Result<WatchHandle> {
        use notify::Watcher;
        let dir = self.dir.clone().ok_or_else(|| anyhow::anyhow!("registry has no directory to watch"))?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                let _ = tx.send(());
            }
        })?;
        watcher.watch(&dir, notify::RecursiveMode::NonRecursive)?;
        let weak = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            let mut rescan = tokio::time::interval(RESCAN_INTERVAL);
            loop {
                tokio::select! {
                    got = rx.recv() => {
                        if got.is_none() { break; }
                        // Let a burst of events (a copy in progress) settle.
                        tokio::time::sleep(DEBOUNCE).await;
                        while rx.try_recv().is_ok() {}
                    }
                    _ = rescan.tick() => {}
                }
                let Some(registry) = weak.upgrade() else { break };
                registry.scan().await;
            }
        });
        Ok(WatchHandle { _watcher: watcher, task })
    }
}

/// Keeps the directory watch alive; dropping it stops watching.
pub struct WatchHandle {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_visible_wasm_files_are_agents() {
        assert!(is_agent_file(Path::new("/a/echo.wasm")));
        assert!(!is_agent_file(Path::new("/a/.echo.wasm")));
        assert!(!is_agent_file(Path::new("/a/echo.wasm.tmp")));
        assert!(!is_agent_file(Path::new("/a/README.md")));
    }
}
