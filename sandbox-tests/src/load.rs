//! A bounded HTTP load generator for loopback tests and the load benchmark:
//! `connections` clients, each with its own keep-alive connection, sending
//! requests back to back until `duration` is over.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// What one load run saw.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub requests: usize,
    /// Responses that were not 200, or transport errors.
    pub failures: Vec<String>,
    pub elapsed: Duration,
    /// Sorted request latencies.
    pub latencies: Vec<Duration>,
    /// Every 200 response body, when `keep_bodies` was asked for.
    pub bodies: Vec<Value>,
}

impl LoadReport {
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }

    pub fn summary(&self) -> String {
        format!(
            "{} requests in {:.2} s: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} failed",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.requests_per_second(),
            self.percentile(0.50).as_secs_f64() * 1000.0,
            self.percentile(0.99).as_secs_f64() * 1000.0,
            self.failures.len()
        )
    }
}

/// Sends `body(i)` as JSON to `POST path` from `connections` clients for
/// `duration`. `token` is sent as a bearer token when given.
pub async fn run(
    addr: SocketAddr,
    path: &str,
    connections: usize,
    duration: Duration,
    keep_bodies: bool,
    body: impl Fn(usize) -> Value + Send + Sync + 'static,
) -> LoadReport {
    let body = Arc::new(body);
    let url = format!("http://{addr}{path}");
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..connections)
        .map(|worker| {
            let (body, url) = (body.clone(), url.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().expect("client");
                let mut latencies = Vec::new();
                let mut failures = Vec::new();
                let mut bodies = Vec::new();
                let mut i = worker;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let result = client.post(&url).json(&body(i)).send().await;
                    match result {
                        Ok(r) if r.status() == 200 => {
                            let bytes = r.bytes().await;
                            latencies.push(sent.elapsed());
                            match bytes {
                                Ok(b) if keep_bodies => bodies.push(serde_json::from_slice(&b).unwrap_or(Value::Null)),
                                Ok(_) => {}
                                Err(e) => failures.push(format!("body: {e}")),
                            }
                        }
                        Ok(r) => {
                            let status = r.status();
                            failures.push(format!("{status}: {}", r.text().await.unwrap_or_default()));
                        }
                        Err(e) => failures.push(format!("transport: {e}")),
                    }
                    i += connections;
                }
                (latencies, failures, bodies)
            })
        })
        .collect();
    let mut report = LoadReport { requests: 0, failures: vec![], elapsed: Duration::ZERO, latencies: vec![], bodies: vec![] };
    for w in workers {
        let (latencies, failures, bodies) = w.await.expect("load worker");
        report.requests += latencies.len() + failures.len();
        report.latencies.extend(latencies);
        report.failures.extend(failures);
        report.bodies.extend(bodies);
    }
    report.elapsed = start.elapsed();
    report.latencies.sort();
    report
}
