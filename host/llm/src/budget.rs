//! Policy and daily budgets, checked before a call reaches the model. A
//! daily budget is *reserved* in the ledger first (the prompt's estimated
//! tokens plus the `max_tokens` the call is given, in one transaction per
//! agent: `Storage::llm_reserve`), and the reservation is replaced by what
//! the call used afterwards. Calls running at once, on one host or on
//! several sharing the store, therefore cannot each spend what is left:
//! the most a day's tokens can pass the budget by is the difference between
//! the prompts' estimates and their real counts.
use agentkernel_runtime::bindings::agentkernel::agent::llm::{ChatMessage, LlmError};
use agentkernel_storage::{LlmBudget, LlmUsageRecord, blocking};

use crate::{LlmCaller, LlmService, now_unix, utc_day_start};

/// The completion tokens a call under a daily token budget gets (and holds
/// while it runs) when neither it nor its grant's `tokens_per_call` says.
pub const RESERVED_TOKENS: u64 = 4096;

/// What a call may do: its `max_tokens`, and its reservation in the ledger
/// (settled with the call's usage), if its agent has daily budgets.
pub(crate) struct Admission {
    pub max_tokens: Option<u32>,
    pub reservation: Option<i64>,
}

/// Tokens a prompt will count, estimated from its text (about four bytes a
/// token in English, plus a few per message): what a reservation holds
/// before the server says.
pub(crate) fn estimate_prompt_tokens(messages: &[ChatMessage]) -> u64 {
    messages.iter().map(|m| (m.content.len() as u64).div_ceil(4) + 4).sum()
}

impl LlmService {
    /// Profile policy, the per-call and per-request token limits, then the
    /// daily budgets (reserved). Errors are what the guest gets.
    pub(crate) async fn admit(
        &self,
        caller: &LlmCaller<'_>,
        profile: &str,
        model: &str,
        messages: &[ChatMessage],
        requested: Option<u32>,
    ) -> Result<Admission, LlmError> {
        if let Some(allowed) = &caller.scope.profiles {
            if !allowed.iter().any(|p| p == profile) {
                return Err(LlmError::ModelNotAllowed(format!(
                    "agent `{}` may use profiles {allowed:?}, not `{profile}`",
                    caller.agent
                )));
            }
        }
        if model.is_empty() {
            return Err(LlmError::ModelNotAllowed(format!("no model profile named `{profile}` is configured")));
        }
        let max_tokens = self.token_limit(caller, requested)?;
        let scope = caller.scope;
        if scope.tokens_per_day.is_none() && scope.usd_per_day.is_none() {
            return Ok(Admission { max_tokens, reservation: None });
        }
        let prompt = estimate_prompt_tokens(messages);
        // With a token budget the call always gets a `max_tokens` (at most
        // what is left; [`RESERVED_TOKENS`] when it asked for none, so one
        // call does not hold the whole day while it runs); with only a
        // dollar budget, none unless asked.
        let want = max_tokens.map(u64::from).unwrap_or(if scope.tokens_per_day.is_some() { RESERVED_TOKENS } else { 0 });
        let hold = LlmUsageRecord {
            at: now_unix(),
            agent: caller.agent.to_string(),
            session: caller.session.to_string(),
            profile: profile.to_string(),
            model: model.to_string(),
            prompt_tokens: prompt,
            completion_tokens: want,
            latency_ms: 0,
            cost_usd: self.price(model).map(|p| (prompt as f64 * p.prompt + want as f64 * p.completion) / 1_000_000.0),
            outcome: "reserved".into(),
        };
        let budget = LlmBudget { tokens_per_day: scope.tokens_per_day, usd_per_day: scope.usd_per_day };
        let since = utc_day_start(hold.at);
        let storage = self.storage.clone();
        let reserved = blocking::call(blocking::DEFAULT_TIMEOUT, move || storage.llm_reserve(&hold, since, &budget))
            .await
            .map_err(|e| LlmError::Upstream(format!("ledger: {e}")))?;
        match reserved {
            Ok((id, granted)) => {
                let max_tokens = match (max_tokens, scope.tokens_per_day) {
                    (_, Some(_)) | (Some(_), None) => Some(u32::try_from(granted).unwrap_or(u32::MAX)),
                    (None, None) => None,
                };
                Ok(Admission { max_tokens, reservation: Some(id) })
            }
            Err(used) => Err(LlmError::BudgetExceeded(match scope.tokens_per_day {
                Some(limit) if used.tokens + prompt >= limit => format!(
                    "agent `{}` used {} of its {limit} tokens today (UTC; calls in progress included)",
                    caller.agent, used.tokens
                ),
                _ => format!(
                    "agent `{}` spent ${:.4} of its ${} today (UTC; calls in progress included)",
                    caller.agent,
                    used.cost_usd,
                    scope.usd_per_day.unwrap_or_default()
                ),
            })),
        }
    }

    /// The request's `max_tokens`, capped by the per-call limit and what is
    /// left of the chat request's token budget.
    fn token_limit(&self, caller: &LlmCaller<'_>, requested: Option<u32>) -> Result<Option<u32>, LlmError> {
        let mut max = match (requested, caller.scope.tokens_per_call) {
            (Some(r), Some(c)) => Some(r.min(c)),
            (r, c) => r.or(c),
        };
        if let Some((request, _)) = caller.request {
            if let Some(left) = request.budget.tokens_left() {
                if left == 0 {
                    let limit = request.budget.limits().tokens.unwrap_or(0);
                    return Err(LlmError::BudgetExceeded(agentkernel_runtime::trace::BudgetError::Tokens(limit).to_string()));
                }
                let left = u32::try_from(left).unwrap_or(u32::MAX);
                max = Some(max.map_or(left, |m| m.min(left)));
            }
        }
        Ok(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_estimated_from_their_text() {
        let message = |text: &str| ChatMessage { role: "user".into(), content: text.into(), tool_call_id: None, tool_calls: vec![] };
        assert_eq!(estimate_prompt_tokens(&[]), 0);
        assert_eq!(estimate_prompt_tokens(&[message("")]), 4);
        assert_eq!(estimate_prompt_tokens(&[message("abcdefgh"), message("abc")]), 2 + 4 + 1 + 4);
    }
}
