//! The KPIs as text (`agentkernel stats`) and as Prometheus gauges (`/metrics`).
use std::fmt::Write;

use super::{Kpis, Point};

/// A UTC date (`YYYY-MM-DD`) from unix seconds (proleptic Gregorian).
pub fn utc_date(unix: i64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Dollars: cents' fractions stay visible (a scripted or cheap model's
/// calls cost millionths).
fn usd(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.01 { format!("${v:.6}") } else { format!("${v:.4}") }
}

fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "-".into(), |s| format!("{:.0}%", s * 100.0))
}

/// One character per bucket of the window, scaled to the largest value.
fn sparkline(values: &[(i64, f64)], since: i64, bucket_secs: i64, buckets: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let start = since - since.rem_euclid(bucket_secs);
    let mut slots = vec![0.0f64; buckets];
    for (at, v) in values {
        let index = (at - start).div_euclid(bucket_secs);
        if let Some(slot) = usize::try_from(index).ok().and_then(|i| slots.get_mut(i)) {
            *slot += v;
        }
    }
    let max = slots.iter().copied().fold(0.0, f64::max);
    slots
        .iter()
        .map(|v| if *v <= 0.0 || max <= 0.0 { '·' } else { BARS[((v / max) * 7.0).round() as usize] })
        .collect()
}

fn points(series: &[Point], pick: fn(&Point) -> u64) -> Vec<(i64, f64)> {
    series.iter().map(|p| (p.at, pick(p) as f64)).collect()
}

/// What `agentkernel stats` prints.
pub fn text(k: &Kpis) -> String {
    let mut out = String::new();
    let buckets = ((k.generated_at - k.since) / k.bucket_secs + 1).clamp(1, 96) as usize;
    let unit = if k.bucket_secs == 3600 { "hour" } else { "day" };
    let line = |out: &mut String, s: String| {
        let _ = writeln!(out, "{s}");
    };
    line(&mut out, format!("agentkernel stats: the last {} day(s), since {} UTC (charts: one mark per {unit})", k.days, utc_date(k.since)));
    let c = &k.candidates;
    line(&mut out, String::new());
    line(
        &mut out,
        format!(
            "candidates   {} generated, {} built ({}), {} passed every case ({}), from {} report(s)",
            c.generated,
            c.built,
            percent(c.build_share),
            c.passed,
            percent(c.pass_share),
            c.reports_read
        ),
    );
    let t = &k.evolutions_total;
    line(
        &mut out,
        format!(
            "evolutions   {} run(s): {} accepted, {} created, {} kept, {} failed; {} rollback(s); fuel saved per accepted evolution {}",
            t.runs,
            t.accepted,
            t.created,
            t.kept,
            t.failed,
            t.rollbacks,
            t.fuel_saved_per_accepted.map_or_else(|| "-".into(), |f| format!("{f:.0}"))
        ),
    );
    for e in &k.evolutions {
        line(
            &mut out,
            format!(
                "  {:<24} runs {:>3}  accepted {:>3}  kept {:>3}  failed {:>3}  rollbacks {:>3}  fuel saved/accepted {}",
                e.agent,
                e.runs,
                e.accepted,
                e.kept,
                e.failed,
                e.rollbacks,
                e.fuel_saved_per_accepted.map_or_else(|| "-".into(), |f| format!("{f:.0}"))
            ),
        );
    }
    line(&mut out, "errors       per agent (calls counted by a serving host, persisted hourly)".into());
    if k.errors.is_empty() {
        line(&mut out, "  no agent calls recorded".into());
    }
    for e in &k.errors {
        let codes = e.by_code.iter().map(|(c, n)| format!("{c} {n}")).collect::<Vec<_>>().join(", ");
        line(
            &mut out,
            format!(
                "  {:<24} {:>7} calls {:>5} errors  {}  {}",
                e.agent,
                e.calls,
                e.errors,
                sparkline(&points(&e.series, |p| p.errors), k.since, k.bucket_secs, buckets),
                codes
            ),
        );
    }
    line(&mut out, format!("llm spend    {} in all (ledger, priced models)", usd(k.spend_total_usd)));
    for s in &k.spend {
        let per_day: Vec<(i64, f64)> = s.days.iter().map(|d| (d.day, d.cost_usd)).collect();
        let unpriced = if s.unpriced_calls > 0 { format!(" ({} unpriced)", s.unpriced_calls) } else { String::new() };
        line(
            &mut out,
            format!(
                "  {:<24} {:>10} {:>5} calls{unpriced} {:>8} tokens  {}",
                s.agent,
                usd(s.cost_usd),
                s.calls,
                s.tokens,
                sparkline(&per_day, k.since, 86_400, (k.days as usize + 1).min(96))
            ),
        );
    }
    let r = &k.research;
    let research = match &r.note {
        Some(note) => format!("0 ({note})"),
        None => format!(
            "{} finding(s): {}",
            r.total,
            r.per_week.iter().map(|w| format!("week of {} {}", utc_date(w.week), w.findings)).collect::<Vec<_>>().join(", ")
        ),
    };
    line(&mut out, format!("research     {research}"));
    let ch = &k.chat;
    line(
        &mut out,
        format!(
            "chat         {} request(s): {} ok, {} client error(s), {} server error(s); {} answer(s) in transcripts  {}",
            ch.requests,
            ch.ok,
            ch.client_errors,
            ch.server_errors,
            ch.answered,
            sparkline(&points(&ch.series, |p| p.calls), k.since, k.bucket_secs, buckets)
        ),
    );
    out
}

/// Escapes a label value.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The KPIs as Prometheus gauges over the window. Agent labels are at most
/// [`super::MAX_AGENTS`] per series; other labels are fixed sets.
pub fn prometheus(k: &Kpis) -> String {
    let mut out = String::new();
    let family = |out: &mut String, name: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    };
    family(&mut out, "agentkernel_kpi_window_days", "Days the agentkernel_kpi_* gauges cover.");
    let _ = writeln!(out, "agentkernel_kpi_window_days {}", k.days);
    let c = &k.candidates;
    family(&mut out, "agentkernel_kpi_candidates", "Evolution candidates in the window by stage reached (generated, built, passed every case).");
    for (stage, n) in [("generated", c.generated), ("built", c.built), ("passed", c.passed)] {
        let _ = writeln!(out, "agentkernel_kpi_candidates{{stage=\"{stage}\"}} {n}");
    }
    family(&mut out, "agentkernel_kpi_candidate_share", "Share of generated candidates that built or passed every case.");
    for (stage, s) in [("built", c.build_share), ("passed", c.pass_share)] {
        let _ = writeln!(out, "agentkernel_kpi_candidate_share{{stage=\"{stage}\"}} {}", s.unwrap_or(0.0));
    }
    family(&mut out, "agentkernel_kpi_evolutions", "Evolution runs in the window by agent and result (accepted, created, kept, failed).");
    for e in &k.evolutions {
        for (result, n) in [("accepted", e.accepted), ("created", e.created), ("kept", e.kept), ("failed", e.failed)] {
            let _ = writeln!(out, "agentkernel_kpi_evolutions{{agent=\"{}\",result=\"{result}\"}} {n}", esc(&e.agent));
        }
    }
    family(&mut out, "agentkernel_kpi_rollbacks", "Rollbacks (manual and automatic) in the window by agent.");
    for e in &k.evolutions {
        let _ = writeln!(out, "agentkernel_kpi_rollbacks{{agent=\"{}\"}} {}", esc(&e.agent), e.rollbacks);
    }
    family(&mut out, "agentkernel_kpi_fuel_saved_per_accepted_evolution", "Suite fuel saved per accepted evolution in the window.");
    let _ = writeln!(out, "agentkernel_kpi_fuel_saved_per_accepted_evolution {}", k.evolutions_total.fuel_saved_per_accepted.unwrap_or(0.0));
    family(&mut out, "agentkernel_kpi_agent_calls", "Agent calls in the window by agent and result (ok, error), as persisted hourly.");
    for e in &k.errors {
        let _ = writeln!(out, "agentkernel_kpi_agent_calls{{agent=\"{}\",result=\"ok\"}} {}", esc(&e.agent), e.calls - e.errors);
        let _ = writeln!(out, "agentkernel_kpi_agent_calls{{agent=\"{}\",result=\"error\"}} {}", esc(&e.agent), e.errors);
    }
    family(&mut out, "agentkernel_kpi_llm_spend_usd", "LLM spend in USD in the window by agent (usage ledger, priced models).");
    for s in &k.spend {
        let _ = writeln!(out, "agentkernel_kpi_llm_spend_usd{{agent=\"{}\"}} {}", esc(&s.agent), s.cost_usd);
    }
    family(&mut out, "agentkernel_kpi_research_findings", "Research findings recorded over the weeks the window touches.");
    let _ = writeln!(out, "agentkernel_kpi_research_findings {}", k.research.total);
    family(&mut out, "agentkernel_kpi_chat_requests", "Chat requests in the window by outcome (ok, client-error, server-error).");
    let ch = &k.chat;
    for (outcome, n) in [("ok", ch.ok), ("client-error", ch.client_errors), ("server-error", ch.server_errors)] {
        let _ = writeln!(out, "agentkernel_kpi_chat_requests{{outcome=\"{outcome}\"}} {n}");
    }
    out
}
