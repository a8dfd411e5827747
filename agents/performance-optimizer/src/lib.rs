//! `performance-optimizer`: reads the host's per-agent metrics
//! (`evolution::agent_stats`), ranks the worst agents (error rate with a
//! minimum call count, then mean fuel per call) and reports them. Asked to
//! act ("optimise the worst agents", "evolve primes"), it starts evolutions
//! of the worst evolvable ones through `evolution::evolve_agent`, for the
//! agents its scope allows (a refusal is reported per agent). Asked to
//! propose, it proposes (never applies) more instances for busy agents or a
//! new specialised agent (`evolution::propose`). What it started or proposed
//! is remembered, so the same thing is not repeated within a day.
//! Everything is rule-based: it needs no model.
use agentkernel_sdk::evolution::{self, AgentMetrics, EvolutionError};
use agentkernel_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub mod ranking;

use ranking::{Intent, Ranked, high_volume, human, in_cooldown, intent, rank};

pub struct PerformanceOptimizer;

pub const NAME: &str = "performance-optimizer";
/// Agents listed in a report, and considered when acting.
const WORST_SHOWN: usize = 5;
/// Most evolutions started by one request (each takes one of the day's runs).
const MAX_STARTS_PER_REQUEST: usize = 2;
/// Most proposals made by one request.
const MAX_PROPOSALS_PER_REQUEST: usize = 2;

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Something this agent did: an evolution started or a proposal made.
#[derive(Debug, Serialize, Deserialize)]
struct Done {
    at: i64,
    id: String,
}

fn last_done(key: &str) -> Option<Done> {
    memory::get_string(key).ok().flatten().and_then(|raw| serde_json::from_str(&raw).ok())
}

fn remember_done(key: &str, id: &str) {
    let record = json!({"at": now_secs(), "id": id}).to_string();
    if let Err(e) = memory::set_string(key, &record) {
        log::warn(&format!("cannot remember {key}: {e:?}"));
    }
}

/// How long ago, for a person.
fn ago(at: i64) -> String {
    let secs = now_secs().saturating_sub(at).max(0);
    if secs < 3600 { format!("{} min ago", secs / 60) } else { format!("{} h ago", secs / 3600) }
}

/// An error of the host, in words, for one agent.
fn refusal(e: &EvolutionError) -> String {
    match e {
        EvolutionError::NotAllowed(m) => format!("not within my scope ({m})"),
        EvolutionError::BudgetExceeded(m) => format!("my runs for today are used up ({m})"),
        EvolutionError::Busy(m) => format!("already being evolved ({m})"),
        EvolutionError::NotFound(m) => format!("not found ({m})"),
        EvolutionError::InvalidRequest(m) => format!("the host refused the request ({m})"),
        EvolutionError::Failed(m) => format!("the host could not do it ({m})"),
    }
}

fn ranking_lines(ranked: &[Ranked]) -> String {
    ranked.iter().take(WORST_SHOWN).enumerate().map(|(i, r)| format!("{}. {}", i + 1, r.describe())).collect::<Vec<_>>().join("\n")
}

fn report(ranked: &[Ranked]) -> Response {
    let text = if ranked.is_empty() {
        "No agent has been called since it was loaded, so there is nothing to rank yet.".to_string()
    } else {
        format!(
            "Worst agents (error rate over at least {} calls first, then mean fuel per call):\n{}\nSay \"optimise the worst agents\" to start evolutions of the evolvable ones, or \"propose more instances\".",
            ranking::MIN_CALLS,
            ranking_lines(ranked)
        )
    };
    Response::text(text).with_data(&json!({"ranking": ranked.iter().take(WORST_SHOWN).collect::<Vec<_>>(), "actions": []}))
}

/// Starts evolutions of the worst evolvable agents (or of `only`).
fn act(metrics: &[AgentMetrics], ranked: &[Ranked], only: Option<String>) -> Response {
    let targets: Vec<Ranked> = match &only {
        Some(name) => metrics.iter().filter(|m| &m.name == name).map(Ranked::of).collect(),
        None => ranked.iter().take(WORST_SHOWN).cloned().collect(),
    };
    let mut lines = Vec::new();
    let mut actions = Vec::new();
    let mut started = 0;
    for r in &targets {
        let key = format!("evolved/{}", r.name);
        let (outcome, stop) = if !r.evolvable {
            ("skipped: it has no benchmark suite, so it cannot be evolved".to_string(), false)
        } else if started >= MAX_STARTS_PER_REQUEST {
            ("not started: I start at most 2 evolutions per request".to_string(), true)
        } else if let Some(done) = last_done(&key).filter(|d| in_cooldown(d.at, now_secs())) {
            (format!("skipped: I started evolution {} {} (cooldown 24 h)", done.id, ago(done.at)), false)
        } else {
            match evolution::evolve_agent(&r.name) {
                Ok(run) => {
                    remember_done(&key, &run);
                    started += 1;
                    (format!("started evolution run {run}"), false)
                }
                // Out of runs, or no engine: every further request would fail the same way.
                Err(e) => (refusal(&e), matches!(e, EvolutionError::BudgetExceeded(_) | EvolutionError::Failed(_))),
            }
        };
        lines.push(format!("- {}: {outcome}", r.name));
        actions.push(json!({"agent": r.name, "outcome": outcome}));
        if stop {
            break;
        }
    }
    if targets.is_empty() {
        let what = only.map_or("No agent has been called yet, so none is worth evolving.".to_string(), |n| format!("I see no agent named `{n}` in the host's metrics."));
        return Response::text(what).with_data(&json!({"ranking": [], "actions": []}));
    }
    let text = format!("{}\nWhat I did:\n{}", if only.is_some() { "Evolution request:".to_string() } else { format!("Worst agents:\n{}", ranking_lines(ranked)) }, lines.join("\n"));
    Response::text(text).with_data(&json!({"ranking": ranked.iter().take(WORST_SHOWN).collect::<Vec<_>>(), "actions": actions}))
}

/// What to propose for one busy agent: (kind, detail).
fn proposal_for(m: &AgentMetrics, new_agent: bool) -> (&'static str, String) {
    let mean_fuel = human(m.fuel / m.calls.saturating_sub(m.errors).max(1));
    if new_agent {
        let spec = format!(
            "A specialised agent taking over the most frequent requests of `{}` ({} calls, {} errors, mean fuel {mean_fuel} per call since load): the same answers for that narrower kind of request, cheaper per call, so `{}` keeps the rest.",
            m.name, m.calls, m.errors, m.name
        );
        ("new-agent", spec)
    } else {
        ("instances", format!("`{}` served {} calls since load ({} errors, mean fuel {mean_fuel}); one more concurrent instance would spread the load.", m.name, m.calls, m.errors))
    }
}

/// Proposes more instances (or a new specialised agent) for busy agents.
fn propose(metrics: &[AgentMetrics], new_agent: bool) -> Response {
    let busy = high_volume(metrics, NAME);
    if busy.is_empty() {
        return Response::text(format!(
            "No agent is busy enough to propose anything: that needs at least {} calls since load and 3x the median agent's.",
            ranking::HIGH_VOLUME_CALLS
        ))
        .with_data(&json!({"proposals": []}));
    }
    let mut lines = Vec::new();
    let mut proposals = Vec::new();
    for m in busy.into_iter().take(MAX_PROPOSALS_PER_REQUEST) {
        let (kind, detail) = proposal_for(m, new_agent);
        let key = format!("proposed/{kind}/{}", m.name);
        let outcome = match last_done(&key).filter(|d| in_cooldown(d.at, now_secs())) {
            Some(done) => format!("already proposed ({}, {})", done.id, ago(done.at)),
            None => match evolution::propose(kind, &m.name, &detail) {
                Ok(id) => {
                    remember_done(&key, &id);
                    format!("proposed as {id}; an admin decides whether to apply it")
                }
                Err(e) => refusal(&e),
            },
        };
        lines.push(format!("- {kind} for {}: {outcome}", m.name));
        proposals.push(json!({"kind": kind, "agent": m.name, "detail": detail, "outcome": outcome}));
    }
    Response::text(format!("Proposals (never applied by me):\n{}", lines.join("\n"))).with_data(&json!({"proposals": proposals}))
}

/// "what did you do?": the remembered evolutions and proposals.
fn history() -> Result<Response, AgentError> {
    let mut lines = Vec::new();
    for prefix in ["evolved/", "proposed/"] {
        for key in memory::list_keys(prefix, 50)? {
            if let Some(done) = last_done(&key) {
                let what = key.trim_start_matches(prefix).replace('/', " for ");
                let verb = if prefix == "evolved/" { "started evolving" } else { "proposed" };
                lines.push(format!("- {verb} {what}: {} ({})", done.id, ago(done.at)));
            }
        }
    }
    if lines.is_empty() {
        return Ok(Response::text("I have not started any evolution or made any proposal yet."));
    }
    Ok(Response::text(format!("What I did:\n{}", lines.join("\n"))))
}

impl Agent for PerformanceOptimizer {
    fn describe() -> Manifest {
        Manifest::new(
            NAME,
            "0.1.0",
            "Finds the worst-performing agents from the host's metrics (error rate, then fuel per call), starts evolutions for them when asked, and proposes more instances or specialised agents for busy ones. Fully rule-based: works offline.",
        )
        .skill(
            Skill::new("rank-agents", "Report which agents perform worst: errors and fuel per call")
                .keywords(["performance", "perform", "worst", "slowest", "slow", "underperforming", "metrics", "error rate", "fuel", "performing", "bottleneck"]),
        )
        .skill(
            Skill::new("optimise-agents", "Start evolutions of the worst agents, or propose more instances")
                .keywords(["optimise", "optimize", "start evolutions", "more instances", "scale out"]),
        )
        .capability("evolution", "reads agent metrics, starts evolutions and proposes changes within its scope")
        .capability("memory", "remembers what it started, to not repeat it within a day")
        .capability("log", "logs what it decided")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let text = req.text.trim();
        let wants = intent(text, &[]);
        if wants == Intent::History {
            return history();
        }
        let metrics = match evolution::agent_stats() {
            Ok(m) => m,
            Err(e) => {
                let text = format!("I cannot read the agents' metrics: {}.", refusal(&e));
                return Ok(Response::text(text).with_data(&json!({"error": e.code(), "message": e.message()})));
            }
        };
        let ranked = rank(&metrics, NAME);
        let names: Vec<String> = metrics.iter().map(|m| m.name.clone()).collect();
        match intent(text, &names) {
            Intent::Act(only) => Ok(act(&metrics, &ranked, only)),
            Intent::Propose { new_agent } => Ok(propose(&metrics, new_agent)),
            Intent::History => history(),
            Intent::Report => Ok(report(&ranked)),
        }
    }
}

export_agent!(PerformanceOptimizer);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_and_refusals_read_well() {
        let m = AgentMetrics { name: "summarizer".into(), version: "v".into(), calls: 500, errors: 0, fuel: 500_000_000, evolvable: false };
        let (kind, detail) = proposal_for(&m, false);
        assert_eq!(kind, "instances");
        assert!(detail.contains("500 calls") && detail.contains("mean fuel 1.0M"), "{detail}");
        let (kind, spec) = proposal_for(&m, true);
        assert_eq!(kind, "new-agent");
        assert!(spec.starts_with("A specialised agent taking over the most frequent requests of `summarizer`"), "{spec}");
        assert!(refusal(&EvolutionError::NotAllowed("`performance-optimizer` may not evolve `notes`".into())).starts_with("not within my scope"));
        assert!(refusal(&EvolutionError::Failed("this host runs no evolution engine".into())).contains("no evolution engine"));
    }
}
