//! Hostile guest `stdout-flood`: prints far more than the host keeps, then answers.
use agentkernel_sdk::prelude::*;

struct Hostile;

impl Agent for Hostile {
    fn describe() -> Manifest {
        Manifest::new("stdout-flood", "0.1.0", "prints far more than the host keeps, then answers.")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let line = "flood ".repeat(100);
        for _ in 0..5_000 {
            println!("{line}");
        }
        eprintln!("done flooding");
        Ok(Response::text(format!("survived: {}", req.text)))
    }
}

export_agent!(Hostile);
