//! Sections 3, 5, 6 and 8: pool sizes, allocation within each pool,
//! replacement-SKU cover and order statuses. ETAs are in `eta.rs`.
//!
//! Everything is index-based: lines are numbered in snapshot order (order by
//! order, flattened), pools are interned, and each pool gets a queue of its
//! active lines in priority order. The work is linear in the lines plus one
//! sort of the active orders.

use chrono::{DateTime, NaiveDate, Utc};
use rustc_hash::FxHashMap;

use super::eta;
use super::outcome::{Allocation, BackorderStatus, LineOutcome, OrderOutcome, Scope};
use super::pools::{PoolIndex, WarehouseIndex};
use super::priority::{Ranked, rank};
use super::scope::classify;
use super::snapshot::{Order, Snapshot};

const NO_POOL: u32 = u32::MAX;

/// One active line waiting in its pool's queue.
#[derive(Debug, Clone, Copy)]
pub(super) struct QueueEntry {
    /// Index of the line in snapshot order.
    pub line: u32,
    /// Position of its order in priority order.
    pub rank: u32,
    pub qty: i64,
}

/// Every pool's active lines, each pool's run in priority order.
pub(super) struct PoolQueues {
    starts: Vec<u32>,
    entries: Vec<QueueEntry>,
}

impl PoolQueues {
    fn build(ranked: &[Ranked], orders: &[Order], first_line: &[u32], line_pool: &[u32], pools: usize) -> Self {
        let mut starts = vec![0u32; pools + 1];
        for r in ranked {
            let o = r.order as usize;
            for g in first_line[o]..first_line[o + 1] {
                starts[line_pool[g as usize] as usize + 1] += 1;
            }
        }
        for p in 0..pools {
            starts[p + 1] += starts[p];
        }
        let mut next = starts.clone();
        let placeholder = QueueEntry { line: 0, rank: 0, qty: 0 };
        let mut entries = vec![placeholder; starts[pools] as usize];
        for (rank, r) in ranked.iter().enumerate() {
            let o = r.order as usize;
            for (k, line) in orders[o].lines.iter().enumerate() {
                let g = first_line[o] + k as u32;
                let slot = &mut next[line_pool[g as usize] as usize];
                entries[*slot as usize] = QueueEntry { line: g, rank: rank as u32, qty: line.qty };
                *slot += 1;
            }
        }
        PoolQueues { starts, entries }
    }

    pub fn of(&self, pool: u32) -> &[QueueEntry] {
        let p = pool as usize;
        &self.entries[self.starts[p] as usize..self.starts[p + 1] as usize]
    }

    fn pools(&self) -> u32 {
        (self.starts.len() - 1) as u32
    }
}

/// Runs sections 2 to 8 on a snapshot that passed [`super::validate`].
/// On input that did not, it does not panic but its answer is unspecified.
pub fn allocate(snapshot: &Snapshot, as_of: DateTime<Utc>) -> Allocation {
    let settings = &snapshot.settings;
    let orders = &snapshot.orders;
    let warehouses = WarehouseIndex::new(&snapshot.warehouses);
    let scopes: Vec<Scope> = orders
        .iter()
        .map(|o| classify(o, settings, &warehouses, as_of))
        .collect();
    let first_line = line_offsets(orders);
    let total_lines = first_line[orders.len()] as usize;

    let replacements: FxHashMap<&str, &str> = if settings.consider_replacement_sku {
        snapshot
            .products
            .iter()
            .filter_map(|p| Some((p.sku.as_str(), p.replacement_sku.as_deref()?)))
            .filter(|(sku, replacement)| sku != replacement)
            .collect()
    } else {
        FxHashMap::default()
    };

    let mut pools = PoolIndex::new(settings.warehouse_based, snapshot.inventory.len());
    let mut line_pool = vec![NO_POOL; total_lines];
    let mut replacement_pool = vec![NO_POOL; if replacements.is_empty() { 0 } else { total_lines }];
    for (o, order) in orders.iter().enumerate() {
        let scope = scopes[o];
        if !matches!(scope, Scope::Active | Scope::Frozen) {
            continue;
        }
        let ship_from = order.ship_from.as_deref().and_then(|w| warehouses.index(w));
        for (k, line) in order.lines.iter().enumerate() {
            let g = first_line[o] as usize + k;
            line_pool[g] = pools.intern(&line.sku, ship_from);
            if scope == Scope::Active && !replacements.is_empty() {
                if let Some(replacement) = replacements.get(line.sku.as_str()) {
                    replacement_pool[g] = pools.intern(replacement, ship_from);
                }
            }
        }
    }

    let mut remaining = pool_sizes(snapshot, &scopes, &first_line, &line_pool, &pools, &warehouses);
    let ranked = rank(orders, (0..orders.len() as u32).filter(|&o| scopes[o as usize] == Scope::Active), settings);
    let queues = PoolQueues::build(&ranked, orders, &first_line, &line_pool, pools.len());

    let mut granted = vec![0i64; total_lines];
    for pool in 0..queues.pools() {
        let queue = queues.of(pool);
        let rem = &mut remaining[pool as usize];
        if settings.prioritize_fully_shippable {
            serve_fully_shippable_first(queue, &ranked, &mut granted, rem);
        } else {
            serve_in_order(queue, &mut granted, rem);
        }
    }
    if !replacements.is_empty() {
        draw_on_replacements(&ranked, orders, &first_line, &replacement_pool, &mut granted, &mut remaining);
    }
    let etas = eta::estimate(snapshot, &warehouses, &pools, &queues, &granted);

    assemble(orders, &scopes, &granted, &etas)
}

fn line_offsets(orders: &[Order]) -> Vec<u32> {
    let mut offsets = Vec::with_capacity(orders.len() + 1);
    let mut next = 0u32;
    offsets.push(next);
    for order in orders {
        next += order.lines.len() as u32;
        offsets.push(next);
    }
    offsets
}

/// Section 3: eligible on-hand, floored at 0, less what frozen lines hold.
fn pool_sizes(
    snapshot: &Snapshot,
    scopes: &[Scope],
    first_line: &[u32],
    line_pool: &[u32],
    pools: &PoolIndex,
    warehouses: &WarehouseIndex,
) -> Vec<i64> {
    let mut size = vec![0i64; pools.len()];
    for row in &snapshot.inventory {
        if !warehouses.is_eligible(&row.warehouse, &snapshot.settings) {
            continue;
        }
        if let Some(pool) = pools.get(&row.sku, warehouses.index(&row.warehouse)) {
            size[pool as usize] += row.on_hand;
        }
    }
    for s in &mut size {
        *s = (*s).max(0);
    }
    for (o, order) in snapshot.orders.iter().enumerate() {
        if scopes[o] != Scope::Frozen {
            continue;
        }
        for (k, line) in order.lines.iter().enumerate() {
            let held = line.qty - line.backorder_qty.clamp(0, line.qty.max(0));
            size[line_pool[first_line[o] as usize + k] as usize] -= held;
        }
    }
    for s in &mut size {
        *s = (*s).max(0);
    }
    size
}

/// Section 5, plain: each line in turn takes what it can.
fn serve_in_order(queue: &[QueueEntry], granted: &mut [i64], rem: &mut i64) {
    for e in queue {
        let take = e.qty.min(*rem);
        granted[e.line as usize] = take;
        *rem -= take;
    }
}

/// Section 5 with `prioritize_fully_shippable`: tier by tier, first every
/// order whose whole demand on this pool fits, then the rest line by line.
fn serve_fully_shippable_first(queue: &[QueueEntry], ranked: &[Ranked], granted: &mut [i64], rem: &mut i64) {
    let tier = |e: &QueueEntry| ranked[e.rank as usize].key.tier;
    for tier_run in queue.chunk_by(|a, b| tier(a) == tier(b)) {
        for order in tier_run.chunk_by(|a, b| a.rank == b.rank) {
            let demand: i64 = order.iter().map(|e| e.qty).sum();
            if demand <= *rem {
                for e in order {
                    granted[e.line as usize] = e.qty;
                }
                *rem -= demand;
            }
        }
        for order in tier_run.chunk_by(|a, b| a.rank == b.rank) {
            // An order served whole above has a positive grant; one that was
            // not has none yet (a zero-demand order gains nothing either way).
            if order.iter().any(|e| granted[e.line as usize] > 0) {
                continue;
            }
            serve_in_order(order, granted, rem);
        }
    }
}

/// Section 6: still-backordered active lines draw, in priority order, on the
/// leftover of their product's replacement pool. One hop only.
fn draw_on_replacements(
    ranked: &[Ranked],
    orders: &[Order],
    first_line: &[u32],
    replacement_pool: &[u32],
    granted: &mut [i64],
    remaining: &mut [i64],
) {
    for r in ranked {
        let o = r.order as usize;
        for (k, line) in orders[o].lines.iter().enumerate() {
            let g = first_line[o] as usize + k;
            let pool = replacement_pool[g];
            let missing = line.qty - granted[g];
            if pool == NO_POOL || missing <= 0 {
                continue;
            }
            let take = missing.min(remaining[pool as usize]);
            granted[g] += take;
            remaining[pool as usize] -= take;
        }
    }
}

fn assemble(orders: &[Order], scopes: &[Scope], granted: &[i64], etas: &[Option<NaiveDate>]) -> Allocation {
    let mut lines = Vec::with_capacity(granted.len());
    let mut order_outcomes = Vec::with_capacity(orders.len());
    for (order, &scope) in orders.iter().zip(scopes) {
        let start = lines.len();
        for line in &order.lines {
            let g = lines.len();
            lines.push(match scope {
                Scope::Closed => LineOutcome { backorder_qty: 0, eta: None },
                Scope::Excluded | Scope::Frozen => LineOutcome { backorder_qty: line.backorder_qty, eta: None },
                Scope::Active => LineOutcome { backorder_qty: line.qty - granted[g], eta: etas[g] },
            });
        }
        let outcomes = &lines[start..];
        let status = BackorderStatus::of_lines(order.lines.iter().zip(outcomes).map(|(l, out)| (l.qty, out.backorder_qty)));
        order_outcomes.push(OrderOutcome {
            scope,
            status,
            backorder_qty: outcomes.iter().map(|out| out.backorder_qty).sum(),
        });
    }
    Allocation { lines, orders: order_outcomes }
}
