//! Hostile guest `wasi-escape`: tries to reach host files, environment and network through WASI, and reports what it got.
use agentkernel_sdk::prelude::*;

struct Hostile;

impl Agent for Hostile {
    fn describe() -> Manifest {
        Manifest::new("wasi-escape", "0.1.0", "tries to reach host files, environment and network through WASI, and reports what it got.")
    }

    fn handle(req: Request) -> Result<Response, AgentError> {
        // Each probe reports "denied: ..." or what leaked.
        let mut report = Vec::new();
        let probe = |name: &str, r: Result<String, String>| match r {
            Ok(v) => format!("{name}=LEAKED:{v}"),
            Err(e) => format!("{name}=denied:{e}"),
        };
        report.push(probe("read-file", std::fs::read_to_string("/etc/hostname").map_err(|e| e.to_string())));
        report.push(probe("read-dir", std::fs::read_dir("/").map(|d| d.count().to_string()).map_err(|e| e.to_string())));
        report.push(probe("write-file", std::fs::write("/tmp/agentkernel-escape", b"x").map(|_| "wrote".into()).map_err(|e| e.to_string())));
        report.push(probe("env-var", std::env::var(req.text.trim()).map_err(|e| e.to_string())));
        let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
        report.push(probe("env-vars", if vars.is_empty() { Err("empty".into()) } else { Ok(vars.join(",")) }));
        let addr = req.context.clone().unwrap_or_else(|| "\"127.0.0.1:9\"".into());
        let addr = addr.trim_matches('"').to_string();
        report.push(probe("tcp-connect", std::net::TcpStream::connect(addr.as_str()).map(|_| addr.clone()).map_err(|e| e.to_string())));
        report.push(probe("dns", std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 80)).map(|a| format!("{:?}", a.collect::<Vec<_>>())).map_err(|e| e.to_string())));
        Ok(Response::text(report.join("\n")))
    }
}

export_agent!(Hostile);
