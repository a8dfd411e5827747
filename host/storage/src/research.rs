//! Research findings (the research center): what the research agents
//! found in each cycle, one row per (source, id), so a finding seen again is
//! not stored twice. Bounded: text per field is cut, and the oldest rows go
//! past [`MAX_ROWS`].
use std::collections::BTreeMap;

use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::StorageError;
use crate::sqlite::SqliteStorage;

/// Rows kept; older ones are deleted as new ones come.
pub const MAX_ROWS: i64 = 50_000;
/// Bytes kept per text field.
pub const MAX_TITLE_BYTES: usize = 400;
pub const MAX_SUMMARY_BYTES: usize = 2_000;
pub const MAX_URL_BYTES: usize = 600;
pub const MAX_SHORT_BYTES: usize = 120;
/// Rows one listing returns, at most.
pub const MAX_LIST: u32 = 1_000;
/// Weeks one per-week count covers, at most.
pub const MAX_WEEKS: u32 = 520;

/// One finding, as the host records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResearchFinding {
    /// `arxiv`, `github`, ...: with `id`, the finding's identity.
    pub source: String,
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub topic: String,
    #[serde(default)]
    pub score: Option<f64>,
    /// `llm` or `keywords`.
    #[serde(default)]
    pub scored_by: String,
    /// As the source gives it (arXiv: published; GitHub: last push).
    #[serde(default)]
    pub published: String,
    /// The agent that found it.
    #[serde(default)]
    pub agent: String,
    /// Unix seconds when the host first recorded it.
    #[serde(default)]
    pub found_at: i64,
}

/// Findings first recorded in one week (Monday 00:00 UTC onwards).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeekCount {
    /// `YYYY-MM-DD` of the Monday.
    pub week: String,
    pub week_start: i64,
    pub findings: u64,
    pub by_source: BTreeMap<String, u64>,
}

pub trait ResearchStore: Send + Sync + 'static {
    /// Records each finding whose (source, id) is not stored yet, with
    /// `found_at = now`; returns those (as stored: text cut to the bounds).
    fn research_record(&self, findings: &[ResearchFinding], now: i64) -> Result<Vec<ResearchFinding>, StorageError>;
    /// The newest `limit` findings (at most [`MAX_LIST`]), newest first.
    fn research_findings(&self, limit: u32) -> Result<Vec<ResearchFinding>, StorageError>;
    /// Findings recorded per week over the last `weeks` weeks (this one
    /// included, at most [`MAX_WEEKS`]), oldest first, empty weeks included.
    fn research_findings_per_week(&self, weeks: u32) -> Result<Vec<WeekCount>, StorageError>;
}

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS research_findings (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    source     TEXT NOT NULL,
    id         TEXT NOT NULL,
    title      TEXT NOT NULL,
    url        TEXT NOT NULL DEFAULT '',
    summary    TEXT NOT NULL DEFAULT '',
    topic      TEXT NOT NULL DEFAULT '',
    score      REAL,
    scored_by  TEXT NOT NULL DEFAULT '',
    published  TEXT NOT NULL DEFAULT '',
    agent      TEXT NOT NULL DEFAULT '',
    found_at   INTEGER NOT NULL,
    UNIQUE (source, id)
);
CREATE INDEX IF NOT EXISTS research_findings_by_time ON research_findings (found_at);
";

fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The Monday 00:00 UTC starting the week of `t` (1970-01-01 was a Thursday).
pub fn week_start(t: i64) -> i64 {
    let day = t.div_euclid(86_400);
    (day - (day + 3).rem_euclid(7)) * 86_400
}

/// `YYYY-MM-DD` of a unix time (civil-from-days).
pub fn date_of(t: i64) -> String {
    let z = t.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{:04}-{month:02}-{day:02}", yoe + era * 400 + i64::from(month <= 2))
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl ResearchStore for SqliteStorage {
    fn research_record(&self, findings: &[ResearchFinding], now: i64) -> Result<Vec<ResearchFinding>, StorageError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut added = Vec::new();
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO research_findings
                 (source, id, title, url, summary, topic, score, scored_by, published, agent, found_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for f in findings {
                if f.source.is_empty() || f.id.is_empty() {
                    continue;
                }
                let stored = ResearchFinding {
                    source: clip(&f.source, MAX_SHORT_BYTES).into(),
                    id: clip(&f.id, MAX_SHORT_BYTES * 2).into(),
                    title: clip(&f.title, MAX_TITLE_BYTES).into(),
                    url: clip(&f.url, MAX_URL_BYTES).into(),
                    summary: clip(&f.summary, MAX_SUMMARY_BYTES).into(),
                    topic: clip(&f.topic, MAX_SHORT_BYTES).into(),
                    score: f.score.filter(|s| s.is_finite()),
                    scored_by: clip(&f.scored_by, MAX_SHORT_BYTES).into(),
                    published: clip(&f.published, MAX_SHORT_BYTES).into(),
                    agent: clip(&f.agent, MAX_SHORT_BYTES).into(),
                    found_at: now,
                };
                let inserted = insert.execute(params![
                    stored.source,
                    stored.id,
                    stored.title,
                    stored.url,
                    stored.summary,
                    stored.topic,
                    stored.score,
                    stored.scored_by,
                    stored.published,
                    stored.agent,
                    now,
                ])?;
                if inserted > 0 {
                    added.push(stored);
                }
            }
        }
        if !added.is_empty() {
            // By position, not by arithmetic on `seq`: AUTOINCREMENT spends a
            // number on every ignored duplicate, so `MAX(seq) - MAX_ROWS`
            // would delete far more than the oldest rows past the bound.
            tx.execute(
                "DELETE FROM research_findings WHERE seq <= (SELECT seq FROM research_findings ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
                params![MAX_ROWS],
            )?;
        }
        tx.commit()?;
        Ok(added)
    }

    fn research_findings(&self, limit: u32) -> Result<Vec<ResearchFinding>, StorageError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT source, id, title, url, summary, topic, score, scored_by, published, agent, found_at
             FROM research_findings ORDER BY seq DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit.min(MAX_LIST)], |r| {
            Ok(ResearchFinding {
                source: r.get(0)?,
                id: r.get(1)?,
                title: r.get(2)?,
                url: r.get(3)?,
                summary: r.get(4)?,
                topic: r.get(5)?,
                score: r.get(6)?,
                scored_by: r.get(7)?,
                published: r.get(8)?,
                agent: r.get(9)?,
                found_at: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn research_findings_per_week(&self, weeks: u32) -> Result<Vec<WeekCount>, StorageError> {
        let weeks = i64::from(weeks.clamp(1, MAX_WEEKS));
        let first = week_start(now()) - (weeks - 1) * 7 * 86_400;
        let mut out: Vec<WeekCount> = (0..weeks)
            .map(|i| first + i * 7 * 86_400)
            .map(|w| WeekCount { week: date_of(w), week_start: w, findings: 0, by_source: BTreeMap::new() })
            .collect();
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT (found_at - ?1) / 604800, source, COUNT(*) FROM research_findings
             WHERE found_at >= ?1 GROUP BY 1, 2",
        )?;
        let rows = stmt.query_map(params![first], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))?;
        for row in rows {
            let (index, source, n) = row?;
            if let Some(w) = usize::try_from(index).ok().and_then(|i| out.get_mut(i)) {
                w.findings += n as u64;
                *w.by_source.entry(source).or_default() += n as u64;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(source: &str, id: &str) -> ResearchFinding {
        ResearchFinding {
            source: source.into(),
            id: id.into(),
            title: "t".repeat(1000),
            url: "https://arxiv.org/abs/1".into(),
            summary: String::new(),
            topic: "agents".into(),
            score: Some(7.5),
            scored_by: "keywords".into(),
            published: "2024-11-07T06:36:19Z".into(),
            agent: "researcher".into(),
            found_at: 0,
        }
    }

    #[test]
    fn findings_are_recorded_once_per_source_and_id() {
        let s = SqliteStorage::in_memory().unwrap();
        let now = now();
        let batch = [finding("arxiv", "1"), finding("arxiv", "2"), finding("github", "1"), finding("arxiv", "")];
        assert_eq!(s.research_record(&batch, now).unwrap().len(), 3);
        assert!(s.research_record(&batch, now + 5).unwrap().is_empty(), "seen again: not stored twice");
        let rows = s.research_findings(10).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].source, "github", "newest first");
        assert_eq!(rows[0].title.len(), MAX_TITLE_BYTES);
        assert_eq!(rows[0].found_at, now);
        let weeks = s.research_findings_per_week(4).unwrap();
        assert_eq!(weeks.len(), 4);
        assert_eq!(weeks[3].findings, 3);
        assert_eq!(weeks[3].by_source["arxiv"], 2);
        assert_eq!(weeks[0].findings, 0);
        assert_eq!(weeks[3].week_start, week_start(now));
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2024-11-07 (a Thursday) 06:36 → Monday 2024-11-04.
        assert_eq!(date_of(week_start(1_730_961_379)), "2024-11-04");
        assert_eq!(date_of(0), "1970-01-01");
    }
}
