//! PostgreSQL: `ResearchStore`. One row per (source, id), the newest
//! [`MAX_ROWS`] kept.
//!
//! Recording takes an advisory lock for the whole table: research cycles
//! are rare, and one writer at a time keeps the bound exact when hosts
//! record together (each would otherwise trim by its own snapshot).
use std::collections::{BTreeMap, HashSet};

use super::{PostgresStorage, lock_key};
use crate::StorageError;
use crate::research::{
    MAX_LIST, MAX_ROWS, MAX_SHORT_BYTES, MAX_SUMMARY_BYTES, MAX_TITLE_BYTES, MAX_URL_BYTES, MAX_WEEKS, ResearchFinding,
    ResearchStore, WeekCount, date_of, week_start,
};

/// Text is BYTEA, not TEXT: PostgreSQL's TEXT cannot hold NUL, which a
/// finding (the text of an outside source, relayed by an agent) may
/// contain and SQLite stores as is; one such finding would otherwise fail
/// its whole batch.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS research_findings (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source     BYTEA NOT NULL,
    id         BYTEA NOT NULL,
    title      BYTEA NOT NULL,
    url        BYTEA NOT NULL DEFAULT '',
    summary    BYTEA NOT NULL DEFAULT '',
    topic      BYTEA NOT NULL DEFAULT '',
    score      DOUBLE PRECISION,
    scored_by  BYTEA NOT NULL DEFAULT '',
    published  BYTEA NOT NULL DEFAULT '',
    agent      BYTEA NOT NULL DEFAULT '',
    found_at   BIGINT NOT NULL,
    UNIQUE (source, id)
);
CREATE INDEX IF NOT EXISTS research_findings_by_time ON research_findings (found_at);
";

/// Inserts the findings in order, skipping those stored already (or
/// repeated earlier in the batch); answers the keys it inserted.
const INSERT: &str = "
INSERT INTO research_findings (source, id, title, url, summary, topic, score, scored_by, published, agent, found_at)
SELECT source, id, title, url, summary, topic, score, scored_by, published, agent, $11
FROM unnest($1::BYTEA[], $2::BYTEA[], $3::BYTEA[], $4::BYTEA[], $5::BYTEA[], $6::BYTEA[], $7::DOUBLE PRECISION[],
            $8::BYTEA[], $9::BYTEA[], $10::BYTEA[])
     WITH ORDINALITY AS f(source, id, title, url, summary, topic, score, scored_by, published, agent, n)
ORDER BY n
ON CONFLICT (source, id) DO NOTHING
RETURNING source, id";

/// Deletes all but the newest `$1` rows. By rank, not by `seq` arithmetic
/// as SQLite does: here a skipped duplicate still uses up a sequence
/// value, so `seq` has gaps and `max(seq) - MAX_ROWS` would keep fewer.
const TRIM: &str = "
DELETE FROM research_findings
WHERE seq <= (SELECT seq FROM research_findings ORDER BY seq DESC OFFSET $1 LIMIT 1)";

/// `text` cut to at most `max` bytes, on a character boundary (as the
/// SQLite backend cuts it).
fn clip(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// A finding as stored, or `None` when it has no identity.
fn stored(f: &ResearchFinding, now: i64) -> Option<ResearchFinding> {
    if f.source.is_empty() || f.id.is_empty() {
        return None;
    }
    Some(ResearchFinding {
        source: clip(&f.source, MAX_SHORT_BYTES),
        id: clip(&f.id, MAX_SHORT_BYTES * 2),
        title: clip(&f.title, MAX_TITLE_BYTES),
        url: clip(&f.url, MAX_URL_BYTES),
        summary: clip(&f.summary, MAX_SUMMARY_BYTES),
        topic: clip(&f.topic, MAX_SHORT_BYTES),
        score: f.score.filter(|s| s.is_finite()),
        scored_by: clip(&f.scored_by, MAX_SHORT_BYTES),
        published: clip(&f.published, MAX_SHORT_BYTES),
        agent: clip(&f.agent, MAX_SHORT_BYTES),
        found_at: now,
    })
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Column `i` of `r`, stored as UTF-8 bytes.
fn text(r: &tokio_postgres::Row, i: usize) -> Result<String, StorageError> {
    String::from_utf8(r.try_get(i)?).map_err(|e| StorageError::Corrupt(format!("research_findings column {i}: {e}")))
}

fn finding(r: &tokio_postgres::Row) -> Result<ResearchFinding, StorageError> {
    Ok(ResearchFinding {
        source: text(r, 0)?,
        id: text(r, 1)?,
        title: text(r, 2)?,
        url: text(r, 3)?,
        summary: text(r, 4)?,
        topic: text(r, 5)?,
        score: r.try_get(6)?,
        scored_by: text(r, 7)?,
        published: text(r, 8)?,
        agent: text(r, 9)?,
        found_at: r.try_get(10)?,
    })
}

impl ResearchStore for PostgresStorage {
    fn research_record(&self, findings: &[ResearchFinding], now: i64) -> Result<Vec<ResearchFinding>, StorageError> {
        let rows: Vec<ResearchFinding> = findings.iter().filter_map(|f| stored(f, now)).collect();
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let column = |get: fn(&ResearchFinding) -> &String| rows.iter().map(|f| get(f).as_bytes().to_vec()).collect::<Vec<_>>();
        let columns = [
            column(|f| &f.source),
            column(|f| &f.id),
            column(|f| &f.title),
            column(|f| &f.url),
            column(|f| &f.summary),
            column(|f| &f.topic),
            column(|f| &f.scored_by),
            column(|f| &f.published),
            column(|f| &f.agent),
        ];
        let scores: Vec<Option<f64>> = rows.iter().map(|f| f.score).collect();
        let mut inserted = self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key("research-findings", "")]).await?;
            let [source, id, title, url, summary, topic, scored_by, published, agent] = &columns;
            let keys = tx
                .query(INSERT, &[source, id, title, url, summary, topic, &scores, scored_by, published, agent, &now])
                .await?;
            let keys = keys
                .iter()
                .map(|r| Ok((r.try_get::<_, Vec<u8>>(0)?, r.try_get::<_, Vec<u8>>(1)?)))
                .collect::<Result<HashSet<_>, StorageError>>()?;
            if !keys.is_empty() {
                tx.execute(TRIM, &[&MAX_ROWS]).await?;
            }
            tx.commit().await?;
            Ok(keys)
        })?;
        // The first of the batch's findings with each inserted key is the
        // one stored (later ones were skipped as duplicates).
        Ok(rows.into_iter().filter(|f| inserted.remove(&(f.source.as_bytes().to_vec(), f.id.as_bytes().to_vec()))).collect())
    }

    fn research_findings(&self, limit: u32) -> Result<Vec<ResearchFinding>, StorageError> {
        let limit = i64::from(limit.min(MAX_LIST));
        self.run(move |client| async move {
            let rows = client
                .query(
                    "SELECT source, id, title, url, summary, topic, score, scored_by, published, agent, found_at
                     FROM research_findings ORDER BY seq DESC LIMIT $1",
                    &[&limit],
                )
                .await?;
            rows.iter().map(finding).collect()
        })
    }

    fn research_findings_per_week(&self, weeks: u32) -> Result<Vec<WeekCount>, StorageError> {
        let weeks = i64::from(weeks.clamp(1, MAX_WEEKS));
        let first = week_start(now()) - (weeks - 1) * 7 * 86_400;
        let mut out: Vec<WeekCount> = (0..weeks)
            .map(|i| first + i * 7 * 86_400)
            .map(|w| WeekCount { week: date_of(w), week_start: w, findings: 0, by_source: BTreeMap::new() })
            .collect();
        let rows = self.run(move |client| async move {
            let rows = client
                .query(
                    "SELECT (found_at - $1) / 604800, source, count(*) FROM research_findings
                     WHERE found_at >= $1 GROUP BY 1, 2",
                    &[&first],
                )
                .await?;
            rows.iter()
                .map(|r| Ok((r.try_get::<_, i64>(0)?, text(r, 1)?, r.try_get::<_, i64>(2)?)))
                .collect::<Result<Vec<_>, StorageError>>()
        })?;
        // Findings dated past this week (a clock set back) fall outside,
        // as in SQLite.
        for (index, source, n) in rows {
            if let Some(w) = usize::try_from(index).ok().and_then(|i| out.get_mut(i)) {
                w.findings += n.max(0) as u64;
                *w.by_source.entry(source).or_default() += n.max(0) as u64;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::testing;

    fn finding(source: &str, id: &str) -> ResearchFinding {
        ResearchFinding {
            source: source.into(),
            id: id.into(),
            title: "t".into(),
            url: String::new(),
            summary: String::new(),
            topic: String::new(),
            score: None,
            scored_by: String::new(),
            published: String::new(),
            agent: String::new(),
            found_at: 0,
        }
    }

    /// Each skipped duplicate spends a sequence value: the bound must
    /// count rows, not `seq`s.
    #[test]
    fn the_bound_counts_rows_after_findings_are_seen_again() {
        let Some(url) = testing::fresh_database("research_bound_after_duplicates") else { return };
        let store = PostgresStorage::connect(&url, 2).unwrap();
        let now = now();
        let batch: Vec<_> = (0..MAX_ROWS).map(|i| finding("github", &i.to_string())).collect();
        assert_eq!(store.research_record(&batch, now).unwrap().len(), batch.len());
        assert!(store.research_record(&batch, now).unwrap().is_empty(), "every one seen again");
        assert_eq!(store.research_record(&[finding("arxiv", "new")], now).unwrap().len(), 1);
        let total = store.research_findings_per_week(1).unwrap()[0].findings;
        assert_eq!(total, MAX_ROWS as u64, "only the oldest went");
        assert_eq!(store.research_record(&[finding("github", "0")], now).unwrap().len(), 1, "the oldest");
        assert!(store.research_record(&[finding("github", "2")], now).unwrap().is_empty(), "kept");
    }
}
