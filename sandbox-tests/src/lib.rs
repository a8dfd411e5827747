//! Test support shared by the host's and the sandbox's test suites: where
//! the built components are, and a host on a temporary directory.
//!
//! Components are built by `scripts/test` (`cargo build --target
//! wasm32-wasip2 --release` of `agents/*` and `sandbox-tests/guests/*`),
//! which exports `AGENTKERNEL_WASM_DIR`.
pub mod child;
pub mod llm_server;
pub mod load;
pub mod moto;
pub mod served;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use agentkernel::bindings::Request;
use agentkernel::config::HostConfig;
use agentkernel::host::Host;
use agentkernel::runtime::{LoadError, LoadedAgent};

/// Directory holding the built `.wasm` components.
pub fn wasm_dir() -> PathBuf {
    if let Ok(d) = std::env::var("AGENTKERNEL_WASM_DIR") {
        return PathBuf::from(d);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("wasm32-wasip2/release")
}

/// Path of the built component of crate `name` (e.g. `echo`, `spin-loop`).
pub fn wasm_path(name: &str) -> PathBuf {
    let p = wasm_dir().join(format!("{}.wasm", name.replace('-', "_")));
    assert!(p.exists(), "{} is missing: run ./scripts/test (it builds the wasm components first)", p.display());
    p
}

pub fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(wasm_path(name)).expect("readable component")
}

/// The `numbered` guest as agent `gen-{n:06}` (skill keyword `topic{n:06}`):
/// its marker replaced in the bytes, so each `n` is a distinct component
/// with its own manifest.
pub fn numbered_agent(n: u32) -> Vec<u8> {
    assert!(n < 1_000_000);
    let mut bytes = wasm("numbered");
    let digits = format!("{n:06}");
    let mut replaced = 0;
    let mut i = 0;
    while i + 6 <= bytes.len() {
        if &bytes[i..i + 6] == b"qqqqqq" {
            bytes[i..i + 6].copy_from_slice(digits.as_bytes());
            replaced += 1;
            i += 6;
        } else {
            i += 1;
        }
    }
    assert!(replaced >= 3, "the numbered guest lost its marker");
    bytes
}

pub fn request(session: &str, text: &str) -> Request {
    Request { session_id: session.into(), text: text.into(), history: vec![], context: None }
}

/// A host whose data and agents directories live in a temporary directory.
pub struct TestHost {
    pub host: Host,
    pub dir: tempfile::TempDir,
    config: String,
}

impl TestHost {
    /// `config` is `agentkernel.toml` text; `[host]` paths are set here.
    pub fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::in_dir(config, dir)
    }

    /// Stops this host and starts a new one on the same directories and
    /// configuration: a restart.
    pub fn reopen(self) -> Self {
        let TestHost { host, dir, config } = self;
        drop(host);
        Self::in_dir(&config, dir)
    }

    fn in_dir(config: &str, dir: tempfile::TempDir) -> Self {
        let mut cfg = HostConfig::parse(config).expect("valid test config");
        cfg.host.data_dir = dir.path().join("data");
        cfg.host.agents_dir = dir.path().join("agents.d");
        // Tests run many hosts at once: keep each pool small unless the test sizes it.
        if !config.contains("max_instances") {
            cfg.host.max_instances = 64;
        }
        let host = Host::open(cfg).expect("host opens");
        TestHost { host, dir, config: config.to_string() }
    }

    pub fn agents_dir(&self) -> PathBuf {
        self.host.config.host.agents_dir.clone()
    }

    /// Loads a built component by crate name (not through the directory).
    pub async fn load(&self, name: &str) -> Result<Arc<LoadedAgent>, LoadError> {
        self.load_bytes(wasm(name)).await
    }

    pub async fn load_bytes(&self, bytes: Vec<u8>) -> Result<Arc<LoadedAgent>, LoadError> {
        let agent = self.host.runtime.load(bytes.into(), None).await?;
        Ok(self.host.registry.insert(agent))
    }

    /// Scans the agents directory and serves the HTTP API on a free
    /// loopback port until the test ends.
    pub async fn serve(&self) -> std::net::SocketAddr {
        self.host.registry.scan().await;
        // As `agentkernel serve` does: agents granted `evolution` reach this engine.
        agentkernel::evolution::service::install(&self.host);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let app = agentkernel::server::App::new(&self.host).expect("API tokens resolve");
        // The accept loop production runs: its caps and timeouts apply here too.
        let limits = self.host.config.server.clone();
        let router = agentkernel::server::router(app);
        tokio::spawn(agentkernel::server::listener::serve_connections(listener, router, limits, std::future::pending()));
        addr
    }

    /// Copies a built component into the agents directory atomically.
    pub fn install(&self, crate_name: &str, file_name: &str) -> PathBuf {
        agentkernel::scaffold::install_component(&wasm_path(crate_name), &self.agents_dir(), file_name)
            .expect("install component")
    }
}
