//! Live calls kept for the post-swap watch, which compares what the new
//! version answered live with what the previous version answers to the
//! same requests (an error rate alone would keep a version that answers
//! wrongly without failing).
//!
//! Off unless a watch arms it for an agent: an unarmed call costs one
//! atomic load. Armed, it keeps at most [`MAX_SAMPLES`] calls per agent,
//! none whose request or answer is over [`MAX_SAMPLE_BYTES`].
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Calls kept per armed agent (the oldest are dropped).
pub const MAX_SAMPLES: usize = 16;
/// Longer requests or answers are not kept.
pub const MAX_SAMPLE_BYTES: usize = 64 * 1024;

/// One live call: the request text and the answer (its text, or `error: CODE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub request: String,
    pub answer: String,
}

/// Which watch armed an agent, so a watch that ends never disarms a newer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arming(u64);

#[derive(Default)]
pub struct CallSamples {
    armed: AtomicUsize,
    next: AtomicU64,
    by_agent: Mutex<HashMap<String, (Arming, VecDeque<Sample>)>>,
}

impl CallSamples {
    /// Starts keeping `agent`'s calls (replacing an older watch's arming).
    pub fn arm(&self, agent: &str) -> Arming {
        let arming = Arming(self.next.fetch_add(1, Ordering::Relaxed));
        let mut m = self.by_agent.lock().unwrap_or_else(|p| p.into_inner());
        if m.insert(agent.to_string(), (arming, VecDeque::new())).is_none() {
            self.armed.fetch_add(1, Ordering::Relaxed);
        }
        arming
    }

    /// Stops keeping `agent`'s calls, if `arming` is still the current one,
    /// and hands over what was kept.
    pub fn disarm(&self, agent: &str, arming: Arming) -> Vec<Sample> {
        let mut m = self.by_agent.lock().unwrap_or_else(|p| p.into_inner());
        if m.get(agent).is_none_or(|(a, _)| *a != arming) {
            return Vec::new();
        }
        self.armed.fetch_sub(1, Ordering::Relaxed);
        m.remove(agent).map(|(_, kept)| kept.into()).unwrap_or_default()
    }

    /// Whether a watch keeps `agent`'s calls.
    pub fn is_armed(&self, agent: &str) -> bool {
        self.by_agent.lock().unwrap_or_else(|p| p.into_inner()).contains_key(agent)
    }

    /// Keeps one call of `agent` if it is armed; `answer` is only built then.
    pub fn record(&self, agent: &str, request: &str, answer: impl FnOnce() -> String) {
        if self.armed.load(Ordering::Relaxed) == 0 || request.len() > MAX_SAMPLE_BYTES {
            return;
        }
        let mut m = self.by_agent.lock().unwrap_or_else(|p| p.into_inner());
        let Some((_, kept)) = m.get_mut(agent) else { return };
        let answer = answer();
        if answer.len() > MAX_SAMPLE_BYTES {
            return;
        }
        if kept.len() == MAX_SAMPLES {
            kept.pop_front();
        }
        kept.push_back(Sample { request: request.to_string(), answer });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_armed_agents_and_a_bounded_window() {
        let s = CallSamples::default();
        s.record("a", "ignored: not armed", || "x".into());
        let arming = s.arm("a");
        for i in 0..MAX_SAMPLES + 3 {
            s.record("a", &i.to_string(), || format!("answer {i}"));
            s.record("b", "other agent", || "y".into());
        }
        s.record("a", &"x".repeat(MAX_SAMPLE_BYTES + 1), || "z".into());
        let kept = s.disarm("a", arming);
        assert_eq!(kept.len(), MAX_SAMPLES);
        assert_eq!(kept[0], Sample { request: "3".into(), answer: "answer 3".into() }, "the oldest were dropped");
        s.record("a", "after disarm", || "x".into());
        assert!(s.disarm("a", arming).is_empty());
    }

    #[test]
    fn an_older_watch_cannot_disarm_a_newer_one() {
        let s = CallSamples::default();
        let first = s.arm("a");
        let second = s.arm("a");
        assert!(s.disarm("a", first).is_empty());
        assert!(s.is_armed("a"), "the newer watch still samples");
        s.record("a", "r", || "x".into());
        assert_eq!(s.disarm("a", second).len(), 1);
        assert!(!s.is_armed("a"));
    }
}
