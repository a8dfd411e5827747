//! Admin HTTP endpoints for the genome and the EC2 audit log: what
//! `agentkernel genome proposals/approve/reject` and `agentkernel audit`
//! do, for operators who are not on the host's shell.
//!
//! - `GET /v1/admin/genome[?owner=A]`: the current genomes, one per owner
//!   (`genomes`), and `genome`: the owner's (or the newest of all)
//! - `GET /v1/admin/genome/proposals?status=pending`
//! - `POST /v1/admin/genome/proposals/{id}/approve`: apply within the owner's policy
//! - `POST /v1/admin/genome/proposals/{id}/reject`
//! - `GET /v1/admin/audit?agent=A&limit=N`
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use agentkernel_aws::Ec2Failure;
use agentkernel_aws::policy::granted_scope;
use agentkernel_core::api::ErrorBody;
use crate::App;
use crate::auth::Caller;

/// Mounted on the server's `admin`-scoped router.
pub fn admin_routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/admin/genome", get(current))
        .route("/v1/admin/genome/proposals", get(proposals))
        .route("/v1/admin/genome/proposals/{id}/approve", post(approve))
        .route("/v1/admin/genome/proposals/{id}/reject", post(reject))
        .route("/v1/admin/audit", get(audit))
}

fn failure(e: &Ec2Failure) -> Response {
    let status = match e {
        Ec2Failure::Denied(_) | Ec2Failure::NotOwned(_) => StatusCode::FORBIDDEN,
        Ec2Failure::InvalidParameter(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Ec2Failure::Throttled(_) | Ec2Failure::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Ec2Failure::Aws(_) => StatusCode::BAD_GATEWAY,
    };
    let code = match e {
        Ec2Failure::Denied(d) => format!("denied:{}", d.rule),
        other => other.code().to_string(),
    };
    (status, Json(ErrorBody::new(&code, e.to_string()))).into_response()
}

fn storage_error(e: impl std::fmt::Display) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, Json(ErrorBody::new("storage", e.to_string()))).into_response()
}

/// Runs a store read on the blocking pool.
async fn read<T: Send + 'static>(
    app: &App,
    op: impl FnOnce(&dyn agentkernel_storage::aws::AwsStore) -> Result<T, agentkernel_storage::StorageError> + Send + 'static,
) -> Result<T, Response> {
    let store = app.host.aws.store().clone();
    agentkernel_storage::blocking::call(agentkernel_storage::blocking::DEFAULT_TIMEOUT, move || op(&*store)).await.map_err(storage_error)
}

#[derive(Deserialize)]
struct GenomeQuery {
    owner: Option<String>,
}

async fn current(State(app): State<Arc<App>>, Query(q): Query<GenomeQuery>) -> Response {
    match read(&app, |s| s.genome_current_all()).await {
        Ok(all) => {
            let genome = match &q.owner {
                Some(o) => all.iter().find(|g| &g.owner == o),
                None => all.first(),
            };
            Json(json!({ "genome": genome, "genomes": all })).into_response()
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct ProposalQuery {
    status: Option<String>,
}

async fn proposals(State(app): State<Arc<App>>, Query(q): Query<ProposalQuery>) -> Response {
    match read(&app, move |s| s.proposal_list(q.status.as_deref(), 100)).await {
        Ok(rows) => Json(json!({ "proposals": rows })).into_response(),
        Err(r) => r,
    }
}

async fn approve(State(app): State<Arc<App>>, Extension(caller): Extension<Caller>, Path(id): Path<i64>) -> Response {
    let by = format!("admin:{}", caller.name);
    // Claim, apply, mark and audit as one unit in its own task: a client
    // that hangs up midway must not leave the proposal `applying` forever.
    let task_app = app.clone();
    let task = tokio::spawn(async move {
        let host = &task_app.host;
        host.aws.approve_proposal(id, &by, |owner| granted_scope(&host.config.policy_for(owner))).await
    });
    let result = match task.await {
        Ok(r) => r,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, Json(ErrorBody::new("internal", format!("approval task failed: {e}")))).into_response(),
    };
    match result {
        Ok((proposal, plan, applied)) => Json(json!({ "proposal": proposal, "plan": plan, "applied": applied })).into_response(),
        Err(e) => failure(&e),
    }
}

#[derive(Deserialize, Default)]
struct RejectBody {
    #[serde(default)]
    reason: String,
}

async fn reject(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
    body: Option<Json<RejectBody>>,
) -> Response {
    let reason = body.map(|Json(b)| b.reason).unwrap_or_default();
    let by = format!("admin:{}", caller.name);
    match app.host.aws.reject_proposal(id, &by, &reason).await {
        Ok(()) => Json(json!({ "id": id, "status": "rejected" })).into_response(),
        Err(e) => failure(&e),
    }
}

#[derive(Deserialize)]
struct AuditQuery {
    agent: Option<String>,
    limit: Option<u32>,
}

async fn audit(State(app): State<Arc<App>>, Query(q): Query<AuditQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).min(10_000);
    match read(&app, move |s| s.audit_list(q.agent.as_deref(), limit)).await {
        Ok(rows) => Json(json!({ "audit": rows })).into_response(),
        Err(r) => r,
    }
}
