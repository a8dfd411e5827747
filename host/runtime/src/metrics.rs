//! Process metrics, rendered as Prometheus text at `GET /metrics`.
//!
//! Counters and histograms live behind one mutex: each update is a map
//! lookup and a few additions, far shorter than the call it measures.
//! Values are per process (they reset on restart, as Prometheus expects);
//! the persistent record of LLM spend is the usage ledger.
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// Per-agent call statistics. Outcomes are static codes, and agents are
/// looked up by `&str`, so a call allocates nothing once its agent is known.
#[derive(Default)]
struct AgentStats {
    calls: BTreeMap<&'static str, u64>,
    latency: Histogram,
    fuel: Option<u64>,
}

/// Per-route HTTP statistics, looked up by `&str` like [`AgentStats`].
#[derive(Default)]
struct RouteStats {
    /// Requests by method, then status.
    requests: BTreeMap<String, BTreeMap<u16, u64>>,
    latency: Histogram,
}

#[derive(Default)]
struct Inner {
    routes: BTreeMap<String, RouteStats>,
    agents: BTreeMap<String, AgentStats>,
    llm_calls: BTreeMap<(String, String), u64>,
    llm_tokens: BTreeMap<(String, &'static str), u64>,
    llm_cost: BTreeMap<String, f64>,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// Gauges read at scrape time rather than counted.
pub struct Gauges {
    pub agents_loaded: usize,
    pub files_failed: usize,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        // Methods are counted before authentication: made-up ones share one
        // series, or a client could add series without bound.
        let method = method_label(method);
        let mut m = self.lock();
        let stats = match m.routes.get_mut(route) {
            Some(s) => s,
            None => m.routes.entry(route.to_string()).or_default(),
        };
        let by_status = match stats.requests.get_mut(method) {
            Some(b) => b,
            None => stats.requests.entry(method.to_string()).or_default(),
        };
        *by_status.entry(status).or_default() += 1;
        stats.latency.observe(elapsed.as_secs_f64());
    }

    /// One agent call; `outcome` is `ok` or the error code.
    pub fn agent_call(&self, agent: &str, outcome: &'static str, elapsed: Duration, fuel: Option<u64>) {
        let mut m = self.lock();
        let stats = match m.agents.get_mut(agent) {
            Some(s) => s,
            None => m.agents.entry(agent.to_string()).or_default(),
        };
        *stats.calls.entry(outcome).or_default() += 1;
        stats.latency.observe(elapsed.as_secs_f64());
        if let Some(f) = fuel {
            *stats.fuel.get_or_insert(0) += f;
        }
    }

    /// Calls of `agent` so far: `(total, not ok)`. The post-swap watch
    /// compares error rates from these.
    pub fn agent_call_counts(&self, agent: &str) -> (u64, u64) {
        let m = self.lock();
        m.agents.get(agent).map_or((0, 0), |s| {
            let total: u64 = s.calls.values().sum();
            (total, total - s.calls.get("ok").copied().unwrap_or(0))
        })
    }

    /// Fuel consumed by `agent`'s metered calls so far.
    pub fn agent_fuel_total(&self, agent: &str) -> u64 {
        self.lock().agents.get(agent).and_then(|s| s.fuel).unwrap_or(0)
    }

    /// Every agent's calls so far by outcome: `(agent, outcome, calls)`.
    /// What the activity recorder persists hourly (as differences).
    pub fn agent_outcome_counts(&self) -> Vec<(String, &'static str, u64)> {
        let m = self.lock();
        m.agents.iter().flat_map(|(agent, s)| s.calls.iter().map(move |(outcome, n)| (agent.clone(), *outcome, *n))).collect()
    }

    /// Requests to `route` so far by status, all methods together.
    pub fn route_status_counts(&self, route: &str) -> Vec<(u16, u64)> {
        let m = self.lock();
        let mut by_status: BTreeMap<u16, u64> = BTreeMap::new();
        for statuses in m.routes.get(route).into_iter().flat_map(|r| r.requests.values()) {
            for (status, n) in statuses {
                *by_status.entry(*status).or_default() += n;
            }
        }
        by_status.into_iter().collect()
    }

    pub fn llm_call(&self, agent: &str, outcome: &str, prompt: u64, completion: u64, cost_usd: Option<f64>) {
        let mut m = self.lock();
        *m.llm_calls.entry((agent.to_string(), outcome.to_string())).or_default() += 1;
        *m.llm_tokens.entry((agent.to_string(), "prompt")).or_default() += prompt;
        *m.llm_tokens.entry((agent.to_string(), "completion")).or_default() += completion;
        *m.llm_cost.entry(agent.to_string()).or_default() += cost_usd.unwrap_or(0.0);
    }

    /// The Prometheus text exposition of everything recorded.
    pub fn render(&self, gauges: &Gauges) -> String {
        let m = self.lock();
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family("agentkernel_agents_loaded", "gauge", "Agents currently loaded.");
        family("agentkernel_agent_files_failed", "gauge", "Files in the agents directory that failed to load.");
        family("agentkernel_http_requests_total", "counter", "HTTP requests by method, route and status.");
        family("agentkernel_http_request_duration_seconds", "histogram", "HTTP request latency by route.");
        family("agentkernel_agent_calls_total", "counter", "Agent calls by agent and outcome (ok or error code).");
        family("agentkernel_agent_call_duration_seconds", "histogram", "Agent call latency, instantiation included.");
        family("agentkernel_agent_fuel_consumed_total", "counter", "Fuel consumed by metered agents.");
        family("agentkernel_llm_calls_total", "counter", "LLM calls by agent and outcome.");
        family("agentkernel_llm_tokens_total", "counter", "LLM tokens by agent and kind (prompt, completion).");
        family("agentkernel_llm_cost_usd_total", "counter", "LLM spend in USD by agent (priced models only).");
        drop(family);

        let _ = writeln!(out, "agentkernel_agents_loaded {}", gauges.agents_loaded);
        let _ = writeln!(out, "agentkernel_agent_files_failed {}", gauges.files_failed);
        for (route, stats) in &m.routes {
            for (method, by_status) in &stats.requests {
                for (status, n) in by_status {
                    let _ = writeln!(
                        out,
                        "agentkernel_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                        esc(method),
                        esc(route)
                    );
                }
            }
        }
        for (route, stats) in &m.routes {
            histogram(&mut out, "agentkernel_http_request_duration_seconds", &format!("route=\"{}\"", esc(route)), &stats.latency);
        }
        for (agent, stats) in &m.agents {
            for (outcome, n) in &stats.calls {
                let _ = writeln!(out, "agentkernel_agent_calls_total{{agent=\"{}\",outcome=\"{outcome}\"}} {n}", esc(agent));
            }
        }
        for (agent, stats) in &m.agents {
            histogram(&mut out, "agentkernel_agent_call_duration_seconds", &format!("agent=\"{}\"", esc(agent)), &stats.latency);
        }
        for (agent, stats) in &m.agents {
            if let Some(fuel) = stats.fuel {
                let _ = writeln!(out, "agentkernel_agent_fuel_consumed_total{{agent=\"{}\"}} {fuel}", esc(agent));
            }
        }
        for ((agent, outcome), n) in &m.llm_calls {
            let _ = writeln!(out, "agentkernel_llm_calls_total{{agent=\"{}\",outcome=\"{}\"}} {n}", esc(agent), esc(outcome));
        }
        for ((agent, kind), n) in &m.llm_tokens {
            let _ = writeln!(out, "agentkernel_llm_tokens_total{{agent=\"{}\",kind=\"{kind}\"}} {n}", esc(agent));
        }
        for (agent, cost) in &m.llm_cost {
            let _ = writeln!(out, "agentkernel_llm_cost_usd_total{{agent=\"{}\"}} {cost}", esc(agent));
        }
        out
    }
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    for (bound, count) in BUCKETS.iter().zip(h.counts) {
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
}

/// The `method` label: a standard HTTP method, else `other`.
fn method_label(method: &str) -> &str {
    const STANDARD: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];
    STANDARD.into_iter().find(|m| *m == method).unwrap_or("other")
}

/// Escapes a label value (backslash, quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_histograms() {
        let m = Metrics::default();
        m.agent_call("echo", "ok", Duration::from_micros(20), Some(100));
        m.agent_call("echo", "ok", Duration::from_millis(2), Some(50));
        m.agent_call("echo", "deadline", Duration::from_secs(6), None);
        let text = m.render(&Gauges { agents_loaded: 1, files_failed: 0 });
        assert!(text.contains("agentkernel_agent_calls_total{agent=\"echo\",outcome=\"ok\"} 2"), "{text}");
        assert!(text.contains("agentkernel_agent_calls_total{agent=\"echo\",outcome=\"deadline\"} 1"));
        assert!(text.contains("agentkernel_agent_fuel_consumed_total{agent=\"echo\"} 150"));
        assert!(text.contains("agentkernel_agent_call_duration_seconds_bucket{agent=\"echo\",le=\"0.00005\"} 1"));
        assert!(text.contains("agentkernel_agent_call_duration_seconds_bucket{agent=\"echo\",le=\"0.005\"} 2"));
        assert!(text.contains("agentkernel_agent_call_duration_seconds_bucket{agent=\"echo\",le=\"+Inf\"} 3"));
        assert!(text.contains("agentkernel_agent_call_duration_seconds_count{agent=\"echo\"} 3"));
        assert!(text.contains("agentkernel_agents_loaded 1"));
    }

    #[test]
    fn http_requests_are_counted_by_method_route_and_status() {
        let m = Metrics::default();
        m.http_request("POST", "/v1/x", 200, Duration::from_micros(30));
        m.http_request("POST", "/v1/x", 200, Duration::from_micros(30));
        m.http_request("POST", "/v1/x", 404, Duration::from_micros(30));
        m.http_request("GET", "/v1/x", 200, Duration::from_micros(30));
        let text = m.render(&Gauges { agents_loaded: 0, files_failed: 0 });
        assert!(text.contains("agentkernel_http_requests_total{method=\"POST\",route=\"/v1/x\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("agentkernel_http_requests_total{method=\"POST\",route=\"/v1/x\",status=\"404\"} 1"));
        assert!(text.contains("agentkernel_http_requests_total{method=\"GET\",route=\"/v1/x\",status=\"200\"} 1"));
        assert!(text.contains("agentkernel_http_request_duration_seconds_count{route=\"/v1/x\"} 4"));
    }

    #[test]
    fn made_up_methods_share_one_series() {
        let m = Metrics::default();
        for i in 0..50 {
            m.http_request(&format!("BREW{i}"), "unmatched", 405, Duration::from_micros(30));
        }
        m.http_request("PATCH", "unmatched", 405, Duration::from_micros(30));
        let text = m.render(&Gauges { agents_loaded: 0, files_failed: 0 });
        let series = text.lines().filter(|l| l.starts_with("agentkernel_http_requests_total{")).count();
        assert_eq!(series, 2, "{text}");
        assert!(text.contains("agentkernel_http_requests_total{method=\"other\",route=\"unmatched\",status=\"405\"} 50"), "{text}");
        assert!(!text.contains("BREW"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
