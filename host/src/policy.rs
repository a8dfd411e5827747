//! Capability policy: which host capabilities an agent may import, and how
//! each grant is scoped. A component's imports are the capabilities it asks
//! for; [`check_imports`] compares them with the agent's [`Grants`] at load
//! time, so an ungranted import means the component never runs.
use serde::{Deserialize, Serialize};

pub use crate::capabilities::memory::MemoryScope;

/// WIT package (with version) that defines every capability interface.
pub const WIT_PACKAGE: &str = "agentkernel:agent";
pub const WIT_VERSION: &str = "0.1.0";

/// A host capability, one per imported WIT interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    Log,
    Memory,
    Llm,
    Agents,
    Http,
    AwsEc2,
}

impl Capability {
    pub const ALL: [Capability; 6] =
        [Capability::Log, Capability::Memory, Capability::Llm, Capability::Agents, Capability::Http, Capability::AwsEc2];

    /// Name used in WIT, policy files and messages.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Log => "log",
            Capability::Memory => "memory",
            Capability::Llm => "llm",
            Capability::Agents => "agents",
            Capability::Http => "http",
            Capability::AwsEc2 => "aws-ec2",
        }
    }

    /// Key of this capability in `agentkernel.toml`.
    pub fn policy_key(self) -> &'static str {
        match self {
            Capability::AwsEc2 => "aws_ec2",
            other => other.name(),
        }
    }

    pub fn from_interface_name(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether this host build implements the capability. The others are
    /// defined in WIT so agents can be written against them, and a component
    /// importing them is refused at load until their host side exists.
    pub fn is_available(self) -> bool {
        matches!(self, Capability::Log | Capability::Memory | Capability::Llm | Capability::Agents | Capability::AwsEc2)
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A grant in policy: `false`, `true` (default scope) or a scope table.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Grant<S> {
    Enabled(bool),
    Scoped(S),
}

impl<S: Default + Clone> Grant<S> {
    pub fn is_granted(&self) -> bool {
        !matches!(self, Grant::Enabled(false))
    }
    /// The scope if granted (the default scope for `true`).
    pub fn scope(&self) -> Option<S> {
        match self {
            Grant::Enabled(false) => None,
            Grant::Enabled(true) => Some(S::default()),
            Grant::Scoped(s) => Some(s.clone()),
        }
    }
}

/// Scope of `log`: nothing to configure.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NoScope {}

/// Scope tables for capabilities whose host side is not built yet are kept
/// as written, so a policy file written for a newer host still parses.
pub type OpaqueScope = toml::Table;

/// Grants as written in `[defaults]` or `[agents.NAME]`: a missing key means
/// "inherit" (agent → defaults → built-in).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentPolicy {
    pub log: Option<Grant<NoScope>>,
    pub memory: Option<Grant<MemoryScope>>,
    pub llm: Option<Grant<crate::llm::LlmScope>>,
    pub agents: Option<Grant<crate::capabilities::agents::AgentsScope>>,
    pub http: Option<Grant<OpaqueScope>>,
    pub aws_ec2: Option<Grant<crate::aws::policy::AwsEc2Scope>>,
}

impl AgentPolicy {
    /// Resolves this policy over `defaults` and the built-in default
    /// (`log` and own-namespace `memory` granted, everything else denied).
    pub fn layered_on(&self, defaults: &AgentPolicy) -> Grants {
        fn pick<S: Clone>(own: &Option<Grant<S>>, dflt: &Option<Grant<S>>, builtin: bool) -> Grant<S> {
            own.clone().or_else(|| dflt.clone()).unwrap_or(Grant::Enabled(builtin))
        }
        Grants {
            log: pick(&self.log, &defaults.log, true),
            memory: pick(&self.memory, &defaults.memory, true),
            llm: pick(&self.llm, &defaults.llm, false),
            agents: pick(&self.agents, &defaults.agents, false),
            http: pick(&self.http, &defaults.http, false),
            aws_ec2: pick(&self.aws_ec2, &defaults.aws_ec2, false),
        }
    }
}

/// The resolved grants of one agent.
#[derive(Debug, Clone, Serialize)]
pub struct Grants {
    pub log: Grant<NoScope>,
    pub memory: Grant<MemoryScope>,
    pub llm: Grant<crate::llm::LlmScope>,
    pub agents: Grant<crate::capabilities::agents::AgentsScope>,
    pub http: Grant<OpaqueScope>,
    pub aws_ec2: Grant<crate::aws::policy::AwsEc2Scope>,
}

impl Grants {
    pub fn allows(&self, c: Capability) -> bool {
        match c {
            Capability::Log => self.log.is_granted(),
            Capability::Memory => self.memory.is_granted(),
            Capability::Llm => self.llm.is_granted(),
            Capability::Agents => self.agents.is_granted(),
            Capability::Http => self.http.is_granted(),
            Capability::AwsEc2 => self.aws_ec2.is_granted(),
        }
    }

    /// The memory namespace of `agent`, or `None` if memory is not granted.
    pub fn memory_namespace(&self, agent: &str) -> Option<String> {
        self.memory.scope().map(|s| s.namespace.unwrap_or_else(|| agent.to_string()))
    }

    /// Granted capabilities, for display.
    pub fn granted(&self) -> Vec<Capability> {
        Capability::ALL.into_iter().filter(|c| self.allows(*c)).collect()
    }
}

/// What a component imports, sorted into capabilities and WASI.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportSet {
    pub capabilities: Vec<Capability>,
    pub wasi: Vec<String>,
}

/// Why a component's imports cannot be satisfied.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ImportError {
    #[error("capability {capability} is not available in this host (the component imports {interface})")]
    Unavailable { capability: Capability, interface: String },
    #[error(
        "agent `{agent}` imports capability `{capability}`, which policy does not grant; to allow it add to agentkernel.toml:\n    [agents.{agent}]\n    {key} = true"
    )]
    NotGranted { agent: String, capability: Capability, key: &'static str },
    #[error("the component imports {interface}, built against {WIT_PACKAGE}@{found}; this host provides {WIT_PACKAGE}@{WIT_VERSION}")]
    VersionMismatch { interface: String, found: String },
    #[error("the component imports {0}, which is not an agentkernel capability or an allowed WASI interface")]
    Unknown(String),
}

/// WASI 0.2 interfaces agents may import. They are linked with a locked-down
/// context: no preopened directories, no environment, no sockets (the socket
/// interfaces exist so Rust's std links, but every address is refused).
const WASI_ALLOWED: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
    "wasi:sockets/ip-name-lookup",
];

/// Sorts import names (`pkg:ns/iface@ver`) into capabilities and WASI,
/// rejecting anything else. Does not look at policy.
pub fn classify_imports<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<ImportSet, ImportError> {
    let mut set = ImportSet::default();
    for full in names {
        let (path, version) = full.split_once('@').unwrap_or((full, ""));
        if let Some(iface) = path.strip_prefix("agentkernel:agent/") {
            if version != WIT_VERSION {
                return Err(ImportError::VersionMismatch { interface: full.to_string(), found: version.to_string() });
            }
            match Capability::from_interface_name(iface) {
                // `types` only carries records; importing it grants nothing.
                None if iface == "types" => {}
                Some(c) => {
                    if !set.capabilities.contains(&c) {
                        set.capabilities.push(c)
                    }
                }
                None => return Err(ImportError::Unknown(full.to_string())),
            }
        } else if WASI_ALLOWED.contains(&path) && version.starts_with("0.2.") {
            set.wasi.push(full.to_string());
        } else {
            return Err(ImportError::Unknown(full.to_string()));
        }
    }
    set.capabilities.sort();
    Ok(set)
}

/// Checks imported capabilities against the host build and the agent's grants.
pub fn check_imports(agent: &str, imports: &ImportSet, grants: &Grants) -> Result<(), ImportError> {
    for &c in &imports.capabilities {
        if !c.is_available() {
            return Err(ImportError::Unavailable {
                capability: c,
                interface: format!("{WIT_PACKAGE}/{}@{WIT_VERSION}", c.name()),
            });
        }
        if !grants.allows(c) {
            return Err(ImportError::NotGranted { agent: agent.to_string(), capability: c, key: c.policy_key() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin() -> Grants {
        AgentPolicy::default().layered_on(&AgentPolicy::default())
    }

    #[test]
    fn builtin_grants_are_log_and_own_memory() {
        let g = builtin();
        assert_eq!(g.granted(), vec![Capability::Log, Capability::Memory]);
        assert_eq!(g.memory_namespace("notes").as_deref(), Some("notes"));
    }

    #[test]
    fn classify_sorts_capabilities_and_wasi() {
        let set = classify_imports([
            "wasi:cli/environment@0.2.3",
            "agentkernel:agent/types@0.1.0",
            "agentkernel:agent/memory@0.1.0",
            "agentkernel:agent/log@0.1.0",
        ])
        .unwrap();
        assert_eq!(set.capabilities, vec![Capability::Log, Capability::Memory]);
        assert_eq!(set.wasi, vec!["wasi:cli/environment@0.2.3"]);
    }

    #[test]
    fn unknown_and_mismatched_imports_are_named() {
        let e = classify_imports(["wasi:http/outgoing-handler@0.2.0"]).unwrap_err();
        assert!(e.to_string().contains("wasi:http/outgoing-handler"), "{e}");
        let e = classify_imports(["agentkernel:agent/log@0.2.0"]).unwrap_err();
        assert!(matches!(e, ImportError::VersionMismatch { .. }), "{e}");
        let e = classify_imports(["evil:thing/x"]).unwrap_err();
        assert!(e.to_string().contains("evil:thing/x"));
    }

    #[test]
    fn ungranted_capability_names_agent_capability_and_policy_line() {
        let mut policy = AgentPolicy::default();
        policy.memory = Some(Grant::Enabled(false));
        let grants = policy.layered_on(&AgentPolicy::default());
        let imports = ImportSet { capabilities: vec![Capability::Memory], wasi: vec![] };
        let msg = check_imports("notes", &imports, &grants).unwrap_err().to_string();
        assert!(msg.contains("`notes`") && msg.contains("`memory`"), "{msg}");
        assert!(msg.contains("[agents.notes]") && msg.contains("memory = true"), "{msg}");
    }

    #[test]
    fn unavailable_capability_is_refused_even_if_granted() {
        let mut policy = AgentPolicy::default();
        policy.http = Some(Grant::Enabled(true));
        let grants = policy.layered_on(&AgentPolicy::default());
        let imports = ImportSet { capabilities: vec![Capability::Http], wasi: vec![] };
        let msg = check_imports("a", &imports, &grants).unwrap_err().to_string();
        assert!(msg.contains("capability http is not available in this host"), "{msg}");
    }
}
