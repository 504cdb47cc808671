//! Section 2: which class each order falls in, checked in the contract's order.

use chrono::{DateTime, Utc};

use super::limits;
use super::outcome::Scope;
use super::pools::WarehouseIndex;
use super::snapshot::{Order, OrderStatus, PaymentStatus, Settings, WarehouseKind};

pub fn classify(
    order: &Order,
    settings: &Settings,
    warehouses: &WarehouseIndex,
    as_of: DateTime<Utc>,
) -> Scope {
    let ship_from_kind = order
        .ship_from
        .as_deref()
        .and_then(|id| warehouses.kind(id));
    // A cutoff before the calendar's start freezes nothing.
    let old = settings.max_days_back.is_some_and(|days| {
        limits::cutoff(as_of, days).is_some_and(|cutoff| order.order_date < cutoff)
    });
    classify_parts(
        order.status,
        order.payment_status,
        ship_from_kind,
        old,
        settings,
    )
}

/// [`classify`] from the header fields it reads: `ship_from_kind` is `None`
/// without a (known) ship-from warehouse, `old` says whether the order date
/// lies before the `max_days_back` cutoff.
pub fn classify_parts(
    status: OrderStatus,
    payment_status: PaymentStatus,
    ship_from_kind: Option<WarehouseKind>,
    old: bool,
    settings: &Settings,
) -> Scope {
    if matches!(status, OrderStatus::Shipped | OrderStatus::Cancelled) {
        return Scope::Closed;
    }
    if is_excluded(status, payment_status, ship_from_kind, settings) {
        return Scope::Excluded;
    }
    if old {
        return Scope::Frozen;
    }
    Scope::Active
}

fn is_excluded(
    status: OrderStatus,
    payment_status: PaymentStatus,
    ship_from_kind: Option<WarehouseKind>,
    settings: &Settings,
) -> bool {
    let by_status = match status {
        OrderStatus::Quote => true,
        OrderStatus::OnHold => !settings.include_on_hold,
        _ => false,
    };
    let by_payment = match payment_status {
        PaymentStatus::Authorized => !settings.include_authorized,
        PaymentStatus::Unpaid | PaymentStatus::PartiallyPaid => !settings.include_unpaid,
        PaymentStatus::Paid => false,
    };
    let by_warehouse = settings.warehouse_based
        && match ship_from_kind {
            None => true,
            Some(kind) => matches!(
                kind,
                WarehouseKind::Fba | WarehouseKind::Interim | WarehouseKind::Untested
            ),
        };
    by_status || by_payment || by_warehouse
}
