//! Each hostile guest is stopped by the limit meant for it, with a typed
//! error, and the host keeps serving other agents while and after it runs.
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentkernel::runtime::{CallError, LoadError, LoadedAgent};
use sandbox_tests::{TestHost, request, wasm};

/// Calls `echo` and checks it answers: the host is still serving.
async fn assert_echo_serves(agent: &LoadedAgent) {
    let out = agent.call(&request("s", "still here")).await.expect("echo answers");
    assert_eq!(out.response.text, "still here");
}

async fn hostile_call(h: &TestHost, guest: &str, text: &str) -> CallError {
    let agent = h.load(guest).await.unwrap_or_else(|e| panic!("{guest} loads: {e}"));
    agent.call(&request("s", text)).await.expect_err("hostile call must fail")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_runs_out_of_fuel() {
    let h = TestHost::new("[limits]\nfuel = 50_000_000\n");
    let echo = h.load("echo").await.unwrap();
    let err = hostile_call(&h, "spin-loop", "go").await;
    assert!(matches!(err, CallError::FuelExhausted { limit: 50_000_000 }), "{err:?}");
    assert_eq!(err.code(), "fuel-exhausted");
    assert_echo_serves(&echo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_without_fuel_hits_the_deadline() {
    let h = TestHost::new("[agents.spin-loop.limits]\nfuel = \"off\"\ndeadline_ms = 300\n");
    let start = Instant::now();
    let err = hostile_call(&h, "spin-loop", "go").await;
    assert!(matches!(err, CallError::Deadline { ms: 300 }), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(3), "deadline enforced promptly: {:?}", start.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spinning_guests_do_not_stall_other_calls() {
    // More spinning guests than worker threads: epoch yields must keep the
    // executor free for everyone else.
    let h = TestHost::new("[agents.spin-loop.limits]\nfuel = \"off\"\ndeadline_ms = 1500\n");
    let echo = h.load("echo").await.unwrap();
    let spin = h.load("spin-loop").await.unwrap();
    let spinners: Vec<_> = (0..4)
        .map(|_| {
            let spin: Arc<LoadedAgent> = spin.clone();
            tokio::spawn(async move { spin.call(&request("s", "go")).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = Instant::now();
    for _ in 0..20 {
        assert_echo_serves(&echo).await;
    }
    let echo_time = start.elapsed();
    assert!(echo_time < Duration::from_millis(1000), "echo calls were stalled for {echo_time:?}");
    for s in spinners {
        let r = s.await.unwrap();
        assert!(matches!(r, Err(CallError::Deadline { .. })), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_growth_hits_the_memory_limit() {
    let h = TestHost::new("[agents.memory-bomb.limits]\nmemory_bytes = 33554432\n");
    let echo = h.load("echo").await.unwrap();
    let err = hostile_call(&h, "memory-bomb", "go").await;
    assert!(matches!(err, CallError::MemoryLimit { bytes: 33554432 }), "{err:?}");
    assert_eq!(err.code(), "memory-limit");
    assert_echo_serves(&echo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_recursion_overflows_the_stack_safely() {
    let h = TestHost::new("");
    let err = hostile_call(&h, "deep-recursion", "native").await;
    assert!(matches!(err, CallError::StackOverflow), "{err:?}");
    // Big frames overflow Rust's shadow stack in linear memory instead: the
    // guest corrupts only its own memory and traps out of bounds.
    let err = hostile_call(&h, "deep-recursion", "shadow").await;
    assert!(matches!(&err, CallError::Trap { message } if message.contains("out of bounds")), "{err:?}");
    assert_echo_serves(&*h.load("echo").await.unwrap()).await;
}

#[tokio::test]
async fn panic_is_a_trap_of_that_call_only() {
    let h = TestHost::new("");
    let err = hostile_call(&h, "panicker", "boom").await;
    assert!(matches!(&err, CallError::Trap { message } if message.contains("unreachable")), "{err:?}");
    assert_echo_serves(&*h.load("echo").await.unwrap()).await;
}

#[tokio::test]
async fn huge_response_is_refused_but_small_ones_pass() {
    let h = TestHost::new("");
    let err = hostile_call(&h, "huge-response", "").await;
    // 16 MiB: refused while being lifted, before the host copies it.
    assert!(matches!(err, CallError::ResponseTooLarge { size, limit: 1048576 } if size > 1048576), "{err:?}");
    // Just over the limit: measured and refused.
    let agent = h.load("huge-response").await.unwrap();
    let err = agent.call(&request("s", "1048577")).await.unwrap_err();
    assert!(matches!(err, CallError::ResponseTooLarge { size: 1048577, limit: 1048576 }), "{err:?}");
    let agent = h.load("huge-response").await.unwrap();
    let ok = agent.call(&request("s", "100")).await.unwrap();
    assert_eq!(ok.response.text.len(), 100);
    // A long error message is cut, not passed on; a huge one is refused
    // like a huge response.
    let err = agent.call(&request("s", "as-small-error")).await.unwrap_err();
    assert!(matches!(&err, CallError::Agent { kind: "failed", message } if message.len() == 4096), "{}", err.code());
    let err = agent.call(&request("s", "as-error")).await.unwrap_err();
    assert_eq!(err.code(), "response-too-large");
}

#[tokio::test]
async fn flood_of_output_is_capped_and_the_call_succeeds() {
    let h = TestHost::new("");
    let agent = h.load("stdout-flood").await.unwrap();
    let out = agent.call(&request("s", "ok")).await.unwrap();
    assert_eq!(out.response.text, "survived: ok");
}

#[tokio::test]
async fn table_growth_hits_the_table_limit() {
    let h = TestHost::new("[agents.table-grow.limits]\ntable_elements = 50000\n");
    let wat_path = concat!(env!("CARGO_MANIFEST_DIR"), "/guests/table-grow.wat");
    let bytes = wat::parse_file(wat_path).expect("table-grow.wat compiles");
    let agent = h.load_bytes(bytes).await.expect("table-grow loads");
    assert_eq!(agent.name(), "table-grow");
    let err = agent.call(&request("s", "go")).await.unwrap_err();
    assert!(matches!(err, CallError::TableLimit { elements: 50000 }), "{err:?}");
}

/// A runtime implements exactly the capabilities in the list it is given:
/// one built without `http` refuses a component importing it, by name,
/// even where policy grants it.
#[tokio::test]
async fn import_of_a_capability_this_host_lacks_is_refused_with_its_name() {
    use agentkernel::runtime::{HostCapability, Runtime, RuntimeOptions, Services};
    let config = agentkernel::config::HostConfig::parse("[defaults]\nhttp = true\n").unwrap();
    let without_http: Vec<std::sync::Arc<dyn HostCapability>> =
        agentkernel::capabilities::all().into_iter().filter(|c| c.name() != "http").collect();
    let mut options = RuntimeOptions { cache_dir: None, ..agentkernel::host::runtime_options(&config) };
    options.max_instances = 4;
    let runtime = Runtime::new(options, std::sync::Arc::new(config.policy()), without_http, Services::new()).unwrap();
    let err = runtime.load(sandbox_tests::wasm("wants_http").into(), None).await.err().expect("refused");
    let msg = err.to_string();
    assert!(msg.contains("capability http is not available in this host"), "{msg}");
}

#[tokio::test]
async fn ungranted_import_is_refused_by_default_policy() {
    // `llm` exists in this host, but the built-in policy grants only log and memory.
    let h = TestHost::new("");
    let msg = h.load("llm-probe").await.err().expect("refused").to_string();
    assert!(msg.contains("agent `llm-probe` imports capability `llm`"), "{msg}");
    assert!(msg.contains("[agents.llm-probe]") && msg.contains("llm = true"), "{msg}");
    assert!(h.host.registry.get("llm-probe").is_none());
}

#[tokio::test]
async fn import_denied_by_policy_names_agent_capability_and_policy_line() {
    let h = TestHost::new("[agents.notes]\nmemory = false\n");
    let err = h.load("notes").await.err().expect("refused");
    let msg = err.to_string();
    assert!(msg.contains("agent `notes`") && msg.contains("`memory`"), "{msg}");
    assert!(msg.contains("[agents.notes]") && msg.contains("memory = true"), "{msg}");
}

#[tokio::test]
async fn wasi_gives_no_files_env_or_network() {
    // A real listener the guest is pointed at: it must see no connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    // SAFETY: set before any other thread of this test reads the environment.
    unsafe { std::env::set_var("AGENTKERNEL_TEST_SECRET", "hunter2") };

    let h = TestHost::new("");
    let agent = h.load("wasi-escape").await.unwrap();
    let mut req = request("s", "AGENTKERNEL_TEST_SECRET");
    req.context = Some(format!("\"{addr}\""));
    let report = agent.call(&req).await.unwrap().response.text;
    assert!(!report.contains("LEAKED"), "{report}");
    assert!(!report.contains("hunter2"), "{report}");
    for probe in ["read-file", "read-dir", "write-file", "env-var", "env-vars", "tcp-connect", "dns"] {
        assert!(report.contains(&format!("{probe}=denied")), "{probe} not denied in:\n{report}");
    }
    assert!(listener.accept().is_err(), "the guest reached the host's socket");
    assert!(!std::path::Path::new("/tmp/agentkernel-escape").exists());
}

#[tokio::test]
async fn every_call_gets_a_fresh_instance() {
    let h = TestHost::new("");
    let agent = h.load("global-counter").await.unwrap();
    // Each call also finds the 4 MiB it grows zeroed and scribbles on it
    // for the next instance in the same pooled slot.
    for _ in 0..10 {
        assert_eq!(agent.call(&request("s", "")).await.unwrap().response.text, "1");
    }
}

#[tokio::test]
async fn malformed_files_are_refused_with_clear_errors() {
    let h = TestHost::new("");
    let err = h.load_bytes(b"definitely not wasm".to_vec()).await.err().unwrap();
    assert!(matches!(err, LoadError::NotWasm), "{err}");
    let err = h.load_bytes(Vec::new()).await.err().unwrap();
    assert!(matches!(err, LoadError::NotWasm), "{err}");

    let core_module = wat::parse_str("(module (func (export \"handle\")))").unwrap();
    let err = h.load_bytes(core_module).await.err().unwrap();
    assert!(matches!(err, LoadError::CoreModule), "{err}");
    assert!(err.to_string().contains("wasm32-wasip2"));

    let echo = wasm("echo");
    for cut in [9, echo.len() / 3, echo.len() - 1] {
        let err = h.load_bytes(echo[..cut].to_vec()).await.err().expect("truncated file refused");
        assert!(matches!(err, LoadError::Invalid(_)), "cut at {cut}: {err}");
    }
    // A component that is valid but is not an agent.
    let not_agent = wat::parse_str("(component)").unwrap();
    let err = h.load_bytes(not_agent).await.err().unwrap();
    assert!(err.to_string().contains("describe"), "{err}");
    assert_echo_serves(&*h.load("echo").await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_concurrent_calls_than_the_pool_holds_get_capacity_errors() {
    let h = TestHost::new("[host]\nmax_instances = 2\n[agents.spin-loop.limits]\nfuel = \"off\"\ndeadline_ms = 500\n");
    let spin = h.load("spin-loop").await.unwrap();
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let spin = spin.clone();
            tokio::spawn(async move { spin.call(&request("s", "go")).await })
        })
        .collect();
    let mut codes = Vec::new();
    for c in calls {
        codes.push(c.await.unwrap().unwrap_err().code());
    }
    codes.sort();
    assert_eq!(codes, ["capacity", "capacity", "capacity", "deadline", "deadline"], "{codes:?}");
    // Once the slots are free again, calls succeed.
    assert_echo_serves(&*h.load("echo").await.unwrap()).await;
}
