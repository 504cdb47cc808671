//! What the feed and the purchasing report are computed from: the stock
//! side of a book (products, inventory, purchase orders) and, in place of
//! its lines, per SKU and ship-from warehouse tallies of the lines'
//! backorder quantities. A snapshot with the engine's result gives them
//! ([`FeedSource::from_allocation`]); a store gives them from its stored
//! values with a few aggregate reads, without loading every line.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;

use crate::engine::snapshot::{
    InventoryRow, Product, PurchaseOrder, Settings, Snapshot, Warehouse,
};
use crate::engine::{Allocation, LineOutcome, OrderOutcome, Scope};

/// The lines of one SKU whose orders ship from one warehouse (or from
/// none), as far as the feed needs them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineTally {
    /// Units given to active lines (`qty - backorder_qty`), replacement
    /// cover included.
    pub allocated: i64,
    /// Units backordered on active lines.
    pub backordered: i64,
    /// Units held by frozen lines (`qty - clamp(backorder_qty, 0, qty)`).
    pub frozen_held: i64,
    /// Active orders with a backordered line of the SKU.
    pub waiting_orders: i64,
    /// The oldest order date among those.
    pub oldest_waiting: Option<DateTime<Utc>>,
}

impl LineTally {
    /// Adds another tally of the same lines' group (distinct orders).
    pub fn merge(&mut self, other: &LineTally) {
        self.allocated += other.allocated;
        self.backordered += other.backordered;
        self.frozen_held += other.frozen_held;
        self.waiting_orders += other.waiting_orders;
        self.oldest_waiting = match (self.oldest_waiting, other.oldest_waiting) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// `(sku, ship-from warehouse)`.
pub type TallyKey = (String, Option<String>);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedSource {
    pub settings: Settings,
    pub warehouses: Vec<Warehouse>,
    pub products: Vec<Product>,
    pub inventory: Vec<InventoryRow>,
    pub purchase_orders: Vec<PurchaseOrder>,
    pub lines: BTreeMap<TallyKey, LineTally>,
}

impl FeedSource {
    /// From a snapshot and the engine's result for it.
    pub fn from_allocation(snapshot: &Snapshot, allocation: &Allocation) -> FeedSource {
        // Tallied under borrowed keys: a hot SKU's recalculation computes
        // its entry from every one of its lines, without a copy per line.
        let mut borrowed: FxHashMap<(&str, Option<&str>), LineTally> = FxHashMap::default();
        for ((order, outcome), outcomes) in snapshot
            .orders
            .iter()
            .zip(&allocation.orders)
            .zip(allocation.lines_by_order(&snapshot.orders))
        {
            tally_order(&mut borrowed, order, outcome, outcomes);
        }
        let lines = borrowed
            .into_iter()
            .map(|((sku, ship_from), tally)| {
                ((sku.to_owned(), ship_from.map(str::to_owned)), tally)
            })
            .collect();
        FeedSource {
            settings: snapshot.settings,
            warehouses: snapshot.warehouses.clone(),
            products: snapshot.products.clone(),
            inventory: snapshot.inventory.clone(),
            purchase_orders: snapshot.purchase_orders.clone(),
            lines,
        }
    }

    /// From a snapshot whose lines carry stored backorder quantities (an
    /// export, a store's pool state): each order's scope as of `as_of`,
    /// each line's stored value as its result. After a recalculation this
    /// is [`FeedSource::from_allocation`] of the engine's answer.
    pub fn from_stored(snapshot: &Snapshot, as_of: DateTime<Utc>) -> FeedSource {
        FeedSource::from_allocation(snapshot, &stored_allocation(snapshot, as_of))
    }
}

/// The stored values of a snapshot as if they were a result.
pub fn stored_allocation(snapshot: &Snapshot, as_of: DateTime<Utc>) -> Allocation {
    let orders = snapshot
        .orders
        .iter()
        .map(|o| OrderOutcome {
            scope: crate::engine::scope_of(o, &snapshot.settings, &snapshot.warehouses, as_of),
            status: crate::engine::BackorderStatus::of_lines(
                o.lines.iter().map(|l| (l.qty, l.backorder_qty)),
            ),
            backorder_qty: o.lines.iter().map(|l| l.backorder_qty).sum(),
        })
        .collect();
    let lines = snapshot
        .orders
        .iter()
        .flat_map(|o| &o.lines)
        .map(|l| LineOutcome {
            backorder_qty: l.backorder_qty,
            eta: None,
        })
        .collect();
    Allocation { lines, orders }
}

fn tally_order<'a>(
    lines: &mut FxHashMap<(&'a str, Option<&'a str>), LineTally>,
    order: &'a crate::engine::snapshot::Order,
    outcome: &OrderOutcome,
    outcomes: &[LineOutcome],
) {
    if !matches!(outcome.scope, Scope::Active | Scope::Frozen) {
        // Its SKUs are still known to the feed, with nothing to count.
        for line in &order.lines {
            lines.entry((line.sku.as_str(), None)).or_default();
        }
        return;
    }
    // An order counts once per SKU however many of its lines wait.
    let mut waiting_skus: Vec<&str> = Vec::new();
    for (line, out) in order.lines.iter().zip(outcomes) {
        let tally = lines
            .entry((line.sku.as_str(), order.ship_from.as_deref()))
            .or_default();
        if outcome.scope == Scope::Frozen {
            tally.frozen_held += line.qty - line.backorder_qty.clamp(0, line.qty);
            continue;
        }
        tally.allocated += line.qty - out.backorder_qty;
        tally.backordered += out.backorder_qty;
        if out.backorder_qty > 0 && !waiting_skus.contains(&line.sku.as_str()) {
            waiting_skus.push(&line.sku);
            tally.waiting_orders += 1;
            tally.oldest_waiting = Some(match tally.oldest_waiting {
                Some(at) => at.min(order.order_date),
                None => order.order_date,
            });
        }
    }
}
