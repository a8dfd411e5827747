//! `researcher`: reads arXiv's Atom API for topics, keeps what it finds in
//! memory (deduplicated by arXiv id, bounded), scores each new paper with
//! the LLM when one is configured (keyword scoring otherwise, and says which),
//! and queues the best as reading proposals.
//!
//! Requests: "what's new on arXiv about agents" (fetch that topic), "what
//! are the latest findings" / "proposals" (what is stored, no fetch), or a
//! research cycle from the host: context `{"cycle": true, "topics": [..],
//! "arxiv_url": "..", "max_results": n}`. A context `{"document": "<feed/>",
//! "topic": ".."}` parses a feed passed in instead of fetching it.
//! Without a context a request goes where the host's last cycle went (its
//! settings are remembered), else to `https://export.arxiv.org`.
pub mod atom;
pub mod intent;
pub mod scoring;
pub mod store;

use agentkernel_sdk::http;
use agentkernel_sdk::prelude::*;
use serde_json::json;

use intent::{Intent, Settings};
use store::{Finding, Proposal};

pub struct Researcher;

/// Proposals made from one request, at most.
const MAX_NEW_PROPOSALS: usize = 3;
/// A finding scoring below this is not proposed.
const PROPOSAL_THRESHOLD: f64 = 5.0;

/// Why one topic gave no papers.
#[derive(Debug)]
pub enum FetchError {
    Http { code: String, message: String },
    RateLimited { status: u16 },
    Status(u16),
    Feed(atom::AtomError),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Http { code, message } => write!(f, "http {code}: {message}"),
            FetchError::RateLimited { status } => write!(f, "arXiv is rate limiting us (HTTP {status}); try again later"),
            FetchError::Status(status) => write!(f, "arXiv answered HTTP {status}"),
            // Transparent: the feed's own message.
            FetchError::Feed(e) => std::fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for FetchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Transparent: the feed error's own source.
            FetchError::Feed(e) => std::error::Error::source(e),
            _ => None,
        }
    }
}

impl From<atom::AtomError> for FetchError {
    fn from(e: atom::AtomError) -> Self {
        FetchError::Feed(e)
    }
}

impl FetchError {
    pub fn code(&self) -> String {
        match self {
            FetchError::Http { code, .. } => code.clone(),
            FetchError::RateLimited { .. } => "rate-limited".into(),
            FetchError::Status(_) => "status".into(),
            FetchError::Feed(e) => e.code().into(),
        }
    }
}

/// What fetching one topic gave.
struct TopicOutcome {
    topic: String,
    total_results: Option<u64>,
    result: Result<Vec<atom::Paper>, FetchError>,
}

impl Agent for Researcher {
    fn describe() -> Manifest {
        Manifest::new(
            "researcher",
            "0.1.0",
            "Finds new arXiv papers on topics, remembers what it has seen, scores them (LLM, or keywords offline) and proposes the best to read.",
        )
        .skill(
            Skill::new("arxiv-search", "What is new on arXiv about a topic")
                .keywords(["arxiv", "paper", "papers", "research", "preprint", "publications", "literature"]),
        )
        .skill(
            Skill::new("research-findings", "The latest research findings and reading proposals")
                .keywords(["findings", "proposals", "reading list"]),
        )
        .capability("http", "reads export.arxiv.org's Atom API")
        .capability("memory", "remembers papers already seen and the proposals queue")
        .capability("llm", "scores papers for relevance (keyword scoring without a model)")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let mut settings: Settings = req.context_as().unwrap_or_default();
        remember_or_recall(&mut settings);
        match intent::classify(&req.text, &settings) {
            Intent::List { limit } => list(limit),
            Intent::Parse { document, topic } => {
                let feed = atom::parse(&document).map_err(|e| AgentError::InvalidRequest(format!("{}: {e}", e.code())))?;
                let outcome = TopicOutcome { topic, total_results: feed.total_results, result: Ok(feed.papers) };
                report(vec![outcome], &settings)
            }
            Intent::Search { topics } => {
                let outcomes = topics.iter().map(|t| fetch_topic(&settings, t)).collect();
                report(outcomes, &settings)
            }
        }
    }
}

/// `GET {base}/api/query?search_query=...` for one topic.
fn fetch_topic(settings: &Settings, topic: &str) -> TopicOutcome {
    let url = intent::query_url(&settings.arxiv_base(), topic, settings.max_results());
    let result = (|| {
        let page = http::get(&url).map_err(|e| FetchError::Http { code: e.code().into(), message: format!("{e:?}") })?;
        match page.status {
            200 => Ok(atom::parse(&page.text())?),
            429 | 503 => Err(FetchError::RateLimited { status: page.status }),
            s => Err(FetchError::Status(s)),
        }
    })();
    match result {
        Ok(feed) => TopicOutcome { topic: topic.into(), total_results: feed.total_results, result: Ok(feed.papers) },
        Err(e) => {
            log::warn(&format!("arXiv {topic:?}: {e}"));
            TopicOutcome { topic: topic.into(), total_results: None, result: Err(e) }
        }
    }
}

/// The last cycle's settings, kept so a person's request later goes where
/// the host's cycle went (`[research] arxiv_url`) and to its topics.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Remembered {
    arxiv_url: Option<String>,
    topics: Vec<String>,
    max_results: Option<u32>,
}

fn remember_or_recall(settings: &mut Settings) {
    if settings.cycle {
        let r = Remembered { arxiv_url: settings.arxiv_url.clone(), topics: settings.topics.clone(), max_results: settings.max_results };
        if let Err(e) = memory::set_string("settings", &serde_json::to_string(&r).unwrap_or_default()) {
            log::warn(&format!("could not keep the cycle's settings: {e:?}"));
        }
    } else if let Ok(Some(raw)) = memory::get_string("settings") {
        if let Ok(r) = serde_json::from_str::<Remembered>(&raw) {
            settings.arxiv_url = settings.arxiv_url.take().or(r.arxiv_url);
            if settings.topics.is_empty() {
                settings.topics = r.topics;
            }
            settings.max_results = settings.max_results.or(r.max_results);
        }
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Papers → findings, scored (the model for the new ones when it answers).
fn score(outcomes: &[TopicOutcome], topics: &[String]) -> (Vec<Finding>, String) {
    let seen = store::seen_ids().unwrap_or_default();
    let now = now_secs();
    let mut findings: Vec<Finding> = Vec::new();
    for o in outcomes {
        for p in o.result.iter().flatten() {
            if findings.iter().any(|f| f.id == p.id) {
                continue;
            }
            let s = scoring::keyword_score(&o.topic, &p.title, &p.summary);
            let mut tags: Vec<String> = p.categories.clone();
            if let Some(c) = &p.primary_category {
                if !tags.contains(c) {
                    tags.insert(0, c.clone());
                }
            }
            findings.push(Finding {
                source: "arxiv".into(),
                id: p.id.clone(),
                title: p.title.clone(),
                url: p.url.clone(),
                summary: p.summary.clone(),
                published: p.published.clone(),
                topic: o.topic.clone(),
                score: s.score,
                scored_by: s.by,
                reason: s.reason,
                tags,
                authors: p.authors.clone(),
                found_at: now,
            });
        }
    }
    let unseen: Vec<scoring::Scorable> = findings
        .iter()
        .filter(|f| !seen.contains(&f.id))
        .map(|f| scoring::Scorable { id: &f.id, title: &f.title, summary: &f.summary })
        .collect();
    if unseen.is_empty() {
        return (findings, "keywords".into());
    }
    match scoring::llm_scores(topics, &unseen) {
        Ok(scores) => {
            for f in findings.iter_mut() {
                if let Some((_, s)) = scores.iter().find(|(id, _)| *id == f.id) {
                    (f.score, f.scored_by, f.reason) = (s.score, s.by.clone(), s.reason.clone());
                }
            }
            (findings, "llm".into())
        }
        Err(why) => {
            log::info(&format!("keyword scoring: {why}"));
            (findings, format!("keywords ({why})"))
        }
    }
}

fn report(outcomes: Vec<TopicOutcome>, settings: &Settings) -> Result<Response, AgentError> {
    let topics: Vec<String> = outcomes.iter().map(|o| o.topic.clone()).collect();
    let (findings, scoring) = score(&outcomes, &topics);
    let fetched = findings.len();
    let mut new = store::add_new(findings.clone()).map_err(|e| AgentError::CapabilityFailed(e.to_string()))?;
    new.sort_by(|a, b| b.score.total_cmp(&a.score));
    let proposals: Vec<Proposal> = new
        .iter()
        .filter(|f| f.score >= PROPOSAL_THRESHOLD)
        .take(MAX_NEW_PROPOSALS)
        .map(|f| Proposal::of(f, "Read"))
        .collect();
    store::queue_proposals(&proposals).map_err(|e| AgentError::CapabilityFailed(e.to_string()))?;
    let errors: Vec<_> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err().map(|e| json!({"topic": o.topic, "code": e.code(), "message": e.to_string()})))
        .collect();
    let outcome = match (errors.len(), outcomes.len()) {
        (0, _) => "ok".to_string(),
        (e, n) if e == n => errors[0]["code"].as_str().unwrap_or("failed").to_string(),
        _ => "partial".to_string(),
    };
    let text = summary_text(&outcomes, &new, &findings, &proposals, &scoring);
    // A cycle returns everything fetched (the host dedupes by id); a person gets the new ones.
    let returned = if settings.cycle { &findings } else { &new };
    let totals: Vec<_> = outcomes.iter().map(|o| json!({"topic": o.topic, "total_results": o.total_results})).collect();
    Ok(Response::text(text).with_data(&json!({
        "source": "arxiv",
        "outcome": outcome,
        "scoring": scoring,
        "fetched": fetched,
        "new": new.len(),
        "findings": returned,
        "proposals": proposals,
        "errors": errors,
        "topics": totals,
    })))
}

fn summary_text(outcomes: &[TopicOutcome], new: &[Finding], all: &[Finding], proposals: &[Proposal], scoring: &str) -> String {
    let fetched = all.len();
    let topics: Vec<String> = outcomes.iter().map(|o| format!("\"{}\"", o.topic)).collect();
    let mut text = format!(
        "arXiv on {}: {} new paper{} ({} already seen; scored by {scoring}).",
        topics.join(", "),
        new.len(),
        if new.len() == 1 { "" } else { "s" },
        fetched - new.len(),
    );
    for o in outcomes {
        match &o.result {
            Err(e) => text.push_str(&format!("\n- {}: {e}", o.topic)),
            Ok(p) if p.is_empty() => text.push_str(&format!("\n- {}: no papers match.", o.topic)),
            Ok(_) => {}
        }
    }
    for f in new.iter().take(10) {
        text.push_str(&format!("\n{:.1}  {} ({}) {}", f.score, f.title, f.published.get(..10).unwrap_or(""), f.url));
    }
    if new.is_empty() && !all.is_empty() {
        // Nothing new: still answer with the best of what matched.
        let mut known: Vec<&Finding> = all.iter().collect();
        known.sort_by(|a, b| b.score.total_cmp(&a.score));
        text.push_str("\nNothing new since last time; the best of what matches:");
        for f in known.into_iter().take(5) {
            text.push_str(&format!("\n{:.1}  {} ({}) {}", f.score, f.title, f.published.get(..10).unwrap_or(""), f.url));
        }
    }
    for p in proposals {
        text.push_str(&format!("\nProposal: {}", p.text));
    }
    text
}

/// What is stored: the newest findings and the proposals queue.
fn list(limit: usize) -> Result<Response, AgentError> {
    let findings = store::latest(limit).map_err(|e| AgentError::CapabilityFailed(e.to_string()))?;
    let proposals = store::queue_proposals(&[]).map_err(|e| AgentError::CapabilityFailed(e.to_string()))?;
    let mut text = if findings.is_empty() {
        "No arXiv findings yet: ask \"what's new on arXiv about agents\".".to_string()
    } else {
        format!("The latest {} arXiv findings:", findings.len())
    };
    for f in &findings {
        text.push_str(&format!("\n{:.1}  {} [{}] {}", f.score, f.title, f.topic, f.url));
    }
    for p in proposals.iter().rev().take(5) {
        text.push_str(&format!("\nProposal: {}", p.text));
    }
    Ok(Response::text(text).with_data(&json!({"source": "arxiv", "outcome": "ok", "findings": findings, "proposals": proposals})))
}

export_agent!(Researcher);
