//! Candidate generators: `dir:PATH` (sources written by a person or another
//! tool) and `llm` (a model edits the current source).
mod dir;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use self::dir::DirGenerator;

use super::source_check::CandidateSource;
use super::suite::Case;
use agentkernel_runtime::bindings::agentkernel::agent::llm::{ChatMessage, ChatOptions, ResponseFormat};
use agentkernel_llm::{LlmCaller, LlmScope, LlmService};

/// One proposed candidate.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Short name for reports (`faster-correct`, `llm-2-1`).
    pub label: String,
    /// Lineage origin (`dir:PATH/NAME`, `llm:MODEL`).
    pub origin: String,
    /// The sources, or why none could be produced.
    pub source: Result<CandidateSource, String>,
}

/// What a generator sees: the parent, the visible cases and how the last
/// round did on them. Held-out cases never reach a generator.
pub struct Context<'a> {
    pub agent: &'a str,
    pub generation: u32,
    pub count: usize,
    pub parent: &'a CandidateSource,
    pub visible_cases: Vec<&'a Case>,
    /// Lines such as `case small: passed, fuel 1234` for the parent and
    /// last round's candidates (visible cases only).
    pub feedback: Vec<String>,
    /// For a new agent (`create`): what it should do.
    pub spec: Option<&'a str>,
}

#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct LlmUsageTotals {
    pub calls: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
}

pub enum Generator {
    Dir(DirGenerator),
    Llm(LlmGenerator),
}

impl Generator {
    pub fn name(&self) -> String {
        match self {
            Generator::Dir(d) => format!("dir:{}", d.dir.display()),
            Generator::Llm(_) => "llm".into(),
        }
    }

    pub async fn generate(&mut self, ctx: &Context<'_>) -> Result<Vec<Candidate>, String> {
        match self {
            Generator::Dir(d) => Ok(d.next(ctx.count).await),
            Generator::Llm(l) => l.generate(ctx).await,
        }
    }

    /// A fix for `candidate` given its compiler errors, if this generator repairs.
    pub async fn repair(&mut self, ctx: &Context<'_>, candidate: &Candidate, errors: &str) -> Option<Candidate> {
        match self {
            Generator::Dir(_) => None,
            Generator::Llm(l) => l.repair(ctx, candidate, errors).await,
        }
    }

    /// Skips what an interrupted run already consumed.
    pub fn skip(&mut self, n: usize) {
        if let Generator::Dir(d) = self {
            d.position = d.position.saturating_add(n).min(d.entries.len());
        }
    }

    pub fn usage(&self) -> LlmUsageTotals {
        match self {
            Generator::Dir(_) => LlmUsageTotals::default(),
            Generator::Llm(l) => l.usage.clone(),
        }
    }

    pub fn exhausted(&self) -> bool {
        match self {
            Generator::Dir(d) => d.position >= d.entries.len(),
            Generator::Llm(l) => l.budget_left().is_err(),
        }
    }
}

/// Limits on the LLM generator.
#[derive(Debug, Clone, Serialize)]
pub struct LlmGeneratorSettings {
    pub profile: String,
    pub max_tokens_per_evolution: u64,
    pub max_usd_per_evolution: f64,
    pub max_completion_tokens: u32,
    pub temperature: f32,
}

/// Asks a model (through the host's [`LlmService`]) for new versions of
/// the parent: whole files or SEARCH/REPLACE edits, across several files.
pub struct LlmGenerator {
    service: std::sync::Arc<LlmService>,
    settings: LlmGeneratorSettings,
    pub usage: LlmUsageTotals,
    ledger_agent: String,
    sdk_summary: String,
}

impl LlmGenerator {
    pub fn new(service: std::sync::Arc<LlmService>, settings: LlmGeneratorSettings, agent: &str, sdk_summary: String) -> Self {
        LlmGenerator { service, settings, usage: LlmUsageTotals::default(), ledger_agent: format!("evolve:{agent}"), sdk_summary }
    }

    fn budget_left(&self) -> Result<(), String> {
        let tokens = self.usage.prompt_tokens + self.usage.completion_tokens;
        if tokens >= self.settings.max_tokens_per_evolution {
            return Err(format!("token cap reached ({tokens} of {})", self.settings.max_tokens_per_evolution));
        }
        if self.usage.cost_usd >= self.settings.max_usd_per_evolution {
            return Err(format!("cost cap reached (${:.4} of ${})", self.usage.cost_usd, self.settings.max_usd_per_evolution));
        }
        Ok(())
    }

    async fn ask(&mut self, messages: Vec<ChatMessage>) -> Result<String, String> {
        self.budget_left()?;
        let scope = LlmScope::default();
        let caller = LlmCaller {
            agent: &self.ledger_agent,
            session: "evolve",
            scope: &scope,
            deadline: std::time::Instant::now() + std::time::Duration::from_secs(300),
            request: None,
        };
        let options = ChatOptions {
            profile: self.settings.profile.clone(),
            temperature: Some(self.settings.temperature),
            max_tokens: Some(self.settings.max_completion_tokens),
            response_format: ResponseFormat::Text,
            tools: vec![],
        };
        let reply = self.service.chat(&caller, messages, options).await.map_err(|e| format!("LLM: {} ({e:?})", agentkernel_llm::error_code(&e)))?;
        self.usage.calls += 1;
        self.usage.prompt_tokens += u64::from(reply.usage.prompt_tokens);
        self.usage.completion_tokens += u64::from(reply.usage.completion_tokens);
        if let Some(p) = self.service.config().prices.get(&reply.model) {
            self.usage.cost_usd += (f64::from(reply.usage.prompt_tokens) * p.prompt
                + f64::from(reply.usage.completion_tokens) * p.completion)
                / 1_000_000.0;
        }
        Ok(reply.content)
    }

    fn system_prompt(&self) -> String {
        format!(
            "You improve agentkernel agents: Rust crates compiled to WebAssembly components.\n\
             Goal: keep every answer exactly right and make the agent cheaper (fuel = executed instructions).\n\
             Rules: you supply files under src/ only; dependencies are agentkernel-sdk, serde and serde_json; \
             no include!/include_str!/include_bytes!/env!/option_env!/asm!, no #[path], no #![feature], no #[link], \
             no build scripts. Keep the agent's name and its describe().\n\n\
             Answer with either whole files:\n```rust src/lib.rs\n<entire file>\n```\n\
             or edits, each one a path line followed by:\n<<<<<<< SEARCH\n<exact existing lines>\n=======\n<replacement>\n>>>>>>> REPLACE\n\n\
             SDK summary:\n{}",
            self.sdk_summary
        )
    }

    fn user_prompt(ctx: &Context<'_>) -> String {
        let mut p = match ctx.spec {
            Some(spec) => format!("Write a new agent named `{}` that does this:\n{spec}\n\nStart from this template:\n", ctx.agent),
            None => format!("Agent `{}`, generation {}. Current source:\n", ctx.agent, ctx.generation),
        };
        for (path, text) in &ctx.parent.files {
            p.push_str(&format!("```rust src/{path}\n{text}\n```\n"));
        }
        p.push_str("\nCases it must pass (request → expectation):\n");
        for c in &ctx.visible_cases {
            p.push_str(&format!("- {}: {:?} → {}\n", c.name, c.request, serde_json::to_string(&c.expect).unwrap_or_default()));
        }
        if !ctx.feedback.is_empty() {
            p.push_str("\nLast round (failures and fuel per case):\n");
            for f in &ctx.feedback {
                p.push_str(&format!("- {f}\n"));
            }
        }
        p.push_str("\nReply with one improved version.");
        p
    }

    async fn generate(&mut self, ctx: &Context<'_>) -> Result<Vec<Candidate>, String> {
        let mut out = Vec::new();
        for i in 0..ctx.count {
            if let Err(e) = self.budget_left() {
                if out.is_empty() {
                    return Err(e);
                }
                break;
            }
            let messages = vec![
                ChatMessage { role: "system".into(), content: self.system_prompt(), tool_call_id: None, tool_calls: vec![] },
                ChatMessage { role: "user".into(), content: Self::user_prompt(ctx), tool_call_id: None, tool_calls: vec![] },
            ];
            let label = format!("llm-{}-{}", ctx.generation, i + 1);
            let source = match self.ask(messages).await {
                Ok(reply) => apply_reply(ctx.parent, &reply),
                Err(e) => Err(e),
            };
            out.push(Candidate { label, origin: format!("llm:{}", self.settings.profile), source });
        }
        Ok(out)
    }

    async fn repair(&mut self, ctx: &Context<'_>, candidate: &Candidate, errors: &str) -> Option<Candidate> {
        let Ok(source) = &candidate.source else { return None };
        let mut files = String::new();
        for (path, text) in &source.files {
            files.push_str(&format!("```rust src/{path}\n{text}\n```\n"));
        }
        let messages = vec![
            ChatMessage { role: "system".into(), content: self.system_prompt(), tool_call_id: None, tool_calls: vec![] },
            ChatMessage {
                role: "user".into(),
                content: format!(
                    "This version of agent `{}` does not build:\n{files}\nCompiler errors:\n{errors}\n\nReply with a fixed version.",
                    ctx.agent
                ),
                tool_call_id: None,
                tool_calls: vec![],
            },
        ];
        let reply = self.ask(messages).await;
        let source = reply.and_then(|r| apply_reply(source, &r));
        Some(Candidate { label: format!("{}-repaired", candidate.label), origin: candidate.origin.clone(), source })
    }
}

/// Applies a model's reply to `base`: fenced whole files (```rust src/PATH)
/// replace or add files; SEARCH/REPLACE blocks edit them. A reply with
/// neither, or an edit whose SEARCH text is not found, is an error.
pub fn apply_reply(base: &CandidateSource, reply: &str) -> Result<CandidateSource, String> {
    let mut out = base.clone();
    let mut changed = false;
    let lines: Vec<&str> = reply.lines().collect();
    let mut i = 0;
    let mut last_path: Option<String> = None;
    let mut in_edit_fence = false;
    while i < lines.len() {
        let line = lines[i].trim_end();
        if in_edit_fence && line == "```" {
            in_edit_fence = false;
            i += 1;
            continue;
        }
        if let Some(info) = line.strip_prefix("```") {
            // A fence naming a src/ path is a whole file.
            let path = info.split_whitespace().find(|w| w.starts_with("src/")).map(|w| w.trim_start_matches("src/").to_string());
            let end = (i + 1..lines.len()).find(|&j| lines[j].trim_end() == "```").unwrap_or(lines.len());
            if let Some(path) = path {
                out.files.insert(path, lines[i + 1..end].join("\n") + "\n");
                changed = true;
            } else if lines[i + 1..end].iter().any(|l| l.starts_with("<<<<<<< SEARCH")) {
                // Edits inside an anonymous fence: handled line by line.
                in_edit_fence = true;
                i += 1;
                continue;
            }
            i = end + 1;
            continue;
        }
        if line.starts_with("<<<<<<< SEARCH") {
            let sep = (i + 1..lines.len()).find(|&j| lines[j].trim_end() == "=======").ok_or("SEARCH block without =======")?;
            let end = (sep + 1..lines.len())
                .find(|&j| lines[j].trim_end().starts_with(">>>>>>> REPLACE"))
                .ok_or("SEARCH block without >>>>>>> REPLACE")?;
            let path = last_path.clone().unwrap_or_else(|| "lib.rs".into());
            let search = lines[i + 1..sep].join("\n");
            let replace = lines[sep + 1..end].join("\n");
            let file = out.files.get_mut(&path).ok_or_else(|| format!("edit of src/{path}, which does not exist"))?;
            if search.is_empty() || !file.contains(&search) {
                return Err(format!("SEARCH text not found in src/{path}:\n{search}"));
            }
            *file = file.replacen(&search, &replace, 1);
            changed = true;
            i = end + 1;
            continue;
        }
        let candidate_path = line.trim().trim_matches('`').trim_start_matches("// ");
        if candidate_path.ends_with(".rs") && !candidate_path.contains(' ') {
            last_path = Some(candidate_path.trim_start_matches("src/").to_string());
        }
        i += 1;
    }
    if !changed {
        return Err("the reply contains no ```rust src/PATH file and no SEARCH/REPLACE edit".into());
    }
    Ok(out)
}

/// Most characters of WIT text a prompt carries.
const MAX_WIT_CHARS: usize = 12_000;

/// The SDK surface a generator needs, cut from the SDK's own source, and
/// the WIT world the component is built against (`world.wit` and
/// `types.wit` first, then the capability interfaces while they fit in
/// [`MAX_WIT_CHARS`]; the rest are named).
pub fn sdk_summary(sdk_dir: &Path) -> String {
    let mut out = sdk_items(sdk_dir);
    let wit_dir = [sdk_dir.join("wit"), sdk_dir.join("../wit")].into_iter().find(|d| d.is_dir());
    if let Some(dir) = wit_dir {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == "wit")).collect())
            .unwrap_or_default();
        let rank = |p: &PathBuf| match p.file_name().and_then(|n| n.to_str()) {
            Some("world.wit") => 0,
            Some("types.wit") => 1,
            _ => 2,
        };
        // Then the smallest first: more interfaces fit.
        let size = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(u64::MAX);
        files.sort_by(|a, b| rank(a).cmp(&rank(b)).then(size(a).cmp(&size(b))).then(a.cmp(b)));
        let mut used = 0;
        let mut omitted = Vec::new();
        out.push_str("\nWIT (the interfaces the component imports and exports):\n");
        for f in files {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_string();
            let Ok(text) = std::fs::read_to_string(&f) else { continue };
            if used + text.len() > MAX_WIT_CHARS {
                omitted.push(name);
                continue;
            }
            used += text.len();
            out.push_str(&format!("```wit {name}\n{}\n```\n", text.trim_end()));
        }
        if !omitted.is_empty() {
            out.push_str(&format!("(not shown, for length: {})\n", omitted.join(", ")));
        }
    }
    out
}

fn sdk_items(sdk_dir: &Path) -> String {
    let lib = std::fs::read_to_string(sdk_dir.join("src/lib.rs")).unwrap_or_default();
    let mut out = String::new();
    for line in lib.lines() {
        let t = line.trim_start();
        if t.starts_with("pub fn") || t.starts_with("pub mod") || t.starts_with("pub trait") || t.starts_with("fn describe") || t.starts_with("fn handle") {
            out.push_str(t.trim_end_matches('{').trim_end());
            out.push('\n');
        }
    }
    out.push_str("Use: use agentkernel_sdk::prelude::*; struct A; impl Agent for A { .. } export_agent!(A);\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> CandidateSource {
        let mut s = CandidateSource::single("fn a() {\n    slow();\n}\n");
        s.files.insert("util.rs".into(), "pub fn u() -> u32 { 1 }\n".into());
        s
    }

    #[test]
    fn whole_files_replace_and_add() {
        let reply = "Here:\n```rust src/lib.rs\nfn a() { fast(); }\nmod extra;\n```\nand\n```rust src/extra.rs\npub fn e() {}\n```\n";
        let s = apply_reply(&base(), reply).unwrap();
        assert_eq!(s.files["lib.rs"], "fn a() { fast(); }\nmod extra;\n");
        assert_eq!(s.files["extra.rs"], "pub fn e() {}\n");
        assert_eq!(s.files["util.rs"], base().files["util.rs"]);
    }

    #[test]
    fn search_replace_edits_across_files() {
        let reply = "src/lib.rs\n<<<<<<< SEARCH\n    slow();\n=======\n    fast();\n>>>>>>> REPLACE\n\nsrc/util.rs\n```\n<<<<<<< SEARCH\n{ 1 }\n=======\n{ 2 }\n>>>>>>> REPLACE\n```\n";
        let s = apply_reply(&base(), reply).unwrap();
        assert_eq!(s.files["lib.rs"], "fn a() {\n    fast();\n}\n");
        assert_eq!(s.files["util.rs"], "pub fn u() -> u32 { 2 }\n");
    }

    #[tokio::test]
    async fn a_directory_generator_resumed_without_a_count_offers_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.rs", "b.rs", "c.rs"] {
            std::fs::write(dir.path().join(name), "pub fn f() {}\n").unwrap();
        }
        let mut g = Generator::Dir(DirGenerator::open(dir.path()).unwrap());
        g.skip(1);
        // No --candidates: "all the rest", which must not overflow past the
        // position already reached.
        let Generator::Dir(d) = &mut g else { unreachable!() };
        let labels: Vec<String> = d.next(usize::MAX).await.into_iter().map(|c| c.label).collect();
        assert_eq!(labels, ["b", "c"]);
        assert!(g.exhausted());
        g.skip(usize::MAX);
        assert!(g.exhausted());
    }

    #[test]
    fn the_sdk_summary_carries_the_wit_world() {
        let summary = sdk_summary(&agentkernel_core::scaffold::default_sdk_path());
        assert!(summary.contains("trait Agent"), "{summary}");
        assert!(summary.contains("```wit world.wit") && summary.contains("world agent {"), "{summary}");
        assert!(summary.contains("```wit types.wit") && summary.contains("record manifest"), "{summary}");
        assert!(summary.len() < 16_000, "bounded: {} chars", summary.len());
    }

    #[test]
    fn unusable_replies_are_errors() {
        assert!(apply_reply(&base(), "I think it is fine.").is_err());
        let missing = "src/lib.rs\n<<<<<<< SEARCH\nnot there\n=======\nx\n>>>>>>> REPLACE\n";
        assert!(apply_reply(&base(), missing).unwrap_err().contains("not found"));
    }
}
