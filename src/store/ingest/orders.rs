//! Order events (a new or replaced order) and the refresh of orders'
//! totals from their stored lines.

use rustc_hash::{FxHashMap, FxHashSet};

use super::stock::require_warehouse;
use super::{Effect, IngestBackend, OrderLines};
use crate::engine::LineCounts;
use crate::engine::snapshot::Order;
use crate::recalc::OrderChange;
use crate::store::{IngestOptions, StoreError};

/// The SKUs of an order's lines; refuses an unknown order.
pub(super) async fn require_order<B: IngestBackend>(
    db: &mut B,
    order_id: &str,
) -> Result<Vec<String>, StoreError> {
    db.order_skus(order_id)
        .await?
        .ok_or_else(|| StoreError::Refused(format!("unknown order \"{order_id}\"")))
}

pub(super) async fn upsert_order<B: IngestBackend>(
    db: &mut B,
    order: &Order,
    options: IngestOptions,
) -> Result<Effect, StoreError> {
    if let Some(ship_from) = &order.ship_from {
        require_warehouse(db, ship_from, "order.ship_from").await?;
    }
    let line_ids: Vec<String> = order.lines.iter().map(|l| l.id.clone()).collect();
    let stored = db.stored_lines(&line_ids).await?;
    for line in &order.lines {
        if let Some(owner) = stored.get(&line.id)
            && owner.order_id != order.id
        {
            return Err(StoreError::Refused(format!(
                "line \"{}\" belongs to order \"{}\" already",
                line.id, owner.order_id
            )));
        }
    }
    let old_skus = db.order_skus(&order.id).await?;
    let existed = old_skus.is_some();
    if existed {
        db.replace_lines(order).await?;
        db.update_order_header(order).await?;
    } else {
        db.insert_order(order).await?;
    }
    db.set_customer(order).await?;
    let mut skus = old_skus.unwrap_or_default();
    if existed || !options.defer_new_orders {
        skus.extend(order.lines.iter().map(|l| l.sku.clone()));
    }
    Ok(Effect {
        skus,
        orders: vec![order.id.clone()],
        ..Effect::default()
    })
}

/// Recomputes the totals of orders whose lines an event replaced, moved or
/// overrode, from their stored lines. `orders` are `(order id, cause)`.
pub(in crate::store) async fn refresh_orders<B: IngestBackend>(
    db: &mut B,
    orders: &[(String, String)],
    at: &str,
) -> Result<Vec<OrderChange>, StoreError> {
    let causes = last_causes(orders);
    if causes.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = causes.iter().map(|(id, _)| (*id).to_owned()).collect();
    let stored = db.orders_with_lines(&ids).await?;
    let changes = order_changes(&causes, stored);
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    db.write_order_changes(&changes, at).await?;
    Ok(changes)
}

/// An order refreshed twice in a batch changes once, for its last cause,
/// in the place of its last refresh.
fn last_causes(orders: &[(String, String)]) -> Vec<(&str, &str)> {
    let mut seen = FxHashSet::default();
    let mut last: Vec<(&str, &str)> = orders
        .iter()
        .rev()
        .filter(|(order_id, _)| seen.insert(order_id.as_str()))
        .map(|(order_id, cause)| (order_id.as_str(), cause.as_str()))
        .collect();
    last.reverse();
    last
}

/// The orders among `causes` whose stored totals differ from their lines',
/// in the order of `causes`; orders not stored are passed over.
fn order_changes(causes: &[(&str, &str)], stored: Vec<OrderLines>) -> Vec<OrderChange> {
    let mut stored: FxHashMap<String, OrderLines> = stored
        .into_iter()
        .map(|order| (order.order_id.clone(), order))
        .collect();
    let mut changes = Vec::new();
    for &(order_id, cause) in causes {
        let Some(order) = stored.remove(order_id) else {
            continue;
        };
        let (new_counts, new_backorder_qty) = line_totals(order.lines.iter().copied());
        if (new_counts, new_backorder_qty) != (order.counts, order.backorder_qty) {
            changes.push(OrderChange {
                order_id: order.order_id,
                old_status: order.counts.status(),
                new_status: new_counts.status(),
                old_backorder_qty: order.backorder_qty,
                new_backorder_qty,
                old_counts: order.counts,
                new_counts,
                cause: cause.to_owned(),
            });
        }
    }
    changes
}

/// The counts and backorder qty of an order with these `(qty,
/// backorder_qty)` lines.
pub(in crate::store) fn line_totals(
    lines: impl IntoIterator<Item = (i64, i64)>,
) -> (LineCounts, i64) {
    let mut counts = LineCounts::default();
    let mut backorder_qty = 0;
    for (qty, line_backorder_qty) in lines {
        counts.add(qty, line_backorder_qty);
        // Bounded terms cannot reach i64's limit before millions of lines;
        // saturate rather than wrap all the same.
        backorder_qty = i64::saturating_add(backorder_qty, line_backorder_qty);
    }
    (counts, backorder_qty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::BackorderStatus;

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn an_order_refreshed_twice_keeps_its_last_cause_and_place() {
        let orders = owned(&[("A", "e1"), ("B", "e2"), ("A", "e3"), ("C", "e4")]);
        assert_eq!(
            last_causes(&orders),
            vec![("B", "e2"), ("A", "e3"), ("C", "e4")]
        );
    }

    #[test]
    fn only_orders_whose_totals_moved_change() {
        let (counts, backorder_qty) = line_totals([(5, 0), (3, 0)]);
        let stored = vec![
            OrderLines {
                order_id: "same".into(),
                backorder_qty,
                counts,
                lines: vec![(5, 0), (3, 0)],
            },
            OrderLines {
                order_id: "moved".into(),
                backorder_qty,
                counts,
                lines: vec![(5, 5), (3, 1), (0, 2)],
            },
        ];
        let changes = order_changes(&[("same", "e1"), ("gone", "e1"), ("moved", "e2")], stored);
        assert_eq!(changes.len(), 1);
        let change = &changes[0];
        assert_eq!(change.order_id, "moved");
        assert_eq!(change.cause, "e2");
        assert_eq!(
            (change.old_status, change.new_status),
            (BackorderStatus::None, BackorderStatus::Partial)
        );
        assert_eq!((change.old_backorder_qty, change.new_backorder_qty), (0, 8));
        assert_eq!(
            change.new_counts,
            LineCounts {
                open: 2,
                backordered: 2,
                whole: 1
            }
        );
    }
}
