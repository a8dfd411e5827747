//! What the chat service routes over: the loaded agents (but its own router
//! and synthesizer) and their skill index, built once per change of the
//! registry instead of once per request.
//!
//! With many agents loaded, giving the router agent every manifest in every
//! request's context made routing cost grow with each agent (fuel, bytes,
//! time). Above [`ChatConfig::router_candidates`](crate::chat::ChatConfig)
//! agents, the router is given a shortlist instead: the agents whose skills
//! the message touches (a keyword, a skill name or a description word),
//! best first, found through the index in time that depends on the
//! message's words rather than on the number of agents, then (so an LLM
//! router still has agents to consider when the words touch too few)
//! others in name order up to the limit.
//!
//! The index holds its agents weakly: a replaced or unloaded version is
//! freed when calls stop using it, not when the next chat rebuilds.
use std::sync::{Arc, Mutex, Weak};

use agentkernel_runtime::LoadedAgent;
use agentkernel_sdk::routing::{Candidate, CandidateSkill, SkillIndex, SkillMatch};

use crate::registry::Registry;

/// The routable agents of one registry generation.
pub struct RoutingIndex {
    generation: u64,
    /// In the registry's (name) order, which is also the index's.
    candidates: Vec<Weak<LoadedAgent>>,
    index: SkillIndex,
}

impl RoutingIndex {
    fn build(generation: u64, candidates: Vec<Arc<LoadedAgent>>) -> RoutingIndex {
        let views: Vec<Candidate> = candidates
            .iter()
            .map(|a| Candidate {
                name: a.name().to_string(),
                description: a.manifest.description.clone(),
                skills: a
                    .manifest
                    .skills
                    .iter()
                    .map(|s| CandidateSkill { name: s.name.clone(), description: s.description.clone(), keywords: s.keywords.clone() })
                    .collect(),
            })
            .collect();
        RoutingIndex { generation, index: SkillIndex::new(&views), candidates: candidates.iter().map(Arc::downgrade).collect() }
    }

    /// The agents to offer the router agent: all of them up to `limit`,
    /// else the `limit` whose skills the message touches most, then others
    /// in name order to fill the places left.
    pub fn shortlist(&self, message: &str, limit: usize) -> Vec<Arc<LoadedAgent>> {
        if self.candidates.len() <= limit {
            return self.candidates.iter().filter_map(Weak::upgrade).collect();
        }
        let mut chosen: Vec<usize> = self.index.rank(message, limit, 1).into_iter().map(|(i, _, _)| i).collect();
        let matched: std::collections::HashSet<usize> = chosen.iter().copied().collect();
        let room = limit - chosen.len();
        chosen.extend((0..self.candidates.len()).filter(|i| !matched.contains(i)).take(room));
        chosen.into_iter().filter_map(|i| self.candidates[i].upgrade()).collect()
    }

    /// The host's own routing (the router agent's offline rule).
    pub fn match_skills(&self, message: &str, max_agents: usize) -> (Vec<Arc<LoadedAgent>>, String) {
        let SkillMatch { agents, reason } = self.index.match_skills(message, max_agents);
        let live: Vec<Arc<LoadedAgent>> = self.candidates.iter().filter_map(Weak::upgrade).collect();
        let chosen = agents.iter().filter_map(|n| live.iter().find(|a| a.name() == n.as_str()).cloned()).collect();
        (chosen, reason)
    }
}

/// The current [`RoutingIndex`], rebuilt when the registry has changed.
#[derive(Default)]
pub struct RoutingCache {
    current: Mutex<Option<Arc<RoutingIndex>>>,
}

impl RoutingCache {
    /// The index of `registry`'s agents for which `routable` holds.
    pub fn get(&self, registry: &Registry, routable: impl Fn(&str) -> bool) -> Arc<RoutingIndex> {
        // Read before listing: a change in between makes the next request
        // rebuild, never keeps a stale list.
        let generation = registry.generation();
        if let Some(index) = self.current.lock().unwrap_or_else(|p| p.into_inner()).as_ref().filter(|i| i.generation == generation) {
            return index.clone();
        }
        // Built outside the lock: requests meanwhile use what they find.
        let candidates = registry.list().into_iter().filter(|a| routable(a.name())).collect();
        let index = Arc::new(RoutingIndex::build(generation, candidates));
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_none_or(|c| c.generation <= generation) {
            *current = Some(index.clone());
        }
        index
    }
}
