//! Section 7: expected availability dates from open purchase orders.

use chrono::NaiveDate;

use super::allocate::PoolQueues;
use super::outcome::LineOutcome;
use super::pools::{PoolIndex, WarehouseIndex};
use super::snapshot::Snapshot;

struct Supply<'a> {
    pool: u32,
    date: NaiveDate,
    po_id: &'a str,
    open: i64,
}

/// Sets each backordered active line's `eta`: the date of the purchase
/// order that supplies its last missing unit. Backordered active lines consume each
/// pool's open supply greedily in priority order, so a line that finds too
/// little gets `None` and also uses up what was left.
pub(super) fn estimate(
    snapshot: &Snapshot,
    warehouses: &WarehouseIndex,
    pools: &PoolIndex,
    queues: &PoolQueues,
    lines: &mut [LineOutcome],
) {
    let mut supply: Vec<Supply> = snapshot
        .purchase_orders
        .iter()
        .filter_map(|po| {
            let date = po.expected_date?;
            let open = po.open_qty();
            if open <= 0 {
                return None;
            }
            let warehouse = warehouses.eligible_index(&po.warehouse, &snapshot.settings)?;
            let pool = pools.get(&po.sku, Some(warehouse))?;
            Some(Supply {
                pool,
                date,
                po_id: &po.id,
                open,
            })
        })
        .collect();
    supply.sort_unstable_by(|a, b| {
        (a.pool, a.date, a.po_id.as_bytes()).cmp(&(b.pool, b.date, b.po_id.as_bytes()))
    });

    for run in supply.chunk_by_mut(|a, b| a.pool == b.pool) {
        let mut next = 0;
        for e in queues.of(run[0].pool) {
            let line = &mut lines[e.line as usize];
            let mut missing = line.backorder_qty;
            while missing > 0 && next < run.len() {
                let take = missing.min(run[next].open);
                run[next].open -= take;
                missing -= take;
                if missing == 0 {
                    line.eta = Some(run[next].date);
                }
                if run[next].open == 0 {
                    next += 1;
                }
            }
            if next == run.len() {
                break;
            }
        }
    }
}
