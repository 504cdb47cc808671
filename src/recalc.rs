//! One incremental recalculation, without IO: the stored state of a group
//! of SKUs in, the changes to write back out. Every backend loads a
//! [`GroupState`], calls [`changes`], and writes the [`Changes`] it gets.
//!
//! A group is closed under the replacement relation (when replacement is
//! on), so the engine run on just these SKUs gives exactly what a full run
//! gives for them (docs/architecture.md). An order's status needs all its
//! lines: the store keeps each order's [`LineCounts`], and a changed line
//! moves them, so lines outside the group are never read.

use chrono::{DateTime, NaiveDate, Utc};
use rustc_hash::FxHashMap;

use crate::engine::snapshot::{
    InventoryRow, Order, Product, PurchaseOrder, Settings, Snapshot, Warehouse,
};
use crate::engine::{self, BackorderStatus, LineCounts};

/// What the store holds for a group of SKUs.
#[derive(Debug, Clone, Default)]
pub struct GroupState {
    pub settings: Settings,
    pub warehouses: Vec<Warehouse>,
    pub products: Vec<Product>,
    pub inventory: Vec<InventoryRow>,
    pub purchase_orders: Vec<PurchaseOrder>,
    /// Every order with a line in the group, holding only those lines, in
    /// their stored position order. `backorder_qty` is the stored value.
    pub orders: Vec<StoredOrder>,
    /// Why each SKU of the group is recalculated (an event id, `import`...).
    pub causes: FxHashMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct StoredOrder {
    pub order: Order,
    /// The stored ETA of each line of `order.lines`, aligned.
    pub etas: Vec<Option<NaiveDate>>,
    /// The stored counts and total over all the order's lines.
    pub counts: LineCounts,
    pub backorder_qty: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineChange {
    pub line_id: String,
    pub order_id: String,
    /// The line's qty as read: with the old values, what a backend that
    /// writes beside other writers checks the line still holds.
    pub qty: i64,
    pub old_eta: Option<NaiveDate>,
    pub old_backorder_qty: i64,
    pub new_backorder_qty: i64,
    pub new_eta: Option<NaiveDate>,
    pub cause: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderChange {
    pub order_id: String,
    pub old_status: BackorderStatus,
    pub new_status: BackorderStatus,
    pub old_backorder_qty: i64,
    pub new_backorder_qty: i64,
    pub old_counts: LineCounts,
    pub new_counts: LineCounts,
    pub cause: String,
}

impl OrderChange {
    /// The outbox notification this change calls for, if any.
    pub fn notification(&self) -> Option<&'static str> {
        let was = self.old_status != BackorderStatus::None;
        let is = self.new_status != BackorderStatus::None;
        match (was, is) {
            (false, true) => Some("backordered"),
            (true, false) => Some("no_longer_backordered"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub lines: Vec<LineChange>,
    pub orders: Vec<OrderChange>,
    /// Lines looked at, changed or not.
    pub lines_seen: usize,
}

/// Runs the engine on the group and returns only what differs from the
/// stored values, lines in the group's order. Only an order with a changed
/// line can change.
pub fn changes(group: GroupState, as_of: DateTime<Utc>) -> Changes {
    let GroupState {
        settings,
        warehouses,
        products,
        inventory,
        purchase_orders,
        orders,
        causes,
    } = group;
    let mut stored = Vec::with_capacity(orders.len());
    let mut snapshot_orders = Vec::with_capacity(orders.len());
    for o in orders {
        stored.push((o.etas, o.counts, o.backorder_qty));
        snapshot_orders.push(o.order);
    }
    let snapshot = Snapshot {
        as_of: Some(as_of),
        settings,
        warehouses,
        products,
        inventory,
        purchase_orders,
        orders: snapshot_orders,
    };
    let allocation = engine::allocate(&snapshot, as_of);
    let cause_of = |sku: &str| causes.get(sku).cloned().unwrap_or_default();

    let mut out = Changes::default();
    for ((order, outcomes), (etas, old_counts, old_qty)) in snapshot
        .orders
        .iter()
        .zip(allocation.lines_by_order(&snapshot.orders))
        .zip(stored)
    {
        out.lines_seen += order.lines.len();
        let mut counts = old_counts;
        let mut qty = old_qty;
        let mut order_cause = None;
        for ((line, outcome), old_eta) in order.lines.iter().zip(outcomes).zip(etas) {
            if line.backorder_qty == outcome.backorder_qty && old_eta == outcome.eta {
                continue;
            }
            counts.remove(line.qty, line.backorder_qty);
            counts.add(line.qty, outcome.backorder_qty);
            // Bounded quantities: the difference fits; the total saturates
            // rather than wraps (it would take millions of lines at the bound).
            qty = qty.saturating_add(outcome.backorder_qty - line.backorder_qty);
            let cause = cause_of(&line.sku);
            order_cause.get_or_insert_with(|| cause.clone());
            out.lines.push(LineChange {
                line_id: line.id.clone(),
                order_id: order.id.clone(),
                qty: line.qty,
                old_eta,
                old_backorder_qty: line.backorder_qty,
                new_backorder_qty: outcome.backorder_qty,
                new_eta: outcome.eta,
                cause,
            });
        }
        if let Some(cause) = order_cause
            && (counts, qty) != (old_counts, old_qty)
        {
            out.orders.push(OrderChange {
                order_id: order.id.clone(),
                old_status: old_counts.status(),
                new_status: counts.status(),
                old_backorder_qty: old_qty,
                new_backorder_qty: qty,
                old_counts,
                new_counts: counts,
                cause,
            });
        }
    }
    out
}

/// The SKUs tied to `skus` by replacement (both ways, transitively), `skus`
/// included: the smallest set whose recalculation is self-contained.
/// `edges` are `(sku, replacement_sku)` pairs.
pub fn replacement_closure<'a>(
    skus: impl IntoIterator<Item = &'a str>,
    edges: &'a [(String, String)],
) -> Vec<String> {
    let mut neighbours: FxHashMap<&str, Vec<&str>> = FxHashMap::default();
    for (a, b) in edges {
        if a != b {
            neighbours.entry(a).or_default().push(b);
            neighbours.entry(b).or_default().push(a);
        }
    }
    let mut seen: rustc_hash::FxHashSet<&str> = Default::default();
    let mut stack: Vec<&str> = skus.into_iter().collect();
    while let Some(sku) = stack.pop() {
        if seen.insert(sku) {
            stack.extend(neighbours.get(sku).into_iter().flatten().copied());
        }
    }
    let mut out: Vec<String> = seen.into_iter().map(str::to_owned).collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::snapshot::{Line, OrderStatus, PaymentStatus, WarehouseKind};

    fn order(id: &str, day: u32, lines: &[(&str, &str, i64, i64)]) -> Order {
        Order {
            id: id.into(),
            order_date: format!("2026-11-{day:02}T00:00:00Z").parse().unwrap(),
            payment_date: None,
            payment_status: PaymentStatus::Paid,
            status: OrderStatus::InProcess,
            rush: false,
            picked: false,
            ship_from: None,
            lines: lines
                .iter()
                .map(|&(id, sku, qty, backorder_qty)| Line {
                    id: id.into(),
                    sku: sku.into(),
                    qty,
                    backorder_qty,
                })
                .collect(),
        }
    }

    /// The order as stored, with `other_lines` `(qty, backorder_qty)` outside the group.
    fn stored(order: Order, other_lines: Vec<(i64, i64)>) -> StoredOrder {
        let all: Vec<(i64, i64)> = order
            .lines
            .iter()
            .map(|l| (l.qty, l.backorder_qty))
            .chain(other_lines)
            .collect();
        let mut counts = LineCounts::default();
        for &(qty, backorder_qty) in &all {
            counts.add(qty, backorder_qty);
        }
        StoredOrder {
            etas: vec![None; order.lines.len()],
            order,
            counts,
            backorder_qty: all.iter().map(|l| l.1).sum(),
        }
    }

    fn group(on_hand: i64, orders: Vec<StoredOrder>) -> GroupState {
        GroupState {
            warehouses: vec![Warehouse {
                id: "MAIN".into(),
                kind: WarehouseKind::Normal,
            }],
            inventory: vec![InventoryRow {
                sku: "TEA".into(),
                warehouse: "MAIN".into(),
                on_hand,
            }],
            orders,
            causes: [("TEA".to_owned(), "e1".to_owned())].into_iter().collect(),
            ..GroupState::default()
        }
    }

    #[test]
    fn only_what_differs_from_the_stored_values_is_returned() {
        // 10 on hand: A (older, 40) gets 10, B gets nothing. A is stored right.
        let a = stored(order("A", 1, &[("A1", "TEA", 40, 30)]), vec![]);
        let b = stored(order("B", 2, &[("B1", "TEA", 10, 0)]), vec![]);
        let out = changes(group(10, vec![a, b]), Utc::now());
        assert_eq!(out.lines_seen, 2);
        assert_eq!(
            out.lines,
            vec![LineChange {
                line_id: "B1".into(),
                order_id: "B".into(),
                qty: 10,
                old_eta: None,
                old_backorder_qty: 0,
                new_backorder_qty: 10,
                new_eta: None,
                cause: "e1".into(),
            }]
        );
        assert_eq!(out.orders.len(), 1);
        assert_eq!(out.orders[0].new_status, BackorderStatus::Full);
        assert_eq!(out.orders[0].notification(), Some("backordered"));
    }

    #[test]
    fn lines_outside_the_group_count_for_the_order_status() {
        // The order's other line (another SKU) is fully served: partial, not full.
        let a = stored(order("A", 1, &[("A1", "TEA", 5, 0)]), vec![(3, 0)]);
        let out = changes(group(0, vec![a]), Utc::now());
        assert_eq!(out.orders[0].new_status, BackorderStatus::Partial);
        assert_eq!(out.orders[0].new_backorder_qty, 5);
    }

    #[test]
    fn nothing_changes_when_the_stored_state_is_current() {
        let a = stored(order("A", 1, &[("A1", "TEA", 4, 0)]), vec![]);
        let out = changes(group(4, vec![a]), Utc::now());
        assert_eq!(
            out,
            Changes {
                lines_seen: 1,
                ..Changes::default()
            }
        );
    }

    #[test]
    fn the_closure_follows_replacements_both_ways() {
        let edges = vec![
            ("A".to_owned(), "R".to_owned()),
            ("B".to_owned(), "R".to_owned()),
            ("C".to_owned(), "C".to_owned()),
            ("D".to_owned(), "E".to_owned()),
        ];
        assert_eq!(replacement_closure(["A"], &edges), ["A", "B", "R"]);
        assert_eq!(replacement_closure(["C"], &edges), ["C"]);
        assert_eq!(replacement_closure(["E", "X"], &edges), ["D", "E", "X"]);
    }
}
