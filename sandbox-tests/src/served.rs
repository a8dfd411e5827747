//! `agentkernel serve` as a child process on a loopback port, the way an
//! operator runs a host: its own directory, `agentkernel.toml` and agents.
//! Killed (SIGKILL) and reaped when dropped.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Served {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its agents directory.
    pub agents: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Served {
    /// Starts `bin serve` (the host tests pass `env!("CARGO_BIN_EXE_agentkernel")`)
    /// with `config` as its `agentkernel.toml` and the workspace-built
    /// components of `agents` in its agents directory; returns once it listens.
    pub fn start(bin: &Path, config: &str, agents: &[&str]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let agents_dir = dir.path().join("agents.d");
        std::fs::create_dir_all(&agents_dir).unwrap();
        for name in agents {
            std::fs::write(agents_dir.join(format!("{name}.wasm")), crate::wasm(name)).unwrap();
        }
        std::fs::write(dir.path().join("agentkernel.toml"), config).unwrap();
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(dir.path())
            .env_remove("AGENTKERNEL_STORAGE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("serve printed {line:?}")).to_string();
        Served { child, url, agents: agents_dir, dir }
    }

    pub fn port(&self) -> String {
        self.url.rsplit(':').next().unwrap().to_string()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
