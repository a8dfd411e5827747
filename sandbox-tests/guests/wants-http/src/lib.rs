//! Hostile guest `wants-http`: imports `http`, a capability this host does
//! not provide yet, so it must be refused at load.
use agentkernel_sdk::http::{HttpRequest, fetch};
use agentkernel_sdk::prelude::*;

struct Hostile;

impl Agent for Hostile {
    fn describe() -> Manifest {
        Manifest::new("wants-http", "0.1.0", "imports the http capability.")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let r = HttpRequest { method: "GET".into(), url: req.text, headers: vec![], body: None, timeout_ms: None };
        match fetch(&r) {
            Ok(resp) => Ok(Response::text(resp.status.to_string())),
            Err(e) => Err(AgentError::CapabilityFailed(format!("{e:?}"))),
        }
    }
}

export_agent!(Hostile);
