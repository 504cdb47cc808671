//! Large pools' stored state kept for the read paths (the console's order
//! and product pages, `GET /v1/orders/{id}`, `GET /v1/products/{sku}`), so
//! that showing a SKU with tens of thousands of waiting lines does not read
//! them all again while nothing of them changed.
//!
//! Current by the same versions as the recalculation's pool cache
//! (store/recalculate/pool_cache.rs): the global epoch and each SKU's
//! version, bumped by triggers in the same transaction as any change of a
//! row the state is read from. A kept state is used only when the versions
//! read in the reader's own transaction equal those it was read at;
//! otherwise a kept state (this one's, or the worker's pool cache's) is
//! brought up to date by the same log the pool cache patches itself from:
//! only the orders it names are read again (and the stock when named), so
//! the first read after an event on a hot SKU costs what changed, not the
//! whole pool. Anything else (another epoch, a gap in the log) reads the
//! group again (and keeps the new state). Only a backend with those
//! triggers (SQLite) uses it.

use std::sync::{Arc, Mutex};

use rustc_hash::FxHashSet;

use super::recalculate::pool_cache::Versions;
use crate::engine::snapshot::{Order, Snapshot};

/// Smaller groups are read each time (a read costs little).
pub const MIN_LINES: usize = 2_000;
/// The most lines all kept states hold together.
pub const MAX_LINES: usize = 200_000;

struct Kept {
    skus: Vec<String>,
    versions: Versions,
    snapshot: Arc<Snapshot>,
    lines: usize,
    used: u64,
}

#[derive(Default)]
pub struct PoolReads {
    kept: Mutex<(Vec<Kept>, u64)>,
}

impl PoolReads {
    /// The state of the group `skus` at `versions`, when kept.
    pub fn get(&self, skus: &[String], versions: &Versions) -> Option<Arc<Snapshot>> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let (pools, clock) = &mut *kept;
        *clock += 1;
        let now = *clock;
        let pool = pools
            .iter_mut()
            .find(|p| p.skus == skus && p.versions == *versions)?;
        pool.used = now;
        Some(pool.snapshot.clone())
    }

    /// The kept state of the group `skus` whatever its versions, with
    /// them: a base to patch from the log.
    pub fn base(&self, skus: &[String]) -> Option<(Arc<Snapshot>, Versions)> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let pool = kept.0.iter().find(|p| p.skus == skus)?;
        Some((pool.snapshot.clone(), pool.versions.clone()))
    }

    /// Keeps `snapshot`, the group `skus` read at `versions`, when large
    /// enough; the least recently used states go first past the bound.
    pub fn put(&self, skus: &[String], versions: Versions, snapshot: Arc<Snapshot>) {
        let lines: usize = snapshot.orders.iter().map(|o| o.lines.len()).sum();
        if !(MIN_LINES..=MAX_LINES).contains(&lines) {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let (pools, clock) = &mut *kept;
        *clock += 1;
        pools.retain(|p| p.skus != skus);
        pools.push(Kept {
            skus: skus.to_vec(),
            versions,
            snapshot,
            lines,
            used: *clock,
        });
        while pools.iter().map(|p| p.lines).sum::<usize>() > MAX_LINES {
            let oldest = (0..pools.len())
                .min_by_key(|&i| pools[i].used)
                .expect("over the bound, so not empty");
            pools.swap_remove(oldest);
        }
    }

    /// Forgets every state (an import replaced the book).
    pub fn clear(&self) {
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clear();
    }
}

/// `orders` (sorted by id) with the orders `ids` replaced by `fresh`:
/// those of them that still have lines in the group, read again; the
/// result stays sorted by id.
pub fn patch_orders(orders: &mut Vec<Order>, ids: &FxHashSet<String>, mut fresh: Vec<Order>) {
    orders.retain(|o| !ids.contains(&o.id));
    if fresh.is_empty() {
        return;
    }
    fresh.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let old = std::mem::take(orders);
    let mut merged = Vec::with_capacity(old.len() + fresh.len());
    let mut fresh = fresh.into_iter().peekable();
    for order in old {
        while let Some(next) = fresh.peek()
            && next.id < order.id
        {
            merged.push(fresh.next().expect("peeked"));
        }
        merged.push(order);
    }
    merged.extend(fresh);
    *orders = merged;
}

/// How many of a pool's orders a patch may read again: past a quarter,
/// one pass over the group costs less.
pub fn worth_patching(orders_to_read: usize, orders_kept: usize) -> bool {
    orders_to_read * 4 <= orders_kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_replaces_adds_and_drops_orders_keeping_them_sorted() {
        let order = |id: &str, lines: usize| -> Order {
            let mut o = snapshot(lines).orders[0].clone();
            o.id = id.to_owned();
            o
        };
        let mut orders = vec![order("A", 1), order("C", 1), order("E", 1)];
        let ids: FxHashSet<String> = ["C", "D", "E"].map(str::to_owned).into_iter().collect();
        // C changed (now 2 lines), D is new, E left the group.
        patch_orders(&mut orders, &ids, vec![order("D", 1), order("C", 2)]);
        let got: Vec<(&str, usize)> = orders
            .iter()
            .map(|o| (o.id.as_str(), o.lines.len()))
            .collect();
        assert_eq!(got, [("A", 1), ("C", 2), ("D", 1)]);
        assert!(worth_patching(1, 4) && !worth_patching(2, 4));
    }

    fn snapshot(lines: usize) -> Arc<Snapshot> {
        let order: crate::engine::snapshot::Order = serde_json::from_value(serde_json::json!({
            "id": "SO-1", "order_date": "2026-11-01T00:00:00Z", "payment_status": "paid",
            "status": "in_process", "lines": (0..lines).map(|i| serde_json::json!({
                "id": format!("L-{i}"), "sku": "A", "qty": 1
            })).collect::<Vec<_>>()
        }))
        .unwrap();
        Arc::new(Snapshot {
            as_of: None,
            settings: Default::default(),
            warehouses: Vec::new(),
            products: Vec::new(),
            inventory: Vec::new(),
            purchase_orders: Vec::new(),
            orders: vec![order],
        })
    }

    fn versions(epoch: i64, version: i64) -> Versions {
        Versions {
            epoch,
            skus: vec![version],
        }
    }

    #[test]
    fn a_kept_state_is_used_only_at_the_versions_it_was_read_at() {
        let reads = PoolReads::default();
        let skus = vec!["A".to_owned()];
        reads.put(&skus, versions(1, 4), snapshot(MIN_LINES));
        assert!(reads.get(&skus, &versions(1, 4)).is_some());
        assert!(
            reads.get(&skus, &versions(1, 5)).is_none(),
            "the SKU changed"
        );
        assert!(
            reads.get(&skus, &versions(2, 4)).is_none(),
            "the epoch moved"
        );
        assert!(reads.get(&["B".to_owned()], &versions(1, 4)).is_none());
        reads.clear();
        assert!(reads.get(&skus, &versions(1, 4)).is_none());
    }

    #[test]
    fn small_states_are_not_kept_and_the_bound_holds() {
        let reads = PoolReads::default();
        let a = vec!["A".to_owned()];
        reads.put(&a, versions(1, 1), snapshot(MIN_LINES - 1));
        assert!(reads.get(&a, &versions(1, 1)).is_none());
        for (i, sku) in ["A", "B", "C"].iter().enumerate() {
            reads.put(
                &[(*sku).to_owned()],
                versions(1, i as i64),
                snapshot(MAX_LINES / 2),
            );
        }
        // Two fit: the first is gone.
        assert!(reads.get(&a, &versions(1, 0)).is_none());
        assert!(reads.get(&["C".to_owned()], &versions(1, 2)).is_some());
    }
}
