//! `summarizer`: summarises text with the LLM (`fast` profile), and falls
//! back to an extractive summary (the leading sentences) when no model is
//! configured or the model fails, saying which it used.
use agentkernel_sdk::llm::{Chat, LlmError};
use agentkernel_sdk::prelude::*;
use serde_json::json;

pub struct Summarizer;

/// Longest input sent to the model, in bytes.
const MAX_INPUT: usize = 16 * 1024;

/// The first `n` sentences of `text`: the offline summary.
pub fn extractive(text: &str, n: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    for (i, ch) in text.char_indices() {
        if matches!(ch, '.' | '!' | '?') {
            count += 1;
            if count == n {
                out = text[..=i].trim().to_string();
                break;
            }
        }
    }
    if out.is_empty() { text.trim().to_string() } else { out }
}

/// Cuts `text` to at most `max` bytes on a char boundary.
fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl Agent for Summarizer {
    fn describe() -> Manifest {
        Manifest::new("summarizer", "0.1.0", "Summarises text in a few sentences.")
            .skill(Skill::new("summarize", "Summarise a text").keywords(["summarize", "summarise", "summary", "tl;dr", "shorten"]))
            .capability("llm", "writes the summary with a fast model")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let text = req.text.trim();
        if text.is_empty() {
            return Err(AgentError::InvalidRequest("nothing to summarise".into()));
        }
        let reply = Chat::new("fast")
            .system("Summarise the user's text in at most two sentences. Reply with the summary only.")
            .user(clip(text, MAX_INPUT))
            .temperature(0.2)
            .max_tokens(200)
            .send();
        Ok(match reply {
            Ok(r) if !r.content.trim().is_empty() => {
                Response::text(r.content.trim()).with_data(&json!({"method": "llm", "model": r.model}))
            }
            Ok(_) => Response::text(extractive(text, 2)).with_data(&json!({"method": "extractive", "reason": "empty reply"})),
            Err(e) => {
                let reason = match e {
                    LlmError::NotConfigured => "no LLM configured".to_string(),
                    other => format!("{other:?}"),
                };
                log::warn(&format!("falling back to extractive summary: {reason}"));
                Response::text(extractive(text, 2)).with_data(&json!({"method": "extractive", "reason": reason}))
            }
        })
    }
}

export_agent!(Summarizer);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extractive_takes_leading_sentences() {
        assert_eq!(extractive("One. Two! Three? Four.", 2), "One. Two!");
        assert_eq!(extractive("no punctuation here", 2), "no punctuation here");
    }

    #[test]
    fn clip_respects_char_boundaries() {
        assert_eq!(clip("héllo", 2), "h");
    }
}
