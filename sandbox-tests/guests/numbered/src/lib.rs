//! Guest `numbered`: a template for many distinct agents. Its name, skill
//! keyword and description carry the marker `qqqqqq`, which
//! `sandbox_tests::numbered_agent(n)` replaces in the component's bytes
//! with six digits (same length, so the component stays valid): agent
//! `gen-000042` answers about `topic000042`. Used to load hundreds of agents
//! with different manifests (routing at scale).
use agentkernel_sdk::prelude::*;

struct Numbered;

impl Agent for Numbered {
    fn describe() -> Manifest {
        Manifest::new("gen-qqqqqq", "0.1.0", "Answers questions about topicqqqqqq.")
            .skill(Skill::new("topicqqqqqq", "Answer questions about topicqqqqqq").keywords(["topicqqqqqq"]))
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        Ok(Response::text(format!("gen-qqqqqq: {}", req.text)))
    }
}

export_agent!(Numbered);
