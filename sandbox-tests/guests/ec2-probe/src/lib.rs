//! Guest `ec2-probe`: makes one `aws-ec2` call as its request's JSON context
//! says and reports exactly what it got, so tests can check the capability
//! boundary end to end. Context: `{"op": "run", "image": "ami-..", "type":
//! "t3.micro", "count": 1, "region": "us-east-1", "tags": {"k": "v"}}`, or
//! `{"op": "terminate" | "stop" | "start", "ids": [..]}`, `{"op": "describe"}`,
//! `{"op": "tag", "ids": [..], "tags": {..}}`.
use agentkernel_sdk::aws_ec2::{self, Ec2Error, RunSpec, Tag};
use agentkernel_sdk::prelude::*;
use serde_json::{Value, json};

struct Probe;

fn error(e: &Ec2Error) -> Value {
    let rule = match e {
        Ec2Error::Denied(d) => Some(d.rule.name()),
        _ => None,
    };
    json!({"ok": false, "error": e.code(), "rule": rule, "message": e.message()})
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

fn tags(v: &Value) -> Vec<Tag> {
    v.as_object().map(|o| o.iter().map(|(k, v)| Tag::new(k.clone(), v.as_str().unwrap_or(""))).collect()).unwrap_or_default()
}

fn run(ctx: &Value) -> Value {
    let region = ctx["region"].as_str();
    let ids = strings(&ctx["ids"]);
    let change = |r: Result<aws_ec2::ChangeResult, Ec2Error>| match r {
        Ok(c) => json!({"ok": true, "dry_run": c.dry_run, "ids": c.instance_ids, "summary": c.summary, "hourly_cost_after": c.hourly_cost_after}),
        Err(e) => error(&e),
    };
    match ctx["op"].as_str().unwrap_or("") {
        "run" => {
            let mut spec = RunSpec::new(
                ctx["image"].as_str().unwrap_or(""),
                ctx["type"].as_str().unwrap_or(""),
                ctx["count"].as_u64().unwrap_or(1) as u32,
            );
            spec.tags = tags(&ctx["tags"]);
            change(aws_ec2::run_instances(region, &spec))
        }
        "terminate" => change(aws_ec2::terminate_instances(region, &ids)),
        "stop" => change(aws_ec2::stop_instances(region, &ids)),
        "start" => change(aws_ec2::start_instances(region, &ids)),
        "tag" => match aws_ec2::create_tags(region, &ids, &tags(&ctx["tags"])) {
            Ok(()) => json!({"ok": true}),
            Err(e) => error(&e),
        },
        "describe" => match aws_ec2::describe_instances(region, &[]) {
            Ok(is) => json!({"ok": true, "ids": is.iter().map(|i| i.instance_id.clone()).collect::<Vec<_>>(),
                              "states": is.iter().map(|i| i.state.clone()).collect::<Vec<_>>()}),
            Err(e) => error(&e),
        },
        other => json!({"ok": false, "error": "bad-op", "message": other}),
    }
}

impl Agent for Probe {
    fn describe() -> Manifest {
        Manifest::new("ec2-probe", "0.1.0", "Calls the aws-ec2 capability and reports what happened.")
            .capability("aws-ec2", "the thing under test")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let ctx: Value = req.context.as_deref().and_then(|c| serde_json::from_str(c).ok()).unwrap_or(Value::Null);
        let out = run(&ctx);
        Ok(Response::text(out["error"].as_str().unwrap_or("ok").to_string()).with_data(&out))
    }
}

export_agent!(Probe);
