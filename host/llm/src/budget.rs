//! Policy and daily budgets, checked before a call reaches the model. A
//! daily budget is *reserved* in the ledger first (an upper bound of the
//! prompt's tokens — its bytes — plus the `max_tokens` the call is given,
//! in one transaction per agent: `Storage::llm_reserve`), and the
//! reservation is replaced by what the call used afterwards (by the
//! reservation itself when the server does not say). Calls running at
//! once, on one host or on several sharing the store, therefore cannot
//! each spend what is left, whatever prompt a guest writes.
use agentkernel_runtime::bindings::agentkernel::agent::llm::{ChatMessage, ChatOptions, LlmError};
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
    /// The prompt and completion tokens reserved: what the call is charged
    /// when the server does not say what it used.
    pub reserved: (u64, u64),
}

/// At most how many tokens a prompt counts: its bytes (a token is at least
/// one byte in the byte-level tokenizers models use) — text, tool calls and
/// tool definitions, all of which are sent — plus a few per message.
pub(crate) fn prompt_token_bound(messages: &[ChatMessage], options: &ChatOptions) -> u64 {
    let calls = |m: &ChatMessage| m.tool_calls.iter().map(|c| c.id.len() + c.name.len() + c.arguments.len()).sum::<usize>();
    let in_messages: u64 =
        messages.iter().map(|m| (m.content.len() + calls(m) + m.tool_call_id.as_ref().map_or(0, String::len)) as u64 + 4).sum();
    let in_tools: u64 =
        options.tools.iter().map(|t| (t.name.len() + t.description.len() + t.parameters_schema.len()) as u64 + 8).sum();
    in_messages + in_tools
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
        options: &ChatOptions,
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
        let max_tokens = self.token_limit(caller, options.max_tokens)?;
        let scope = caller.scope;
        if scope.tokens_per_day.is_none() && scope.usd_per_day.is_none() {
            return Ok(Admission { max_tokens, reservation: None, reserved: (0, 0) });
        }
        let prompt = prompt_token_bound(messages, options);
        // Under a daily budget the call always gets a `max_tokens`: at most
        // what is left, [`RESERVED_TOKENS`] when it asked for none (so one
        // call does not hold the whole day while it runs, and its cost has
        // a bound a dollar budget can reserve).
        let want = max_tokens.map(u64::from).unwrap_or(RESERVED_TOKENS);
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
            Ok((id, granted)) => Ok(Admission {
                max_tokens: Some(u32::try_from(granted).unwrap_or(u32::MAX)),
                reservation: Some(id),
                reserved: (prompt, granted),
            }),
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
    fn a_prompt_is_bounded_by_everything_sent() {
        use agentkernel_runtime::bindings::agentkernel::agent::llm::{ResponseFormat, ToolCall, ToolDefinition};
        let message = |text: &str| ChatMessage { role: "user".into(), content: text.into(), tool_call_id: None, tool_calls: vec![] };
        let mut options = ChatOptions {
            profile: "fast".into(),
            temperature: None,
            max_tokens: None,
            response_format: ResponseFormat::Text,
            tools: vec![],
        };
        assert_eq!(prompt_token_bound(&[], &options), 0);
        assert_eq!(prompt_token_bound(&[message("")], &options), 4);
        assert_eq!(prompt_token_bound(&[message("abcdefgh"), message("漢字")], &options), 8 + 4 + 6 + 4, "bytes, not characters");
        let mut with_call = message("");
        with_call.tool_calls = vec![ToolCall { id: "c1".into(), name: "add".into(), arguments: "{\"a\":1}".into() }];
        assert_eq!(prompt_token_bound(&[with_call], &options), 4 + 2 + 3 + 7);
        // A 200 KB tool schema is counted: a guest cannot hide its prompt there.
        options.tools = vec![ToolDefinition { name: "t".into(), description: "d".into(), parameters_schema: "x".repeat(200_000) }];
        assert_eq!(prompt_token_bound(&[], &options), 200_000 + 2 + 8);
    }
}
