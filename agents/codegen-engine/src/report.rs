//! Words for what the host answered: errors and run summaries.
use agentkernel_sdk::evolution::{EvolutionError, RunInfo};
use serde_json::Value;

/// A clear answer for each error code of the `evolution` capability.
pub fn explain_error(action: &str, target: &str, e: &EvolutionError) -> String {
    let msg = e.message();
    match e {
        EvolutionError::NotAllowed(_) => format!(
            "I am not allowed to {action} `{target}`: {msg}. An admin can grant it in agentkernel.toml (`[agents.codegen-engine] evolution = {{ create = true }}`)."
        ),
        EvolutionError::BudgetExceeded(_) => {
            format!("I cannot {action} `{target}` now: my run budget is used up ({msg}). It resets at midnight UTC.")
        }
        EvolutionError::InvalidRequest(_) => format!("The host refused to {action} `{target}`: the request is malformed ({msg})."),
        EvolutionError::Busy(_) => format!(
            "`{target}` is busy: an agent of that name exists or has a run going ({msg}). Choose another name, or ask me for its status."
        ),
        EvolutionError::NotFound(_) => format!("The host knows no such run for `{target}` ({msg})."),
        EvolutionError::Failed(_) => format!("The host could not {action} `{target}`: {msg}."),
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.chars().take(120).collect()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A run's JSON summary in words: scalars as `key value`, objects one
/// level deep, lists by length; not JSON: the text, clipped.
pub fn describe_summary(summary: &str) -> String {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(summary) else {
        return summary.chars().take(400).collect();
    };
    let mut parts = Vec::new();
    for (key, value) in map.iter().take(12) {
        let part = match value {
            Value::Object(inner) => {
                let fields: Vec<String> = inner.iter().filter_map(|(k, v)| scalar(v).map(|s| format!("{k} {s}"))).take(6).collect();
                (!fields.is_empty()).then(|| format!("{key}: {}", fields.join(", ")))
            }
            Value::Array(items) => Some(format!("{key}: {} item(s)", items.len())),
            Value::Null => None,
            v => scalar(v).map(|s| format!("{key} {s}")),
        };
        parts.extend(part);
    }
    parts.join("; ")
}

/// One run in a sentence.
pub fn describe_run(run: &RunInfo) -> String {
    let mut text = format!("`{}` (run {}): {}", run.agent, run.id, run.status);
    if let Some(d) = &run.decision {
        text.push_str(&format!(", decision {d}"));
    }
    match (&run.summary, run.is_done()) {
        (Some(s), _) => {
            let described = describe_summary(s);
            if !described.is_empty() {
                text.push_str(&format!(" — {described}"));
            }
        }
        (None, false) => text.push_str(" — still working; ask again in a minute"),
        (None, true) => {}
    }
    text.push('.');
    text
}
