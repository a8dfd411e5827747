//! Live requests kept for the post-swap watch, which replays them on the
//! previous version and compares answers (an error rate alone would keep a
//! version that answers wrongly without failing).
//!
//! Off unless a watch arms it for an agent: an unarmed call costs one
//! atomic load. Armed, it keeps at most [`MAX_SAMPLES`] request texts per
//! agent, none over [`MAX_SAMPLE_BYTES`].
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Request texts kept per armed agent (the oldest are dropped).
pub const MAX_SAMPLES: usize = 16;
/// Longer requests are not kept.
pub const MAX_SAMPLE_BYTES: usize = 64 * 1024;

#[derive(Default)]
pub struct CallSamples {
    armed: AtomicUsize,
    by_agent: Mutex<HashMap<String, VecDeque<String>>>,
}

impl CallSamples {
    /// Starts keeping `agent`'s requests.
    pub fn arm(&self, agent: &str) {
        let mut m = self.by_agent.lock().unwrap_or_else(|p| p.into_inner());
        if m.insert(agent.to_string(), VecDeque::new()).is_none() {
            self.armed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Stops keeping `agent`'s requests and hands over what was kept.
    pub fn disarm(&self, agent: &str) -> Vec<String> {
        let mut m = self.by_agent.lock().unwrap_or_else(|p| p.into_inner());
        match m.remove(agent) {
            Some(kept) => {
                self.armed.fetch_sub(1, Ordering::Relaxed);
                kept.into()
            }
            None => Vec::new(),
        }
    }

    /// Whether a watch keeps `agent`'s requests.
    pub fn is_armed(&self, agent: &str) -> bool {
        self.by_agent.lock().unwrap_or_else(|p| p.into_inner()).contains_key(agent)
    }

    /// Keeps `text` if `agent` is armed.
    pub fn record(&self, agent: &str, text: &str) {
        if self.armed.load(Ordering::Relaxed) == 0 || text.len() > MAX_SAMPLE_BYTES {
            return;
        }
        let mut m = self.by_agent.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(kept) = m.get_mut(agent) {
            if kept.len() == MAX_SAMPLES {
                kept.pop_front();
            }
            kept.push_back(text.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_armed_agents_and_a_bounded_window() {
        let s = CallSamples::default();
        s.record("a", "ignored: not armed");
        s.arm("a");
        for i in 0..MAX_SAMPLES + 3 {
            s.record("a", &i.to_string());
            s.record("b", "other agent");
        }
        s.record("a", &"x".repeat(MAX_SAMPLE_BYTES + 1));
        let kept = s.disarm("a");
        assert_eq!(kept.len(), MAX_SAMPLES);
        assert_eq!(kept[0], "3", "the oldest were dropped");
        s.record("a", "after disarm");
        assert!(s.disarm("a").is_empty());
    }
}
