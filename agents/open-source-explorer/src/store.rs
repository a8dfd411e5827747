//! Findings in the agent's memory, deduplicated and bounded.
//!
//! - `index`: the ids seen, oldest first, at most [`MAX_SEEN`]: a finding
//!   whose id is here is not new. Updated with compare-and-swap, so two
//!   concurrent cycles never both report the same finding as new.
//! - `finding/<id>`: the newest [`MAX_KEPT`] findings (JSON); older bodies
//!   are deleted as new ones come, their ids stay in the index a while longer.
//! - `proposals`: the newest [`MAX_PROPOSALS_KEPT`] proposals a person can read.
use agentkernel_sdk::memory::{self, BatchOp, MemoryError};
use serde::{Deserialize, Serialize};

pub const MAX_SEEN: usize = 1000;
pub const MAX_KEPT: usize = 200;
pub const MAX_PROPOSALS_KEPT: usize = 20;
const CAS_ATTEMPTS: usize = 16;
/// Memory batches take at most 64 steps.
const BATCH_STEPS: usize = 60;

/// One finding as stored, returned, and recorded by the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub source: String,
    pub id: String,
    pub title: String,
    pub url: String,
    pub summary: String,
    pub published: String,
    pub topic: String,
    pub score: f64,
    /// `llm` or `keywords`.
    pub scored_by: String,
    pub reason: String,
    /// Labels for trends: categories, or language and topics.
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    #[serde(default)]
    pub found_at: i64,
}

/// A finding someone should look at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: String,
    pub title: String,
    pub url: String,
    pub score: f64,
    pub text: String,
}

impl Proposal {
    pub fn of(f: &Finding, what: &str) -> Proposal {
        Proposal {
            id: f.id.clone(),
            title: f.title.clone(),
            url: f.url.clone(),
            score: f.score,
            text: format!("{what} \"{}\" ({}): scored {:.1} by {}, {}.", f.title, f.url, f.score, f.scored_by, f.reason),
        }
    }
}

#[derive(Debug)]
pub enum StoreError {
    Memory(MemoryError),
    Contended,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Memory(e) => write!(f, "memory: {e:?}"),
            StoreError::Contended => write!(f, "the index kept changing under concurrent writers"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Memory(e) => Some(e),
            StoreError::Contended => None,
        }
    }
}

impl From<MemoryError> for StoreError {
    fn from(e: MemoryError) -> Self {
        StoreError::Memory(e)
    }
}

fn key(id: &str) -> String {
    format!("finding/{id}")
}

/// The ids seen so far.
pub fn seen_ids() -> Result<Vec<String>, StoreError> {
    Ok(read_list(&memory::get("index")?))
}

fn read_list<T: serde::de::DeserializeOwned>(raw: &Option<Vec<u8>>) -> Vec<T> {
    raw.as_deref().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_default()
}

/// Adds the findings not seen yet and returns them (in the given order).
pub fn add_new(findings: Vec<Finding>) -> Result<Vec<Finding>, StoreError> {
    for _ in 0..CAS_ATTEMPTS {
        let raw = memory::get("index")?;
        let mut index: Vec<String> = read_list(&raw);
        let fresh: Vec<&Finding> = findings.iter().filter(|f| !index.contains(&f.id)).collect();
        if fresh.is_empty() {
            return Ok(Vec::new());
        }
        index.extend(fresh.iter().map(|f| f.id.clone()));
        let evicted_bodies: Vec<String> =
            index.len().checked_sub(MAX_KEPT).map(|n| index[..n].to_vec()).unwrap_or_default();
        if index.len() > MAX_SEEN {
            index.drain(..index.len() - MAX_SEEN);
        }
        let new_index = serde_json::to_vec(&index).expect("a list of strings serialises");
        if !memory::compare_and_swap("index", raw.as_deref(), Some(&new_index))? {
            continue;
        }
        let mut ops: Vec<BatchOp> = fresh
            .iter()
            .map(|f| BatchOp::Set((key(&f.id), serde_json::to_vec(f).expect("a finding serialises"))))
            .collect();
        // Only the bodies that just fell out of the window still exist.
        let window_start = evicted_bodies.len().saturating_sub(fresh.len());
        ops.extend(evicted_bodies[window_start..].iter().map(|id| BatchOp::Delete(key(id))));
        for chunk in ops.chunks(BATCH_STEPS) {
            memory::batch(chunk)?;
        }
        return Ok(fresh.into_iter().cloned().collect());
    }
    Err(StoreError::Contended)
}

/// The newest `limit` stored findings, newest first.
pub fn latest(limit: usize) -> Result<Vec<Finding>, StoreError> {
    let index = seen_ids()?;
    let mut out = Vec::new();
    for id in index.iter().rev().take(MAX_KEPT) {
        if out.len() >= limit {
            break;
        }
        if let Some(raw) = memory::get(&key(id))? {
            if let Ok(f) = serde_json::from_slice::<Finding>(&raw) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

/// Queues `new` proposals (newest last, bounded) and returns the queue.
pub fn queue_proposals(new: &[Proposal]) -> Result<Vec<Proposal>, StoreError> {
    for _ in 0..CAS_ATTEMPTS {
        let raw = memory::get("proposals")?;
        let mut queue: Vec<Proposal> = read_list(&raw);
        if new.is_empty() {
            return Ok(queue);
        }
        queue.retain(|p| !new.iter().any(|n| n.id == p.id));
        queue.extend(new.iter().cloned());
        if queue.len() > MAX_PROPOSALS_KEPT {
            queue.drain(..queue.len() - MAX_PROPOSALS_KEPT);
        }
        let bytes = serde_json::to_vec(&queue).expect("proposals serialise");
        if memory::compare_and_swap("proposals", raw.as_deref(), Some(&bytes))? {
            return Ok(queue);
        }
    }
    Err(StoreError::Contended)
}
