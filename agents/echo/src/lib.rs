//! `echo`: answers with the text it was given. No capabilities: the smallest
//! useful agent, used by tests and benchmarks as the host's call-path floor.
use agentkernel_sdk::prelude::*;

pub struct Echo;

impl Agent for Echo {
    fn describe() -> Manifest {
        Manifest::new("echo", "0.1.0", "Repeats the request text back.")
            .skill(Skill::new("echo", "Repeat a message back verbatim").keywords(["echo", "repeat", "say"]))
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        Ok(Response::text(req.text.clone()).with_data(&serde_json_like(&req)))
    }
}

/// Structured echo of what arrived, so callers can check the request crossed
/// the boundary intact (session, history length, context).
fn serde_json_like(req: &Request) -> EchoData<'_> {
    EchoData { session_id: &req.session_id, history_len: req.history.len(), context: req.context.as_deref() }
}

#[derive(serde::Serialize)]
struct EchoData<'a> {
    session_id: &'a str,
    history_len: usize,
    context: Option<&'a str>,
}

export_agent!(Echo);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_text_and_reports_request_shape() {
        let mut req = Request::new("s1", "hello");
        req.history.push(Turn::new(Role::User, "earlier"));
        let resp = Echo::handle(req).unwrap();
        assert_eq!(resp.text, "hello");
        assert_eq!(resp.data.as_deref(), Some(r#"{"session_id":"s1","history_len":1,"context":null}"#));
    }
}
