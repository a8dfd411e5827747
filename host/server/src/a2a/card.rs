//! The Agent Card: the host as one A2A agent whose skills are its agents.
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::PROTOCOL_VERSION;
use crate::App;

/// Most tags a skill lists (its skills' keywords).
const MAX_TAGS: usize = 16;

/// `GET /.well-known/agent-card.json`: public, as discovery needs. With
/// tokens configured it names only the `auto` skill and how to
/// authenticate; the agents are on the extended card (`GetExtendedAgentCard`),
/// which needs a token, as `GET /v1/agents` does.
pub(crate) async fn public_card(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let extended = app.auth.is_open();
    let mut resp = Json(card(&app, &headers, extended)).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache"));
    resp
}

/// The card; `with_agents` lists every agent as a skill.
pub(super) fn card(app: &App, headers: &HeaderMap, with_agents: bool) -> Value {
    let mut skills = vec![json!({
        "id": crate::openai::AUTO_MODEL,
        "name": "auto",
        "description": "Routes the request to the agents best suited to it (name agents in metadata.agent or metadata.agents to choose).",
        "tags": ["routing"],
    })];
    if with_agents {
        let config = app.chat.config();
        for a in app.registry.list().iter().filter(|a| a.name() != config.router && a.name() != config.synthesizer) {
            let mut tags: Vec<&str> = Vec::new();
            for k in a.manifest.skills.iter().flat_map(|s| s.keywords.iter()) {
                if tags.len() < MAX_TAGS && !tags.contains(&k.as_str()) {
                    tags.push(k);
                }
            }
            if tags.is_empty() {
                tags.push(a.name());
            }
            let examples: Vec<&str> = a.manifest.skills.iter().map(|s| s.description.as_str()).take(4).collect();
            skills.push(json!({"id": a.name(), "name": a.manifest.name, "description": a.manifest.description, "tags": tags, "examples": examples}));
        }
    }
    let mut card = json!({
        "name": "agentkernel",
        "description": "WebAssembly agents behind one endpoint: a message is routed to the agents that fit it, or to those named in metadata.agent / metadata.agents.",
        "version": env!("CARGO_PKG_VERSION"),
        "supportedInterfaces": [{"url": endpoint(app, headers), "protocolBinding": "JSONRPC", "protocolVersion": PROTOCOL_VERSION}],
        "capabilities": {"streaming": true, "pushNotifications": false, "extendedAgentCard": !app.auth.is_open()},
        "defaultInputModes": ["text/plain", "application/json"],
        "defaultOutputModes": ["text/plain", "application/json"],
        "skills": skills,
    });
    if !app.auth.is_open() {
        card["securitySchemes"] = json!({"bearer": {"httpAuthSecurityScheme": {"scheme": "bearer", "description": "an agentkernel API token with the chat scope"}}});
        card["securityRequirements"] = json!([{"schemes": {"bearer": {}}}]);
    }
    card
}

/// Where clients send JSON-RPC: this host as the client reached it (an
/// open host only answers loopback `Host`s; behind a TLS proxy,
/// `X-Forwarded-Proto: https` says so).
fn endpoint(app: &App, headers: &HeaderMap) -> String {
    let header = |name| headers.get(name).and_then(|v: &header::HeaderValue| v.to_str().ok());
    let scheme = if header("x-forwarded-proto") == Some("https") { "https" } else { "http" };
    let listen = app.host.config.host.listen.to_string();
    let host = header("host").filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic())).unwrap_or(&listen);
    format!("{scheme}://{host}/a2a")
}
