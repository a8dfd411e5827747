//! Weekly counts of findings by topic, label (arXiv category, language,
//! GitHub topic) and title keyword, and what is rising: the terms counted
//! more in the newest week than in the week before.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Weeks reported, newest first, at most.
pub const MAX_WEEKS: usize = 8;
/// Findings aggregated per request, at most.
pub const MAX_FINDINGS: usize = 400;
/// Terms listed per week and as rising, at most.
pub const MAX_TERMS: usize = 10;

/// The fields of a finding the trends need (the fetchers send more).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Finding {
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub topic: String,
    #[serde(default)]
    pub published: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub found_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Week {
    /// The Monday that starts it, `YYYY-MM-DD`.
    pub week: String,
    pub findings: u32,
    pub by_source: BTreeMap<String, u32>,
    /// The most counted terms (`topic:`, labels, `kw:` title words).
    pub top: Vec<(String, u32)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rising {
    pub term: String,
    pub this_week: u32,
    pub week_before: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trends {
    pub weeks: Vec<Week>,
    pub rising: Vec<Rising>,
    pub findings: usize,
    /// Findings without a readable date (not counted in any week).
    pub undated: usize,
}

const STOPWORDS: &[&str] = &[
    "with", "from", "that", "this", "their", "into", "over", "using", "based", "towards", "toward", "about", "through",
    "for", "and", "the", "via", "your", "what", "when", "more", "than", "large", "model", "models", "study", "paper",
    "approach", "framework", "system", "systems", "rust", "wasm", "library", "tool",
];

/// The terms one finding counts for (each once).
pub fn terms(f: &Finding) -> Vec<String> {
    let mut out = Vec::new();
    if !f.topic.is_empty() {
        out.push(format!("topic:{}", f.topic.to_lowercase()));
    }
    out.extend(f.tags.iter().take(8).map(|t| t.to_lowercase()));
    for w in f.title.split(|c: char| !c.is_alphanumeric()).map(str::to_lowercase) {
        if w.len() > 3 && !STOPWORDS.contains(&w.as_str()) && !w.chars().all(|c| c.is_ascii_digit()) {
            out.push(format!("kw:{w}"));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Days since 1970-01-01 of a `YYYY-MM-DD...` date (days-from-civil).
pub fn days_of(date: &str) -> Option<i64> {
    let d = date.get(..10)?;
    let (y, rest) = d.split_once('-')?;
    let (m, day) = rest.split_once('-')?;
    let (y, m, day): (i64, i64, i64) = (y.parse().ok()?, m.parse().ok()?, day.parse().ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// `YYYY-MM-DD` of a day number.
pub fn date_of_days(days: i64) -> String {
    let z = days + 719_468;
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

/// The Monday starting the week of day `days` (1970-01-01 was a Thursday).
fn week_start(days: i64) -> i64 {
    days - (days + 3).rem_euclid(7)
}

/// The day a finding belongs to: its publication (or last push), else when it was found.
fn day_of(f: &Finding) -> Option<i64> {
    days_of(&f.published).or_else(|| (f.found_at > 0).then(|| f.found_at.div_euclid(86_400)))
}

pub fn analyze(findings: &[Finding]) -> Trends {
    let findings = &findings[..findings.len().min(MAX_FINDINGS)];
    let mut weeks: BTreeMap<i64, (u32, BTreeMap<String, u32>, BTreeMap<String, u32>)> = BTreeMap::new();
    let mut undated = 0;
    for f in findings {
        let Some(day) = day_of(f) else {
            undated += 1;
            continue;
        };
        let (count, by_source, by_term) = weeks.entry(week_start(day)).or_default();
        *count += 1;
        *by_source.entry(f.source.clone()).or_default() += 1;
        for t in terms(f) {
            *by_term.entry(t).or_default() += 1;
        }
    }
    let rising = match (weeks.iter().next_back(), weeks.iter().rev().nth(1)) {
        (Some((newest, (_, _, now))), before) => {
            let empty = BTreeMap::new();
            let prev = before.filter(|(w, _)| **w == newest - 7).map_or(&empty, |(_, (_, _, t))| t);
            let mut r: Vec<Rising> = now
                .iter()
                .filter(|(t, n)| **n > prev.get(*t).copied().unwrap_or(0))
                .map(|(t, n)| Rising { term: t.clone(), this_week: *n, week_before: prev.get(t).copied().unwrap_or(0) })
                .collect();
            r.sort_by(|a, b| (b.this_week - b.week_before).cmp(&(a.this_week - a.week_before)).then(a.term.cmp(&b.term)));
            r.truncate(MAX_TERMS);
            r
        }
        _ => Vec::new(),
    };
    let weeks = weeks
        .into_iter()
        .rev()
        .take(MAX_WEEKS)
        .map(|(start, (findings, by_source, by_term))| {
            let mut top: Vec<(String, u32)> = by_term.into_iter().collect();
            top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            top.truncate(MAX_TERMS);
            Week { week: date_of_days(start), findings, by_source, top }
        })
        .collect();
    Trends { weeks, rising, findings: findings.len(), undated }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(source: &str, title: &str, topic: &str, published: &str, tags: &[&str]) -> Finding {
        Finding {
            source: source.into(),
            id: title.into(),
            title: title.into(),
            topic: topic.into(),
            published: published.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            found_at: 0,
        }
    }

    #[test]
    fn dates_and_weeks() {
        assert_eq!(days_of("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(date_of_days(days_of("2024-02-29").unwrap()), "2024-02-29");
        // 2024-11-07 was a Thursday; its week starts Monday 2024-11-04.
        assert_eq!(date_of_days(week_start(days_of("2024-11-07").unwrap())), "2024-11-04");
        assert_eq!(days_of("garbage"), None);
    }

    #[test]
    fn weeks_are_counted_and_rising_terms_found() {
        let all = vec![
            f("arxiv", "Agents that judge agents", "agents", "2024-10-29T10:00:00Z", &["cs.AI"]),
            f("arxiv", "Multi-agent planning", "agents", "2024-11-05T10:00:00Z", &["cs.AI"]),
            f("arxiv", "Sandboxed agents", "agents", "2024-11-07T10:00:00Z", &["cs.CR"]),
            f("github", "owner/agent-kit", "agents", "2024-11-08T10:00:00Z", &["lang:rust"]),
            f("github", "x/y", "", "not a date", &[]),
        ];
        let t = analyze(&all);
        assert_eq!(t.undated, 1);
        assert_eq!(t.weeks.len(), 2);
        assert_eq!(t.weeks[0].week, "2024-11-04");
        assert_eq!(t.weeks[0].findings, 3);
        assert_eq!(t.weeks[0].by_source["github"], 1);
        let topic = t.rising.iter().find(|r| r.term == "topic:agents").unwrap();
        assert_eq!((topic.this_week, topic.week_before), (3, 1));
        assert!(t.rising.iter().any(|r| r.term == "lang:rust"));
        assert!(!t.rising.iter().any(|r| r.term == "kw:agents" && r.this_week <= r.week_before));
    }
}
