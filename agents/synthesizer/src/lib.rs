//! `synthesizer`: combines several agents' answers into one.
//!
//! The host calls it when more than one agent answered, with the question
//! as `text` and `context` = `{"question": "...", "answers": [{"agent",
//! "text"}]}`. With an LLM (`fast` profile) it writes one answer from them;
//! without one it merges them: identical answers once, each under the name
//! of the agent that gave it.
use agentkernel_sdk::llm::Chat;
use agentkernel_sdk::prelude::*;
use serde::Deserialize;
use serde_json::json;

pub struct Synthesizer;

#[derive(Debug, Deserialize)]
pub struct Answers {
    #[serde(default)]
    pub question: String,
    pub answers: Vec<AgentAnswer>,
}

#[derive(Debug, Deserialize)]
pub struct AgentAnswer {
    pub agent: String,
    #[serde(default)]
    pub text: String,
}

/// The offline merge: duplicates folded together, agents named.
pub fn merge(answers: &[AgentAnswer]) -> String {
    let mut groups: Vec<(Vec<&str>, &str)> = Vec::new();
    for a in answers.iter().filter(|a| !a.text.trim().is_empty()) {
        let text = a.text.trim();
        match groups.iter_mut().find(|(_, t)| *t == text) {
            Some((agents, _)) => agents.push(&a.agent),
            None => groups.push((vec![&a.agent], text)),
        }
    }
    match groups.as_slice() {
        [(_, text)] => text.to_string(),
        _ => groups.iter().map(|(agents, text)| format!("{}: {text}", agents.join(" and "))).collect::<Vec<_>>().join("\n\n"),
    }
}

impl Agent for Synthesizer {
    fn describe() -> Manifest {
        Manifest::new("synthesizer", "0.1.0", "Combines several agents' answers into one.")
            .skill(Skill::new("synthesize", "Write one answer from several agents' answers"))
            .capability("llm", "writes the combined answer with a fast model when one is configured")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let input: Answers = req
            .context_as()
            .ok_or_else(|| AgentError::InvalidRequest("context must be {\"question\", \"answers\": [{\"agent\", \"text\"}]}".into()))?;
        let listing: Vec<String> = input.answers.iter().map(|a| format!("[{}]\n{}", a.agent, a.text)).collect();
        let question = if input.question.is_empty() { req.text.as_str() } else { input.question.as_str() };
        let reply = Chat::new("fast")
            .system(
                "Several agents answered the user's question. Write one clear answer that combines what they \
                 said, without inventing anything they did not say. Reply with the answer only.",
            )
            .user(format!("Question: {question}\n\nAnswers:\n{}", listing.join("\n\n")))
            .temperature(0.2)
            .max_tokens(600)
            .send();
        Ok(match reply {
            Ok(r) if !r.content.trim().is_empty() => Response::text(r.content.trim()).with_data(&json!({"method": "llm"})),
            other => {
                if let Err(e) = other {
                    if e.code() != "not-configured" {
                        log::warn(&format!("LLM synthesis failed ({}); merging", e.code()));
                    }
                }
                Response::text(merge(&input.answers)).with_data(&json!({"method": "merge"}))
            }
        })
    }
}

export_agent!(Synthesizer);

#[cfg(test)]
mod tests {
    use super::*;

    fn a(agent: &str, text: &str) -> AgentAnswer {
        AgentAnswer { agent: agent.into(), text: text.into() }
    }

    #[test]
    fn merge_names_agents_and_folds_duplicates() {
        assert_eq!(merge(&[a("x", "same"), a("y", " same ")]), "same");
        assert_eq!(merge(&[a("x", "one"), a("y", "two"), a("z", "one")]), "x and z: one\n\ny: two");
        assert_eq!(merge(&[a("x", ""), a("y", "only")]), "only");
    }
}
