//! `product-manager`: ranks features and keeps the product backlog. It
//! scores each listed feature by RICE (reach × impact × confidence ÷
//! effort) from the numbers given, estimating from the feature's words
//! where none are given, and logs feature requests (from users, or from
//! `customer-support`) to a backlog in memory. With a model (`fast`) the
//! model writes the recommendation from the scores; offline the ranking is
//! the answer, and `data.method` says which.
//!
//! Its prioritisation decisions are remembered across sessions
//! (`decision/<n>`, the last 50) and recalled ("what did we decide?").
use agentkernel_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub mod common;
pub mod rice;

use common::{ModelReply, consulted_by, ask_model, asks_for_decisions, clip, decisions_text, last_time, recent_decisions, record_decision, remember_exchange, session_turns, stated_decision, text_field};
use rice::{Scored, rank, ranking_text, score, split_features};

pub struct ProductManager;

/// Backlog entries kept; the oldest is deleted as a new one is logged.
const MAX_BACKLOG: i64 = 200;
const BACKLOG_COUNTER: &str = "backlog-count";
/// Backlog entries read to rank the backlog.
const BACKLOG_SHOWN: usize = 20;

const SYSTEM_PROMPT: &str = "You are a pragmatic product manager. The user's request comes with the features it lists, \
each scored by RICE (reach x impact x confidence / effort; factors marked estimated were guessed from words), the backlog \
and past decisions. Recommend what to build first and why, and what to drop, in at most 150 words. Reply with a JSON \
object only: {\"answer\": \"your recommendation\", \"decision\": \"the priority order you recommend, one line\"}";

/// What a request asks for.
#[derive(Debug, PartialEq)]
pub enum Intent {
    /// Rank these features.
    Prioritise(Vec<String>),
    /// Log a feature someone asked for.
    FeatureRequest(String),
    /// Show the backlog ranked.
    Backlog,
}

/// Words that mark a request as a feature someone wants.
const REQUEST_MARKERS: &[&str] = &["feature request", "users want", "customers want", "are asking for", "please add", "can you add", "could you add", "would be great if", "would love", "i wish", "we wish"];

pub fn intent(text: &str) -> Intent {
    let lower = text.to_lowercase();
    let features = split_features(text);
    if features.len() >= 2 && !lower.starts_with("feature request") {
        return Intent::Prioritise(features);
    }
    if REQUEST_MARKERS.iter().any(|m| lower.contains(m)) {
        let mut feature = text.trim();
        // "feature request: Feature request: ..." (as forwarded) is one request.
        while let Some((_, tail)) = feature.split_once(':').filter(|(head, _)| head.to_lowercase().contains("request")) {
            feature = tail.trim();
        }
        return Intent::FeatureRequest(feature.to_string());
    }
    Intent::Backlog
}

/// One logged feature request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BacklogItem {
    pub n: i64,
    pub feature: String,
    pub session: String,
}

fn backlog_key(n: i64) -> String {
    format!("backlog/{n:08}")
}

/// Logs `feature` under `backlog/<n>` (numbers from an atomic counter); the
/// entry that falls out of the last [`MAX_BACKLOG`] is deleted.
fn log_request(session: &str, feature: &str) -> Result<i64, AgentError> {
    let n = memory::increment(BACKLOG_COUNTER, 1)?;
    let item = BacklogItem { n, feature: clip(feature, 400).to_string(), session: session.to_string() };
    let json = serde_json::to_string(&item).map_err(|e| AgentError::Failed(e.to_string()))?;
    memory::set_string(&backlog_key(n), &json)?;
    if n > MAX_BACKLOG
        && let Err(e) = memory::delete(&backlog_key(n - MAX_BACKLOG))
    {
        log::warn(&format!("could not delete an old backlog entry: {e:?}"));
    }
    Ok(n)
}

/// The newest backlog entries, newest first.
fn backlog(limit: usize) -> Result<Vec<BacklogItem>, AgentError> {
    let newest = memory::get_string(BACKLOG_COUNTER)?.and_then(|s| s.trim().parse::<i64>().ok()).unwrap_or(0);
    let mut out = Vec::new();
    let mut n = newest;
    while n > 0 && n > newest - MAX_BACKLOG && out.len() < limit {
        if let Some(item) = memory::get_string(&backlog_key(n))?.and_then(|j| serde_json::from_str(&j).ok()) {
            out.push(item);
        }
        n -= 1;
    }
    Ok(out)
}

/// "A > B > C": the order a ranking stands for.
fn order_line(ranked: &[Scored]) -> String {
    ranked.iter().map(|s| s.feature.as_str()).collect::<Vec<_>>().join(" > ")
}

/// The offline answer and decision (if any) for an intent, with its data.
fn offline(intent: &Intent, session: &str) -> Result<(String, Option<String>, Value), AgentError> {
    Ok(match intent {
        Intent::Prioritise(features) => {
            let ranked = rank(features);
            let text = format!(
                "Priorities by RICE (reach × impact × confidence ÷ effort; * = estimated from the words):\n{}\nBuild \"{}\" first.",
                ranking_text(&ranked),
                ranked[0].feature
            );
            (text, Some(format!("priority order: {}", order_line(&ranked))), json!({"ranking": ranked}))
        }
        Intent::FeatureRequest(feature) => {
            let n = log_request(session, feature)?;
            let scored = score(feature);
            let text = format!("Logged feature request #{n} to the backlog: \"{}\" (RICE estimate {:.0}).", scored.feature, scored.score);
            (text, None, json!({"backlog_item": n, "ranking": [scored]}))
        }
        Intent::Backlog => {
            let items = backlog(BACKLOG_SHOWN)?;
            if items.is_empty() {
                let text = "The backlog is empty. List features to rank (\"prioritise: SSO (reach 800, effort 3 weeks), dark mode, CSV export\") or log a feature request (\"feature request: ...\").";
                (text.to_string(), None, json!({"ranking": []}))
            } else {
                let ranked = rank(&items.iter().map(|i| i.feature.clone()).collect::<Vec<_>>());
                let text = format!("The backlog ({} requests), ranked by RICE:\n{}", items.len(), ranking_text(&ranked));
                (text, None, json!({"ranking": ranked}))
            }
        }
    })
}

/// Recalls past decisions, or records one the user states.
fn answer_about_decisions(req: &Request) -> Result<Option<Response>, AgentError> {
    if asks_for_decisions(&req.text) {
        let decisions = recent_decisions(10)?;
        let text = decisions_text(&decisions, &req.session_id);
        return Ok(Some(Response::text(text).with_data(&json!({"method": "memory", "decisions": decisions}))));
    }
    if let Some(decision) = stated_decision(&req.text) {
        let n = record_decision(&req.session_id, "priorities", decision)?;
        let text = format!("Recorded decision #{n}: {decision}");
        return Ok(Some(Response::text(text).with_data(&json!({"method": "memory", "decision": n}))));
    }
    Ok(None)
}

impl Agent for ProductManager {
    fn describe() -> Manifest {
        Manifest::new(
            "product-manager",
            "0.1.0",
            "Ranks features by RICE and keeps the product backlog: scores the features you list from the numbers you give \
(reach, impact, confidence, effort) or estimates them from their words, and logs feature requests. With a model it \
writes the recommendation from the scores; offline it answers with the ranking. Remembers its priority decisions across sessions.",
        )
        .skill(
            Skill::new("prioritise-features", "Rank features by RICE score and recommend what to build first")
                .keywords(["prioritise", "prioritize", "priorities", "feature", "roadmap", "rice", "mvp", "sprint", "user story"]),
        )
        .skill(Skill::new("backlog", "Log feature requests and show the ranked backlog").keywords(["backlog", "feature request", "wishlist"]))
        .capability("llm", "writes the recommendation from the RICE scores (fast model)")
        .capability("memory", "keeps the backlog, its priority decisions and each session's turns")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let text = req.text.trim();
        if text.is_empty() {
            return Err(AgentError::InvalidRequest("list features to prioritise, e.g. \"prioritise: SSO, dark mode, CSV export\"".into()));
        }
        if let Some(response) = answer_about_decisions(&req)? {
            remember_exchange(&req.session_id, text, &response.text);
            return Ok(response);
        }
        let intent = intent(text);
        let (offline_text, offline_decision, mut data) = offline(&intent, &req.session_id)?;
        let past = recent_decisions(5)?;
        // A logged request needs no advice: the model is asked only to prioritise.
        let reply = match intent {
            Intent::FeatureRequest(_) => ModelReply::Unusable { reason: "feature request logged".into() },
            _ => {
                let context = json!({"request": text, "scored": data["ranking"], "past_decisions": past});
                ask_model("fast", SYSTEM_PROMPT, &session_turns(&req.session_id, 6), &context.to_string(), 500)
            }
        };
        let (mut answer, decision) = match reply {
            ModelReply::Json { fields, model } => {
                data["method"] = json!("llm");
                data["model"] = json!(model);
                let decision = text_field(&fields, "decision").map(str::to_string).or(offline_decision);
                (text_field(&fields, "answer").unwrap_or_default().to_string(), decision)
            }
            ModelReply::Unusable { reason } => {
                data["method"] = json!("offline");
                data["reason"] = json!(reason);
                (offline_text, offline_decision)
            }
        };
        // Consulted by another agent, this is advice to that agent (for its
        // user, who did not take this agent's decisions), not a decision taken here.
        let consulted = consulted_by(&req);
        let recall = last_time(&past);
        if !recall.is_empty() && consulted.is_none() {
            answer.push_str(&format!("\n{recall}"));
        }
        if let (Some(decision), None) = (&decision, &consulted) {
            data["decision"] = json!(record_decision(&req.session_id, "priorities", decision)?);
            data["recommendation"] = json!(decision);
        }
        data["past_decisions"] = json!(past);
        data["consulted_by"] = json!(consulted);
        remember_exchange(&req.session_id, text, &answer);
        Ok(Response::text(answer).with_data(&data))
    }
}

export_agent!(ProductManager);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents_from_plain_language() {
        assert_eq!(intent("prioritise these features: SSO, dark mode, CSV export"), Intent::Prioritise(vec!["SSO".into(), "dark mode".into(), "CSV export".into()]));
        assert_eq!(intent("feature request: bulk edit for invoices"), Intent::FeatureRequest("bulk edit for invoices".into()));
        assert_eq!(intent("feature request: Feature request: bulk edit"), Intent::FeatureRequest("bulk edit".into()));
        assert_eq!(intent("Customers want a dark mode"), Intent::FeatureRequest("Customers want a dark mode".into()));
        assert_eq!(intent("what is on the backlog?"), Intent::Backlog);
        assert!(matches!(intent("feature request: export, import"), Intent::FeatureRequest(_)), "a request's own commas are not a list");
    }

    #[test]
    fn the_manifest_matches_prioritisation_requests() {
        use agentkernel_sdk::routing::{Candidate, CandidateSkill, match_skills};
        let m = ProductManager::describe();
        let candidate = Candidate {
            name: m.name.clone(),
            description: m.description.clone(),
            skills: m.skills.iter().map(|s| CandidateSkill { name: s.name.clone(), description: s.description.clone(), keywords: s.keywords.clone() }).collect(),
        };
        for message in ["prioritise these features: SSO, dark mode, CSV export", "what should go on the roadmap", "show me the backlog"] {
            assert_eq!(match_skills(message, std::slice::from_ref(&candidate), 3).agents, ["product-manager"], "{message}");
        }
    }
}
