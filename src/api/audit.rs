//! `GET /v1/audit`: the audit's report (src/audit.rs), read-only. Repair
//! stays with the command line (`backorderd audit --repair`): a GET writes
//! nothing, and rewriting the book is a maintenance step.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::Utc;

use super::AppState;
use super::bodies::ErrorBody;
use super::error::ApiError;
use crate::audit::AuditReport;
use crate::store::Store;

/// 200 with the report whether or not anything differs (`drift` says).
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "reads",
    summary = "Stored values that differ from a recalculation now",
    description = "Runs the engine over the whole stored state and lists every line and order \
        whose stored values differ from its answer, writing nothing. On SQLite it holds the \
        write lock for its run, as a full recalculation does. Repair is `backorderd audit --repair`.",
    responses(
        (status = 200, description = "The report; `drift` says whether anything differs", body = AuditReport),
        (status = 401, description = "`http.token` is set and the request lacks it", body = ErrorBody),
        (status = 500, description = "The database failed", body = ErrorBody),
        (status = 503, description = "The database is busy", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn audit<S: Store + Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
) -> Result<Json<AuditReport>, ApiError> {
    Ok(Json(state.store.audit(false, Utc::now()).await?))
}
