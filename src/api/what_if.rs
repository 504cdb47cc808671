//! `POST /v1/what-if`: what a settings change (and optionally more events)
//! would make the next recalculation change on the stored state, computed
//! without writing (src/whatif.rs). It needs the token like every other
//! endpoint of `/v1`: it writes nothing, but it reads the whole book and,
//! on SQLite, holds the write lock while it runs, as an audit does.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use chrono::Utc;

use super::AppState;
use super::bodies::ErrorBody;
use super::error::ApiError;
use crate::console::ConsoleStore;
use crate::whatif::{WhatIfReport, WhatIfRequest, parse_request};

#[utoipa::path(
    post,
    path = "/v1/what-if",
    tag = "reads",
    summary = "Preview a settings change",
    description = "Applies the settings change (a partial `settings` object, as a \
        `settings_changed` event carries) and the optional `events` after it, recalculates every \
        SKU as that change makes the daemon do, and answers what the recalculation would change: \
        exact counts of lines and orders and the changed ones (at most `limit`, default 1000). \
        All inside a transaction that is rolled back: nothing is written, no event id is \
        recorded. On SQLite it holds the write lock for its run, as an audit does.",
    request_body(content = WhatIfRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "What would change", body = WhatIfReport),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "`http.token` is set and the request lacks it", body = ErrorBody),
        (status = 413, description = "The body is larger than `http.body_limit_bytes`", body = ErrorBody),
        (status = 422, description = "An unknown or bad key, a bad limit, or a refused event (named)", body = ErrorBody),
        (status = 500, description = "The database failed", body = ErrorBody),
        (status = 503, description = "The database is busy", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn what_if<S: ConsoleStore + Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<WhatIfReport>, ApiError> {
    let body = body?;
    let request = parse_request(&body).map_err(|e| {
        if e.syntax {
            ApiError::bad_request(e.message)
        } else {
            ApiError::refused(format!("what-if refused: {}", e.message))
        }
    })?;
    let report = state
        .store
        .what_if(&request, state.ingest_options, Utc::now())
        .await
        .map_err(|e| match ApiError::from(e) {
            err if err.status == StatusCode::UNPROCESSABLE_ENTITY => {
                ApiError::refused(format!("what-if refused: {}", err.message))
            }
            err => err,
        })?;
    Ok(Json(report))
}
