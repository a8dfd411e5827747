//! The research center's findings (`chat` scope: what the page shows).
//!
//! - `GET /v1/research/findings?limit=N` → `{"findings": [{"source", "id",
//!   "title", "url", "summary", "topic", "score", "scored_by", "published",
//!   "agent", "found_at"}], "per_week": [{"week", "week_start", "findings",
//!   "by_source"}]}`, newest first; `limit` 1..=200, default 50.
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use agentkernel_storage::blocking;

use crate::{App, error};

/// Findings one listing returns, by default and at most.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;
/// Weeks counted alongside the listing.
const WEEKS: u32 = 8;

pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/v1/research/findings", get(findings))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FindingsQuery {
    limit: Option<u32>,
}

async fn findings(State(app): State<Arc<App>>, query: Result<Query<FindingsQuery>, QueryRejection>) -> Response {
    let limit = match query {
        Ok(Query(q)) => q.limit.unwrap_or(DEFAULT_LIMIT),
        Err(rej) => return error(StatusCode::BAD_REQUEST, "invalid-request", rej.body_text()),
    };
    if !(1..=MAX_LIMIT).contains(&limit) {
        return error(StatusCode::BAD_REQUEST, "invalid-request", format!("limit must be 1 to {MAX_LIMIT}"));
    }
    let store = app.host.backend.clone();
    let read = blocking::call(blocking::DEFAULT_TIMEOUT, move || {
        Ok((store.research_findings(limit)?, store.research_findings_per_week(WEEKS)?))
    })
    .await;
    match read {
        Ok((findings, per_week)) => Json(json!({"findings": findings, "per_week": per_week})).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string()),
    }
}
