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
use super::bodies::{
    BackorderEntry, BackorderPage, ErrorBody, EventOutcome, EventsAnswer, Health, Outcome,
    ReadinessAnswer, ReadinessChecks, RecalculateAnswer,
};
use super::error::ApiError;
use crate::engine::time_format::format_timestamp;
use crate::events::{Event, EventKind, parse_batch};
use crate::store::{BackorderCursor, BackorderQuery, IngestReport, StatusFilter, Store};

type Shared<S> = State<Arc<AppState<S>>>;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WaitParams {
    /// Answer once the recalculations caused are written back.
    #[serde(default)]
    wait: bool,
    /// With `wait`: seconds to wait at most (capped by `http.wait_timeout_secs`).
    #[param(minimum = 0)]
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
fn results(events: &[Event], report: &IngestReport) -> Vec<EventOutcome> {
    let accepted: HashSet<&str> = report.accepted.iter().map(String::as_str).collect();
    let mut given = HashSet::new();
    events
        .iter()
        .map(|e| {
            let outcome = if accepted.contains(e.id.as_str()) && given.insert(e.id.as_str()) {
                Outcome::Accepted
            } else {
                Outcome::Duplicate
            };
            EventOutcome {
                id: e.id.clone(),
                outcome,
            }
        })
        .collect()
}

/// Polls until each SKU the batch marked is recalculated with the batch's
/// events (not dirty, or written back by a batch that began after they
/// committed: `Store::waiting_count`), like `event --wait`; 504 after the timeout, 503 when the daemon stops meanwhile or
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
    let unanswered = |e: crate::store::StoreError| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the events are applied, but waiting for their recalculation failed: \
                 the database did not answer ({e}); ask again later or read the orders"
            ),
        )
    };
    // The events committed before the answer came: read after them.
    let ticket = state.store.recalc_ticket().await.map_err(unanswered)?;
    loop {
        if state
            .store
            .waiting_count(marked, ticket)
            .await
            .map_err(unanswered)?
            == 0
        {
            return Ok(());
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
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    summary = "Apply events",
    description = "Applies one event, a JSON array of events, or JSON Lines (one event a line), \
        all in one transaction, and queues their recalculations. A refused event refuses the \
        whole request: nothing is applied and none of its ids is recorded. The body is read \
        whatever its Content-Type.",
    params(WaitParams),
    request_body(
        description = "One event, a JSON array of events, or JSON Lines",
        content(
            (EventsBody = "application/json"),
            (String = "application/x-ndjson"),
        ),
    ),
    responses(
        (status = 202, description = "Applied; recalculations queued", body = EventsAnswer),
        (status = 200, description = "`?wait=true`: applied and written back", body = EventsAnswer),
        (status = 400, description = "Not JSON, not JSON Lines, no event, or a bad query parameter", body = ErrorBody),
        (status = 401, description = "`http.token` is set and the request lacks it", body = ErrorBody),
        (status = 413, description = "The body is larger than `http.body_limit_bytes`", body = ErrorBody),
        (status = 422, description = "An event is refused (the message names it)", body = ErrorBody),
        (status = 500, description = "The database failed", body = ErrorBody),
        (status = 503, description = "The database is busy, or the daemon stopped during `?wait=true` (events applied, `results` in the body)", body = ErrorBody),
        (status = 504, description = "`?wait=true` timed out (events applied, `results` in the body)", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
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
    let body = EventsAnswer {
        results: results(&events, &report),
        written_back: None,
    };
    answer(&state, &report, &params, to_value(&body)).await
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

/// `{"skus": [...]}` or `{"all": true}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecalcRequest {
    #[serde(default)]
    skus: Vec<String>,
    #[serde(default)]
    all: bool,
}

/// `POST /v1/recalculate[?wait=true]` with `{"skus": [...]}` or `{"all": true}`.
#[utoipa::path(
    post,
    path = "/v1/recalculate",
    tag = "events",
    summary = "Queue a recalculation",
    description = "Becomes a `recalculate` event with the id `recalc-<UTC time>-<pid>-<n>`.",
    params(WaitParams),
    request_body(content = RecalcRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Queued", body = RecalculateAnswer),
        (status = 200, description = "`?wait=true`: written back", body = RecalculateAnswer),
        (status = 400, description = "Not JSON, or a bad query parameter", body = ErrorBody),
        (status = 401, description = "`http.token` is set and the request lacks it", body = ErrorBody),
        (status = 413, description = "The body is larger than `http.body_limit_bytes`", body = ErrorBody),
        (status = 422, description = "Neither `skus` (non-empty strings) nor `all: true`, or an unknown field", body = ErrorBody),
        (status = 500, description = "The database failed", body = ErrorBody),
        (status = 503, description = "The database is busy, or the daemon stopped during `?wait=true`", body = ErrorBody),
        (status = 504, description = "`?wait=true` timed out (the recalculation stays queued)", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
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
    let body = RecalculateAnswer {
        id: event.id,
        all: report.all_marked,
        marked_skus: report.marked_skus.clone(),
        written_back: None,
    };
    answer(&state, &report, &params, to_value(&body)).await
}

/// `GET /v1/orders/{id}`: lines, status, and why each line is backordered.
#[utoipa::path(
    get,
    path = "/v1/orders/{id}",
    tag = "reads",
    summary = "An order and why its lines are backordered",
    params(("id" = String, Path, description = "The order's id")),
    responses(
        (status = 200, description = "The order as stored, with a reason per line", body = crate::explain::OrderExplanation),
        (status = 400, description = "A bad path", body = ErrorBody),
        (status = 401, description = "`http.token` is set and the request lacks it", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 500, description = "The database failed", body = ErrorBody),
        (status = 503, description = "The database is busy", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
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
    let (first, others) = crate::store::order_groups(&*state.store, &skus).await?;
    // The engine runs on whole pools: off the async threads.
    let explained = tokio::task::spawn_blocking(move || {
        crate::explain::explain_order_by_group(&view, &first, &others, Utc::now())
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(explained).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BackorderParams {
    /// `full`, `partial` or `any` (both, the default).
    #[param(pattern = "^(full|partial|any)$")]
    status: Option<String>,
    /// Only orders with a backordered line of this SKU.
    sku: Option<String>,
    /// Only orders shipping from this warehouse (`ship_from`).
    warehouse: Option<String>,
    /// Only orders dated on or after this: `YYYY-MM-DD` (UTC) or an RFC 3339 time.
    from: Option<String>,
    /// Only orders dated on or before this day (`YYYY-MM-DD`, UTC, the whole
    /// day) or before this RFC 3339 time.
    to: Option<String>,
    /// Orders per page (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `next` of the previous page.
    after: Option<String>,
}

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// `GET /v1/backorders?status=full|partial|any&sku=&warehouse=&from=&to=&limit=&after=`.
#[utoipa::path(
    get,
    path = "/v1/backorders",
    tag = "reads",
    summary = "Backordered orders, oldest first",
    params(BackorderParams),
    responses(
        (status = 200, description = "A page of orders", body = BackorderPage),
        (status = 400, description = "A bad parameter (the message names it)", body = ErrorBody),
        (status = 401, description = "`http.token` is set and the request lacks it", body = ErrorBody),
        (status = 500, description = "The database failed", body = ErrorBody),
        (status = 503, description = "The database is busy", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
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
        warehouse: params.warehouse.filter(|s| !s.is_empty()),
        from: date_bound("from", params.from.as_deref(), false)?,
        until: date_bound("to", params.to.as_deref(), true)?,
        limit: limit + 1,
        after,
    };
    let mut page = state.store.backorders(&query).await?;
    let next = (page.len() > limit).then(|| {
        page.truncate(limit);
        page.last().map(|o| o.cursor.encode())
    });
    let orders = page
        .into_iter()
        .map(|o| BackorderEntry {
            order_id: o.order_id,
            order_date: format_timestamp(&o.order_date),
            payment_date: o.payment_date.as_ref().map(format_timestamp),
            status: o.status,
            payment_status: o.payment_status,
            rush: o.rush,
            picked: o.picked,
            ship_from: o.ship_from,
            backorder_status: o.backorder_status,
            backorder_qty: o.backorder_qty,
        })
        .collect();
    let page = BackorderPage {
        orders,
        next: next.flatten(),
    };
    Ok(Json(page).into_response())
}

/// A date filter: `YYYY-MM-DD` (UTC; as an upper bound, the end of that
/// day) or an RFC 3339 time; empty is no bound. The message names `name`.
pub(crate) fn date_bound(
    name: &str,
    given: Option<&str>,
    upper: bool,
) -> Result<Option<chrono::DateTime<Utc>>, ApiError> {
    let Some(text) = given.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = if upper { day.succ_opt() } else { Some(day) };
        return Ok(day
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc()));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| {
            ApiError::bad_request(format!(
                "{name} {text:?}: expected a date YYYY-MM-DD or an RFC 3339 time"
            ))
        })
}

/// `GET /v1/products/{sku}`: stock and promises per warehouse, open POs.
#[utoipa::path(
    get,
    path = "/v1/products/{sku}",
    tag = "reads",
    summary = "A SKU's stock and what it is promised to",
    params(("sku" = String, Path, description = "The SKU")),
    responses(
        (status = 200, description = "Stock per warehouse, totals, open purchase orders", body = crate::explain::ProductSummary),
        (status = 400, description = "A bad path", body = ErrorBody),
        (status = 401, description = "`http.token` is set and the request lacks it", body = ErrorBody),
        (status = 404, description = "Nothing is stored about the SKU", body = ErrorBody),
        (status = 500, description = "The database failed", body = ErrorBody),
        (status = 503, description = "The database is busy", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
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
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness",
    responses((status = 200, description = "The process runs", body = Health)),
    security(()),
)]
pub async fn healthz() -> Response {
    Json(Health {
        status: "ok".to_owned(),
    })
    .into_response()
}

/// How long `/readyz` waits for the database.
const READINESS_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /readyz`: 200 when the database answers, its schema is current and
/// the queue worker runs; else 503 naming the checks that failed.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness",
    responses(
        (status = 200, description = "Ready", body = ReadinessAnswer),
        (status = 503, description = "Not ready: `failed` names the checks", body = ReadinessAnswer),
    ),
    security(()),
)]
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
    // Not merely running: making progress whenever work waits.
    let worker = if state.stopping() {
        failed.push("worker");
        "stopping".to_owned()
    } else {
        let oldest = match database.as_str() {
            "ok" => state.store.oldest_dirty_mark().await.ok().flatten(),
            _ => None,
        };
        let verdict = state.worker.verdict(oldest.map(|t| t.timestamp_millis()));
        if !verdict.is_ok() {
            failed.push("worker");
        }
        verdict.describe()
    };
    let status = if failed.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = ReadinessAnswer {
        ready: failed.is_empty(),
        failed: failed.into_iter().map(str::to_owned).collect(),
        checks: ReadinessChecks {
            database,
            schema,
            worker: worker.to_owned(),
        },
    };
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text; the queue gauges are read now.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"),
        (status = 401, description = "`http.token` is set and the request lacks it", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn metrics<S: Store + crate::store::DeliveryStore + Send + Sync + 'static>(
    State(state): Shared<S>,
) -> Response {
    match state.store.queue_status().await {
        Ok(queue) => {
            let oldest = state.store.oldest_dirty_mark().await.ok().flatten();
            crate::meter::set_queue(&queue, oldest, Utc::now());
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the queue's state"),
    }
    match state.store.destinations_status().await {
        Ok(destinations) => {
            crate::delivery::deliver::set_gauges(&destinations, crate::store::daemons::now_ms())
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the delivery state"),
    }
    if let Err(e) = crate::delivery::deliver::count_created_messages(&*state.store).await {
        tracing::warn!(error = %e, "metrics: cannot count the new change messages");
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

/// `GET /v1/openapi.json`: this API's OpenAPI 3.1 description, built once.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "operations",
    summary = "This description",
    responses((status = 200, description = "The OpenAPI 3.1 description of this API", body = Object)),
    security(()),
)]
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::json(),
    )
        .into_response()
}

/// A body type as the JSON object `answer` extends.
fn to_value(body: &impl serde::Serialize) -> Value {
    serde_json::to_value(body).expect("an answer's body serializes")
}

/// Only the schema of the events body: the handler reads it with
/// `parse_events`, which also takes JSON Lines.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum EventsBody {
    One(Box<Event>),
    Many(Vec<Event>),
}
