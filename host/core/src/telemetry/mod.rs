//! OpenTelemetry export: each request's trace sent over OTLP/HTTP
//! (protobuf) to `[telemetry] otlp_endpoint`, off by default.
//!
//! Exporting never slows a request: spans go into a bounded queue with a
//! non-blocking push, and one background task posts them in batches. A
//! full queue (a slow or absent collector) drops spans and counts them
//! (`agentkernel_otlp_spans_dropped_total` on `/metrics`). A client's W3C
//! `traceparent` continues its trace; one whose sampled flag is off is not
//! exported, as a parent-based sampler would do.
//!
//! What a client can make the exporter hold: at most `queue_spans` spans
//! (each with a handful of short attributes: names, models, codes — never
//! prompts or answers), whatever the request rate.
mod otlp;
mod spans;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use agentkernel_runtime::trace::Trace;

pub use otlp::{SpanData, SpanKind, Value};
pub use spans::{RequestSpan, request_spans};

/// `[telemetry]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base URL (`http://127.0.0.1:4318`);
    /// spans are posted to `{otlp_endpoint}/v1/traces`. Unset: no export.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported resource.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Most spans waiting for export; beyond it spans are dropped and counted.
    #[serde(default = "default_queue_spans")]
    pub queue_spans: usize,
    /// One export request's time limit.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_service_name() -> String {
    "agentkernel".to_string()
}
fn default_queue_spans() -> usize {
    4096
}
fn default_timeout_secs() -> u64 {
    10
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: default_service_name(),
            queue_spans: default_queue_spans(),
            timeout_secs: default_timeout_secs(),
        }
    }
}

/// Most spans one export request carries.
const BATCH_SPANS: usize = 512;

impl TelemetryConfig {
    /// Where spans are posted, or why the endpoint is not usable.
    pub fn traces_url(&self) -> Result<Option<reqwest::Url>, String> {
        let Some(endpoint) = &self.otlp_endpoint else { return Ok(None) };
        let base = endpoint.trim_end_matches('/');
        let full = if base.ends_with("/v1/traces") { base.to_string() } else { format!("{base}/v1/traces") };
        let url = reqwest::Url::parse(&full).map_err(|e| format!("telemetry.otlp_endpoint `{endpoint}`: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("telemetry.otlp_endpoint `{endpoint}`: OTLP/HTTP needs an http or https URL"));
        }
        if self.queue_spans == 0 || self.timeout_secs == 0 {
            return Err("telemetry.queue_spans and telemetry.timeout_secs must be above 0".into());
        }
        Ok(Some(url))
    }
}

/// A W3C trace context (`traceparent`, version 00).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub parent_span_id: [u8; 8],
    pub sampled: bool,
}

impl TraceParent {
    /// Parses `00-{32 hex}-{16 hex}-{2 hex}`; anything else (all-zero ids,
    /// version ff, upper case) is ignored, as the spec asks.
    pub fn parse(header: &str) -> Option<TraceParent> {
        let parts: Vec<&str> = header.trim().split('-').collect();
        let [version, trace, parent, flags, ..] = parts.as_slice() else { return None };
        let lower_hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !lower_hex(version, 2) || *version == "ff" || (*version == "00" && parts.len() != 4) {
            return None;
        }
        if !lower_hex(trace, 32) || !lower_hex(parent, 16) || !lower_hex(flags, 2) {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut parent_span_id = [0u8; 8];
        hex::decode_to_slice(trace, &mut trace_id).ok()?;
        hex::decode_to_slice(parent, &mut parent_span_id).ok()?;
        if trace_id == [0; 16] || parent_span_id == [0; 8] {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(TraceParent { trace_id, parent_span_id, sampled: flags & 1 == 1 })
    }
}

/// Counters `/metrics` shows.
#[derive(Debug, Default)]
pub struct ExportCounters {
    pub exported: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
}

/// The queue and the task that empties it.
pub struct Exporter {
    queue: mpsc::Sender<SpanData>,
    counters: Arc<ExportCounters>,
}

impl Exporter {
    /// Starts the export task on the current tokio runtime; `None` when
    /// no endpoint is configured.
    pub fn start(config: &TelemetryConfig) -> Result<Option<Exporter>, String> {
        let Some(url) = config.traces_url()? else { return Ok(None) };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs))
            .build()
            .map_err(|e| format!("telemetry: cannot build the HTTP client: {e}"))?;
        let (queue, rx) = mpsc::channel(config.queue_spans);
        let counters = Arc::new(ExportCounters::default());
        let resource = vec![
            ("service.name", Value::from(config.service_name.as_str())),
            ("service.version", Value::from(env!("CARGO_PKG_VERSION"))),
            ("telemetry.sdk.name", Value::from("agentkernel")),
        ];
        tokio::spawn(send_batches(rx, client, url, resource, counters.clone()));
        Ok(Some(Exporter { queue, counters }))
    }

    /// Queues a finished request's spans; never waits.
    pub fn export(&self, request: &RequestSpan, trace: &Trace) {
        if request.parent.as_ref().is_some_and(|p| !p.sampled) {
            return;
        }
        let end = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        for span in request_spans(request, trace, end) {
            if self.queue.try_send(span).is_err() {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn counters(&self) -> &ExportCounters {
        &self.counters
    }

    /// The exporter's lines for `/metrics`.
    pub fn metrics_text(&self) -> String {
        let c = &self.counters;
        format!(
            "# HELP agentkernel_otlp_spans_exported_total Spans the OTLP collector accepted.\n\
             # TYPE agentkernel_otlp_spans_exported_total counter\n\
             agentkernel_otlp_spans_exported_total {}\n\
             # HELP agentkernel_otlp_spans_dropped_total Spans dropped because the export queue was full.\n\
             # TYPE agentkernel_otlp_spans_dropped_total counter\n\
             agentkernel_otlp_spans_dropped_total {}\n\
             # HELP agentkernel_otlp_spans_failed_total Spans whose export request failed.\n\
             # TYPE agentkernel_otlp_spans_failed_total counter\n\
             agentkernel_otlp_spans_failed_total {}\n",
            c.exported.load(Ordering::Relaxed),
            c.dropped.load(Ordering::Relaxed),
            c.failed.load(Ordering::Relaxed),
        )
    }
}

/// Posts whatever is queued, up to [`BATCH_SPANS`] at a time, until the
/// exporter is dropped. A failed post is counted, not retried: the queue
/// keeps filling meanwhile, and a retry would only add to it.
async fn send_batches(
    mut rx: mpsc::Receiver<SpanData>,
    client: reqwest::Client,
    url: reqwest::Url,
    resource: Vec<(&'static str, Value)>,
    counters: Arc<ExportCounters>,
) {
    // Logged without credentials an endpoint URL may carry.
    let shown = {
        let mut u = url.clone();
        let _ = u.set_password(None);
        let _ = u.set_username("");
        u
    };
    let mut batch = Vec::with_capacity(BATCH_SPANS);
    while rx.recv_many(&mut batch, BATCH_SPANS).await > 0 {
        let body = otlp::export_request(&resource, env!("CARGO_PKG_VERSION"), &batch);
        let n = batch.len() as u64;
        batch.clear();
        let sent = client.post(url.clone()).header("content-type", "application/x-protobuf").body(body).send().await;
        match sent {
            Ok(resp) if resp.status().is_success() => {
                counters.exported.fetch_add(n, Ordering::Relaxed);
            }
            Ok(resp) => {
                tracing::warn!("OTLP export to {shown}: HTTP {}", resp.status());
                counters.failed.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!("OTLP export to {shown}: {}", e.without_url());
                counters.failed.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_parsed_as_the_w3c_spec_says() {
        let p = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(hex::encode(p.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex::encode(p.parent_span_id), "00f067aa0ba902b7");
        assert!(p.sampled);
        assert!(!TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap().sampled);
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        // A later version may add fields; its first four are read.
        assert!(TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz").is_some());
    }

    #[test]
    fn endpoints_get_the_traces_path_once_and_bad_ones_are_refused() {
        let url = |e: &str| TelemetryConfig { otlp_endpoint: Some(e.into()), ..TelemetryConfig::default() }.traces_url();
        assert_eq!(url("http://127.0.0.1:4318").unwrap().unwrap().as_str(), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(url("http://c:4318/v1/traces/").unwrap().unwrap().as_str(), "http://c:4318/v1/traces");
        assert!(url("grpc://c:4317").is_err());
        assert!(url("not a url").is_err());
        assert_eq!(TelemetryConfig::default().traces_url(), Ok(None));
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        // A collector that never answers: port 9 on loopback refuses, so
        // posts fail fast; a queue of 2 overflows on the first request.
        let config = TelemetryConfig {
            otlp_endpoint: Some("http://127.0.0.1:9".into()),
            queue_spans: 2,
            ..TelemetryConfig::default()
        };
        let exporter = Exporter::start(&config).unwrap().unwrap();
        let trace = Trace::new(None);
        for i in 0..5 {
            let span = trace.open(None, &format!("a{i}"), "agent");
            trace.close(span, "ok", Duration::from_millis(1), None, "");
        }
        let request = RequestSpan { method: "POST", route: "/v1/chat", parent: None, session: None, status: "ok".into() };
        let started = std::time::Instant::now();
        exporter.export(&request, &trace);
        assert!(started.elapsed() < Duration::from_millis(100), "export does not wait for the collector");
        assert_eq!(exporter.counters().dropped.load(Ordering::Relaxed), 4, "6 spans, room for 2");
    }
}
