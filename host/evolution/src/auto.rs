//! Evolutions triggered by policy from live metrics (`[evolution.auto]`,
//! off by default): every `check_ms` the server looks at each evolvable
//! agent's calls since the last look, and when at least `min_calls` came in
//! and their error rate or fuel per call crossed its threshold, it starts
//! an evolution (at most one per agent per `cooldown_secs`).
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};


use super::{EvolveOptions, GeneratorSpec};
use crate::background::{Handles, spawn_evolution};

pub use agentkernel_core::config::evolution::AutoEvolve;

/// What one window of calls says about an agent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub calls: u64,
    pub errors: u64,
    pub fuel: u64,
}

/// Why this window should start an evolution, if it should.
pub trait Trigger {
    fn trigger(&self, w: &Window) -> Option<String>;
}

impl Trigger for AutoEvolve {
    fn trigger(&self, w: &Window) -> Option<String> {
        if w.calls < self.min_calls.max(1) {
            return None;
        }
        let rate = w.errors as f64 / w.calls as f64;
        if let Some(limit) = self.error_rate.filter(|l| rate > *l) {
            return Some(format!("error rate {rate:.2} over {} calls is above {limit}", w.calls));
        }
        let ok = w.calls - w.errors;
        if let (Some(limit), true) = (self.fuel_per_call, ok > 0) {
            let per_call = w.fuel / ok;
            if per_call > limit {
                return Some(format!("fuel per call {per_call} over {ok} calls is above {limit}"));
            }
        }
        None
    }
}

/// Starts the watcher when `[evolution.auto] enabled`; it stops with the registry.
pub fn spawn(handles: &Handles) -> Option<tokio::task::JoinHandle<()>> {
    let auto = handles.config.evolution.auto.clone();
    if !auto.enabled {
        return None;
    }
    let generator: GeneratorSpec = match auto.generator.parse() {
        Ok(g) => g,
        Err(e) => {
            tracing::error!("[evolution.auto] generator: {e}; automatic evolutions are off");
            return None;
        }
    };
    let weak = Arc::downgrade(&handles.registry);
    let (config, store, llm) = (handles.config.clone(), handles.store.clone(), handles.llm.clone());
    Some(tokio::spawn(async move {
        let mut seen: BTreeMap<String, Window> = BTreeMap::new();
        let mut last_started: BTreeMap<String, Instant> = BTreeMap::new();
        loop {
            tokio::time::sleep(Duration::from_millis(auto.check_ms.max(10))).await;
            let Some(registry) = weak.upgrade() else { break };
            for agent in registry.list() {
                let name = agent.name().to_string();
                if super::locate_source(&config.evolution, &name, None).is_err() {
                    continue;
                }
                let metrics = registry.runtime().metrics();
                let (calls, errors) = metrics.agent_call_counts(&name);
                let now = Window { calls, errors, fuel: metrics.agent_fuel_total(&name) };
                let before = seen.get(&name).copied().unwrap_or(Window { calls: 0, errors: 0, fuel: 0 });
                let window = Window {
                    calls: now.calls.saturating_sub(before.calls),
                    errors: now.errors.saturating_sub(before.errors),
                    fuel: now.fuel.saturating_sub(before.fuel),
                };
                if window.calls < auto.min_calls.max(1) {
                    continue;
                }
                seen.insert(name.clone(), now);
                let Some(reason) = auto.trigger(&window) else { continue };
                if last_started.get(&name).is_some_and(|t| t.elapsed() < Duration::from_secs(auto.cooldown_secs)) {
                    continue;
                }
                let mut opts = EvolveOptions::new(&name, generator.clone());
                opts.swap = true;
                let handles = Handles { registry: registry.clone(), config: config.clone(), store: store.clone(), llm: llm.clone() };
                match spawn_evolution(&handles, opts) {
                    Ok(id) => {
                        tracing::warn!(agent = %name, evolution = %id, "starting an evolution: {reason}");
                        last_started.insert(name, Instant::now());
                    }
                    Err(e) => tracing::info!(agent = %name, "automatic evolution not started: {e:?}"),
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_on_error_rate_or_fuel_once_enough_calls_came_in() {
        let auto = AutoEvolve { enabled: true, error_rate: Some(0.2), fuel_per_call: Some(1000), min_calls: 10, ..AutoEvolve::default() };
        assert_eq!(auto.trigger(&Window { calls: 5, errors: 5, fuel: 0 }), None, "too few calls");
        assert!(auto.trigger(&Window { calls: 10, errors: 3, fuel: 0 }).unwrap().contains("error rate"));
        assert_eq!(auto.trigger(&Window { calls: 10, errors: 2, fuel: 8000 }), None);
        assert!(auto.trigger(&Window { calls: 10, errors: 0, fuel: 20_000 }).unwrap().contains("fuel per call"));
        assert!(!AutoEvolve::default().enabled, "off by default");
    }
}
