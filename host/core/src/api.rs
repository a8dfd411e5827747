//! JSON shapes shared by the HTTP API and the CLI: the request record as
//! JSON, responses, typed errors, and agent listings.
use serde::{Deserialize, Serialize};

use agentkernel_runtime::bindings::{Request, Role, Turn};
use agentkernel_runtime::limits::Limits;
use agentkernel_runtime::policy::{Capability, Grants};
use crate::registry::FileStatus;
use agentkernel_runtime::{CallError, CallOutcome, LoadedAgent, ManifestInfo};

/// `POST /v1/agents/{name}/call` body: the WIT `request` record as JSON.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    #[serde(default = "default_session")]
    pub session_id: String,
    pub text: String,
    #[serde(default)]
    pub history: Vec<TurnJson>,
    /// Any JSON value; passed to the agent as a JSON document.
    #[serde(default)]
    pub context: Option<serde_json::Value>,
}

fn default_session() -> String {
    "default".to_string()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TurnJson {
    pub role: RoleJson,
    pub content: String,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleJson {
    System,
    User,
    Assistant,
    Agent,
}

impl From<RoleJson> for Role {
    fn from(r: RoleJson) -> Self {
        match r {
            RoleJson::System => Role::System,
            RoleJson::User => Role::User,
            RoleJson::Assistant => Role::Assistant,
            RoleJson::Agent => Role::Agent,
        }
    }
}

impl CallRequest {
    pub fn new(session_id: impl Into<String>, text: impl Into<String>) -> Self {
        CallRequest { session_id: session_id.into(), text: text.into(), history: vec![], context: None }
    }

    pub fn to_wit(&self) -> Request {
        Request {
            session_id: self.session_id.clone(),
            text: self.text.clone(),
            history: self.history.iter().map(|t| Turn { role: t.role.into(), content: t.content.clone() }).collect(),
            context: self.context.as_ref().map(|c| c.to_string()),
        }
    }
}

/// A successful call as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallResponse {
    pub agent: String,
    pub version: String,
    pub text: String,
    /// The agent's `data`, parsed when it is valid JSON, else kept as a string.
    pub data: Option<serde_json::Value>,
    pub fuel_used: Option<u64>,
    pub elapsed_ms: f64,
}

impl CallResponse {
    pub fn new(agent: &LoadedAgent, outcome: CallOutcome) -> Self {
        let data = outcome
            .response
            .data
            .map(|d| serde_json::from_str(&d).unwrap_or(serde_json::Value::String(d)));
        CallResponse {
            agent: agent.name().to_string(),
            version: agent.manifest.version.clone(),
            text: outcome.response.text,
            data,
            fuel_used: outcome.fuel_used,
            elapsed_ms: outcome.elapsed.as_secs_f64() * 1000.0,
        }
    }
}

/// `{"error": {"code": "...", "message": "..."}}`, the shape of every error.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ErrorBody { error: ErrorDetail { code: code.to_string(), message: message.into() } }
    }
}

impl From<&CallError> for ErrorBody {
    fn from(e: &CallError) -> Self {
        ErrorBody::new(e.code(), e.to_string())
    }
}

/// One loaded agent, as `GET /v1/agents` and `agentkernel agents` show it.
#[derive(Debug, Clone, Serialize)]
pub struct AgentInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub status: &'static str,
    pub manifest: ManifestInfo,
    /// Capabilities granted by policy.
    pub grants: Vec<Capability>,
    /// Capabilities the component imports (a subset of `grants`).
    pub imports: Vec<Capability>,
    pub memory_namespace: Option<String>,
    pub policy: Grants,
    pub limits: Limits,
    pub metered: bool,
    pub hash: String,
    pub size_bytes: u64,
    pub source: Option<String>,
    /// Set when a newer version of the file failed to load; this version keeps serving.
    pub pending_error: Option<String>,
}

impl AgentInfo {
    pub fn new(a: &LoadedAgent, files: &[FileStatus]) -> Self {
        let pending_error = a
            .source
            .as_ref()
            .and_then(|src| files.iter().find(|f| &f.path == src))
            .and_then(|f| f.error.clone());
        AgentInfo {
            name: a.name().to_string(),
            version: a.manifest.version.clone(),
            description: a.manifest.description.clone(),
            status: if pending_error.is_some() { "serving-previous-version" } else { "ready" },
            manifest: a.manifest.clone(),
            grants: a.grants.granted(),
            imports: a.imports.capabilities.clone(),
            memory_namespace: agentkernel_capabilities::memory::namespace_of(a).map(str::to_string),
            policy: a.grants.clone(),
            limits: a.limits.clone(),
            metered: a.metered(),
            hash: a.hash.clone(),
            size_bytes: a.size,
            source: a.source.as_ref().map(|p| p.display().to_string()),
            pending_error,
        }
    }
}
