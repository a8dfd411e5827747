//! The `agentkernel` binary, as a user runs it.
use std::path::Path;
use std::process::{Command, Output};

use sandbox_tests::{TestHost, request, wasm_path};
use serde_json::Value;

fn agentkernel(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agentkernel"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("agentkernel runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn run_prints_the_response_and_json_with_fuel_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let echo = wasm_path("echo");
    let o = agentkernel(dir.path(), &["run", echo.to_str().unwrap(), "--message", "hello there"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "hello there");

    let o = agentkernel(dir.path(), &["run", echo.to_str().unwrap(), "-m", "hi", "--session", "s9", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["text"], "hi");
    assert_eq!(v["data"]["session_id"], "s9");
    assert!(v["fuel_used"].as_u64().unwrap() > 0);
    assert!(v["elapsed_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn run_remembers_across_invocations_through_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let notes = wasm_path("notes");
    let n = notes.to_str().unwrap();
    assert!(agentkernel(dir.path(), &["run", n, "-m", "remember the code is 42", "--session", "x"]).status.success());
    let o = agentkernel(dir.path(), &["run", n, "-m", "recall", "--session", "x"]);
    assert_eq!(stdout(&o).trim(), "You asked me to remember: the code is 42");
    assert!(dir.path().join(".agentkernel/agentkernel.sqlite").exists());
}

#[test]
fn run_failures_exit_nonzero_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let spin = wasm_path("spin-loop");
    let o = agentkernel(dir.path(), &["run", spin.to_str().unwrap(), "-m", "x", "--fuel", "100000"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("fuel-exhausted"), "{err}");

    let o = agentkernel(dir.path(), &["run", spin.to_str().unwrap(), "-m", "x", "--fuel", "100000", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["error"]["code"], "fuel-exhausted");

    std::fs::write(dir.path().join("bad.wasm"), b"nope").unwrap();
    let o = agentkernel(dir.path(), &["run", "bad.wasm", "-m", "x"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a WebAssembly file"), "{}", stderr(&o));

    let o = agentkernel(dir.path(), &["run", "missing.wasm", "-m", "x"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("missing.wasm"), "{}", stderr(&o));

    std::fs::write(dir.path().join("agentkernel.toml"), "[limits]\nfuel = -3\n").unwrap();
    let o = agentkernel(dir.path(), &["run", wasm_path("echo").to_str().unwrap(), "-m", "x"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("invalid config"), "{}", stderr(&o));
}

#[test]
fn agents_lists_versions_skills_grants_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents.d");
    std::fs::create_dir_all(&agents).unwrap();
    std::fs::copy(wasm_path("notes"), agents.join("notes.wasm")).unwrap();
    std::fs::copy(wasm_path("llm-probe"), agents.join("llm-probe.wasm")).unwrap();
    let o = agentkernel(dir.path(), &["agents", "--agents", "agents.d"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("notes 0.1.0 [ready]"), "{out}");
    assert!(out.contains("skills:  remember, recall"), "{out}");
    assert!(out.contains("grants:  log, memory"), "{out}");
    assert!(out.contains("llm-probe.wasm [failed]") && out.contains("which policy does not grant"), "{out}");

    let o = agentkernel(dir.path(), &["agents", "--agents", "agents.d", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["agents"][0]["name"], "notes");
    assert_eq!(v["failed_files"].as_array().unwrap().len(), 1);
}

#[test]
fn help_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    for sub in [&["--help"][..], &["serve", "--help"], &["run", "--help"], &["agents", "--help"], &["new", "--help"], &["build", "--help"], &["usage", "--help"], &["doctor", "--help"]] {
        let o = agentkernel(dir.path(), sub);
        assert!(o.status.success(), "{sub:?}");
        assert!(stdout(&o).contains("Usage: agentkernel"), "{sub:?}: {}", stdout(&o));
    }
}

#[test]
fn serve_starts_on_embedded_defaults_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("agents.d")).unwrap();
    std::fs::copy(wasm_path("echo"), dir.path().join("agents.d/echo.wasm")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_agentkernel"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let url = line.trim().strip_prefix("listening on ").expect("prints its address").to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let body: Value = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{url}/v1/agents/echo/call"))
            .json(&serde_json::json!({"text": "served"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(body["text"], "served");
    assert!(dir.path().join(".agentkernel/agentkernel.sqlite").exists(), "SQLite created in the default data dir");
}

/// `new` scaffolds a crate outside this repository that builds for
/// wasm32-wasip2 with plain cargo, passes its own tests, and that `build`
/// installs into an agents directory where the host can run it.
#[test]
fn new_build_and_run_an_agent_outside_the_repo() {
    let dir = tempfile::tempdir().unwrap();
    let o = agentkernel(dir.path(), &["new", "weather-bot", "--path", "elsewhere/weather"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let crate_dir = dir.path().join("elsewhere/weather");
    assert!(crate_dir.join("Cargo.toml").exists());
    let cargo_config = std::fs::read_to_string(crate_dir.join(".cargo/config.toml")).unwrap();
    assert!(cargo_config.contains("stack-size=131072"), "new agents get the small stack: {cargo_config}");

    // Share compiled dependencies between runs of this test, apart from
    // the workspace's own target dir (whose lock `cargo test` holds).
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("scaffold-test");
    let cargo = |args: &[&str]| {
        Command::new("cargo").args(args).current_dir(&crate_dir).env("CARGO_TARGET_DIR", &target).output().unwrap()
    };
    let o = cargo(&["test", "--release"]);
    assert!(o.status.success(), "scaffold's own tests: {}", stderr(&o));
    assert!(stdout(&o).contains("3 passed"), "{}", stdout(&o));

    let o = Command::new(env!("CARGO_BIN_EXE_agentkernel"))
        .args(["build", "elsewhere/weather", "--agents", "agents.d"])
        .current_dir(dir.path())
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let installed = dir.path().join("agents.d/weather-bot.wasm");
    assert!(installed.exists());

    let o = agentkernel(dir.path(), &["run", installed.to_str().unwrap(), "-m", "sunny?"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "weather-bot heard: sunny?");

    let o = agentkernel(dir.path(), &["new", "Bad Name"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("agent name"), "{}", stderr(&o));
}

/// `new --lang python|js` writes an agent that needs nothing from this
/// checkout (its helper layer and the WIT package are copied in): its own
/// unit tests pass, `build` makes a component of it with the tools
/// `scripts/deps/polyglot.sh` exports (AGENTKERNEL_COMPONENTIZE_PY,
/// AGENTKERNEL_ROLLDOWN, AGENTKERNEL_COMPONENTIZE_JS), and the host loads
/// it with its default grants and answers, counting in `memory`.
fn new_build_and_call_a_polyglot_agent(lang: &str, name: &str, files: &[&str], unit_tests: (&str, &[&str], &str), hint: &str) {
    let dir = tempfile::tempdir().unwrap();
    let agent_dir = dir.path().join("elsewhere").join(name);
    let o = agentkernel(dir.path(), &["new", name, "--lang", lang, "--path", agent_dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(hint), "prints how to run its tests: {}", stdout(&o));
    for file in files.iter().chain(&["README.md", "wit/world.wit", "wit/deps/agentkernel-agent/world.wit"]) {
        assert!(agent_dir.join(file).is_file(), "{name}: {file} is missing");
    }
    let world = std::fs::read_to_string(agent_dir.join("wit/world.wit")).unwrap();
    let imports: Vec<&str> = world.lines().map(str::trim).filter(|l| l.starts_with("import ")).collect();
    assert!(world.contains(&format!("world {name} {{")), "{world}");
    assert_eq!(imports, ["import agentkernel:agent/log@0.1.0;", "import agentkernel:agent/memory@0.1.0;"], "{world}");

    // Its own unit tests, with the helper layer's fakes of the host.
    let (program, args, passed) = unit_tests;
    let o = Command::new(program).args(args).current_dir(&agent_dir).output().expect("the unit test runner starts");
    assert!(o.status.success(), "{name}'s unit tests: {}{}", stdout(&o), stderr(&o));
    assert!(format!("{}{}", stdout(&o), stderr(&o)).contains(passed), "{}{}", stdout(&o), stderr(&o));

    let o = agentkernel(dir.path(), &["build", agent_dir.to_str().unwrap(), "--agents", "agents.d"]);
    assert!(
        o.status.success(),
        "build (run under ./scripts/test, or source scripts/env.sh and scripts/deps/polyglot.sh first): {}",
        stderr(&o)
    );
    let installed = dir.path().join("agents.d").join(format!("{name}.wasm"));
    assert!(installed.is_file() && stdout(&o).contains("installed"), "{}", stdout(&o));

    let bytes = std::fs::read(&installed).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let answers = rt.block_on(async {
        let h = TestHost::new("");
        let agent = h.load_bytes(bytes).await.unwrap_or_else(|e| panic!("{name} loads with the default grants: {e}"));
        assert_eq!(agent.manifest.name, name);
        let mut answers = Vec::new();
        for text in ["hi", " again "] {
            let out = agent.call(&request("s1", text)).await.unwrap_or_else(|e| panic!("{name} answers {text:?}: {e}"));
            answers.push(out.response.text);
        }
        answers
    });
    assert_eq!(
        answers,
        [format!("{name} heard: hi (message 1 of this session)"), format!("{name} heard: again (message 2 of this session)")]
    );

    // `new` never writes over a directory.
    let o = agentkernel(dir.path(), &["new", name, "--lang", lang, "--path", agent_dir.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("already exists"), "{}", stderr(&o));
}

#[test]
fn new_python_agent_tests_builds_and_answers() {
    let python = std::env::var("AGENTKERNEL_POLYGLOT_PYTHON").unwrap_or_else(|_| "python3".into());
    new_build_and_call_a_polyglot_agent(
        "python",
        "hello-py",
        &["app.py", "test_app.py", ".gitignore", "agentkernel/__init__.py", "agentkernel/testing.py"],
        (python.as_str(), &["-m", "unittest"], "Ran 5 tests"),
        "python3 -m unittest",
    );
}

#[test]
fn new_javascript_agent_tests_builds_and_answers() {
    new_build_and_call_a_polyglot_agent(
        "js",
        "hello-js",
        &["index.js", "agent.js", "agent.test.js", "package.json", ".gitignore", "sdk/agentkernel.js", "sdk/testing.js"],
        ("node", &["--test"], "# pass 3"),
        "node --test",
    );
}

#[test]
fn usage_and_doctor_report_llm_calls_and_the_endpoint() {
    use sandbox_tests::llm_server::{Scripted, ScriptedLlm};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(ScriptedLlm::start(vec![Scripted::Reply {
        content: "ok".into(),
        prompt_tokens: 1000,
        completion_tokens: 2000,
    }]));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("agentkernel.toml"),
        format!("{}[agents.llm-probe]\nllm = true\nlimits = {{ deadline_ms = 20000 }}\n", server.config()),
    )
    .unwrap();
    let o = agentkernel(dir.path(), &["doctor"]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains(&server.base_url()) && stdout(&o).contains("answers"), "{}", stdout(&o));

    let probe = wasm_path("llm-probe");
    let o = agentkernel(dir.path(), &["run", probe.to_str().unwrap(), "-m", "hi", "--session", "u1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = agentkernel(dir.path(), &["usage", "--agent", "llm-probe"]);
    let out = stdout(&o);
    assert!(out.contains("llm-probe") && out.contains("test-model") && out.contains("u1"), "{out}");
    // 1000 prompt at $1/M + 2000 completion at $2/M.
    assert!(out.contains("total llm-probe: 1 calls, 1000 prompt + 2000 completion tokens, $0.005000"), "{out}");
    let o = agentkernel(dir.path(), &["usage", "--json", "--since", "all"]);
    let rows: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(rows[0]["outcome"], "ok");
    let o = agentkernel(dir.path(), &["usage", "--since", "yesterday"]);
    assert!(!o.status.success());

    drop(server);
    let o = agentkernel(dir.path(), &["doctor"]);
    assert!(!o.status.success(), "an endpoint that does not answer fails doctor");
    assert!(stdout(&o).contains("NOT answering"), "{}", stdout(&o));

    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("agentkernel.toml"), "[llm]\napi_key_env = \"AGENTKERNEL_TEST_UNSET_KEY\"\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_agentkernel"))
        .arg("doctor")
        .current_dir(empty.path())
        .env_remove("OPENAI_BASE_URL")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(stdout(&o).contains("not configured"), "{}", stdout(&o));
}
