//! One report per evolution, as JSON and as a self-contained HTML page
//! (inline CSS and SVG charts, no external assets): configuration, every
//! candidate's build result and time, per-case pass/fail and fuel for the
//! incumbent and the candidates, fuel across generations, the winner's
//! diff, LLM tokens and cost, the decision and its reason, time per stage.
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::bench::BenchResult;
use super::generate::LlmUsageTotals;
use super::select::Verdict;
use super::source_check::{CandidateSource, Violation};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BuildReport {
    pub ok: bool,
    /// `rejected`, `compile-error`, `timeout`, ... when not ok.
    pub kind: Option<String>,
    pub duration_ms: f64,
    /// Compiler error diagnostics (or the reason it could not run).
    pub errors: Vec<String>,
    /// Constructs refused before building.
    pub violations: Vec<Violation>,
    /// How many times a generator repaired it after a failed build.
    pub repairs: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CandidateReport {
    pub label: String,
    pub origin: String,
    /// Component hash, once built.
    pub version: Option<String>,
    pub parent: Option<String>,
    pub build: BuildReport,
    /// Why the built component could not be benchmarked (e.g. imports
    /// beyond the agent's grants, a different agent name).
    pub load_error: Option<String>,
    /// How its manifest differs from the incumbent's (routing would see it).
    #[serde(default)]
    pub manifest_change: Option<String>,
    pub bench: Option<BenchResult>,
    pub verdict: Option<Verdict>,
    /// The host that built and benchmarked it when not the run's own (the
    /// shared job queue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bench_host: Option<String>,
    /// The engine hash its fuel was measured under (`runtime::engine_hash`):
    /// the same for every candidate the run compares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenerationReport {
    pub index: u32,
    pub candidates: Vec<CandidateReport>,
    /// Least total fuel among this generation's winners, if any won.
    pub best_fuel: Option<u64>,
    pub duration_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportConfig {
    pub generator: String,
    pub generations: u32,
    pub candidates_per_generation: Option<usize>,
    pub threshold: f64,
    pub metric: String,
    pub swap: bool,
    /// `bwrap`, or `none` when the operator opted out of the sandbox.
    pub sandbox: String,
    pub bench_limits: super::suite::BenchLimits,
    pub source_dir: String,
    pub cases: usize,
    pub held_out_cases: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IncumbentReport {
    pub version: String,
    pub origin: String,
    pub bench: BenchResult,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WinnerReport {
    pub label: String,
    pub version: String,
    pub total_fuel: u64,
    pub reason: String,
    pub diff: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timings {
    pub generate_ms: f64,
    /// The first build of this evolution (dependencies may compile).
    pub build_cold_ms: Option<f64>,
    /// Every later build.
    pub build_warm_ms: Vec<f64>,
    pub benchmark_ms: f64,
    pub swap_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub id: String,
    pub agent: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub config: ReportConfig,
    pub incumbent: IncumbentReport,
    pub generations: Vec<GenerationReport>,
    pub winner: Option<WinnerReport>,
    pub llm: LlmUsageTotals,
    /// `swapped` or `kept`.
    pub decision: String,
    pub reason: String,
    pub timings: Timings,
    /// Where the winner was installed, when swapped.
    pub installed: Option<String>,
    /// Generations restored from a checkpoint (an interrupted run resumed).
    pub resumed_after_generation: Option<u32>,
    /// The winner beside the incumbent on real recent requests (none: no
    /// winner, or a new agent).
    #[serde(default)]
    pub shadow: Option<super::shadow::ShadowReport>,
    /// A created agent's security review (none when evolving).
    #[serde(default)]
    pub security_review: Option<super::review::SecurityReview>,
}

/// A line diff of two sources, file by file (`-`/`+`/` ` prefixed),
/// showing changed lines with three lines of context.
pub fn diff(old: &CandidateSource, new: &CandidateSource) -> String {
    let mut out = String::new();
    let paths: std::collections::BTreeSet<&String> = old.files.keys().chain(new.files.keys()).collect();
    for path in paths {
        let a = old.files.get(path).map(String::as_str).unwrap_or("");
        let b = new.files.get(path).map(String::as_str).unwrap_or("");
        if a == b {
            continue;
        }
        let _ = writeln!(out, "--- a/src/{path}\n+++ b/src/{path}");
        let ops = line_diff(&a.lines().collect::<Vec<_>>(), &b.lines().collect::<Vec<_>>());
        let keep: Vec<bool> = (0..ops.len())
            .map(|i| ops[i.saturating_sub(3)..(i + 4).min(ops.len())].iter().any(|(k, _)| *k != ' '))
            .collect();
        let mut skipped = false;
        for (i, (kind, line)) in ops.iter().enumerate() {
            if keep[i] {
                let _ = writeln!(out, "{kind}{line}");
                skipped = false;
            } else if !skipped {
                out.push_str("@@\n");
                skipped = true;
            }
        }
    }
    out
}

fn line_diff<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<(char, &'a str)> {
    // Quadratic LCS: fine for agent-sized files; huge ones are shown whole.
    if a.len() * b.len() > 4_000_000 {
        return a.iter().map(|l| ('-', *l)).chain(b.iter().map(|l| ('+', *l))).collect();
    }
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(('-', a[i]));
            i += 1;
        } else {
            out.push(('+', b[j]));
            j += 1;
        }
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

fn fmt_fuel(f: u64) -> String {
    let s = f.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

const PALETTE: [&str; 8] = ["#555", "#2b7bb9", "#e08a1e", "#3a9d5d", "#b23b8c", "#8c6d31", "#17a2b8", "#c0392b"];

/// Per case: a bar per benchmarked component, scaled to the case's
/// largest fuel; failing results are drawn hollow and marked ✗.
fn case_chart(report: &Report) -> String {
    let mut series: Vec<(String, &BenchResult)> = vec![("incumbent".into(), &report.incumbent.bench)];
    for g in &report.generations {
        for c in &g.candidates {
            if let Some(b) = &c.bench {
                series.push((format!("g{} {}", g.index, c.label), b));
            }
        }
    }
    series.truncate(PALETTE.len());
    let cases = &report.incumbent.bench.cases;
    let row = 16.0;
    let group = row * series.len() as f64 + 14.0;
    let height = 30.0 + group * cases.len() as f64;
    let (label_w, bar_w) = (220.0, 520.0);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="11">"#,
        w = label_w + bar_w + 170.0
    );
    for (ci, case) in cases.iter().enumerate() {
        let y0 = 20.0 + group * ci as f64;
        let max = series.iter().filter_map(|(_, b)| b.case(&case.name).and_then(|c| c.fuel)).max().unwrap_or(1).max(1);
        let held = if case.held_out { " (held out)" } else { "" };
        let _ = write!(svg, r#"<text x="0" y="{y}" font-weight="bold">{}{held}</text>"#, esc(&case.name), y = y0);
        for (si, (name, bench)) in series.iter().enumerate() {
            let y = y0 + 4.0 + row * si as f64;
            let color = PALETTE[si];
            let _ = write!(svg, r#"<text x="12" y="{}">{}</text>"#, y + 11.0, esc(name));
            let Some(c) = bench.case(&case.name) else { continue };
            let (w, label) = match c.fuel {
                Some(f) => (bar_w * f as f64 / max as f64, fmt_fuel(f)),
                None => (0.0, c.error.clone().unwrap_or_else(|| "no result".into())),
            };
            let fill = if c.passed { color.to_string() } else { "none".into() };
            let _ = write!(
                svg,
                r#"<rect x="{label_w}" y="{y}" width="{w:.1}" height="{h}" fill="{fill}" stroke="{color}"/><text x="{tx:.1}" y="{ty}">{mark} {label}</text>"#,
                h = row - 3.0,
                tx = label_w + w + 4.0,
                ty = y + 11.0,
                mark = if c.passed { "✓" } else { "✗" },
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Total fuel of the best winner so far after each generation, from the
/// incumbent's.
fn generations_chart(report: &Report) -> String {
    let inc = report.incumbent.bench.total_fuel.max(1) as f64;
    // Generation 0 is the incumbent, so the line starts where evolution did.
    let points: Vec<(u32, Option<u64>)> = std::iter::once((0, Some(inc as u64)))
        .filter(|_| report.incumbent.bench.total_fuel > 0)
        .chain(report.generations.iter().scan(None::<u64>, |best_so_far, g| {
            let best = g.candidates.iter().filter_map(|c| c.bench.as_ref().filter(|_| c.verdict.as_ref().is_some_and(|v| v.wins)).map(|b| b.total_fuel)).min();
            *best_so_far = match (*best_so_far, best) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            Some((g.index, *best_so_far))
        }))
        .collect();
    let max = points.iter().filter_map(|p| p.1).fold(inc, |m, f| m.max(f as f64));
    let (w, h, left, top) = (600.0, 220.0, 90.0, 20.0);
    let plot_w = w - left - 20.0;
    let plot_h = h - top - 40.0;
    let x = |i: usize| left + plot_w * (i as f64 + 0.5) / (points.len().max(1) as f64);
    let y = |f: f64| top + plot_h * (1.0 - f / max);
    let mut svg = format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">"#);
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{yi:.1}" x2="{x2}" y2="{yi:.1}" stroke="#555" stroke-dasharray="4 3"/><text x="2" y="{ty:.1}">incumbent</text><text x="2" y="{ty2:.1}">{f}</text>"##,
        yi = y(inc),
        x2 = left + plot_w,
        ty = y(inc) - 2.0,
        ty2 = y(inc) + 11.0,
        f = fmt_fuel(inc as u64)
    );
    let _ = write!(svg, r##"<line x1="{left}" y1="{b}" x2="{r}" y2="{b}" stroke="#999"/>"##, b = top + plot_h, r = left + plot_w);
    let mut path = String::new();
    for (i, (g, best)) in points.iter().enumerate() {
        let label = if *g == 0 { "incumbent".to_string() } else { format!("gen {g}") };
        let _ = write!(svg, r#"<text x="{:.1}" y="{}" text-anchor="middle">{label}</text>"#, x(i), top + plot_h + 16.0);
        if let Some(f) = best {
            let (px, py) = (x(i), y(*f as f64));
            path.push_str(if path.is_empty() { "M" } else { " L" });
            let _ = write!(path, "{px:.1} {py:.1}");
            let _ = write!(
                svg,
                r##"<circle cx="{px:.1}" cy="{py:.1}" r="4" fill="#2b7bb9"/><text x="{tx:.1}" y="{ty:.1}">{}</text>"##,
                fmt_fuel(*f),
                tx = px + 6.0,
                ty = py - 6.0
            );
        } else {
            let _ = write!(svg, r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#999">no winner</text>"##, x(i), top + plot_h - 4.0);
        }
    }
    if !path.is_empty() {
        let _ = write!(svg, r##"<path d="{path}" fill="none" stroke="#2b7bb9" stroke-width="2"/>"##);
    }
    svg.push_str("</svg>");
    svg
}

pub fn html(report: &Report) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Evolution {id}: {agent}</title><style>
body{{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}} table{{border-collapse:collapse;margin:.5em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px;vertical-align:top}} th{{background:#f3f3f3}}
.pass{{color:#1e7d3b}} .fail{{color:#b3261e}} pre{{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:12px}}
.add{{color:#1e7d3b}} .del{{color:#b3261e}} .decision{{font-size:1.3em;padding:.4em .8em;display:inline-block;border-radius:4px}}
.swapped{{background:#dff5e3}} .kept{{background:#eee}} .rejected{{background:#fbe4e2}}
</style></head><body>
<h1>Evolution of <code>{agent}</code></h1>
<p><span class="decision {decision}">{decision}</span> {reason}</p>"#,
        id = esc(&report.id),
        agent = esc(&report.agent),
        decision = esc(&report.decision),
        reason = esc(&report.reason),
    );
    let c = &report.config;
    let _ = write!(
        h,
        "<h2>Configuration</h2><table><tr><th>evolution</th><td>{}</td></tr><tr><th>generator</th><td>{}</td></tr>\
         <tr><th>generations</th><td>{}</td></tr><tr><th>candidates per generation</th><td>{}</td></tr>\
         <tr><th>objective</th><td>{} (threshold {:.0}%)</td></tr><tr><th>cases</th><td>{} ({} held out)</td></tr>\
         <tr><th>benchmark limits</th><td>fuel {}, deadline {} ms, memory {} bytes</td></tr>\
         <tr><th>build sandbox</th><td>{}</td></tr><tr><th>swap</th><td>{}</td></tr><tr><th>source</th><td>{}</td></tr>{}</table>",
        esc(&report.id),
        esc(&c.generator),
        c.generations,
        c.candidates_per_generation.map_or("all".into(), |k| k.to_string()),
        esc(&c.metric),
        c.threshold * 100.0,
        c.cases,
        c.held_out_cases,
        fmt_fuel(c.bench_limits.fuel),
        c.bench_limits.deadline_ms,
        c.bench_limits.memory_bytes,
        if c.sandbox == "none" { "<b class=\"fail\">none (operator opted out)</b>".to_string() } else { esc(&c.sandbox) },
        c.swap,
        esc(&c.source_dir),
        report.resumed_after_generation.map_or(String::new(), |g| format!("<tr><th>resumed</th><td>after generation {g}</td></tr>")),
    );

    if let Some(sh) = &report.shadow {
        let _ = write!(
            h,
            "<h2>Shadow stage</h2><p>{} recent real request(s) answered by both versions; {} agreed.</p>",
            sh.sampled, sh.agreed
        );
        if !sh.disagreements.is_empty() {
            h.push_str("<table><tr><th>request</th><th>incumbent</th><th>winner</th><th>justified by</th></tr>");
            for d in &sh.disagreements {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&d.request),
                    esc(&d.incumbent),
                    esc(&d.candidate),
                    d.justified_by.as_deref().map_or("<b class=\"fail\">nothing: blocks the swap</b>".to_string(), esc)
                );
            }
            h.push_str("</table>");
        }
    }

    if let Some(r) = &report.security_review {
        let _ = write!(
            h,
            "<h2>Security review</h2><p><span class=\"{}\">{}</span> by {}: {}</p>",
            if r.allows() { "pass" } else { "fail" },
            esc(&r.verdict),
            esc(&r.reviewer),
            esc(&r.summary)
        );
        if !r.findings.is_empty() {
            h.push_str("<table><tr><th>severity</th><th>rule</th><th>detail</th></tr>");
            for f in &r.findings {
                let _ = write!(h, "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", esc(&f.severity), esc(&f.rule), esc(&f.detail));
            }
            h.push_str("</table>");
        }
    }

    let t = &report.timings;
    let _ = write!(
        h,
        "<h2>Time per stage</h2><table><tr><th>generate</th><td>{:.0} ms</td></tr><tr><th>build (cold: first of this run)</th><td>{}</td></tr>\
         <tr><th>build (warm)</th><td>{}</td></tr><tr><th>benchmark</th><td>{:.0} ms</td></tr><tr><th>swap</th><td>{}</td></tr></table>",
        t.generate_ms,
        t.build_cold_ms.map_or("-".into(), |v| format!("{v:.0} ms")),
        if t.build_warm_ms.is_empty() {
            "-".into()
        } else {
            let mean = t.build_warm_ms.iter().sum::<f64>() / t.build_warm_ms.len() as f64;
            format!("{} builds, mean {mean:.0} ms, max {:.0} ms", t.build_warm_ms.len(), t.build_warm_ms.iter().fold(0.0f64, |a, b| a.max(*b)))
        },
        t.benchmark_ms,
        t.swap_ms.map_or("-".into(), |v| format!("{v:.1} ms")),
    );

    h.push_str("<h2>Candidates</h2><table><tr><th>gen</th><th>candidate</th><th>origin</th><th>version</th><th>build</th><th>cases passed</th><th>total fuel</th><th>verdict</th></tr>");
    let inc = &report.incumbent;
    let _ = write!(
        h,
        "<tr><td>-</td><td><b>incumbent</b></td><td>{}</td><td><code>{}</code></td><td>-</td><td>{}/{}</td><td>{}</td><td>-</td></tr>",
        esc(&inc.origin),
        short(&inc.version),
        inc.bench.passed,
        inc.bench.cases.len(),
        fmt_fuel(inc.bench.total_fuel)
    );
    for g in &report.generations {
        for cand in &g.candidates {
            let build = if cand.build.ok {
                format!("<span class=pass>ok</span> {:.0} ms{}", cand.build.duration_ms, if cand.build.repairs > 0 { format!(" after {} repair(s)", cand.build.repairs) } else { String::new() })
            } else {
                format!("<span class=fail>{}</span>", esc(cand.build.kind.as_deref().unwrap_or("failed")))
            };
            let (passed, fuel) = match &cand.bench {
                Some(b) => (format!("{}/{}", b.passed, b.cases.len()), fmt_fuel(b.total_fuel)),
                None => ("-".into(), "-".into()),
            };
            let verdict = match (&cand.verdict, &cand.load_error) {
                (Some(v), _) => format!("<span class={}>{}</span> {}", if v.wins { "pass" } else { "fail" }, if v.wins { "wins" } else { "loses" }, esc(&v.reason)),
                (None, Some(e)) => format!("<span class=fail>not loadable</span> {}", esc(e)),
                (None, None) => "-".into(),
            };
            let verdict = match &cand.manifest_change {
                Some(change) => format!("{verdict}<br><span class=fail>manifest changed</span> {}", esc(change)),
                None => verdict,
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{build}</td><td>{passed}</td><td>{fuel}</td><td>{verdict}</td></tr>",
                g.index,
                esc(&cand.label),
                esc(&cand.origin),
                cand.version.as_deref().map(short).unwrap_or("-"),
            );
        }
    }
    h.push_str("</table>");

    h.push_str("<h2>Fuel per case</h2><p>Bars are scaled per case; hollow bars and ✗ mark failed cases.</p>");
    h.push_str(&case_chart(report));
    h.push_str("<h2>Fuel across generations</h2><p>Total fuel of the best winning candidate so far.</p>");
    h.push_str(&generations_chart(report));

    h.push_str("<h2>Cases</h2><table><tr><th>case</th><th>incumbent</th>");
    let benched: Vec<(String, &BenchResult)> = report
        .generations
        .iter()
        .flat_map(|g| g.candidates.iter().filter_map(move |c| c.bench.as_ref().map(|b| (format!("g{} {}", g.index, c.label), b))))
        .collect();
    for (name, _) in &benched {
        let _ = write!(h, "<th>{}</th>", esc(name));
    }
    h.push_str("</tr>");
    for case in &inc.bench.cases {
        let cell = |b: &BenchResult| match b.case(&case.name) {
            Some(c) if c.passed => format!("<td class=pass>✓ {}</td>", c.fuel.map(fmt_fuel).unwrap_or_default()),
            Some(c) => format!(
                "<td class=fail title=\"{}\">✗ {}</td>",
                esc(&c.failures.join("; ")),
                esc(&c.error.clone().unwrap_or_else(|| c.failures.first().cloned().unwrap_or_default()))
            ),
            None => "<td>-</td>".into(),
        };
        let _ = write!(h, "<tr><td>{}{}</td>{}", esc(&case.name), if case.held_out { " <i>(held out)</i>" } else { "" }, cell(&inc.bench));
        for (_, b) in &benched {
            h.push_str(&cell(b));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");

    let failed: Vec<&CandidateReport> =
        report.generations.iter().flat_map(|g| g.candidates.iter()).filter(|c| !c.build.ok).collect();
    if !failed.is_empty() {
        h.push_str("<h2>Build failures</h2>");
        for c in failed {
            let _ = write!(h, "<h3>{} <small>({})</small></h3><pre>", esc(&c.label), esc(c.build.kind.as_deref().unwrap_or("")));
            for v in &c.build.violations {
                let _ = writeln!(h, "{}", esc(&v.to_string()));
            }
            for e in &c.build.errors {
                let _ = writeln!(h, "{}", esc(e));
            }
            h.push_str("</pre>");
        }
    }

    if let Some(w) = &report.winner {
        let _ = write!(h, "<h2>Winner: {} <code>{}</code></h2><p>{}</p><pre>", esc(&w.label), short(&w.version), esc(&w.reason));
        for line in w.diff.lines() {
            let class = match line.chars().next() {
                Some('+') => "add",
                Some('-') => "del",
                _ => "",
            };
            let _ = writeln!(h, "<span class=\"{class}\">{}</span>", esc(line));
        }
        h.push_str("</pre>");
    }
    let l = &report.llm;
    let _ = write!(
        h,
        "<h2>LLM</h2><p>{} calls, {} prompt + {} completion tokens, ${:.4}</p>",
        l.calls, l.prompt_tokens, l.completion_tokens, l.cost_usd
    );
    if let Some(p) = &report.installed {
        let _ = write!(h, "<p>Installed as <code>{}</code>.</p>", esc(p));
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_shows_changed_lines_with_context() {
        let old = CandidateSource::single("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n");
        let new = CandidateSource::single("a\nb\nc\nd\ne\nF\ng\nh\ni\nj\n");
        let d = diff(&old, &new);
        assert!(d.contains("--- a/src/lib.rs"));
        assert!(d.contains("-f\n+F\n"), "{d}");
        assert!(d.contains(" e\n") && !d.contains(" a\n"), "context is three lines: {d}");
        assert_eq!(diff(&old, &old), "");
    }

    #[test]
    fn html_escapes_what_candidates_control() {
        assert_eq!(esc("<script>&\""), "&lt;script&gt;&amp;&quot;");
        assert_eq!(fmt_fuel(1234567), "1,234,567");
    }
}
