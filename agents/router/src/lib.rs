//! `router`: chooses which agents should answer a chat message.
//!
//! The host calls it with the message as `text` and the candidates in
//! `context`: `{"agents": [manifest, ...], "max_agents": n}`. It answers with
//! `data` = `{"agents": [names], "reason": "..."}` (the host checks every
//! name it returns). With an LLM (`fast` profile) it asks the model; without
//! one, or when the model's answer is unusable, it matches the message
//! against the agents' skills, so offline routing still makes sense.
use agentkernel_sdk::llm::Chat;
use agentkernel_sdk::prelude::*;
use agentkernel_sdk::routing::{self, Candidate};
use serde::{Deserialize, Serialize};

pub struct Router;

#[derive(Debug, Deserialize)]
pub struct Candidates {
    pub agents: Vec<Candidate>,
    #[serde(default = "default_max")]
    pub max_agents: usize,
}

fn default_max() -> usize {
    3
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Choice {
    pub agents: Vec<String>,
    pub reason: String,
}

/// The offline choice: the SDK's skill matching (the same rule the host
/// falls back to when no router can route).
pub fn match_skills(message: &str, candidates: &Candidates) -> Choice {
    let m = routing::match_skills(message, &candidates.agents, candidates.max_agents);
    Choice { agents: m.agents, reason: m.reason }
}

/// Asks the model; `None` when there is no model or its answer is unusable.
fn ask_llm(message: &str, candidates: &Candidates) -> Option<Choice> {
    let catalogue = serde_json::to_string(&candidates.agents).ok()?;
    let reply = Chat::new("fast")
        .system(format!(
            "You route a user's message to the agents best able to answer it. Agents: {catalogue}\n\
             Reply with a JSON object {{\"agents\": [names], \"reason\": \"one sentence\"}}. \
             Choose at most {} agents, only from the list; choose none if none fits.",
            candidates.max_agents
        ))
        .user(message)
        .temperature(0.0)
        .max_tokens(200)
        .json()
        .send();
    let reply = match reply {
        Ok(r) => r,
        Err(e) => {
            if e.code() != "not-configured" {
                log::warn(&format!("LLM routing failed ({}); matching skills", e.code()));
            }
            return None;
        }
    };
    let mut choice: Choice = match serde_json::from_str(reply.content.trim()) {
        Ok(c) => c,
        Err(e) => {
            log::warn(&format!("LLM routing answer is not a choice ({e}); matching skills"));
            return None;
        }
    };
    choice.agents.retain(|n| candidates.agents.iter().any(|a| &a.name == n));
    choice.agents.truncate(candidates.max_agents.max(1));
    choice.reason = format!("LLM: {}", choice.reason);
    Some(choice)
}

impl Agent for Router {
    fn describe() -> Manifest {
        Manifest::new("router", "0.1.0", "Chooses the agents that should answer a chat message.")
            .skill(Skill::new("route", "Pick agents for a message from their skills"))
            .capability("llm", "routes with a fast model when one is configured")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let candidates: Candidates = req
            .context_as()
            .ok_or_else(|| AgentError::InvalidRequest("context must be {\"agents\": [...], \"max_agents\": n}".into()))?;
        let choice = ask_llm(&req.text, &candidates).unwrap_or_else(|| match_skills(&req.text, &candidates));
        let summary = if choice.agents.is_empty() { "no agent".to_string() } else { choice.agents.join(", ") };
        Ok(Response::text(format!("route: {summary}")).with_data(&choice))
    }
}

export_agent!(Router);

#[cfg(test)]
mod tests {
    use super::*;
    use agentkernel_sdk::routing::CandidateSkill;

    fn candidates() -> Candidates {
        let skill = |name: &str, description: &str, kws: &[&str]| CandidateSkill {
            name: name.into(),
            description: description.into(),
            keywords: kws.iter().map(|s| s.to_string()).collect(),
        };
        Candidates {
            agents: vec![
                Candidate { name: "echo".into(), description: String::new(), skills: vec![skill("echo", "Repeat a message back verbatim", &["echo", "repeat", "say"])] },
                Candidate {
                    name: "notes".into(),
                    description: String::new(),
                    skills: vec![skill("remember", "Store a note", &["remember", "note", "save"]), skill("recall", "List notes", &["recall", "notes"])],
                },
                Candidate { name: "summarizer".into(), description: String::new(), skills: vec![skill("summarize", "Summarise a text", &["summarize", "summary", "tl;dr"])] },
            ],
            max_agents: 3,
        }
    }

    #[test]
    fn keywords_pick_the_fitting_agent() {
        assert_eq!(match_skills("Please remember that the door code is 1234", &candidates()).agents, ["notes"]);
        assert_eq!(match_skills("tl;dr of this article please", &candidates()).agents, ["summarizer"]);
        assert_eq!(match_skills("What notes do I have?", &candidates()).agents, ["notes"]);
    }

    #[test]
    fn several_agents_are_ranked_and_capped() {
        let mut c = candidates();
        let choice = match_skills("repeat this and save a note about the summary", &c);
        assert_eq!(choice.agents.len(), 3);
        assert_eq!(choice.agents[0], "notes", "two keyword hits rank first: {choice:?}");
        c.max_agents = 1;
        assert_eq!(match_skills("repeat this and save a note about the summary", &c).agents, ["notes"]);
    }

    #[test]
    fn nothing_matches_an_unrelated_message() {
        let choice = match_skills("what is the capital of France", &candidates());
        assert!(choice.agents.is_empty(), "{choice:?}");
        assert!(choice.reason.contains("no agent"));
    }
}
