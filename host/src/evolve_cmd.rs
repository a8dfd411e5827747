//! `agentkernel evolve`, `rollback` and `versions`: the evolution engine
//! from the command line.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use agentkernel::config::HostConfig;
use agentkernel::evolution::{self, Engine, EvolveOptions, GeneratorSpec};
use agentkernel::host::Host;

use crate::progress::ProgressView;

#[derive(clap::Args)]
pub struct EvolveArgs {
    /// The agent to evolve (its source crate holds evolve.toml).
    pub agent: String,
    /// `llm` (the configured model) or `dir:PATH` (a directory of candidate sources).
    #[arg(long, default_value = "llm")]
    pub generator: GeneratorSpec,
    #[arg(long, default_value_t = 1)]
    pub generations: u32,
    /// Candidates per generation (default: all of a directory, 3 from an LLM).
    #[arg(long)]
    pub candidates: Option<usize>,
    /// Least relative fuel saving that wins (default: the suite's, 0.15).
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Decide, but install nothing.
    #[arg(long)]
    pub no_swap: bool,
    /// The agent's source crate (default: [evolution] sources / source_roots).
    #[arg(long)]
    pub source: Option<PathBuf>,
    /// Continue an interrupted evolution from its last finished generation.
    #[arg(long)]
    pub resume: Option<String>,
    /// Install a winner even if its manifest (description, skills,
    /// keywords) differs from the incumbent's, which changes its routing.
    #[arg(long)]
    pub approve_manifest_change: bool,
    /// Agents directory (overrides config).
    #[arg(long)]
    pub agents: Option<PathBuf>,
    /// Print one JSON object with the decision, versions, fuel and report paths.
    #[arg(long)]
    pub json: bool,
}

pub async fn evolve(mut config: HostConfig, args: EvolveArgs) -> anyhow::Result<ExitCode> {
    if let Some(a) = args.agents {
        config.host.agents_dir = a;
    }
    let host = Host::open(config)?;
    host.registry.scan().await;
    let engine = Engine { config: host.config.clone(), store: host.backend.clone(), registry: Some(host.registry.clone()), llm: host.llm.clone() };
    let opts = EvolveOptions {
        agent: args.agent,
        generator: args.generator,
        generations: args.generations,
        candidates: args.candidates,
        threshold: args.threshold,
        swap: !args.no_swap,
        source: args.source,
        resume: args.resume,
        create: None,
        approve_manifest_change: args.approve_manifest_change,
        requested_by: None,
        max_tokens: None,
        max_usd: None,
    };
    // Bars on a terminal; nothing on stderr otherwise (stdout is parsed).
    let view = ProgressView::for_stderr(opts.generations);
    let progress = |line: &str| view.line(line);
    // The id is known up front, so Ctrl-C can mark the run and say how to
    // resume it. Dropping the run kills a candidate build in flight
    // (kill_on_drop); the checkpoint of the last finished generation stays.
    let id = opts.resume.clone().unwrap_or_else(|| evolution::new_id(&opts.agent));
    let agent = opts.agent.clone();
    let outcome = tokio::select! {
        r = engine.evolve_with_id(opts, id.clone(), &progress) => {
            view.finish();
            r?
        }
        _ = tokio::signal::ctrl_c() => {
            view.finish();
            if let Some(mut rec) = engine.store.evolution(&id)? {
                if rec.status == "running" {
                    rec.status = "interrupted".into();
                    rec.finished_at = Some(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64));
                    engine.store.upsert_evolution(&rec)?;
                }
            }
            eprintln!("interrupted: continue with `agentkernel evolve {agent} --resume {id}`");
            return Ok(ExitCode::from(130));
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        println!("{}: {}", outcome.decision, outcome.reason);
        println!("incumbent {} fuel {}", short(&outcome.incumbent_version), outcome.incumbent_fuel);
        if let (Some(v), Some(f)) = (&outcome.winner_version, outcome.winner_fuel) {
            println!("winner    {} fuel {}", short(v), f);
        }
        println!("report    {}", outcome.report_html.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

pub async fn rollback(mut config: HostConfig, agent: &str, to: Option<&str>, agents: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    if let Some(a) = agents {
        config.host.agents_dir = a;
    }
    let host = Host::open(config)?;
    host.registry.scan().await;
    let store = host.backend.clone();
    let current = host.registry.get(agent).map(|a| a.hash.clone());
    let target = evolution::swap::rollback_target(&*store, agent, current.as_deref(), to)?;
    if current.as_deref() == Some(target.as_str()) {
        println!("`{agent}` already runs {}", short(&target));
        return Ok(ExitCode::SUCCESS);
    }
    let reason = match to {
        Some(_) => "rollback --to",
        None => "rollback",
    };
    let path = evolution::swap::install(&host.config.host.data_dir, &host.config.host.agents_dir, agent, &target, reason, &*store, Some(&host.registry))
        .await
        .with_context(|| format!("rolling `{agent}` back"))?;
    match host.registry.get(agent) {
        Some(a) if a.hash == target => println!("rolled `{agent}` back to {} ({})", short(&target), path.display()),
        _ => anyhow::bail!("installed {} but it did not load: see `agentkernel agents`", path.display()),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn versions(config: HostConfig, agent: &str, json: bool) -> anyhow::Result<ExitCode> {
    let store = Host::open_backend(&config)?;
    let versions = store.versions(agent)?;
    let installs = store.installs(agent)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"versions": versions, "installs": installs}))?);
        return Ok(ExitCode::SUCCESS);
    }
    if versions.is_empty() {
        println!("no versions of `{agent}` recorded (evolve it first)");
    }
    let current = installs.last().map(|i| i.hash.as_str());
    for v in &versions {
        println!(
            "{} {} parent {} origin {}{}",
            if Some(v.hash.as_str()) == current { "*" } else { " " },
            short(&v.hash),
            v.parent.as_deref().map(short).unwrap_or("-"),
            v.origin,
            v.evolution.as_deref().map(|e| format!(" (evolution {e})")).unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// The new agent's name (a-z, 0-9, '-').
    pub name: String,
    /// What the agent should do (given to the generator).
    #[arg(long)]
    pub spec: String,
    /// Its cases, in the evolve.toml format; it is registered only if it passes all.
    #[arg(long)]
    pub cases: PathBuf,
    /// `llm` or `dir:PATH`.
    #[arg(long, default_value = "llm")]
    pub generator: GeneratorSpec,
    #[arg(long, default_value_t = 1)]
    pub generations: u32,
    #[arg(long)]
    pub candidates: Option<usize>,
    /// Agents directory (overrides config).
    #[arg(long)]
    pub agents: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

pub async fn create(mut config: HostConfig, args: CreateArgs) -> anyhow::Result<ExitCode> {
    if let Some(a) = args.agents {
        config.host.agents_dir = a;
    }
    let host = Host::open(config)?;
    host.registry.scan().await;
    let engine = Engine { config: host.config.clone(), store: host.backend.clone(), registry: Some(host.registry.clone()), llm: host.llm.clone() };
    let mut opts = EvolveOptions::new(&args.name, args.generator);
    opts.generations = args.generations;
    opts.candidates = args.candidates;
    opts.create = Some(evolution::CreateSpec { spec: args.spec, cases: args.cases });
    let view = ProgressView::for_stderr(opts.generations);
    let outcome = engine.evolve(opts, &|line: &str| view.line(line)).await;
    view.finish();
    let outcome = outcome?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else if outcome.decision == "swapped" {
        println!("created `{}` ({}): {}", outcome.agent, short(outcome.winner_version.as_deref().unwrap_or("")), outcome.reason);
        println!("report {}", outcome.report_html.display());
    } else {
        println!("not created: {}\nreport {}", outcome.reason, outcome.report_html.display());
    }
    // A run that ends without an agent is still a decision, but `create` promised one.
    Ok(if outcome.decision == "swapped" { ExitCode::SUCCESS } else { ExitCode::from(2) })
}
