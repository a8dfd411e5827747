use super::aws::same_text;
use crate::{Backend, LlmBudget, LlmUsageRecord};

pub(super) const TESTS: &[super::Test] = &[
    ("a_reservation_holds_budget_until_settled", a_reservation_holds_budget_until_settled),
    ("a_budget_without_room_refuses_and_writes_nothing", a_budget_without_room_refuses_and_writes_nothing),
    ("a_dollar_budget_counts_reserved_cost", a_dollar_budget_counts_reserved_cost),
    ("a_ledger_row_keeps_guest_text_with_nul", a_ledger_row_keeps_guest_text_with_nul),
];

fn hold(agent: &str, prompt: u64, completion: u64, cost: Option<f64>) -> LlmUsageRecord {
    LlmUsageRecord {
        at: 1_000,
        agent: agent.into(),
        session: "s".into(),
        profile: "fast".into(),
        model: "m".into(),
        prompt_tokens: prompt,
        completion_tokens: completion,
        latency_ms: 0,
        cost_usd: cost,
        outcome: "reserved".into(),
    }
}

fn a_reservation_holds_budget_until_settled(store: &dyn Backend) {
    let budget = LlmBudget { tokens_per_day: Some(1_000), usd_per_day: None };
    let (id, granted) = store.llm_reserve(&hold("a", 100, 500, None), 0, &budget).unwrap().unwrap();
    assert_eq!(granted, 500);
    assert_eq!(store.llm_totals("a", 0).unwrap().tokens, 600, "the reservation counts while the call runs");
    // The next call gets only what is left after its own prompt.
    let (_, second) = store.llm_reserve(&hold("a", 100, 500, None), 0, &budget).unwrap().unwrap();
    assert_eq!(second, 300);
    assert!(store.llm_reserve(&hold("a", 1, 1, None), 0, &budget).unwrap().is_err(), "nothing left");
    assert_eq!(store.llm_totals("b", 0).unwrap().tokens, 0, "budgets are per agent");
    // Settling replaces the reservation with what the call used.
    let used = LlmUsageRecord { prompt_tokens: 90, completion_tokens: 10, outcome: "ok".into(), latency_ms: 7, ..hold("a", 0, 0, None) };
    store.llm_settle(id, &used).unwrap();
    assert_eq!(store.llm_totals("a", 0).unwrap().tokens, 100 + 400);
    let rows = store.llm_usage(Some("a"), 0).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].outcome.as_str(), rows[0].completion_tokens, rows[0].latency_ms), ("ok", 10, 7));
    assert_eq!((rows[1].outcome.as_str(), rows[1].completion_tokens), ("reserved", 300));
    let (_, third) = store.llm_reserve(&hold("a", 100, 500, None), 0, &budget).unwrap().unwrap();
    assert_eq!(third, 400, "room freed by the settlement");
}

fn a_budget_without_room_refuses_and_writes_nothing(store: &dyn Backend) {
    let budget = LlmBudget { tokens_per_day: Some(50), usd_per_day: None };
    let used = store.llm_reserve(&hold("a", 60, 10, None), 0, &budget).unwrap().expect_err("the prompt alone is past the budget");
    assert_eq!(used.tokens, 0);
    assert!(store.llm_usage(Some("a"), 0).unwrap().is_empty(), "nothing written");
    // Only calls since the day's start count.
    store.llm_record(&LlmUsageRecord { at: 10, ..hold("a", 40, 0, None) }).unwrap();
    assert_eq!(store.llm_reserve(&hold("a", 10, 100, None), 500, &budget).unwrap().unwrap().1, 40);
}

fn a_dollar_budget_counts_reserved_cost(store: &dyn Backend) {
    let budget = LlmBudget { tokens_per_day: None, usd_per_day: Some(1.0) };
    let (_, granted) = store.llm_reserve(&hold("a", 10, 300, Some(0.6)), 0, &budget).unwrap().unwrap();
    assert_eq!(granted, 300, "no token budget: the call keeps the completion tokens it asked for");
    // A second call that could cost $0.60 more does not fit in the $0.40 left.
    let refused = store.llm_reserve(&hold("a", 10, 300, Some(0.6)), 0, &budget).unwrap().expect_err("$1.20 of $1.00");
    assert!((refused.cost_usd - 0.6).abs() < 1e-9);
    store.llm_reserve(&hold("a", 10, 100, Some(0.39)), 0, &budget).unwrap().expect("what is left fits");
    assert!(store.llm_reserve(&hold("a", 1, 1, Some(0.02)), 0, &budget).unwrap().is_err(), "$0.01 left is not enough for $0.02");
}

fn a_ledger_row_keeps_guest_text_with_nul(store: &dyn Backend) {
    // The session and profile are the guest's, the model the LLM server's.
    let with_nul = |r: LlmUsageRecord, tag: &str| LlmUsageRecord {
        session: format!("s\0{tag}"),
        profile: format!("fa\0st{tag}"),
        model: format!("m\0{tag}"),
        ..r
    };
    let check = |got: &LlmUsageRecord, sent: &LlmUsageRecord| {
        for (g, s) in [(&got.session, &sent.session), (&got.profile, &sent.profile), (&got.model, &sent.model)] {
            assert!(same_text(g, s), "{g:?} for {s:?}");
        }
        let rest = LlmUsageRecord { session: sent.session.clone(), profile: sent.profile.clone(), model: sent.model.clone(), ..got.clone() };
        assert_eq!(&rest, sent, "every other field as written");
    };
    let budget = LlmBudget { tokens_per_day: Some(1_000), usd_per_day: None };
    let reserved = with_nul(hold("a", 10, 20, Some(0.5)), "1");
    let (id, granted) = store.llm_reserve(&reserved, 0, &budget).unwrap().unwrap();
    assert_eq!(granted, 20);
    let rows = store.llm_usage(Some("a"), 0).unwrap();
    assert_eq!(rows.len(), 1, "the reservation was written");
    check(&rows[0], &reserved);
    let settled = with_nul(LlmUsageRecord { outcome: "ok".into(), completion_tokens: 15, latency_ms: 9, ..reserved }, "2");
    store.llm_settle(id, &settled).unwrap();
    let recorded = with_nul(LlmUsageRecord { at: 2_000, outcome: "model-not-allowed".into(), ..hold("a", 0, 0, None) }, "3");
    store.llm_record(&recorded).unwrap();
    let rows = store.llm_usage(Some("a"), 0).unwrap();
    assert_eq!(rows.len(), 2, "settled in place, and one more recorded");
    check(&rows[0], &settled);
    check(&rows[1], &recorded);
    assert_eq!(store.llm_totals("a", 0).unwrap().tokens, 10 + 15, "the budget counts them");
}
