//! One function per endpoint (README, "HTTP API").

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::engine::time_format::format_timestamp;
use crate::events::{Event, EventKind, parse_batch};
use crate::store::{BackorderCursor, BackorderQuery, IngestReport, StatusFilter, Store};

type Shared<S> = State<Arc<AppState<S>>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitParams {
    /// Answer once the recalculations caused are written back.
    #[serde(default)]
    wait: bool,
    /// With `wait`: seconds to wait at most (capped by `http.wait_timeout_secs`).
    timeout: Option<u64>,
}

/// Reads a request body as events (`events::parse_batch`: one event, an
/// array, JSON Lines, any layout). Text that is not JSON is a bad request
/// (400); JSON that is not a valid event is refused (422), naming the event.
fn parse_events(body: &[u8]) -> Result<Vec<Event>, ApiError> {
    let events = parse_batch(body).map_err(|e| {
        if e.syntax {
            ApiError::bad_request(format!(
                "the body is not valid JSON: {e}; nothing was applied"
            ))
        } else {
            ApiError::refused(format!("events refused (nothing of them was applied): {e}"))
        }
    })?;
    if events.is_empty() {
        return Err(ApiError::bad_request("the body holds no event"));
    }
    Ok(events)
}

/// Each event's outcome, in the request's order. An id given twice in one
/// request is accepted once, then a duplicate.
fn results(events: &[Event], report: &IngestReport) -> Vec<Value> {
    let accepted: HashSet<&str> = report.accepted.iter().map(String::as_str).collect();
    let mut given = HashSet::new();
    events
        .iter()
        .map(|e| {
            let outcome = if accepted.contains(e.id.as_str()) && given.insert(e.id.as_str()) {
                "accepted"
            } else {
                "duplicate"
            };
            json!({ "id": e.id, "outcome": outcome })
        })
        .collect()
}

/// Polls until none of the SKUs the batch marked is dirty (like `event
/// --wait`); 504 after the timeout, 503 when the daemon stops meanwhile or
/// the database fails to answer (the events stay applied either way).
async fn wait_written_back<S: Store>(
    state: &AppState<S>,
    report: &IngestReport,
    params: &WaitParams,
) -> Result<(), ApiError> {
    if !report.all_marked && report.marked_skus.is_empty() {
        return Ok(());
    }
    let marked = (!report.all_marked).then_some(report.marked_skus.as_slice());
    let timeout = params
        .timeout
        .map_or(state.wait_timeout, Duration::from_secs)
        .min(state.wait_timeout);
    let deadline = Instant::now() + timeout;
    let mut shutdown = state.shutdown.clone();
    loop {
        match state.store.dirty_count(marked).await {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "the events are applied, but waiting for their recalculation failed: \
                         the database did not answer ({e}); ask again later or read the orders"
                    ),
                ));
            }
        }
        if state.stopping() {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the daemon is stopping: the events are applied and their recalculation \
                 finishes at its next start",
            ));
        }
        if Instant::now() >= deadline {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the events are applied but their recalculation was not written back within {} s",
                    timeout.as_secs_f64()
                ),
            ));
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// `POST /v1/events[?wait=true]`.
pub async fn events<S: Store + Send + Sync + 'static>(
    State(state): Shared<S>,
    params: Result<Query<WaitParams>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    let body = body?;
    let events = parse_events(&body).inspect_err(|_| crate::meter::events("refused", 1))?;
    let report = state
        .store
        .ingest(&events, state.ingest_options)
        .await
        .map_err(|e| match ApiError::from(e) {
            err if err.status == StatusCode::UNPROCESSABLE_ENTITY => {
                crate::meter::events("refused", events.len());
                ApiError::refused(format!(
                    "events refused (nothing of them was applied): {}",
                    err.message
                ))
            }
            err => err,
        })?;
    crate::meter::events("accepted", report.accepted.len());
    crate::meter::events("duplicate", events.len() - report.accepted.len());
    let results = results(&events, &report);
    answer(&state, &report, &params, json!({ "results": results })).await
}

/// 202 with `body`, or with `?wait=true` 200 once written back (`body`
/// goes with the error too, so the sender knows what was applied).
async fn answer<S: Store>(
    state: &AppState<S>,
    report: &IngestReport,
    params: &WaitParams,
    mut body: Value,
) -> Result<Response, ApiError> {
    if !params.wait {
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    if let Err(mut err) = wait_written_back(state, report, params).await {
        if let Value::Object(fields) = body {
            err.extra.extend(fields);
        }
        return Err(err);
    }
    body["written_back"] = json!(true);
    Ok((StatusCode::OK, Json(body)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecalcRequest {
    #[serde(default)]
    skus: Vec<String>,
    #[serde(default)]
    all: bool,
}

/// `POST /v1/recalculate[?wait=true]` with `{"skus": [...]}` or `{"all": true}`.
pub async fn recalculate<S: Store + Send + Sync + 'static>(
    State(state): Shared<S>,
    params: Result<Query<WaitParams>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    let body = body?;
    let request: RecalcRequest = serde_json::from_slice(&body).map_err(|e| {
        let message = format!("the body is not `{{\"skus\": [...]}}` or `{{\"all\": true}}`: {e}");
        match e.classify() {
            serde_json::error::Category::Data => ApiError::refused(message),
            _ => ApiError::bad_request(message),
        }
    })?;
    let event = Event {
        id: format!(
            "recalc-{}-{}-{}",
            Utc::now().format("%Y%m%dT%H%M%S%.9fZ"),
            std::process::id(),
            state.recalc_seq.fetch_add(1, Ordering::Relaxed)
        ),
        kind: EventKind::Recalculate {
            skus: request.skus,
            all: request.all,
        },
    };
    crate::events::check(&event).map_err(ApiError::refused)?;
    let report = state
        .store
        .ingest(std::slice::from_ref(&event), state.ingest_options)
        .await?;
    let body = json!({
        "id": event.id,
        "all": report.all_marked,
        "marked_skus": report.marked_skus,
    });
    answer(&state, &report, &params, body).await
}

/// `GET /v1/orders/{id}`: lines, status, and why each line is backordered.
pub async fn order<S: Store + Send + Sync + 'static>(
    State(state): Shared<S>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    let Some(view) = state.store.order_view(&id).await? else {
        return Err(ApiError::not_found(format!("no order {id:?}")));
    };
    let mut skus: Vec<String> = view.order.lines.iter().map(|l| l.sku.clone()).collect();
    skus.sort_unstable();
    skus.dedup();
    let pools = state.store.pool_state(&skus, true).await?;
    // The engine runs on whole pools: off the async threads.
    let explained = tokio::task::spawn_blocking(move || {
        crate::explain::explain_order(&view, &pools, Utc::now())
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(explained).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackorderParams {
    status: Option<String>,
    sku: Option<String>,
    limit: Option<usize>,
    after: Option<String>,
}

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// `GET /v1/backorders?status=full|partial|any&sku=&limit=&after=`.
pub async fn backorders<S: Store + Send + Sync + 'static>(
    State(state): Shared<S>,
    params: Result<Query<BackorderParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    let status = match params.status.as_deref().unwrap_or("any") {
        "full" => StatusFilter::Full,
        "partial" => StatusFilter::Partial,
        "any" => StatusFilter::Any,
        other => {
            return Err(ApiError::bad_request(format!(
                "status {other:?}: expected full, partial or any"
            )));
        }
    };
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit {limit}: expected 1 to {MAX_PAGE}"
        )));
    }
    let after = match params.after.as_deref() {
        None | Some("") => None,
        Some(token) => Some(BackorderCursor::decode(token).ok_or_else(|| {
            ApiError::bad_request("`after` is not a cursor this API gave (`next`)")
        })?),
    };
    let query = BackorderQuery {
        status,
        sku: params.sku.filter(|s| !s.is_empty()),
        limit: limit + 1,
        after,
    };
    let mut page = state.store.backorders(&query).await?;
    let next = (page.len() > limit).then(|| {
        page.truncate(limit);
        page.last().map(|o| o.cursor.encode())
    });
    let orders: Vec<Value> = page
        .into_iter()
        .map(|o| {
            json!({
                "order_id": o.order_id,
                "order_date": format_timestamp(&o.order_date),
                "payment_date": o.payment_date.as_ref().map(format_timestamp),
                "status": o.status,
                "payment_status": o.payment_status,
                "rush": o.rush,
                "picked": o.picked,
                "ship_from": o.ship_from,
                "backorder_status": o.backorder_status,
                "backorder_qty": o.backorder_qty,
            })
        })
        .collect();
    Ok(Json(json!({ "orders": orders, "next": next.flatten() })).into_response())
}

/// `GET /v1/products/{sku}`: stock and promises per warehouse, open POs.
pub async fn product<S: Store + Send + Sync + 'static>(
    State(state): Shared<S>,
    sku: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(sku) = sku?;
    let pools = state
        .store
        .pool_state(std::slice::from_ref(&sku), false)
        .await?;
    match crate::explain::product_summary(&sku, &pools, Utc::now()) {
        Some(summary) => Ok(Json(summary).into_response()),
        None => Err(ApiError::not_found(format!(
            "nothing is stored about SKU {sku:?}"
        ))),
    }
}

/// `GET /healthz`: the process runs.
pub async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// How long `/readyz` waits for the database.
const READINESS_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /readyz`: 200 when the database answers, its schema is current and
/// the queue worker runs; else 503 naming the checks that failed.
pub async fn readyz<S: Store + Send + Sync + 'static>(State(state): Shared<S>) -> Response {
    let mut failed = Vec::new();
    let (database, schema) =
        match tokio::time::timeout(READINESS_TIMEOUT, state.store.readiness()).await {
            Ok(Ok(r)) if r.missing_migrations.is_empty() => ("ok".to_owned(), "ok".to_owned()),
            Ok(Ok(r)) => {
                failed.push("schema");
                let missing = r.missing_migrations.join(", ");
                (
                    "ok".to_owned(),
                    format!("migrations not applied: {missing}"),
                )
            }
            Ok(Err(e)) => {
                failed.push("database");
                (e.to_string(), "unknown".to_owned())
            }
            Err(_) => {
                failed.push("database");
                (
                    format!("no answer within {} s", READINESS_TIMEOUT.as_secs()),
                    "unknown".to_owned(),
                )
            }
        };
    let worker = if state.stopping() {
        failed.push("worker");
        "stopping"
    } else if state.worker_running.load(Ordering::Relaxed) {
        "ok"
    } else {
        failed.push("worker");
        "not running"
    };
    let status = if failed.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ready": failed.is_empty(),
        "failed": failed,
        "checks": { "database": database, "schema": schema, "worker": worker },
    });
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text; the queue gauges are read now.
pub async fn metrics<S: Store + Send + Sync + 'static>(State(state): Shared<S>) -> Response {
    match state.store.queue_status().await {
        Ok(queue) => {
            let oldest = state.store.oldest_dirty_mark().await.ok().flatten();
            crate::meter::set_queue(&queue, oldest, Utc::now());
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the queue's state"),
    }
    state.metrics.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this endpoint does not take that method",
    )
}
