//! `GET /v1/changes` (the pull feed, long-polling) and
//! `GET /v1/orders/{id}/history` (an order's changes).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;
use utoipa::ToSchema;

use super::AppState;
use super::bodies::ErrorBody;
use super::error::ApiError;
use crate::store::feed::{self, Cursor, FeedEntry, MAX_LIMIT};
use crate::store::history::HistoryRow;
use crate::store::{AnyStore, StoreError};

/// The message log as the API reads it.
pub trait FeedStore {
    /// Up to `limit` messages after `cursor`, in commit order.
    fn messages_after(
        &self,
        cursor: Cursor,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<FeedEntry>, StoreError>> + Send;
}

impl FeedStore for AnyStore {
    async fn messages_after(
        &self,
        cursor: Cursor,
        limit: i64,
    ) -> Result<Vec<FeedEntry>, StoreError> {
        AnyStore::messages_after(self, cursor, limit).await
    }
}

/// The default number of messages per answer.
const DEFAULT_LIMIT: i64 = 100;
/// The longest `wait`, in seconds.
const MAX_WAIT_SECS: u64 = 300;
/// How often a long-poll looks for messages committed by other processes
/// (this process's commits wake it at once).
const POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChangesParams {
    /// The `next` of an earlier answer; the oldest kept message when absent.
    after: Option<String>,
    /// At most this many messages, 1 to 1000 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// When nothing is there yet, wait up to this many seconds (0 to 300,
    /// default 0, at most `http.wait_timeout_secs`) for a message to be
    /// committed.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 300)]
    wait: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChangesAnswer {
    /// The messages after the cursor, in commit order, each exactly as
    /// webhooks deliver it (`id`, `type`, `created_at`, `key`, `seq`,
    /// `data`, `causes`).
    #[schema(value_type = Vec<Object>)]
    messages: Vec<Value>,
    /// The cursor to pass as `after` next (the same one when no message came).
    next: String,
}

fn number_param(
    name: &str,
    text: Option<&str>,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };
    text.parse::<i64>()
        .ok()
        .filter(|n| range.contains(n))
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "`{name}` must be a whole number from {} to {}, not {text:?}",
                range.start(),
                range.end()
            ))
        })
}

#[utoipa::path(
    get,
    path = "/v1/changes",
    tag = "reads",
    summary = "The change messages after a cursor (the pull feed)",
    description = "Messages in commit order after `after`, with the cursor to continue from. \
        With `wait`, an empty answer is held until a message is committed or `wait` seconds pass. \
        Messages older than `notify.retention_secs` are pruned, unless a configured destination \
        has yet to take them.",
    params(ChangesParams),
    responses(
        (status = 200, description = "The messages and the next cursor", body = ChangesAnswer),
        (status = 400, description = "A bad `after`, `limit` or `wait`, named", body = ErrorBody),
        (status = 401, description = "`http.token` is set and the request lacks it", body = ErrorBody),
        (status = 500, description = "The database failed", body = ErrorBody),
        (status = 503, description = "The database is busy", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn changes<S: FeedStore + Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
    params: Result<Query<ChangesParams>, QueryRejection>,
) -> Result<Json<ChangesAnswer>, ApiError> {
    let Query(params) = params?;
    let cursor = Cursor::parse(params.after.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("`after`: {e}")))?;
    let limit =
        number_param("limit", params.limit.as_deref(), 1..=MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT);
    let wait = number_param("wait", params.wait.as_deref(), 0..=MAX_WAIT_SECS as i64)?.unwrap_or(0);
    // No longer than `?wait=true` may wait (`http.wait_timeout_secs`).
    let wait = Duration::from_secs(wait as u64).min(state.wait_timeout);
    let deadline = Instant::now() + wait;
    let mut commits = feed::watch_commits();
    let mut shutdown = state.shutdown.clone();
    let entries = loop {
        // Seen before the read: a commit after it wakes the wait below.
        commits.borrow_and_update();
        let entries = state.store.messages_after(cursor, limit).await?;
        if !entries.is_empty() || Instant::now() >= deadline || state.stopping() {
            break entries;
        }
        tokio::select! {
            _ = commits.changed() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed() => {}
        }
    };
    let next = cursor.after(&entries).to_string();
    let messages = entries
        .into_iter()
        .map(|e| {
            serde_json::from_str(&e.body).map_err(|err| {
                ApiError::from(StoreError::Corrupt {
                    record: format!("message at position {}", e.position),
                    problem: err.to_string(),
                })
            })
        })
        .collect::<Result<Vec<Value>, ApiError>>()?;
    Ok(Json(ChangesAnswer { messages, next }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryAnswer {
    order_id: String,
    /// Newest first: each change of the order (`line_id` null: its status
    /// and total) or of one of its lines.
    changes: Vec<HistoryRow>,
}

#[utoipa::path(
    get,
    path = "/v1/orders/{id}/history",
    tag = "reads",
    summary = "Every change of an order and its lines",
    description = "Each written-back change, newest first: old and new backorder qty (and \
        status, for the order's own rows), the cause (an event id, `import`, `periodic`, \
        `audit`...) and when.",
    params(("id" = String, Path, description = "The order's id")),
    responses(
        (status = 200, description = "The order's changes", body = HistoryAnswer),
        (status = 400, description = "A bad path", body = ErrorBody),
        (status = 401, description = "`http.token` is set and the request lacks it", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 500, description = "The database failed", body = ErrorBody),
        (status = 503, description = "The database is busy", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn history<S: crate::console::ConsoleStore + Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<HistoryAnswer>, ApiError> {
    let Path(id) = id?;
    if state.store.order_view(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("no order {id:?}")));
    }
    let changes = state.store.order_history(&id, i64::MAX).await?;
    Ok(Json(HistoryAnswer {
        order_id: id,
        changes,
    }))
}
