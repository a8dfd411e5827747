//! `codegen-engine`: asks the host to create a new agent from a
//! description and test cases (`evolution::create_agent`), and reports
//! what became of the runs it started.
//!
//! "create an agent called shout that answers with the request in
//! capitals; cases: 'hello' -> 'HELLO', 'abc' -> 'ABC'" is read by rule
//! ([`parse`]); when the rules miss a part and a model answers, the model's
//! reading fills it ([`model`], validated: it may extract cases, never
//! invent them). Without cases it asks for them and starts nothing. A
//! caller may also pass `context = {"name", "spec", "cases": [..]}`.
//!
//! Runs are remembered (`run/<id>` → name, `agent/<name>` → id), so "what
//! happened to shout" and "status of my agents" read `evolution::run_status`.
use agentkernel_sdk::evolution::{self, TestCase};
use agentkernel_sdk::prelude::*;
use serde_json::json;

pub mod model;
pub mod parse;
pub mod report;

use parse::{CreateDraft, Intent, hold_out_last, intent, missing_parts, parse_create};
use report::{describe_run, explain_error};

pub struct CodegenEngine;

pub const NAME: &str = "codegen-engine";
/// Most runs reported in one status answer.
const MAX_STATUS_RUNS: u32 = 10;

const HELP: &str = "I create new agents through the host. Tell me a name, what it should do, and test cases, e.g. \
\"create an agent called shout that answers with the request in capitals; cases: 'hello' -> 'HELLO', 'abc' -> 'ABC'\". \
Then ask \"what happened to shout\" or \"status of my agents\".";

/// The agents this engine has started runs for (`agent/<name>` keys).
fn known_agents() -> Vec<String> {
    match memory::list_keys("agent/", 200) {
        Ok(keys) => keys.into_iter().filter_map(|k| k.strip_prefix("agent/").map(str::to_string)).collect(),
        Err(e) => {
            log::warn(&format!("cannot list my runs: {e:?}"));
            Vec::new()
        }
    }
}

/// Reads a create request from text: rules first, the model for what they miss.
fn draft_from_text(text: &str) -> (CreateDraft, &'static str, Option<String>) {
    let rules = parse_create(text);
    if missing_parts(&rules).is_empty() {
        return (rules, "rules", None);
    }
    match model::read(text) {
        Ok(reading) => (model::merge(rules, reading), "rules+llm", None),
        Err(why) => (rules, "rules", Some(why)),
    }
}

/// Sends a complete draft to the host and remembers the run.
fn create(mut draft: CreateDraft, method: &str) -> Result<Response, AgentError> {
    let missing = missing_parts(&draft);
    let (Some(name), Some(spec)) = (draft.name.clone(), draft.spec.clone()) else {
        return Err(AgentError::InvalidRequest(format!("To create an agent I still need {}. No run was started.", missing.join(" and "))));
    };
    if !missing.is_empty() {
        return Err(AgentError::InvalidRequest(format!(
            "To create `{name}` I still need {}. No run was started.",
            missing.join(" and ")
        )));
    }
    let held_back = hold_out_last(&mut draft.cases);
    let cases: Vec<TestCase> = draft
        .cases
        .iter()
        .map(|c| TestCase { name: c.name.clone(), request: c.request.clone(), expect_contains: c.expect_contains.clone(), held_out: c.held_out })
        .collect();
    let run = match evolution::create_agent(&name, &spec, &cases) {
        Ok(run) => run,
        Err(e) => {
            let text = explain_error("create", &name, &e);
            return Ok(Response::text(text).with_data(&json!({"agent": name, "error": e.code(), "message": e.message(), "method": method})));
        }
    };
    let remembered = memory::batch(&[
        memory::BatchOp::Set((format!("run/{run}"), name.clone().into_bytes())),
        memory::BatchOp::Set((format!("agent/{name}"), run.clone().into_bytes())),
    ]);
    let mut text = format!(
        "Started creating `{name}` (run {run}) from the spec \"{spec}\" with {} case(s){}. The host builds candidates in its sandbox, benchmarks them on the cases and registers `{name}` only if one passes them all and the security review. Ask me \"what happened to {name}\" later.",
        cases.len(),
        if held_back { ", the last one held out to check the winner" } else { "" },
    );
    if let Err(e) = remembered {
        text.push_str(&format!(" (I could not remember the run: {e:?}; its id is {run}.)"));
    }
    let held_out = cases.iter().filter(|c| c.held_out).count();
    Ok(Response::text(text).with_data(&json!({"run": run, "agent": name, "cases": cases.len(), "held_out": held_out, "method": method})))
}

/// The run ids to report: one agent's latest, or every remembered run.
fn runs_to_report(agent: Option<&str>) -> Result<Vec<(String, String)>, AgentError> {
    if let Some(name) = agent {
        return Ok(memory::get_string(&format!("agent/{name}"))?.map(|id| (id, name.to_string())).into_iter().collect());
    }
    let keys = memory::list_keys("run/", 200)?;
    let mut runs = Vec::new();
    // The newest runs are the most interesting; ids sort by start in this host, so the last keys.
    for key in keys.iter().rev().take(MAX_STATUS_RUNS as usize) {
        let id = key.trim_start_matches("run/").to_string();
        let name = memory::get_string(key)?.unwrap_or_default();
        runs.push((id, name));
    }
    Ok(runs)
}

/// "what happened to shout", "status of my agents".
fn status(agent: Option<String>) -> Result<Response, AgentError> {
    let runs = runs_to_report(agent.as_deref())?;
    if runs.is_empty() {
        let text = match agent {
            Some(name) => format!("I have not started a run for `{name}`."),
            None => "I have not started any runs yet. Ask me to create an agent first.".to_string(),
        };
        return Ok(Response::text(text).with_data(&json!({"runs": []})));
    }
    let mut lines = Vec::new();
    let mut data = Vec::new();
    for (id, name) in runs {
        match evolution::run_status(&id) {
            Ok(run) => {
                lines.push(format!("- {}", describe_run(&run)));
                data.push(json!({"id": run.id, "agent": run.agent, "status": run.status, "decision": run.decision, "summary": run.summary}));
            }
            Err(e) => {
                lines.push(format!("- `{name}` (run {id}): {}", explain_error("read the run of", &name, &e)));
                data.push(json!({"id": id, "agent": name, "error": e.code(), "message": e.message()}));
            }
        }
    }
    Ok(Response::text(format!("My runs:\n{}", lines.join("\n"))).with_data(&json!({"runs": data})))
}

impl Agent for CodegenEngine {
    fn describe() -> Manifest {
        Manifest::new(
            NAME,
            "0.1.0",
            "Creates new agents: asks the host to generate, test and register an agent from a name, a description and test cases, and reports what became of each run. Reads requests by rule offline; a model, when configured, fills in what the rules miss.",
        )
        .skill(
            Skill::new("create-agent", "Create a new agent from a description and test cases")
                .keywords(["create an agent", "new agent", "make an agent", "build an agent", "generate an agent", "write an agent", "codegen", "create agent"]),
        )
        .skill(
            Skill::new("creation-status", "Report what happened to the agents it asked the host to create")
                .keywords(["what happened to", "status of my agents", "creation status", "my runs"]),
        )
        .capability("evolution", "asks the host to create agents and reads the runs it started")
        .capability("llm", "reads free-form create requests when a model is configured")
        .capability("memory", "remembers the runs it started")
        .capability("log", "logs what it decided")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let text = req.text.trim();
        if let Some(draft) = req.context_as::<CreateDraft>().filter(|d| d.name.is_some() || !d.cases.is_empty()) {
            let mut draft = draft;
            for (i, c) in draft.cases.iter_mut().enumerate() {
                if !parse::valid_name(&c.name) {
                    c.name = format!("case-{}", i + 1);
                }
            }
            return create(draft, "context");
        }
        if text.is_empty() {
            return Err(AgentError::InvalidRequest(HELP.into()));
        }
        match intent(text, &known_agents()) {
            Intent::Create => {
                let (draft, method, model_note) = draft_from_text(text);
                if let Some(note) = model_note {
                    log::debug(&format!("create request read by rules only: {note}"));
                }
                create(draft, method)
            }
            Intent::Status(agent) => status(agent),
            Intent::Help => Ok(Response::text(HELP)),
        }
    }
}

export_agent!(CodegenEngine);

#[cfg(test)]
mod tests;
