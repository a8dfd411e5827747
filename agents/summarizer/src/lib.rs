//! `summarizer`: summarises text with the LLM (`fast` profile), and falls
//! back to an extractive summary (the leading sentences) when no model is
//! configured or the model fails, saying which it used. A leading
//! instruction ("Summarise this:", "tl;dr", "please summarize the
//! following:") is taken off first, so neither summary repeats it.
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

/// Polite openers that may come before the command word.
const POLITE: &[&str] = &["please", "can you", "could you", "would you", "kindly", "pls"];
/// Command words, longest first so "summary of" wins over "summary:"
/// ("summary" alone starts sentences too: "Summary statistics are ...").
const COMMANDS: &[&str] = &[
    "give me a summary of", "give me a tl;dr of", "write a summary of", "summarize", "summarise", "summary of",
    "summary:", "sum up", "tl;dr", "tldr", "shorten",
];
/// What may follow the command word before the text itself.
const OBJECTS: &[&str] = &["the following text", "the following", "following", "the text", "this text", "this", "it", "for me", "please", "briefly"];

/// `text` without a leading `word` (ASCII case ignored, whole words only),
/// and the spaces after it.
fn strip_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let head = text.get(..word.len())?;
    let rest = &text[word.len()..];
    let whole_word = rest.chars().next().is_none_or(|c| !c.is_alphanumeric());
    (head.eq_ignore_ascii_case(word) && whole_word).then(|| rest.trim_start())
}

/// Takes words from `list` off the front of `text` for as long as one fits.
fn strip_any<'a>(mut text: &'a str, list: &[&str]) -> &'a str {
    while let Some(rest) = list.iter().find_map(|w| strip_word(text, w)) {
        text = rest;
    }
    text
}

/// The text to summarise: `text` without a leading instruction such as
/// "Summarise this:" or "please summarize the following:". Text that does
/// not start with a command word is returned whole (trimmed), and so is an
/// instruction with nothing after it.
pub fn strip_instruction(text: &str) -> &str {
    let text = text.trim();
    let after_polite = strip_any(text, POLITE);
    let Some(after_command) = COMMANDS.iter().find_map(|w| strip_word(after_polite, w)) else {
        return text;
    };
    let rest = strip_any(after_command, OBJECTS).trim_start_matches(|c: char| c.is_whitespace() || matches!(c, ':' | '-' | ',' | '.' | '?' | '!' | '\u{2014}'));
    // A polite tail such as "…: please" is not worth keeping either.
    let rest = strip_any(rest, OBJECTS);
    if rest.is_empty() { text } else { rest }
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
        if req.text.trim().is_empty() {
            return Err(AgentError::InvalidRequest("nothing to summarise".into()));
        }
        let text = strip_instruction(&req.text);
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
    fn leading_instructions_are_not_summarised() {
        assert_eq!(strip_instruction("summarize: Cats sleep. Dogs bark."), "Cats sleep. Dogs bark.");
        assert_eq!(strip_instruction("Summarise this: Cats sleep."), "Cats sleep.");
        assert_eq!(strip_instruction("tl;dr Cats sleep."), "Cats sleep.");
        assert_eq!(strip_instruction("TL;DR: Cats sleep."), "Cats sleep.");
        assert_eq!(strip_instruction("please summarize the following:\nCats sleep."), "Cats sleep.");
        assert_eq!(strip_instruction("Can you summarise this text for me - Cats sleep."), "Cats sleep.");
        assert_eq!(strip_instruction("Give me a summary of: Cats sleep."), "Cats sleep.");
        assert_eq!(extractive(strip_instruction("Summarize: One. Two. Three."), 2), "One. Two.");
    }

    #[test]
    fn text_without_an_instruction_is_kept_whole() {
        assert_eq!(strip_instruction("  Cats sleep. Dogs bark. "), "Cats sleep. Dogs bark.");
        assert_eq!(strip_instruction("Summary statistics are useful."), "Summary statistics are useful.");
        assert_eq!(strip_instruction("Please note the meeting moved."), "Please note the meeting moved.");
        assert_eq!(strip_instruction("Summarizers are tools."), "Summarizers are tools.");
        // Nothing after the instruction: the request itself is what there is.
        assert_eq!(strip_instruction("tl;dr this"), "tl;dr this");
        assert_eq!(strip_instruction("summarize:"), "summarize:");
    }

    #[test]
    fn clip_respects_char_boundaries() {
        assert_eq!(clip("héllo", 2), "h");
    }
}
