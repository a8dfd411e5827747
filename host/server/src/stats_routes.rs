//! The KPIs over HTTP (admin): `GET /v1/stats?days=N` (JSON, the shape
//! `agentkernel stats --json` prints; `days` 1..=90, default 7) and the
//! `agentkernel_kpi_*` gauges appended to `/metrics` (over the default
//! window, recomputed at most every [`METRICS_KPI_TTL`]).
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use agentkernel_evolution::kpi::{self, KpiError, Kpis};

use crate::App;
use crate::activity::ActivityRecorder;

/// The window when a request names none.
pub const DEFAULT_DAYS: u32 = 7;
/// How long `/metrics` reuses the KPIs it computed (reports are read from disk).
pub const METRICS_KPI_TTL: Duration = Duration::from_secs(30);
/// How long computing the KPIs may take.
const COMPUTE_TIMEOUT: Duration = Duration::from_secs(20);

/// What the stats endpoints keep between requests.
pub struct StatsState {
    pub activity: Arc<ActivityRecorder>,
    metrics_cache: Mutex<Option<(Instant, Arc<Kpis>)>>,
}

impl StatsState {
    pub fn new(activity: Arc<ActivityRecorder>) -> Self {
        StatsState { activity, metrics_cache: Mutex::new(None) }
    }
}

pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/v1/stats", get(stats))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    days: Option<u32>,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[derive(Debug, thiserror::Error)]
enum StatsError {
    #[error(transparent)]
    Kpi(#[from] KpiError),
    #[error("computing the KPIs took longer than {0:?}")]
    Timeout(Duration),
    #[error("the KPI task failed: {0}")]
    Task(String),
}

impl StatsError {
    fn response(&self) -> Response {
        let (status, code) = match self {
            StatsError::Kpi(KpiError::Window(_)) => (StatusCode::BAD_REQUEST, "invalid-request"),
            StatsError::Kpi(KpiError::Storage(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "storage"),
            StatsError::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            StatsError::Task(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        crate::error(status, code, self.to_string())
    }
}

/// Flushes the activity counters (so this process's calls are counted),
/// then computes the KPIs on the blocking pool.
async fn compute(app: &App, days: u32) -> Result<Kpis, StatsError> {
    if let Err(e) = app.stats.activity.flush().await {
        tracing::warn!("writing the activity counters before stats: {e}");
    }
    let store = app.host.backend.clone();
    let data_dir = app.host.config.host.data_dir.clone();
    let task = tokio::task::spawn_blocking(move || kpi::compute(&*store, &data_dir, days, unix_now()));
    match tokio::time::timeout(COMPUTE_TIMEOUT, task).await {
        Ok(Ok(result)) => Ok(result?),
        Ok(Err(join)) => Err(StatsError::Task(join.to_string())),
        Err(_) => Err(StatsError::Timeout(COMPUTE_TIMEOUT)),
    }
}

async fn stats(State(app): State<Arc<App>>, query: Result<Query<StatsQuery>, axum::extract::rejection::QueryRejection>) -> Response {
    let days = match query {
        Ok(Query(q)) => q.days.unwrap_or(DEFAULT_DAYS),
        Err(rej) => return crate::error(StatusCode::BAD_REQUEST, "invalid-request", rej.body_text()),
    };
    match compute(&app, days).await {
        Ok(k) => Json(k).into_response(),
        Err(e) => e.response(),
    }
}

/// The `agentkernel_kpi_*` gauges for `/metrics`; empty (and logged) when
/// they cannot be computed, so the process metrics are still served.
pub(crate) async fn metrics_text(app: &App) -> String {
    let cached = app.stats.metrics_cache.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let kpis = match cached {
        Some((at, k)) if at.elapsed() < METRICS_KPI_TTL => k,
        _ => match compute(app, DEFAULT_DAYS).await {
            Ok(k) => {
                let k = Arc::new(k);
                *app.stats.metrics_cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), k.clone()));
                k
            }
            Err(e) => {
                tracing::warn!("KPIs for /metrics: {e}");
                return String::new();
            }
        },
    };
    kpi::prometheus(&kpis)
}
