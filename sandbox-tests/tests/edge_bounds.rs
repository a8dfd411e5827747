//! Resources counted per call rather than per agent, each spent by a
//! hostile guest (`edge-abuse`): host log lines, bytes one host call copies
//! out of the guest, and nested calls from entry points other than chat.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use agentkernel::runtime::CallError;
use sandbox_tests::{TestHost, request};
use serde_json::{Value, json};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Host log lines (count, message bytes) per agent, for agents' targets.
#[derive(Default)]
struct LineCounter(Mutex<HashMap<String, (u64, u64)>>);

struct Fields {
    agent: Option<String>,
    message_len: u64,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "agent" {
            self.agent = Some(value.to_string());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message_len = format!("{value:?}").len() as u64;
        }
    }
}

struct CountLayer(Arc<LineCounter>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if !event.metadata().target().starts_with("agent") {
            return;
        }
        let mut f = Fields { agent: None, message_len: 0 };
        event.record(&mut f);
        if let Some(agent) = f.agent {
            let mut m = self.0.0.lock().unwrap();
            let e = m.entry(agent).or_default();
            e.0 += 1;
            e.1 += f.message_len;
        }
    }
}

/// Every test in this file shares one global subscriber that counts lines.
fn lines() -> &'static Arc<LineCounter> {
    static COUNTER: OnceLock<Arc<LineCounter>> = OnceLock::new();
    COUNTER.get_or_init(|| {
        let counter = Arc::new(LineCounter::default());
        let subscriber = tracing_subscriber::registry().with(CountLayer(counter.clone()));
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        counter
    })
}

/// `edge-abuse` imports `agents`, so every host here grants it.
const GRANT: &str = "[agents.edge-abuse]\nagents = { call = [\"echo\"] }\n";

/// The log tests count lines of one agent name in one global counter, so
/// they run one at a time.
static LOG_TESTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn lines_of(agent: &str) -> (u64, u64) {
    lines().0.lock().unwrap().get(agent).copied().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_log_lines_and_stdout_lines_share_one_line_budget() {
    let _serial = LOG_TESTS.lock().await;
    lines();
    let h = TestHost::new(&format!("[limits]\nmax_log_lines = 100\n{GRANT}"));
    let guest = h.load("edge-abuse").await.unwrap();
    let before = lines_of("edge-abuse");
    let out = guest.call(&request("s", "log-empty 1000000")).await.expect("logging is never an error");
    assert_eq!(out.response.text, "logged");
    let after_log = lines_of("edge-abuse");
    // 100 lines, plus the one line that says how many were dropped.
    assert!(after_log.0 - before.0 <= 101, "a million empty lines wrote {} host lines", after_log.0 - before.0);
    assert!(after_log.0 - before.0 >= 100, "the budget's lines are written");

    guest.call(&request("s", "stdout-lines 100000")).await.expect("printing is never an error");
    let after_stdout = lines_of("edge-abuse");
    assert!(after_stdout.0 - after_log.0 <= 101, "stdout lines wrote {} host lines", after_stdout.0 - after_log.0);

    // One call doing both: one budget between them.
    guest.call(&request("s", "log-and-print 1000")).await.unwrap();
    let after_both = lines_of("edge-abuse").0 - after_stdout.0;
    assert!((100..=101).contains(&after_both), "log and stdout together wrote {after_both} host lines");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lines_pay_a_per_line_overhead_against_the_byte_cap() {
    let _serial = LOG_TESTS.lock().await;
    lines();
    // 64 KiB of log with a line budget that would not stop it: the bytes
    // must, counting each line's overhead, not only its one byte.
    let h = TestHost::new(&format!("[limits]\nmax_log_lines = 1000000\nmax_output_bytes = 65536\n{GRANT}"));
    let guest = h.load("edge-abuse").await.unwrap();
    let before = lines_of("edge-abuse");
    guest.call(&request("s", "stdout-lines 40000")).await.unwrap();
    let written = lines_of("edge-abuse").0 - before.0;
    let overhead = agentkernel::capabilities::log::LINE_OVERHEAD_BYTES;
    assert!(written <= 65536 / (1 + overhead) + 1, "{written} one-byte lines under a 64 KiB cap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_host_call_argument_is_refused_before_it_is_copied() {
    let h = TestHost::new(&format!("[limits]\nmemory_bytes = 134217728\n{GRANT}"));
    let guest = h.load("edge-abuse").await.unwrap();
    let err = guest.call(&request("s", "big-key 30")).await.expect_err("a 30 MiB key must not reach the host");
    assert!(matches!(err, CallError::HostCallTooLarge { limit } if limit == 4 << 20), "{err:?}");
    assert_eq!(err.code(), "host-call-too-large");
    assert!(err.to_string().contains("max_host_call_bytes"), "the message says why: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_turns_aliasing_one_buffer_are_refused_at_the_allowance() {
    let h = TestHost::new("[agents.edge-abuse]\nagents = { call = [\"echo\"] }\n");
    h.load("echo").await.unwrap();
    let guest = h.load("edge-abuse").await.unwrap();
    // 7 turns x 16 MiB: 112 MiB for the host to copy from 16 MiB of guest memory.
    let err = guest.call(&request("s", "alias-history 16 7")).await.expect_err("the copy is refused");
    assert_eq!(err.code(), "host-call-too-large", "{err}");
    // Below the allowance the same call goes through.
    let out = guest.call(&request("s", "alias-history 1 2")).await.expect("2 MiB in one call is allowed");
    assert!(out.response.text.contains("took 2 turns"), "{}", out.response.text);
    // Configurable per agent.
    let h = TestHost::new(
        "[agents.edge-abuse]\nagents = { call = [\"echo\"] }\nlimits = { max_host_call_bytes = 1048576 }\n",
    );
    h.load("echo").await.unwrap();
    let guest = h.load("edge-abuse").await.unwrap();
    let err = guest.call(&request("s", "alias-history 1 2")).await.expect_err("over a 1 MiB allowance");
    assert!(matches!(err, CallError::HostCallTooLarge { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_calls_are_budgeted_from_every_entry_point() {
    let h = TestHost::new("[chat]\nmax_calls = 10\n[agents.edge-abuse]\nagents = { call = [\"echo\"] }\n");
    h.load("echo").await.unwrap();
    let guest = h.load("edge-abuse").await.unwrap();

    // An embedder's (or the CLI's) plain call: the first nested call opens
    // a budget with `[chat]`'s limits, the root call counted.
    let out = guest.call(&request("s", "nested 1000000")).await.unwrap();
    assert_eq!(out.response.text, "9 budget-exceeded");

    // The HTTP API's direct call.
    let addr = h.serve().await;
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/v1/agents/edge-abuse/call"))
        .json(&json!({"text": "nested 1000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["text"], "9 budget-exceeded", "{body}");
}
