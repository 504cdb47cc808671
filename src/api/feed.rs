//! `GET /v1/availability[/{sku}]` (the availability feed) and
//! `GET /v1/purchasing` (the purchasing report): thin layers over
//! src/availability.rs.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::bodies::ErrorBody;
use super::error::ApiError;
use crate::availability::{self, FeedError};
use crate::feed::purchasing::{self, Report};
use crate::feed::{FeedEntry, FeedFilter};
use crate::store::Store;

type Shared<S> = State<Arc<AppState<S>>>;

const NDJSON: &str = "application/x-ndjson";
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
/// Feed lines serialized per chunk of a JSON Lines answer.
const LINES_PER_CHUNK: usize = 1000;

impl From<FeedError> for ApiError {
    fn from(err: FeedError) -> Self {
        match err {
            FeedError::Query(q) => ApiError::bad_request(q.to_string()),
            FeedError::Store(s) => s.into(),
            FeedError::Task(t) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, t),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// Start after this SKU (the `next` of the previous page).
    after: Option<String>,
    /// Entries per page (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `jsonl`: the whole feed as JSON Lines (as `Accept: application/x-ndjson`).
    #[param(pattern = "^(json|jsonl)$")]
    format: Option<String>,
    /// Only SKUs with at least this many units backordered (in `warehouse` when given).
    #[param(minimum = 0)]
    backordered_min: Option<i64>,
    /// Only SKUs with at most this many units backordered (in `warehouse` when given).
    #[param(minimum = 0)]
    backordered_max: Option<i64>,
    /// The warehouse whose backordered units the bounds compare.
    warehouse: Option<String>,
}

/// A page of the feed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedPage {
    pub entries: Vec<FeedEntry>,
    /// The `after` of the next page; `null` on the last.
    pub next: Option<String>,
}

fn wants(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.split(';').next().unwrap_or("").trim() == media_type)
}

#[utoipa::path(
    get,
    path = "/v1/availability",
    tag = "reads",
    summary = "The availability feed: per SKU and warehouse, what is free, on order and sellable",
    description = "Paged JSON by SKU; `?format=jsonl` or `Accept: application/x-ndjson` answers \
        every entry as JSON Lines instead (a bulk pull). `backordered_min`/`backordered_max` keep \
        the SKUs whose backordered units (in `warehouse` when given) lie between them.",
    params(FeedParams),
    responses(
        (status = 200, description = "A page of entries, or every entry as JSON Lines",
            content((FeedPage = "application/json"), (FeedEntry = "application/x-ndjson"))),
        (status = 400, description = "A bad parameter (the message names it)", body = ErrorBody),
        (status = 401, description = "`http.token` is set and the request lacks it", body = ErrorBody),
        (status = 500, description = "The database failed", body = ErrorBody),
        (status = 503, description = "The database is busy", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn availability<S: Store + Send + Sync + 'static>(
    State(state): Shared<S>,
    headers: HeaderMap,
    params: Result<Query<FeedParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    let jsonl = match params.format.as_deref() {
        None | Some("") => wants(&headers, NDJSON),
        Some("json") => false,
        Some("jsonl") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format {other:?}: expected json or jsonl"
            )));
        }
    };
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit {limit}: expected 1 to {MAX_PAGE}"
        )));
    }
    let filter = FeedFilter {
        backordered_min: params.backordered_min,
        backordered_max: params.backordered_max,
        warehouse: params.warehouse.filter(|w| !w.is_empty()),
    };
    let mut entries = availability::whole(&*state.store, filter).await?;
    if jsonl {
        return Ok(json_lines(entries));
    }
    if let Some(after) = params.after.filter(|a| !a.is_empty()) {
        let start = entries.partition_point(|e| e.sku.as_str() <= after.as_str());
        entries.drain(..start);
    }
    let next = (entries.len() > limit).then(|| entries[limit - 1].sku.clone());
    entries.truncate(limit);
    Ok(Json(FeedPage { entries, next }).into_response())
}

/// Every entry, one JSON object a line, serialized chunk by chunk as the
/// body is sent.
fn json_lines(entries: Vec<FeedEntry>) -> Response {
    let mut entries = entries.into_iter();
    let chunks = std::iter::from_fn(move || {
        let mut chunk = Vec::new();
        for entry in entries.by_ref().take(LINES_PER_CHUNK) {
            serde_json::to_writer(&mut chunk, &entry).expect("an entry serializes");
            chunk.push(b'\n');
        }
        (!chunk.is_empty()).then(|| Ok::<_, std::convert::Infallible>(Bytes::from(chunk)))
    });
    (
        [(header::CONTENT_TYPE, NDJSON)],
        Body::from_stream(futures_util::stream::iter(chunks)),
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/v1/availability/{sku}",
    tag = "reads",
    summary = "One SKU's availability feed entry",
    params(("sku" = String, Path, description = "The SKU")),
    responses(
        (status = 200, description = "The SKU's entry", body = FeedEntry),
        (status = 400, description = "A bad path", body = ErrorBody),
        (status = 401, description = "`http.token` is set and the request lacks it", body = ErrorBody),
        (status = 404, description = "Nothing is stored about the SKU", body = ErrorBody),
        (status = 500, description = "The database failed", body = ErrorBody),
        (status = 503, description = "The database is busy", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn availability_of<S: Store + Send + Sync + 'static>(
    State(state): Shared<S>,
    sku: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(sku) = sku?;
    match availability::one(&*state.store, &sku).await? {
        Some(entry) => Ok(Json(entry).into_response()),
        None => Err(ApiError::not_found(format!(
            "nothing is stored about SKU {sku:?}"
        ))),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PurchasingParams {
    /// Only this vendor's SKUs (a vendor no product names: 400).
    vendor: Option<String>,
    /// `csv` for a spreadsheet (as `Accept: text/csv`).
    #[param(pattern = "^(json|csv)$")]
    format: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/purchasing",
    tag = "reads",
    summary = "What purchasing must order: per vendor, each SKU's shortfall",
    description = "A SKU's shortfall is its backordered units that no open purchase order covers \
        (per warehouse with `warehouse_based`). JSON, or CSV with `?format=csv` or `Accept: text/csv`.",
    params(PurchasingParams),
    responses(
        (status = 200, description = "The report",
            content((Report = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A bad parameter (the message names it)", body = ErrorBody),
        (status = 401, description = "`http.token` is set and the request lacks it", body = ErrorBody),
        (status = 500, description = "The database failed", body = ErrorBody),
        (status = 503, description = "The database is busy", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn purchasing_report<S: Store + Send + Sync + 'static>(
    State(state): Shared<S>,
    headers: HeaderMap,
    params: Result<Query<PurchasingParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    let csv = match params.format.as_deref() {
        None | Some("") => wants(&headers, "text/csv"),
        Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format {other:?}: expected json or csv"
            )));
        }
    };
    let vendor = params.vendor.filter(|v| !v.is_empty());
    let report: Report = availability::purchasing(&*state.store, vendor).await?;
    if csv {
        return Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            purchasing::to_csv(&report),
        )
            .into_response());
    }
    Ok(Json(report).into_response())
}
