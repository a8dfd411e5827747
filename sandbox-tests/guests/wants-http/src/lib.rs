//! Guest `wants-http`: drives the `http` capability for the tests.
//!
//! Request text: `get URL`, `post URL BODY`, `repeat N URL` (N GETs in one
//! call, stopping at the first error), `hammer N URL` (N GETs, counting
//! each outcome) or `header NAME:VALUE URL` (a GET with one header). Answers
//! `STATUS BYTES` and the body's first 200 bytes on a second line; for
//! `repeat`, `ok K` with K successful fetches, or the first error. A
//! refused fetch is an agent error `CODE: message` with the WIT case's code.
use agentkernel_sdk::http::{Header, HttpError, HttpRequest, HttpResponse, fetch};
use agentkernel_sdk::prelude::*;

struct Probe;

fn code(e: &HttpError) -> String {
    match e {
        HttpError::HostNotAllowed(m) => format!("host-not-allowed: {m}"),
        HttpError::AddressNotAllowed(m) => format!("address-not-allowed: {m}"),
        HttpError::TooLarge(n) => format!("too-large: {n}"),
        HttpError::Timeout => "timeout: ".into(),
        HttpError::InvalidRequest(m) => format!("invalid-request: {m}"),
        HttpError::Transport(m) => format!("transport: {m}"),
        HttpError::BudgetExceeded(m) => format!("budget-exceeded: {m}"),
    }
}

fn get(url: &str, headers: Vec<Header>, body: Option<Vec<u8>>) -> Result<HttpResponse, AgentError> {
    let method = if body.is_some() { "POST" } else { "GET" };
    let r = HttpRequest { method: method.into(), url: url.into(), headers, body, timeout_ms: None };
    fetch(&r).map_err(|e| AgentError::CapabilityFailed(code(&e)))
}

fn answer(resp: HttpResponse) -> Response {
    let prefix = String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)]).into_owned();
    Response::text(format!("{} {}\n{prefix}", resp.status, resp.body.len()))
}

impl Agent for Probe {
    fn describe() -> Manifest {
        Manifest::new("wants-http", "0.1.0", "fetches URLs through the http capability.")
            .capability("http", "fetches what the test asks for")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        let mut words = req.text.splitn(3, ' ');
        let (verb, a, b) = (words.next().unwrap_or(""), words.next().unwrap_or(""), words.next().unwrap_or(""));
        match verb {
            "get" => get(a, vec![], None).map(answer),
            "post" => get(a, vec![Header { name: "content-type".into(), value: "text/plain".into() }], Some(b.as_bytes().to_vec())).map(answer),
            "header" => {
                let (name, value) = a.split_once(':').unwrap_or((a, ""));
                get(b, vec![Header { name: name.into(), value: value.into() }], None).map(answer)
            }
            "repeat" => {
                let n: u32 = a.parse().unwrap_or(1);
                for i in 0..n {
                    if let Err(e) = get(b, vec![], None) {
                        return Err(AgentError::CapabilityFailed(format!("after {i}: {e:?}")));
                    }
                }
                Ok(Response::text(format!("ok {n}")))
            }
            "hammer" => {
                // N fetches, carrying on past errors: how many of each outcome.
                let n: u32 = a.parse().unwrap_or(1);
                let mut outcomes = std::collections::BTreeMap::<String, u32>::new();
                for _ in 0..n {
                    let outcome = match get(b, vec![], None) {
                        Ok(_) => "ok".to_string(),
                        Err(AgentError::CapabilityFailed(m)) => m.split(':').next().unwrap_or("").to_string(),
                        Err(e) => format!("{e:?}"),
                    };
                    *outcomes.entry(outcome).or_default() += 1;
                }
                Ok(Response::text(outcomes.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")))
            }
            _ => Err(AgentError::InvalidRequest(format!("unknown verb {verb:?}"))),
        }
    }
}

export_agent!(Probe);
