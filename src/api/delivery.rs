//! The delivery endpoints: the dead list and redelivery, re-enabling a
//! 410-disabled destination, and `GET /v1/status` with each destination's
//! backlog (the same as `backorderd dead`, `redeliver`,
//! `enable-destination` and `status`).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::bodies::ErrorBody;
use super::error::ApiError;
use crate::store::delivery::{DeadMessage, DestinationStatus};
use crate::store::{DeliveryStore, Store};

type Shared<S> = State<Arc<AppState<S>>>;

fn rfc3339(ms: i64) -> String {
    crate::store::daemons::ms_to_rfc3339(ms)
}

/// One dead message of one destination.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadEntry {
    pub destination: String,
    /// The message id (`webhook-id`, the `Message-ID`'s local part).
    pub id: String,
    pub key: String,
    pub created_at: String,
    pub attempts: i64,
    /// What the last attempt came to.
    pub last_error: String,
    pub dead_at: String,
}

impl From<DeadMessage> for DeadEntry {
    fn from(d: DeadMessage) -> Self {
        DeadEntry {
            destination: d.destination,
            id: d.message_id,
            key: d.key,
            created_at: rfc3339(d.created_ms),
            attempts: d.attempts,
            last_error: d.last_error,
            dead_at: rfc3339(d.dead_at_ms),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadList {
    pub dead: Vec<DeadEntry>,
}

/// One destination's delivery state.
#[derive(Debug, Serialize, ToSchema)]
pub struct DestinationEntry {
    /// `webhook:<url>` or `email`.
    pub destination: String,
    /// Messages it has yet to take.
    pub backlog: i64,
    /// Age in seconds of the oldest of them (null: none).
    pub oldest_undelivered_age_secs: Option<f64>,
    pub dead: i64,
    /// Set when it answered 410 Gone: nothing is sent until re-enabled.
    pub disabled_at: Option<String>,
    pub disabled_reason: Option<String>,
}

impl DestinationEntry {
    pub fn of(d: DestinationStatus, now_ms: i64) -> Self {
        DestinationEntry {
            destination: d.destination,
            backlog: d.pending + d.unscanned,
            oldest_undelivered_age_secs: d
                .oldest_pending_ms
                .map(|ms| (now_ms - ms).max(0) as f64 / 1000.0),
            dead: d.dead,
            disabled_at: d.disabled_at_ms.map(rfc3339),
            disabled_reason: d.disabled_reason,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueCounts {
    pub pending: i64,
    pub running: i64,
    pub failed: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusAnswer {
    pub queue: QueueCounts,
    pub dirty_skus: i64,
    pub set_aside_skus: i64,
    pub destinations: Vec<DestinationEntry>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Redelivered {
    /// Dead messages put back.
    pub redelivered: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Enabled {
    pub enabled: String,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeadParams {
    /// Only this destination's (`webhook:<url>` or `email`).
    destination: Option<String>,
    /// At most this many (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<i64>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DestinationParam {
    /// The destination (`webhook:<url>` or `email`); for a redelivery,
    /// every destination where the message is dead when absent.
    destination: Option<String>,
}

/// `GET /v1/dead?destination=&limit=`.
#[utoipa::path(
    get,
    path = "/v1/dead",
    tag = "delivery",
    summary = "Messages given up on after their retry window",
    params(DeadParams),
    responses(
        (status = 200, description = "The dead messages by destination, oldest first, with the last error", body = DeadList),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 401, description = "`http.token` is set and the request lacks it", body = ErrorBody),
        (status = 500, description = "The database failed", body = ErrorBody),
        (status = 503, description = "The database is busy", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn dead<S: Store + DeliveryStore + Send + Sync + 'static>(
    State(state): Shared<S>,
    params: Result<Query<DeadParams>, QueryRejection>,
) -> Result<Json<DeadList>, ApiError> {
    let Query(params) = params?;
    let limit = params.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be from 1 to 10000"));
    }
    let dead = state
        .store
        .dead_messages(params.destination.as_deref(), limit)
        .await?;
    Ok(Json(DeadList {
        dead: dead.into_iter().map(DeadEntry::from).collect(),
    }))
}

/// `POST /v1/dead/{id}/redeliver?destination=`.
#[utoipa::path(
    post,
    path = "/v1/dead/{id}/redeliver",
    tag = "delivery",
    summary = "Send a dead message again",
    description = "Puts the message back in its destination's queue with a new retry window; \
        it is sent after the message of its key in hand, if any.",
    params(("id" = String, Path, description = "The message id"), DestinationParam),
    responses(
        (status = 200, description = "Put back", body = Redelivered),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 401, description = "`http.token` is set and the request lacks it", body = ErrorBody),
        (status = 404, description = "The message is not dead (for that destination)", body = ErrorBody),
        (status = 500, description = "The database failed", body = ErrorBody),
        (status = 503, description = "The database is busy", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn redeliver<S: Store + DeliveryStore + Send + Sync + 'static>(
    State(state): Shared<S>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<DestinationParam>, QueryRejection>,
) -> Result<Json<Redelivered>, ApiError> {
    let Path(id) = id?;
    let Query(params) = params?;
    let redelivered = state
        .store
        .redeliver(Some(&id), params.destination.as_deref())
        .await?;
    if redelivered == 0 {
        return Err(ApiError::not_found(format!(
            "message {id:?} is not dead{}",
            params
                .destination
                .map(|d| format!(" for {d}"))
                .unwrap_or_default()
        )));
    }
    Ok(Json(Redelivered { redelivered }))
}

/// `POST /v1/destinations/enable?destination=`.
#[utoipa::path(
    post,
    path = "/v1/destinations/enable",
    tag = "delivery",
    summary = "Re-enable a destination disabled by 410 Gone",
    params(DestinationParam),
    responses(
        (status = 200, description = "Enabled: its waiting messages are sent", body = Enabled),
        (status = 400, description = "No destination given", body = ErrorBody),
        (status = 401, description = "`http.token` is set and the request lacks it", body = ErrorBody),
        (status = 404, description = "No such destination", body = ErrorBody),
        (status = 500, description = "The database failed", body = ErrorBody),
        (status = 503, description = "The database is busy", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn enable<S: Store + DeliveryStore + Send + Sync + 'static>(
    State(state): Shared<S>,
    params: Result<Query<DestinationParam>, QueryRejection>,
) -> Result<Json<Enabled>, ApiError> {
    let Query(params) = params?;
    let Some(name) = params.destination else {
        return Err(ApiError::bad_request(
            "give the destination: ?destination=webhook:<url> or ?destination=email",
        ));
    };
    if !state.store.enable_destination(&name).await? {
        return Err(ApiError::not_found(format!("no destination {name:?}")));
    }
    Ok(Json(Enabled { enabled: name }))
}

/// `GET /v1/status`.
#[utoipa::path(
    get,
    path = "/v1/status",
    tag = "operations",
    summary = "The queue and each destination's backlog",
    responses(
        (status = 200, description = "As `backorderd status` shows it", body = StatusAnswer),
        (status = 401, description = "`http.token` is set and the request lacks it", body = ErrorBody),
        (status = 500, description = "The database failed", body = ErrorBody),
        (status = 503, description = "The database is busy", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn status<S: Store + DeliveryStore + Send + Sync + 'static>(
    State(state): Shared<S>,
) -> Result<Json<StatusAnswer>, ApiError> {
    let queue = state.store.queue_status().await?;
    let now = crate::store::daemons::now_ms();
    let destinations = state
        .store
        .destinations_status()
        .await?
        .into_iter()
        .map(|d| DestinationEntry::of(d, now))
        .collect();
    Ok(Json(StatusAnswer {
        queue: QueueCounts {
            pending: queue.pending,
            running: queue.running,
            failed: queue.failed,
        },
        dirty_skus: queue.dirty_skus,
        set_aside_skus: queue.set_aside_skus,
        destinations,
    }))
}
