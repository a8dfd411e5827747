//! Guest `relay`: calls another agent through the `agents` capability.
//! Context `{"to": "echo", "text": "hi"}` relays a request; `{"list": true}`
//! lists the agents it may call; no context makes it call itself (a cycle
//! the host must refuse).
use agentkernel_sdk::agents;
use agentkernel_sdk::prelude::*;
use serde_json::{Value, json};

struct Relay;

impl Agent for Relay {
    fn describe() -> Manifest {
        Manifest::new("relay", "0.1.0", "Relays requests to other agents.")
            .capability("agents", "calls the agent named in the request context")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let ctx: Value = req.context_as().unwrap_or(Value::Null);
        if ctx["list"].as_bool() == Some(true) {
            let names: Vec<String> = agents::list_agents().into_iter().map(|m| m.name).collect();
            return Ok(Response::text(names.join(",")).with_data(&names));
        }
        // Without a context (e.g. from chat), `@agent text` names the callee.
        let (default_to, default_text) = match req.text.strip_prefix('@').and_then(|t| t.split_once(' ')) {
            Some((to, text)) => (to, text),
            None => ("relay", req.text.as_str()),
        };
        let to = ctx["to"].as_str().unwrap_or(default_to).to_string();
        let mut inner = Request::new(&req.session_id, ctx["text"].as_str().unwrap_or(default_text));
        // Pass the rest of the instructions down the chain.
        inner.context = ctx.get("next").map(|n| n.to_string());
        Ok(match agents::call(&to, &inner) {
            Ok(resp) => Response::text(format!("relay got: {}", resp.text)).with_data(&json!({"ok": true})),
            Err(e) => Response::text("error").with_data(&json!({"ok": false, "error": e.code(), "message": format!("{e:?}")})),
        })
    }
}

export_agent!(Relay);
