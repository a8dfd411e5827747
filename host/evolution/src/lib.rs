//! The self-modification engine: generate candidates (a model or a
//! directory of sources), build each in a locked-down sandbox, benchmark it
//! against the incumbent in fresh fuel-limited instances with deterministic
//! doubles, select by the suite's objective (held-out cases included), swap
//! the winner in atomically, and write a report.
//!
//! - [`suite`]: `evolve.toml` (cases, expectations, objective, limits)
//! - [`source_check`]: constructs refused before any build
//! - [`sandbox_build`]: the template manifest and the `bwrap` build
//! - [`doubles`], [`bench`]: the benchmark runtime and its doubles
//! - [`review`]: the security review of a created agent; [`service`]: the
//!   `evolution` capability's requests on this engine
//! - [`select`]: the verdict; [`generate`]: generators; [`swap`]: install,
//!   rollback, post-swap watch; [`report`]: JSON and HTML reports
//! - lineage, runs and installs: [`agentkernel_storage::evolution`]
pub mod auto;
pub mod background;
pub mod bench;
pub mod doubles;
pub mod environment;
pub mod generate;
pub mod jobs;
pub mod kpi;
pub mod report;
pub mod review;
pub mod service;
pub mod sandbox_build;
pub mod select;
pub mod shadow;
mod spread;
pub mod source_check;
pub mod suite;
pub mod swap;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use self::bench::{Bench, BenchError, BenchResult, Measured};
use self::jobs::RunJobs;
use self::spread::Spread;
use self::generate::{Candidate, Context, DirGenerator, Generator, LlmGenerator, LlmGeneratorSettings, LlmUsageTotals};
use self::report::{BuildReport, CandidateReport, GenerationReport, IncumbentReport, Report, ReportConfig, Timings, WinnerReport};
use self::sandbox_build::{BuildError, BuildOutcome, BuildSettings};
use self::source_check::CandidateSource;
use self::suite::{Metric, Suite, SuiteError};
use agentkernel_core::config::HostConfig;
use agentkernel_llm::{LlmService, now_unix};
use agentkernel_core::registry::Registry;
use agentkernel_storage::StorageError;
use agentkernel_storage::evolution::{AgentVersion, EvolutionRecord, InstallRecord};
use agentkernel_storage::Backend;

pub use agentkernel_core::config::evolution::{EvolutionConfig, SandboxMode};

#[derive(Debug, thiserror::Error)]
pub enum EvolveError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Suite(#[from] SuiteError),
    #[error("cannot build candidates: {0}")]
    Build(BuildError),
    #[error(transparent)]
    Bench(#[from] BenchError),
    #[error("the incumbent: {0}")]
    Incumbent(String),
    #[error("generator: {0}")]
    Generator(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Swap(#[from] swap::SwapError),
    #[error("{0}")]
    Io(String),
    /// Another run of the same agent holds its lease (in this process or
    /// on another host sharing the store).
    #[error("{0}")]
    Busy(String),
}

/// How long a host may hold an agent's evolution lease without renewing it
/// (renewed every third of this while the run lives): a host that dies
/// mid-run frees the agent for another host after at most this long.
pub const EVOLUTION_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// `--generator llm` or `--generator dir:PATH`.
#[derive(Debug, Clone, PartialEq)]
pub enum GeneratorSpec {
    Llm,
    Dir(PathBuf),
}

impl std::str::FromStr for GeneratorSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "llm" => Ok(GeneratorSpec::Llm),
            _ => match s.strip_prefix("dir:") {
                Some(p) if !p.is_empty() => Ok(GeneratorSpec::Dir(PathBuf::from(p))),
                _ => Err(format!("generator {s:?}: expected `llm` or `dir:PATH`")),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct EvolveOptions {
    pub agent: String,
    pub generator: GeneratorSpec,
    pub generations: u32,
    /// Candidates per generation (default: all for `dir:`, 3 for `llm`).
    pub candidates: Option<usize>,
    pub threshold: Option<f64>,
    pub swap: bool,
    /// The agent's source crate (default: from `[evolution]`).
    pub source: Option<PathBuf>,
    /// Continue this interrupted evolution from its last finished generation.
    pub resume: Option<String>,
    /// Write a new agent instead (`agentkernel create`): no incumbent; a
    /// candidate must pass every case to be registered.
    pub create: Option<CreateSpec>,
    /// Install a winner even if its manifest (description, skills,
    /// keywords) differs from the incumbent's: what routing sees changes.
    pub approve_manifest_change: bool,
    /// The agent that asked for this run through the `evolution`
    /// capability (`None`: an admin): a creation it asked for is never
    /// registered without the security review.
    pub requested_by: Option<String>,
    /// LLM tokens and dollars this run may spend (the requesting agent's
    /// grant); never more than `[evolution]` allows.
    pub max_tokens: Option<u64>,
    pub max_usd: Option<f64>,
}

impl EvolveOptions {
    pub fn new(agent: &str, generator: GeneratorSpec) -> Self {
        EvolveOptions {
            agent: agent.into(),
            generator,
            generations: 1,
            candidates: None,
            threshold: None,
            swap: true,
            source: None,
            resume: None,
            create: None,
            approve_manifest_change: false,
            requested_by: None,
            max_tokens: None,
            max_usd: None,
        }
    }
}

/// A new agent: what it should do and the cases it must pass.
#[derive(Debug, Clone)]
pub struct CreateSpec {
    pub spec: String,
    /// A suite file (the `evolve.toml` format).
    pub cases: PathBuf,
}

/// Where a created agent starts (what an LLM generator edits).
const CREATE_TEMPLATE: &str = r#"use agentkernel_sdk::prelude::*;

pub struct NewAgent;

impl Agent for NewAgent {
    fn describe() -> Manifest {
        Manifest::new("{name}", "0.1.0", "{description}")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        Err(AgentError::Failed(format!("not written yet: {}", req.text)))
    }
}

export_agent!(NewAgent);
"#;

/// What `agentkernel evolve --json` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub evolution: String,
    pub agent: String,
    pub reason: String,
    pub incumbent_version: String,
    pub installed: Option<PathBuf>,
    pub decision: String,
    pub winner_version: Option<String>,
    pub incumbent_fuel: u64,
    pub winner_fuel: Option<u64>,
    pub report_json: PathBuf,
    pub report_html: PathBuf,
    /// `(calls, errors)` of the agent just before the swap (for the watch).
    #[serde(skip)]
    pub calls_before_swap: Option<(u64, u64)>,
    /// A created agent's security review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_review: Option<review::SecurityReview>,
}

/// What the engine works with.
pub struct Engine {
    pub config: Arc<HostConfig>,
    pub store: Arc<dyn Backend>,
    /// The live registry: the incumbent is found here and the winner loaded into it.
    pub registry: Option<Arc<Registry>>,
    pub llm: Arc<LlmService>,
}

/// The best candidate so far: the next parent.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Best {
    label: String,
    version: String,
    generation: u32,
    passed: usize,
    total_fuel: u64,
    reason: String,
    source: CandidateSource,
    /// How its manifest differs from the incumbent's (what routing sees).
    #[serde(default)]
    manifest_change: Option<String>,
    /// Its results on the visible cases, as the generator is shown them
    /// when it is the parent.
    #[serde(default)]
    feedback: Vec<String>,
}

/// Saved after every finished generation; a resume starts from it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checkpoint {
    generations: Vec<GenerationReport>,
    consumed: usize,
    parent_version: String,
    parent_source: CandidateSource,
    best: Option<Best>,
    llm: LlmUsageTotals,
    timings: Timings,
}

/// A fresh evolution id for `agent` (callers that must know the id before
/// the run starts pass it to [`Engine::evolve_with_id`]).
pub fn new_id(agent: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{agent}-{}-{:05x}", now_unix(), (nanos ^ std::process::id()) & 0xfffff)
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Where the runs' reports live.
pub fn run_dir(data_dir: &Path, id: &str) -> PathBuf {
    data_dir.join("evolve").join("runs").join(id)
}

/// The source crate of `agent`: `--source`, `[evolution.sources]`, or the
/// first `ROOT/AGENT/evolve.toml`.
pub fn locate_source(cfg: &EvolutionConfig, agent: &str, explicit: Option<&Path>) -> Result<PathBuf, EvolveError> {
    if let Some(p) = explicit.map(Path::to_path_buf).or_else(|| cfg.sources.get(agent).cloned()) {
        return if p.join("evolve.toml").exists() {
            Ok(p)
        } else {
            Err(EvolveError::Config(format!("{} has no evolve.toml (the agent's benchmark suite)", p.display())))
        };
    }
    cfg.source_roots.iter().map(|r| r.join(agent)).find(|d| d.join("evolve.toml").exists()).ok_or_else(|| {
        EvolveError::Config(format!(
            "agent `{agent}` is not evolvable: no evolve.toml in {} (pass --source DIR or set [evolution.sources] {agent} = \"DIR\")",
            cfg.source_roots.iter().map(|r| r.join(agent).display().to_string()).collect::<Vec<_>>().join(", ")
        ))
    })
}

/// What judging a generation's candidates reads.
struct Tally<'a> {
    agent: &'a str,
    id: &'a str,
    generation: u32,
    create: bool,
    suite: &'a Suite,
    bench: &'a Bench,
    repeats: u32,
    inc_bench: &'a BenchResult,
    inc_manifest: Option<&'a agentkernel_runtime::ManifestInfo>,
    data_dir: &'a Path,
}

/// What judging a generation's candidates produces.
#[derive(Default)]
struct GenerationOut {
    reports: Vec<CandidateReport>,
    feedback: Vec<String>,
}

/// A candidate evaluated: its report so far, its component and source when
/// it built, and its benchmark when another host measured it.
type Evaluated = (CandidateReport, Option<(Vec<u8>, CandidateSource)>, Option<Measured>);

fn new_report(candidate: &Candidate, repairs: u32) -> CandidateReport {
    CandidateReport {
        label: candidate.label.clone(),
        origin: candidate.origin.clone(),
        version: None,
        parent: None,
        build: BuildReport { repairs, ..BuildReport::default() },
        load_error: None,
        manifest_change: None,
        bench: None,
        verdict: None,
        bench_host: None,
        engine: None,
    }
}

impl Engine {
    /// Runs one evolution to a decision. `progress` gets one line per step.
    pub async fn evolve(&self, opts: EvolveOptions, progress: &(dyn Fn(&str) + Sync)) -> Result<Outcome, EvolveError> {
        let id = opts.resume.clone().unwrap_or_else(|| new_id(&opts.agent));
        self.evolve_with_id(opts, id, progress).await
    }

    /// [`evolve`](Self::evolve) under a chosen id (ignored when resuming).
    pub async fn evolve_with_id(&self, opts: EvolveOptions, new: String, progress: &(dyn Fn(&str) + Sync)) -> Result<Outcome, EvolveError> {
        // One evolution per agent across every process and host sharing the
        // store: the lease lives as long as this run.
        let leases: Arc<dyn agentkernel_storage::lease::LeaseStore> = self.store.clone();
        let lease = agentkernel_storage::lease::Lease::acquire(
            leases,
            &format!("evolution/{}", opts.agent),
            EVOLUTION_LEASE_TTL,
            // A moment's wait: the previous run's lease is released off its
            // thread as it ends, so a run started right after it would
            // otherwise find it still held.
            Some(std::time::Instant::now() + std::time::Duration::from_secs(3)),
        )
        .await
        .map_err(|e| match e {
            agentkernel_storage::lease::LeaseError::Held { holder, .. } => {
                EvolveError::Busy(format!("an evolution of `{}` is already running ({holder})", opts.agent))
            }
            agentkernel_storage::lease::LeaseError::Storage(e) => EvolveError::Storage(e),
        })?;
        let (id, started_at, checkpoint) = match &opts.resume {
            Some(id) => {
                let rec = self.store.evolution(id)?.ok_or_else(|| EvolveError::Config(format!("no evolution {id}")))?;
                if rec.agent != opts.agent {
                    return Err(EvolveError::Config(format!("evolution {id} evolved `{}`, not `{}`", rec.agent, opts.agent)));
                }
                if rec.status == "finished" {
                    return Err(EvolveError::Config(format!("evolution {id} already finished ({})", rec.decision.unwrap_or_default())));
                }
                let cp = match rec.checkpoint.as_deref() {
                    Some(text) => Some(
                        serde_json::from_str::<Checkpoint>(text)
                            .map_err(|e| EvolveError::Config(format!("evolution {id}: unreadable checkpoint: {e}")))?,
                    ),
                    None => None,
                };
                (id.clone(), rec.started_at, cp)
            }
            None => (new, now_unix(), None),
        };
        let mut record = EvolutionRecord {
            id: id.clone(),
            agent: opts.agent.clone(),
            status: "running".into(),
            decision: None,
            started_at,
            finished_at: None,
            checkpoint: checkpoint.as_ref().and_then(|c| serde_json::to_string(c).ok()),
            summary: None,
        };
        self.store.upsert_evolution(&record)?;
        let result = self.run(&opts, &id, started_at, checkpoint, &lease, progress).await;
        record.finished_at = Some(now_unix());
        match &result {
            Ok(outcome) => {
                record.status = "finished".into();
                record.decision = Some(outcome.decision.clone());
                record.summary = serde_json::to_string(outcome).ok();
                record.checkpoint = None;
            }
            Err(e) => {
                record.status = "failed".into();
                record.summary = Some(serde_json::json!({"error": e.to_string()}).to_string());
                // Keep the checkpoint: a failed run can be resumed once fixed.
                record.checkpoint = self.store.evolution(&id).ok().flatten().and_then(|r| r.checkpoint);
            }
        }
        self.store.upsert_evolution(&record)?;
        result
    }

    async fn run(
        &self,
        opts: &EvolveOptions,
        id: &str,
        started_at: i64,
        checkpoint: Option<Checkpoint>,
        lease: &agentkernel_storage::lease::Lease,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Outcome, EvolveError> {
        let agent = opts.agent.as_str();
        agentkernel_runtime::validate_agent_name(agent).map_err(EvolveError::Config)?;
        let cfg = &self.config.evolution;
        let data_dir = self.config.host.data_dir.clone();
        let agents_dir = self.config.host.agents_dir.clone();
        let (suite_path, source_dir) = match &opts.create {
            Some(c) => (c.cases.clone(), c.cases.parent().map(Path::to_path_buf).unwrap_or_default()),
            None => {
                let d = locate_source(cfg, agent, opts.source.as_deref())?;
                (d.join("evolve.toml"), d)
            }
        };
        let (mut suite, suite_text) = Suite::load_with_text(&suite_path)?;
        if let Some(t) = opts.threshold {
            if !(0.0..1.0).contains(&t) {
                return Err(EvolveError::Config(format!("--threshold must be in [0, 1), not {t}")));
            }
            suite.objective.threshold = t;
        }
        let settings = BuildSettings::resolve(cfg, &data_dir).map_err(EvolveError::Build)?;
        let dir = run_dir(&data_dir, id);
        std::fs::create_dir_all(&dir).map_err(|e| EvolveError::Io(format!("{}: {e}", dir.display())))?;
        let mut timings = checkpoint.as_ref().map(|c| c.timings.clone()).unwrap_or_default();
        progress(&format!("evolution {id}: agent `{agent}`, suite {} ({} cases)", suite_path.display(), suite.cases.len()));

        // The incumbent: what the agents directory serves, else the source crate built.
        let served = self.registry.as_ref().and_then(|r| r.get(agent));
        if opts.create.is_some() && served.is_some() {
            return Err(EvolveError::Config(format!("agent `{agent}` already exists; evolve it instead")));
        }
        let served = served.filter(|a| a.source.is_some());
        let crate_source = || CandidateSource::read_dir(&source_dir.join("src")).map_err(EvolveError::Incumbent);
        // Seeded by the run's id: unknown to any candidate, different every
        // run, the same when a run is resumed (so fuel stays comparable).
        let run_seed = environment::BenchEnvironment::seed_from(id);
        let bench = Bench::new(&self.config, agent, &suite.limits, run_seed).await?;
        let repeats = if suite.objective.metric == Metric::WallTime { suite.objective.repeats } else { 1 };
        let (inc_hash, inc_origin, inc_source, inc_bench, inc_manifest) = if let Some(create) = &opts.create {
            let description: String = create.spec.chars().map(|c| if c.is_control() || c == '"' || c == '\\' { ' ' } else { c }).take(300).collect();
            let template = CREATE_TEMPLATE.replace("{name}", agent).replace("{description}", &description);
            (String::new(), "none (new agent)".to_string(), CandidateSource::single(&template), no_incumbent(&suite), None)
        } else {
            let (inc_bytes, inc_hash, inc_origin, inc_source, inc_installed) = match served {
                Some(a) => {
                    let path = a.source.clone().unwrap_or_default();
                    let bytes = std::fs::read(&path).map_err(|e| EvolveError::Incumbent(format!("{}: {e}", path.display())))?;
                    let hash = agentkernel_runtime::content_hash(&bytes);
                    let (source, origin) = match self.store.version(&hash)? {
                        Some(v) => (
                            CandidateSource {
                                files: serde_json::from_str(&v.source)
                                    .map_err(|e| EvolveError::Incumbent(format!("lineage source: {e}")))?,
                            },
                            "installed",
                        ),
                        // Nothing says this component was built from the
                        // crate's src/ (a rebuild never reproduces its
                        // bytes): lineage says so rather than vouch for it.
                        None => (crate_source()?, INSTALLED_UNVERIFIED),
                    };
                    (bytes, hash, origin.to_string(), source, true)
                }
                None => {
                    progress("building the incumbent from its source crate");
                    let source = crate_source()?;
                    let started = Instant::now();
                    let (work, package) = build_place(&data_dir, &source);
                    let built = sandbox_build::build(&settings, &source, &work, &package)
                        .await
                        .map_err(|e| match e {
                            e @ (BuildError::SandboxUnavailable(_) | BuildError::Setup(_)) => EvolveError::Build(e),
                            e => EvolveError::Incumbent(format!("the source crate does not build: {e}")),
                        })?;
                    timings.build_cold_ms.get_or_insert(ms(started));
                    let hash = agentkernel_runtime::content_hash(&built.component);
                    (built.component, hash, "source".to_string(), source, false)
                }
            };
            self.store.record_version(&AgentVersion {
                hash: inc_hash.clone(),
                agent: agent.into(),
                parent: None,
                origin: inc_origin.clone(),
                source: serde_json::to_string(&inc_source.files).unwrap_or_default(),
                evolution: Some(id.into()),
                created: now_unix(),
            })?;
            swap::keep_component(&data_dir, &inc_hash, &inc_bytes)?;
            if inc_installed && self.store.installs(agent)?.last().map(|i| i.hash.as_str()) != Some(inc_hash.as_str()) {
                // Installed by other means: recorded so rollback can return to it.
                self.store.record_install(&InstallRecord { agent: agent.into(), hash: inc_hash.clone(), reason: "found installed".into(), at: now_unix() })?;
            }

                let started = Instant::now();
            let inc_loaded = bench.load(&inc_bytes).await.map_err(|e| EvolveError::Incumbent(format!("cannot load: {e}")))?;
            let inc_bench = bench.run(&inc_loaded, &suite.cases, repeats).await;
            timings.benchmark_ms += ms(started);
            progress(&format!(
                "incumbent {}: {}/{} cases, {} fuel",
                &inc_hash[..12],
                inc_bench.passed,
                inc_bench.cases.len(),
                inc_bench.total_fuel
            ));
            (inc_hash, inc_origin, inc_source, inc_bench, Some(inc_loaded.manifest.clone()))
        };
        let mut generator = match &opts.generator {
            GeneratorSpec::Dir(p) => Generator::Dir(DirGenerator::open(p).map_err(EvolveError::Generator)?.with_timeout(settings.timeout)),
            GeneratorSpec::Llm => {
                if self.llm.endpoint().is_none() {
                    return Err(EvolveError::Generator(
                        "no LLM is configured ([llm] base_url, OPENAI_BASE_URL or OPENAI_API_KEY); use --generator dir:PATH".into(),
                    ));
                }
                let settings = LlmGeneratorSettings {
                    profile: cfg.llm_profile.clone(),
                    max_tokens_per_evolution: opts.max_tokens.map_or(cfg.max_tokens_per_evolution, |t| t.min(cfg.max_tokens_per_evolution)),
                    max_usd_per_evolution: opts.max_usd.map_or(cfg.max_usd_per_evolution, |d| d.min(cfg.max_usd_per_evolution)),
                    max_completion_tokens: 8000,
                    temperature: 0.4,
                };
                Generator::Llm(LlmGenerator::new(self.llm.clone(), settings, agent, generate::sdk_summary(&settings_sdk(&self.config))))
            }
        };
        let per_generation = opts.candidates.unwrap_or(match opts.generator {
            GeneratorSpec::Dir(_) => usize::MAX,
            GeneratorSpec::Llm => 3,
        });

        let resumed_after = checkpoint.as_ref().map(|c| c.generations.len() as u32);
        let mut state = checkpoint.unwrap_or(Checkpoint {
            generations: vec![],
            consumed: 0,
            parent_version: inc_hash.clone(),
            parent_source: inc_source.clone(),
            best: None,
            llm: LlmUsageTotals::default(),
            timings: Timings::default(),
        });
        generator.skip(state.consumed);
        if let Generator::Llm(l) = &mut generator {
            l.usage = state.llm.clone();
        }
        // What the generator is told about its parent: the best so far, else the incumbent.
        // (A checkpoint from before parents kept feedback has none: then
        // the incumbent's results are the best there is.)
        let parent_feedback = |best: Option<&Best>| {
            best.map(|b| b.feedback.clone()).filter(|f| !f.is_empty()).unwrap_or_else(|| feedback_lines("parent", &inc_bench))
        };
        let mut feedback = parent_feedback(state.best.as_ref());
        let visible: Vec<&suite::Case> = suite.visible().collect();
        // With a shared backend, any host that opted in may build and
        // benchmark the candidates: fuel is the same on every host of the
        // same engine, wall time is not, so a wall-time suite stays here.
        let spread = (jobs::spreads(&self.config) && suite.objective.metric != Metric::WallTime).then(|| {
            let per_job = settings.timeout
                + std::time::Duration::from_millis(
                    suite.limits.deadline_ms.saturating_mul(suite.cases.len() as u64 * u64::from(environment::VARIANTS * repeats)),
                );
            Spread {
                jobs: RunJobs::new(self.store.clone(), self.config.clone(), id),
                agent: agent.to_string(),
                suite_text: suite_text.clone(),
                run_seed,
                repeats,
                engine: bench.engine_hash(),
                per_job,
                policy: jobs::policy_hash(&self.config, agent),
                cases: suite.cases.iter().map(|c| (c.name.clone(), c.held_out)).collect(),
            }
        });
        if let Some(spread) = &spread {
            // A resumed run: what its earlier process left is not this one's.
            spread.jobs.clear().await;
        }

        for g in (state.generations.len() as u32 + 1)..=opts.generations.max(1) {
            if generator.exhausted() {
                progress("the generator has nothing more to offer");
                break;
            }
            let gen_started = Instant::now();
            // A copy: `account` updates `state` while the context is in use.
            let parent = state.parent_source.clone();
            let ctx = Context {
                agent,
                generation: g,
                count: per_generation,
                parent: &parent,
                visible_cases: visible.clone(),
                spec: opts.create.as_ref().map(|c| c.spec.as_str()),
                feedback: feedback.clone(),
            };
            let started = Instant::now();
            let candidates = generator.generate(&ctx).await;
            timings.generate_ms += ms(started);
            let candidates = match candidates {
                Ok(c) => c,
                Err(e) if state.generations.is_empty() => return Err(EvolveError::Generator(e)),
                Err(e) => {
                    progress(&format!("generation {g}: generator stopped: {e}"));
                    break;
                }
            };
            state.consumed += candidates.len();
            let total = candidates.len();
            let tally = Tally {
                agent,
                id,
                generation: g,
                create: opts.create.is_some(),
                suite: &suite,
                bench: &bench,
                repeats,
                inc_bench: &inc_bench,
                inc_manifest: inc_manifest.as_ref(),
                data_dir: &data_dir,
            };
            let mut out = GenerationOut::default();
            match &spread {
                Some(spread) => {
                    let evaluated = self.evaluate_spread(spread, candidates, &mut generator, &ctx, &settings, &mut timings, progress).await?;
                    for (report, built, measured) in evaluated {
                        self.account(&tally, &mut state, &mut timings, &mut out, report, built, measured, progress).await?;
                    }
                }
                None => {
                    for (i, candidate) in candidates.into_iter().enumerate() {
                        progress(&format!("generation {g}: candidate {}/{total} `{}`", i + 1, candidate.label));
                        let (report, built) = self.evaluate(candidate, &mut generator, &ctx, &settings, &mut timings, progress).await?;
                        self.account(&tally, &mut state, &mut timings, &mut out, report, built, None, progress).await?;
                    }
                }
            }
            let GenerationOut { reports, feedback: next_feedback } = out;
            let best_fuel = reports
                .iter()
                .filter(|r| r.verdict.as_ref().is_some_and(|v| v.wins))
                .filter_map(|r| r.bench.as_ref().map(|b| b.total_fuel))
                .min();
            state.generations.push(GenerationReport { index: g, candidates: reports, best_fuel, duration_ms: ms(gen_started) });
            if let Some(best) = &state.best {
                state.parent_version = best.version.clone();
                state.parent_source = best.source.clone();
            }
            feedback = parent_feedback(state.best.as_ref());
            feedback.extend(next_feedback);
            state.llm = generator.usage();
            state.timings = timings.clone();
            self.store.upsert_evolution(&EvolutionRecord {
                id: id.into(),
                agent: agent.into(),
                status: "running".into(),
                decision: None,
                started_at,
                finished_at: None,
                checkpoint: serde_json::to_string(&state).ok(),
                summary: None,
            })?;
        }

        if let Some(spread) = spread {
            spread.jobs.close().await;
        }
        // Shadow stage: the winner beside the incumbent on real recent requests.
        let shadow = match (&state.best, opts.create.is_none()) {
            (Some(best), true) => {
                let best_bench = state.generations.iter().flat_map(|g| &g.candidates).find(|c| c.label == best.label).and_then(|c| c.bench.as_ref());
                let suite_results = shadow::SuiteResults { cases: &suite.cases, incumbent: &inc_bench, candidate: best_bench };
                let report = self.shadow(&bench, agent, &data_dir, &inc_hash, &best.version, &suite_results).await?;
                progress(&format!(
                    "shadow: {} recent request(s), {} agreed, {} disagreement(s) the suite does not justify",
                    report.sampled,
                    report.agreed,
                    report.unjustified()
                ));
                Some(report)
            }
            _ => None,
        };

        // A created agent is registered only with the security review's approval.
        let security_review = match (&state.best, &opts.create) {
            (Some(best), Some(create)) if opts.swap => {
                let review = self.review_created(&bench, &data_dir, agent, &create.spec, best, opts.requested_by.as_deref()).await?;
                progress(&format!("security review ({}): {}", review.reviewer, review.verdict));
                Some(review)
            }
            _ => None,
        };

        // Decision.
        let mut installed = None;
        let mut calls_before_swap = None;
        let (decision, reason) = match &state.best {
            Some(best) if security_review.as_ref().is_some_and(|r| !r.allows()) => (
                "rejected",
                format!(
                    "`{}` ({}) {}, but the security review rejected it: {}",
                    best.label,
                    &best.version[..12],
                    best.reason,
                    security_review.as_ref().map_or("", |r| r.summary.as_str())
                ),
            ),
            Some(best) if opts.swap && shadow.as_ref().is_some_and(shadow::ShadowReport::blocks) => (
                "kept",
                format!(
                    "winner `{}` ({}) {}, but answered {} of {} recent real requests differently from the incumbent, \
                     and the suite does not justify it (shadow stage): not installed",
                    best.label,
                    &best.version[..12],
                    best.reason,
                    shadow.as_ref().map_or(0, shadow::ShadowReport::unjustified),
                    shadow.as_ref().map_or(0, |s| s.sampled),
                ),
            ),
            Some(best) if opts.swap && best.manifest_change.is_some() && !opts.approve_manifest_change => (
                "kept",
                format!(
                    "winner `{}` ({}) {}, but its manifest differs from the incumbent's ({}), which changes what routing sees: \
                     not installed without approval (--approve-manifest-change)",
                    best.label,
                    &best.version[..12],
                    best.reason,
                    best.manifest_change.as_deref().unwrap_or_default()
                ),
            ),
            // This host could not renew the run's lease for its whole time
            // to live: another host may be evolving the agent now.
            Some(best) if opts.swap && !lease.is_held() => (
                "kept",
                format!(
                    "winner `{}` ({}) {}, but this run lost its evolution lease (the store could not be reached to renew it): \
                     not installed",
                    best.label,
                    &best.version[..12],
                    best.reason
                ),
            ),
            Some(best) if opts.swap => {
                let started = Instant::now();
                calls_before_swap = self.registry.as_ref().map(|r| r.runtime().metrics().agent_call_counts(agent));
                let installing = swap::install(
                    &data_dir,
                    &agents_dir,
                    agent,
                    &best.version,
                    &if opts.create.is_some() { format!("create {id}") } else { format!("evolution {id}") },
                    &*self.store,
                    self.registry.as_deref(),
                )
                .await;
                timings.swap_ms = Some(ms(started));
                let approved = match &best.manifest_change {
                    Some(change) => format!(" (manifest change approved: {change})"),
                    None => String::new(),
                };
                match installing {
                    Ok(path) => {
                        progress(&format!("swapped in {} ({})", &best.version[..12], path.display()));
                        installed = Some(path);
                        ("swapped", format!("`{}` {}{approved}", best.label, best.reason))
                    }
                    // The registry refused the winner: the previous version
                    // was put back, and the report says so.
                    Err(e @ swap::SwapError::NotLoaded(_)) => {
                        calls_before_swap = None;
                        progress(&format!("swap failed: {e}"));
                        ("kept", format!("winner `{}` ({}) {}, but the swap failed: {e}", best.label, &best.version[..12], best.reason))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Some(best) => ("kept", format!("--no-swap: winner `{}` ({}) was not installed; it {}", best.label, &best.version[..12], best.reason)),
            None => {
                let tried = state.generations.iter().map(|g| g.candidates.len()).sum::<usize>();
                ("kept", format!("none of {tried} candidate(s) beat the incumbent"))
            }
        };

        let winner = state.best.as_ref().map(|b| WinnerReport {
            label: b.label.clone(),
            version: b.version.clone(),
            total_fuel: b.total_fuel,
            reason: b.reason.clone(),
            diff: report::diff(&inc_source, &b.source),
        });
        let report = Report {
            id: id.into(),
            agent: agent.into(),
            started_at,
            finished_at: Some(now_unix()),
            config: ReportConfig {
                generator: generator.name(),
                generations: opts.generations,
                candidates_per_generation: opts.candidates,
                threshold: suite.objective.threshold,
                metric: match suite.objective.metric {
                    Metric::Fuel => "fuel".into(),
                    Metric::WallTime => format!("wall-time ({} repeats)", suite.objective.repeats),
                },
                swap: opts.swap,
                sandbox: settings.sandbox.name().into(),
                bench_limits: suite.limits.clone(),
                source_dir: source_dir.display().to_string(),
                cases: suite.cases.len(),
                held_out_cases: suite.cases.iter().filter(|c| c.held_out).count(),
            },
            incumbent: IncumbentReport { version: inc_hash.clone(), origin: inc_origin, bench: inc_bench.clone() },
            generations: state.generations.clone(),
            winner,
            llm: generator.usage(),
            decision: decision.into(),
            reason: reason.clone(),
            timings,
            installed: installed.as_ref().map(|p| p.display().to_string()),
            resumed_after_generation: resumed_after,
            shadow,
            security_review: security_review.clone(),
        };
        let report_json = dir.join("report.json");
        let report_html = dir.join("report.html");
        let write = |path: &Path, text: String| std::fs::write(path, text).map_err(|e| EvolveError::Io(format!("{}: {e}", path.display())));
        write(&report_json, serde_json::to_string_pretty(&report).unwrap_or_default())?;
        write(&report_html, report::html(&report))?;
        progress(&format!("{decision}: {reason}\nreport: {}", report_html.display()));
        Ok(Outcome {
            evolution: id.into(),
            agent: agent.into(),
            reason,
            incumbent_version: inc_hash,
            installed,
            decision: decision.into(),
            winner_version: state.best.as_ref().map(|b| b.version.clone()),
            incumbent_fuel: inc_bench.total_fuel,
            winner_fuel: state.best.as_ref().map(|b| b.total_fuel),
            report_json,
            report_html,
            calls_before_swap,
            security_review,
        })
    }

    /// Loads the winner of a creation as production would and has it reviewed.
    async fn review_created(
        &self,
        bench: &Bench,
        data_dir: &Path,
        agent: &str,
        spec: &str,
        best: &Best,
        requested_by: Option<&str>,
    ) -> Result<review::SecurityReview, EvolveError> {
        let path = swap::components_dir(data_dir).join(format!("{}.wasm", best.version));
        let bytes = tokio::fs::read(&path).await.map_err(|e| EvolveError::Io(format!("{}: {e}", path.display())))?;
        let candidate = bench.load(&bytes).await.map_err(|e| EvolveError::Io(format!("security review: cannot load the winner: {e}")))?;
        let subject = review::ReviewSubject { agent, spec, candidate: &candidate, source: &best.source, requested_by };
        Ok(review::review(self.registry.as_deref(), &subject).await)
    }

    /// The shadow stage for `winner` against `incumbent` (both kept
    /// components), on the agent's most recent real requests.
    async fn shadow(
        &self,
        bench: &Bench,
        agent: &str,
        data_dir: &Path,
        incumbent: &str,
        winner: &str,
        suite: &shadow::SuiteResults<'_>,
    ) -> Result<shadow::ShadowReport, EvolveError> {
        let store = self.store.clone();
        let agent_name = agent.to_string();
        let requests = agentkernel_storage::blocking::call(agentkernel_storage::blocking::DEFAULT_TIMEOUT, move || {
            store.recent_requests(&agent_name, shadow::SAMPLE)
        })
        .await?;
        if requests.is_empty() {
            return Ok(shadow::ShadowReport::default());
        }
        let load = async |hash: &str| {
            let path = swap::components_dir(data_dir).join(format!("{hash}.wasm"));
            let bytes = tokio::fs::read(&path).await.map_err(|e| EvolveError::Io(format!("{}: {e}", path.display())))?;
            bench.load(&bytes).await.map_err(|e| EvolveError::Io(format!("shadow stage: cannot load {hash}: {e}")))
        };
        let (before, after) = (load(incumbent).await?, load(winner).await?);
        Ok(shadow::compare(bench, &before, &after, &requests, suite).await)
    }

    /// Builds one candidate here (repairing it through the generator when
    /// it does not compile and the generator can); the report and the component.
    #[allow(clippy::too_many_arguments)]
    async fn evaluate(
        &self,
        mut candidate: Candidate,
        generator: &mut Generator,
        ctx: &Context<'_>,
        settings: &BuildSettings,
        timings: &mut Timings,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<(CandidateReport, Option<(Vec<u8>, CandidateSource)>), EvolveError> {
        let mut repairs = 0;
        loop {
            let mut report = new_report(&candidate, repairs);
            let source = match &candidate.source {
                Ok(s) => s.clone(),
                Err(e) => {
                    report.build.kind = Some("no-source".into());
                    report.build.errors = vec![e.clone()];
                    progress(&format!("  no source: {e}"));
                    return Ok((report, None));
                }
            };
            let started = Instant::now();
            let (work, package) = build_place(&self.config.host.data_dir, &source);
            let result = sandbox_build::build(settings, &source, &work, &package).await;
            let took = ms(started);
            report.build.duration_ms = took;
            match BuildOutcome::from(result) {
                BuildOutcome::Built(built) => {
                    record_build_time(timings, took);
                    report.build.ok = true;
                    progress(&format!("  built in {took:.0} ms"));
                    // The (possibly repaired) source is what lineage keeps.
                    return Ok((report, Some((built.component, source))));
                }
                BuildOutcome::Unavailable(e) => return Err(EvolveError::Build(e)),
                BuildOutcome::Failed { kind, errors, violations } => {
                    if kind == "compile-error" {
                        record_build_time(timings, took);
                        progress(&format!("  does not build ({} error(s))", errors.len()));
                        if let Some(fixed) = self.repair(generator, ctx, &candidate, repairs, &errors).await {
                            repairs += 1;
                            progress(&format!("  repair {repairs}"));
                            candidate = fixed;
                            continue;
                        }
                    } else if kind == "rejected" {
                        progress(&format!("  rejected before building: {}", violations.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("; ")));
                    }
                    report.build.kind = Some(kind.into());
                    report.build.errors = errors;
                    report.build.violations = violations;
                    return Ok((report, None));
                }
            }
        }
    }

    /// A repaired candidate, when repairs are left and the generator can.
    async fn repair(&self, generator: &mut Generator, ctx: &Context<'_>, candidate: &Candidate, repairs: u32, errors: &[String]) -> Option<Candidate> {
        if repairs >= self.config.evolution.repairs {
            return None;
        }
        generator.repair(ctx, candidate, &errors.join("\n")).await
    }

    /// Records a built candidate's version, benchmarks it here unless
    /// another host measured it, judges it against the incumbent and keeps
    /// it as the best when it wins; what the next generation is told.
    #[allow(clippy::too_many_arguments)]
    async fn account(
        &self,
        t: &Tally<'_>,
        state: &mut Checkpoint,
        timings: &mut Timings,
        out: &mut GenerationOut,
        mut report: CandidateReport,
        built: Option<(Vec<u8>, CandidateSource)>,
        measured: Option<Measured>,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<(), EvolveError> {
        let Some((bytes, source)) = built else {
            out.feedback.push(format!(
                "{}: did not build: {}",
                report.label,
                report.build.errors.first().cloned().or_else(|| report.build.violations.first().map(|v| v.to_string())).unwrap_or_default()
            ));
            out.reports.push(report);
            return Ok(());
        };
        let hash = agentkernel_runtime::content_hash(&bytes);
        // A new agent's first versions have no parent.
        let parent = Some(state.parent_version.clone()).filter(|p| !p.is_empty());
        self.store.record_version(&AgentVersion {
            hash: hash.clone(),
            agent: t.agent.into(),
            parent: parent.clone(),
            origin: report.origin.clone(),
            source: serde_json::to_string(&source.files).unwrap_or_default(),
            evolution: Some(t.id.into()),
            created: now_unix(),
        })?;
        swap::keep_component(t.data_dir, &hash, &bytes)?;
        report.version = Some(hash);
        report.parent = parent;
        let measured = match measured {
            Some(m) => m,
            None => t.bench.measure(&bytes, &t.suite.cases, t.repeats).await,
        };
        timings.benchmark_ms += measured.ms;
        report.bench_host = measured.host;
        report.engine = Some(measured.engine);
        match measured.outcome {
            Ok((manifest, b)) => {
                report.manifest_change = t.inc_manifest.and_then(|m| manifest_change(m, &manifest));
                if let Some(change) = &report.manifest_change {
                    progress(&format!("  its manifest differs from the incumbent's: {change}"));
                }
                let verdict = if t.create { select::judge_new(&b) } else { select::judge(t.inc_bench, &b, &t.suite.objective) };
                progress(&format!(
                    "  {}/{} cases, {} fuel: {} ({})",
                    b.passed,
                    b.cases.len(),
                    b.total_fuel,
                    if verdict.wins { "wins" } else { "loses" },
                    verdict.reason
                ));
                out.feedback.extend(feedback_lines(&report.label, &b));
                report.bench = Some(b);
                report.verdict = Some(verdict);
            }
            Err(msg) => {
                progress(&format!("  not loadable: {msg}"));
                out.feedback.push(format!("{}: could not be loaded: {msg}", report.label));
                report.load_error = Some(msg);
            }
        }
        if let (Some(b), Some(v)) = (&report.bench, &report.verdict) {
            if v.wins && better(b, state.best.as_ref()) {
                state.best = Some(Best {
                    label: report.label.clone(),
                    version: report.version.clone().unwrap_or_default(),
                    generation: t.generation,
                    passed: b.passed,
                    total_fuel: b.total_fuel,
                    reason: v.reason.clone(),
                    source: source.clone(),
                    manifest_change: report.manifest_change.clone(),
                    feedback: feedback_lines("parent", b),
                });
            }
        }
        out.reports.push(report);
        Ok(())
    }
}

/// Where a source is built, and its crate name: both follow from the
/// source's content (and the host's data directory), so the same source
/// always builds to the same component (same path, same name, so the same
/// bytes) and is only recompiled when it changed, while different sources
/// never share an artifact path in the shared target directory.
fn build_place(data_dir: &Path, source: &CandidateSource) -> (PathBuf, String) {
    // The data directory is part of the key: hosts sharing one target
    // directory never share an artifact path either.
    let keyed = format!("{}\n{}", data_dir.display(), serde_json::to_string(&source.files).unwrap_or_default());
    let digest = agentkernel_runtime::content_hash(keyed.as_bytes());
    let key = &digest[..20];
    (build_dir(data_dir, key), format!("c-{key}"))
}

/// Where the candidate keyed `key` (its package name without `c-`) builds.
fn build_dir(data_dir: &Path, key: &str) -> PathBuf {
    data_dir.join("evolve").join("builds").join(key)
}

/// The first build of a run is the cold one; a resumed run keeps the cold
/// time its checkpoint recorded.
fn record_build_time(timings: &mut Timings, took: f64) {
    if timings.build_cold_ms.is_none() {
        timings.build_cold_ms = Some(took);
    } else {
        timings.build_warm_ms.push(took);
    }
}

/// Lineage origin of an installed incumbent whose hash lineage does not
/// know: its source is taken from the crate's `src/`, unverified.
pub const INSTALLED_UNVERIFIED: &str = "installed (source unverified: taken from the crate's src/)";

/// How `candidate`'s manifest differs from `incumbent`'s in what routing
/// reads (name, description, skills and their keywords); the version may
/// change freely.
pub fn manifest_change(incumbent: &agentkernel_runtime::ManifestInfo, candidate: &agentkernel_runtime::ManifestInfo) -> Option<String> {
    let mut changes = Vec::new();
    if incumbent.name != candidate.name {
        changes.push(format!("name `{}` → `{}`", incumbent.name, candidate.name));
    }
    if incumbent.description != candidate.description {
        changes.push(format!("description {:?} → {:?}", incumbent.description, candidate.description));
    }
    let skills = |m: &agentkernel_runtime::ManifestInfo| -> Vec<String> {
        m.skills.iter().map(|s| format!("{} [{}] {:?}", s.name, s.keywords.join(", "), s.description)).collect()
    };
    let (before, after) = (skills(incumbent), skills(candidate));
    if before != after {
        let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join("; ") };
        changes.push(format!("skills {} → {}", list(&before), list(&after)));
    }
    (!changes.is_empty()).then(|| changes.join("; "))
}

/// The incumbent's results when there is none: every case unanswered.
fn no_incumbent(suite: &Suite) -> BenchResult {
    BenchResult {
        cases: suite
            .cases
            .iter()
            .map(|c| bench::CaseResult {
                name: c.name.clone(),
                held_out: c.held_out,
                passed: false,
                failures: vec!["no incumbent".into()],
                fuel: None,
                wall_ms: vec![],
                error: Some("none".into()),
                error_message: None,
                text: String::new(),
                llm_calls: 0,
            })
            .collect(),
        passed: 0,
        total_fuel: 0,
        total_wall_ms: vec![],
        duration_ms: 0.0,
    }
}

fn settings_sdk(config: &HostConfig) -> PathBuf {
    config.evolution.sdk.clone().unwrap_or_else(agentkernel_core::scaffold::default_sdk_path)
}

/// `a` beats the best so far: more cases passed, then less fuel.
fn better(a: &BenchResult, best: Option<&Best>) -> bool {
    match best {
        None => true,
        Some(b) => a.passed > b.passed || (a.passed == b.passed && a.total_fuel < b.total_fuel),
    }
}

/// What a generator learns about a component: visible cases only.
fn feedback_lines(who: &str, b: &BenchResult) -> Vec<String> {
    b.cases
        .iter()
        .filter(|c| !c.held_out)
        .map(|c| match (&c.fuel, c.passed) {
            (Some(f), true) => format!("{who}: case {}: passed, fuel {f}", c.name),
            _ => format!("{who}: case {}: FAILED: {}", c.name, c.failures.join("; ")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_specs_parse() {
        assert_eq!("llm".parse::<GeneratorSpec>().unwrap(), GeneratorSpec::Llm);
        assert_eq!("dir:a/b".parse::<GeneratorSpec>().unwrap(), GeneratorSpec::Dir("a/b".into()));
        assert!("dir:".parse::<GeneratorSpec>().is_err());
        assert!("gpt".parse::<GeneratorSpec>().is_err());
    }

    #[test]
    fn evolution_config_defaults_and_opt_out() {
        let c = EvolutionConfig::default();
        assert_eq!(c.sandbox, SandboxMode::Bwrap);
        assert_eq!(c.source_roots, [PathBuf::from("agents")]);
        let c: EvolutionConfig = toml::from_str("sandbox = \"none\"\nrepairs = 0").unwrap();
        assert_eq!(c.sandbox, SandboxMode::None);
        assert!(toml::from_str::<EvolutionConfig>("sandbox = \"docker\"").is_err());
    }
}
