//! Helpers every business agent has (kept per crate: an evolvable agent's
//! source is its own `src/` and nothing else): decisions remembered across
//! sessions, this session's turns, the model asked for a JSON reply that is
//! parsed defensively, and consulting another agent without failing.
use agentkernel_sdk::agents;
use agentkernel_sdk::llm::{Chat, ChatMessage};
use agentkernel_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Decisions kept across sessions; the oldest is deleted as a new one is made.
pub const MAX_DECISIONS: i64 = 50;
/// Holds the number of the newest decision (an atomic counter).
const DECISION_COUNTER: &str = "decision-count";
/// Longest text sent to the model or to another agent, in bytes.
pub const MAX_INPUT: usize = 12 * 1024;

/// One decision: what was decided, about what, and in which session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub n: i64,
    pub session: String,
    pub topic: String,
    pub text: String,
}

pub fn decision_key(n: i64) -> String {
    format!("decision/{n:08}")
}

/// Stores a decision under `decision/<n>`. `increment` hands each call its
/// own number even when several run at once; the decision that falls out
/// of the window of [`MAX_DECISIONS`] is deleted, so memory stays bounded.
pub fn record_decision(session: &str, topic: &str, text: &str) -> Result<i64, AgentError> {
    let n = memory::increment(DECISION_COUNTER, 1)?;
    let decision = Decision { n, session: session.to_string(), topic: topic.to_string(), text: clip(text, 600).to_string() };
    let json = serde_json::to_string(&decision).map_err(|e| AgentError::Failed(e.to_string()))?;
    memory::set_string(&decision_key(n), &json)?;
    if n > MAX_DECISIONS
        && let Err(e) = memory::delete(&decision_key(n - MAX_DECISIONS))
    {
        log::warn(&format!("could not delete an old decision: {e:?}"));
    }
    Ok(n)
}

/// The newest decisions, newest first, at most `limit` (unreadable entries skipped).
pub fn recent_decisions(limit: usize) -> Result<Vec<Decision>, AgentError> {
    let newest = memory::get_string(DECISION_COUNTER)?.and_then(|s| s.trim().parse::<i64>().ok()).unwrap_or(0);
    let mut out = Vec::new();
    let mut n = newest;
    while n > 0 && n > newest - MAX_DECISIONS && out.len() < limit {
        if let Some(d) = memory::get_string(&decision_key(n))?.and_then(|json| serde_json::from_str::<Decision>(&json).ok()) {
            out.push(d);
        }
        n -= 1;
    }
    Ok(out)
}

/// Whether `text` asks what was decided before ("what did we decide").
pub fn asks_for_decisions(text: &str) -> bool {
    let lower = text.to_lowercase();
    ["what did we decide", "what have we decided", "what was decided", "what we decided", "past decisions", "previous decisions",
     "our decisions", "decision log", "remind me what"]
        .iter()
        .any(|p| lower.contains(p))
}

/// The decision stated in `text` ("we decided to ...", "decision: ..."), if any.
pub fn stated_decision(text: &str) -> Option<&str> {
    let trimmed = text.trim();
    let lower = trimmed.to_lowercase();
    for prefix in ["record the decision that ", "record decision:", "record decision ", "decision:", "we have decided ", "we've decided ", "we decided "] {
        if lower.starts_with(prefix) && trimmed.is_char_boundary(prefix.len()) {
            let rest = trimmed[prefix.len()..].trim();
            return (!rest.is_empty()).then_some(rest);
        }
    }
    None
}

/// "Last time you decided ..." for the newest decision, or nothing.
pub fn last_time(decisions: &[Decision]) -> String {
    decisions.first().map(|d| format!("Last time you decided: {} ({}).", d.text, d.topic)).unwrap_or_default()
}

/// The decisions as a numbered list for a person, this session's marked.
pub fn decisions_text(decisions: &[Decision], session: &str) -> String {
    if decisions.is_empty() {
        return "No decisions recorded yet.".to_string();
    }
    let lines: Vec<String> = decisions
        .iter()
        .map(|d| format!("#{} [{}] {}{}", d.n, d.topic, d.text, if d.session == session { " (this session)" } else { "" }))
        .collect();
    format!("Decisions so far, newest first:\n{}", lines.join("\n"))
}

/// Appends the user's request and the answer to this session's history.
/// History is context, not the answer: a failure is logged, not returned.
pub fn remember_exchange(session: &str, request: &str, answer: &str) {
    for turn in [Turn::new(Role::User, clip(request, MAX_INPUT)), Turn::new(Role::Assistant, clip(answer, MAX_INPUT))] {
        if let Err(e) = memory::append_history(session, &turn) {
            log::warn(&format!("could not append to the session's history: {e:?}"));
            return;
        }
    }
}

/// This session's last `limit` turns with this agent (none if unreadable).
pub fn session_turns(session: &str, limit: u32) -> Vec<Turn> {
    memory::history(session, limit).unwrap_or_else(|e| {
        log::warn(&format!("could not read the session's history: {e:?}"));
        Vec::new()
    })
}

/// What the model gave back: its JSON object, or why the offline answer is used.
pub enum ModelReply {
    Json { fields: Map<String, Value>, model: String },
    Unusable { reason: String },
}

/// Asks the model behind `profile` for a JSON object holding a non-empty
/// `answer`. No model, an error or a malformed reply is `Unusable`.
pub fn ask_model(profile: &str, system: &str, turns: &[Turn], user: &str, max_tokens: u32) -> ModelReply {
    let mut chat = Chat::new(profile).system(system);
    for turn in turns {
        match turn.role {
            Role::User => chat = chat.message(ChatMessage::user(turn.content.clone())),
            Role::Assistant => chat = chat.message(ChatMessage::assistant(turn.content.clone())),
            Role::System | Role::Agent => {}
        }
    }
    let reply = chat.user(clip(user, MAX_INPUT)).temperature(0.2).max_tokens(max_tokens).json().send();
    match reply {
        Ok(r) => match parse_model_json(&r.content) {
            Some(fields) => ModelReply::Json { fields, model: r.model },
            None => {
                log::warn("the model's reply is not the JSON asked for; answering offline");
                ModelReply::Unusable { reason: "malformed model reply".into() }
            }
        },
        Err(e) if e.code() == "not-configured" => ModelReply::Unusable { reason: "no model configured".into() },
        Err(e) => ModelReply::Unusable { reason: format!("model unavailable ({})", e.code()) },
    }
}

/// The JSON object in a model's reply (code fences and prose around it
/// tolerated) if it has a non-empty string `answer`.
pub fn parse_model_json(content: &str) -> Option<Map<String, Value>> {
    let start = content.find('{')?;
    let end = content.rfind('}')?;
    let object: Map<String, Value> = serde_json::from_str(content.get(start..=end)?).ok()?;
    let answer = object.get("answer")?.as_str()?;
    (!answer.trim().is_empty()).then_some(object)
}

/// A string field of the model's reply, if present and non-empty.
pub fn text_field<'a>(fields: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    fields.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// What consulting another agent gave: its answer, or why there is none.
#[derive(Debug, Clone, Serialize)]
pub struct Consultation {
    pub agent: String,
    pub ok: bool,
    pub answer: Option<String>,
    pub data: Option<Value>,
    pub error: Option<String>,
}

/// Asks `agent` in this session on behalf of `caller` (in the request's
/// context, so the callee knows it is consulted and records no decision of
/// its own). A refusal (`not-allowed`, `not-found`, a spent budget) or a
/// failure is recorded, never returned: the caller answers without it.
pub fn consult(caller: &str, agent: &str, session: &str, text: &str) -> Consultation {
    let mut request = Request::new(session, clip(text, MAX_INPUT));
    request.context = Some(serde_json::json!({ "consulted_by": caller }).to_string());
    match agents::call(agent, &request) {
        Ok(r) => Consultation {
            agent: agent.to_string(),
            ok: true,
            answer: Some(r.text),
            data: r.data.and_then(|d| serde_json::from_str(&d).ok()),
            error: None,
        },
        Err(e) => {
            log::warn(&format!("consulting {agent} failed: {}", e.code()));
            Consultation { agent: agent.to_string(), ok: false, answer: None, data: None, error: Some(e.code().to_string()) }
        }
    }
}

/// The agent that consulted this one, if the request came from [`consult`].
pub fn consulted_by(req: &Request) -> Option<String> {
    req.context_as::<Value>()?.get("consulted_by")?.as_str().map(str::to_string)
}

/// `$12,000` style: whole dollars with thousands separators.
pub fn money(v: f64) -> String {
    let whole = v.round() as i64;
    let digits = whole.abs().to_string();
    let mut grouped = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!("{}${grouped}", if whole < 0 { "-" } else { "" })
}

/// Cuts `text` to at most `max` bytes on a char boundary.
pub fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A number in a request with the words around it (lowercased).
#[derive(Debug, Clone, PartialEq)]
pub struct LabeledNumber {
    pub value: f64,
    /// The word right before, and the one before that.
    pub before: String,
    pub before2: String,
    /// The word right after (after the `%`, if there is one).
    pub after: String,
    /// Written with a `%`.
    pub percent: bool,
}

impl LabeledNumber {
    /// Whether a word near the number is one of `labels` (before, after, two before).
    pub fn labeled(&self, labels: &[&str]) -> bool {
        [&self.before, &self.after, &self.before2].iter().any(|w| labels.contains(&w.as_str()))
    }

    /// The label of `table` nearest the number: the word right before it
    /// names it, else the word after, else the one two before.
    pub fn nearest<K: Copy>(&self, table: &[(K, &[&str])]) -> Option<K> {
        [&self.before, &self.after, &self.before2]
            .iter()
            .find_map(|w| table.iter().find(|(_, words)| words.contains(&w.as_str())).map(|(k, _)| *k))
    }
}

/// Numbers in `text` with the words around them: "MRR $12,000, churn 4%"
/// → 12000 after "mrr", 4 (percent) after "churn". `k`/`m` suffixes scale.
pub fn numbers_with_labels(text: &str) -> Vec<LabeledNumber> {
    let tokens: Vec<String> = text
        .split(|c: char| c.is_whitespace() || matches!(c, ';' | '(' | ')' | '=' | '/' | '\n'))
        .flat_map(split_percent)
        .map(|t| t.trim_matches(|c: char| matches!(c, ',' | ':' | '.' | '?' | '!' | '"' | '\'')).to_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let word = |i: Option<usize>| i.and_then(|i| tokens.get(i)).cloned().unwrap_or_default();
    let mut out = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let Some(value) = parse_amount(token) else { continue };
        let percent = tokens.get(i + 1).is_some_and(|t| t == "%");
        let after = word(Some(if percent { i + 2 } else { i + 1 }));
        out.push(LabeledNumber { value, before: word(i.checked_sub(1)), before2: word(i.checked_sub(2)), after, percent });
    }
    out
}

/// "4%" → ["4", "%"], anything else unchanged.
fn split_percent(token: &str) -> Vec<&str> {
    let token = token.trim_end_matches([',', '.', ':', '?', '!']);
    match token.strip_suffix('%') {
        Some(number) if !number.is_empty() => vec![number, "%"],
        _ => vec![token],
    }
}

/// "$12,000" → 12000, "1.5k" → 1500, "2m" → 2e6, "€49" → 49; words → None.
pub fn parse_amount(token: &str) -> Option<f64> {
    let t = token.trim_start_matches(['$', '€', '£']).replace(',', "");
    let (digits, scale) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1e3),
        'm' => (&t[..t.len() - 1], 1e6),
        _ => (t.as_str(), 1.0),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || c == '.') || !digits.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    digits.parse::<f64>().ok().map(|v| v * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_json_is_found_or_refused() {
        assert!(parse_model_json(r#"```json
{"answer": "yes"}
```"#).is_some());
        assert!(parse_model_json(r#"Sure: {"answer": "yes", "decision": "x"} hope it helps"#).is_some());
        assert!(parse_model_json("ok").is_none());
        assert!(parse_model_json(r#"{"answer": ""}"#).is_none());
        assert!(parse_model_json(r#"{"reply": "no answer field"}"#).is_none());
        assert!(parse_model_json("{not json}").is_none());
    }

    #[test]
    fn decisions_are_recognised() {
        assert!(asks_for_decisions("What did we decide about pricing?"));
        assert!(!asks_for_decisions("price the pro plan"));
        assert_eq!(stated_decision("We decided to launch in Germany first"), Some("to launch in Germany first"));
        assert_eq!(stated_decision("Decision: pro plan at $49"), Some("pro plan at $49"));
        assert_eq!(stated_decision("decision:"), None);
        assert_eq!(decision_key(7), "decision/00000007");
    }

    #[test]
    fn numbers_carry_their_labels() {
        let n = numbers_with_labels("MRR $12,000, churn 4% and 1.5k customers");
        assert_eq!((n[0].value, n[0].before.as_str(), n[0].percent), (12000.0, "mrr", false));
        assert_eq!((n[1].value, n[1].before.as_str(), n[1].after.as_str(), n[1].percent), (4.0, "churn", "and", true));
        assert_eq!((n[2].value, n[2].after.as_str()), (1500.0, "customers"));
        assert!(n[2].labeled(&["customers", "users"]));
        assert_eq!(parse_amount("v2"), None);
        assert_eq!(parse_amount("€49"), Some(49.0));
    }

    #[test]
    fn money_groups_thousands() {
        assert_eq!(money(144000.0), "$144,000");
        assert_eq!(money(800.4), "$800");
        assert_eq!(money(-1234.0), "-$1,234");
    }

    #[test]
    fn clip_respects_char_boundaries() {
        assert_eq!(clip("héllo", 2), "h");
    }
}
