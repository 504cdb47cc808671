//! The queue of a SKU's waiting lines: the active lines of each of its
//! pools in the engine's priority order, with what the engine, run now on
//! the stored state, leaves backordered and the ETA it gives. Pure, like
//! `explain`, over the same stored state ([`PoolState`]) and the same
//! ordering ([`crate::explain::priority_queues`]), so the product page and
//! an order's "why" can never disagree on who is served first.

use chrono::{DateTime, NaiveDate, Utc};

use crate::engine;
use crate::explain::{Places, PoolKey, pool_of, priority_queues};
use crate::store::PoolState;

/// One waiting line of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedLine {
    /// Its place among the pool's active lines: 1 is served first.
    pub position: usize,
    pub order_id: String,
    pub line_id: String,
    pub order_date: DateTime<Utc>,
    pub rush: bool,
    pub qty: i64,
    /// As stored (the last write-back, or a manual value).
    pub stored_backorder_qty: i64,
    /// What the engine backorders now.
    pub backorder_qty: i64,
    /// When the engine expects the line to be covered (`None`: no purchase
    /// order covers it).
    pub eta: Option<NaiveDate>,
}

/// One pool of the SKU and its waiting lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolQueue {
    pub pool: PoolKey,
    /// Every active line of the pool, waiting or served.
    pub active_lines: usize,
    /// Waiting lines before the page asked for, not listed.
    pub before: usize,
    /// The lines backordered (by the engine now, or as stored), in
    /// priority order: the page asked for, at most `limit` of them.
    pub waiting: Vec<QueuedLine>,
    /// Waiting lines after the page, not listed.
    pub more: usize,
}

/// The pools of `sku` in `pools` (its stored state with the replacement
/// closure, so the engine's answer is the recalculation's), each with a
/// page of its waiting lines in priority order (the `skip` first left
/// out, then at most `limit`), pools by warehouse. Only the lines listed
/// are copied out.
pub fn product_queue(
    sku: &str,
    pools: &PoolState,
    as_of: DateTime<Utc>,
    skip: usize,
    limit: usize,
) -> Vec<PoolQueue> {
    let snapshot: &crate::engine::snapshot::Snapshot = &pools.snapshot;
    let places = Places::new(snapshot, as_of);
    let mut keys: Vec<PoolKey> = snapshot
        .orders
        .iter()
        .filter(|o| o.lines.iter().any(|l| l.sku == sku))
        .map(|o| pool_of(&snapshot.settings, o, sku))
        .collect();
    keys.sort_by(|a, b| a.warehouse.cmp(&b.warehouse));
    keys.dedup();
    let queues = priority_queues(&places, keys.iter().cloned());
    let allocation = engine::allocate(snapshot, as_of);
    keys.into_iter()
        .map(|pool| {
            let queue = &queues[&pool];
            let mut waiting = Vec::new();
            let (mut before, mut more) = (0, 0);
            for (k, &(o, l)) in queue.iter().enumerate() {
                let order = &snapshot.orders[o];
                let line = &order.lines[l];
                let outcome = allocation.lines[places.first_line[o] + l];
                if outcome.backorder_qty <= 0 && line.backorder_qty <= 0 {
                    continue;
                }
                if before < skip {
                    before += 1;
                    continue;
                }
                if waiting.len() == limit {
                    more += 1;
                    continue;
                }
                waiting.push(QueuedLine {
                    position: k + 1,
                    order_id: order.id.clone(),
                    line_id: line.id.clone(),
                    order_date: order.order_date,
                    rush: order.rush,
                    qty: line.qty,
                    stored_backorder_qty: line.backorder_qty,
                    backorder_qty: outcome.backorder_qty,
                    eta: outcome.eta,
                });
            }
            PoolQueue {
                active_lines: queue.len(),
                pool,
                before,
                waiting,
                more,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::snapshot::{
        InventoryRow, Line, Order, OrderStatus, PaymentStatus, PurchaseOrder, Settings, Snapshot,
        Warehouse, WarehouseKind,
    };

    fn order(id: &str, day: u32, rush: bool, qty: i64, stored: i64) -> Order {
        Order {
            id: id.into(),
            order_date: format!("2026-11-{day:02}T00:00:00Z").parse().unwrap(),
            payment_date: None,
            payment_status: PaymentStatus::Paid,
            status: OrderStatus::InProcess,
            rush,
            picked: false,
            ship_from: None,
            customer: None,
            lines: vec![Line {
                id: format!("{id}-1"),
                sku: "TEA".into(),
                qty,
                backorder_qty: stored,
            }],
        }
    }

    fn pools(settings: Settings, orders: Vec<Order>) -> PoolState {
        PoolState {
            snapshot: std::sync::Arc::new(Snapshot {
                as_of: None,
                settings,
                warehouses: vec![Warehouse {
                    id: "A".into(),
                    kind: WarehouseKind::Normal,
                }],
                products: vec![],
                inventory: vec![InventoryRow {
                    sku: "TEA".into(),
                    warehouse: "A".into(),
                    on_hand: 4,
                }],
                purchase_orders: vec![PurchaseOrder {
                    id: "PO-1".into(),
                    sku: "TEA".into(),
                    warehouse: "A".into(),
                    qty_ordered: 3,
                    qty_received: 0,
                    expected_date: "2026-12-10".parse().ok(),
                }],
                orders,
            }),
            skus: vec!["TEA".into()],
            dirty_skus: vec![],
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn the_queue_follows_the_engines_priority_and_gives_its_etas() {
        // 4 on hand, 3 on order for Dec 10: A (3) is served, B (3) waits 2
        // covered by the PO, C (5) waits with no ETA.
        let orders = vec![
            order("A", 1, false, 3, 0),
            order("B", 2, false, 3, 2),
            order("C", 3, false, 5, 5),
        ];
        let plain = product_queue(
            "TEA",
            &pools(Settings::default(), orders.clone()),
            now(),
            0,
            10,
        );
        assert_eq!(plain.len(), 1);
        let q = &plain[0];
        assert_eq!(q.active_lines, 3);
        let ids: Vec<_> = q.waiting.iter().map(|w| w.line_id.as_str()).collect();
        assert_eq!(ids, ["B-1", "C-1"]);
        assert_eq!((q.waiting[0].position, q.waiting[0].backorder_qty), (2, 2));
        assert_eq!(q.waiting[0].eta, "2026-12-10".parse().ok());
        assert_eq!(q.waiting[1].eta, None);

        // Rush first: C jumps ahead, as the engine serves it.
        let mut orders = orders;
        orders[2].rush = true;
        let rush = Settings {
            prioritize_rush: true,
            ..Settings::default()
        };
        let state = pools(rush, orders);
        let q = &product_queue("TEA", &state, now(), 0, 1)[0];
        assert_eq!(q.waiting.len(), 1, "the limit");
        assert_eq!((q.before, q.more), (0, 2), "A and B wait behind");
        assert_eq!(
            (q.waiting[0].line_id.as_str(), q.waiting[0].position),
            ("C-1", 1)
        );
        assert_eq!(q.waiting[0].backorder_qty, 1);
        assert_eq!(q.waiting[0].stored_backorder_qty, 5, "as stored");

        // The second page of one line: A, with C before it and B after.
        let q = &product_queue("TEA", &state, now(), 1, 1)[0];
        assert_eq!((q.before, q.more), (1, 1));
        assert_eq!(
            (q.waiting[0].line_id.as_str(), q.waiting[0].position),
            ("A-1", 2)
        );
    }
}
