//! The host's KPIs, computed from its own records in one place: the CLI
//! (`agentkernel stats`), `GET /v1/stats`, `/metrics` and the web page all
//! call [`compute`].
//!
//! | KPI | from |
//! |---|---|
//! | candidates that build / pass every case | each run's `report.json` (run dirs) |
//! | evolutions per agent, fuel saved per accepted evolution | the `evolutions` rows and their summaries |
//! | rollbacks per agent | `agent_installs` (reasons `rollback…`, `auto-rollback`) |
//! | errors per agent over time | `activity_hourly` (the server persists its call counters hourly) |
//! | LLM spend per agent per day | the usage ledger (priced when each call was recorded) |
//! | chat requests and outcomes | `activity_hourly` (chat routes by status) and the transcripts |
//! | research findings per week | the research center's findings table |
//!
//! Every read is bounded by the window (`days`, at most [`MAX_DAYS`]) and a
//! row cap, and at most [`MAX_REPORTS`] reports of at most
//! [`MAX_REPORT_BYTES`] each are read.
mod render;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use agentkernel_storage::evolution::EvolutionRecord;
use agentkernel_storage::stats::ActivityCount;
use agentkernel_storage::{Backend, StorageError};

pub use render::{prometheus, text};

/// Longest window a query may ask for.
pub const MAX_DAYS: u32 = 90;
/// Most evolution runs (newest first) read.
pub const MAX_RUNS: u32 = 500;
/// Most reports parsed for candidate counts (newest runs first).
pub const MAX_REPORTS: usize = 200;
/// Larger reports are skipped (counted in `reports_skipped`).
pub const MAX_REPORT_BYTES: u64 = 16 << 20;
/// Most agents listed per KPI (the busiest first); the rest are summed into
/// `others`, which also bounds the label sets on `/metrics`.
pub const MAX_AGENTS: usize = 50;
const MAX_ACTIVITY_ROWS: u32 = 100_000;
const MAX_SPEND_ROWS: u32 = 20_000;
const MAX_INSTALL_ROWS: u32 = 20_000;
const DAY: i64 = 86_400;

#[derive(Debug, thiserror::Error)]
pub enum KpiError {
    #[error("reading the host's records: {0}")]
    Storage(#[from] StorageError),
    #[error("days must be between 1 and {MAX_DAYS}, not {0}")]
    Window(u32),
}

/// Shares of generated candidates (over the runs in the window whose report was read).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CandidateKpi {
    pub reports_read: u64,
    /// Runs without a readable report (running, failed, too large, beyond the cap).
    pub reports_skipped: u64,
    pub generated: u64,
    /// Built into a component (not refused by the source check, compiled).
    pub built: u64,
    /// Passed every case of the suite.
    pub passed: u64,
    pub build_share: Option<f64>,
    pub pass_share: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentEvolutions {
    pub agent: String,
    pub runs: u64,
    /// Winners installed (evolutions that replaced the agent).
    pub accepted: u64,
    /// New agents registered by `create`.
    pub created: u64,
    pub kept: u64,
    /// Failed or interrupted runs.
    pub failed: u64,
    pub rollbacks: u64,
    /// Fuel over the suite: incumbent minus winner, summed over accepted runs.
    pub fuel_saved: u64,
    pub fuel_saved_per_accepted: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Unix seconds at the start of the bucket.
    pub at: i64,
    pub calls: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentErrors {
    pub agent: String,
    pub calls: u64,
    pub errors: u64,
    /// Error codes and their counts.
    pub by_code: BTreeMap<String, u64>,
    /// Per bucket (hours for a window of up to 2 days, else UTC days), oldest first.
    pub series: Vec<Point>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DaySpend {
    pub day: i64,
    pub cost_usd: f64,
    pub calls: u64,
    pub tokens: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentSpend {
    pub agent: String,
    pub cost_usd: f64,
    pub calls: u64,
    pub tokens: u64,
    /// Calls of models without a price (their cost is not in `cost_usd`).
    pub unpriced_calls: u64,
    pub days: Vec<DaySpend>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WeekCount {
    /// Unix seconds at the start of the week.
    pub week: i64,
    pub findings: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResearchKpi {
    /// Whether the host keeps research records at all.
    pub recorded: bool,
    /// Findings over the weeks listed (which may start before the window).
    pub total: u64,
    pub per_week: Vec<WeekCount>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatKpi {
    /// Requests to the chat routes the server counted (persisted hourly).
    pub requests: u64,
    pub ok: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    /// By HTTP status.
    pub by_status: BTreeMap<String, u64>,
    /// Answers stored in chat transcripts (any process, since the window began).
    pub answered: u64,
    /// Per bucket, like the errors' series (`errors`: non-2xx).
    pub series: Vec<Point>,
}

/// Everything `stats` shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Kpis {
    pub generated_at: i64,
    pub days: u32,
    /// Start of the window (unix seconds).
    pub since: i64,
    /// Seconds per point of the `series` (3600 or 86400).
    pub bucket_secs: i64,
    pub candidates: CandidateKpi,
    /// Totals over every agent.
    pub evolutions_total: AgentEvolutions,
    pub evolutions: Vec<AgentEvolutions>,
    pub errors: Vec<AgentErrors>,
    pub spend_total_usd: f64,
    pub spend: Vec<AgentSpend>,
    pub research: ResearchKpi,
    pub chat: ChatKpi,
}

/// The KPIs of the last `days` days (1..=[`MAX_DAYS`]) as of `now`.
/// Blocking (storage and report files): async callers use the blocking pool.
pub fn compute(store: &dyn Backend, data_dir: &Path, days: u32, now: i64) -> Result<Kpis, KpiError> {
    if days == 0 || days > MAX_DAYS {
        return Err(KpiError::Window(days));
    }
    let since = now - i64::from(days) * DAY;
    let bucket_secs = if days <= 2 { 3600 } else { DAY };
    let runs: Vec<EvolutionRecord> = store.evolutions(MAX_RUNS)?.into_iter().filter(|r| r.started_at >= since).collect();
    let candidates = candidate_shares(&runs, data_dir);
    let (evolutions_total, evolutions) = evolutions_per_agent(store, &runs, since)?;
    let activity = store.activity_since(since - since.rem_euclid(3600), MAX_ACTIVITY_ROWS)?;
    let errors = errors_per_agent(&activity, bucket_secs);
    let chat = chat_outcomes(&activity, bucket_secs, store.chat_answers_since(since)?);
    let spend = spend_per_agent(store, since)?;
    Ok(Kpis {
        generated_at: now,
        days,
        since,
        bucket_secs,
        candidates,
        evolutions_total,
        evolutions,
        errors,
        // A fold from +0.0: an empty f64 sum is -0.0, which would print as "$-0".
        spend_total_usd: spend.iter().fold(0.0, |total, s| total + s.cost_usd),
        spend,
        research: research_per_week(store, days)?,
        chat,
    })
}

/// The parts of a `report.json` the shares need (the rest is not parsed
/// into types, so older reports read too).
#[derive(Deserialize)]
struct ReportCounts {
    #[serde(default)]
    generations: Vec<GenerationCounts>,
}

#[derive(Deserialize)]
struct GenerationCounts {
    #[serde(default)]
    candidates: Vec<CandidateCounts>,
}

#[derive(Deserialize)]
struct CandidateCounts {
    build: BuildCounts,
    bench: Option<BenchCounts>,
}

#[derive(Deserialize)]
struct BuildCounts {
    ok: bool,
}

#[derive(Deserialize)]
struct BenchCounts {
    passed: usize,
    cases: Vec<serde::de::IgnoredAny>,
}

fn read_report(path: &Path) -> Option<ReportCounts> {
    let file = std::fs::File::open(path).ok()?;
    if file.metadata().ok()?.len() > MAX_REPORT_BYTES {
        return None;
    }
    let mut text = String::new();
    file.take(MAX_REPORT_BYTES).read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

fn candidate_shares(runs: &[EvolutionRecord], data_dir: &Path) -> CandidateKpi {
    let mut kpi = CandidateKpi::default();
    for (index, run) in runs.iter().enumerate() {
        let report = if index < MAX_REPORTS { read_report(&super::run_dir(data_dir, &run.id).join("report.json")) } else { None };
        let Some(report) = report else {
            kpi.reports_skipped += 1;
            continue;
        };
        kpi.reports_read += 1;
        for c in report.generations.iter().flat_map(|g| &g.candidates) {
            kpi.generated += 1;
            kpi.built += u64::from(c.build.ok);
            kpi.passed += u64::from(c.bench.as_ref().is_some_and(|b| !b.cases.is_empty() && b.passed == b.cases.len()));
        }
    }
    kpi.build_share = share(kpi.built, kpi.generated);
    kpi.pass_share = share(kpi.passed, kpi.generated);
    kpi
}

fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// What a finished run's summary (the engine's `Outcome`) says about fuel.
#[derive(Deserialize)]
struct SummaryFuel {
    #[serde(default)]
    incumbent_version: String,
    incumbent_fuel: u64,
    winner_fuel: Option<u64>,
}

fn evolutions_per_agent(store: &dyn Backend, runs: &[EvolutionRecord], since: i64) -> Result<(AgentEvolutions, Vec<AgentEvolutions>), KpiError> {
    let mut by_agent: BTreeMap<String, AgentEvolutions> = BTreeMap::new();
    for run in runs {
        let e = agent_entry(&mut by_agent, &run.agent);
        e.runs += 1;
        let summary = run.summary.as_deref().and_then(|s| serde_json::from_str::<SummaryFuel>(s).ok());
        match (run.status.as_str(), run.decision.as_deref(), summary) {
            ("finished", Some("swapped"), Some(s)) if s.incumbent_version.is_empty() => e.created += 1,
            ("finished", Some("swapped"), s) => {
                e.accepted += 1;
                e.fuel_saved += s.map_or(0, |s| s.incumbent_fuel.saturating_sub(s.winner_fuel.unwrap_or(s.incumbent_fuel)));
            }
            ("finished", _, _) => e.kept += 1,
            ("running", _, _) => {}
            _ => e.failed += 1,
        }
    }
    for install in store.installs_since(since, MAX_INSTALL_ROWS)? {
        if install.reason.starts_with("rollback") || install.reason == "auto-rollback" {
            agent_entry(&mut by_agent, &install.agent).rollbacks += 1;
        }
    }
    let mut total = AgentEvolutions { agent: "all".into(), ..Default::default() };
    for e in by_agent.values_mut() {
        e.fuel_saved_per_accepted = (e.accepted > 0).then(|| e.fuel_saved as f64 / e.accepted as f64);
        total.runs += e.runs;
        total.accepted += e.accepted;
        total.created += e.created;
        total.kept += e.kept;
        total.failed += e.failed;
        total.rollbacks += e.rollbacks;
        total.fuel_saved += e.fuel_saved;
    }
    total.fuel_saved_per_accepted = (total.accepted > 0).then(|| total.fuel_saved as f64 / total.accepted as f64);
    let mut list: Vec<AgentEvolutions> = by_agent.into_values().collect();
    list.sort_by(|a, b| b.runs.cmp(&a.runs).then(b.rollbacks.cmp(&a.rollbacks)).then(a.agent.cmp(&b.agent)));
    list.truncate(MAX_AGENTS);
    Ok((total, list))
}

fn agent_entry<'a>(map: &'a mut BTreeMap<String, AgentEvolutions>, agent: &str) -> &'a mut AgentEvolutions {
    map.entry(agent.to_string()).or_insert_with(|| AgentEvolutions { agent: agent.to_string(), ..Default::default() })
}

/// Adds one bucket's counts to a series kept oldest first.
fn add_point(series: &mut Vec<Point>, at: i64, calls: u64, errors: u64) {
    match series.last_mut() {
        Some(p) if p.at == at => {
            p.calls += calls;
            p.errors += errors;
        }
        _ => series.push(Point { at, calls, errors }),
    }
}

fn errors_per_agent(activity: &[ActivityCount], bucket_secs: i64) -> Vec<AgentErrors> {
    let mut by_agent: BTreeMap<&str, AgentErrors> = BTreeMap::new();
    // Rows come oldest first, so each agent's series is built in order.
    for row in activity.iter().filter(|r| r.kind == "agent") {
        let e = by_agent.entry(&row.subject).or_insert_with(|| AgentErrors { agent: row.subject.clone(), ..Default::default() });
        let failed = if row.outcome == "ok" { 0 } else { row.n };
        e.calls += row.n;
        e.errors += failed;
        if failed > 0 {
            *e.by_code.entry(row.outcome.clone()).or_default() += failed;
        }
        add_point(&mut e.series, row.hour - row.hour.rem_euclid(bucket_secs), row.n, failed);
    }
    let mut list: Vec<AgentErrors> = by_agent.into_values().collect();
    list.sort_by(|a, b| b.errors.cmp(&a.errors).then(b.calls.cmp(&a.calls)).then(a.agent.cmp(&b.agent)));
    list.truncate(MAX_AGENTS);
    list
}

fn chat_outcomes(activity: &[ActivityCount], bucket_secs: i64, answered: u64) -> ChatKpi {
    let mut chat = ChatKpi { answered, ..Default::default() };
    for row in activity.iter().filter(|r| r.kind == "chat") {
        chat.requests += row.n;
        let class = row.outcome.as_bytes().first().copied();
        match class {
            Some(b'2') => chat.ok += row.n,
            Some(b'4') => chat.client_errors += row.n,
            _ => chat.server_errors += row.n,
        }
        *chat.by_status.entry(row.outcome.clone()).or_default() += row.n;
        let errors = if class == Some(b'2') { 0 } else { row.n };
        add_point(&mut chat.series, row.hour - row.hour.rem_euclid(bucket_secs), row.n, errors);
    }
    chat
}

fn spend_per_agent(store: &dyn Backend, since: i64) -> Result<Vec<AgentSpend>, KpiError> {
    let mut by_agent: BTreeMap<String, AgentSpend> = BTreeMap::new();
    for row in store.llm_spend_by_day(since - since.rem_euclid(DAY), MAX_SPEND_ROWS)? {
        let s = by_agent.entry(row.agent.clone()).or_insert_with(|| AgentSpend { agent: row.agent.clone(), ..Default::default() });
        s.cost_usd += row.cost_usd;
        s.calls += row.calls;
        s.tokens += row.tokens;
        s.unpriced_calls += row.unpriced_calls;
        s.days.push(DaySpend { day: row.day, cost_usd: row.cost_usd, calls: row.calls, tokens: row.tokens });
    }
    let mut list: Vec<AgentSpend> = by_agent.into_values().collect();
    list.sort_by(|a, b| b.cost_usd.total_cmp(&a.cost_usd).then(b.calls.cmp(&a.calls)).then(a.agent.cmp(&b.agent)));
    list.truncate(MAX_AGENTS);
    Ok(list)
}

/// Findings the research center recorded, per week (weeks start on
/// Monday, UTC) over the weeks the window touches.
fn research_per_week(store: &dyn Backend, days: u32) -> Result<ResearchKpi, KpiError> {
    let weeks = store.research_findings_per_week(days.div_ceil(7) + 1)?;
    let per_week: Vec<WeekCount> = weeks.iter().map(|w| WeekCount { week: w.week_start, findings: w.findings }).collect();
    let total = per_week.iter().map(|w| w.findings).sum();
    let note = (total == 0).then(|| "no research findings recorded".to_string());
    Ok(ResearchKpi { recorded: true, total, per_week, note })
}

#[cfg(test)]
mod tests;
