//! `business-strategist`: strategy questions (entering a market, facing a
//! competitor, raising money, pricing, the product's direction). It drafts
//! a SWOT and three options with a recommendation from a playbook per
//! topic, and consults `revenue-optimizer` (when the question has numbers
//! or is about pricing) and `product-manager` (when it is about the
//! product) through the host. With a model (`smart`) the model writes the
//! strategy from the draft and the consultations; offline the draft is the
//! answer, and `data.method` says which. A consultation that is refused or
//! fails is noted and the answer goes on without it.
//!
//! Its recommendations are remembered across sessions (`decision/<n>`, the
//! last 50) and recalled ("what did we decide about the EU?").
use agentkernel_sdk::prelude::*;
use serde_json::{Value, json};

pub mod common;
pub mod playbook;

use common::{Consultation, money, ModelReply, ask_model, asks_for_decisions, consult, decisions_text, last_time, recent_decisions, record_decision, remember_exchange, session_turns, stated_decision, text_field};
use playbook::{Draft, draft};

pub struct BusinessStrategist;

const NAME: &str = "business-strategist";

const SYSTEM_PROMPT: &str = "You are a senior business strategist advising a small software company. The question comes \
with a draft (topic, SWOT, three options and a recommended one), the answers of specialist colleagues (revenue analysis, \
product priorities) and the decisions taken before. Use their numbers; do not invent figures. Give a clear strategy in at \
most 200 words: the situation, the options, what to do first and how to measure it. Reply with a JSON object only: \
{\"answer\": \"your strategy\", \"decision\": \"the course you recommend, one sentence\"}";

/// Which colleagues help with `text`: revenue numbers and pricing go to
/// `revenue-optimizer`, product questions to `product-manager`.
pub fn colleagues_for(text: &str, d: &Draft) -> Vec<&'static str> {
    let lower = text.to_lowercase();
    let mut out = Vec::new();
    let has_numbers = text.chars().any(|c| c.is_ascii_digit());
    if has_numbers || d.topic == "pricing" || ["revenue", "mrr", "arr", "churn", "margin"].iter().any(|w| lower.contains(w)) {
        out.push("revenue-optimizer");
    }
    if d.topic == "product" || ["feature", "roadmap", "backlog"].iter().any(|w| lower.contains(w)) {
        out.push("product-manager");
    }
    out
}

/// Findings from the colleagues' data folded into the SWOT.
fn fold_in(d: &mut Draft, consultations: &[Consultation]) {
    let Some(metrics) = consultations
        .iter()
        .find(|c| c.agent == "revenue-optimizer")
        .and_then(|c| c.data.as_ref())
        .and_then(|data| data.pointer("/analysis/metrics").cloned())
    else {
        return;
    };
    let number = |key: &str| metrics.get(key).and_then(Value::as_f64);
    if let (Some(mrr), Some(arr)) = (number("mrr"), number("arr")) {
        d.swot.strengths.push(format!("recurring revenue of {}/month ({}/year) to fund the move", money(mrr), money(arr)));
    }
    if let Some(churn) = number("churn") {
        let line = format!("churn of {:.1}% a month", churn * 100.0);
        if churn > 0.03 { d.swot.weaknesses.push(format!("{line}: fix retention before spending on growth")) } else { d.swot.strengths.push(line) }
    }
    if let Some(ratio) = number("ltv_to_cac").filter(|r| *r < 3.0) {
        d.swot.weaknesses.push(format!("LTV:CAC of {ratio:.1}, under 3: acquisition costs too much"));
    }
}

/// One line per consultation for the offline answer.
fn consultations_text(consultations: &[Consultation]) -> String {
    consultations
        .iter()
        .map(|c| match (&c.answer, &c.error) {
            (Some(answer), _) => format!("\nFrom {}: {}", c.agent, answer.lines().next().unwrap_or("")),
            (None, error) => format!("\n({} could not be consulted: {})", c.agent, error.as_deref().unwrap_or("unknown error")),
        })
        .collect()
}

/// Recalls past decisions, or records one the user states.
fn answer_about_decisions(req: &Request) -> Result<Option<Response>, AgentError> {
    if asks_for_decisions(&req.text) {
        let decisions = recent_decisions(10)?;
        let text = decisions_text(&decisions, &req.session_id);
        return Ok(Some(Response::text(text).with_data(&json!({"method": "memory", "decisions": decisions}))));
    }
    if let Some(decision) = stated_decision(&req.text) {
        let n = record_decision(&req.session_id, "strategy", decision)?;
        let text = format!("Recorded decision #{n}: {decision}");
        return Ok(Some(Response::text(text).with_data(&json!({"method": "memory", "decision": n}))));
    }
    Ok(None)
}

impl Agent for BusinessStrategist {
    fn describe() -> Manifest {
        Manifest::new(
            NAME,
            "0.1.0",
            "Business strategy: market entry, competitors, fundraising and direction. Drafts a SWOT and three options with a \
recommendation, and consults revenue-optimizer and product-manager for numbers and priorities. With a model it writes \
the strategy from the draft and their answers; offline it answers with the draft. Remembers its decisions across sessions.",
        )
        .skill(
            Skill::new("strategy", "Recommend a strategy with a SWOT analysis and weighed options")
                .keywords(["strategy", "strategic", "swot", "market", "expansion", "expand", "go-to-market", "positioning", "vision"]),
        )
        .skill(
            Skill::new("competition", "Assess competitors, fundraising or partnerships and advise")
                .keywords(["competitor", "competitors", "competition", "fundraising", "investors", "partnership", "pivot"]),
        )
        .capability("llm", "writes the strategy from the draft and the colleagues' answers (smart model)")
        .capability("memory", "remembers its decisions and each session's turns")
        .capability("agents", "consults revenue-optimizer and product-manager")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let text = req.text.trim();
        if text.is_empty() {
            return Err(AgentError::InvalidRequest("ask a strategy question, e.g. \"what should our strategy be for entering the EU market?\"".into()));
        }
        if let Some(response) = answer_about_decisions(&req)? {
            remember_exchange(&req.session_id, text, &response.text);
            return Ok(response);
        }
        let mut draft = draft(text);
        let consultations: Vec<Consultation> = colleagues_for(text, &draft).into_iter().map(|agent| consult(NAME, agent, &req.session_id, text)).collect();
        fold_in(&mut draft, &consultations);
        let past = recent_decisions(5)?;
        let context = json!({"question": text, "draft": draft, "colleagues": consultations, "past_decisions": past});
        let (mut answer, decision, mut data) = match ask_model("smart", SYSTEM_PROMPT, &session_turns(&req.session_id, 6), &context.to_string(), 700) {
            ModelReply::Json { fields, model } => {
                let decision = text_field(&fields, "decision").unwrap_or(draft.recommendation()).to_string();
                (text_field(&fields, "answer").unwrap_or_default().to_string(), decision, json!({"method": "llm", "model": model}))
            }
            ModelReply::Unusable { reason } => {
                let answer = format!("{}{}", draft.text(), consultations_text(&consultations));
                (answer, draft.recommendation().to_string(), json!({"method": "offline", "reason": reason}))
            }
        };
        let recall = last_time(&past);
        if !recall.is_empty() {
            answer.push_str(&format!("\n{recall}"));
        }
        let topic = format!("{}: {}", draft.topic, draft.subject);
        data["decision"] = json!(record_decision(&req.session_id, &topic, &decision)?);
        data["recommendation"] = json!(decision);
        data["topic"] = json!(draft.topic);
        data["draft"] = json!(draft);
        data["consulted"] = json!(consultations);
        data["past_decisions"] = json!(past);
        remember_exchange(&req.session_id, text, &answer);
        Ok(Response::text(answer).with_data(&data))
    }
}

export_agent!(BusinessStrategist);

#[cfg(test)]
mod tests {
    use super::*;

    fn revenue_answer(metrics: Value) -> Consultation {
        Consultation { agent: "revenue-optimizer".into(), ok: true, answer: Some("MRR $12,000".into()), data: Some(json!({"analysis": {"metrics": metrics}})), error: None }
    }

    #[test]
    fn colleagues_are_chosen_by_the_question() {
        let q = "strategy for entering the EU market? MRR 12000, churn 4%";
        assert_eq!(colleagues_for(q, &draft(q)), ["revenue-optimizer"]);
        let q = "what should our product strategy be, given the roadmap";
        assert_eq!(colleagues_for(q, &draft(q)), ["product-manager"]);
        let q = "how do we beat our competitors";
        assert!(colleagues_for(q, &draft(q)).is_empty());
    }

    #[test]
    fn revenue_numbers_enter_the_swot() {
        let mut d = draft("entering the EU market");
        fold_in(&mut d, &[revenue_answer(json!({"mrr": 12000.0, "arr": 144000.0, "churn": 0.04, "ltv_to_cac": 1.6}))]);
        assert!(d.swot.strengths.iter().any(|s| s.contains("$12,000/month ($144,000/year)")), "{:?}", d.swot);
        assert!(d.swot.weaknesses.iter().any(|s| s.contains("churn of 4.0%")), "{:?}", d.swot);
        assert!(d.swot.weaknesses.iter().any(|s| s.contains("LTV:CAC of 1.6")), "{:?}", d.swot);
    }

    #[test]
    fn a_failed_consultation_is_named_not_fatal() {
        let failed = Consultation { agent: "revenue-optimizer".into(), ok: false, answer: None, data: None, error: Some("not-allowed".into()) };
        let mut d = draft("entering the EU market");
        let before = d.clone();
        fold_in(&mut d, std::slice::from_ref(&failed));
        assert_eq!(d, before);
        assert_eq!(consultations_text(&[failed]), "\n(revenue-optimizer could not be consulted: not-allowed)");
    }

    #[test]
    fn the_manifest_matches_strategy_requests() {
        use agentkernel_sdk::routing::{Candidate, CandidateSkill, match_skills};
        let m = BusinessStrategist::describe();
        let candidate = Candidate {
            name: m.name.clone(),
            description: m.description.clone(),
            skills: m.skills.iter().map(|s| CandidateSkill { name: s.name.clone(), description: s.description.clone(), keywords: s.keywords.clone() }).collect(),
        };
        for message in ["what should our strategy be for entering the EU market", "how do we beat our competitors"] {
            assert_eq!(match_skills(message, std::slice::from_ref(&candidate), 3).agents, [NAME], "{message}");
        }
        assert!(match_skills("how should we price the pro plan; MRR 12000, churn 4%", &[candidate], 3).agents.is_empty());
    }
}
