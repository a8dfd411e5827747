//! Hostile guest `wants-llm`: imports the llm capability.
use agentkernel_sdk::prelude::*;

struct Hostile;

impl Agent for Hostile {
    fn describe() -> Manifest {
        Manifest::new("wants-llm", "0.1.0", "imports the llm capability.")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let options = llm::ChatOptions {
            profile: "fast".into(),
            temperature: None,
            max_tokens: None,
            response_format: llm::ResponseFormat::Text,
            tools: vec![],
        };
        let message = llm::ChatMessage { role: "user".into(), content: req.text, tool_call_id: None, tool_calls: vec![] };
        match llm::chat(&[message], &options) {
            Ok(reply) => Ok(Response::text(reply.content)),
            Err(e) => Err(AgentError::CapabilityFailed(format!("{e:?}"))),
        }
    }
}

export_agent!(Hostile);
