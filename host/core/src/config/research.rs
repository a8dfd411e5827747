//! `[research]`: the research center's cycle (see `crate::research`).
//!
//! ```toml
//! [research]
//! agents = ["researcher", "open-source-explorer"]   # called in turn each cycle
//! topics = ["llm agents", "webassembly"]
//! arxiv_url = "https://export.arxiv.org"
//! github_url = "https://api.github.com"
//! max_results = 10        # per topic and source
//! interval_secs = 0       # `agentkernel serve` runs a cycle this often; 0 = off
//! ```
//!
//! The URLs only tell the agents where to go: each agent's `http` grant
//! still decides what it may reach.
use serde::{Deserialize, Serialize};

/// Agents called per cycle, at most.
pub const MAX_AGENTS: usize = 8;
/// Topics per cycle, at most, and characters per topic.
pub const MAX_TOPICS: usize = 10;
pub const MAX_TOPIC_CHARS: usize = 80;
/// Results asked for per topic and source, at most.
pub const MAX_RESULTS: u32 = 50;
/// Shortest interval between scheduled cycles.
pub const MIN_INTERVAL_SECS: u64 = 1;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResearchConfig {
    pub agents: Vec<String>,
    pub topics: Vec<String>,
    pub arxiv_url: String,
    pub github_url: String,
    pub max_results: u32,
    /// Seconds between scheduled cycles in `agentkernel serve`; 0 = off.
    pub interval_secs: u64,
}

impl Default for ResearchConfig {
    fn default() -> Self {
        ResearchConfig {
            agents: vec!["researcher".into(), "open-source-explorer".into()],
            topics: vec!["llm agents".into(), "webassembly".into()],
            arxiv_url: "https://export.arxiv.org".into(),
            github_url: "https://api.github.com".into(),
            max_results: 10,
            interval_secs: 0,
        }
    }
}

impl ResearchConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.agents.len() > MAX_AGENTS {
            return Err(format!("research.agents: at most {MAX_AGENTS}"));
        }
        if self.topics.len() > MAX_TOPICS {
            return Err(format!("research.topics: at most {MAX_TOPICS}"));
        }
        if let Some(t) = self.topics.iter().find(|t| t.trim().is_empty() || t.chars().count() > MAX_TOPIC_CHARS) {
            return Err(format!("research.topics: {t:?} must be 1 to {MAX_TOPIC_CHARS} characters"));
        }
        for (key, url) in [("arxiv_url", &self.arxiv_url), ("github_url", &self.github_url)] {
            let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
            if rest.is_none_or(|r| r.is_empty() || r.contains(['?', '#', ' '])) {
                return Err(format!("research.{key} = {url:?}: must be an http(s) URL without query or fragment"));
            }
        }
        if !(1..=MAX_RESULTS).contains(&self.max_results) {
            return Err(format!("research.max_results must be 1 to {MAX_RESULTS}"));
        }
        if self.interval_secs != 0 && self.interval_secs < MIN_INTERVAL_SECS {
            return Err(format!("research.interval_secs must be 0 (off) or at least {MIN_INTERVAL_SECS}"));
        }
        Ok(())
    }

    /// The context each agent gets in a cycle.
    pub fn cycle_context(&self) -> serde_json::Value {
        serde_json::json!({
            "cycle": true,
            "topics": self.topics,
            "arxiv_url": self.arxiv_url.trim_end_matches('/'),
            "github_url": self.github_url.trim_end_matches('/'),
            "max_results": self.max_results,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_off_and_valid() {
        let c = ResearchConfig::default();
        assert_eq!(c.interval_secs, 0);
        c.validate().unwrap();
        assert_eq!(c.cycle_context()["arxiv_url"], "https://export.arxiv.org");
    }

    #[test]
    fn bad_values_are_refused() {
        let bad = |f: fn(&mut ResearchConfig)| {
            let mut c = ResearchConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert!(bad(|c| c.arxiv_url = "ftp://x".into()).contains("arxiv_url"));
        assert!(bad(|c| c.max_results = 0).contains("max_results"));
        assert!(bad(|c| c.topics = vec![" ".into()]).contains("topics"));
        assert!(bad(|c| c.agents = vec!["a".into(); 9]).contains("agents"));
    }
}
