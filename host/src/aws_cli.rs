//! `agentkernel genome ...` and `agentkernel audit`: the operator's side of
//! the `aws-ec2` capability. Works on the data dir's database and EC2
//! directly; no agents are loaded.
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;

use agentkernel::aws::Ec2Service;
use agentkernel::aws::genome::{ApplyReport, Genome, Plan};
use agentkernel::aws::policy::AwsEc2Scope;
use agentkernel::config::HostConfig;
use agentkernel::host::Host;
use agentkernel::storage::Backend;
use agentkernel::aws::policy::granted_scope;

#[derive(Subcommand)]
pub enum GenomeCommand {
    /// Compare a genome file with EC2 and print the changes and their cost.
    Plan {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Make EC2 match a genome file, within its owner's policy. Without
    /// --approve only prints the plan.
    Apply {
        file: PathBuf,
        /// Make the changes (and record the file as the current genome).
        #[arg(long)]
        approve: bool,
        #[arg(long)]
        json: bool,
    },
    /// Terminate the owner's genome instances the genome no longer names.
    /// Without --approve only prints what would be terminated.
    Cleanup {
        /// Genome file (default: the owner's current genome, as last applied).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Whose current genome, without --file (needed when several owners have one).
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        approve: bool,
        #[arg(long)]
        json: bool,
    },
    /// Print the current genomes (each owner's, as last applied).
    Show {
        /// Only this owner's.
        #[arg(long)]
        owner: Option<String>,
    },
    /// List agents' genome proposals.
    Proposals {
        /// Only `pending`, `applied`, `rejected` or `failed`.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Apply a pending proposal (within its owner's policy).
    Approve { id: i64 },
    /// Reject a pending proposal.
    Reject {
        id: i64,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// The host's EC2 service and backend (the same handles `serve` uses).
fn service(config: &HostConfig) -> anyhow::Result<(Arc<Ec2Service>, Arc<dyn Backend>)> {
    let host = Host::open(config.clone())?;
    Ok((host.aws.clone(), host.backend.clone()))
}

fn owner_scope(config: &HostConfig, owner: &str) -> anyhow::Result<AwsEc2Scope> {
    match granted_scope(&config.policy_for(owner)) {
        Some(s) => Ok(s),
        None => bail!(
            "genome owner `{owner}` has no aws_ec2 grant; its policy bounds the genome: add to agentkernel.toml\n    [agents.{owner}]\n    aws_ec2 = {{ regions = [...], instance_types = [...], amis = [...], max_running_instances = N, max_hourly_usd = X }}"
        ),
    }
}

fn read_genome(path: &Path) -> anyhow::Result<Genome> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Genome::parse(&text).with_context(|| path.display().to_string())
}

fn print_outcome(plan: &Plan, report: Option<&ApplyReport>, json: bool, hint: &str) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"plan": plan, "applied": report}))?);
        return Ok(());
    }
    print!("{}", plan.render());
    match report {
        Some(r) => println!("applied: {}", r.summary()),
        None if !plan.is_empty() => println!("{hint}"),
        None => {}
    }
    Ok(())
}

pub async fn genome(config: HostConfig, cmd: GenomeCommand) -> anyhow::Result<ExitCode> {
    let (svc, store) = service(&config)?;
    match cmd {
        GenomeCommand::Plan { file, json } => {
            let genome = read_genome(&file)?;
            let plan = svc.plan(&genome, None).await?;
            print_outcome(&plan, None, json, "not applied: run `agentkernel genome apply FILE --approve`")?;
        }
        GenomeCommand::Apply { file, approve, json } => {
            let genome = read_genome(&file)?;
            let scope = owner_scope(&config, &genome.owner)?;
            if !approve {
                // Show the plan, then whether the owner's policy would allow it.
                let plan = svc.plan(&genome, None).await?;
                print_outcome(&plan, None, json, "not applied: run again with --approve to make these changes")?;
                if let Err(e) = svc.check_plan(&plan, &scope, None).await {
                    bail!("applying would be refused: {e}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            let (plan, report) = svc.apply_genome("admin", &genome, &scope, true).await?;
            print_outcome(&plan, report.as_ref(), json, "")?;
        }
        GenomeCommand::Cleanup { file, owner, approve, json } => {
            let genome = match (file, owner) {
                (Some(f), _) => read_genome(&f)?,
                (None, Some(owner)) => {
                    svc.current_genome(&owner).await?.with_context(|| format!("no genome has been applied for `{owner}`; pass --file"))?
                }
                (None, None) => {
                    let current = svc.current_genomes().await?;
                    match current.as_slice() {
                        [] => bail!("no genome has been applied yet; pass --file"),
                        [one] => Genome::parse(&one.toml).context("the stored genome")?,
                        several => bail!(
                            "genomes of several owners are current ({}); pass --owner or --file",
                            several.iter().map(|g| g.owner.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    }
                }
            };
            let scope = owner_scope(&config, &genome.owner)?;
            let (plan, report) = svc.cleanup("admin", &genome, &scope, approve).await?;
            print_outcome(&plan, report.as_ref(), json, "not terminated: run again with --approve")?;
        }
        GenomeCommand::Show { owner } => {
            let genomes = match owner {
                Some(o) => store.genome_current(&o)?.into_iter().collect(),
                None => store.genome_current_all()?,
            };
            if genomes.is_empty() {
                println!("no genome has been applied");
            }
            for g in genomes {
                print!("# owner {}: version {} applied by {}\n{}", g.owner, g.version, g.applied_by, g.toml);
            }
        }
        GenomeCommand::Proposals { status, json } => {
            let rows = store.proposal_list(status.as_deref(), 100)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if rows.is_empty() {
                println!("no proposals");
            }
            if !json {
                for p in rows {
                    println!("#{} [{}] from {}: {}\n  {}", p.id, p.status, p.agent, p.reason, p.message);
                }
            }
        }
        GenomeCommand::Approve { id } => {
            let (p, plan, report) = svc.approve_proposal(id, "admin", |owner| granted_scope(&config.policy_for(owner))).await?;
            print!("{}", plan.render());
            println!("proposal #{} {}: {}", p.id, p.status, report.summary());
        }
        GenomeCommand::Reject { id, reason } => {
            svc.reject_proposal(id, "admin", &reason).await?;
            println!("proposal #{id} rejected");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn audit(config: HostConfig, agent: Option<&str>, limit: u32, json: bool) -> anyhow::Result<()> {
    let store = Host::open_backend(&config)?;
    let rows = store.audit_list(agent, limit)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no EC2 calls recorded");
        return Ok(());
    }
    println!("{:<6} {:<20} {:<24} {:<22} {:<10} {:<8} {:<22} detail", "id", "time (UTC)", "agent", "action", "region", "outcome", "rule");
    for r in rows.iter().rev() {
        println!(
            "{:<6} {:<20} {:<24} {:<22} {:<10} {:<8} {:<22} {}",
            r.id,
            crate::format_unix(r.at),
            r.agent,
            r.action,
            r.region,
            r.outcome,
            r.rule.as_deref().unwrap_or("-"),
            r.detail
        );
        println!("       params: {}", r.params);
    }
    Ok(())
}
