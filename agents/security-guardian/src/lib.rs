//! `security-guardian`: reviews agents for security risks.
//!
//! - The host calls it before registering a created agent: `text =
//!   "review"`, `context = {"review": {agent, spec, imports, granted,
//!   files}}`; it answers `data = {verdict, findings, method}` and a
//!   one-paragraph summary. The offline [`rules`] decide the base verdict
//!   (any high finding rejects); a model (profile `smart`), when one
//!   answers, may add findings but never turns a rules reject into an
//!   approve. A malformed model reply is ignored and the summary says so.
//! - Asked in words ("is notes safe?", "review the agent summarizer",
//!   "review all agents"), it reads the loaded agents' manifests through
//!   `agents::list_agents` and reviews their declared capabilities.
//! - It remembers each verdict (`review/<agent>`) and answers "what have
//!   you reviewed?".
use agentkernel_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

pub mod lexer;
pub mod manifest;
pub mod model;
pub mod rules;

use manifest::{asks_for_history, describe, manifest_findings, named_agents, severity_name, wants_all};
use model::ModelOpinion;
use rules::{Finding, ReviewInput, Severity, Verdict};

pub struct SecurityGuardian;

pub const NAME: &str = "security-guardian";
/// Most past reviews recalled in one answer.
const MAX_RECALLED: u32 = 30;

/// The host's review request.
#[derive(Debug, Deserialize)]
struct ReviewContext {
    review: ReviewInput,
}

/// Counts by severity, for summaries.
fn counts(findings: &[Finding]) -> (usize, usize, usize) {
    let n = |s| findings.iter().filter(|f| f.severity == s).count();
    (n(Severity::High), n(Severity::Medium), n(Severity::Low))
}

/// The one-paragraph summary of a created agent's review.
pub fn summary(agent: &str, verdict: Verdict, findings: &[Finding], method: &str, note: Option<&str>) -> String {
    let (high, medium, low) = counts(findings);
    let mut text = format!(
        "Security review of `{agent}`: {} ({high} high, {medium} medium, {low} low findings; method {method}).",
        verdict.name().to_uppercase()
    );
    let worst: Vec<String> = findings.iter().take(3).map(|f| format!("{} {}: {}", severity_name(f.severity), f.rule, f.detail)).collect();
    if !worst.is_empty() {
        text.push_str(&format!(" Most serious: {}.", worst.join("; ")));
    }
    if verdict == Verdict::Reject {
        text.push_str(" Any high finding rejects; the agent must not be registered as it is.");
    }
    if let Some(note) = note {
        text.push(' ');
        text.push_str(note);
    }
    text
}

/// Reviews a created agent (the host's request).
fn review_created(input: ReviewInput) -> Response {
    let mut findings = rules::review(&input);
    let rules_verdict = Verdict::of(&findings);
    // A rules reject is final: the model is not asked (its findings could
    // not change the verdict, and its tokens are better saved).
    let opinion = if rules_verdict == Verdict::Reject {
        ModelOpinion::Unavailable("the rules rejected, so the model was not consulted".into())
    } else {
        model::ask(&input, &findings)
    };
    let (method, note) = match opinion {
        ModelOpinion::Added(extra) => {
            findings.extend(extra);
            ("rules+llm", None)
        }
        ModelOpinion::Malformed(why) => ("rules", Some(format!("The model's reply was malformed and ignored ({why})."))),
        ModelOpinion::Unavailable(why) => ("rules", Some(format!("Rules only: {why}."))),
    };
    findings.sort_by(|a, b| b.severity.cmp(&a.severity));
    let verdict = if rules_verdict == Verdict::Reject { Verdict::Reject } else { Verdict::of(&findings) };
    let name = if input.agent.is_empty() { "(unnamed)" } else { input.agent.as_str() };
    remember(name, "created", verdict, method, &findings);
    log::info(&format!("review of {name}: {} ({method}, {} findings)", verdict.name(), findings.len()));
    Response::text(summary(name, verdict, &findings, method, note.as_deref())).with_data(&json!({
        "verdict": verdict.name(),
        "findings": findings,
        "method": method,
        "note": note,
    }))
}

/// Stores a verdict; a memory failure only costs the recollection.
fn remember(agent: &str, kind: &str, verdict: Verdict, method: &str, findings: &[Finding]) {
    let (high, medium, low) = counts(findings);
    let record = json!({
        "agent": agent, "kind": kind, "verdict": verdict.name(), "method": method,
        "high": high, "medium": medium, "low": low,
        "top": findings.first().map(|f| format!("{}: {}", f.rule, f.detail)),
    });
    let key = format!("review/{}", agent.chars().take(64).collect::<String>());
    if let Err(e) = memory::set_string(&key, &record.to_string()) {
        log::warn(&format!("cannot remember the review of {agent}: {e:?}"));
    }
}

/// "what have you reviewed?"
fn recall() -> Result<Response, AgentError> {
    let keys = memory::list_keys("review/", MAX_RECALLED)?;
    let mut lines = Vec::new();
    let mut records = Vec::new();
    for key in keys {
        let Some(raw) = memory::get_string(&key)? else { continue };
        let Ok(r) = serde_json::from_str::<Value>(&raw) else { continue };
        let field = |k: &str| r.get(k).map(|v| v.to_string().trim_matches('"').to_string()).unwrap_or_default();
        lines.push(format!(
            "- {} ({} review): {} — {} high, {} medium, {} low",
            field("agent"), field("kind"), field("verdict"), field("high"), field("medium"), field("low")
        ));
        records.push(r);
    }
    if lines.is_empty() {
        return Ok(Response::text("I have not reviewed any agent yet.").with_data(&json!({"reviews": []})));
    }
    Ok(Response::text(format!("My reviews so far:\n{}", lines.join("\n"))).with_data(&json!({"reviews": records})))
}

/// Reviews loaded agents' manifests named in `text` (or all of them).
fn review_loaded(text: &str) -> Result<Response, AgentError> {
    let manifests = agents::list_agents();
    if manifests.is_empty() {
        return Ok(Response::text(
            "I can see no other loaded agents: none is loaded, or my `agents` grant lists none (`agents = { max_depth = 1 }` lets me read every manifest and call none).",
        ));
    }
    let names: Vec<String> = manifests.iter().map(|m| m.name.clone()).collect();
    let mut targets = named_agents(text, &names);
    if targets.is_empty() && wants_all(text) {
        targets = names.clone();
    }
    if targets.is_empty() {
        return Ok(Response::text(format!(
            "Which agent should I review? I can see: {}. Ask e.g. \"is {} safe?\" or \"review all agents\".",
            names.join(", "),
            names[0]
        )));
    }
    let mut lines = Vec::new();
    let mut reviews = Vec::new();
    for m in manifests.iter().filter(|m| targets.contains(&m.name)) {
        let findings = manifest_findings(m);
        let verdict = Verdict::of(&findings);
        remember(&m.name, "manifest", verdict, "rules", &findings);
        lines.push(describe(&m.name, &findings));
        reviews.push(json!({"agent": m.name, "verdict": verdict.name(), "findings": findings}));
    }
    let text = format!(
        "{}\n(Declared capabilities reviewed against what each one allows; the host checks each component's real imports against policy at load.)",
        lines.join("\n")
    );
    Ok(Response::text(text).with_data(&json!({"reviews": reviews, "method": "rules"})))
}

impl Agent for SecurityGuardian {
    fn describe() -> Manifest {
        Manifest::new(
            NAME,
            "0.1.0",
            "Reviews agents for security risks: a created agent's source and imports before the host registers it, and any loaded agent's capabilities on request. Works offline with deterministic rules; a model can add findings but never approve what the rules reject.",
        )
        .skill(
            Skill::new("security-review", "Review an agent's capabilities and permissions for security risks, is an agent safe")
                .keywords(["security", "safe", "unsafe", "audit", "risk", "risky", "permissions", "dangerous", "trust", "vulnerability", "guardian"]),
        )
        // A question about an agent's safety names that agent too ("is notes safe?"): this skill makes it outscore the agent it names.
        .skill(
            Skill::new("safety-check", "Say whether an agent is safe to use: what it can do and the risks")
                .keywords(["safe?", "is it safe", "safe to use", "safe to run"]),
        )
        .skill(
            Skill::new("review-history", "List the security reviews and verdicts given so far")
                .keywords(["reviewed", "past reviews", "review history", "verdicts"]),
        )
        .capability("agents", "reads the loaded agents' manifests to review them (calls none)")
        .capability("llm", "asks a model for a second opinion on created agents, when one is configured")
        .capability("memory", "remembers each verdict")
        .capability("log", "logs what it decided")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let text = req.text.trim();
        if let Some(ctx) = req.context_as::<ReviewContext>() {
            return Ok(review_created(ctx.review));
        }
        if text.eq_ignore_ascii_case("review") && req.context.is_some() {
            return Err(AgentError::InvalidRequest(
                "the review context must be {\"review\": {\"agent\", \"spec\", \"imports\", \"granted\", \"files\"}}".into(),
            ));
        }
        if text.is_empty() {
            return Err(AgentError::InvalidRequest("ask e.g. \"is notes safe?\" or \"review all agents\"".into()));
        }
        if asks_for_history(text) {
            return recall();
        }
        review_loaded(text)
    }
}

export_agent!(SecurityGuardian);

#[cfg(test)]
mod tests;
