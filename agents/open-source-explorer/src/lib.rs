//! `open-source-explorer`: searches GitHub for repositories on topics
//! (trending: recently pushed, by stars), follows pagination up to a cap,
//! stops politely when the rate limit is spent, keeps what it finds in
//! memory (deduplicated by full name, bounded), scores new repositories with
//! the LLM when one is configured (keyword scoring otherwise, and says
//! which), and queues the best as proposals to look at.
//!
//! Requests: "find trending Rust wasm repositories", "what are the latest
//! findings", or a host research cycle: context `{"cycle": true, "topics":
//! [..], "github_url": "..", "max_results": n}`. A context `{"document":
//! "<search JSON>", "topic": ".."}` reads an answer passed in instead.
//! Without a context a request goes where the host's last cycle went (its
//! settings are remembered), else to `https://api.github.com`.
pub mod github;
pub mod intent;
pub mod scoring;
pub mod store;

use agentkernel_sdk::http::{self, Header, HttpRequest};
use agentkernel_sdk::prelude::*;
use serde_json::json;

use github::{GithubError, Page, Repo, SearchOutcome};
use intent::{Intent, Settings};
use store::{Finding, Proposal};

pub struct Explorer;

const MAX_NEW_PROPOSALS: usize = 3;
const PROPOSAL_THRESHOLD: f64 = 5.0;

/// One topic's search.
struct TopicOutcome {
    topic: String,
    search: SearchOutcome,
}

impl Agent for Explorer {
    fn describe() -> Manifest {
        Manifest::new(
            "open-source-explorer",
            "0.1.0",
            "Finds trending GitHub repositories on topics, remembers what it has seen, scores them (LLM, or keywords offline) and proposes the best to look at.",
        )
        .skill(
            Skill::new("github-search", "Trending open-source repositories on a topic")
                .keywords(["github", "repository", "repositories", "repos", "open source", "open-source", "trending", "stars"]),
        )
        .skill(Skill::new("open-source-findings", "The latest open-source findings and proposals").keywords(["findings", "proposals"]))
        .capability("http", "reads api.github.com's search API")
        .capability("memory", "remembers repositories already seen and the proposals queue")
        .capability("llm", "scores repositories for relevance (keyword scoring without a model)")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let mut settings: Settings = req.context_as().unwrap_or_default();
        remember_or_recall(&mut settings);
        match intent::classify(&req.text, &settings) {
            Intent::List { limit } => list(limit),
            Intent::Parse { document, topic } => {
                let base = settings.github_base();
                let search = github::search(&base, "document".into(), |_| {
                    Ok(Page { status: 200, headers: Vec::new(), body: document.as_bytes().to_vec() })
                });
                if let Some(e) = &search.stopped {
                    return Err(AgentError::InvalidRequest(format!("{}: {e}", e.code())));
                }
                report(vec![TopicOutcome { topic, search }], &settings)
            }
            Intent::Search { topics, trending } => {
                let now = now_secs();
                let base = settings.github_base();
                let mut outcomes: Vec<TopicOutcome> = Vec::new();
                for topic in topics {
                    // One rate-limit answer covers every later topic too.
                    if let Some(limited) = outcomes.iter().find_map(|o| o.search.stopped.clone().filter(|e| e.code() == "rate-limited")) {
                        outcomes.push(TopicOutcome { topic, search: SearchOutcome { stopped: Some(limited), ..Default::default() } });
                        continue;
                    }
                    let url = github::search_url(&base, &intent::query(&topic, trending, now), settings.per_page());
                    let search = github::search(&base, url, get);
                    outcomes.push(TopicOutcome { topic, search });
                }
                report(outcomes, &settings)
            }
        }
    }
}

/// One GET with the headers GitHub asks API clients to send.
fn get(url: &str) -> Result<Page, GithubError> {
    let header = |n: &str, v: &str| Header { name: n.into(), value: v.into() };
    let request = HttpRequest {
        method: "GET".into(),
        url: url.into(),
        headers: vec![
            header("accept", "application/vnd.github+json"),
            header("x-github-api-version", "2022-11-28"),
            header("user-agent", "agentkernel-open-source-explorer"),
        ],
        body: None,
        timeout_ms: None,
    };
    let r = http::fetch(&request).map_err(|e| GithubError::Http { code: e.code().into(), message: format!("{e:?}") })?;
    Ok(Page { status: r.status, headers: r.headers.into_iter().map(|h| (h.name, h.value)).collect(), body: r.body })
}

/// The last cycle's settings, kept so a person's request later goes where
/// the host's cycle went (`[research] github_url`) and to its topics.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Remembered {
    github_url: Option<String>,
    topics: Vec<String>,
    max_results: Option<u32>,
}

fn remember_or_recall(settings: &mut Settings) {
    if settings.cycle {
        let r = Remembered { github_url: settings.github_url.clone(), topics: settings.topics.clone(), max_results: settings.max_results };
        if let Err(e) = memory::set_string("settings", &serde_json::to_string(&r).unwrap_or_default()) {
            log::warn(&format!("could not keep the cycle's settings: {e:?}"));
        }
    } else if let Ok(Some(raw)) = memory::get_string("settings") {
        if let Ok(r) = serde_json::from_str::<Remembered>(&raw) {
            settings.github_url = settings.github_url.take().or(r.github_url);
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

fn finding(topic: &str, r: &Repo, now: i64) -> Finding {
    let s = scoring::keyword_score(topic, &format!("{} {}", r.full_name.replace(['/', '-', '_'], " "), r.topics.join(" ")), &r.description);
    let mut tags: Vec<String> = r.language.iter().map(|l| format!("lang:{}", l.to_lowercase())).collect();
    tags.extend(r.topics.iter().cloned());
    Finding {
        source: "github".into(),
        id: r.full_name.clone(),
        title: r.full_name.clone(),
        url: r.url.clone(),
        summary: format!("{} ★{}{}", r.description, r.stars, r.language.as_ref().map(|l| format!(" · {l}")).unwrap_or_default()),
        published: r.pushed_at.clone(),
        topic: topic.into(),
        // Stars add up to one point: popular, not only on topic.
        score: (s.score + (r.stars as f64).log10().clamp(0.0, 5.0) / 5.0).min(10.0),
        scored_by: s.by,
        reason: s.reason,
        tags,
        authors: Vec::new(),
        found_at: now,
    }
}

/// Repositories → findings, scored (the model for the new ones when it answers).
fn score(outcomes: &[TopicOutcome], topics: &[String]) -> (Vec<Finding>, String) {
    let seen = store::seen_ids().unwrap_or_default();
    let now = now_secs();
    let mut findings: Vec<Finding> = Vec::new();
    for o in outcomes {
        for r in &o.search.repos {
            if !findings.iter().any(|f| f.id == r.full_name) {
                findings.push(finding(&o.topic, r, now));
            }
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
        .map(|f| Proposal::of(f, "Look at"))
        .collect();
    store::queue_proposals(&proposals).map_err(|e| AgentError::CapabilityFailed(e.to_string()))?;
    let errors: Vec<_> = outcomes
        .iter()
        .filter_map(|o| o.search.stopped.as_ref().map(|e| json!({"topic": o.topic, "code": e.code(), "message": e.to_string()})))
        .collect();
    let failed_without_results = outcomes.iter().all(|o| o.search.stopped.is_some() && o.search.repos.is_empty());
    let outcome = match errors.first() {
        None => "ok".to_string(),
        Some(e) if failed_without_results => e["code"].as_str().unwrap_or("failed").to_string(),
        Some(_) => "partial".to_string(),
    };
    let text = summary_text(&outcomes, &new, &findings, &proposals, &scoring);
    let returned = if settings.cycle { &findings } else { &new };
    let searches: Vec<_> = outcomes
        .iter()
        .map(|o| json!({"topic": o.topic, "total_count": o.search.total_count, "incomplete_results": o.search.incomplete_results, "pages": o.search.pages}))
        .collect();
    Ok(Response::text(text).with_data(&json!({
        "source": "github",
        "outcome": outcome,
        "scoring": scoring,
        "fetched": fetched,
        "new": new.len(),
        "findings": returned,
        "proposals": proposals,
        "errors": errors,
        "searches": searches,
    })))
}

fn summary_text(outcomes: &[TopicOutcome], new: &[Finding], all: &[Finding], proposals: &[Proposal], scoring: &str) -> String {
    let fetched = all.len();
    let topics: Vec<String> = outcomes.iter().map(|o| format!("\"{}\"", o.topic)).collect();
    let mut text = format!(
        "GitHub on {}: {} new repositor{} ({} already seen; scored by {scoring}).",
        topics.join(", "),
        new.len(),
        if new.len() == 1 { "y" } else { "ies" },
        fetched - new.len(),
    );
    for o in outcomes {
        match &o.search.stopped {
            Some(e @ GithubError::RateLimited { .. }) => {
                text.push_str(&format!("\n- {}: stopped, {e}; kept the {} found before.", o.topic, o.search.repos.len()))
            }
            Some(e) => text.push_str(&format!("\n- {}: {e}", o.topic)),
            None if o.search.repos.is_empty() => text.push_str(&format!("\n- {}: no repositories match.", o.topic)),
            None => {}
        }
    }
    for f in new.iter().take(10) {
        text.push_str(&format!("\n{:.1}  {} — {} {}", f.score, f.title, scoring::clip(&f.summary, 120), f.url));
    }
    if new.is_empty() && !all.is_empty() {
        // Nothing new: still answer with the best of what matched.
        let mut known: Vec<&Finding> = all.iter().collect();
        known.sort_by(|a, b| b.score.total_cmp(&a.score));
        text.push_str("\nNothing new since last time; the best of what matches:");
        for f in known.into_iter().take(5) {
            text.push_str(&format!("\n{:.1}  {} — {} {}", f.score, f.title, scoring::clip(&f.summary, 120), f.url));
        }
    }
    for p in proposals {
        text.push_str(&format!("\nProposal: {}", p.text));
    }
    text
}

fn list(limit: usize) -> Result<Response, AgentError> {
    let findings = store::latest(limit).map_err(|e| AgentError::CapabilityFailed(e.to_string()))?;
    let proposals = store::queue_proposals(&[]).map_err(|e| AgentError::CapabilityFailed(e.to_string()))?;
    let mut text = if findings.is_empty() {
        "No GitHub findings yet: ask \"find trending Rust wasm repositories\".".to_string()
    } else {
        format!("The latest {} GitHub findings:", findings.len())
    };
    for f in &findings {
        text.push_str(&format!("\n{:.1}  {} [{}] {}", f.score, f.title, f.topic, f.url));
    }
    for p in proposals.iter().rev().take(5) {
        text.push_str(&format!("\nProposal: {}", p.text));
    }
    Ok(Response::text(text).with_data(&json!({"source": "github", "outcome": "ok", "findings": findings, "proposals": proposals})))
}

export_agent!(Explorer);
