//! Guest `wants-evolution`: drives the `evolution` capability for the tests.
//!
//! The request's `context` is `{"op": ..., ...}`: `create` (`name`, `spec`,
//! `cases`: `[[name, request, expected, held_out]]`), `evolve` (`agent`),
//! `status` (`id`), `stats`, `propose` (`kind`, `agent`, `detail`),
//! `compare` (`agent`, `baseline`, `candidate`, `max`), or `hammer-propose`
//! (`n` proposals in one call, counting each outcome). Answers the result as
//! text; a refusal is an agent error `CODE: message`.
use agentkernel_sdk::evolution::{self, EvolutionError, TestCase};
use agentkernel_sdk::prelude::*;
use serde_json::{Value, json};

struct Probe;

fn refused(e: EvolutionError) -> AgentError {
    AgentError::CapabilityFailed(format!("{}: {}", e.code(), e.message()))
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn cases(v: &Value) -> Vec<TestCase> {
    let rows = v.get("cases").and_then(Value::as_array).cloned().unwrap_or_default();
    rows.iter()
        .map(|r| {
            let field = |i: usize| r.get(i).and_then(Value::as_str).unwrap_or("").to_string();
            let mut case = TestCase::new(&field(0), &field(1), [field(2)]);
            case.held_out = r.get(3).and_then(Value::as_bool).unwrap_or(false);
            case
        })
        .collect()
}

fn hammer(v: &Value) -> String {
    let n = v.get("n").and_then(Value::as_u64).unwrap_or(1);
    let mut outcomes = std::collections::BTreeMap::<String, u64>::new();
    for i in 0..n {
        let code = match evolution::propose("instances", "echo", &format!("proposal {i}")) {
            Ok(_) => "ok".to_string(),
            Err(e) => e.code().to_string(),
        };
        *outcomes.entry(code).or_default() += 1;
    }
    json!(outcomes).to_string()
}

impl Agent for Probe {
    fn describe() -> Manifest {
        Manifest::new("wants-evolution", "0.1.0", "asks the host to create, evolve and compare agents.")
            .capability("evolution", "does what the test asks for")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let v: Value = req.context_as().ok_or_else(|| AgentError::InvalidRequest("context must be {\"op\": ...}".into()))?;
        let text = match s(&v, "op") {
            "create" => evolution::create_agent(s(&v, "name"), s(&v, "spec"), &cases(&v)).map_err(refused)?,
            "evolve" => evolution::evolve_agent(s(&v, "agent")).map_err(refused)?,
            "status" => {
                let r = evolution::run_status(s(&v, "id")).map_err(refused)?;
                json!({"id": r.id, "agent": r.agent, "status": r.status, "decision": r.decision, "summary": r.summary}).to_string()
            }
            "stats" => {
                let stats = evolution::agent_stats().map_err(refused)?;
                json!(stats.iter().map(|a| json!({"name": a.name, "calls": a.calls, "errors": a.errors})).collect::<Vec<_>>()).to_string()
            }
            "propose" => evolution::propose(s(&v, "kind"), s(&v, "agent"), s(&v, "detail")).map_err(refused)?,
            "compare" => {
                let max = v.get("max").and_then(Value::as_u64).unwrap_or(8) as u32;
                evolution::compare_versions(s(&v, "agent"), s(&v, "baseline"), s(&v, "candidate"), max).map_err(refused)?
            }
            "hammer-propose" => hammer(&v),
            other => return Err(AgentError::InvalidRequest(format!("unknown op {other:?}"))),
        };
        Ok(Response::text(text))
    }
}

export_agent!(Probe);
