//! How interesting a finding is, 0–10: the LLM's judgement when a model is
//! configured, keyword scoring otherwise (and for whatever the model's reply
//! left out or got wrong). Every finding says which scored it.
use agentkernel_sdk::llm::{Chat, LlmError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Findings sent to the model in one request.
pub const MAX_SCORED_BY_LLM: usize = 20;
/// Bytes of a finding's summary shown to the model.
const SUMMARY_FOR_MODEL: usize = 300;
/// Bytes of the model's reason kept.
const MAX_REASON_BYTES: usize = 200;

/// Words that make any finding more interesting to this host's operators.
pub const INTERESTS: &[&str] = &[
    "agent", "agents", "agentic", "llm", "wasm", "webassembly", "sandbox", "sandboxing", "evolution", "self-improving",
    "benchmark", "security", "rust", "capability", "multi-agent",
];

/// What the scorer needs of a finding.
pub struct Scorable<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub summary: &'a str,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub score: f64,
    /// `llm` or `keywords`.
    pub by: String,
    pub reason: String,
}

/// Keyword score: topic words in the title count most, then in the summary,
/// then the standing interests.
pub fn keyword_score(topic: &str, title: &str, summary: &str) -> Score {
    let title_words = words(title);
    let summary_words = words(summary);
    let topic_words: Vec<String> = words(topic).into_iter().filter(|w| w.len() > 2).collect();
    let mut points = 0.0;
    let mut matched = Vec::new();
    for t in &topic_words {
        let in_title = title_words.iter().filter(|w| stem_eq(w, t)).count();
        let in_summary = summary_words.iter().filter(|w| stem_eq(w, t)).count();
        if in_title + in_summary > 0 {
            matched.push(t.clone());
        }
        points += 3.0 * in_title.min(2) as f64 + in_summary.min(4) as f64;
    }
    for i in INTERESTS {
        if title_words.iter().chain(&summary_words).any(|w| w == i) {
            points += 0.5;
        }
    }
    let reason = if matched.is_empty() { "no topic words".to_string() } else { format!("mentions {}", matched.join(", ")) };
    Score { score: (points.min(10.0) * 10.0).round() / 10.0, by: "keywords".into(), reason }
}

fn stem_eq(word: &str, topic: &str) -> bool {
    word == topic || word.strip_suffix('s') == Some(topic) || topic.strip_suffix('s') == Some(word)
}

/// Lower-case words of `text` (letters, digits, `-`).
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '-'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Scores `items` with the model; `Err` says why the model was not used,
/// and the caller falls back to keywords for all of them.
pub fn llm_scores(topics: &[String], items: &[Scorable]) -> Result<Vec<(String, Score)>, String> {
    let listing: Vec<Value> = items
        .iter()
        .take(MAX_SCORED_BY_LLM)
        .map(|i| serde_json::json!({"id": i.id, "title": i.title, "summary": clip(i.summary, SUMMARY_FOR_MODEL)}))
        .collect();
    let reply = Chat::new("fast")
        .system(format!(
            "You rate open-source repositories for a team building a WebAssembly host for AI agents. Topics: {}. \
             Reply with JSON only: {{\"scores\": [{{\"id\": \"<id>\", \"score\": <0-10>, \"reason\": \"<one short sentence>\"}}]}}.",
            topics.join(", ")
        ))
        .user(Value::Array(listing).to_string())
        .temperature(0.0)
        .max_tokens(800)
        .json()
        .send();
    match reply {
        Ok(r) => parse_llm_reply(&r.content),
        Err(LlmError::NotConfigured) => Err("no model configured".into()),
        Err(e) => Err(format!("model unavailable ({})", e.code())),
    }
}

/// Reads `{"scores": [{"id", "score", "reason"}]}` out of a reply that may
/// wrap it in prose or a code fence; scores are clamped to 0–10, entries
/// without an id or a numeric score are dropped.
pub fn parse_llm_reply(content: &str) -> Result<Vec<(String, Score)>, String> {
    let start = content.find('{').ok_or("the reply holds no JSON object")?;
    let end = content.rfind('}').filter(|e| *e > start).ok_or("the reply holds no JSON object")?;
    let value: Value = serde_json::from_str(&content[start..=end]).map_err(|e| format!("the reply is not JSON: {e}"))?;
    let entries = value.get("scores").and_then(Value::as_array).ok_or("the reply has no \"scores\" list")?;
    let scores: Vec<(String, Score)> = entries
        .iter()
        .filter_map(|e| {
            let id = e.get("id")?.as_str()?.to_string();
            let raw = e.get("score")?;
            let score = raw.as_f64().or_else(|| raw.as_str()?.trim().parse().ok())?;
            if !score.is_finite() {
                return None;
            }
            let reason = e.get("reason").and_then(Value::as_str).unwrap_or("");
            let reason = clip(reason, MAX_REASON_BYTES);
            Some((id, Score { score: score.clamp(0.0, 10.0), by: "llm".into(), reason }))
        })
        .collect();
    if scores.is_empty() {
        return Err("the reply scored nothing".into());
    }
    Ok(scores)
}

/// At most `max` bytes of `text`, cut on a char boundary.
pub fn clip(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_prefer_the_topic_in_the_title() {
        let a = keyword_score("agents", "Agent-as-a-Judge: Evaluate Agents with Agents", "agentic systems");
        let b = keyword_score("agents", "Mobile computing", "a note on agents");
        assert!(a.score > b.score, "{a:?} {b:?}");
        assert_eq!(a.by, "keywords");
        assert!(keyword_score("zzz", "nothing", "here").score < 1.0);
    }

    #[test]
    fn llm_replies_are_read_defensively() {
        let r = parse_llm_reply("Sure! ```json\n{\"scores\": [{\"id\": \"a\", \"score\": 14, \"reason\": \"great\"}, {\"id\": \"b\", \"score\": \"7.5\"}, {\"score\": 3}]}\n```").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].1.score, 10.0, "clamped");
        assert_eq!(r[1].1.score, 7.5, "a number in a string");
        assert!(parse_llm_reply("I cannot help with that").is_err());
        assert!(parse_llm_reply("{\"scores\": []}").is_err());
        assert!(parse_llm_reply("{\"scores\": [{\"id\": \"a\", \"score\": null}]}").is_err());
    }
}
