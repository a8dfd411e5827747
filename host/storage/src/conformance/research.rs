use crate::Backend;
use crate::research::{
    MAX_LIST, MAX_ROWS, MAX_SHORT_BYTES, MAX_SUMMARY_BYTES, MAX_TITLE_BYTES, MAX_URL_BYTES, MAX_WEEKS, ResearchFinding,
    date_of, week_start,
};

pub(super) const TESTS: &[super::Test] = &[
    ("findings_are_recorded_once_per_source_and_id", findings_are_recorded_once_per_source_and_id),
    ("findings_are_stored_cut_to_their_bounds", findings_are_stored_cut_to_their_bounds),
    ("findings_list_newest_first_with_a_cap", findings_list_newest_first_with_a_cap),
    ("the_table_keeps_the_newest_max_rows", the_table_keeps_the_newest_max_rows),
    ("findings_are_counted_per_week", findings_are_counted_per_week),
];

const WEEK: i64 = 7 * 86_400;

fn finding(source: &str, id: &str) -> ResearchFinding {
    ResearchFinding {
        source: source.into(),
        id: id.into(),
        title: format!("{source} {id}"),
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

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn keys(rows: &[ResearchFinding]) -> Vec<(&str, &str)> {
    rows.iter().map(|f| (f.source.as_str(), f.id.as_str())).collect()
}

fn findings_are_recorded_once_per_source_and_id(store: &dyn Backend) {
    let batch = [finding("arxiv", "1"), finding("arxiv", "2"), finding("github", "1"), finding("arxiv", ""), finding("", "3")];
    let added = store.research_record(&batch, 1_000).unwrap();
    assert_eq!(keys(&added), [("arxiv", "1"), ("arxiv", "2"), ("github", "1")], "no source or no id: not recorded");
    assert_eq!(added[0], ResearchFinding { found_at: 1_000, ..batch[0].clone() }, "returned as stored");
    assert!(store.research_record(&batch, 2_000).unwrap().is_empty(), "seen again: not stored twice");
    // Seen twice in one batch: the first is stored.
    let mut again = finding("arxiv", "4");
    again.title = "second sighting".into();
    let added = store.research_record(&[finding("arxiv", "4"), again, finding("arxiv", "1"), finding("arxiv", "5")], 3_000).unwrap();
    assert_eq!(keys(&added), [("arxiv", "4"), ("arxiv", "5")]);
    let rows = store.research_findings(10).unwrap();
    assert_eq!(keys(&rows), [("arxiv", "5"), ("arxiv", "4"), ("github", "1"), ("arxiv", "2"), ("arxiv", "1")]);
    assert_eq!((rows[1].title.as_str(), rows[1].found_at), ("arxiv 4", 3_000), "the first sighting, kept");
    assert_eq!(rows[4].found_at, 1_000, "a finding keeps the time it was first recorded");
    assert!(store.research_record(&[], 4_000).unwrap().is_empty());
}

fn findings_are_stored_cut_to_their_bounds(store: &dyn Backend) {
    let long = |n: usize| format!("x{}", "é".repeat(n));
    let f = ResearchFinding {
        source: long(MAX_SHORT_BYTES),
        id: "i".repeat(MAX_SHORT_BYTES * 3),
        title: long(MAX_TITLE_BYTES),
        url: "u".repeat(MAX_URL_BYTES + 1),
        summary: long(MAX_SUMMARY_BYTES),
        topic: long(MAX_SHORT_BYTES),
        score: Some(f64::NAN),
        scored_by: "llm".into(),
        published: "p".repeat(MAX_SHORT_BYTES),
        agent: "nul \0 kept? 😀".into(),
        found_at: 0,
    };
    let added = store.research_record(std::slice::from_ref(&f), 5).unwrap();
    let stored = &store.research_findings(1).unwrap()[0];
    assert_eq!(&added[0], stored, "returned as stored");
    // An `é` is two bytes after the leading `x`: an even bound cuts before one.
    assert_eq!(stored.source.len(), MAX_SHORT_BYTES - 1);
    assert_eq!(stored.id.len(), MAX_SHORT_BYTES * 2);
    assert_eq!(stored.title.len(), MAX_TITLE_BYTES - 1);
    assert!(f.title.starts_with(&stored.title));
    assert_eq!(stored.url.len(), MAX_URL_BYTES);
    assert_eq!(stored.summary.len(), MAX_SUMMARY_BYTES - 1);
    assert_eq!(stored.published.len(), MAX_SHORT_BYTES);
    assert_eq!(stored.score, None, "a score that is not a number is not kept");
    // The cut id is the identity: another id with the same first bytes is
    // the same finding.
    let mut same = finding(&stored.source, &format!("{}tail", stored.id));
    same.title = "other".into();
    assert!(store.research_record(&[same], 6).unwrap().is_empty());
}

fn findings_list_newest_first_with_a_cap(store: &dyn Backend) {
    let batch: Vec<_> = (0..MAX_LIST + 5).map(|i| finding("github", &i.to_string())).collect();
    assert_eq!(store.research_record(&batch, 10).unwrap().len(), batch.len());
    store.research_record(&[finding("arxiv", "late")], 20).unwrap();
    let rows = store.research_findings(3).unwrap();
    assert_eq!(keys(&rows), [("arxiv", "late"), ("github", "1004"), ("github", "1003")], "newest first, in the order recorded");
    assert_eq!(store.research_findings(u32::MAX).unwrap().len(), MAX_LIST as usize, "at most MAX_LIST");
    assert!(store.research_findings(0).unwrap().is_empty());
}

fn the_table_keeps_the_newest_max_rows(store: &dyn Backend) {
    let now = now();
    let max = MAX_ROWS as usize;
    let batch: Vec<_> = (0..max).map(|i| finding("github", &i.to_string())).collect();
    assert_eq!(store.research_record(&batch, now).unwrap().len(), max);
    let total = |store: &dyn Backend| store.research_findings_per_week(1).unwrap()[0].findings;
    assert_eq!(total(store), MAX_ROWS as u64);
    let fresh: Vec<_> = (0..5).map(|i| finding("arxiv", &i.to_string())).collect();
    assert_eq!(store.research_record(&fresh, now).unwrap().len(), 5);
    assert_eq!(total(store), MAX_ROWS as u64, "the bound holds");
    // The five oldest went: recorded again they are new (and push out the
    // next five).
    let oldest: Vec<_> = (0..5).map(|i| finding("github", &i.to_string())).collect();
    assert_eq!(store.research_record(&oldest, now).unwrap().len(), 5);
    assert_eq!(total(store), MAX_ROWS as u64);
    assert_eq!(keys(&store.research_findings(2).unwrap()), [("github", "4"), ("github", "3")]);
    assert!(store.research_record(&[finding("github", "10")], now).unwrap().is_empty(), "still stored");
    assert_eq!(store.research_record(&[finding("github", "9")], now).unwrap().len(), 1, "pushed out");
    // Seeing every finding again (what research cycles mostly do) and then
    // a few new ones still keeps MAX_ROWS rows: sequence numbers spent on
    // ignored duplicates do not shrink the table.
    let again: Vec<_> = (100..max).map(|i| finding("github", &i.to_string())).collect();
    assert!(store.research_record(&again, now).unwrap().is_empty());
    let newer: Vec<_> = (5..10).map(|i| finding("arxiv", &i.to_string())).collect();
    assert_eq!(store.research_record(&newer, now).unwrap().len(), 5);
    assert_eq!(total(store), MAX_ROWS as u64, "duplicates seen again do not shrink the table");
}

fn findings_are_counted_per_week(store: &dyn Backend) {
    let this_week = week_start(now());
    let at = |t: i64, source: &str, id: &str| store.research_record(&[finding(source, id)], t).unwrap();
    at(this_week, "arxiv", "1");
    at(this_week + 3_600, "github", "1");
    at(this_week - 1, "arxiv", "2");
    at(this_week - 2 * WEEK + 5, "arxiv", "3");
    at(this_week - 2 * WEEK + 6, "arxiv", "4");
    at(this_week - 4 * WEEK + 7, "arxiv", "too-old");
    let weeks = store.research_findings_per_week(4).unwrap();
    assert_eq!(weeks.len(), 4, "empty weeks included");
    let starts: Vec<i64> = weeks.iter().map(|w| w.week_start).collect();
    assert_eq!(starts, [this_week - 3 * WEEK, this_week - 2 * WEEK, this_week - WEEK, this_week], "oldest first");
    assert_eq!(weeks[3].week, date_of(this_week));
    let counts: Vec<u64> = weeks.iter().map(|w| w.findings).collect();
    assert_eq!(counts, [0, 2, 1, 2]);
    assert_eq!(weeks[3].by_source.iter().map(|(s, n)| (s.as_str(), *n)).collect::<Vec<_>>(), [("arxiv", 1), ("github", 1)]);
    assert_eq!(weeks[1].by_source.len(), 1);
    assert!(weeks[0].by_source.is_empty());
    let one = store.research_findings_per_week(0).unwrap();
    assert_eq!((one.len(), one[0].findings), (1, 2), "at least this week");
    assert_eq!(store.research_findings_per_week(u32::MAX).unwrap().len(), MAX_WEEKS as usize);
}
