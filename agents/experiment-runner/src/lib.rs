//! `experiment-runner`: compares two recorded versions of an agent on its
//! recorded traffic (the host's transcripts) through
//! `evolution::compare_versions`, and reports which is better, with
//! numbers: errors, fuel, agreement, the first disagreements.
//!
//! Requests are read by rule ([`parse`]): "compare primes 1a2b3c against
//! 4d5e6f", "run an experiment on primes: v1 vs v2". Past experiments are
//! remembered (`experiment/<n>`) and listed on "what experiments have you
//! run?". It needs no model.
use agentkernel_sdk::evolution::{self, EvolutionError};
use agentkernel_sdk::prelude::*;
use serde_json::{Value, json};

pub mod parse;
pub mod report;

use parse::{Experiment, Intent};
use report::{Comparison, parse_comparison};

pub struct ExperimentRunner;

pub const NAME: &str = "experiment-runner";
/// Past experiments listed in one answer.
const MAX_RECALLED: usize = 10;

const HELP: &str = "I compare two versions of an agent on its recorded requests and say which is better, with numbers. \
Ask e.g. \"compare primes 1a2b3c against 4d5e6f\" or \"run an experiment on primes: v1 vs v2 on 20 requests\" \
(versions are lineage hashes or unique prefixes), or \"what experiments have you run?\".";

/// The host's error, in words.
pub fn explain_error(x: &Experiment, e: &EvolutionError) -> String {
    let (agent, m) = (&x.agent, e.message());
    match e {
        EvolutionError::NotAllowed(_) => format!("I may not compare versions ({m}); an admin can grant `evolution = {{ compare = true }}` to {NAME}."),
        EvolutionError::NotFound(_) => format!(
            "The host found no version {} or {} of `{agent}`, or no recorded requests for it ({m}). Versions are lineage hashes or unique prefixes.",
            x.baseline, x.candidate
        ),
        EvolutionError::InvalidRequest(_) => format!("The host refused the comparison as malformed ({m})."),
        EvolutionError::Busy(_) => format!("`{agent}` is busy right now ({m}); try again shortly."),
        EvolutionError::BudgetExceeded(_) => format!("My comparison budget is used up ({m}); it resets at midnight UTC."),
        EvolutionError::Failed(_) => format!("The host could not run the comparison: {m}."),
    }
}

/// Stores an experiment's outcome; a memory failure only costs the recollection.
fn remember(x: &Experiment, c: &Comparison) {
    let record = json!({
        "agent": x.agent, "baseline": x.baseline, "candidate": x.candidate, "better": c.better,
        "requests": c.requests, "agreed": c.agreed,
        "baseline_errors": c.baseline.errors, "candidate_errors": c.candidate.errors,
        "baseline_mean_fuel": c.baseline.mean_fuel, "candidate_mean_fuel": c.candidate.mean_fuel,
        "reason": c.reason,
    });
    let stored = memory::increment("experiments", 1).and_then(|n| memory::set_string(&format!("experiment/{n:06}"), &record.to_string()));
    if let Err(e) = stored {
        log::warn(&format!("cannot remember the experiment: {e:?}"));
    }
}

fn run(x: Experiment) -> Response {
    let doc = match evolution::compare_versions(&x.agent, &x.baseline, &x.candidate, x.max_requests) {
        Ok(doc) => doc,
        Err(e) => return Response::text(explain_error(&x, &e)).with_data(&json!({"agent": x.agent, "error": e.code(), "message": e.message()})),
    };
    let comparison = match parse_comparison(&doc) {
        Ok(c) => c,
        Err(why) => {
            let raw: String = doc.chars().take(300).collect();
            return Response::text(format!("The comparison ran, but I cannot read its result: {why}. It began: {raw}")).with_data(&json!({"agent": x.agent, "error": "unreadable"}));
        }
    };
    remember(&x, &comparison);
    let text = report::report(&x.agent, &x.baseline, &x.candidate, &comparison);
    Response::text(text).with_data(&json!({"experiment": {"agent": x.agent, "baseline": x.baseline, "candidate": x.candidate, "max_requests": x.max_requests}, "result": comparison}))
}

/// One remembered experiment as a line.
pub fn history_line(r: &Value) -> String {
    let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
    let n = |k: &str| r.get(k).and_then(Value::as_u64).map_or("?".to_string(), |v| v.to_string());
    format!("- `{}`: {} vs {} → {} ({} requests, {} agreed; errors {} vs {})", s("agent"), s("baseline"), s("candidate"), s("better"), n("requests"), n("agreed"), n("baseline_errors"), n("candidate_errors"))
}

fn history() -> Result<Response, AgentError> {
    let keys = memory::list_keys("experiment/", 1000)?;
    let mut records = Vec::new();
    for key in keys.iter().rev().take(MAX_RECALLED) {
        if let Some(r) = memory::get_string(key)?.and_then(|raw| serde_json::from_str::<Value>(&raw).ok()) {
            records.push(r);
        }
    }
    if records.is_empty() {
        return Ok(Response::text("I have not run any experiment yet.").with_data(&json!({"experiments": []})));
    }
    let lines: Vec<String> = records.iter().map(history_line).collect();
    Ok(Response::text(format!("My last {} experiment(s), newest first:\n{}", records.len(), lines.join("\n"))).with_data(&json!({"experiments": records})))
}

impl Agent for ExperimentRunner {
    fn describe() -> Manifest {
        Manifest::new(
            NAME,
            "0.1.0",
            "Compares two versions of an agent on its recorded requests and reports which is better, with numbers (errors, fuel, agreement). Rule-based: works offline.",
        )
        .skill(
            Skill::new("compare-versions", "Compare two versions of an agent on recorded traffic: an A/B experiment")
                .keywords(["compare", "experiment", "against", "versus", "vs", "a/b", "which version", "baseline", "candidate"]),
        )
        .skill(Skill::new("experiment-history", "List the experiments run so far").keywords(["experiments", "past experiments"]))
        .capability("evolution", "replays recorded requests on two versions (compare only)")
        .capability("memory", "remembers past experiments")
        .capability("log", "logs what it decided")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let text = req.text.trim();
        if text.is_empty() {
            return Err(AgentError::InvalidRequest(HELP.into()));
        }
        match parse::parse(text) {
            Intent::Run(x) => Ok(run(x)),
            Intent::Incomplete(missing) => Err(AgentError::InvalidRequest(format!("To run an experiment I need {missing}. {HELP}"))),
            Intent::History => history(),
            Intent::Help => Ok(Response::text(HELP)),
        }
    }
}

export_agent!(ExperimentRunner);

#[cfg(test)]
mod tests;
