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

#[derive(Debug, Deserialize, Serialize)]
pub struct Candidate {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub skills: Vec<CandidateSkill>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct CandidateSkill {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub keywords: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Choice {
    pub agents: Vec<String>,
    pub reason: String,
}

/// Lower-case words of `text`, with a plural/gerund form also giving its stem
/// ("notes" → "note", "summarizing" → "summariz").
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for w in text.split(|c: char| !c.is_alphanumeric() && c != '\'' && c != ';').filter(|w| !w.is_empty()) {
        let w = w.to_lowercase();
        for suffix in ["ing", "es", "s", "ed"] {
            if w.len() > suffix.len() + 2 {
                if let Some(stem) = w.strip_suffix(suffix) {
                    out.push(stem.to_string());
                }
            }
        }
        out.push(w);
    }
    out
}

const STOP_WORDS: &[&str] = &["the", "and", "for", "with", "that", "this", "from", "what", "your", "text", "a", "an", "of", "to"];

/// Scores each candidate against the message: a keyword or skill name in
/// the message weighs most, a word of a skill's description a little.
pub fn match_skills(message: &str, candidates: &Candidates) -> Choice {
    let lower = message.to_lowercase();
    let msg_words = words(message);
    let has_word = |w: &str| msg_words.iter().any(|m| m == w);
    let mut scored: Vec<(u32, &str, Vec<String>)> = Vec::new();
    for agent in &candidates.agents {
        let mut score = 0;
        let mut hits = Vec::new();
        for skill in &agent.skills {
            for kw in &skill.keywords {
                let kw = kw.to_lowercase();
                let hit = if kw.contains(' ') || !kw.chars().all(char::is_alphanumeric) { lower.contains(&kw) } else { has_word(&kw) };
                if hit {
                    score += 3;
                    hits.push(kw);
                }
            }
            let name = skill.name.to_lowercase();
            if has_word(&name) && !hits.contains(&name) {
                score += 3;
                hits.push(name);
            }
            let description_hits = words(&skill.description)
                .into_iter()
                .filter(|w| w.len() >= 4 && !STOP_WORDS.contains(&w.as_str()) && has_word(w))
                .count() as u32;
            score += description_hits.min(2);
        }
        if score >= 3 {
            scored.push((score, &agent.name, hits));
        }
    }
    // Highest score first; ties keep the host's (name) order.
    scored.sort_by(|a, b| b.0.cmp(&a.0));
    scored.truncate(candidates.max_agents.max(1));
    let reason = if scored.is_empty() {
        "no agent's skills match the message".to_string()
    } else {
        let parts: Vec<String> = scored.iter().map(|(_, name, hits)| format!("{name} ({})", hits.join(", "))).collect();
        format!("skill keywords matched: {}", parts.join("; "))
    };
    Choice { agents: scored.into_iter().map(|(_, n, _)| n.to_string()).collect(), reason }
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
