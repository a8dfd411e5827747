//! PostgreSQL: `StatsStore`. Owns `activity_hourly`; reads `llm_usage`
//! (the memory module's), `agent_installs` (the evolution module's) and
//! `chat_turns` (the sessions module's), which the migration creates first.
use std::collections::BTreeMap;

use super::PostgresStorage;
use crate::StorageError;
use crate::evolution::InstallRecord;
use crate::stats::{ACTIVITY_RETENTION_SECS, ActivityCount, DailySpend, StatsStore};

/// Text columns collate as "C" (byte order, as SQLite's BINARY), so buckets
/// list in the same order on both backends whatever the database's locale.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS activity_hourly (
    hour    BIGINT NOT NULL,
    kind    TEXT COLLATE "C" NOT NULL,
    subject TEXT COLLATE "C" NOT NULL,
    outcome TEXT COLLATE "C" NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (hour, kind, subject, outcome)
);
"#;

/// A bucket's key: (hour, kind, subject, outcome).
type Bucket = (i64, String, String, String);

impl StatsStore for PostgresStorage {
    fn activity_add(&self, counts: &[ActivityCount], now: i64) -> Result<(), StorageError> {
        // Summed per bucket first: one upsert statement may not touch a row
        // twice. Sorted, so two hosts adding to the same buckets lock their
        // rows in the same order (no deadlock); the upsert itself is atomic.
        let mut buckets: BTreeMap<Bucket, i64> = BTreeMap::new();
        for c in counts {
            let n = buckets.entry((c.hour, c.kind.clone(), c.subject.clone(), c.outcome.clone())).or_default();
            *n = n.saturating_add(c.n as i64);
        }
        let (mut hours, mut kinds, mut subjects, mut outcomes, mut ns) = (vec![], vec![], vec![], vec![], vec![]);
        for ((hour, kind, subject, outcome), n) in buckets {
            hours.push(hour);
            kinds.push(kind);
            subjects.push(subject);
            outcomes.push(outcome);
            ns.push(n);
        }
        let cutoff = now - ACTIVITY_RETENTION_SECS;
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            if !hours.is_empty() {
                tx.execute(
                    "INSERT INTO activity_hourly (hour, kind, subject, outcome, n)
                     SELECT * FROM unnest($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[])
                     ON CONFLICT (hour, kind, subject, outcome) DO UPDATE SET n = activity_hourly.n + excluded.n",
                    &[&hours, &kinds, &subjects, &outcomes, &ns],
                )
                .await?;
            }
            tx.execute("DELETE FROM activity_hourly WHERE hour < $1", &[&cutoff]).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn activity_since(&self, since: i64, limit: u32) -> Result<Vec<ActivityCount>, StorageError> {
        self.run(move |client| async move {
            let rows = client
                .query(
                    "SELECT hour, kind, subject, outcome, n FROM activity_hourly WHERE hour >= $1
                     ORDER BY hour, kind, subject, outcome LIMIT $2",
                    &[&since, &i64::from(limit)],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(ActivityCount {
                        hour: r.try_get(0)?,
                        kind: r.try_get(1)?,
                        subject: r.try_get(2)?,
                        outcome: r.try_get(3)?,
                        n: r.try_get::<_, i64>(4)?.max(0) as u64,
                    })
                })
                .collect()
        })
    }

    fn llm_spend_by_day(&self, since: i64, limit: u32) -> Result<Vec<DailySpend>, StorageError> {
        self.run(move |client| async move {
            // Integer division truncates as SQLite's does. SUM of BIGINT is
            // NUMERIC here: cast back. Agents in byte order, as in SQLite.
            let rows = client
                .query(
                    r#"SELECT (at / 86400) * 86400 AS day, agent, count(*),
                              COALESCE(sum(prompt_tokens + completion_tokens), 0)::BIGINT,
                              COALESCE(sum(cost_usd), 0.0)::DOUBLE PRECISION,
                              count(*) FILTER (WHERE cost_usd IS NULL)
                       FROM llm_usage WHERE at >= $1
                       GROUP BY day, agent ORDER BY day, agent COLLATE "C" LIMIT $2"#,
                    &[&since, &i64::from(limit)],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(DailySpend {
                        day: r.try_get(0)?,
                        agent: r.try_get(1)?,
                        calls: r.try_get::<_, i64>(2)?.max(0) as u64,
                        tokens: r.try_get::<_, i64>(3)?.max(0) as u64,
                        cost_usd: r.try_get(4)?,
                        unpriced_calls: r.try_get::<_, i64>(5)?.max(0) as u64,
                    })
                })
                .collect()
        })
    }

    fn installs_since(&self, since: i64, limit: u32) -> Result<Vec<InstallRecord>, StorageError> {
        self.run(move |client| async move {
            let rows = client
                .query(
                    "SELECT agent, hash, reason, at FROM agent_installs WHERE at >= $1 ORDER BY id LIMIT $2",
                    &[&since, &i64::from(limit)],
                )
                .await?;
            rows.iter()
                .map(|r| Ok(InstallRecord { agent: r.try_get(0)?, hash: r.try_get(1)?, reason: r.try_get(2)?, at: r.try_get(3)? }))
                .collect()
        })
    }

    fn chat_answers_since(&self, since: i64) -> Result<u64, StorageError> {
        let since_ms = since.saturating_mul(1000);
        self.run(move |client| async move {
            let n: i64 = client
                .query_one("SELECT count(*) FROM chat_turns WHERE at_ms >= $1 AND role = 'assistant'", &[&since_ms])
                .await?
                .try_get(0)?;
            Ok(n.max(0) as u64)
        })
    }
}
