//! The `agentkernel` command line. Errors become one line on stderr and a
//! non-zero exit; this is the only place `anyhow` meets the user.
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use agentkernel::api::{AgentInfo, CallRequest, CallResponse, ErrorBody};
use agentkernel::config::HostConfig;
use agentkernel::host::Host;
use agentkernel::limits::Fuel;
use agentkernel::scaffold;

#[cfg(feature = "aws")]
mod aws_cli;
mod evolve_cmd;
mod progress;
mod research_cmd;
mod stats_cmd;

#[derive(Parser)]
#[command(name = "agentkernel", version, about = "A WebAssembly component host for agents")]
struct Cli {
    /// Configuration file (missing file = embedded defaults).
    #[arg(long, global = true, default_value = "agentkernel.toml", env = "AGENTKERNEL_CONFIG")]
    config: PathBuf,
    /// Directory for the SQLite database and compile cache (overrides config).
    #[arg(long, global = true, env = "AGENTKERNEL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load every agent in a directory, watch it, and serve the HTTP API.
    Serve {
        /// Agents directory (created if missing).
        #[arg(long)]
        agents: Option<PathBuf>,
        /// Address to listen on.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Run one call of a component outside the server and print the response.
    Run {
        /// The component (.wasm) to run.
        component: PathBuf,
        /// Request text.
        #[arg(long, short)]
        message: String,
        /// Session id.
        #[arg(long, default_value = "cli")]
        session: String,
        /// Fuel limit for this call (metered agents only).
        #[arg(long)]
        fuel: Option<u64>,
        /// Print JSON (with fuel used and elapsed time).
        #[arg(long)]
        json: bool,
    },
    /// List the agents in a directory with version, skills, grants and status.
    Agents {
        #[arg(long)]
        agents: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Create a new agent (anywhere on disk): a Rust crate, or a Python or JavaScript directory.
    New {
        /// Agent name (a-z, 0-9, '-').
        name: String,
        /// The agent's language.
        #[arg(long, value_enum, default_value_t = LangArg::Rust)]
        lang: LangArg,
        /// Where to create the agent (default: ./NAME).
        #[arg(long)]
        path: Option<PathBuf>,
        /// The agentkernel SDK directory a Rust crate depends on (default: the checkout this binary was
        /// built from if it is still there, else the published `agentkernel-sdk` of this version).
        #[arg(long, env = "AGENTKERNEL_SDK")]
        sdk: Option<PathBuf>,
    },
    /// LLM usage from the ledger: one row per call, then totals per agent.
    Usage {
        /// Only this agent.
        #[arg(long)]
        agent: Option<String>,
        /// Window: `30m`, `24h`, `7d`, or `all` (default `24h`).
        #[arg(long, default_value = "24h")]
        since: String,
        #[arg(long)]
        json: bool,
    },
    /// Check the configuration and whether the LLM endpoint answers.
    Doctor,
    /// The infrastructure genome: plan, apply and clean up EC2 instance groups.
    #[cfg(feature = "aws")]
    #[command(subcommand)]
    Genome(aws_cli::GenomeCommand),
    /// EC2 calls agents (and `genome`) made or were refused, newest last.
    #[cfg(feature = "aws")]
    Audit {
        /// Only this agent.
        #[arg(long)]
        agent: Option<String>,
        /// Most rows (the newest).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Evolve an agent: generate candidates, build them sandboxed, benchmark, swap the winner in.
    Evolve(evolve_cmd::EvolveArgs),
    /// Write a new agent from a description; registered only if it passes its cases.
    Create(evolve_cmd::CreateArgs),
    /// Reinstall an earlier version of an agent (default: the one before the current).
    Rollback {
        agent: String,
        /// A version hash (or unique prefix) from `agentkernel versions AGENT`.
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        agents: Option<PathBuf>,
    },
    /// An agent's recorded versions (lineage) and installs.
    Versions {
        agent: String,
        #[arg(long)]
        json: bool,
    },
    /// The host's KPIs: candidates that build and pass, evolutions, rollbacks, errors, LLM spend, chat.
    Stats(stats_cmd::StatsArgs),
    /// The research center: run a cycle now, list the recorded findings.
    #[command(subcommand)]
    Research(research_cmd::ResearchCommand),
    /// Build an agent (Rust, Python or JavaScript) and copy it into the agents directory.
    ///
    /// A crate (Cargo.toml) is built for wasm32-wasip2 with cargo; a Python directory (app.py) with
    /// componentize-py; a JavaScript one (index.js) with rolldown and componentize-js. The tools are
    /// taken from AGENTKERNEL_COMPONENTIZE_PY, AGENTKERNEL_ROLLDOWN and AGENTKERNEL_COMPONENTIZE_JS,
    /// else the directory's node_modules/.bin (JavaScript), else PATH.
    Build {
        /// The agent's directory (default: current directory).
        #[arg(default_value = ".")]
        path: PathBuf,
        #[arg(long)]
        agents: Option<PathBuf>,
    },
}

/// `new --lang`: the languages `agentkernel new` writes agents in.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LangArg {
    /// A crate depending on the Rust SDK.
    Rust,
    /// app.py with the Python helper layer (componentize-py).
    Python,
    /// index.js with the JavaScript helper layer (componentize-js).
    Js,
}

impl From<LangArg> for scaffold::Lang {
    fn from(lang: LangArg) -> Self {
        match lang {
            LangArg::Rust => scaffold::Lang::Rust,
            LangArg::Python => scaffold::Lang::Python,
            LangArg::Js => scaffold::Lang::Js,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_filter = if matches!(cli.command, Command::Serve { .. }) { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<HostConfig> {
    let mut config = HostConfig::load(&cli.config)?;
    if let Some(d) = &cli.data_dir {
        config.host.data_dir = d.clone();
    }
    config.storage.apply_env();
    config.validate()?;
    Ok(config)
}

fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut config = load_config(&cli)?;
    match cli.command {
        Command::Serve { agents, listen } => {
            if let Some(a) = agents {
                config.host.agents_dir = a;
            }
            if let Some(l) = listen {
                config.host.listen = l;
            }
            // The overrides are checked like the file: `--listen 0.0.0.0:…`
            // without tokens would otherwise open the API to the network.
            config.validate()?;
            tokio_runtime()?.block_on(serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { component, message, session, fuel, json } => {
            tokio_runtime()?.block_on(run_once(config, &component, message, session, fuel, json))
        }
        Command::Agents { agents, json } => {
            if let Some(a) = agents {
                config.host.agents_dir = a;
            }
            tokio_runtime()?.block_on(list_agents(config, json))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::New { name, lang, path, sdk } => {
            let dir = path.unwrap_or_else(|| PathBuf::from(&name));
            let sdk = scaffold::SdkSource::choose(sdk);
            let lang = scaffold::Lang::from(lang);
            scaffold::new_agent_in(lang, &name, &dir, &sdk)?;
            let d = dir.display();
            match lang {
                scaffold::Lang::Rust => {
                    println!("created agent `{name}` in {d}");
                    println!("  cd {d} && cargo test   # its unit tests");
                    println!("  cd {d} && cargo build --target wasm32-wasip2 --release");
                    println!("  agentkernel build {d}   # copies it into the agents directory");
                }
                scaffold::Lang::Python => {
                    println!("created Python agent `{name}` in {d}");
                    println!("  cd {d} && python3 -m unittest         # its unit tests, with fakes of the host");
                    println!("  pip install componentize-py==0.25.1   # once");
                    println!("  agentkernel build {d}   # componentize-py, then into the agents directory");
                }
                scaffold::Lang::Js => {
                    println!("created JavaScript agent `{name}` in {d}");
                    println!("  cd {d} && node --test                 # its unit tests, with fakes of the host");
                    println!("  cd {d} && npm install --save-dev @bytecodealliance/componentize-js@0.23.0 rolldown@1.3.4   # once");
                    println!("  agentkernel build {d}   # rolldown + componentize-js, then into the agents directory");
                }
            }
            if lang != scaffold::Lang::Rust {
                println!("  {d}/README.md says what to grant when it needs more than log and memory");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Usage { agent, since, json } => {
            let since = parse_since(&since)?;
            usage(config, agent.as_deref(), since, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor => tokio_runtime()?.block_on(doctor(config, &cli.config)),
        #[cfg(feature = "aws")]
        Command::Genome(cmd) => tokio_runtime()?.block_on(aws_cli::genome(config, cmd)),
        #[cfg(feature = "aws")]
        Command::Audit { agent, limit, json } => {
            aws_cli::audit(config, agent.as_deref(), limit, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Evolve(args) => tokio_runtime()?.block_on(evolve_cmd::evolve(config, args)),
        Command::Create(args) => tokio_runtime()?.block_on(evolve_cmd::create(config, args)),
        Command::Rollback { agent, to, agents } => {
            tokio_runtime()?.block_on(evolve_cmd::rollback(config, &agent, to.as_deref(), agents))
        }
        Command::Versions { agent, json } => evolve_cmd::versions(config, &agent, json),
        Command::Stats(args) => stats_cmd::stats(config, args),
        Command::Research(cmd) => tokio_runtime()?.block_on(research_cmd::research(config, cmd)),
        Command::Build { path, agents } => {
            let agents_dir = agents.unwrap_or(config.host.agents_dir);
            match scaffold::Lang::of_dir(&path) {
                Some(scaffold::Lang::Python) => eprintln!("building {} with componentize-py…", path.display()),
                Some(scaffold::Lang::Js) => eprintln!("building {} with rolldown and componentize-js…", path.display()),
                _ => {}
            }
            let dest = scaffold::build_agent(&path, &agents_dir)?;
            println!("installed {}", dest.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(config: HostConfig) -> anyhow::Result<()> {
    let listen = config.host.listen;
    let host = Host::open(config)?;
    host.registry.scan().await;
    let _watch = host.registry.watch()?;
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let agents = host.registry.list();
    tracing::info!(
        "agentkernel serving {} agent(s) from {} on http://{addr}",
        agents.len(),
        host.config.host.agents_dir.display()
    );
    // Tests and scripts read the bound address (useful with port 0).
    println!("listening on http://{addr}");
    agentkernel::server::serve(listener, &host, shutdown_signal()).await?;
    tracing::info!("shut down");
    Ok(())
}

/// `24h`-style windows → unix seconds of their start (`all` → 0).
fn parse_since(s: &str) -> anyhow::Result<i64> {
    if s == "all" {
        return Ok(0);
    }
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n.parse().with_context(|| format!("--since {s:?}: expected e.g. 30m, 24h, 7d or all"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("--since {s:?}: unit must be s, m, h or d"),
    };
    Ok(agentkernel::llm::now_unix() - secs)
}

fn usage(config: HostConfig, agent: Option<&str>, since: i64, json: bool) -> anyhow::Result<()> {
    let storage = Host::open_backend(&config)?;
    let rows = storage.llm_usage(agent, since)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no LLM calls recorded in this window");
        return Ok(());
    }
    println!(
        "{:<20} {:<16} {:<12} {:<16} {:>8} {:>10} {:>8} {:>10}  outcome",
        "time (UTC)", "agent", "session", "model", "prompt", "completion", "ms", "cost $"
    );
    let mut totals: std::collections::BTreeMap<&str, (u64, u64, u64, f64)> = Default::default();
    for r in &rows {
        let cost = r.cost_usd.map_or("-".to_string(), |c| format!("{c:.6}"));
        println!(
            "{:<20} {:<16} {:<12} {:<16} {:>8} {:>10} {:>8} {:>10}  {}",
            format_unix(r.at),
            r.agent,
            truncate(&r.session, 12),
            truncate(&r.model, 16),
            r.prompt_tokens,
            r.completion_tokens,
            r.latency_ms,
            cost,
            r.outcome
        );
        let t = totals.entry(&r.agent).or_default();
        t.0 += 1;
        t.1 += r.prompt_tokens;
        t.2 += r.completion_tokens;
        t.3 += r.cost_usd.unwrap_or(0.0);
    }
    println!();
    for (agent, (calls, p, c, cost)) in totals {
        println!("total {agent}: {calls} calls, {p} prompt + {c} completion tokens, ${cost:.6}");
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Unix seconds → `YYYY-MM-DD HH:MM:SS` (UTC), without a date crate.
fn format_unix(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", secs / 3600, secs % 3600 / 60, secs % 60)
}

async fn doctor(config: HostConfig, config_path: &Path) -> anyhow::Result<ExitCode> {
    println!("config:      {}{}", config_path.display(), if config_path.exists() { "" } else { " (not found: embedded defaults)" });
    println!("agents dir:  {}", config.host.agents_dir.display());
    println!("data dir:    {}", config.host.data_dir.display());
    match &config.storage.url {
        Some(url) => println!("database:    {} (PostgreSQL)", agentkernel::storage::postgres::redacted(url)),
        None => println!("database:    {}", Host::database_path(&config).display()),
    }
    let storage: Arc<dyn agentkernel::storage::Storage> = Host::open_backend(&config)?;
    let service = agentkernel::llm::LlmService::new(config.llm.clone(), storage);
    let profiles: Vec<String> = config.llm.profiles.iter().map(|(p, m)| format!("{p}={m}")).collect();
    match service.endpoint() {
        None => {
            println!("llm:         not configured (set [llm] base_url, or OPENAI_BASE_URL / {})", config.llm.api_key_env);
            println!("             agents that use llm get `not-configured` and should degrade");
            Ok(ExitCode::SUCCESS)
        }
        Some(endpoint) => {
            println!("llm:         {} (api key: {})", endpoint.base_url, if endpoint.api_key_present { "set" } else { "none" });
            println!("profiles:    {}", profiles.join(", "));
            match service.probe(std::time::Duration::from_secs(5)).await {
                Ok(models) => {
                    println!("endpoint:    answers ({} models: {})", models.len(), models.iter().take(5).cloned().collect::<Vec<_>>().join(", "));
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("endpoint:    NOT answering: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM (service managers stop with SIGTERM).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn run_once(
    config: HostConfig,
    component: &Path,
    message: String,
    session: String,
    fuel: Option<u64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let host = Host::open(config)?;
    let agent = host.runtime.load_file(component).await.with_context(|| format!("{}", component.display()))?;
    let agent = Arc::new(agent);
    let mut limits = agent.limits.clone();
    if let Some(f) = fuel {
        if !agent.metered() {
            bail!("--fuel given, but policy runs agent `{}` unmetered (fuel = \"off\")", agent.name());
        }
        limits.fuel = Fuel::Limit(f);
    }
    let req = CallRequest::new(session, message);
    match agent.call_with_limits(&req.to_wit(), &limits, &Default::default()).await {
        Ok(outcome) => {
            let resp = CallResponse::new(&agent, outcome);
            if json {
                println!("{}", serde_json::to_string_pretty(&resp)?);
            } else {
                println!("{}", resp.text);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&ErrorBody::from(&e))?);
            }
            eprintln!("error: {} ({})", e, e.code());
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn list_agents(config: HostConfig, json: bool) -> anyhow::Result<()> {
    let host = Host::open(config)?;
    host.registry.scan().await;
    let files = host.registry.files();
    let agents: Vec<AgentInfo> = host.registry.list().iter().map(|a| AgentInfo::new(a, &files)).collect();
    let failed: Vec<_> = files.iter().filter(|f| f.error.is_some() && f.agent.is_none()).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"agents": agents, "failed_files": failed}))?);
        return Ok(());
    }
    if agents.is_empty() && failed.is_empty() {
        println!("no agents in {}", host.config.host.agents_dir.display());
    }
    for a in &agents {
        let grants: Vec<&str> = a.grants.iter().map(|c| c.name()).collect();
        let imports: Vec<&str> = a.imports.iter().map(|c| c.name()).collect();
        let skills: Vec<&str> = a.manifest.skills.iter().map(|s| s.name.as_str()).collect();
        println!("{} {} [{}]", a.name, a.version, a.status);
        println!("  {}", a.description);
        println!("  skills:  {}", skills.join(", "));
        println!("  grants:  {}", grants.join(", "));
        println!("  imports: {}", if imports.is_empty() { "(none)".to_string() } else { imports.join(", ") });
        if let Some(ns) = &a.memory_namespace {
            println!("  memory namespace: {ns}");
        }
        println!("  fuel: {}", if a.metered { "metered" } else { "off" });
        if let Some(e) = &a.pending_error {
            println!("  newer file failed to load: {e}");
        }
    }
    for f in failed {
        println!("{} [failed]\n  {}", f.path.display(), f.error.as_deref().unwrap_or(""));
    }
    Ok(())
}
