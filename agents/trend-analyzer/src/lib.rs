//! `trend-analyzer`: asks `researcher` and `open-source-explorer` for their
//! stored findings (through `agents`), counts them per week by topic, label
//! (arXiv category, language, GitHub topic) and title keyword, and says
//! what is rising. Works without a model. A context `{"findings": [..]}`
//! aggregates the findings given instead of asking the fetchers.
pub mod trends;

use agentkernel_sdk::agents;
use agentkernel_sdk::prelude::*;
use serde::Deserialize;
use serde_json::json;

use trends::{Finding, Trends};

pub struct TrendAnalyzer;

/// The agents asked for findings, and how many each is asked for.
pub const SOURCES: &[&str] = &["researcher", "open-source-explorer"];
const FINDINGS_PER_SOURCE: usize = 50;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Settings {
    findings: Option<Vec<Finding>>,
    sources: Option<Vec<String>>,
}

impl Agent for TrendAnalyzer {
    fn describe() -> Manifest {
        Manifest::new(
            "trend-analyzer",
            "0.1.0",
            "Aggregates the research findings of researcher and open-source-explorer per week and says which topics, categories, languages and keywords are rising (no model needed).",
        )
        .skill(
            Skill::new("research-trends", "What is rising in research and open source, week by week")
                .keywords(["trend", "trends", "trending topics", "rising", "weekly", "aggregate", "what is rising"]),
        )
        .capability("agents", "asks researcher and open-source-explorer for their stored findings")
        .capability("memory", "keeps the last analysis")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let settings: Settings = req.context_as().unwrap_or_default();
        let mut notes: Vec<String> = Vec::new();
        let findings = match settings.findings {
            Some(given) => given,
            None => {
                let sources: Vec<String> = settings
                    .sources
                    .unwrap_or_else(|| SOURCES.iter().map(|s| s.to_string()).collect())
                    .into_iter()
                    .take(4)
                    .collect();
                collect(&req.session_id, &sources, &mut notes)
            }
        };
        let analysis = trends::analyze(&findings);
        let text = describe(&analysis, &notes);
        let data = json!({"trends": analysis, "unavailable": notes});
        // The last analysis, for a person asking again without the fetchers.
        if let Err(e) = memory::set_string("last", &data.to_string()) {
            log::warn(&format!("could not keep the analysis: {e:?}"));
        }
        Ok(Response::text(text).with_data(&data))
    }
}

/// The stored findings of each source; a source that fails is noted, not fatal.
fn collect(session: &str, sources: &[String], notes: &mut Vec<String>) -> Vec<Finding> {
    let mut all = Vec::new();
    for source in sources {
        let request = Request {
            session_id: session.to_string(),
            text: "list your latest findings".into(),
            history: Vec::new(),
            context: Some(json!({"list": true, "limit": FINDINGS_PER_SOURCE}).to_string()),
        };
        match agents::call(source, &request) {
            Ok(response) => {
                let found = response
                    .data
                    .as_deref()
                    .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                    .and_then(|v| serde_json::from_value::<Vec<Finding>>(v.get("findings")?.clone()).ok());
                match found {
                    Some(f) => all.extend(f.into_iter().take(FINDINGS_PER_SOURCE)),
                    None => notes.push(format!("{source}: its answer had no findings list")),
                }
            }
            Err(e) => notes.push(format!("{source}: {} ({e:?})", e.code())),
        }
    }
    all
}

fn describe(t: &Trends, notes: &[String]) -> String {
    let mut text = if t.findings == 0 {
        "No findings to analyse yet: run a research cycle (`agentkernel research run`) or ask researcher and open-source-explorer first.".to_string()
    } else {
        format!("Trends over {} findings in {} week(s):", t.findings, t.weeks.len())
    };
    for w in t.weeks.iter().take(4) {
        let top: Vec<String> = w.top.iter().take(5).map(|(term, n)| format!("{term} {n}")).collect();
        text.push_str(&format!("\n- week of {}: {} finding(s); {}", w.week, w.findings, top.join(", ")));
    }
    if !t.rising.is_empty() {
        let rising: Vec<String> =
            t.rising.iter().take(6).map(|r| format!("{} ({} → {})", r.term, r.week_before, r.this_week)).collect();
        text.push_str(&format!("\nRising: {}.", rising.join(", ")));
    } else if t.findings > 0 {
        text.push_str("\nNothing is rising against the week before.");
    }
    for n in notes {
        text.push_str(&format!("\n(unavailable: {n})"));
    }
    text
}

export_agent!(TrendAnalyzer);
