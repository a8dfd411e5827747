//! Guest `echo-v2`: a second version of the `echo` agent (same name, new
//! version and answer), used to test hot swaps.
use agentkernel_sdk::prelude::*;

struct EchoV2;

impl Agent for EchoV2 {
    fn describe() -> Manifest {
        Manifest::new("echo", "0.2.0", "Repeats the request text back, marked v2.")
            .skill(Skill::new("echo", "Repeat a message back").keywords(["echo"]))
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        Ok(Response::text(format!("v2:{}", req.text)))
    }
}

export_agent!(EchoV2);
