//! Compiling components, and the on-disk cache of compiled ones.
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::errors::LoadError;

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(500).collect()
}

/// Compiled components on disk, keyed by content hash and engine
/// configuration, so a restart does not recompile.
pub struct CompileCache {
    pub(crate) dir: PathBuf,
}

impl CompileCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CompileCache { dir: dir.into() }
    }

    fn path(&self, engine: &Engine, content_hash: &str) -> PathBuf {
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        self.dir.join(format!("{content_hash}-{:016x}.cwasm", h.finish()))
    }

    /// Loads the compiled form of `bytes`, compiling and storing it on a miss.
    /// Returns whether it was a hit.
    pub fn load(&self, engine: &Engine, bytes: &[u8], content_hash: &str) -> Result<(Component, bool), LoadError> {
        let path = self.path(engine, content_hash);
        if path.exists() {
            // SAFETY: files in the cache directory are written only by this
            // host (below), from components it compiled itself, and are
            // keyed by the engine's compatibility hash. The directory belongs
            // to the host's data dir, which guests cannot reach.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok((c, true)),
                Err(e) => {
                    tracing::warn!("discarding unusable compile cache entry {}: {e}", path.display());
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let component = compile(engine, bytes)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!("could not write compile cache entry {}: {e}", path.display());
        }
        Ok((component, false))
    }

    fn store(&self, path: &Path, component: &Component) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let bytes = component.serialize().map_err(|e| std::io::Error::other(e.to_string()))?;
        // Write then rename, so a crash never leaves a half-written entry;
        // a temporary name of its own per write, since two threads (a scan's
        // warm-up and a reload) may store the same entry at once.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    }
}

/// Compiles `bytes` after checking it is a component at all.
pub fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, LoadError> {
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    // Bytes 4..8 are the version and layer: layer 0 is a core module, 1 a component.
    if bytes[6..8] == [0, 0] {
        return Err(LoadError::CoreModule);
    }
    Component::new(engine, bytes).map_err(|e| LoadError::Invalid(first_line(&format!("{e:#}"))))
}

pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What code `engine` compiles to, as 16 hex digits: its wasmtime version,
/// compiler settings and features (not its allocator). Two engines with
/// the same hash compile a component to the same code, so it spends the
/// same fuel on the same input: what lets a benchmark run on another host
/// count. (SHA-256 of wasmtime's own compatibility hash input; the same
/// on every host, unlike `DefaultHasher`.)
pub fn engine_hash(engine: &wasmtime::Engine) -> String {
    struct Sha(Sha256);
    impl std::hash::Hasher for Sha {
        fn write(&mut self, bytes: &[u8]) {
            sha2::Digest::update(&mut self.0, bytes);
        }
        fn finish(&self) -> u64 {
            0
        }
    }
    let mut hasher = Sha(Sha256::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
    hex::encode(&hasher.0.finalize()[..8])
}

