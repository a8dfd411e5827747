//! Where agent-to-agent calls find their callees.
//!
//! The host's registry keeps its loaded agents in an [`AgentTable`] it
//! creates before the runtime and hands to it as a service, so nothing is
//! patched in after construction. Prepared capabilities hold the table
//! weakly: it holds the agents, and an agent's prepared capabilities
//! holding it strongly would keep every agent (and its engine) alive.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::LoadedAgent;

/// Looks up loaded agents by name.
pub trait AgentDirectory: Send + Sync + 'static {
    fn get(&self, name: &str) -> Option<Arc<LoadedAgent>>;
    /// Every loaded agent, by name.
    fn list(&self) -> Vec<Arc<LoadedAgent>>;
}

/// The loaded agents by name, swapped under a short lock: a call clones the
/// `Arc` and runs outside the lock, so calls in flight finish on the
/// version they started with while new calls get the new one.
#[derive(Default)]
pub struct AgentTable {
    agents: RwLock<BTreeMap<String, Arc<LoadedAgent>>>,
    /// Bumped by every change (under the write lock), so what is derived
    /// from the table (the chat service's skill index) knows when to rebuild.
    generation: AtomicU64,
}

impl AgentTable {
    /// Puts `agent` in under its name, returning the one it replaced.
    pub fn insert(&self, agent: Arc<LoadedAgent>) -> Option<Arc<LoadedAgent>> {
        let mut agents = self.agents.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::Release);
        agents.insert(agent.name().to_string(), agent)
    }
    /// Puts `agent` in and takes `previous` (the name its source served
    /// before, if it was renamed) out, in one step.
    pub fn replace(&self, previous: Option<&str>, agent: Arc<LoadedAgent>) {
        let mut agents = self.agents.write().unwrap_or_else(|p| p.into_inner());
        if let Some(prev) = previous.filter(|p| *p != agent.name()) {
            agents.remove(prev);
        }
        agents.insert(agent.name().to_string(), agent);
        self.generation.fetch_add(1, Ordering::Release);
    }
    /// Removes `name` if `served` says the loaded version is the one to remove.
    pub fn remove_if(&self, name: &str, served: impl FnOnce(&LoadedAgent) -> bool) -> Option<Arc<LoadedAgent>> {
        let mut agents = self.agents.write().unwrap_or_else(|p| p.into_inner());
        if !agents.get(name).is_some_and(|a| served(a)) {
            return None;
        }
        self.generation.fetch_add(1, Ordering::Release);
        agents.remove(name)
    }
    /// Changes so far: equal twice means the same agents in between.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
    pub fn len(&self) -> usize {
        self.agents.read().unwrap_or_else(|p| p.into_inner()).len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl AgentDirectory for AgentTable {
    fn get(&self, name: &str) -> Option<Arc<LoadedAgent>> {
        self.agents.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }
    fn list(&self) -> Vec<Arc<LoadedAgent>> {
        self.agents.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }
}
