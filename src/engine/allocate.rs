//! Sections 3, 5, 6 and 8: pool sizes, allocation within each pool,
//! replacement-SKU cover and order statuses. ETAs are in `eta.rs`.
//!
//! Everything is index-based: lines are numbered in snapshot order (order by
//! order, flattened), pools are interned, and each pool gets a queue of its
//! active lines in priority order. Each line's outcome starts as "all of it
//! backordered" and allocation subtracts from it in place. The work is
//! linear in the lines plus one sort of the active orders.

use chrono::{DateTime, Utc};
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
    /// Reads only compact per-line arrays, never the snapshot's orders: in
    /// priority order those reads would be random over the whole book.
    fn build(
        ranked: &[Ranked],
        first_line: &[u32],
        line_pool: &[u32],
        lines: &[LineOutcome],
        mut counts: Vec<u32>,
    ) -> Self {
        let mut starts = Vec::with_capacity(counts.len() + 1);
        let mut total = 0u32;
        starts.push(0);
        for count in &mut counts {
            let start = total;
            total += *count;
            starts.push(total);
            // `counts` becomes each pool's next free slot.
            *count = start;
        }
        let mut next = counts;
        let mut entries = vec![
            QueueEntry {
                line: 0,
                rank: 0,
                qty: 0
            };
            total as usize
        ];
        for (rank, r) in ranked.iter().enumerate() {
            let o = r.order as usize;
            for g in first_line[o]..first_line[o + 1] {
                let slot = &mut next[line_pool[g as usize] as usize];
                // Before allocation an active line's backorder is its qty.
                let qty = lines[g as usize].backorder_qty;
                entries[*slot as usize] = QueueEntry {
                    line: g,
                    rank: rank as u32,
                    qty,
                };
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
/// How many orders ahead the line loop asks for its memory.
const PREFETCH_ORDERS: usize = 16;

/// Asks the CPU for the lines of a later order, and for the SKU bytes of
/// the lines of a nearer one (whose lines were asked for earlier). Each
/// line and each SKU string is its own heap allocation, scattered over a
/// large book: read one after the other, every line waits for a cache miss
/// (most of the engine's time); asked for ahead, the misses overlap.
fn prefetch_lines_ahead(orders: &[Order], at: usize) {
    if let Some(far) = orders.get(at + PREFETCH_ORDERS) {
        for line in 0..far.lines.len() {
            prefetch(far.lines.as_ptr().wrapping_add(line).cast());
        }
    }
    if let Some(near) = orders.get(at + PREFETCH_ORDERS / 2) {
        for line in &near.lines {
            prefetch(line.sku.as_ptr());
        }
    }
}

#[inline(always)]
fn prefetch(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults and changes no state
    // a program can observe, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

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

    let mut pools = PoolIndex::new(settings.warehouse_based, snapshot.inventory.len().max(64));
    let mut lines = Vec::with_capacity(total_lines);
    // Each line's qty, compact: the statuses at the end read it from here
    // rather than from the snapshot's scattered lines again.
    let mut line_qty = Vec::with_capacity(total_lines);
    let mut line_pool = vec![NO_POOL; total_lines];
    let mut replacement_pool = vec![
        NO_POOL;
        if replacements.is_empty() {
            0
        } else {
            total_lines
        }
    ];
    let mut queue_lengths: Vec<u32> = Vec::new();
    for (o, (order, &scope)) in orders.iter().zip(&scopes).enumerate() {
        prefetch_lines_ahead(orders, o);
        let ship_from = order.ship_from.as_deref().and_then(|w| warehouses.index(w));
        for line in &order.lines {
            let g = lines.len();
            let backorder_qty = match scope {
                Scope::Closed => 0,
                Scope::Excluded | Scope::Frozen => line.backorder_qty,
                Scope::Active => line.qty,
            };
            lines.push(LineOutcome {
                backorder_qty,
                eta: None,
            });
            line_qty.push(line.qty);
            if matches!(scope, Scope::Closed | Scope::Excluded) {
                continue;
            }
            let pool = pools.intern(&line.sku, ship_from);
            line_pool[g] = pool;
            if scope == Scope::Active {
                if pool as usize >= queue_lengths.len() {
                    queue_lengths.resize(pool as usize + 1, 0);
                }
                queue_lengths[pool as usize] += 1;
                if let Some(replacement) = replacements.get(line.sku.as_str()) {
                    replacement_pool[g] = pools.intern(replacement, ship_from);
                }
            }
        }
    }
    queue_lengths.resize(pools.len(), 0);

    let mut remaining = pool_sizes(
        snapshot,
        &scopes,
        &first_line,
        &line_pool,
        &pools,
        &warehouses,
    );
    let ranked = rank(
        orders,
        (0..orders.len() as u32).filter(|&o| scopes[o as usize] == Scope::Active),
        settings,
    );
    let queues = PoolQueues::build(&ranked, &first_line, &line_pool, &lines, queue_lengths);

    for pool in 0..queues.pools() {
        let queue = queues.of(pool);
        let rem = &mut remaining[pool as usize];
        if settings.prioritize_fully_shippable {
            serve_fully_shippable_first(queue, &ranked, &mut lines, rem);
        } else {
            serve_in_order(queue, &mut lines, rem);
        }
    }
    if !replacements.is_empty() {
        draw_on_replacements(
            &ranked,
            &first_line,
            &replacement_pool,
            &mut lines,
            &mut remaining,
        );
    }
    eta::estimate(snapshot, &warehouses, &pools, &queues, &mut lines);

    let orders = scopes
        .iter()
        .zip(first_line.windows(2))
        .map(|(&scope, range)| {
            let range = range[0] as usize..range[1] as usize;
            let outcomes = &lines[range.clone()];
            OrderOutcome {
                scope,
                status: BackorderStatus::of_lines(
                    line_qty[range]
                        .iter()
                        .zip(outcomes)
                        .map(|(&qty, out)| (qty, out.backorder_qty)),
                ),
                backorder_qty: outcomes
                    .iter()
                    .fold(0, |sum, out| sum.saturating_add(out.backorder_qty)),
            }
        })
        .collect();
    Allocation { lines, orders }
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
/// Summed in i128, so that no count of rows overflows (two warehouses of
/// i64::MAX are a huge pool, not an empty one); a size beyond i64 is
/// capped at i64::MAX, more than validated lines can ever ask for.
fn pool_sizes(
    snapshot: &Snapshot,
    scopes: &[Scope],
    first_line: &[u32],
    line_pool: &[u32],
    pools: &PoolIndex,
    warehouses: &WarehouseIndex,
) -> Vec<i64> {
    let mut size = vec![0i128; pools.len()];
    for row in &snapshot.inventory {
        let Some(warehouse) = warehouses.eligible_index(&row.warehouse, &snapshot.settings) else {
            continue;
        };
        if let Some(pool) = pools.get(&row.sku, Some(warehouse)) {
            size[pool as usize] += i128::from(row.on_hand);
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
            size[line_pool[first_line[o] as usize + k] as usize] -= i128::from(held);
        }
    }
    size.into_iter()
        .map(|s| i64::try_from(s.max(0)).unwrap_or(i64::MAX))
        .collect()
}

/// Section 5, plain: each line in turn takes what it can.
fn serve_in_order(queue: &[QueueEntry], lines: &mut [LineOutcome], rem: &mut i64) {
    for e in queue {
        let take = e.qty.min(*rem);
        lines[e.line as usize].backorder_qty = e.qty - take;
        // `take` is negative only for a negative qty, which validation refuses.
        *rem = rem.saturating_sub(take);
    }
}

/// Section 5 with `prioritize_fully_shippable`: tier by tier, first every
/// order whose whole demand on this pool fits, then the rest line by line.
fn serve_fully_shippable_first(
    queue: &[QueueEntry],
    ranked: &[Ranked],
    lines: &mut [LineOutcome],
    rem: &mut i64,
) {
    let tier = |e: &QueueEntry| ranked[e.rank as usize].tier();
    for tier_run in queue.chunk_by(|a, b| tier(a) == tier(b)) {
        for order in tier_run.chunk_by(|a, b| a.rank == b.rank) {
            let demand = order.iter().fold(0i64, |sum, e| sum.saturating_add(e.qty));
            if demand <= *rem {
                for e in order {
                    lines[e.line as usize].backorder_qty = 0;
                }
                *rem -= demand;
            }
        }
        for order in tier_run.chunk_by(|a, b| a.rank == b.rank) {
            // An order served whole above has a line below its qty; one that
            // was not is still wholly backordered (a zero-demand order gains
            // nothing either way).
            if order
                .iter()
                .any(|e| lines[e.line as usize].backorder_qty < e.qty)
            {
                continue;
            }
            serve_in_order(order, lines, rem);
        }
    }
}

/// Section 6: still-backordered active lines draw, in priority order, on the
/// leftover of their product's replacement pool. One hop only.
fn draw_on_replacements(
    ranked: &[Ranked],
    first_line: &[u32],
    replacement_pool: &[u32],
    lines: &mut [LineOutcome],
    remaining: &mut [i64],
) {
    for r in ranked {
        let o = r.order as usize;
        for g in first_line[o] as usize..first_line[o + 1] as usize {
            let pool = replacement_pool[g];
            if pool == NO_POOL {
                continue;
            }
            let take = lines[g].backorder_qty.min(remaining[pool as usize]);
            lines[g].backorder_qty -= take;
            remaining[pool as usize] -= take;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::snapshot::{InventoryRow, Line, Order, Settings, Snapshot, Warehouse};
    use crate::engine::snapshot::{OrderStatus, PaymentStatus, WarehouseKind};

    fn snapshot(on_hand: &[i64], qty: i64, max_days_back: Option<u32>) -> Snapshot {
        let warehouses: Vec<Warehouse> = (0..on_hand.len())
            .map(|i| Warehouse {
                id: format!("W{i}"),
                kind: WarehouseKind::Normal,
            })
            .collect();
        Snapshot {
            as_of: None,
            settings: Settings {
                max_days_back,
                ..Settings::default()
            },
            inventory: on_hand
                .iter()
                .zip(&warehouses)
                .map(|(&on_hand, w)| InventoryRow {
                    sku: "TEA".into(),
                    warehouse: w.id.clone(),
                    on_hand,
                })
                .collect(),
            warehouses,
            products: Vec::new(),
            purchase_orders: Vec::new(),
            orders: vec![Order {
                id: "SO-1".into(),
                order_date: "2026-11-01T00:00:00Z".parse().unwrap(),
                payment_date: None,
                payment_status: PaymentStatus::Paid,
                status: OrderStatus::InProcess,
                rush: false,
                picked: false,
                ship_from: None,
                customer: None,
                lines: vec![
                    Line {
                        id: "L1".into(),
                        sku: "TEA".into(),
                        qty,
                        backorder_qty: 0,
                    },
                    Line {
                        id: "L2".into(),
                        sku: "TEA".into(),
                        qty,
                        backorder_qty: 0,
                    },
                ],
            }],
        }
    }

    /// Once the pool's sum wrapped to a negative number: every line was
    /// wholly backordered. The engine is safe on unvalidated input too.
    #[test]
    fn huge_stock_over_several_warehouses_is_a_huge_pool() {
        let as_of = "2026-11-30T00:00:00Z".parse().unwrap();
        let result = super::allocate(&snapshot(&[i64::MAX, i64::MAX], 5, None), as_of);
        assert!(
            result.lines.iter().all(|l| l.backorder_qty == 0),
            "{result:?}"
        );
        // Two lines of i64::MAX with no stock: the order's total saturates
        // instead of wrapping to -2.
        let result = super::allocate(&snapshot(&[0], i64::MAX, None), as_of);
        assert_eq!(result.orders[0].backorder_qty, i64::MAX);
    }

    #[test]
    fn a_cutoff_beyond_the_calendar_freezes_nothing() {
        let as_of = "2026-11-30T00:00:00Z".parse().unwrap();
        let result = super::allocate(&snapshot(&[10], 5, Some(u32::MAX)), as_of);
        assert_eq!(result.orders[0].scope, crate::engine::Scope::Active);
        let result = super::allocate(&snapshot(&[10], 5, Some(1)), as_of);
        assert_eq!(result.orders[0].scope, crate::engine::Scope::Frozen);
    }
}
