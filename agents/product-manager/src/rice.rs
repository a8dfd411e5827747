//! Feature prioritisation, pure so it is unit-tested natively: a request's
//! feature list split into items, each scored by RICE (reach × impact ×
//! confidence ÷ effort) from the numbers it states, estimated from its
//! words where it states none.
use serde::Serialize;

use crate::common::numbers_with_labels;

/// One feature with its RICE score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scored {
    pub feature: String,
    /// People reached per quarter.
    pub reach: f64,
    /// 0.25 (minimal) to 3 (massive).
    pub impact: f64,
    /// 0 to 1.
    pub confidence: f64,
    /// Person-weeks.
    pub effort: f64,
    pub score: f64,
    /// The factors estimated from words, not stated.
    pub estimated: Vec<&'static str>,
}

/// Words before the list that are not features ("prioritise these features:").
const LEAD_INS: &[&str] = &["prioritise", "prioritize", "rank", "order", "score", "rice", "features", "feature", "roadmap", "backlog"];

/// The features listed in `text`: after a colon when the part before it is
/// an instruction, split on new lines, `;` and commas outside brackets,
/// with bullets and numbering taken off.
pub fn split_features(text: &str) -> Vec<String> {
    let list = match text.split_once(':') {
        Some((head, tail)) if LEAD_INS.iter().any(|w| head.to_lowercase().contains(w)) => tail,
        _ => text,
    };
    let mut items = Vec::new();
    let mut current = String::new();
    let mut depth = 0i32;
    for ch in list.chars() {
        match ch {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            _ => {}
        }
        if ch == '\n' || ch == ';' || (ch == ',' && depth <= 0) {
            items.push(std::mem::take(&mut current));
        } else {
            current.push(ch);
        }
    }
    items.push(current);
    items
        .iter()
        .map(|i| strip_bullet(i.trim()))
        .map(|i| i.trim_end_matches(['.', '?', '!']).trim().to_string())
        .filter(|i| !i.is_empty())
        .collect()
}

/// An item without its bullet ("- ", "* ") or number ("1. ", "2) "); "2FA" keeps its digit.
fn strip_bullet(item: &str) -> &str {
    let item = item.trim_start_matches(['-', '*', '•']).trim_start();
    let digits = item.len() - item.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    match item[digits..].strip_prefix(['.', ')']) {
        Some(rest) if digits > 0 => rest.trim_start(),
        _ => item,
    }
}

/// The first word list of `table` found in `text`, as its value.
fn estimate(text: &str, table: &[(&[&str], f64)], default: f64) -> f64 {
    table.iter().find(|(words, _)| words.iter().any(|w| text.contains(w))).map_or(default, |(_, v)| *v)
}

const REACH: &[(&[&str], f64)] = &[
    (&["all users", "everyone", "every user", "login", "sign up", "signup", "onboarding", "checkout", "search", "dashboard", "mobile"], 1000.0),
    (&["admin", "enterprise", "sso", "api", "export", "integration", "audit", "webhook"], 300.0),
];
const IMPACT: &[(&[&str], f64)] = &[
    (&["crash", "outage", "security", "data loss", "payment", "checkout", "billing"], 3.0),
    (&["revenue", "conversion", "churn", "onboarding", "performance", "speed", "faster", "sso", "search"], 2.0),
    (&["dark mode", "theme", "colour", "color", "icon", "animation", "font", "emoji"], 0.5),
];
const EFFORT: &[(&[&str], f64)] = &[
    (&["rewrite", "migration", "migrate", "platform", "redesign", "mobile app", "offline", "machine learning", " ai"], 8.0),
    (&["button", "copy", "typo", "tooltip", "link", "colour", "color", "icon", "font"], 0.5),
    (&["dark mode", "theme", "export", "filter", "notification", "email"], 2.0),
];

#[derive(Debug, Clone, Copy)]
enum Factor {
    Reach,
    Impact,
    Confidence,
    Effort,
}

/// The words that name each factor next to a number.
const FACTORS: &[(Factor, &[&str])] = &[
    (Factor::Reach, &["reach", "users", "customers", "people"]),
    (Factor::Impact, &["impact"]),
    (Factor::Confidence, &["confidence", "confident"]),
    (Factor::Effort, &["effort", "weeks", "week", "days", "day", "months", "month", "sprints", "sprint"]),
];

/// Scores one feature: numbers it states ("reach 800", "impact 2",
/// "confidence 80%", "effort 3 weeks"), estimates from its words otherwise.
pub fn score(feature: &str) -> Scored {
    let lower = format!(" {}", feature.to_lowercase());
    let (mut reach, mut impact, mut confidence, mut effort) = (None, None, None, None);
    for n in numbers_with_labels(feature) {
        match n.nearest(FACTORS) {
            Some(Factor::Reach) => reach = reach.or(Some(n.value)),
            Some(Factor::Impact) => impact = impact.or(Some(n.value.clamp(0.25, 3.0))),
            Some(Factor::Confidence) => {
                let fraction = if n.percent || n.value > 1.0 { n.value / 100.0 } else { n.value };
                confidence = confidence.or(Some(fraction.clamp(0.0, 1.0)));
            }
            Some(Factor::Effort) => {
                let weeks = match n.after.as_str() {
                    "days" | "day" => n.value / 5.0,
                    "months" | "month" => n.value * 4.0,
                    "sprints" | "sprint" => n.value * 2.0,
                    _ => n.value,
                };
                effort = effort.or(Some(weeks.max(0.1)));
            }
            None => {}
        }
    }
    let mut estimated = Vec::new();
    let mut or_estimate = |stated: Option<f64>, name: &'static str, guess: f64| {
        stated.unwrap_or_else(|| {
            estimated.push(name);
            guess
        })
    };
    let reach = or_estimate(reach, "reach", estimate(&lower, REACH, 500.0));
    let impact = or_estimate(impact, "impact", estimate(&lower, IMPACT, 1.0));
    let effort = or_estimate(effort, "effort", estimate(&lower, EFFORT, 3.0));
    // Estimates are guesses: confidence drops with each one.
    let confidence = match confidence {
        Some(c) => c,
        None => {
            let guess = [0.8, 0.7, 0.6, 0.5][estimated.len().min(3)];
            estimated.push("confidence");
            guess
        }
    };
    let name = feature.split(['(', '[']).next().unwrap_or(feature).trim().to_string();
    Scored { feature: name, reach, impact, confidence, effort, score: reach * impact * confidence / effort, estimated }
}

/// The features scored, highest first (ties keep the listed order).
pub fn rank(features: &[String]) -> Vec<Scored> {
    let mut scored: Vec<Scored> = features.iter().map(|f| score(f)).collect();
    scored.sort_by(|a, b| b.score.partial_cmp(&a.score).unwrap_or(std::cmp::Ordering::Equal));
    scored
}

/// One line per feature: "1. SSO — RICE 120 (reach 300*, impact 2*, ...)".
pub fn ranking_text(ranked: &[Scored]) -> String {
    let lines: Vec<String> = ranked
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mark = |name: &str| if s.estimated.contains(&name) { "*" } else { "" };
            format!(
                "{}. {} — RICE {:.0} (reach {:.0}{}, impact {}{}, confidence {:.0}%{}, effort {} wk{})",
                i + 1,
                s.feature,
                s.score,
                s.reach,
                mark("reach"),
                s.impact,
                mark("impact"),
                s.confidence * 100.0,
                mark("confidence"),
                s.effort,
                mark("effort")
            )
        })
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lists_in_several_shapes() {
        assert_eq!(split_features("prioritise these features: SSO, dark mode, CSV export"), ["SSO", "dark mode", "CSV export"]);
        assert_eq!(split_features("Rank:\n- SSO (reach 800, impact 2)\n- dark mode\n"), ["SSO (reach 800, impact 2)", "dark mode"]);
        assert_eq!(split_features("1. faster search; 2. audit log."), ["faster search", "audit log"]);
        assert_eq!(split_features("rank: 2FA, 3) SSO"), ["2FA", "SSO"]);
    }

    #[test]
    fn stated_numbers_win_over_estimates() {
        let s = score("SSO (reach 800, impact 2, confidence 80%, effort 4 weeks)");
        assert_eq!((s.reach, s.impact, s.confidence, s.effort), (800.0, 2.0, 0.8, 4.0));
        assert!(s.estimated.is_empty());
        assert_eq!(s.feature, "SSO");
        assert_eq!(s.score, 320.0);
        assert_eq!(score("export (effort 10 days)").effort, 2.0);
        let s = score("audit log (impact 2, reach 800)");
        assert_eq!((s.reach, s.impact), (800.0, 2.0), "the word right before a number names it");
    }

    #[test]
    fn heuristics_rank_a_crash_fix_over_a_theme() {
        let ranked = rank(&split_features("prioritise: dark mode, fix the checkout crash, rewrite the platform"));
        assert_eq!(ranked[0].feature, "fix the checkout crash");
        assert_eq!(ranked[2].feature, "rewrite the platform");
        assert_eq!(ranked[0].estimated, ["reach", "impact", "effort", "confidence"]);
        assert!(ranking_text(&ranked).starts_with("1. fix the checkout crash — RICE"));
    }
}
