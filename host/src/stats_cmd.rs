//! `agentkernel stats`: the host's KPIs from its records (the database and
//! the evolution run directories), as text or `--json` (the shape
//! `GET /v1/stats` serves).
use std::process::ExitCode;

use agentkernel::config::HostConfig;
use agentkernel::evolution::kpi;
use agentkernel::host::Host;

#[derive(clap::Args)]
pub struct StatsArgs {
    /// The window: the last N days (1 to 90).
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// Print the KPIs as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn stats(config: HostConfig, args: StatsArgs) -> anyhow::Result<ExitCode> {
    let store = Host::open_backend(&config)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let kpis = kpi::compute(&*store, &config.host.data_dir, args.days, now)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&kpis)?);
    } else {
        print!("{}", kpi::text(&kpis));
    }
    Ok(ExitCode::SUCCESS)
}
