//! A cold start with many new components: the registry's scan of an agents
//! directory of `AGENTKERNEL_COLD_AGENTS` (default 32) distinct components
//! on an empty compile cache, against compiling the same components one at
//! a time on the same engine (the baseline, measured in the same run), each
//! with the cores it kept busy (process CPU time over wall time, from
//! `/proc/self/stat`).
//!
//! The finding this bench keeps checking: wasmtime compiles a component's
//! functions in parallel (its rayon pool has a thread per core), so loading
//! new components one after another already keeps every core busy, and
//! compiling several components side by side (tried: a warm-up that
//! compiled a scan's new files one per core before loading them) gained
//! nothing, since both share that one pool.
//!
//! The components are `notes` with a distinct custom section appended to
//! each (distinct bytes, so distinct compilations; the same agent name, so
//! all but the first are then refused as duplicates, after being loaded and
//! described like any other).
//!
//! Run: `cargo bench -p agentkernel-benches --bench cold_load`
use std::time::{Duration, Instant};

use agentkernel::runtime::{CompileCache, content_hash};
use sandbox_tests::{TestHost, wasm};

/// `component` with a custom section `name` holding `payload` appended.
fn with_custom_section(component: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            out.push(if n == 0 { byte } else { byte | 0x80 });
            if n == 0 {
                break;
            }
        }
    }
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut out = component.to_vec();
    out.push(0);
    leb(body.len(), &mut out);
    out.extend(body);
    out
}

/// This process's CPU time so far (user + system), on Linux.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command's closing parenthesis: state, then fields 4.. of
    // proc(5); utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    let ticks = field(14) + field(15);
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

/// Wall time of `f` and the cores it kept busy on average.
fn timed(f: impl FnOnce()) -> (Duration, f64) {
    let (cpu, started) = (cpu_time(), Instant::now());
    f();
    let wall = started.elapsed();
    (wall, (cpu_time() - cpu).as_secs_f64() / wall.as_secs_f64())
}

fn main() {
    let n: usize = std::env::var("AGENTKERNEL_COLD_AGENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(32);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let base = wasm("notes");
    let copies: Vec<Vec<u8>> = (0..n).map(|i| with_custom_section(&base, "agentkernel-bench", format!("{i}").as_bytes())).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    // The baseline: one compilation after another, on the host's engine.
    let h = TestHost::new("");
    let engine = h.host.runtime.engine(true).clone();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(cache_dir.path());
    let (serial, serial_cores) = timed(|| {
        for bytes in &copies {
            let (_, hit) = cache.load(&engine, bytes, &content_hash(bytes)).unwrap();
            assert!(!hit);
        }
    });

    // The scan of a directory holding them, on a fresh host (empty cache).
    let h = TestHost::new("");
    std::fs::create_dir_all(h.agents_dir()).unwrap();
    for (i, bytes) in copies.iter().enumerate() {
        std::fs::write(h.agents_dir().join(format!("notes-{i:04}.wasm")), bytes).unwrap();
    }
    let (scan, scan_cores) = timed(|| rt.block_on(h.host.registry.scan()));
    assert_eq!(h.host.registry.list().len(), 1, "one agent name among the copies");
    assert_eq!(h.host.registry.files().len(), n);

    println!("{n} new components, {cores} cores:");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("  compiled one at a time (baseline)  {:>8.0} ms  ({:.1} ms each), {serial_cores:.2} cores busy", ms(serial), ms(serial) / n as f64);
    println!("  registry scan (compile + load)     {:>8.0} ms, {scan_cores:.2} cores busy", ms(scan));
    println!("  => the scan takes {:.2}x the baseline's time", scan.as_secs_f64() / serial.as_secs_f64());
}
