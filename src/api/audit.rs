//! `GET /v1/audit`: the audit's report (src/audit.rs), read-only. Repair
//! stays with the command line (`backorderd audit --repair`): a GET writes
//! nothing, and rewriting the book is a maintenance step.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::Utc;

use super::AppState;
use super::error::ApiError;
use crate::audit::AuditReport;
use crate::store::Store;

/// 200 with the report whether or not anything differs (`drift` says).
pub async fn audit<S: Store + Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
) -> Result<Json<AuditReport>, ApiError> {
    Ok(Json(state.store.audit(false, Utc::now()).await?))
}
