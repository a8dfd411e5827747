//! `revenue-optimizer`: pricing and revenue analysis for a subscription
//! business. It reads the numbers in a request (MRR, ARR, churn, customers,
//! ARPU, price, CAC, margin), computes what follows (ARR, ARPU, lifetime,
//! LTV, LTV:CAC) and compares price changes over twelve months. With a
//! model (`fast`) the model writes the advice from those computed numbers;
//! without one, or when its reply is malformed, the computed answer is the
//! answer, and `data.method` says which.
//!
//! Its recommendations are remembered across sessions (`decision/<n>`, the
//! last 50) and recalled ("what did we decide about pricing?").
use agentkernel_sdk::prelude::*;
use serde_json::{Value, json};

pub mod common;
pub mod metrics;

use common::{ModelReply, consulted_by, ask_model, asks_for_decisions, decisions_text, last_time, recent_decisions, record_decision, remember_exchange, session_turns, stated_decision, text_field};
use common::money;
use metrics::{Derived, Scenario, Stated, advice, best, derive, read_metrics, scenarios};

pub struct RevenueOptimizer;

const SYSTEM_PROMPT: &str = "You are a revenue optimisation analyst for a subscription (SaaS) business. \
The user's question comes with metrics a calculator computed from their numbers, price scenarios over twelve months \
and the decisions taken before: trust those numbers and do not recompute them. Give concrete advice (price, packaging, \
retention, acquisition) in at most 150 words. Reply with a JSON object only: \
{\"answer\": \"your advice\", \"recommendation\": \"the one decision you recommend, one sentence\"}";

/// What the offline analysis found.
struct Analysis {
    stated: Stated,
    derived: Derived,
    scenarios: Vec<Scenario>,
    advice: Vec<String>,
}

fn analyse(text: &str) -> Analysis {
    let stated = read_metrics(text);
    let derived = derive(&stated);
    let scenarios = scenarios(&derived, stated.price.or(derived.arpu));
    let advice = advice(&derived, best(&scenarios));
    Analysis { stated, derived, scenarios, advice }
}

/// The metrics line: only what is known, assumptions marked.
fn metrics_line(d: &Derived) -> String {
    let mut parts = Vec::new();
    if let Some(m) = d.mrr {
        parts.push(format!("MRR {}", money(m)));
    }
    if let Some(a) = d.arr {
        parts.push(format!("ARR {}", money(a)));
    }
    if let Some(c) = d.customers {
        parts.push(format!("{c:.0} customers"));
    }
    if let Some(a) = d.arpu {
        parts.push(format!("ARPU {}", money(a)));
    }
    if let (Some(c), Some(l)) = (d.churn, d.lifetime_months) {
        parts.push(format!("churn {:.1}%/month (average lifetime {l:.0} months)", c * 100.0));
    }
    if let Some(l) = d.ltv {
        let assumed = if d.margin_assumed { ", assumed" } else { "" };
        parts.push(format!("LTV {} (at {:.0}% gross margin{assumed})", money(l), d.margin * 100.0));
    }
    if let Some(r) = d.ltv_to_cac {
        parts.push(format!("LTV:CAC {r:.1}"));
    }
    parts.join(" · ")
}

fn scenarios_line(scenarios: &[Scenario]) -> String {
    let lines: Vec<String> = scenarios
        .iter()
        .map(|s| {
            let price = s.price.map(|p| format!(" (price {})", money(p))).unwrap_or_default();
            format!("{:+}%{price}: {} over 12 months", s.change_percent, money(s.revenue_12_months))
        })
        .collect();
    lines.join("; ")
}

/// The answer without a model.
fn offline_answer(a: &Analysis) -> String {
    if a.stated.is_empty() {
        return "Give me your numbers and I will work out the rest, e.g. \"MRR 12000, churn 4%, 300 customers, CAC 500, price $40\". \
Meanwhile: price on the value your best customers get, offer an annual plan (two months free) to cut churn, \
and keep a cheaper tier so price rises do not push customers out."
            .to_string();
    }
    let mut text = format!("Revenue analysis (calculated): {}.", metrics_line(&a.derived));
    if !a.scenarios.is_empty() {
        let assumed = if a.derived.churn.is_none() { " (churn not given: 3%/month assumed)" } else { "" };
        text.push_str(&format!("\nPrice scenarios{assumed}: {}.", scenarios_line(&a.scenarios)));
    }
    if !a.advice.is_empty() {
        text.push_str(&format!("\nRecommendation: {}", a.advice.join(" ")));
    }
    text
}

/// The decision an offline analysis stands for, if it recommends anything.
fn offline_decision(a: &Analysis) -> Option<String> {
    let best = best(&a.scenarios)?;
    let price = best.price.map(|p| format!(" (to {})", money(p))).unwrap_or_default();
    Some(match best.change_percent {
        0 => "keep the current price".to_string(),
        c => format!("change the price by {c:+}%{price}"),
    })
}

fn analysis_json(a: &Analysis) -> Value {
    json!({"stated": a.stated, "metrics": a.derived, "scenarios": a.scenarios, "advice": a.advice})
}

/// Recalls past decisions, or records one the user states.
fn answer_about_decisions(req: &Request) -> Result<Option<Response>, AgentError> {
    if asks_for_decisions(&req.text) {
        let decisions = recent_decisions(10)?;
        let text = decisions_text(&decisions, &req.session_id);
        return Ok(Some(Response::text(text).with_data(&json!({"method": "memory", "decisions": decisions}))));
    }
    if let Some(decision) = stated_decision(&req.text) {
        let n = record_decision(&req.session_id, "pricing", decision)?;
        let text = format!("Recorded decision #{n}: {decision}");
        return Ok(Some(Response::text(text).with_data(&json!({"method": "memory", "decision": n}))));
    }
    Ok(None)
}

impl Agent for RevenueOptimizer {
    fn describe() -> Manifest {
        Manifest::new(
            "revenue-optimizer",
            "0.1.0",
            "Pricing and revenue analysis: computes MRR, ARR, churn, ARPU, LTV and LTV:CAC from the numbers you give and compares \
price changes over twelve months. With a model it writes the advice from those numbers; offline it answers with the \
calculation and a recommendation. Remembers its pricing decisions across sessions.",
        )
        .skill(
            Skill::new("price-plans", "Recommend prices and compare price change scenarios")
                .keywords(["price", "pricing", "priced", "discount", "monetize", "monetise", "subscription"]),
        )
        .skill(
            Skill::new("revenue-metrics", "Compute MRR, ARR, churn, ARPU, LTV and CAC payback")
                .keywords(["revenue", "mrr", "arr", "churn", "ltv", "arpu", "cac", "upsell"]),
        )
        .capability("llm", "writes the pricing advice from the computed numbers (fast model)")
        .capability("memory", "remembers its pricing decisions and each session's turns")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let text = req.text.trim();
        if text.is_empty() {
            return Err(AgentError::InvalidRequest("ask about pricing or revenue, e.g. \"MRR 12000, churn 4%: should we raise prices?\"".into()));
        }
        if let Some(response) = answer_about_decisions(&req)? {
            remember_exchange(&req.session_id, text, &response.text);
            return Ok(response);
        }
        let analysis = analyse(text);
        let past = recent_decisions(5)?;
        let context = json!({"question": text, "calculated": analysis_json(&analysis), "past_decisions": past});
        let turns = session_turns(&req.session_id, 6);
        let (mut answer, decision, mut data) = match ask_model("fast", SYSTEM_PROMPT, &turns, &context.to_string(), 500) {
            ModelReply::Json { fields, model } => {
                let decision = text_field(&fields, "recommendation").map(str::to_string).or_else(|| offline_decision(&analysis));
                let answer = text_field(&fields, "answer").unwrap_or_default().to_string();
                (answer, decision, json!({"method": "llm", "model": model}))
            }
            ModelReply::Unusable { reason } => (offline_answer(&analysis), offline_decision(&analysis), json!({"method": "offline", "reason": reason})),
        };
        // Consulted by another agent, this is advice to that agent (for its
        // user, who did not take this agent's decisions), not a decision taken here.
        let consulted = consulted_by(&req);
        let recall = last_time(&past);
        if !recall.is_empty() && consulted.is_none() {
            answer.push_str(&format!("\n{recall}"));
        }
        if let (Some(decision), None) = (&decision, &consulted) {
            data["decision"] = json!(record_decision(&req.session_id, "pricing", decision)?);
            data["recommendation"] = json!(decision);
        }
        data["analysis"] = analysis_json(&analysis);
        data["past_decisions"] = json!(past);
        data["consulted_by"] = json!(consulted);
        remember_exchange(&req.session_id, text, &answer);
        Ok(Response::text(answer).with_data(&data))
    }
}

export_agent!(RevenueOptimizer);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_answer_shows_metrics_scenarios_and_a_recommendation() {
        let a = analyse("How should we price the pro plan; MRR 12000, churn 4%, 300 customers");
        let text = offline_answer(&a);
        assert!(text.contains("MRR $12,000") && text.contains("ARR $144,000"), "{text}");
        assert!(text.contains("ARPU $40") && text.contains("LTV $800"), "{text}");
        assert!(text.contains("+10% (price $44)"), "{text}");
        assert_eq!(offline_decision(&a).as_deref(), Some("change the price by +10% (to $44)"));
    }

    #[test]
    fn without_numbers_it_asks_for_them_and_decides_nothing() {
        let a = analyse("how should we price the pro plan");
        assert!(offline_answer(&a).contains("Give me your numbers"));
        assert_eq!(offline_decision(&a), None);
    }

    #[test]
    fn the_manifest_matches_pricing_requests() {
        use agentkernel_sdk::routing::{Candidate, CandidateSkill, match_skills};
        let m = RevenueOptimizer::describe();
        let candidate = Candidate {
            name: m.name.clone(),
            description: m.description.clone(),
            skills: m.skills.iter().map(|s| CandidateSkill { name: s.name.clone(), description: s.description.clone(), keywords: s.keywords.clone() }).collect(),
        };
        for message in ["how should we price the pro plan; MRR 12000, churn 4%", "what is our LTV?", "our churn is too high"] {
            assert_eq!(match_skills(message, std::slice::from_ref(&candidate), 3).agents, ["revenue-optimizer"], "{message}");
        }
    }
}
