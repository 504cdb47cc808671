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
use crate::feed::{self, FeedSource, SkuFigures};

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

/// An order's totals over some of its lines: counts and backorder sum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTotals {
    pub order_id: String,
    pub counts: LineCounts,
    pub backorder_qty: i64,
    /// The order's stored counts and total once this batch is written.
    pub stored_counts: LineCounts,
    pub stored_qty: i64,
    /// The cause of the order's first line in the group.
    pub cause: String,
}

/// How [`changes_with`] looks at orders' stored totals.
#[derive(Debug, Clone, Copy, Default)]
pub struct Compare {
    /// The group holds every line of each of its orders (an audit, which
    /// loads every SKU): stored totals that differ from the lines' are
    /// drift, whatever they say. Without it an order counts as whole when
    /// the group holds as many lines with qty > 0 as its stored count.
    pub whole_orders: bool,
    /// Fill [`Changes::totals`], for a run that sums orders over batches.
    pub totals: bool,
}

fn line_totals<'a>(lines: impl Iterator<Item = (i64, i64)> + 'a) -> (LineCounts, i64) {
    let mut counts = LineCounts::default();
    let mut sum = 0i64;
    for (qty, backorder_qty) in lines {
        counts.add(qty, backorder_qty);
        sum = sum.saturating_add(backorder_qty);
    }
    (counts, sum)
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub lines: Vec<LineChange>,
    pub orders: Vec<OrderChange>,
    /// Lines looked at, changed or not.
    pub lines_seen: usize,
    /// Orders looked at.
    pub orders_seen: usize,
    /// With [`Compare::totals`]: each order's totals over the group's
    /// lines, recalculated values.
    pub totals: Vec<OrderTotals>,
    /// Orders whose stored totals did not match their stored lines (drift:
    /// a hand edit, a lost write), `(order id, cause)`. Their new totals in
    /// `orders` are their lines' own, not the stored ones moved; a backend
    /// that moves totals by the lines' deltas must set these instead.
    pub drifted: Vec<(String, String)>,
    /// Each SKU of the group's availability feed entry once these changes
    /// are written, with the SKU's cause: what `store::figures` compares
    /// with the entry it last emitted, and records for the feed's reads.
    pub feed: Vec<(SkuFigures, String)>,
    /// How long computing `feed` took: the feed's share of a batch's cost
    /// is measured (`backorderd_availability_recording_seconds`).
    pub feed_time: std::time::Duration,
}

/// Runs the engine on the group and returns only what differs from the
/// stored values, lines in the group's order. An order changes when one of
/// its lines does, or when it is whole in the group (see [`Compare`]) and
/// its stored totals differ from its stored lines' (drift is repaired).
pub fn changes(group: GroupState, as_of: DateTime<Utc>) -> Changes {
    changes_with(group, as_of, Compare::default())
}

/// What the store holds beside an order's lines in a group: each line's
/// stored ETA, and the order's stored counts and total.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredValues {
    pub etas: Vec<Option<NaiveDate>>,
    pub counts: LineCounts,
    pub backorder_qty: i64,
}

/// [`changes`], comparing orders as `compare` says.
pub fn changes_with(group: GroupState, as_of: DateTime<Utc>, compare: Compare) -> Changes {
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
        stored.push(StoredValues {
            etas: o.etas,
            counts: o.counts,
            backorder_qty: o.backorder_qty,
        });
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
    changes_of(&snapshot, &stored, &causes, as_of, compare)
}

/// [`changes_with`] over a group held as the engine's input (`stored`
/// aligned with `snapshot.orders`), which it only borrows: a cached pool is
/// recalculated without being copied.
pub fn changes_of(
    snapshot: &Snapshot,
    stored: &[StoredValues],
    causes: &FxHashMap<String, String>,
    as_of: DateTime<Utc>,
    compare: Compare,
) -> Changes {
    let allocation = engine::allocate(snapshot, as_of);
    let cause_of = |sku: &str| causes.get(sku).cloned().unwrap_or_default();

    let feed_started = std::time::Instant::now();
    let feed = feed::figures(&FeedSource::from_allocation(snapshot, &allocation))
        .into_iter()
        .map(|figures| {
            let cause = cause_of(&figures.entry.sku);
            (figures, cause)
        })
        .collect();
    let mut out = Changes {
        feed,
        feed_time: feed_started.elapsed(),
        ..Changes::default()
    };
    for ((order, outcomes), stored) in snapshot
        .orders
        .iter()
        .zip(allocation.lines_by_order(&snapshot.orders))
        .zip(stored)
    {
        let StoredValues {
            etas,
            counts: old_counts,
            backorder_qty: old_qty,
        } = stored;
        let (old_counts, old_qty) = (*old_counts, *old_qty);
        out.lines_seen += order.lines.len();
        out.orders_seen += 1;
        let mut counts = old_counts;
        let mut qty = old_qty;
        let mut order_cause = None;
        for ((line, outcome), &old_eta) in order.lines.iter().zip(outcomes).zip(etas) {
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
        // Stored totals are kept by deltas; a line edited behind the
        // daemon's back leaves them off. When the group holds the whole
        // order, its lines say what they must be.
        let stored_lines = line_totals(order.lines.iter().map(|l| (l.qty, l.backorder_qty)));
        let whole = compare.whole_orders || stored_lines.0.open == old_counts.open;
        let drift = whole && stored_lines != (old_counts, old_qty);
        let mut new_lines = None;
        if drift || compare.totals {
            let lines_now = line_totals(
                order
                    .lines
                    .iter()
                    .zip(outcomes)
                    .map(|(l, o)| (l.qty, o.backorder_qty)),
            );
            new_lines = Some(lines_now);
            if drift {
                (counts, qty) = lines_now;
                let first_sku = order.lines.first().map_or("", |l| l.sku.as_str());
                let cause = order_cause.get_or_insert_with(|| cause_of(first_sku));
                out.drifted.push((order.id.clone(), cause.clone()));
            }
        }
        if compare.totals
            && let Some((line_counts, line_qty)) = new_lines
        {
            out.totals.push(OrderTotals {
                order_id: order.id.clone(),
                counts: line_counts,
                backorder_qty: line_qty,
                stored_counts: counts,
                stored_qty: qty,
                cause: cause_of(order.lines.first().map_or("", |l| l.sku.as_str())),
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
            customer: None,
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
        let mut out = changes(group(4, vec![a]), Utc::now());
        // The group's feed entry is always there, for `store::figures`.
        let feed = std::mem::take(&mut out.feed);
        std::mem::take(&mut out.feed_time);
        assert_eq!(
            out,
            Changes {
                lines_seen: 1,
                orders_seen: 1,
                ..Changes::default()
            }
        );
        assert_eq!(feed.len(), 1);
        assert_eq!(
            (feed[0].0.entry.sku.as_str(), feed[0].0.entry.on_hand),
            ("TEA", 4)
        );
    }

    #[test]
    fn stored_totals_off_their_lines_are_repaired_from_the_lines() {
        // A's line was edited behind the daemon's back (30 -> 0): its totals
        // still say 30. Restoring the line must leave them at 30, not 60.
        let mut a = stored(order("A", 1, &[("A1", "TEA", 40, 30)]), vec![]);
        a.order.lines[0].backorder_qty = 0;
        let out = changes(group(10, vec![a]), Utc::now());
        assert_eq!(out.lines.len(), 1);
        assert!(out.orders.is_empty(), "{:?}", out.orders);
        assert_eq!(out.drifted, vec![("A".to_owned(), "e1".to_owned())]);

        // B's totals were edited, its line is right: the order changes alone.
        let mut b = stored(order("B", 1, &[("B1", "TEA", 40, 30)]), vec![]);
        b.backorder_qty = 7;
        b.counts.backordered = 0;
        let out = changes(group(10, vec![b]), Utc::now());
        assert!(out.lines.is_empty());
        assert_eq!(out.orders.len(), 1);
        assert_eq!(out.orders[0].old_backorder_qty, 7);
        assert_eq!(out.orders[0].new_backorder_qty, 30);
        assert_eq!(out.orders[0].old_status, BackorderStatus::None);
        assert_eq!(out.orders[0].new_status, BackorderStatus::Partial);
    }

    #[test]
    fn an_order_only_partly_in_the_group_is_moved_not_reset() {
        // The other line (outside the group) is backordered 3: the stored
        // totals include it, the group's lines cannot say them.
        let a = stored(order("A", 1, &[("A1", "TEA", 5, 0)]), vec![(3, 3)]);
        let out = changes(group(0, vec![a]), Utc::now());
        assert!(out.drifted.is_empty());
        assert_eq!(out.orders[0].new_backorder_qty, 8);
    }

    #[test]
    fn whole_orders_compare_every_count() {
        // The stored open count is off: only an audit, which holds every
        // line of the order, can tell.
        let mut a = stored(order("A", 1, &[("A1", "TEA", 4, 0)]), vec![]);
        a.counts.open = 2;
        let compare = Compare {
            whole_orders: true,
            totals: true,
        };
        let out = changes_with(group(4, vec![a.clone()]), Utc::now(), compare);
        assert_eq!(out.orders.len(), 1);
        assert_eq!(out.orders[0].new_counts.open, 1);
        assert_eq!(out.totals.len(), 1);
        assert!(changes(group(4, vec![a]), Utc::now()).orders.is_empty());
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
