//! Hostile guest `edge-abuse`: spends what is counted per call rather than
//! per agent. The request text picks the attack:
//!
//! - `log-empty N`: `N` empty `log` lines.
//! - `stdout-lines N`: `N` one-byte lines on stdout.
//! - `log-and-print N`: `N` empty `log` lines and `N` stdout lines in one call.
//! - `big-key MIB`: a `memory.get` whose key is `MIB` MiB (refused only
//!   after the host copied it, before host-call limits).
//! - `alias-history MIB TURNS`: an `agents.call` whose request history has
//!   `TURNS` turns all pointing at one `MIB` MiB buffer, through the raw
//!   canonical ABI (the guest holds the bytes once; the host would copy
//!   them `TURNS` times).
//! - `nested N`: up to `N` `agents.call`s of `echo`, one after another;
//!   answers how many succeeded and the first error.
use agentkernel_sdk::agents;
use agentkernel_sdk::prelude::*;

struct Hostile;

fn arg(parts: &[&str], i: usize, default: u64) -> u64 {
    parts.get(i).and_then(|p| p.parse().ok()).unwrap_or(default)
}

impl Agent for Hostile {
    fn describe() -> Manifest {
        Manifest::new("edge-abuse", "0.1.0", "spends per-call resources without bound.")
            .capability("log", "floods it")
            .capability("memory", "passes it huge keys")
            .capability("agents", "calls echo in a loop")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let parts: Vec<&str> = req.text.split_whitespace().collect();
        match parts.first().copied().unwrap_or("") {
            "log-empty" => {
                for _ in 0..arg(&parts, 1, 1_000_000) {
                    log::info("");
                }
                Ok(Response::text("logged"))
            }
            "log-and-print" => {
                for _ in 0..arg(&parts, 1, 1000) {
                    log::info("");
                    println!("x");
                }
                Ok(Response::text("both"))
            }
            "stdout-lines" => {
                for _ in 0..arg(&parts, 1, 100_000) {
                    println!("x");
                }
                Ok(Response::text("printed"))
            }
            "big-key" => {
                let key = "k".repeat((arg(&parts, 1, 30) << 20) as usize);
                let r = memory::get(&key);
                Ok(Response::text(format!("memory.get returned: {r:?}")))
            }
            "alias-history" => {
                let (mib, turns) = (arg(&parts, 1, 16), arg(&parts, 2, 7));
                Ok(Response::text(alias_history(mib as usize, turns as usize)))
            }
            "nested" => {
                let mut ok = 0u64;
                let mut first_error = String::new();
                for i in 0..arg(&parts, 1, 1_000_000) {
                    match agents::call("echo", &Request::new(&req.session_id, &format!("n{i}"))) {
                        Ok(_) => ok += 1,
                        Err(e) => {
                            first_error = e.code().to_string();
                            break;
                        }
                    }
                }
                Ok(Response::text(format!("{ok} {first_error}")))
            }
            other => Err(AgentError::InvalidRequest(format!("unknown attack {other:?}"))),
        }
    }
}

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "agentkernel:agent/agents@0.1.0")]
unsafe extern "C" {
    /// `call: func(agent: string, req: request) -> result<response, call-error>`,
    /// lowered: agent (ptr, len), session-id (ptr, len), text (ptr, len),
    /// history (ptr, len), context (tag, ptr, len), then the return area.
    #[link_name = "call"]
    fn raw_call(
        agent_ptr: *const u8,
        agent_len: usize,
        session_ptr: *const u8,
        session_len: usize,
        text_ptr: *const u8,
        text_len: usize,
        history_ptr: *const u8,
        history_len: usize,
        context_tag: i32,
        context_ptr: *const u8,
        context_len: usize,
        ret: *mut u8,
    );
}

/// A `turn` record in the canonical ABI: `role` (u8 enum), then the
/// content string's pointer and length.
#[repr(C)]
struct RawTurn {
    role: u8,
    content_ptr: *const u8,
    content_len: usize,
}

#[cfg(target_arch = "wasm32")]
fn alias_history(mib: usize, turns: usize) -> String {
    let buffer = vec![b'a'; mib << 20];
    let history: Vec<RawTurn> =
        (0..turns).map(|_| RawTurn { role: 0, content_ptr: buffer.as_ptr(), content_len: buffer.len() }).collect();
    let (agent, session, text) = ("echo", "s", "aliased");
    // Big enough and aligned for any `result<response, call-error>`.
    let mut ret = [0u64; 16];
    unsafe {
        raw_call(
            agent.as_ptr(),
            agent.len(),
            session.as_ptr(),
            session.len(),
            text.as_ptr(),
            text.len(),
            history.as_ptr().cast(),
            history.len(),
            0,
            std::ptr::null(),
            0,
            ret.as_mut_ptr().cast(),
        );
    }
    // Reached only if the host accepted the call.
    format!("the host took {turns} turns of {mib} MiB")
}

#[cfg(not(target_arch = "wasm32"))]
fn alias_history(_mib: usize, _turns: usize) -> String {
    unreachable!("a wasm-only attack")
}

export_agent!(Hostile);
