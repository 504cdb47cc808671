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
    if matches!(order.status, OrderStatus::Shipped | OrderStatus::Cancelled) {
        return Scope::Closed;
    }
    if is_excluded(order, settings, warehouses) {
        return Scope::Excluded;
    }
    // A cutoff before the calendar's start freezes nothing.
    if let Some(days) = settings.max_days_back
        && limits::cutoff(as_of, days).is_some_and(|cutoff| order.order_date < cutoff)
    {
        return Scope::Frozen;
    }
    Scope::Active
}

fn is_excluded(order: &Order, settings: &Settings, warehouses: &WarehouseIndex) -> bool {
    let by_status = match order.status {
        OrderStatus::Quote => true,
        OrderStatus::OnHold => !settings.include_on_hold,
        _ => false,
    };
    let by_payment = match order.payment_status {
        PaymentStatus::Authorized => !settings.include_authorized,
        PaymentStatus::Unpaid | PaymentStatus::PartiallyPaid => !settings.include_unpaid,
        PaymentStatus::Paid => false,
    };
    let by_warehouse = settings.warehouse_based
        && match order
            .ship_from
            .as_deref()
            .and_then(|id| warehouses.kind(id))
        {
            None => true,
            Some(kind) => matches!(
                kind,
                WarehouseKind::Fba | WarehouseKind::Interim | WarehouseKind::Untested
            ),
        };
    by_status || by_payment || by_warehouse
}
