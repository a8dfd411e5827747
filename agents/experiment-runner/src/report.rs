//! The host's comparison document, read defensively (every field optional,
//! numbers accepted as numbers or numeric strings), and its report.
use serde::Serialize;
use serde_json::Value;

/// One version's numbers.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Side {
    pub version: Option<String>,
    pub errors: Option<u64>,
    pub fuel: Option<u64>,
    pub mean_fuel: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Disagreement {
    pub request: String,
    pub baseline: String,
    pub candidate: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Comparison {
    pub agent: Option<String>,
    pub baseline: Side,
    pub candidate: Side,
    pub requests: Option<u64>,
    pub agreed: Option<u64>,
    pub disagreements: Vec<Disagreement>,
    /// `baseline`, `candidate` or `tie`.
    pub better: String,
    pub reason: Option<String>,
    /// Whether `better` is the host's (else this agent judged from the numbers).
    pub host_judged: bool,
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn u64_of(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn f64_of(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn str_of(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(|s| s.chars().take(200).collect())
}

fn side(v: Option<&Value>) -> Side {
    let Some(v) = v else { return Side::default() };
    Side { version: str_of(v.get("version")), errors: u64_of(v.get("errors")), fuel: u64_of(v.get("fuel")), mean_fuel: f64_of(v.get("mean_fuel")) }
}

/// Parses the host's document; `Err` when it is not a JSON object at all.
pub fn parse_comparison(doc: &str) -> Result<Comparison, String> {
    let v: Value = serde_json::from_str(doc).map_err(|e| format!("the host's comparison is not JSON ({e})"))?;
    if !v.is_object() {
        return Err("the host's comparison is not a JSON object".into());
    }
    let clip = |s: String| s.chars().take(160).collect::<String>();
    let disagreements = v
        .get("disagreements")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .take(20)
                .map(|d| Disagreement {
                    request: clip(d.get("request").map(text_of).unwrap_or_default()),
                    baseline: clip(d.get("baseline").map(text_of).unwrap_or_default()),
                    candidate: clip(d.get("candidate").map(text_of).unwrap_or_default()),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut c = Comparison {
        agent: str_of(v.get("agent")),
        baseline: side(v.get("baseline")),
        candidate: side(v.get("candidate")),
        requests: u64_of(v.get("requests")),
        agreed: u64_of(v.get("agreed")),
        disagreements,
        reason: str_of(v.get("reason")),
        ..Comparison::default()
    };
    match str_of(v.get("better")).map(|b| b.to_lowercase()) {
        Some(b) if ["baseline", "candidate", "tie"].contains(&b.as_str()) => {
            c.better = b;
            c.host_judged = true;
        }
        _ => c.better = judge(&c.baseline, &c.candidate).to_string(),
    }
    Ok(c)
}

/// When the host names no winner: fewer errors wins, then mean fuel at
/// least 5% lower; otherwise a tie.
pub fn judge(baseline: &Side, candidate: &Side) -> &'static str {
    match (baseline.errors, candidate.errors) {
        (Some(b), Some(c)) if b != c => return if c < b { "candidate" } else { "baseline" },
        _ => {}
    }
    match (baseline.mean_fuel, candidate.mean_fuel) {
        (Some(b), Some(c)) if c <= b * 0.95 => "candidate",
        (Some(b), Some(c)) if b <= c * 0.95 => "baseline",
        _ => "tie",
    }
}

/// `1234567.0` → `1.23M`.
pub fn human(n: f64) -> String {
    match n {
        n if n >= 1e9 => format!("{:.2}G", n / 1e9),
        n if n >= 1e6 => format!("{:.2}M", n / 1e6),
        n if n >= 1e3 => format!("{:.1}k", n / 1e3),
        n => format!("{n:.0}"),
    }
}

fn side_line(role: &str, label: &str, s: &Side) -> String {
    let mut parts = Vec::new();
    if let Some(e) = s.errors {
        parts.push(format!("{e} error(s)"));
    }
    if let Some(m) = s.mean_fuel {
        parts.push(format!("mean fuel {}", human(m)));
    }
    if let Some(f) = s.fuel {
        parts.push(format!("total fuel {}", human(f as f64)));
    }
    let numbers = if parts.is_empty() { "no numbers reported".to_string() } else { parts.join(", ") };
    format!("- {role} {}: {numbers}", s.version.as_deref().unwrap_or(label))
}

/// The report, with numbers.
pub fn report(agent: &str, baseline: &str, candidate: &str, c: &Comparison) -> String {
    let winner = match c.better.as_str() {
        "candidate" => format!("the candidate {candidate} is better"),
        "baseline" => format!("the baseline {baseline} is better (keep it)"),
        _ => "neither version is clearly better (a tie)".to_string(),
    };
    let mut lines = vec![format!("Experiment on `{agent}`: {winner}.")];
    if let Some(reason) = &c.reason {
        lines.push(format!("Host's reason: {reason}"));
    } else if !c.host_judged {
        lines.push("The host named no winner; I judged by errors, then mean fuel (5% margin).".into());
    }
    match (c.requests, c.agreed) {
        (Some(r), Some(a)) if r > 0 => lines.push(format!("Replayed {r} recorded request(s); the answers agreed on {a} ({:.0}%).", a as f64 * 100.0 / r as f64)),
        (Some(r), _) => lines.push(format!("Replayed {r} recorded request(s).")),
        _ => {}
    }
    lines.push(side_line("baseline", baseline, &c.baseline));
    let mut candidate_line = side_line("candidate", candidate, &c.candidate);
    if let (Some(b), Some(n)) = (c.baseline.mean_fuel, c.candidate.mean_fuel) {
        if b > 0.0 {
            candidate_line.push_str(&format!(" ({:+.0}% fuel vs baseline)", (n - b) * 100.0 / b));
        }
    }
    lines.push(candidate_line);
    for d in c.disagreements.iter().take(3) {
        lines.push(format!("- differs on {:?}: baseline {:?}, candidate {:?}", d.request, d.baseline, d.candidate));
    }
    if c.disagreements.len() > 3 {
        lines.push(format!("- ... and {} more disagreement(s)", c.disagreements.len() - 3));
    }
    lines.join("\n")
}
