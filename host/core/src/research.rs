//! The research center's cycle: each agent of `[research] agents` is called
//! once with the cycle's settings in its context (`{"cycle": true, "topics",
//! "arxiv_url", "github_url", "max_results"}`), and the findings in its
//! answer's `data.findings` are recorded in the host's table (one row per
//! (source, id): a finding seen again is not stored twice).
//!
//! One agent failing (not loaded, rate limited, a malformed feed, a trap)
//! is that agent's outcome in the report; the cycle goes on with the next.
//! `agentkernel research run` runs one cycle; `agentkernel serve` runs one
//! every `interval_secs` ([`spawn_scheduler`]), never two at once.
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use agentkernel_runtime::CallContext;
use agentkernel_runtime::bindings::Request;
use agentkernel_runtime::trace::RequestScope;
use agentkernel_storage::blocking;
use agentkernel_storage::research::ResearchFinding;

use crate::host::Host;

/// Findings read from one agent's answer, at most.
pub const MAX_FINDINGS_PER_AGENT: usize = 500;
/// The session id research agents see in a cycle.
pub const CYCLE_SESSION: &str = "research-cycle";

/// What one agent did in a cycle.
#[derive(Debug, Clone, Serialize)]
pub struct AgentRun {
    pub agent: String,
    /// `ok`, `partial`, the agent's own code (`rate-limited`, `malformed`,
    /// ...), `not-loaded`, a call error's code, or `bad-answer`.
    pub outcome: String,
    /// Findings in the agent's answer, and how many of them were new to the host.
    pub fetched: usize,
    pub new: usize,
    /// The agent's answer text, or what went wrong.
    pub message: String,
    /// Per-topic errors the agent reported.
    pub errors: Value,
    pub elapsed_ms: u64,
}

/// One cycle.
#[derive(Debug, Clone, Serialize)]
pub struct CycleReport {
    pub started_at: i64,
    pub elapsed_ms: u64,
    pub agents: Vec<AgentRun>,
    /// The findings this cycle recorded for the first time.
    pub new_findings: Vec<ResearchFinding>,
}

/// Cycles in this process run one at a time.
static CYCLE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Runs one cycle now (after any cycle already running in this process).
pub async fn run_cycle(host: &Host) -> CycleReport {
    let _one_at_a_time = CYCLE.lock().await;
    let start = Instant::now();
    let started_at = now_secs();
    let context = host.config.research.cycle_context();
    let mut agents = Vec::new();
    let mut new_findings = Vec::new();
    for name in &host.config.research.agents {
        let (run, new) = run_agent(host, name, &context).await;
        tracing::info!(agent = %name, outcome = %run.outcome, fetched = run.fetched, new = run.new, "research cycle");
        agents.push(run);
        new_findings.extend(new);
    }
    CycleReport { started_at, elapsed_ms: start.elapsed().as_millis() as u64, agents, new_findings }
}

async fn run_agent(host: &Host, name: &str, context: &Value) -> (AgentRun, Vec<ResearchFinding>) {
    let start = Instant::now();
    let mut run = AgentRun {
        agent: name.to_string(),
        outcome: String::new(),
        fetched: 0,
        new: 0,
        message: String::new(),
        errors: Value::Array(Vec::new()),
        elapsed_ms: 0,
    };
    let Some(agent) = host.registry.get(name) else {
        run.outcome = "not-loaded".into();
        run.message = format!("no agent named `{name}` is loaded");
        // A file that failed to load under that name says why (e.g. a missing grant).
        let quoted = format!("`{name}`");
        if let Some(why) = host.registry.files().into_iter().filter_map(|f| f.error).find(|e| e.contains(&quoted)) {
            run.message = format!("{}: {why}", run.message);
        }
        return (run, Vec::new());
    };
    let request = Request {
        session_id: CYCLE_SESSION.into(),
        text: "research cycle: fetch the configured topics".into(),
        history: Vec::new(),
        context: Some(context.to_string()),
    };
    // The chat service's request budget bounds any calls the agent makes in turn.
    let scope = Arc::new(RequestScope::new(host.config.chat.default_budget(), None));
    let outcome = agent.call_in(&request, &CallContext::for_request(scope, "research")).await;
    run.elapsed_ms = start.elapsed().as_millis() as u64;
    let response = match outcome {
        Ok(o) => o.response,
        Err(e) => {
            tracing::warn!(agent = %name, code = e.code(), "research cycle call failed: {e}");
            run.outcome = e.code().to_string();
            run.message = e.to_string();
            return (run, Vec::new());
        }
    };
    run.message = response.text.clone();
    let data: Value = response.data.as_deref().and_then(|d| serde_json::from_str(d).ok()).unwrap_or(Value::Null);
    run.outcome = data.get("outcome").and_then(Value::as_str).unwrap_or("bad-answer").to_string();
    run.errors = data.get("errors").cloned().unwrap_or(Value::Array(Vec::new()));
    let findings = findings_of(&data, name);
    run.fetched = findings.len();
    let store = host.backend.clone();
    let now = now_secs();
    match blocking::call(blocking::DEFAULT_TIMEOUT, move || store.research_record(&findings, now)).await {
        Ok(new) => {
            run.new = new.len();
            (run, new)
        }
        Err(e) => {
            tracing::error!(agent = %name, "research findings not recorded: {e}");
            run.outcome = "storage".into();
            run.message = format!("findings not recorded: {e}");
            (run, Vec::new())
        }
    }
}

/// The well-formed findings of an answer's `data.findings`, bounded;
/// malformed entries are skipped.
fn findings_of(data: &Value, agent: &str) -> Vec<ResearchFinding> {
    let Some(list) = data.get("findings").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .take(MAX_FINDINGS_PER_AGENT)
        .filter_map(|v| serde_json::from_value::<ResearchFinding>(v.clone()).ok())
        .map(|f| ResearchFinding { agent: agent.to_string(), ..f })
        .collect()
}

/// Runs a cycle every `[research] interval_secs` (none when 0): the first
/// one interval after start. A cycle runs in its own task, so a panic is
/// logged and the next cycle still comes; cycles never overlap (the next
/// tick waits for the running one).
pub fn spawn_scheduler(host: &Host) -> Option<tokio::task::JoinHandle<()>> {
    let secs = host.config.research.interval_secs;
    if secs == 0 {
        return None;
    }
    let host = host.clone();
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(secs));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let cycle_host = host.clone();
            match tokio::spawn(async move { run_cycle(&cycle_host).await }).await {
                Ok(report) => tracing::info!(
                    agents = report.agents.len(),
                    new = report.new_findings.len(),
                    elapsed_ms = report.elapsed_ms,
                    "scheduled research cycle done"
                ),
                Err(e) => tracing::error!("scheduled research cycle failed: {e}"),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_are_read_defensively_and_bounded() {
        let mut list: Vec<Value> = vec![
            serde_json::json!({"source": "arxiv", "id": "1", "title": "t", "score": 7.0, "extra": [1]}),
            serde_json::json!({"source": "arxiv"}),
            serde_json::json!("not an object"),
        ];
        list.extend((0..600).map(|i| serde_json::json!({"source": "github", "id": i.to_string(), "title": "r"})));
        let found = findings_of(&serde_json::json!({"findings": list}), "researcher");
        assert_eq!(found.len(), MAX_FINDINGS_PER_AGENT - 2);
        assert_eq!(found[0].agent, "researcher");
        assert!(findings_of(&Value::Null, "x").is_empty());
    }
}
