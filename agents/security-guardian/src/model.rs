//! The optional second opinion: a model reads the created agent with the
//! rules' findings and may add findings. Its reply is parsed defensively;
//! a malformed reply is ignored (and the review says so). The model can
//! only add: a rules reject stays a reject.
use agentkernel_sdk::llm::{Chat, LlmError};
use serde_json::{Value, json};

use crate::rules::{Finding, ReviewInput, Severity};

/// Profile asked for (policy maps it to a model).
pub const PROFILE: &str = "smart";
/// Most source bytes put in the prompt (the rules saw everything).
const PROMPT_SOURCE_BYTES: usize = 24 * 1024;
/// Most findings taken from one reply.
const MAX_MODEL_FINDINGS: usize = 8;

pub const SYSTEM_PROMPT: &str = "You are the security reviewer of an agent platform. Agents are WebAssembly \
components in a sandbox; they reach the outside only through capabilities the host grants (log, memory, llm, agents, \
http, aws-ec2, evolution). You review a newly generated agent before it is registered: its spec, imported and granted \
capabilities, source files, and the findings of deterministic rules that already ran. Add only findings the rules \
missed: data exfiltration, prompt injection against other agents, behaviour that does not match the spec, abuse of \
granted capabilities, resource exhaustion. Do not repeat the rules' findings. Reply with one JSON object only: \
{\"verdict\": \"approve\" or \"reject\", \"findings\": [{\"severity\": \"high\"|\"medium\"|\"low\", \"rule\": \"short-id\", \
\"detail\": \"one sentence\"}], \"reason\": \"one sentence\"}";

/// What asking the model gave.
#[derive(Debug, PartialEq)]
pub enum ModelOpinion {
    /// Findings it added (possibly none).
    Added(Vec<Finding>),
    /// It answered, but not in the asked shape: ignored.
    Malformed(String),
    /// No model (not configured, refused, out of budget, down).
    Unavailable(String),
}

fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The prompt's user message: the review input with sources cut to a budget.
pub fn prompt(input: &ReviewInput, rule_findings: &[Finding]) -> String {
    let mut budget = PROMPT_SOURCE_BYTES;
    let mut files = serde_json::Map::new();
    for (path, text) in &input.files {
        let shown = clip(text, budget);
        budget -= shown.len();
        let note = if shown.len() < text.len() { "\n/* ... truncated for review ... */" } else { "" };
        files.insert(path.clone(), Value::String(format!("{shown}{note}")));
    }
    json!({
        "agent": input.agent,
        "spec": clip(&input.spec, 2048),
        "imports": input.imports,
        "granted": input.granted,
        "rule_findings": rule_findings,
        "files": files,
    })
    .to_string()
}

/// Asks the model; never fails (an unusable answer is an opinion too).
pub fn ask(input: &ReviewInput, rule_findings: &[Finding]) -> ModelOpinion {
    let reply = Chat::new(PROFILE).system(SYSTEM_PROMPT).user(prompt(input, rule_findings)).json().temperature(0.0).max_tokens(800).send();
    match reply {
        Ok(r) => match parse_reply(&r.content) {
            Ok(findings) => ModelOpinion::Added(findings),
            Err(why) => ModelOpinion::Malformed(why),
        },
        Err(LlmError::NotConfigured) => ModelOpinion::Unavailable("no model is configured".into()),
        Err(e) => ModelOpinion::Unavailable(format!("the model is unavailable ({})", e.code())),
    }
}

/// A rule id the model gave, made safe and marked as the model's.
fn model_rule(rule: &str) -> String {
    let cleaned: String = rule.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(40).collect();
    let cleaned = cleaned.trim_matches('-');
    format!("llm-{}", if cleaned.is_empty() { "finding" } else { cleaned })
}

/// The findings of a reply: a JSON object (possibly fenced or with prose
/// around it) with `findings`; entries of unknown severity are dropped. A
/// `reject` verdict with no high finding becomes one, with its reason.
pub fn parse_reply(content: &str) -> Result<Vec<Finding>, String> {
    let (start, end) = (content.find('{'), content.rfind('}'));
    let (Some(start), Some(end)) = (start, end) else { return Err("no JSON object in the reply".into()) };
    if end < start {
        return Err("no JSON object in the reply".into());
    }
    let value: Value = serde_json::from_str(&content[start..=end]).map_err(|e| format!("the reply is not JSON ({e})"))?;
    let entries = match value.get("findings") {
        Some(Value::Array(a)) => a.as_slice(),
        None | Some(Value::Null) => &[],
        Some(_) => return Err("`findings` is not a list".into()),
    };
    let verdict = value.get("verdict").and_then(Value::as_str).map(str::to_ascii_lowercase);
    if verdict.is_none() && entries.is_empty() {
        return Err("the reply has neither a verdict nor findings".into());
    }
    let mut findings: Vec<Finding> = entries.iter().filter_map(model_finding).take(MAX_MODEL_FINDINGS).collect();
    if verdict.as_deref() == Some("reject") && !findings.iter().any(|f| f.severity == Severity::High) {
        let reason = value.get("reason").and_then(Value::as_str).unwrap_or("the model rejected the agent");
        findings.push(Finding::new(Severity::High, "llm-reject", clip(reason, 300)));
    }
    Ok(findings)
}

fn model_finding(entry: &Value) -> Option<Finding> {
    let severity = match entry.get("severity")?.as_str()?.to_ascii_lowercase().as_str() {
        "high" | "critical" => Severity::High,
        "medium" => Severity::Medium,
        "low" | "info" => Severity::Low,
        _ => return None,
    };
    let rule = model_rule(entry.get("rule").and_then(Value::as_str).unwrap_or(""));
    let detail = entry.get("detail").and_then(Value::as_str).unwrap_or("(no detail)");
    Some(Finding::new(severity, &rule, clip(detail, 300)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_parsed_defensively() {
        let ok = parse_reply("```json\n{\"verdict\":\"approve\",\"findings\":[{\"severity\":\"Medium\",\"rule\":\"Prompt Injection!\",\"detail\":\"d\"},{\"severity\":\"bogus\"}]}\n```").unwrap();
        assert_eq!(ok, vec![Finding::new(Severity::Medium, "llm-prompt-injection", "d")]);
        assert!(parse_reply("I think it is fine").is_err());
        assert!(parse_reply("{\"findings\": 3}").is_err());
        assert!(parse_reply("{}").is_err());
        assert_eq!(parse_reply("{\"verdict\":\"approve\"}").unwrap(), vec![]);
    }

    #[test]
    fn a_model_reject_becomes_a_high_finding() {
        let f = parse_reply("{\"verdict\":\"reject\",\"findings\":[],\"reason\":\"exfiltrates memory\"}").unwrap();
        assert_eq!(f, vec![Finding::new(Severity::High, "llm-reject", "exfiltrates memory")]);
    }

    #[test]
    fn the_prompt_bounds_sources() {
        let mut input = ReviewInput::default();
        input.files.insert("src/lib.rs".into(), "x".repeat(100_000));
        let p = prompt(&input, &[]);
        assert!(p.len() < 30_000 && p.contains("truncated"));
    }
}
