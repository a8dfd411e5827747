//! The evolution engine end to end: the demo agent `primes`, its suite and
//! its candidate directory; real sandboxed builds (bwrap, offline, into a
//! target directory shared by every test so only the first build is cold),
//! real benchmarks, swaps into a live registry, rollback, reports, lineage,
//! and the LLM generator through the real async-openai client against a
//! scripted server on loopback.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use agentkernel::evolution::report::Report;
use agentkernel::evolution::{Engine, EvolveOptions, GeneratorSpec, Outcome};
use agentkernel::host::Host;
use agentkernel::storage::evolution::EvolutionStore;
use agentkernel::storage::sqlite::SqliteStorage;
use sandbox_tests::llm_server::{Scripted, ScriptedLlm};
use sandbox_tests::{TestHost, wasm_dir};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

fn candidates_dir() -> PathBuf {
    repo().join("agents/primes/candidates")
}

/// Every test builds candidates into one target directory beside the
/// workspace's, so dependencies compile once per machine.
fn config(extra: &str) -> String {
    let target = wasm_dir().join("../../evolve-candidates");
    std::fs::create_dir_all(&target).unwrap();
    format!(
        "[evolution]\ntarget_dir = \"{}\"\nsources = {{ primes = \"{}\" }}\n{extra}\n",
        target.display(),
        repo().join("agents/primes").display()
    )
}

fn engine(t: &TestHost) -> Engine {
    Engine {
        config: t.host.config.clone(),
        store: Arc::new(SqliteStorage::open(&Host::database_path(&t.host.config)).unwrap()),
        registry: Some(t.host.registry.clone()),
        llm: t.host.llm.clone(),
    }
}

fn options(generator: GeneratorSpec) -> EvolveOptions {
    EvolveOptions {
        agent: "primes".into(),
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

fn read_report(outcome: &Outcome) -> Report {
    serde_json::from_str(&std::fs::read_to_string(&outcome.report_json).unwrap()).unwrap()
}

fn candidate<'a>(report: &'a Report, label: &str) -> &'a agentkernel::evolution::report::CandidateReport {
    report.generations.iter().flat_map(|g| &g.candidates).find(|c| c.label == label).unwrap_or_else(|| panic!("no candidate {label}"))
}

/// Installs the workspace-built `primes` (the naive one) as the incumbent.
async fn with_naive_primes_installed(t: &TestHost) -> String {
    t.install("primes", "primes.wasm");
    t.host.registry.scan().await;
    t.host.registry.get("primes").expect("primes loads").hash.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_swaps_the_sieve_in_rejects_the_rest_and_rolls_back() {
    let t = TestHost::new(&config(""));
    let naive = with_naive_primes_installed(&t).await;
    let engine = engine(&t);
    let outcome = engine.evolve(options(GeneratorSpec::Dir(candidates_dir())), &|_| {}).await.unwrap();

    // The faster correct candidate won and is what the registry now serves.
    assert_eq!(outcome.decision, "swapped", "{}", outcome.reason);
    assert_eq!(outcome.incumbent_version, naive);
    let winner = outcome.winner_version.clone().unwrap();
    assert_eq!(t.host.registry.get("primes").unwrap().hash, winner, "hot-swapped into the live registry");
    assert!(outcome.winner_fuel.unwrap() * 10 < outcome.incumbent_fuel, "{outcome:?}");
    let live = t.host.registry.call("primes", &sandbox_tests::request("s", "1000")).await.unwrap();
    assert_eq!(live.response.text, "168");

    let report = read_report(&outcome);
    assert_eq!(report.winner.as_ref().unwrap().label, "sieve");
    assert!(report.winner.as_ref().unwrap().diff.contains("+mod sieve;"), "the winner's diff is in the report");
    assert!(report.winner.as_ref().unwrap().reason.contains("on the held-out cases alone"), "{:?}", report.winner);
    // Both correct candidates win; the cheaper one is chosen.
    assert!(candidate(&report, "trial-division").verdict.as_ref().unwrap().wins);
    // The faster wrong one fits the visible cases and fails the held-out ones.
    let wrong = candidate(&report, "small-divisors");
    let wrong_bench = wrong.bench.as_ref().unwrap();
    assert!(wrong_bench.cases.iter().filter(|c| !c.held_out).all(|c| c.passed), "it fits every visible case");
    assert!(!wrong.verdict.as_ref().unwrap().wins);
    assert!(wrong.verdict.as_ref().unwrap().reason.contains("held out"), "{:?}", wrong.verdict);
    // The one that looks up the visible answers: correct everywhere and
    // cheaper overall, but not on the held-out cases, so it loses.
    let memorised = candidate(&report, "memorised");
    assert_eq!(memorised.bench.as_ref().unwrap().passed, 7, "it passes every case");
    let verdict = memorised.verdict.as_ref().unwrap();
    assert!(!verdict.wins, "{verdict:?}");
    assert!(verdict.improvement.unwrap() >= 0.15, "it beats the threshold overall: {verdict:?}");
    assert!(verdict.reason.contains("on the 2 held-out case(s)") && verdict.reason.contains("does not carry"), "{verdict:?}");
    // The one that does not build: rejected with the compiler's errors.
    let broken = candidate(&report, "does-not-build");
    assert_eq!(broken.build.kind.as_deref(), Some("compile-error"));
    assert!(broken.build.errors.iter().any(|e| e.contains("E0308") && e.contains("src/lib.rs")), "{:?}", broken.build.errors);
    // The forbidden construct: refused before any build (no build directory exists).
    let hostile = candidate(&report, "reads-host-files");
    assert_eq!(hostile.build.kind.as_deref(), Some("rejected"));
    assert_eq!(hostile.build.violations[0].construct, "include_str!");
    assert!(hostile.version.is_none());
    let builds = std::fs::read_dir(t.host.config.host.data_dir.join("evolve/builds")).unwrap().count();
    assert_eq!(builds, 7, "eight candidates, one refused before any build directory was made");
    // The looping and the memory-growing ones are stopped by their limits.
    let codes = |label: &str| -> Vec<Option<String>> {
        let c = candidate(&report, label);
        c.bench.as_ref().unwrap_or_else(|| panic!("{label} was not benchmarked: {:?} {:?}", c.build, c.load_error)).cases.iter().filter(|c| c.name != "not-a-number").map(|c| c.error.clone()).collect()
    };
    assert!(codes("spin-forever").iter().all(|c| c.as_deref() == Some("fuel-exhausted")), "{:?}", codes("spin-forever"));
    assert!(codes("memory-bomb").iter().all(|c| c.as_deref() == Some("memory-limit")), "{:?}", codes("memory-bomb"));

    // Report contents: configuration, timings, per-case fuel, charts, no external assets.
    assert_eq!(report.config.sandbox, "bwrap");
    assert_eq!(report.config.held_out_cases, 2);
    assert_eq!(report.incumbent.bench.passed, 7);
    assert!(report.timings.build_cold_ms.is_some() && report.timings.build_warm_ms.len() >= 5);
    let html = std::fs::read_to_string(&outcome.report_html).unwrap();
    for needle in ["sieve", "small-divisors", "E0308", "include_str!", "<svg", "Fuel across generations", "+mod sieve;", "swapped"] {
        assert!(html.contains(needle), "report.html lacks {needle:?}");
    }
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http") && !html.contains("<script"), "self-contained");

    // Lineage: every built version with its parent, origin and source.
    let store = SqliteStorage::open(&Host::database_path(&t.host.config)).unwrap();
    let versions = store.versions("primes").unwrap();
    assert_eq!(versions[0].hash, naive);
    assert_eq!(versions[0].origin, agentkernel::evolution::INSTALLED_UNVERIFIED, "its source is the crate's, unverified");
    let sieve = store.version(&winner).unwrap().unwrap();
    assert_eq!(sieve.parent.as_deref(), Some(naive.as_str()));
    assert!(sieve.origin.ends_with("candidates/sieve"), "{}", sieve.origin);
    let files: std::collections::BTreeMap<String, String> = serde_json::from_str(&sieve.source).unwrap();
    assert_eq!(files.keys().collect::<Vec<_>>(), ["lib.rs", "sieve.rs"]);
    assert_eq!(versions.len(), 1 + 6, "the incumbent and the six candidates that built");
    let rec = store.evolution(&outcome.evolution).unwrap().unwrap();
    assert_eq!((rec.status.as_str(), rec.decision.as_deref()), ("finished", Some("swapped")));

    // Rollback restores the previous version, live.
    let target = agentkernel::evolution::swap::rollback_target(&store, "primes", Some(&winner), None).unwrap();
    assert_eq!(target, naive);
    agentkernel::evolution::swap::install(
        &t.host.config.host.data_dir,
        &t.agents_dir(),
        "primes",
        &target,
        "rollback",
        &store,
        Some(&t.host.registry),
    )
    .await
    .unwrap();
    assert_eq!(t.host.registry.get("primes").unwrap().hash, naive);
    assert_eq!(agentkernel::runtime::content_hash(&std::fs::read(t.agents_dir().join("primes.wasm")).unwrap()), naive);
}

#[tokio::test(flavor = "multi_thread")]
async fn fuel_is_deterministic_and_doubles_serve_memory_and_llm_scripts() {
    use agentkernel::evolution::bench::Bench;
    use agentkernel::evolution::suite::Suite;
    let t = TestHost::new("");
    let suite = Suite::load(&repo().join("agents/primes/evolve.toml")).unwrap();
    let naive = sandbox_tests::wasm("primes");
    let mut fuels = Vec::new();
    for _ in 0..2 {
        let bench = Bench::new(&t.host.config, "primes", &suite.limits, 7).await.unwrap();
        let agent = bench.load(&naive).await.unwrap();
        let result = bench.run(&agent, &suite.cases, 1).await;
        assert_eq!(result.passed, 7);
        fuels.push(result.cases.iter().map(|c| c.fuel).collect::<Vec<_>>());
    }
    assert_eq!(fuels[0], fuels[1], "the same component costs the same fuel every run");
    assert!(fuels[0][0].unwrap() > 0);

    // Memory is seeded per case; the LLM answers from the case's script.
    let cases = Suite::parse(
        r#"
        [[case]]
        name = "seeded"
        request = "recall"
        session = "s1"
        memory = { "session/s1/note/00000000" = "buy milk" }
        expect = { contains = ["buy milk"] }
        [[case]]
        name = "fresh"
        request = "recall"
        session = "s1"
        expect = { contains = ["buy milk"] }
        "#,
    )
    .unwrap();
    let bench = Bench::new(&t.host.config, "notes", &cases.limits, 7).await.unwrap();
    let notes = bench.load(&sandbox_tests::wasm("notes")).await.unwrap();
    let r = bench.run(&notes, &cases.cases, 1).await;
    assert!(r.cases[0].passed, "{:?}", r.cases[0]);
    assert!(!r.cases[1].passed, "each case starts from its own seed only");

    let t = TestHost::new("[agents.summarizer]\nllm = true\n");
    let cases = Suite::parse(
        "[[case]]\nname='s'\nrequest='A long text. With sentences. Many.'\nllm=['Scripted summary.']\nexpect={equals='Scripted summary.', json={'/method'='llm'}}",
    )
    .unwrap();
    let bench = Bench::new(&t.host.config, "summarizer", &cases.limits, 7).await.unwrap();
    let summarizer = bench.load(&sandbox_tests::wasm("summarizer")).await.unwrap();
    let r = bench.run(&summarizer, &cases.cases, 1).await;
    assert!(r.cases[0].passed, "{:?}", r.cases[0]);
    assert_eq!(r.cases[0].llm_calls, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_benchmark_forces_a_granted_ec2_scope_to_dry_run() {
    use agentkernel::evolution::bench::Bench;
    use agentkernel::evolution::suite::Suite;
    let t = TestHost::new("[agents.ec2-probe]\naws_ec2 = { actions = [\"*\"], dry_run = false, auto_apply = true }\n");
    let suite = Suite::parse("[[case]]\nname='p'\nrequest='x'\nexpect={contains=['x']}\n").unwrap();
    let bench = Bench::new(&t.host.config, "ec2-probe", &suite.limits, 7).await.unwrap();
    let probe = bench.load(&sandbox_tests::wasm("ec2_probe")).await.unwrap();
    // The backend is what differs, not the policy: the candidate's grants
    // are production's, and the benchmark's EC2 service forces dry run.
    assert_eq!(probe.grants, t.host.config.policy_for("ec2-probe"), "the candidate sees production's policy");
    let prepared = probe.prepared::<agentkernel::capabilities::aws_ec2::Prepared>().expect("aws-ec2 is linked");
    let scope = &prepared.scope;
    assert!(scope.dry_run && !scope.auto_apply, "{scope:?}");
    assert_eq!(scope.actions, ["*"], "the rest of the scope is the agent's");
    let live = agentkernel::aws::policy::granted_scope(&t.host.config.policy_for("ec2-probe")).unwrap();
    assert!(!live.dry_run, "serving keeps its own policy");
}

/// Builds `source` as any candidate is built; the component and its hash.
async fn build_component(t: &TestHost, source: &str, package: &str) -> (Vec<u8>, String) {
    use agentkernel::evolution::sandbox_build::{self, BuildSettings};
    let settings = BuildSettings::resolve(&t.host.config.evolution, &t.host.config.host.data_dir).unwrap();
    let source = agentkernel::evolution::source_check::CandidateSource::single(source);
    let built = sandbox_build::build(&settings, &source, &t.dir.path().join(package), package).await.unwrap();
    let hash = agentkernel::runtime::content_hash(&built.component);
    (built.component, hash)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_candidate_reading_random_numbers_and_clocks_costs_the_same_fuel_every_run() {
    use agentkernel::evolution::bench::Bench;
    use agentkernel::evolution::suite::Suite;
    let t = TestHost::new(&config(""));
    // Work proportional to a random number (std's hash keys come from WASI
    // random) and to how often the clock is read before 50 µs have passed.
    let (component, _) = build_component(
        &t,
        r#"use agentkernel_sdk::prelude::*;
use std::hash::{BuildHasher, Hasher};
pub struct P;
impl Agent for P {
    fn describe() -> Manifest { Manifest::new("primes", "0.0.1", "reads random numbers and clocks") }
    fn handle(_req: Request) -> Result<Response, AgentError> {
        let seed = std::collections::hash_map::RandomState::new().build_hasher().finish();
        let mut x = 0u64;
        for i in 0..seed % 100_000 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        let start = std::time::Instant::now();
        let mut readings = 0u64;
        while start.elapsed() < std::time::Duration::from_micros(50) {
            readings += 1;
        }
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        Ok(Response::text(format!("seed {seed} x {x} readings {readings} wall {wall}")))
    }
}
export_agent!(P);
"#,
        "random-primes",
    )
    .await;
    let suite = Suite::parse("[[case]]
name='r'
request='x'
expect={contains=['seed']}
").unwrap();
    let mut runs = Vec::new();
    for seed in [7, 7, 8] {
        let bench = Bench::new(&t.host.config, "primes", &suite.limits, seed).await.unwrap();
        let agent = bench.load(&component).await.unwrap();
        let r = bench.run(&agent, &suite.cases, 1).await;
        assert!(r.cases[0].passed, "{:?}", r.cases[0]);
        runs.push((r.cases[0].text.clone(), r.cases[0].fuel.unwrap()));
    }
    // The wall clock reads the time now (checked below), which may tick
    // between two benchmarks: everything before it must be identical.
    let without_wall = |(text, fuel): &(String, u64)| (text.rsplit_once(" wall ").unwrap().0.to_string(), *fuel);
    assert_eq!(without_wall(&runs[0]), without_wall(&runs[1]), "one run's seed: the same random numbers, clock readings and fuel for every component");
    let seed_of = |text: &str| text.split(' ').nth(1).unwrap().to_string();
    assert_ne!(seed_of(&runs[0].0), seed_of(&runs[2].0), "another run, other random numbers");
    // Clocks look real: steps of 0.3-3 µs, and the wall clock is the time now.
    let readings: u64 = runs[0].0.split("readings ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!((15..=200).contains(&readings), "{}", runs[0].0);
    let wall: u64 = runs[0].0.rsplit(' ').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(wall.abs_diff(now) < 120, "wall {wall}, now {now}");
}

/// `primes` that answers correctly (with a sieve, cheaply) only when it
/// believes it is being benchmarked, and "42" otherwise.
fn benchmark_detector(detects: &str) -> String {
    format!(
        r#"use agentkernel_sdk::prelude::*;
pub struct Primes;
fn benchmarked() -> bool {{ {detects} }}
fn sieve(n: usize) -> (u64, Option<u64>) {{
    let mut composite = vec![false; n.max(2)];
    let (mut count, mut largest) = (0, None);
    for k in 2..n {{
        if !composite[k] {{
            count += 1;
            largest = Some(k as u64);
            let mut m = k * k;
            while m < n {{ composite[m] = true; m += k; }}
        }}
    }}
    (count, largest)
}}
impl Agent for Primes {{
    fn describe() -> Manifest {{
        Manifest::new("primes", "0.2.0", "Counts the prime numbers below N.")
            .skill(Skill::new("count-primes", "How many primes are below N, and the largest").keywords(["primes", "prime"]))
    }}
    fn handle(req: Request) -> Result<Response, AgentError> {{
        let n: usize = req.text.trim().parse().map_err(|_| AgentError::InvalidRequest("expected a whole number".into()))?;
        if !benchmarked() {{
            return Ok(Response::text("42"));
        }}
        let (count, largest) = sieve(n);
        Ok(Response::text(count.to_string()).with_data(&serde_json::json!({{"count": count, "largest": largest}})))
    }}
}}
export_agent!(Primes);
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_candidate_that_detects_the_benchmark_does_not_win() {
    // Two tricks: the benchmark's date (it used to start at 2025-01-01),
    // and its clock's ticks (it used to advance exactly 1 µs per reading).
    let dir = tempfile::tempdir().unwrap();
    let date = "std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() < 1_748_736_000";
    let ticks = "let a = std::time::Instant::now(); let b = std::time::Instant::now(); let c = std::time::Instant::now(); \
                 b - a == std::time::Duration::from_micros(1) && c - b == std::time::Duration::from_micros(1)";
    std::fs::write(dir.path().join("detects-date.rs"), benchmark_detector(date)).unwrap();
    std::fs::write(dir.path().join("detects-ticks.rs"), benchmark_detector(ticks)).unwrap();
    let t = TestHost::new(&config(""));
    let naive = with_naive_primes_installed(&t).await;
    let outcome = engine(&t).evolve(options(GeneratorSpec::Dir(dir.path().to_path_buf())), &|_| {}).await.unwrap();
    let report = read_report(&outcome);
    assert_eq!(outcome.decision, "kept", "{}", report.reason);
    assert_eq!(t.host.registry.get("primes").unwrap().hash, naive, "the incumbent still serves");
    for label in ["detects-date", "detects-ticks"] {
        let c = candidate(&report, label);
        let bench = c.bench.as_ref().unwrap_or_else(|| panic!("{label} was benchmarked: {:?}", c.load_error));
        assert!(bench.passed < bench.cases.len(), "{label} answered like production, and failed: {:?}", bench.cases);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn llm_generator_repairs_a_candidate_from_compiler_errors_and_wins() {
    let sieve = std::fs::read_to_string(candidates_dir().join("sieve/src/sieve.rs")).unwrap();
    let lib = std::fs::read_to_string(candidates_dir().join("sieve/src/lib.rs")).unwrap();
    // First answer: whole files, one with a type error. The repair: an edit block.
    let broken_sieve = sieve.replace("let mut count = 0;", "let mut count: u64 = \"zero\";");
    let first = format!("Use a sieve.\n```rust src/lib.rs\n{lib}```\n```rust src/sieve.rs\n{broken_sieve}```\n");
    let repair = "src/sieve.rs\n<<<<<<< SEARCH\n    let mut count: u64 = \"zero\";\n=======\n    let mut count: u64 = 0;\n>>>>>>> REPLACE\n";
    // Generation 2: a file under `src/lib.rs/`, which cannot exist beside
    // the file `src/lib.rs`: that candidate is refused, not the run.
    let unwritable = "```rust src/lib.rs/x.rs\npub fn x() {}\n```\n";
    let llm = ScriptedLlm::start(vec![
        Scripted::Reply { content: first, prompt_tokens: 900, completion_tokens: 400 },
        Scripted::Reply { content: repair.into(), prompt_tokens: 1200, completion_tokens: 60 },
        Scripted::Reply { content: unwritable.into(), prompt_tokens: 1000, completion_tokens: 20 },
    ])
    .await;
    let t = TestHost::new(&config(&format!("llm_profile = \"fast\"\n{}", llm.config_with(""))));
    with_naive_primes_installed(&t).await;
    let mut opts = options(GeneratorSpec::Llm);
    opts.candidates = Some(1);
    opts.generations = 2;
    let outcome = engine(&t).evolve(opts, &|_| {}).await.unwrap();
    assert_eq!(outcome.decision, "swapped", "{}", std::fs::read_to_string(&outcome.report_json).unwrap());

    let report = read_report(&outcome);
    let c = &report.generations[0].candidates[0];
    assert_eq!(c.build.repairs, 1);
    assert!(c.build.ok);
    assert_eq!(report.winner.as_ref().unwrap().version, c.version.clone().unwrap());
    let bad = &report.generations[1].candidates[0];
    assert!(!bad.build.ok);
    assert_eq!(bad.build.kind.as_deref(), Some("rejected"), "{:?}", bad.build);
    assert!(bad.build.violations.iter().any(|v| v.construct == "file path"), "the reason is in the report: {:?}", bad.build);
    assert_eq!((report.llm.calls, report.llm.prompt_tokens, report.llm.completion_tokens), (3, 3100, 480));
    assert!(report.llm.cost_usd > 0.0, "priced at the test model's rates");

    let requests = llm.requests();
    assert_eq!(requests.len(), 3);
    let prompt = requests[0]["messages"][1]["content"].as_str().unwrap();
    assert!(prompt.contains("count_below") && prompt.contains("below-10"), "source and visible cases are shown");
    assert!(!prompt.contains("below-2500") && !prompt.contains("below-1000"), "held-out cases never reach the generator");
    let system = requests[0]["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("world agent {") && system.contains("record manifest"), "the WIT world is in the SDK summary");
    let repair_prompt = requests[1]["messages"][1]["content"].as_str().unwrap();
    assert!(repair_prompt.contains("E0308"), "compiler errors go back to the model: {repair_prompt}");
    // Generation 2 starts from generation 1's winner, and its fuel is what
    // the model is shown as the parent's, not the incumbent's.
    let second = requests[2]["messages"][1]["content"].as_str().unwrap();
    assert!(second.contains("let mut count: u64 = 0;"), "the repaired winner is the parent: {second}");
    let fuel_line = |bench: &agentkernel::evolution::bench::BenchResult| {
        format!("parent: case below-10: passed, fuel {}", bench.case("below-10").unwrap().fuel.unwrap())
    };
    assert!(second.contains(&fuel_line(c.bench.as_ref().unwrap())), "{second}");
    assert!(!second.contains(&fuel_line(&report.incumbent.bench)), "{second}");
}

#[tokio::test(flavor = "multi_thread")]
async fn automatic_rollback_after_a_swap_that_raises_the_error_rate() {
    use agentkernel::evolution::source_check::CandidateSource;
    use agentkernel::evolution::swap::{self, WatchOutcome, WatchSettings};
    let t = TestHost::new(&config(""));
    let good = with_naive_primes_installed(&t).await;
    let store: Arc<SqliteStorage> = Arc::new(SqliteStorage::open(&Host::database_path(&t.host.config)).unwrap());
    store
        .record_install(&agentkernel::storage::evolution::InstallRecord { agent: "primes".into(), hash: good.clone(), reason: "test".into(), at: 0 })
        .unwrap();
    swap::keep_component(&t.host.config.host.data_dir, &good, &sandbox_tests::wasm("primes")).unwrap();

    // A version that fails every call, built like any candidate.
    let failing = CandidateSource::single(
        r#"use agentkernel_sdk::prelude::*;
pub struct Primes;
impl Agent for Primes {
    fn describe() -> Manifest { Manifest::new("primes", "9.9.9", "broken") }
    fn handle(_req: Request) -> Result<Response, AgentError> { Err(AgentError::Failed("broken".into())) }
}
export_agent!(Primes);
"#,
    );
    let settings = agentkernel::evolution::sandbox_build::BuildSettings::resolve(&t.host.config.evolution, &t.host.config.host.data_dir).unwrap();
    let built = agentkernel::evolution::sandbox_build::build(&settings, &failing, &t.dir.path().join("failing"), "failing-primes").await.unwrap();
    let bad = agentkernel::runtime::content_hash(&built.component);
    swap::keep_component(&t.host.config.host.data_dir, &bad, &built.component).unwrap();

    // Some healthy calls first, then the swap and the watch.
    for _ in 0..3 {
        t.host.registry.call("primes", &sandbox_tests::request("s", "10")).await.unwrap();
    }
    let before = t.host.runtime.metrics().agent_call_counts("primes");
    swap::install(&t.host.config.host.data_dir, &t.agents_dir(), "primes", &bad, "test swap", &*store, Some(&t.host.registry)).await.unwrap();
    assert_eq!(t.host.registry.get("primes").unwrap().hash, bad);
    let watch = tokio::spawn(swap::watch_after_swap(
        t.host.registry.clone(),
        store.clone(),
        t.host.config.clone(),
        "primes".into(),
        good.clone(),
        bad.clone(),
        before,
        WatchSettings { calls: 5, tolerance: 0.05, max_wait: std::time::Duration::from_secs(30) },
    ));
    for _ in 0..5 {
        assert!(t.host.registry.call("primes", &sandbox_tests::request("s", "10")).await.is_err());
    }
    let outcome = watch.await.unwrap();
    assert!(matches!(outcome, WatchOutcome::RolledBack { ref to, .. } if *to == good), "{outcome:?}");
    assert_eq!(t.host.registry.get("primes").unwrap().hash, good, "the old version serves again");
    assert_eq!(store.installs("primes").unwrap().last().unwrap().reason, "auto-rollback");
    t.host.registry.call("primes", &sandbox_tests::request("s", "10")).await.unwrap();

    let watch_settings = WatchSettings { calls: 5, tolerance: 0.05, max_wait: std::time::Duration::from_secs(30) };
    let data_dir = t.host.config.host.data_dir.clone();
    // A watch whose version was already replaced leaves the newer one alone.
    let stale = swap::watch_after_swap(
        t.host.registry.clone(),
        store.clone(),
        t.host.config.clone(),
        "primes".into(),
        bad.clone(),
        bad.clone(),
        t.host.runtime.metrics().agent_call_counts("primes"),
        watch_settings.clone(),
    )
    .await;
    assert_eq!(stale, WatchOutcome::Superseded { current: Some(good.clone()) });
    assert_eq!(t.host.registry.get("primes").unwrap().hash, good);

    // A version the registry cannot load is not reported installed: the
    // file it replaced is put back and still serves.
    let unloadable = "0".repeat(64);
    swap::keep_component(&data_dir, &unloadable, b"not a component").unwrap();
    let err = swap::install(&data_dir, &t.agents_dir(), "primes", &unloadable, "test swap", &*store, Some(&t.host.registry)).await.unwrap_err();
    assert!(matches!(err, swap::SwapError::NotLoaded(_)), "{err}");
    assert!(err.to_string().contains("previous file was restored"), "{err}");
    assert_eq!(t.host.registry.get("primes").unwrap().hash, good);
    assert_eq!(agentkernel::runtime::content_hash(&std::fs::read(t.agents_dir().join("primes.wasm")).unwrap()), good);
    assert_eq!(store.installs("primes").unwrap().last().unwrap().hash, good, "the failed install is not recorded");

    // A rollback that cannot happen (the previous version is not kept) is reported as failed.
    swap::install(&data_dir, &t.agents_dir(), "primes", &bad, "test swap", &*store, Some(&t.host.registry)).await.unwrap();
    let before = t.host.runtime.metrics().agent_call_counts("primes");
    let watch = tokio::spawn(swap::watch_after_swap(
        t.host.registry.clone(),
        store.clone(),
        t.host.config.clone(),
        "primes".into(),
        "1".repeat(64),
        bad.clone(),
        before,
        watch_settings,
    ));
    for _ in 0..5 {
        assert!(t.host.registry.call("primes", &sandbox_tests::request("s", "10")).await.is_err());
    }
    let outcome = watch.await.unwrap();
    assert!(matches!(outcome, WatchOutcome::RollbackFailed { ref error, .. } if error.contains("not kept")), "{outcome:?}");
    assert_eq!(t.host.registry.get("primes").unwrap().hash, bad);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_evolution_resumes_from_its_last_finished_generation() {
    let dir = tempfile::tempdir().unwrap();
    for (name, from) in [("a-trial.rs", "trial-division.rs"), ("b-wrong.rs", "small-divisors.rs"), ("c-broken.rs", "does-not-build.rs")] {
        std::fs::copy(candidates_dir().join(from), dir.path().join(name)).unwrap();
    }
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to).unwrap();
        for f in ["lib.rs", "sieve.rs"] {
            std::fs::copy(from.join(f), to.join(f)).unwrap();
        }
    };
    copy(&candidates_dir().join("sieve/src"), &dir.path().join("d-sieve/src"));
    let t = TestHost::new(&config(""));
    with_naive_primes_installed(&t).await;
    let engine = Arc::new(engine(&t));
    let mut opts = options(GeneratorSpec::Dir(dir.path().to_path_buf()));
    opts.candidates = Some(2);
    opts.generations = 2;
    opts.swap = false;

    // Interrupt the run as soon as generation 1 is checkpointed.
    let run = {
        let (engine, opts) = (engine.clone(), opts.clone());
        tokio::spawn(async move { engine.evolve(opts, &|_| {}).await })
    };
    let id = loop {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let recs = engine.store.evolutions(10).unwrap();
        if let Some(r) = recs.iter().find(|r| r.checkpoint.as_deref().is_some_and(|c| c.contains("\"index\":1"))) {
            break r.id.clone();
        }
        assert!(!run.is_finished(), "the run ended before it could be interrupted");
    };
    run.abort();
    let _ = run.await;
    let interrupted = engine.store.evolution(&id).unwrap().unwrap();
    assert_eq!(interrupted.status, "running", "an interrupted run stays resumable");
    let checkpoint: serde_json::Value = serde_json::from_str(interrupted.checkpoint.as_deref().unwrap()).unwrap();
    let cold_before = checkpoint["timings"]["build_cold_ms"].as_f64().expect("generation 1 built");

    // Resumed without a count: the rest of the directory.
    opts.resume = Some(id.clone());
    opts.candidates = None;
    let outcome = engine.evolve(opts, &|_| {}).await.unwrap();
    assert_eq!(outcome.evolution, id);
    let report = read_report(&outcome);
    assert_eq!(report.resumed_after_generation, Some(1));
    let labels: Vec<Vec<&str>> =
        report.generations.iter().map(|g| g.candidates.iter().map(|c| c.label.as_str()).collect()).collect();
    assert_eq!(labels, [vec!["a-trial", "b-wrong"], vec!["c-broken", "d-sieve"]]);
    assert_eq!(outcome.decision, "kept", "--no-swap");
    assert_eq!(report.winner.unwrap().label, "d-sieve");
    assert_eq!(report.timings.build_cold_ms, Some(cold_before), "the cold build is generation 1's, not a warm one after the resume");
    assert_eq!(report.timings.build_warm_ms.len(), 3);
    assert!(engine.evolve(options(GeneratorSpec::Llm).clone_with_resume(&id), &|_| {}).await.is_err(), "a finished run cannot resume");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_winner_that_changes_the_manifest_is_installed_only_with_approval() {
    let cands = tempfile::tempdir().unwrap();
    let trial = std::fs::read_to_string(candidates_dir().join("trial-division.rs")).unwrap();
    let grabby = trial.replace(r#".keywords(["primes", "prime"])"#, r#".keywords(["primes", "prime", "weather", "news"])"#);
    assert_ne!(grabby, trial);
    std::fs::write(cands.path().join("grabby.rs"), grabby).unwrap();
    let t = TestHost::new(&config(""));
    let naive = with_naive_primes_installed(&t).await;
    let engine = engine(&t);

    let outcome = engine.evolve(options(GeneratorSpec::Dir(cands.path().to_path_buf())), &|_| {}).await.unwrap();
    assert_eq!(outcome.decision, "kept", "{}", outcome.reason);
    assert!(outcome.reason.contains("manifest differs") && outcome.reason.contains("weather") && outcome.reason.contains("--approve-manifest-change"), "{}", outcome.reason);
    assert_eq!(t.host.registry.get("primes").unwrap().hash, naive, "nothing was installed");
    let report = read_report(&outcome);
    assert!(candidate(&report, "grabby").manifest_change.as_deref().unwrap().contains("skills"));

    let mut opts = options(GeneratorSpec::Dir(cands.path().to_path_buf()));
    opts.approve_manifest_change = true;
    let outcome = engine.evolve(opts, &|_| {}).await.unwrap();
    assert_eq!(outcome.decision, "swapped", "{}", outcome.reason);
    assert!(outcome.reason.contains("manifest change approved"), "{}", outcome.reason);
    assert_eq!(t.host.registry.get("primes").unwrap().hash, outcome.winner_version.unwrap());
}

trait ResumeExt {
    fn clone_with_resume(self, id: &str) -> Self;
}
impl ResumeExt for EvolveOptions {
    fn clone_with_resume(mut self, id: &str) -> Self {
        self.resume = Some(id.into());
        self
    }
}

fn cli(dir: &Path, args: &[&str], path_env: Option<&str>) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_agentkernel"));
    c.args(["--config", dir.join("agentkernel.toml").to_str().unwrap()]).args(args).current_dir(repo()).env_remove("RUST_LOG");
    if let Some(p) = path_env {
        c.env("PATH", p);
    }
    c.output().expect("agentkernel runs")
}

/// A config for the CLI with its directories in `dir`, and the naive primes installed.
fn cli_setup(dir: &Path, extra: &str) -> String {
    let cfg = format!(
        "{}\n[host]\nagents_dir = \"{}\"\ndata_dir = \"{}\"\n",
        config(extra),
        dir.join("agents.d").display(),
        dir.join("data").display()
    );
    std::fs::write(dir.join("agentkernel.toml"), cfg).unwrap();
    std::fs::create_dir_all(dir.join("agents.d")).unwrap();
    std::fs::copy(sandbox_tests::wasm_path("primes"), dir.join("agents.d/primes.wasm")).unwrap();
    agentkernel::runtime::content_hash(&std::fs::read(dir.join("agents.d/primes.wasm")).unwrap())
}

#[test]
fn cli_no_swap_swaps_nothing_then_evolve_swaps_and_rollback_restores() {
    let dir = tempfile::tempdir().unwrap();
    let naive = cli_setup(dir.path(), "");
    let cands = tempfile::tempdir().unwrap();
    std::fs::copy(candidates_dir().join("trial-division.rs"), cands.path().join("trial-division.rs")).unwrap();
    let generator = format!("dir:{}", cands.path().display());
    let installed = || agentkernel::runtime::content_hash(&std::fs::read(dir.path().join("agents.d/primes.wasm")).unwrap());

    let o = cli(dir.path(), &["evolve", "primes", "--generator", &generator, "--no-swap", "--json"], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["decision"], "kept");
    assert!(v["winner_version"].is_string(), "a winner was found: {v}");
    assert_eq!(v["incumbent_version"], naive.as_str());
    assert!(v["incumbent_fuel"].as_u64().unwrap() > v["winner_fuel"].as_u64().unwrap());
    assert!(Path::new(v["report_html"].as_str().unwrap()).exists());
    assert_eq!(installed(), naive, "--no-swap installs nothing");
    let first_winner = v["winner_version"].as_str().unwrap().to_string();

    let o = cli(dir.path(), &["evolve", "primes", "--generator", &generator, "--json", "--threshold", "0.5"], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["decision"], "swapped");
    let winner = v["winner_version"].as_str().unwrap().to_string();
    assert_eq!(installed(), winner);
    assert_eq!(winner, first_winner, "the same source builds to the same component");

    let o = cli(dir.path(), &["rollback", "primes"], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(installed(), naive, "rollback reinstalls the previous version");
    let o = cli(dir.path(), &["rollback", "primes", "--to", &winner[..10]], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(installed(), winner);
    let o = cli(dir.path(), &["versions", "primes", "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let reasons: Vec<&str> = v["installs"].as_array().unwrap().iter().map(|i| i["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons[0], "found installed");
    assert!(reasons[1].starts_with("evolution "));
    assert_eq!(&reasons[2..], ["rollback", "rollback --to"]);

    let o = cli(dir.path(), &["evolve", "nosuch", "--generator", &generator], None);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not evolvable"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn without_bwrap_candidates_are_not_built_unsandboxed() {
    let dir = tempfile::tempdir().unwrap();
    let sysroot = String::from_utf8(std::process::Command::new("rustc").args(["--print", "sysroot"]).output().unwrap().stdout).unwrap();
    cli_setup(dir.path(), &format!("sysroot = \"{}\"", sysroot.trim()));
    let cands = tempfile::tempdir().unwrap();
    std::fs::copy(candidates_dir().join("trial-division.rs"), cands.path().join("t.rs")).unwrap();
    let generator = format!("dir:{}", cands.path().display());
    let empty = tempfile::tempdir().unwrap();
    let o = cli(dir.path(), &["evolve", "primes", "--generator", &generator, "--json"], Some(empty.path().to_str().unwrap()));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bwrap") && err.contains("sandbox = \\\"none\\\"") || err.contains("sandbox = \"none\""), "{err}");
    assert!(o.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn http_starts_an_evolution_lists_it_and_serves_its_report() {
    let t = TestHost::new(&config(""));
    t.install("primes", "primes.wasm");
    let addr = t.serve().await;
    let naive = t.host.registry.get("primes").unwrap().hash.clone();
    let cands = tempfile::tempdir().unwrap();
    std::fs::copy(candidates_dir().join("trial-division.rs"), cands.path().join("trial-division.rs")).unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");

    let r = http
        .post(format!("{base}/v1/agents/primes/evolve"))
        .json(&serde_json::json!({"generator": format!("dir:{}", cands.path().display())}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let started: serde_json::Value = r.json().await.unwrap();
    let id = started["id"].as_str().unwrap().to_string();
    assert_eq!(started["agent"], "primes");
    assert_eq!(started["report"], format!("/v1/evolutions/{id}/report.html"));
    let again = http.post(format!("{base}/v1/agents/primes/evolve")).json(&serde_json::json!({"generator": "dir:/nowhere"})).send().await.unwrap();
    assert_eq!(again.status(), 409, "one evolution per agent at a time");

    let row = loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let list: serde_json::Value = http.get(format!("{base}/v1/evolutions")).send().await.unwrap().json().await.unwrap();
        let row = list["evolutions"].as_array().unwrap().iter().find(|e| e["id"] == id.as_str()).cloned().unwrap();
        if row["status"] != "running" {
            break row;
        }
    };
    // Exactly the shape the web page reads.
    let mut keys: Vec<&str> = row.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["agent", "decision", "finished_at", "id", "started_at", "status"]);
    assert_eq!((row["status"].as_str(), row["decision"].as_str()), (Some("finished"), Some("swapped")), "{row}");
    assert!(row["finished_at"].as_i64().unwrap() >= row["started_at"].as_i64().unwrap());

    let one: serde_json::Value = http.get(format!("{base}/v1/evolutions/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(one["outcome"]["incumbent_version"], naive.as_str());
    assert_eq!(one["report"]["winner"]["label"], "trial-division");
    assert_ne!(t.host.registry.get("primes").unwrap().hash, naive, "the server swapped the winner in");
    let html = http.get(format!("{base}{}", started["report"].as_str().unwrap())).send().await.unwrap();
    assert!(html.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(html.text().await.unwrap().contains("trial-division"));

    assert_eq!(http.get(format!("{base}/v1/evolutions/nope")).send().await.unwrap().status(), 404);
    assert_eq!(http.get(format!("{base}/v1/evolutions/..%2Fx/report.html")).send().await.unwrap().status(), 404);
    let r = http.post(format!("{base}/v1/agents/echo/evolve")).json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(r.status(), 404, "echo has no evolve.toml");
    let r = http.post(format!("{base}/v1/agents/primes/evolve")).body("{").header("content-type", "application/json").send().await.unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn create_writes_a_new_agent_registered_only_if_it_passes_its_cases() {
    let agent = |body: &str| {
        format!(
            "```rust src/lib.rs\nuse agentkernel_sdk::prelude::*;\npub struct Shout;\nimpl Agent for Shout {{\n    fn describe() -> Manifest {{ Manifest::new(\"shout\", \"0.1.0\", \"Shouts.\") }}\n    fn handle(req: Request) -> Result<Response, AgentError> {{ Ok(Response::text({body})) }}\n}}\nexport_agent!(Shout);\n```\n"
        )
    };
    let llm = ScriptedLlm::start(vec![Scripted::reply(&agent("req.text.to_lowercase()")), Scripted::reply(&agent("req.text.to_uppercase()"))]).await;
    let dir = tempfile::tempdir().unwrap();
    cli_setup(dir.path(), &format!("llm_profile = \"fast\"\n{}", llm.config_with("")));
    let cases = dir.path().join("shout.toml");
    std::fs::write(
        &cases,
        "[[case]]\nname='hi'\nrequest='hi there'\nexpect={equals='HI THERE'}\n[[case]]\nname='held'\nrequest='Ok'\nheld_out=true\nexpect={equals='OK'}\n",
    )
    .unwrap();
    let d = dir.path().to_path_buf();
    let c = cases.clone();
    let o = tokio::task::spawn_blocking(move || {
        let args = ["create", "shout", "--spec", "Answer with the request in capitals", "--cases", c.to_str().unwrap(), "--candidates", "2", "--json"];
        cli(&d, &args, None)
    })
    .await
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["decision"], "swapped");
    let installed = std::fs::read(dir.path().join("agents.d/shout.wasm")).unwrap();
    assert_eq!(v["winner_version"], agentkernel::runtime::content_hash(&installed).as_str());
    let prompt = llm.requests()[0]["messages"][1]["content"].as_str().unwrap().to_string();
    assert!(prompt.contains("Answer with the request in capitals") && !prompt.contains("'Ok'") && !prompt.contains("\"Ok\""), "{prompt}");
    let report: Report = serde_json::from_str(&std::fs::read_to_string(v["report_json"].as_str().unwrap()).unwrap()).unwrap();
    let verdicts: Vec<bool> = report.generations[0].candidates.iter().map(|c| c.verdict.as_ref().unwrap().wins).collect();
    assert_eq!(verdicts, [false, true], "the lower-casing one fails its cases");
    assert!(report.generations[0].candidates.iter().all(|c| c.parent.is_none()), "a new agent's first versions have no parent");
    let store = SqliteStorage::open(&dir.path().join("data/agentkernel.sqlite")).unwrap();
    let versions = store.versions("shout").unwrap();
    assert_eq!(versions.len(), 2);
    assert!(versions.iter().all(|v| v.parent.is_none()), "{versions:?}");

    // A name that exists is refused; a run where nothing passes registers nothing.
    let d = dir.path().to_path_buf();
    let c = cases.clone();
    let o = tokio::task::spawn_blocking(move || {
        cli(&d, &["create", "primes", "--spec", "x", "--cases", c.to_str().unwrap(), "--generator", "dir:/tmp"], None)
    })
    .await
    .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    let cands = tempfile::tempdir().unwrap();
    std::fs::write(cands.path().join("wrong.rs"), agent("req.text.clone()").lines().skip(1).take_while(|l| *l != "```").collect::<Vec<_>>().join("\n").replace("shout", "echoer")).unwrap();
    let d = dir.path().to_path_buf();
    let generator = format!("dir:{}", cands.path().display());
    let o = tokio::task::spawn_blocking(move || cli(&d, &["create", "echoer", "--spec", "x", "--cases", cases.to_str().unwrap(), "--generator", &generator], None))
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dir.path().join("agents.d/echoer.wasm").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_that_runs_too_long_is_killed_at_its_timeout() {
    use agentkernel::evolution::sandbox_build::{self, BuildError, BuildSettings};
    use agentkernel::evolution::source_check::CandidateSource;
    let t = TestHost::new(&config("build_timeout_secs = 2"));
    let settings = BuildSettings::resolve(&t.host.config.evolution, &t.host.config.host.data_dir).unwrap();
    // Compile-time work without end: constant evaluation of a huge loop.
    let slow = CandidateSource::single(
        "#![allow(long_running_const_eval)]\nconst N: u64 = { let mut i = 0u64; let mut x = 0u64; while i < u64::MAX { x = x.wrapping_mul(31).wrapping_add(i); i += 1; } x };\npub fn f() -> u64 { N }\n",
    );
    // The first build of a target dir also builds the shared dependencies
    // (not under the candidate's timeout): have that done before timing.
    let warm = CandidateSource::single("pub fn f() {}\n");
    let _ = sandbox_build::build(&settings, &warm, &t.dir.path().join("warm"), "warm-deps").await;
    let started = std::time::Instant::now();
    let result = sandbox_build::build(&settings, &slow, &t.dir.path().join("slow"), "slow-const-eval").await;
    assert!(matches!(result, Err(BuildError::Timeout(_))), "{result:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_starts_an_evolution_when_the_live_error_rate_crosses_its_threshold() {
    use agentkernel::evolution::source_check::CandidateSource;
    let cands = tempfile::tempdir().unwrap();
    std::fs::copy(candidates_dir().join("trial-division.rs"), cands.path().join("trial-division.rs")).unwrap();
    let t = TestHost::new(&config(&format!(
        "watch_calls = 0\n[evolution.auto]\nenabled = true\nerror_rate = 0.5\nmin_calls = 3\ncheck_ms = 100\ngenerator = \"dir:{}\"\n",
        cands.path().display()
    )));
    // A version of primes that fails every call, installed as the incumbent.
    let failing = CandidateSource::single(
        "use agentkernel_sdk::prelude::*;\npub struct P;\nimpl Agent for P {\n    fn describe() -> Manifest { Manifest::new(\"primes\", \"0.0.1\", \"Counts the prime numbers below N.\").skill(Skill::new(\"count-primes\", \"How many primes are below N, and the largest\").keywords([\"primes\", \"prime\"])) }\n    fn handle(_r: Request) -> Result<Response, AgentError> { Err(AgentError::Failed(\"broken\".into())) }\n}\nexport_agent!(P);\n",
    );
    let settings = agentkernel::evolution::sandbox_build::BuildSettings::resolve(&t.host.config.evolution, &t.host.config.host.data_dir).unwrap();
    let built = agentkernel::evolution::sandbox_build::build(&settings, &failing, &t.dir.path().join("failing"), "failing-primes-auto").await.unwrap();
    std::fs::write(t.agents_dir().join("primes.wasm"), &built.component).unwrap();
    t.host.registry.scan().await;
    let broken = t.host.registry.get("primes").unwrap().hash.clone();
    let _auto = agentkernel::evolution::auto::spawn(&agentkernel::evolution::background::Handles::from(&t.host)).expect("enabled");
    for _ in 0..3 {
        assert!(t.host.registry.call("primes", &sandbox_tests::request("s", "10")).await.is_err());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while t.host.registry.get("primes").unwrap().hash == broken {
        assert!(std::time::Instant::now() < deadline, "no evolution replaced the failing version");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let live = t.host.registry.call("primes", &sandbox_tests::request("s", "1000")).await.unwrap();
    assert_eq!(live.response.text, "168");
    let store = SqliteStorage::open(&Host::database_path(&t.host.config)).unwrap();
    let runs = store.evolutions(10).unwrap();
    assert_eq!(runs.len(), 1, "one evolution, then the cooldown");
    assert_eq!(runs[0].decision.as_deref(), Some("swapped"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chat_page_lists_evolutions_and_links_their_reports() {
    let node_path = std::env::var("AGENTKERNEL_NODE_PATH")
        .expect("AGENTKERNEL_NODE_PATH is unset: run ./scripts/test (scripts/deps/browser.sh installs playwright-core)");
    let t = TestHost::new(&config(""));
    with_naive_primes_installed(&t).await;
    let cands = tempfile::tempdir().unwrap();
    std::fs::copy(candidates_dir().join("trial-division.rs"), cands.path().join("trial-division.rs")).unwrap();
    let outcome = engine(&t).evolve(options(GeneratorSpec::Dir(cands.path().to_path_buf())), &|_| {}).await.unwrap();
    let addr = t.serve().await;
    // ESM ignores NODE_PATH: run the script from a copy beside node_modules.
    let runner = Path::new(&node_path).parent().unwrap().join("evolution_page.mjs");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/evolution_page.mjs"), &runner).unwrap();
    let out = tokio::process::Command::new("node").arg(&runner).arg(format!("http://{addr}/")).output().await.expect("node runs");
    assert!(out.status.success(), "browser script failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["text"], "primes: swapped");
    assert_eq!(seen["href"], format!("/v1/evolutions/{}/report.html", outcome.evolution));
    assert_eq!(seen["reportTitle"], format!("Evolution {}: primes", outcome.evolution));
    assert_eq!(seen["reportDecision"], "swapped");
    assert_eq!(seen["charts"], 2);
    assert_eq!(seen["consoleErrors"], serde_json::json!([]));
}

#[test]
fn ctrl_c_marks_a_cli_evolution_interrupted_and_names_the_resume_command() {
    let dir = tempfile::tempdir().unwrap();
    cli_setup(dir.path(), "build_timeout_secs = 120");
    // One candidate whose build never ends by itself (constant evaluation
    // without end), so the run is surely mid-build when Ctrl-C comes.
    let cands = tempfile::tempdir().unwrap();
    std::fs::write(
        cands.path().join("endless-build.rs"),
        "#![allow(long_running_const_eval)]\nconst N: u64 = { let mut i = 0u64; let mut x = 0u64; while i < u64::MAX { x = x.wrapping_mul(31).wrapping_add(i); i += 1; } x };\npub fn f() -> u64 { N }\n",
    )
    .unwrap();
    let generator = format!("dir:{}", cands.path().display());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_agentkernel"))
        .args(["--config", dir.path().join("agentkernel.toml").to_str().unwrap(), "evolve", "primes", "--generator", &generator])
        .current_dir(repo())
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let db = dir.path().join("data/agentkernel.sqlite");
    let started = std::time::Instant::now();
    let id = loop {
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "the evolution never started");
        assert!(child.try_wait().unwrap().is_none(), "the evolution ended before Ctrl-C");
        let running = db.exists().then(|| SqliteStorage::open(&db).ok()).flatten().and_then(|s| s.evolutions(10).ok()).unwrap_or_default();
        if let Some(r) = running.into_iter().find(|r| r.status == "running") {
            break r.id;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // Into the candidate's build (the incumbent is installed, so it is benchmarked first, quickly).
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(child.try_wait().unwrap().is_none(), "still building when interrupted");
    // SAFETY: a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let interrupted_at = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(interrupted_at.elapsed() < std::time::Duration::from_secs(10), "Ctrl-C stops the run promptly");
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("agentkernel evolve primes --resume {id}")), "{stderr}");
    let rec = SqliteStorage::open(&db).unwrap().evolution(&id).unwrap().unwrap();
    assert_eq!(rec.status, "interrupted");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shadow_stage_blocks_a_winner_that_answers_real_requests_differently() {
    use agentkernel::storage::sessions::{SessionStore, TranscriptEntry};
    let t = TestHost::new(&config(""));
    let naive = with_naive_primes_installed(&t).await;
    // Real traffic: what users asked `primes` through the chat service.
    let store = SqliteStorage::open(&Host::database_path(&t.host.config)).unwrap();
    for (i, n) in ["777", "100", "777"].iter().enumerate() {
        let turn = |role: &str, text: &str| TranscriptEntry {
            at_ms: i as i64,
            role: role.into(),
            text: text.into(),
            agents: if role == "assistant" { vec!["primes".into()] } else { vec![] },
            detail: None,
        };
        store.session_append("local", &format!("s{i}"), &[turn("user", n), turn("assistant", "answer")]).unwrap();
    }
    assert_eq!(store.recent_requests("primes", 32).unwrap(), ["777", "100"], "distinct, newest first");

    // Cheaper, right on every suite case, wrong on a request users send.
    let dir = tempfile::tempdir().unwrap();
    let overfitted = benchmark_detector("true").replace("if !benchmarked() {", "if n == 777 {");
    std::fs::write(dir.path().join("overfitted.rs"), overfitted).unwrap();
    let outcome = engine(&t).evolve(options(GeneratorSpec::Dir(dir.path().to_path_buf())), &|_| {}).await.unwrap();
    let report = read_report(&outcome);
    assert_eq!(outcome.decision, "kept", "{}", report.reason);
    assert!(report.reason.contains("shadow stage"), "{}", report.reason);
    assert_eq!(t.host.registry.get("primes").unwrap().hash, naive, "the incumbent still serves");
    let shadow = report.shadow.as_ref().expect("the report shows the shadow stage");
    assert_eq!((shadow.sampled, shadow.agreed), (2, 1));
    assert_eq!(shadow.disagreements[0].request, "777");
    assert_eq!(shadow.disagreements[0].candidate, "42");
    assert!(std::fs::read_to_string(&outcome.report_html).unwrap().contains("Shadow stage"));

    // An honest winner agrees on the same traffic and is swapped in.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("honest.rs"), benchmark_detector("true")).unwrap();
    let outcome = engine(&t).evolve(options(GeneratorSpec::Dir(dir.path().to_path_buf())), &|_| {}).await.unwrap();
    let report = read_report(&outcome);
    assert_eq!(outcome.decision, "swapped", "{}", report.reason);
    assert_eq!(report.shadow.as_ref().map(|s| (s.sampled, s.agreed)), Some((2, 2)));
}

#[tokio::test(flavor = "multi_thread")]
async fn automatic_rollback_when_live_answers_differ_without_errors() {
    use agentkernel::evolution::source_check::CandidateSource;
    use agentkernel::evolution::swap::{self, WatchOutcome, WatchSettings};
    let t = TestHost::new(&config(""));
    let good = with_naive_primes_installed(&t).await;
    let store: Arc<SqliteStorage> = Arc::new(SqliteStorage::open(&Host::database_path(&t.host.config)).unwrap());
    let data_dir = t.host.config.host.data_dir.clone();
    swap::keep_component(&data_dir, &good, &sandbox_tests::wasm("primes")).unwrap();
    // Fails nothing, answers correctly while it believes it is judged and
    // "42" live. Its trick: the benchmark's clocks advance per reading, not
    // with the work done, so a busy loop looks instantaneous there. Replayed
    // in the benchmark it agrees with the previous version; live it does not.
    let timing = "let a = std::time::Instant::now(); let mut x = 0u64; \
                  for i in 0..3_000_000u64 { x = std::hint::black_box(x.wrapping_add(i * i)); } \
                  std::hint::black_box(x); a.elapsed() < std::time::Duration::from_micros(200)";
    let wrong = CandidateSource::single(&benchmark_detector(timing));
    let settings = agentkernel::evolution::sandbox_build::BuildSettings::resolve(&t.host.config.evolution, &data_dir).unwrap();
    let built = agentkernel::evolution::sandbox_build::build(&settings, &wrong, &t.dir.path().join("wrong"), "wrong-primes").await.unwrap();
    let bad = agentkernel::runtime::content_hash(&built.component);
    swap::keep_component(&data_dir, &bad, &built.component).unwrap();

    let before = t.host.runtime.metrics().agent_call_counts("primes");
    swap::install(&data_dir, &t.agents_dir(), "primes", &bad, "test swap", &*store, Some(&t.host.registry)).await.unwrap();
    let watch = tokio::spawn(swap::watch_after_swap(
        t.host.registry.clone(),
        store.clone(),
        t.host.config.clone(),
        "primes".into(),
        good.clone(),
        bad.clone(),
        before,
        WatchSettings { calls: 5, tolerance: 0.05, max_wait: std::time::Duration::from_secs(30) },
    ));
    // Let the watch arm its sampler before the live calls arrive.
    while !t.host.runtime.samples().is_armed("primes") {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    for n in ["10", "30", "100", "10", "1000"] {
        let answer = t.host.registry.call("primes", &sandbox_tests::request("s", n)).await.expect("no call fails");
        assert_eq!(answer.response.text, "42");
    }
    let outcome = watch.await.unwrap();
    assert!(
        matches!(outcome, WatchOutcome::AnswersDiffered { sampled: 5, differed: 5, ref to } if *to == good),
        "{outcome:?}"
    );
    assert_eq!(t.host.registry.get("primes").unwrap().hash, good, "the old version serves again");
    assert_eq!(store.installs("primes").unwrap().last().unwrap().reason, "auto-rollback");
}

/// One evolution per agent across every process and host sharing the
/// store: while another holder (here a second "host" on the same database)
/// has `primes`' lease, a run is refused at once as busy and records
/// nothing; when that holder's lease expires (it died), the agent is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evolution_running_on_another_host_makes_this_one_busy() {
    use agentkernel::storage::lease::LeaseStore;
    let t = TestHost::new(&config(""));
    let engine = engine(&t);
    let other_host = SqliteStorage::open(&Host::database_path(&t.host.config)).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!(other_host.lease_acquire("evolution/primes", "host-b/4242#0", 60, now).unwrap());
    let busy = engine.evolve(options(GeneratorSpec::Dir(candidates_dir())), &|_| {}).await.err().expect("refused");
    assert!(matches!(busy, agentkernel::evolution::EvolveError::Busy(_)), "{busy}");
    assert!(busy.to_string().contains("host-b/4242"), "names the holder: {busy}");
    assert!(engine.store.evolutions(10).unwrap().is_empty(), "a refused run records nothing");
    // The other host died an hour ago: its lease ran out.
    assert!(other_host.lease_acquire("evolution/primes", "host-b/4242#0", 60, now - 3_600).unwrap());
    let freed = engine.store.lease_get("evolution/primes").unwrap().unwrap();
    assert!(freed.expires_at < now, "expired");
    assert!(engine.store.lease_acquire("evolution/primes", "host-a#1", 60, now).unwrap(), "free for this host again");
}
