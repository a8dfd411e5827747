//! Hostile guest `panicker`: panics in handle().
use agentkernel_sdk::prelude::*;

struct Hostile;

impl Agent for Hostile {
    fn describe() -> Manifest {
        Manifest::new("panicker", "0.1.0", "panics in handle().")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        if req.text != "never" {
            panic!("hostile guest panicking on purpose");
        }
        Ok(Response::text("unreachable"))
    }
}

export_agent!(Hostile);
