//! `customer-support`: answers customers' questions from a built-in
//! knowledge base (password resets, 2FA, invoices, refunds, cancelling,
//! upgrades, exports, account deletion, the API), passes feature requests
//! to `product-manager`, and opens a ticket in memory when it cannot
//! answer. With a model (`fast`) the model writes the reply from the
//! matching article; offline the article is the reply, and `data.method`
//! says which.
//!
//! Tickets and forwarded requests are its decisions, remembered across
//! sessions (`decision/<n>`, the last 50; tickets under `ticket/<n>`).
use agentkernel_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub mod common;
pub mod kb;

use common::{Decision, ModelReply, ask_model, asks_for_decisions, clip, consult, decisions_text, recent_decisions, record_decision, remember_exchange, session_turns, stated_decision};
use kb::{Article, Kind, classify};

pub struct CustomerSupport;

/// Tickets kept; the oldest is deleted as a new one is opened.
const MAX_TICKETS: i64 = 500;
const TICKET_COUNTER: &str = "ticket-count";

const SYSTEM_PROMPT: &str = "You are a friendly, concise customer support agent for a SaaS product. Answer the customer's \
message using only the help article given, in at most 100 words, with the exact steps it gives. If the article does not \
answer the message, say a colleague will follow up and set needs_ticket to true. Reply with a JSON object only: \
{\"answer\": \"your reply to the customer\", \"needs_ticket\": false}";

/// One support ticket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ticket {
    pub n: i64,
    pub session: String,
    pub text: String,
    pub status: String,
}

fn ticket_key(n: i64) -> String {
    format!("ticket/{n:08}")
}

/// Opens a ticket under `ticket/<n>` (numbers from an atomic counter) and
/// records it as a decision; the ticket that falls out of the last
/// [`MAX_TICKETS`] is deleted.
fn open_ticket(session: &str, text: &str) -> Result<i64, AgentError> {
    let n = memory::increment(TICKET_COUNTER, 1)?;
    let ticket = Ticket { n, session: session.to_string(), text: clip(text, 2000).to_string(), status: "open".into() };
    let json = serde_json::to_string(&ticket).map_err(|e| AgentError::Failed(e.to_string()))?;
    memory::set_string(&ticket_key(n), &json)?;
    if n > MAX_TICKETS
        && let Err(e) = memory::delete(&ticket_key(n - MAX_TICKETS))
    {
        log::warn(&format!("could not delete an old ticket: {e:?}"));
    }
    record_decision(session, "ticket", &format!("opened ticket #{n}: {}", clip(text, 200)))?;
    Ok(n)
}

fn ticket_status(n: i64) -> Result<(String, Value), AgentError> {
    let ticket: Option<Ticket> = memory::get_string(&ticket_key(n))?.and_then(|j| serde_json::from_str(&j).ok());
    Ok(match ticket {
        Some(t) => (format!("Ticket #{n} is {}: \"{}\". A colleague will reply in this conversation.", t.status, t.text), json!({"ticket": t})),
        None => (format!("I cannot find ticket #{n}. Tell me the problem and I will open a new one."), json!({"ticket": null})),
    })
}

/// The newest decision of this session, as a reminder.
fn earlier_in_session(past: &[Decision], session: &str) -> Option<String> {
    past.iter().find(|d| d.session == session).map(|d| format!("Earlier in this conversation I {}.", d.text))
}

/// Passes a feature request to `product-manager`; if it cannot be reached,
/// a ticket keeps the request instead.
fn forward_feature_request(req: &Request, text: &str) -> Result<(String, Value), AgentError> {
    let consultation = consult("customer-support", "product-manager", &req.session_id, &format!("feature request: {text}"));
    if consultation.ok {
        record_decision(&req.session_id, "feature-request", &format!("passed a feature request to product: {}", clip(text, 200)))?;
        let pm = consultation.answer.as_deref().and_then(|a| a.lines().next()).unwrap_or_default().to_string();
        let answer = format!("Thanks for the suggestion! I have passed it to our product team. {pm}");
        return Ok((answer, json!({"kind": "feature-request", "consulted": [consultation]})));
    }
    let n = open_ticket(&req.session_id, text)?;
    let answer = format!("Thanks for the suggestion! I could not reach the product team just now, so I opened ticket #{n} to keep it.");
    Ok((answer, json!({"kind": "feature-request", "ticket": n, "consulted": [consultation]})))
}

/// The reply from `article`: the model's (from the article only) or the article itself.
fn answer_from_article(req: &Request, text: &str, article: &Article) -> Result<(String, Value), AgentError> {
    let prompt = json!({"customer_message": text, "help_article": {"title": article.title, "text": article.answer}});
    let mut data = json!({"kind": "answer", "article": article.id});
    let answer = match ask_model("fast", SYSTEM_PROMPT, &session_turns(&req.session_id, 6), &prompt.to_string(), 300) {
        ModelReply::Json { fields, model } => {
            data["method"] = json!("llm");
            data["model"] = json!(model);
            let mut answer = fields["answer"].as_str().unwrap_or_default().trim().to_string();
            if fields.get("needs_ticket").and_then(Value::as_bool) == Some(true) {
                let n = open_ticket(&req.session_id, text)?;
                answer.push_str(&format!(" (Ticket #{n} opened.)"));
                data["ticket"] = json!(n);
            }
            answer
        }
        ModelReply::Unusable { reason } => {
            data["method"] = json!("offline");
            data["reason"] = json!(reason);
            format!("{}: {}", article.title, article.answer)
        }
    };
    Ok((answer, data))
}

/// Recalls past decisions, or records one the user states.
fn answer_about_decisions(req: &Request) -> Result<Option<Response>, AgentError> {
    if asks_for_decisions(&req.text) {
        let decisions = recent_decisions(10)?;
        let text = decisions_text(&decisions, &req.session_id);
        return Ok(Some(Response::text(text).with_data(&json!({"method": "memory", "decisions": decisions}))));
    }
    if let Some(decision) = stated_decision(&req.text) {
        let n = record_decision(&req.session_id, "support", decision)?;
        let text = format!("Recorded decision #{n}: {decision}");
        return Ok(Some(Response::text(text).with_data(&json!({"method": "memory", "decision": n}))));
    }
    Ok(None)
}

impl Agent for CustomerSupport {
    fn describe() -> Manifest {
        Manifest::new(
            "customer-support",
            "0.1.0",
            "Answers customers' questions (passwords, 2FA, invoices, refunds, cancelling, upgrades, exports, the API) from a \
built-in knowledge base, passes feature requests to product-manager and opens a ticket when it cannot answer. With a \
model it writes the reply from the matching article; offline it replies with the article. Remembers tickets across sessions.",
        )
        .skill(
            Skill::new("answer-customer", "Answer a customer's account or billing question")
                .keywords(["password", "login", "invoice", "billing", "refund", "charged", "cancel", "2fa", "account"]),
        )
        .skill(Skill::new("open-ticket", "Open or look up a support ticket for a problem").keywords(["ticket", "support", "broken", "bug", "not working", "help"]))
        .capability("llm", "writes the reply from the matching help article (fast model)")
        .capability("memory", "keeps tickets, its decisions and each session's turns")
        .capability("agents", "passes feature requests to product-manager")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let text = req.text.trim();
        if text.is_empty() {
            return Err(AgentError::InvalidRequest("tell me what you need help with".into()));
        }
        if let Some(response) = answer_about_decisions(&req)? {
            remember_exchange(&req.session_id, text, &response.text);
            return Ok(response);
        }
        let past = recent_decisions(10)?;
        let (mut answer, mut data) = match classify(text) {
            Kind::TicketStatus(n) => ticket_status(n)?,
            Kind::FeatureRequest => forward_feature_request(&req, text)?,
            Kind::Answer(article) => answer_from_article(&req, text, article)?,
            Kind::Unknown => {
                let n = open_ticket(&req.session_id, text)?;
                let answer = format!(
                    "I could not find an answer to that in our help articles, so I opened ticket #{n}: a colleague will reply in this conversation. Ask me \"status of ticket {n}\" any time."
                );
                (answer, json!({"kind": "ticket", "ticket": n}))
            }
        };
        if data.get("method").is_none() {
            data["method"] = json!("offline");
        }
        if let Some(reminder) = earlier_in_session(&past, &req.session_id) {
            answer.push_str(&format!("\n{reminder}"));
        }
        data["past_decisions"] = json!(past);
        remember_exchange(&req.session_id, text, &answer);
        Ok(Response::text(answer).with_data(&data))
    }
}

export_agent!(CustomerSupport);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reminders_come_from_this_session_only() {
        let past = vec![
            Decision { n: 2, session: "other".into(), topic: "ticket".into(), text: "opened ticket #2: x".into() },
            Decision { n: 1, session: "me".into(), topic: "ticket".into(), text: "opened ticket #1: y".into() },
        ];
        assert_eq!(earlier_in_session(&past, "me").as_deref(), Some("Earlier in this conversation I opened ticket #1: y."));
        assert_eq!(earlier_in_session(&past, "new"), None);
    }

    #[test]
    fn the_manifest_matches_support_requests() {
        use agentkernel_sdk::routing::{Candidate, CandidateSkill, match_skills};
        let m = CustomerSupport::describe();
        let candidate = Candidate {
            name: m.name.clone(),
            description: m.description.clone(),
            skills: m.skills.iter().map(|s| CandidateSkill { name: s.name.clone(), description: s.description.clone(), keywords: s.keywords.clone() }).collect(),
        };
        for message in ["my invoice is wrong", "how do I reset my password", "the export is broken", "status of ticket 3"] {
            assert_eq!(match_skills(message, std::slice::from_ref(&candidate), 3).agents, ["customer-support"], "{message}");
        }
    }
}
