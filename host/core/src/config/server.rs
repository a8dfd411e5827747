//! `[server]` and `[[host.tokens]]`: what the HTTP server accepts (read by
//! the server crate; here so the whole configuration parses in one place).
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[server]`: connection limits, timeouts and per-address request rates.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Connections open at once; over it a new one gets 503 and is closed.
    pub max_connections: u32,
    /// Connections open at once from one address (IPv6: one /64); over it, 429.
    pub max_connections_per_ip: u32,
    /// From the first byte of a request until its head (line + headers) is
    /// complete; also the longest wait for each part of a request body.
    pub header_timeout_ms: u64,
    /// A connection with no request in progress is closed after this long.
    pub idle_timeout_ms: u64,
    /// A write that makes no progress for this long closes the connection.
    pub write_timeout_ms: u64,
    /// Requests per minute per client address that carry no valid token:
    /// the public endpoints, unknown paths and refused credentials; 0 = unlimited.
    pub unauthenticated_requests_per_minute: u32,
    /// Events buffered per streaming response (SSE) for a client reading
    /// slowly; beyond it progress events are dropped (see `Trace::emit`).
    pub stream_buffer_events: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 1024,
            max_connections_per_ip: 128,
            header_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            write_timeout_ms: 30_000,
            unauthenticated_requests_per_minute: 600,
            stream_buffer_events: 256,
        }
    }
}

impl ServerConfig {
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("max_connections", u64::from(self.max_connections)),
            ("max_connections_per_ip", u64::from(self.max_connections_per_ip)),
            ("header_timeout_ms", self.header_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("write_timeout_ms", self.write_timeout_ms),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("[server] {name} must be > 0"));
        }
        if self.max_connections_per_ip > self.max_connections {
            return Err("[server] max_connections_per_ip must not exceed max_connections".into());
        }
        if !(8..=65_536).contains(&self.stream_buffer_events) {
            return Err("[server] stream_buffer_events must be between 8 and 65536".into());
        }
        Ok(())
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }
}


#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Chat, sessions, agent listings and direct agent calls.
    Chat,
    /// Everything, including metrics and (later) evolution and infrastructure.
    Admin,
}

/// One `[[host.tokens]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who this token is: sessions and rate limits are kept per name.
    pub name: String,
    /// The secret itself (prefer `token_env` outside tests).
    #[serde(default)]
    pub token: Option<String>,
    /// Environment variable holding the secret.
    #[serde(default)]
    pub token_env: Option<String>,
    pub scopes: Vec<Scope>,
    /// Overrides `[host] requests_per_minute` for this token; 0 = unlimited.
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
}

/// Checks the token list without reading the environment.
pub fn validate_tokens(tokens: &[TokenConfig]) -> Result<(), String> {
    let mut names = std::collections::BTreeSet::new();
    for t in tokens {
        if t.name.is_empty() || !names.insert(t.name.as_str()) {
            return Err(format!("[[host.tokens]]: names must be present and unique (`{}`)", t.name));
        }
        // Agents see a token's sessions as `name:session`: a name without
        // `:` keeps those ids apart between tokens.
        if t.name.len() > 64 || !t.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            return Err(format!("[[host.tokens]] `{}`: a name is 1-64 characters of A-Z a-z 0-9 - _ .", t.name));
        }
        if t.token.is_some() == t.token_env.is_some() {
            return Err(format!("[[host.tokens]] `{}`: set exactly one of `token` and `token_env`", t.name));
        }
        if t.token.as_ref().is_some_and(|s| s.len() < 16) {
            return Err(format!("[[host.tokens]] `{}`: a token must be at least 16 characters", t.name));
        }
        if t.scopes.is_empty() {
            return Err(format!("[[host.tokens]] `{}`: `scopes` is empty (use \"chat\" and/or \"admin\")", t.name));
        }
    }
    Ok(())
}

