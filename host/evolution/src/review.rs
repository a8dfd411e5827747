//! The security review of a created agent: before a new agent is
//! registered, the host asks the `security-guardian` agent to review what
//! the winner imports, what policy grants its name, and its source. The
//! verdict is in the report and the run's outcome; a reject, an unusable
//! answer or a failed call keeps the agent out (fail closed). Without a
//! reviewer loaded, a creation an agent asked for (the `evolution`
//! capability) is refused; one an admin ran (`agentkernel create`) goes on,
//! marked `unreviewed`.
use serde::{Deserialize, Serialize};
use serde_json::json;

use agentkernel_runtime::LoadedAgent;
use agentkernel_runtime::bindings::Request;

use crate::source_check::CandidateSource;
use agentkernel_core::registry::Registry;

/// The agent that reviews created agents.
pub use agentkernel_capabilities::evolution::REVIEWER;
/// Most source bytes sent for review (files past it are named, not sent).
pub const MAX_REVIEW_SOURCE_BYTES: usize = 256 * 1024;
/// Most findings kept from a review, and the longest text of each.
pub const MAX_FINDINGS: usize = 50;
const MAX_FINDING_CHARS: usize = 500;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub severity: String,
    pub rule: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityReview {
    /// Who reviewed (the reviewer agent and its version), or `none`.
    pub reviewer: String,
    /// `approve`, `reject`, or `unreviewed` (no reviewer; admin runs only).
    pub verdict: String,
    pub findings: Vec<Finding>,
    /// The reviewer's summary, or why there is no verdict.
    pub summary: String,
}

impl SecurityReview {
    /// Whether the agent may be registered.
    pub fn allows(&self) -> bool {
        self.verdict != "reject"
    }

    fn rejected(reviewer: &str, rule: &str, why: String) -> Self {
        SecurityReview {
            reviewer: reviewer.into(),
            verdict: "reject".into(),
            findings: vec![Finding { severity: "high".into(), rule: rule.into(), detail: why.clone() }],
            summary: why,
        }
    }
}

/// What the reviewer is asked to look at.
pub struct ReviewSubject<'a> {
    pub agent: &'a str,
    pub spec: &'a str,
    /// The winner, loaded as production would load it (its imports and grants).
    pub candidate: &'a LoadedAgent,
    pub source: &'a CandidateSource,
    /// The agent that asked for the creation (`None`: an admin).
    pub requested_by: Option<&'a str>,
}

fn clip(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// The source sent for review: whole files up to [`MAX_REVIEW_SOURCE_BYTES`].
fn review_files(source: &CandidateSource) -> serde_json::Map<String, serde_json::Value> {
    let mut sent = 0;
    let mut files = serde_json::Map::new();
    for (path, text) in &source.files {
        let value = if sent + text.len() <= MAX_REVIEW_SOURCE_BYTES {
            sent += text.len();
            json!(text)
        } else {
            json!(format!("(not sent: {} bytes past the review's {MAX_REVIEW_SOURCE_BYTES}-byte cap)", text.len()))
        };
        files.insert(format!("src/{path}"), value);
    }
    files
}

/// The reviewer's answer, read strictly: a verdict of `approve` or `reject`.
fn parse_verdict(reviewer: &str, text: &str, data: Option<&str>) -> SecurityReview {
    #[derive(Deserialize)]
    struct Answer {
        verdict: String,
        #[serde(default)]
        findings: Vec<serde_json::Value>,
    }
    let Some(answer) = data.and_then(|d| serde_json::from_str::<Answer>(d).ok()) else {
        return SecurityReview::rejected(reviewer, "no-verdict", "the reviewer's answer carries no verdict".into());
    };
    if !matches!(answer.verdict.as_str(), "approve" | "reject") {
        return SecurityReview::rejected(reviewer, "no-verdict", format!("unknown verdict {:?}", clip(&answer.verdict, 40)));
    }
    let field = |v: &serde_json::Value, k: &str| clip(v.get(k).and_then(|x| x.as_str()).unwrap_or(""), MAX_FINDING_CHARS);
    let findings = answer
        .findings
        .iter()
        .take(MAX_FINDINGS)
        .map(|f| Finding { severity: field(f, "severity"), rule: field(f, "rule"), detail: field(f, "detail") })
        .collect();
    SecurityReview { reviewer: reviewer.into(), verdict: answer.verdict, findings, summary: clip(text, 2000) }
}

/// Runs the review (see the module docs for who decides what).
pub async fn review(registry: Option<&Registry>, subject: &ReviewSubject<'_>) -> SecurityReview {
    let Some(reviewer) = registry.and_then(|r| r.get(REVIEWER)) else {
        return match subject.requested_by {
            Some(by) => SecurityReview::rejected(
                "none",
                "no-reviewer",
                format!("`{REVIEWER}` is not loaded: an agent created at `{by}`'s request is never registered unreviewed"),
            ),
            None => SecurityReview {
                reviewer: "none".into(),
                verdict: "unreviewed".into(),
                findings: vec![],
                summary: format!("`{REVIEWER}` is not loaded; registered on the admin's authority"),
            },
        };
    };
    let who = format!("{REVIEWER} {}", reviewer.manifest.version);
    let names = |caps: Vec<agentkernel_runtime::policy::Capability>| caps.into_iter().map(|c| c.name()).collect::<Vec<_>>();
    let context = json!({ "review": {
        "agent": subject.agent,
        "spec": clip(subject.spec, 4096),
        "imports": names(subject.candidate.imports.capabilities.clone()),
        "granted": names(subject.candidate.grants.granted()),
        "requested_by": subject.requested_by,
        "files": review_files(subject.source),
    }});
    let request = Request {
        session_id: format!("security-review-{}", subject.agent),
        text: "review".into(),
        history: vec![],
        context: Some(context.to_string()),
    };
    match reviewer.call(&request).await {
        Ok(outcome) => parse_verdict(&who, &outcome.response.text, outcome.response.data.as_deref()),
        Err(e) => SecurityReview::rejected(&who, "review-failed", format!("the review call failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_clear_verdict_counts() {
        let approve = parse_verdict("g", "fine", Some(r#"{"verdict":"approve","findings":[{"severity":"low","rule":"r","detail":"d"}]}"#));
        assert!(approve.allows());
        assert_eq!(approve.findings.len(), 1);
        assert!(!parse_verdict("g", "x", Some(r#"{"verdict":"reject"}"#)).allows());
        assert!(!parse_verdict("g", "x", Some(r#"{"verdict":"looks ok"}"#)).allows(), "unknown verdicts reject");
        assert!(!parse_verdict("g", "x", None).allows(), "no data rejects");
        assert!(!parse_verdict("g", "x", Some("not json")).allows());
    }

    #[test]
    fn review_source_is_capped() {
        let mut files = std::collections::BTreeMap::new();
        files.insert("a.rs".to_string(), "x".repeat(MAX_REVIEW_SOURCE_BYTES - 10));
        files.insert("b.rs".to_string(), "y".repeat(100));
        let sent = review_files(&CandidateSource { files });
        assert!(sent["src/a.rs"].as_str().unwrap().starts_with("xxx"));
        assert!(sent["src/b.rs"].as_str().unwrap().starts_with("(not sent"));
    }
}
