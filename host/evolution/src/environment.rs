//! The clocks and random numbers a benchmarked component sees.
//!
//! A candidate must not be able to tell the benchmark from production: a
//! fixed date (the benchmark used to start its clock at 2025-01-01), a
//! clock reading exactly zero, or random numbers that repeat from run to
//! run all let it behave well only while it is judged. Here every run has
//! its own seed; the wall clock starts at the real time the run began and
//! the monotonic clock at a plausible few microseconds; both advance by
//! seeded, jittered steps at every reading, and random numbers come from a
//! seeded generator that never cycles. Within a run, the same case and
//! variant get the same environment for every component, so the incumbent
//! and a candidate are measured on identical inputs and their fuel stays
//! comparable; each case is also checked under [`VARIANTS`] different
//! environments, so an answer that depends on the environment is caught.
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use wasmtime_wasi::Rng as _;

use agentkernel_runtime::WasiEnvironment;

/// Environments each case is answered under; fuel comes from the first.
pub const VARIANTS: u32 = 2;

/// The environment of one benchmark run, switched per case and variant.
pub struct BenchEnvironment {
    run_seed: u64,
    /// The real time the run began: where every wall clock starts.
    started: Duration,
    current: RwLock<u64>,
}

impl BenchEnvironment {
    pub fn new(run_seed: u64) -> Arc<Self> {
        let started = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        Arc::new(BenchEnvironment { run_seed, started, current: RwLock::new(mix(run_seed, 0)) })
    }

    /// A run seed nobody can predict (the engine derives it from the
    /// evolution id instead, so a resumed run measures as before).
    pub fn random_seed() -> u64 {
        let mut bytes = [0u8; 8];
        // The host's own random numbers: WASI's thread RNG.
        wasmtime_wasi::thread_rng().fill_bytes(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    /// A seed from text (an evolution id).
    pub fn seed_from(text: &str) -> u64 {
        text.bytes().fold(0xCBF2_9CE4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3))
    }

    /// The environment instances get from now on: case `case`, variant `variant`.
    pub fn select(&self, case: usize, variant: u32) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) =
            mix(mix(self.run_seed, case as u64 + 1), u64::from(variant) + 0x9E37);
    }

    /// The session id a call gets when its case names none: shaped like the
    /// chat service's (its creation time, within the run's first second,
    /// then seeded digits), seeded by the run and `case`, so no constant
    /// tells a benchmark call from a live one.
    pub fn session_id(&self, case: usize) -> String {
        let mut r = SplitMix(mix(self.run_seed, 0x5E55_0000 + case as u64));
        let created = self.started + Duration::from_nanos(r.next() % 1_000_000_000);
        agentkernel_core::chat::session_id_from(created, r.next())
    }

    fn seed(&self) -> u64 {
        *self.current.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl WasiEnvironment for BenchEnvironment {
    fn configure(&self, wasi: &mut wasmtime_wasi::WasiCtxBuilder) {
        let seed = self.seed();
        let mut setup = SplitMix(mix(seed, 1));
        // Within the first second of the run, as a real call would be.
        let wall_start = self.started + Duration::from_nanos(setup.next() % 1_000_000_000);
        let mono_start = 2_000 + setup.next() % 60_000;
        wasi.secure_random(SplitMix(mix(seed, 2)))
            .insecure_random(SplitMix(mix(seed, 3)))
            .insecure_random_seed(u128::from(mix(seed, 4)) << 64 | u128::from(mix(seed, 5)))
            .wall_clock(SeededWallClock { start: wall_start, ticks: Mutex::new((SplitMix(mix(seed, 6)), 0)) })
            .monotonic_clock(SeededMonotonicClock { ticks: Mutex::new((SplitMix(mix(seed, 7)), mono_start)) });
    }
}

/// splitmix64: a full-period generator, so its output never repeats
/// within anything a call could read.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A step between two clock readings: 0.3-3 µs, like a real call's.
    fn step(&mut self) -> u64 {
        300 + self.next() % 2_700
    }
}

impl rand_core::TryRng for SplitMix {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok((self.next() >> 32) as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.next())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

fn mix(a: u64, b: u64) -> u64 {
    SplitMix(a ^ b.wrapping_mul(0xD6E8_FEB8_6659_FD93)).next()
}

struct SeededWallClock {
    start: Duration,
    /// The step generator and nanoseconds elapsed so far.
    ticks: Mutex<(SplitMix, u64)>,
}

impl wasmtime_wasi::HostWallClock for SeededWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        let mut t = self.ticks.lock().unwrap_or_else(|p| p.into_inner());
        t.1 += t.0.step();
        self.start + Duration::from_nanos(t.1)
    }
}

struct SeededMonotonicClock {
    ticks: Mutex<(SplitMix, u64)>,
}

impl wasmtime_wasi::HostMonotonicClock for SeededMonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        let mut t = self.ticks.lock().unwrap_or_else(|p| p.into_inner());
        t.1 += t.0.step();
        t.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

    #[test]
    fn the_same_case_and_variant_get_the_same_environment_and_others_differ() {
        let env = BenchEnvironment::new(42);
        env.select(3, 0);
        let a = env.seed();
        env.select(3, 1);
        let b = env.seed();
        env.select(3, 0);
        assert_eq!(env.seed(), a);
        assert_ne!(a, b);
        assert_eq!(env.session_id(3), env.session_id(3));
        assert_ne!(env.session_id(3), env.session_id(4));
        // Shaped like a live id made now: same length, same clock prefix.
        let live = agentkernel_core::chat::new_session_id();
        let id = env.session_id(3);
        assert_eq!(id.len(), live.len(), "{id} vs {live}");
        let created_ms = |id: &str| i64::from_str_radix(&id[2..13], 16).unwrap();
        assert!((created_ms(&id) - created_ms(&live)).abs() < 2_000, "not created about now: {id} vs {live}");
        let other_run = BenchEnvironment::new(43);
        other_run.select(3, 0);
        assert_ne!(other_run.seed(), a, "runs differ");
    }

    #[test]
    fn clocks_look_real_and_advance_unevenly() {
        let started = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap();
        let wall = SeededWallClock { start: started, ticks: Mutex::new((SplitMix(7), 0)) };
        let (w1, w2, w3) = (wall.now(), wall.now(), wall.now());
        assert!(w1 >= started && w1 < started + Duration::from_secs(1));
        assert!(w2 > w1 && w3 > w2);
        assert_ne!(w2 - w1, w3 - w2, "steps vary");
        let mono = SeededMonotonicClock { ticks: Mutex::new((SplitMix(9), 5_000)) };
        assert!(mono.now() > 5_000, "never zero");
    }

    #[test]
    fn random_numbers_do_not_cycle() {
        use rand_core::TryRng;
        let mut r = SplitMix(1);
        let mut first = [0u8; 16];
        r.try_fill_bytes(&mut first).unwrap();
        let mut later = [0u8; 16];
        for _ in 0..1000 {
            r.try_fill_bytes(&mut later).unwrap();
            assert_ne!(first, later);
        }
    }
}
