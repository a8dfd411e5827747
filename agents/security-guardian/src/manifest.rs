//! Reviewing a loaded agent on request ("is notes safe?"): its manifest's
//! declared capabilities against the platform's policy of what each one
//! allows. The host checks the component's real imports against policy at
//! load; this review says what the agent is able to do and whether that
//! needs a person's attention.
use agentkernel_sdk::Manifest;

use crate::rules::{Finding, KNOWN_CAPABILITIES, Severity};

/// What each capability lets an agent do, and how much attention it needs.
fn capability_risk(name: &str) -> Option<(Severity, &'static str, &'static str)> {
    Some(match name {
        "aws-ec2" => (Severity::Medium, "cloud-access", "can describe and change EC2 instances within its grant"),
        "evolution" => (Severity::Medium, "can-change-agents", "can ask the host to create or evolve agents"),
        "http" => (Severity::Low, "outbound-http", "sends requests to the hosts its grant lists"),
        "agents" => (Severity::Low, "calls-agents", "calls other agents"),
        "llm" => (Severity::Low, "uses-llm", "sends text to a language model (spends tokens)"),
        _ => return None,
    })
}

/// Findings for one manifest.
pub fn manifest_findings(m: &Manifest) -> Vec<Finding> {
    let mut findings = Vec::new();
    for c in &m.capabilities {
        if !KNOWN_CAPABILITIES.contains(&c.name.as_str()) {
            findings.push(Finding::new(Severity::High, "unknown-capability", format!("declares `{}`, no capability of this host", c.name)));
            continue;
        }
        if let Some((severity, rule, what)) = capability_risk(&c.name) {
            findings.push(Finding::new(severity, rule, format!("`{}`: {what}", c.name)));
        }
        if c.reason.trim().is_empty() && !matches!(c.name.as_str(), "log" | "memory") {
            findings.push(Finding::new(Severity::Low, "unexplained-capability", format!("`{}` is declared without a reason", c.name)));
        }
    }
    findings.sort_by(|a, b| b.severity.cmp(&a.severity));
    findings
}

/// The agents of `names` that `text` names (as whole words), in `names`' order.
pub fn named_agents(text: &str, names: &[String]) -> Vec<String> {
    let lower = text.to_lowercase();
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '-';
    names
        .iter()
        .filter(|name| {
            lower.match_indices(name.as_str()).any(|(at, _)| {
                let before = lower[..at].chars().next_back();
                let after = lower[at + name.len()..].chars().next();
                !before.is_some_and(is_name_char) && !after.is_some_and(is_name_char)
            })
        })
        .cloned()
        .collect()
}

/// "review all agents", "are my agents safe", "audit everything".
pub fn wants_all(text: &str) -> bool {
    let lower = text.to_lowercase();
    ["all agents", "every agent", "each agent", "everything", "all of them", "my agents", "the agents"].iter().any(|p| lower.contains(p))
}

/// "what have you reviewed", "past reviews", "review history".
pub fn asks_for_history(text: &str) -> bool {
    let lower = text.to_lowercase();
    ["have you reviewed", "past reviews", "previous reviews", "review history", "recent reviews", "did you review", "last reviews"]
        .iter()
        .any(|p| lower.contains(p))
}

/// One agent's review as a line.
pub fn describe(name: &str, findings: &[Finding]) -> String {
    let verdict = crate::rules::Verdict::of(findings).name();
    if findings.is_empty() {
        return format!("{name}: {verdict} (declares only log/memory or nothing risky)");
    }
    let parts: Vec<String> = findings.iter().map(|f| format!("{} {}: {}", severity_name(f.severity), f.rule, f.detail)).collect();
    format!("{name}: {verdict} — {}", parts.join("; "))
}

pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_as_words() {
        let names: Vec<String> = ["notes", "summarizer", "infrastructure-architect", "primes"].iter().map(|s| s.to_string()).collect();
        assert_eq!(named_agents("is notes safe?", &names), vec!["notes"]);
        assert_eq!(named_agents("review the agent Summarizer and infrastructure-architect", &names), vec!["summarizer", "infrastructure-architect"]);
        assert!(named_agents("footnotes please", &names).is_empty());
    }

    #[test]
    fn risky_capabilities_are_flagged_and_unknown_ones_reject() {
        let m = Manifest::new("x", "1", "d").capability("aws-ec2", "cloud").capability("memory", "").capability("teleport", "why");
        let f = manifest_findings(&m);
        assert_eq!(f[0].rule, "unknown-capability");
        assert!(f.iter().any(|f| f.rule == "cloud-access" && f.severity == Severity::Medium));
        assert!(!f.iter().any(|f| f.rule == "unexplained-capability"), "memory needs no reason");
        assert!(describe("x", &f).starts_with("x: reject"));
    }
}
