//! `agentkernel research run` (one research cycle now, then its findings)
//! and `agentkernel research findings` (what the host has recorded).
use std::path::PathBuf;
use std::process::ExitCode;

use agentkernel::config::HostConfig;
use agentkernel::host::Host;
use agentkernel::research::{self, CycleReport};
use agentkernel::storage::research::ResearchFinding;

#[derive(clap::Subcommand)]
pub enum ResearchCommand {
    /// Run one research cycle now ([research] agents on [research] topics) and print what it found.
    Run {
        /// Agents directory (overrides config).
        #[arg(long)]
        agents: Option<PathBuf>,
        /// Print the cycle's report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The findings the host has recorded, newest first.
    Findings {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

pub async fn research(mut config: HostConfig, cmd: ResearchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ResearchCommand::Run { agents, json } => {
            if let Some(a) = agents {
                config.host.agents_dir = a;
            }
            let host = Host::open(config)?;
            host.registry.scan().await;
            let report = research::run_cycle(&host).await;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_report(&report);
            }
            // Failing only when no agent ran at all: a rate limit is an outcome, not a failure.
            let any_ran = report.agents.iter().any(|a| !matches!(a.outcome.as_str(), "not-loaded"));
            Ok(if any_ran { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        ResearchCommand::Findings { limit, json } => {
            let store = Host::open_backend(&config)?;
            let findings = store.research_findings(limit)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({"findings": findings}))?);
            } else if findings.is_empty() {
                println!("no findings recorded yet (run `agentkernel research run`)");
            } else {
                findings.iter().for_each(print_finding);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_report(report: &CycleReport) {
    for a in &report.agents {
        println!("{}: {} ({} fetched, {} new, {} ms)", a.agent, a.outcome, a.fetched, a.new, a.elapsed_ms);
        if a.outcome != "ok" {
            if let Some(first) = a.message.lines().next() {
                println!("  {first}");
            }
            for e in a.errors.as_array().into_iter().flatten() {
                println!("  {}: {} {}", e["topic"].as_str().unwrap_or("?"), e["code"].as_str().unwrap_or("?"), e["message"].as_str().unwrap_or(""));
            }
        }
    }
    if report.new_findings.is_empty() {
        println!("no new findings");
    } else {
        println!("{} new finding(s):", report.new_findings.len());
        report.new_findings.iter().for_each(print_finding);
    }
}

fn print_finding(f: &ResearchFinding) {
    let score = f.score.map(|s| format!("{s:.1}")).unwrap_or_else(|| "-".into());
    println!("{score:>4}  [{}] {}  {}", f.source, f.title, f.url);
}
