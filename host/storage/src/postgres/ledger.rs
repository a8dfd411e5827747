//! PostgreSQL: the LLM ledger's reservations (`Storage::llm_reserve`,
//! `llm_settle`; the `Storage` impl in `memory.rs` delegates here).
//!
//! `session` and `profile` are the calling guest's, `model` the LLM
//! server's answer: each NUL in them becomes U+FFFD ([`super::text`]), as
//! TEXT refuses NUL and the ledger row (what budgets count) would be lost.
//! `agent` and `outcome` are the host's (an agent name, a fixed code).
use super::{PostgresStorage, lock_key, text};
use crate::{LlmBudget, LlmTotals, LlmUsageRecord, StorageError};

const INSERT: &str = "INSERT INTO llm_usage (at, agent, session, profile, model, prompt_tokens, completion_tokens,
                                         latency_ms, cost_usd, outcome)
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id";

impl PostgresStorage {
    pub(super) fn ledger_reserve(
        &self,
        hold: &LlmUsageRecord,
        since: i64,
        budget: &LlmBudget,
    ) -> Result<Result<(i64, u64), LlmTotals>, StorageError> {
        let (hold, budget) = (hold.clone(), *budget);
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            // Every host reserving for this agent waits here, so the totals
            // read below cannot change before this reservation is written.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key("llm-budget", &hold.agent)]).await?;
            let row = tx
                .query_one(
                    "SELECT COUNT(*), COALESCE(SUM(prompt_tokens + completion_tokens), 0)::BIGINT,
                            COALESCE(SUM(cost_usd), 0.0)::DOUBLE PRECISION
                     FROM llm_usage WHERE agent = $1 AND at >= $2",
                    &[&hold.agent, &since],
                )
                .await?;
            let used = LlmTotals {
                calls: row.get::<_, i64>(0).max(0) as u64,
                tokens: row.get::<_, i64>(1).max(0) as u64,
                cost_usd: row.get(2),
            };
            let Some(granted) = budget.grant(&used, hold.prompt_tokens, hold.completion_tokens, hold.cost_usd.unwrap_or(0.0)) else {
                return Ok(Err(used));
            };
            let (prompt, completion, latency) = (hold.prompt_tokens as i64, granted as i64, hold.latency_ms as i64);
            let id: i64 = tx
                .query_one(
                    INSERT,
                    &[
                        &hold.at,
                        &hold.agent,
                        &text(&hold.session),
                        &text(&hold.profile),
                        &text(&hold.model),
                        &prompt,
                        &completion,
                        &latency,
                        &hold.cost_usd,
                        &hold.outcome,
                    ],
                )
                .await?
                .get(0);
            tx.commit().await?;
            Ok(Ok((id, granted)))
        })
    }

    pub(super) fn ledger_settle(&self, id: i64, record: &LlmUsageRecord) -> Result<(), StorageError> {
        let r = record.clone();
        self.run(move |client| async move {
            let (prompt, completion, latency) = (r.prompt_tokens as i64, r.completion_tokens as i64, r.latency_ms as i64);
            client
                .execute(
                    "UPDATE llm_usage SET at = $2, agent = $3, session = $4, profile = $5, model = $6, prompt_tokens = $7,
                            completion_tokens = $8, latency_ms = $9, cost_usd = $10, outcome = $11 WHERE id = $1",
                    &[
                        &id,
                        &r.at,
                        &r.agent,
                        &text(&r.session),
                        &text(&r.profile),
                        &text(&r.model),
                        &prompt,
                        &completion,
                        &latency,
                        &r.cost_usd,
                        &r.outcome,
                    ],
                )
                .await?;
            Ok(())
        })
    }
}
