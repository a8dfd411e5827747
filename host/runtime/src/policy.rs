//! Capability policy: which host capabilities an agent may import, and how
//! each grant is scoped. A component's imports are the capabilities it asks
//! for; [`check_imports`] compares them with the agent's [`Grants`] at load
//! time, so an ungranted import means the component never runs.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::limits::{LimitOverrides, Limits};

/// WIT package (with version) that defines every capability interface.
pub const WIT_PACKAGE: &str = "agentkernel:agent";
pub const WIT_VERSION: &str = "0.1.0";

/// A host capability, named by its WIT interface. Which exist is fixed by
/// the WIT package ([`Capability::ALL`]); which this host implements is the
/// list of [`HostCapability`](crate::HostCapability) values it was built
/// with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Capability(&'static str);

impl Capability {
    pub const LOG: Capability = Capability("log");
    pub const MEMORY: Capability = Capability("memory");
    pub const LLM: Capability = Capability("llm");
    pub const AGENTS: Capability = Capability("agents");
    pub const HTTP: Capability = Capability("http");
    pub const AWS_EC2: Capability = Capability("aws-ec2");
    pub const EVOLUTION: Capability = Capability("evolution");
    /// Every capability interface of the WIT package.
    pub const ALL: [Capability; 7] = [
        Capability::LOG,
        Capability::MEMORY,
        Capability::LLM,
        Capability::AGENTS,
        Capability::HTTP,
        Capability::AWS_EC2,
        Capability::EVOLUTION,
    ];

    /// Name used in WIT and messages.
    pub fn name(self) -> &'static str {
        self.0
    }

    /// Key of this capability in `agentkernel.toml` (`aws-ec2` → `aws_ec2`).
    pub fn policy_key(self) -> String {
        self.0.replace('-', "_")
    }

    pub fn from_interface_name(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn from_policy_key(key: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.policy_key() == key)
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A grant in policy: `false`, `true` (default scope) or a scope table,
/// which the capability parses and checks itself.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Grant {
    Enabled(bool),
    Scoped(toml::Table),
}

impl<'de> Deserialize<'de> for Grant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match toml::Value::deserialize(d)? {
            toml::Value::Boolean(b) => Ok(Grant::Enabled(b)),
            toml::Value::Table(t) => Ok(Grant::Scoped(t)),
            other => Err(serde::de::Error::custom(format!(
                "a grant is true, false or a scope table, not {}",
                other.type_str()
            ))),
        }
    }
}

impl Grant {
    pub fn is_granted(&self) -> bool {
        !matches!(self, Grant::Enabled(false))
    }
    /// The scope table if granted (empty for `true`).
    pub fn scope(&self) -> Option<toml::Table> {
        match self {
            Grant::Enabled(false) => None,
            Grant::Enabled(true) => Some(toml::Table::new()),
            Grant::Scoped(s) => Some(s.clone()),
        }
    }
}

/// Grants as written in `[defaults]` or `[agents.NAME]`, keyed by policy
/// key: a missing key means "inherit" (agent → defaults → built-in).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(transparent)]
pub struct AgentPolicy(BTreeMap<Capability, Grant>);

impl<'de> Deserialize<'de> for AgentPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let table = toml::Table::deserialize(d)?;
        AgentPolicy::from_table(table).map_err(serde::de::Error::custom)
    }
}

impl AgentPolicy {
    /// Grants from a policy table; every key must name a capability.
    pub fn from_table(table: toml::Table) -> Result<AgentPolicy, String> {
        let mut grants = BTreeMap::new();
        for (key, value) in table {
            let capability = Capability::from_policy_key(&key).ok_or_else(|| {
                let known: Vec<String> = Capability::ALL.iter().map(|c| c.policy_key()).collect();
                format!("unknown capability `{key}` (known: {})", known.join(", "))
            })?;
            let grant = Grant::deserialize(value).map_err(|e| format!("{key}: {}", e.to_string().trim()))?;
            grants.insert(capability, grant);
        }
        Ok(AgentPolicy(grants))
    }

    pub fn get(&self, capability: Capability) -> Option<&Grant> {
        self.0.get(&capability)
    }

    pub fn set(&mut self, capability: Capability, grant: Grant) {
        self.0.insert(capability, grant);
    }

    /// The grants written here, by capability.
    pub fn iter(&self) -> impl Iterator<Item = (Capability, &Grant)> {
        self.0.iter().map(|(c, g)| (*c, g))
    }

    /// Resolves this policy over `defaults` and the built-in default
    /// (`granted_by_default`: `log` and own-namespace `memory` in this host).
    pub fn layered_on(&self, defaults: &AgentPolicy, granted_by_default: &dyn Fn(Capability) -> bool) -> Grants {
        let grants = Capability::ALL
            .into_iter()
            .map(|c| {
                let grant = self.get(c).or_else(|| defaults.get(c)).cloned();
                (c, grant.unwrap_or(Grant::Enabled(granted_by_default(c))))
            })
            .collect();
        Grants(grants)
    }
}

/// The resolved grants of one agent, for every capability of the WIT package.
#[derive(Debug, Clone, PartialEq)]
pub struct Grants(BTreeMap<Capability, Grant>);

impl Serialize for Grants {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (c, g) in &self.0 {
            map.serialize_entry(&c.policy_key(), g)?;
        }
        map.end()
    }
}

impl Grants {
    pub fn allows(&self, c: Capability) -> bool {
        self.0.get(&c).is_some_and(Grant::is_granted)
    }

    /// The grant's scope table, or `None` if `c` is not granted.
    pub fn scope(&self, c: Capability) -> Option<toml::Table> {
        self.0.get(&c).and_then(Grant::scope)
    }

    /// The grant's scope parsed as the capability's scope type.
    pub fn scope_as<S: serde::de::DeserializeOwned>(&self, c: Capability) -> Option<Result<S, String>> {
        self.scope(c).map(|t| crate::capability::parse_scope(&t))
    }

    /// Granted capabilities, for display.
    pub fn granted(&self) -> Vec<Capability> {
        Capability::ALL.into_iter().filter(|c| self.allows(*c)).collect()
    }
}

/// The policy of every agent: limits and grants as configured. The host
/// builds it from `agentkernel.toml`; the runtime asks it at each load.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// `[limits]`: defaults for every agent.
    pub limits: LimitOverrides,
    /// `[defaults]`: grants every agent gets unless its section says otherwise.
    pub defaults: AgentPolicy,
    /// `[agents.NAME]`.
    pub agents: BTreeMap<String, AgentSection>,
    /// Capabilities granted to an agent nothing in policy mentions.
    pub granted_by_default: Vec<Capability>,
}

impl Policy {
    /// Limits for `agent`: built-in defaults, then `[limits]`, then `[agents.NAME].limits`.
    pub fn limits_for(&self, agent: &str) -> Limits {
        let mut limits = Limits::default().with(&self.limits);
        if let Some(section) = self.agents.get(agent) {
            limits = limits.with(&section.limits);
        }
        limits
    }

    /// Grants for `agent`: its own section's where given, else `[defaults]`.
    pub fn grants_for(&self, agent: &str) -> Grants {
        let builtin = |c: Capability| self.granted_by_default.contains(&c);
        match self.agents.get(agent) {
            Some(section) => section.policy.layered_on(&self.defaults, &builtin),
            None => self.defaults.layered_on(&self.defaults, &builtin),
        }
    }
}

/// One `[agents.NAME]` section: grants (same keys as `[defaults]`) plus limit overrides.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentSection {
    #[serde(flatten)]
    pub policy: AgentPolicy,
    pub limits: LimitOverrides,
}

impl<'de> Deserialize<'de> for AgentSection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut table = toml::Table::deserialize(d)?;
        let limits = match table.remove("limits") {
            Some(v) => LimitOverrides::deserialize(v).map_err(|e| serde::de::Error::custom(format!("limits: {}", e.to_string().trim())))?,
            None => LimitOverrides::default(),
        };
        let policy = AgentPolicy::from_table(table).map_err(serde::de::Error::custom)?;
        Ok(AgentSection { policy, limits })
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
    NotGranted { agent: String, capability: Capability, key: String },
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
/// `available` says which capabilities this host implements.
pub fn check_imports(
    agent: &str,
    imports: &ImportSet,
    grants: &Grants,
    available: &dyn Fn(Capability) -> bool,
) -> Result<(), ImportError> {
    for &c in &imports.capabilities {
        if !available(c) {
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

    fn log_and_memory(c: Capability) -> bool {
        c == Capability::LOG || c == Capability::MEMORY
    }

    fn builtin() -> Grants {
        AgentPolicy::default().layered_on(&AgentPolicy::default(), &log_and_memory)
    }

    fn everything_but_http(c: Capability) -> bool {
        c != Capability::HTTP
    }

    #[test]
    fn builtin_grants_are_log_and_own_memory() {
        let g = builtin();
        assert_eq!(g.granted(), vec![Capability::LOG, Capability::MEMORY]);
        assert_eq!(g.scope(Capability::MEMORY), Some(toml::Table::new()));
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
        assert_eq!(set.capabilities, vec![Capability::LOG, Capability::MEMORY]);
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
        policy.set(Capability::MEMORY, Grant::Enabled(false));
        let grants = policy.layered_on(&AgentPolicy::default(), &log_and_memory);
        let imports = ImportSet { capabilities: vec![Capability::MEMORY], wasi: vec![] };
        let msg = check_imports("notes", &imports, &grants, &everything_but_http).unwrap_err().to_string();
        assert!(msg.contains("`notes`") && msg.contains("`memory`"), "{msg}");
        assert!(msg.contains("[agents.notes]") && msg.contains("memory = true"), "{msg}");
    }

    #[test]
    fn unavailable_capability_is_refused_even_if_granted() {
        let mut policy = AgentPolicy::default();
        policy.set(Capability::HTTP, Grant::Enabled(true));
        let grants = policy.layered_on(&AgentPolicy::default(), &log_and_memory);
        let imports = ImportSet { capabilities: vec![Capability::HTTP], wasi: vec![] };
        let msg = check_imports("a", &imports, &grants, &everything_but_http).unwrap_err().to_string();
        assert!(msg.contains("capability http is not available in this host"), "{msg}");
    }

    #[test]
    fn policy_tables_name_known_capabilities_with_bool_or_table_grants() {
        let section: AgentSection = toml::from_str("aws_ec2 = { dry_run = true }\nlog = false\nlimits = { deadline_ms = 5 }").unwrap();
        assert_eq!(section.policy.get(Capability::LOG), Some(&Grant::Enabled(false)));
        assert!(matches!(section.policy.get(Capability::AWS_EC2), Some(Grant::Scoped(_))));
        assert_eq!(section.limits.deadline_ms, Some(5));
        let e = toml::from_str::<AgentSection>("telepathy = true").unwrap_err().to_string();
        assert!(e.contains("unknown capability `telepathy`") && e.contains("aws_ec2"), "{e}");
        let e = toml::from_str::<AgentSection>("log = 7").unwrap_err().to_string();
        assert!(e.contains("true, false or a scope table"), "{e}");
    }

    #[test]
    fn an_agent_section_overrides_defaults_key_by_key() {
        let defaults: AgentPolicy = toml::from_str("llm = true\nlog = false").unwrap();
        let own: AgentPolicy = toml::from_str("log = true").unwrap();
        let grants = own.layered_on(&defaults, &log_and_memory);
        assert_eq!(grants.granted(), vec![Capability::LOG, Capability::MEMORY, Capability::LLM]);
        let json = serde_json::to_value(&grants).unwrap();
        assert_eq!(json["aws_ec2"], serde_json::json!(false), "{json}");
    }
}
