//! The JSON bodies the API answers with that no other module owns: the
//! handlers serialize these types, and the OpenAPI description derives
//! their schemas from the same types (src/api/openapi.rs), so the two
//! cannot drift apart.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::engine::BackorderStatus;
use crate::engine::snapshot::{OrderStatus, PaymentStatus};

/// Every error: what went wrong and the HTTP status. Some errors carry
/// what was done before them: a `?wait=true` that timed out (504) or was
/// cut short (503) carries the events' `results`, or the recalculation's
/// `id`, `all` and `marked_skus`, which stay applied.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Names the bad record, event, key or parameter.
    pub error: String,
    /// The HTTP status again.
    pub status: u16,
    /// What was done before the error (see above).
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Map<String, Value>,
}

/// What became of one event of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct EventOutcome {
    pub id: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Applied now.
    Accepted,
    /// Its id was applied before (or earlier in the same request): nothing done.
    Duplicate,
}

/// The answer to `POST /v1/events`: each event's outcome, in the request's order.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsAnswer {
    pub results: Vec<EventOutcome>,
    /// With `?wait=true` (status 200): the recalculations are written back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written_back: Option<bool>,
}

/// The answer to `POST /v1/recalculate`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecalculateAnswer {
    /// The id of the `recalculate` event the request became.
    pub id: String,
    /// Every SKU was marked.
    pub all: bool,
    /// The SKUs marked (empty with `all`).
    pub marked_skus: Vec<String>,
    /// With `?wait=true` (status 200): the recalculations are written back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written_back: Option<bool>,
}

/// One order of a `GET /v1/backorders` page, as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackorderEntry {
    pub order_id: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub order_date: String,
    #[schema(format = DateTime)]
    pub payment_date: Option<String>,
    pub status: OrderStatus,
    pub payment_status: PaymentStatus,
    pub rush: bool,
    pub picked: bool,
    pub ship_from: Option<String>,
    pub backorder_status: BackorderStatus,
    pub backorder_qty: i64,
}

/// A page of `GET /v1/backorders`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackorderPage {
    pub orders: Vec<BackorderEntry>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next: Option<String>,
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// `GET /readyz`, ready (200) or not (503).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessAnswer {
    pub ready: bool,
    /// The names of the checks that failed (`database`, `schema`, `worker`).
    pub failed: Vec<String>,
    /// Each check: `ok`, or what is wrong.
    pub checks: ReadinessChecks,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessChecks {
    pub database: String,
    pub schema: String,
    pub worker: String,
}
