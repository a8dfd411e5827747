//! `agentkernel.toml`: where the host listens and keeps its data, the
//! default limits, and the policy (grants and limit overrides) per agent.
//!
//! ```toml
//! [host]
//! listen = "127.0.0.1:8080"
//! agents_dir = "agents.d"
//! data_dir = ".agentkernel"
//!
//! [limits]            # defaults for every agent
//! fuel = 2_000_000_000  # instructions-ish per call; "off" disables metering
//! deadline_ms = 5000
//! memory_bytes = 67108864
//!
//! [defaults]          # grants every agent gets unless its section says otherwise
//! log = true
//! memory = true       # own namespace
//!
//! [agents.notes]
//! memory = { namespace = "shared-notes" }
//! limits = { deadline_ms = 2000 }
//! ```
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod evolution;
pub mod research;
pub mod server;

use agentkernel_runtime::limits::{Fuel, LimitOverrides, Limits};
use agentkernel_runtime::policy::{AgentPolicy, AgentSection, Grants, Policy};

use crate::capabilities;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// The whole configuration file. Every section is optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    #[serde(default)]
    pub host: HostSection,
    /// Connection limits, timeouts and per-address request rates of the HTTP server.
    #[serde(default)]
    pub server: server::ServerConfig,
    #[serde(default)]
    pub limits: LimitOverrides,
    /// The LLM endpoint, model profiles and prices.
    #[serde(default)]
    pub llm: agentkernel_llm::LlmConfig,
    /// EC2: region, endpoint, retries and the price table.
    #[serde(default)]
    #[cfg(feature = "aws")]
    pub aws: agentkernel_aws::AwsConfig,
    /// Kept as written in a build without EC2, so the same file parses.
    #[cfg(not(feature = "aws"))]
    #[serde(default)]
    pub aws: toml::Table,
    /// Routing and per-request limits of the chat service.
    #[serde(default)]
    pub chat: crate::chat::ChatConfig,
    /// Grants every agent gets unless its own section overrides them.
    #[serde(default)]
    pub defaults: AgentPolicy,
    /// Per-agent policy, keyed by the name the agent gives in `describe()`.
    #[serde(default)]
    pub agents: BTreeMap<String, AgentSection>,
    /// The self-modification engine: sources, sandboxed builds, swaps.
    #[serde(default)]
    pub evolution: evolution::EvolutionConfig,
    /// The database: SQLite in the data directory (what an acknowledged
    /// write survives: `durability`) or a shared PostgreSQL (`url`).
    #[serde(default)]
    pub storage: agentkernel_storage::sqlite::StorageConfig,
    /// The research center: which agents a cycle calls, on what, how often.
    #[serde(default)]
    pub research: research::ResearchConfig,
    /// OpenTelemetry export of request traces (OTLP/HTTP), off by default.
    #[serde(default)]
    pub telemetry: crate::telemetry::TelemetryConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HostSection {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default = "default_agents_dir")]
    pub agents_dir: PathBuf,
    /// SQLite database and compiled-component cache live here.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Most instances alive at once across all agents (pooling allocator size).
    #[serde(default = "default_max_instances")]
    pub max_instances: u32,
    /// Largest linear memory any agent may be granted; per-agent `memory_bytes` must not exceed it.
    #[serde(default = "default_max_memory_ceiling")]
    pub memory_ceiling_bytes: u64,
    /// Largest table any agent may be granted; per-agent `table_elements` must not exceed it.
    #[serde(default = "default_table_ceiling")]
    pub table_ceiling_elements: u64,
    /// Prefix of each pooled memory kept resident (memset, not madvise)
    /// between instances. Cover the pages agents touch per call.
    #[serde(default = "default_keep_resident")]
    pub keep_resident_bytes: u64,
    /// API tokens (`[[host.tokens]]`). With none, the API is open: allowed
    /// only on a loopback address.
    #[serde(default)]
    pub tokens: Vec<server::TokenConfig>,
    /// Requests per minute for tokens that set no limit of their own (and
    /// per client address when no tokens are configured); 0 = unlimited.
    #[serde(default)]
    pub requests_per_minute: u32,
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("valid literal")
}
fn default_agents_dir() -> PathBuf {
    PathBuf::from("agents.d")
}
fn default_data_dir() -> PathBuf {
    PathBuf::from(".agentkernel")
}
fn default_max_instances() -> u32 {
    256
}
fn default_max_memory_ceiling() -> u64 {
    1 << 30
}
fn default_table_ceiling() -> u64 {
    100_000
}
fn default_keep_resident() -> u64 {
    agentkernel_runtime::KEEP_RESIDENT_BYTES as u64
}

impl Default for HostSection {
    fn default() -> Self {
        HostSection {
            listen: default_listen(),
            agents_dir: default_agents_dir(),
            data_dir: default_data_dir(),
            max_instances: default_max_instances(),
            memory_ceiling_bytes: default_max_memory_ceiling(),
            table_ceiling_elements: default_table_ceiling(),
            keep_resident_bytes: default_keep_resident(),
            tokens: Vec::new(),
            requests_per_minute: 0,
        }
    }
}

impl HostConfig {
    /// Reads `path`; a missing file yields the embedded defaults so the host
    /// starts with no configuration at all.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).map_err(|e| match e {
                ConfigError::Invalid(message) => ConfigError::Parse { path: path.to_path_buf(), message },
                other => other,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ConfigError::Read { path: path.to_path_buf(), source }),
        }
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: HostConfig = toml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the whole configuration. `parse` calls it; call it again
    /// after changing a parsed config (command-line overrides such as
    /// `serve --listen`), so no override can bypass a rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ceiling = self.host.memory_ceiling_bytes;
        let table_ceiling = self.host.table_ceiling_elements;
        let check = |who: &str, o: &LimitOverrides| -> Result<(), ConfigError> {
            if let Some(m) = o.memory_bytes {
                if m > ceiling {
                    return Err(ConfigError::Invalid(format!(
                        "{who}: memory_bytes = {m} exceeds host.memory_ceiling_bytes = {ceiling}"
                    )));
                }
            }
            if let Some(t) = o.table_elements.filter(|t| *t > table_ceiling) {
                return Err(ConfigError::Invalid(format!(
                    "{who}: table_elements = {t} exceeds host.table_ceiling_elements = {table_ceiling}"
                )));
            }
            if o.deadline_ms == Some(0) {
                return Err(ConfigError::Invalid(format!("{who}: deadline_ms must be > 0")));
            }
            // Below this even a manifest or a short memory key cannot cross.
            if let Some(b) = o.max_host_call_bytes.filter(|b| *b < 4096) {
                return Err(ConfigError::Invalid(format!("{who}: max_host_call_bytes = {b} must be at least 4096")));
            }
            Ok(())
        };
        check("[limits]", &self.limits)?;
        for (name, section) in &self.agents {
            check(&format!("[agents.{name}]"), &section.limits)?;
        }
        server::validate_tokens(&self.host.tokens).map_err(ConfigError::Invalid)?;
        self.server.validate().map_err(ConfigError::Invalid)?;
        self.research.validate().map_err(ConfigError::Invalid)?;
        self.storage.validate().map_err(ConfigError::Invalid)?;
        self.telemetry.traces_url().map_err(ConfigError::Invalid)?;
        if self.host.tokens.is_empty() && !self.host.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "host.listen = {} is not a loopback address, and no [[host.tokens]] are configured: \
                 an open API must stay on 127.0.0.1",
                self.host.listen
            )));
        }
        #[cfg(feature = "aws")]
        self.aws.validate().map_err(ConfigError::Invalid)?;
        self.validate_grants()?;
        if self.host.max_instances == 0 {
            return Err(ConfigError::Invalid("host.max_instances must be > 0".into()));
        }
        Ok(())
    }

    /// Every grant's scope, checked by its capability. Grants of
    /// capabilities this build does not implement are kept as written (a
    /// component importing one is refused at load).
    fn validate_grants(&self) -> Result<(), ConfigError> {
        let list = capabilities::all();
        let sections = std::iter::once(("[defaults]".to_string(), &self.defaults))
            .chain(self.agents.iter().map(|(n, s)| (format!("[agents.{n}]"), &s.policy)));
        for (who, policy) in sections {
            for (capability, grant) in policy.iter() {
                let (Some(host), Some(scope)) = (list.iter().find(|h| h.name() == capability.name()), grant.scope()) else {
                    continue;
                };
                host.check_scope(&scope)
                    .map_err(|e| ConfigError::Invalid(format!("{who} {}: {e}", capability.policy_key())))?;
            }
        }
        Ok(())
    }

    /// The policy of every agent, as the runtime reads it.
    pub fn policy(&self) -> Policy {
        Policy {
            limits: self.limits.clone(),
            defaults: self.defaults.clone(),
            agents: self.agents.clone(),
            granted_by_default: capabilities::granted_by_default(),
        }
    }

    /// Limits for `agent`: built-in defaults, then `[limits]`, then `[agents.NAME].limits`.
    pub fn limits_for(&self, agent: &str) -> Limits {
        self.policy().limits_for(agent)
    }

    /// Policy for `agent`: its own section's grants where given, else `[defaults]`.
    pub fn policy_for(&self, agent: &str) -> Grants {
        self.policy().grants_for(agent)
    }

    /// Whether any agent may run with fuel metering (so the metered engine is needed).
    pub fn any_fuel(&self) -> bool {
        let default_on = !matches!(Limits::default().with(&self.limits).fuel, Fuel::Off);
        default_on || self.agents.values().any(|a| matches!(a.limits.fuel, Some(Fuel::Limit(_))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentkernel_runtime::policy::Capability;

    fn namespace(c: &HostConfig, agent: &str) -> Option<String> {
        let scope = c.policy_for(agent).scope(Capability::MEMORY)?;
        scope.get("namespace").and_then(|v| v.as_str()).map(str::to_string)
    }

    #[test]
    fn scopes_are_checked_by_their_capability() {
        let e = HostConfig::parse("[agents.x]\nmemory = { max_keys = \"lots\" }").unwrap_err().to_string();
        assert!(e.contains("[agents.x] memory") && e.contains("max_keys"), "{e}");
        let e = HostConfig::parse("[defaults]\nllm = { tokens_per_year = 5 }").unwrap_err().to_string();
        assert!(e.contains("[defaults] llm") && e.contains("tokens_per_year"), "{e}");
        let e = HostConfig::parse("[agents.x]\nlog = { verbose = true }").unwrap_err().to_string();
        assert!(e.contains("log takes no scope"), "{e}");
    }

    #[test]
    fn empty_config_gives_embedded_defaults() {
        let c = HostConfig::parse("").unwrap();
        assert_eq!(c.host.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.host.agents_dir, PathBuf::from("agents.d"));
        let p = c.policy_for("anyone");
        assert!(p.allows(Capability::LOG));
        assert!(p.allows(Capability::MEMORY));
        assert!(!p.allows(Capability::LLM));
    }

    #[test]
    fn agent_section_overrides_defaults_and_limits() {
        let c = HostConfig::parse(
            r#"
            [limits]
            deadline_ms = 1000
            fuel = 5000
            [agents.notes]
            memory = { namespace = "shared" }
            limits = { deadline_ms = 200, fuel = "off" }
            [agents.quiet]
            log = false
            "#,
        )
        .unwrap();
        let l = c.limits_for("notes");
        assert_eq!(l.deadline.as_millis(), 200);
        assert!(matches!(l.fuel, Fuel::Off));
        assert_eq!(c.limits_for("other").deadline.as_millis(), 1000);
        assert!(matches!(c.limits_for("other").fuel, Fuel::Limit(5000)));
        assert_eq!(namespace(&c, "notes").as_deref(), Some("shared"));
        assert_eq!(namespace(&c, "other"), None, "the default scope: the agent's own name");
        assert!(!c.policy_for("quiet").allows(Capability::LOG));
        assert!(c.policy_for("quiet").allows(Capability::MEMORY), "unspecified keys fall back to [defaults]");
    }

    /// The README's configuration reference must stay a valid config.
    #[test]
    fn readme_configuration_example_parses() {
        let readme = include_str!("../../../../README.md");
        let section = readme.split("## Configuration (`agentkernel.toml`)").nth(1).expect("section exists");
        let block = section.split("```toml").nth(1).and_then(|b| b.split("```").next()).expect("toml block");
        let c = HostConfig::parse(block).unwrap_or_else(|e| panic!("README example: {e}"));
        assert_eq!(namespace(&c, "notes").as_deref(), Some("shared"));
        assert_eq!(c.llm.profiles.get("fast").map(String::as_str), Some("gpt-4o-mini"));
        assert!(!c.policy_for("quiet").allows(Capability::LOG));
        // And the repository's own agentkernel.toml, which `scripts/run` uses.
        let repo = HostConfig::parse(include_str!("../../../../agentkernel.toml")).unwrap();
        assert!(repo.policy_for("summarizer").allows(Capability::LLM));
    }

    #[test]
    fn validate_refuses_an_open_api_beyond_loopback() {
        let mut c = HostConfig::parse("").unwrap();
        c.host.listen = "0.0.0.0:8080".parse().unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("not a loopback address"), "{e}");
        c.host.listen = "[::1]:8080".parse().unwrap();
        assert!(c.validate().is_ok());
    }

    #[test]
    fn malformed_config_is_a_clear_error() {
        let e = HostConfig::parse("[agents.x]\nlog = 7").unwrap_err().to_string();
        assert!(e.contains("invalid config"), "{e}");
        let e = HostConfig::parse("[nonsense]\n").unwrap_err().to_string();
        assert!(e.contains("nonsense"), "{e}");
        let e = HostConfig::parse("[limits]\nmemory_bytes = 99999999999999").unwrap_err().to_string();
        assert!(e.contains("memory_ceiling_bytes"), "{e}");
    }
}
