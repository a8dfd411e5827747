//! Hostile guest `huge-response`: answers with a response far larger than the host allows.
use agentkernel_sdk::prelude::*;

struct Hostile;

impl Agent for Hostile {
    fn describe() -> Manifest {
        Manifest::new("huge-response", "0.1.0", "answers with a response far larger than the host allows.")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        if req.text == "as-error" {
            return Err(AgentError::Failed("e".repeat(16 << 20)));
        }
        if req.text == "as-small-error" {
            return Err(AgentError::Failed("e".repeat(64 << 10)));
        }
        let size: usize = req.text.trim().parse().unwrap_or(16 << 20);
        Ok(Response::text("x".repeat(size)))
    }
}

export_agent!(Hostile);
