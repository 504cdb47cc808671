//! The allocation engine: plain data in, plain data out. No IO, no async, no
//! clock (the caller supplies "now" for snapshots without `as_of`). One
//! engine serves `simulate`, the worker and the full recompute.

mod allocate;
mod eta;
pub mod limits;
pub mod outcome;
mod pools;
mod priority;
pub mod result;
mod scope;
pub mod snapshot;
pub mod time_format;
pub mod validate;

use chrono::{DateTime, Utc};

pub use allocate::allocate;
pub use outcome::{Allocation, BackorderStatus, LineCounts, LineOutcome, OrderOutcome, Scope};
pub use result::ResultView;
pub use snapshot::Snapshot;
pub use validate::{Refusal, validate};

/// Section 2 for one order: which class it falls in as of `as_of`.
pub fn scope_of(
    order: &snapshot::Order,
    settings: &snapshot::Settings,
    warehouses: &[snapshot::Warehouse],
    as_of: DateTime<Utc>,
) -> Scope {
    scope::classify(
        order,
        settings,
        &pools::WarehouseIndex::new(warehouses),
        as_of,
    )
}

/// Section 2 from an order's header fields (for a caller that has no
/// [`snapshot::Order`] at hand): `old` is whether the order date lies
/// before the `max_days_back` cutoff ([`limits::cutoff`]).
pub fn scope_of_parts(
    status: snapshot::OrderStatus,
    payment_status: snapshot::PaymentStatus,
    ship_from_kind: Option<snapshot::WarehouseKind>,
    old: bool,
    settings: &snapshot::Settings,
) -> Scope {
    scope::classify_parts(status, payment_status, ship_from_kind, old, settings)
}

/// Section 4 for two orders: `Less` when `a` is served before `b` (keys 1-4).
pub fn priority_order(
    a: &snapshot::Order,
    b: &snapshot::Order,
    settings: &snapshot::Settings,
) -> std::cmp::Ordering {
    priority::compare(a, b, settings)
}

/// Section 3: whether a warehouse's stock and open purchase orders count.
pub fn is_eligible(kind: snapshot::WarehouseKind, settings: &snapshot::Settings) -> bool {
    pools::is_eligible(kind, settings)
}

/// Validates, then allocates as of the snapshot's `as_of` or else `now`.
pub fn recalculate(snapshot: &Snapshot, now: DateTime<Utc>) -> Result<Allocation, Refusal> {
    validate(snapshot)?;
    Ok(allocate(snapshot, snapshot.as_of.unwrap_or(now)))
}
