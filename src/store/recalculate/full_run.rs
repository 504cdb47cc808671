//! What a full run (the bulk run, the audit) keeps across its batches: the
//! orders it saw, so that an order whose lines span several batches is
//! still compared with its stored totals at the end, and for the audit
//! every difference it found.
//!
//! The bulk run commits each batch on its own (bounded transactions, so
//! ingest waits at most one of them). Its tally may then be stale for an
//! order an event changed between two batches; so the end does not write
//! the tally: it names the orders whose tally is off their stored totals,
//! and those are set from their stored lines under their row locks, read
//! at that moment (`RecalcDialect::refresh_orders`, what events use).

use rustc_hash::{FxHashMap, FxHashSet};

use crate::engine::LineCounts;
use crate::recalc::{Changes, LineChange, OrderChange};

/// The SKUs an audit goes through, in key order, each loaded once (a
/// batch takes the rest of its replacement group with it).
pub struct SkuQueue {
    skus: Vec<(String, usize)>,
    next: usize,
    done: FxHashSet<String>,
    max_skus: usize,
    line_budget: usize,
}

impl SkuQueue {
    pub fn new(mut skus: Vec<(String, usize)>, max_skus: usize, line_budget: usize) -> Self {
        skus.sort_unstable();
        SkuQueue {
            skus,
            next: 0,
            done: FxHashSet::default(),
            max_skus,
            line_budget,
        }
    }

    /// The next SKUs not loaded yet: up to `max_skus`, within the line
    /// budget (at least one).
    pub fn next_skus(&mut self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        let mut lines = 0;
        while let Some((sku, n)) = self.skus.get(self.next) {
            if self.done.contains(sku) {
                self.next += 1;
                continue;
            }
            if out.len() >= self.max_skus || (!out.is_empty() && lines + n > self.line_budget) {
                break;
            }
            lines += n;
            out.push((sku.clone(), *n));
            self.next += 1;
        }
        out
    }

    pub fn loaded(&mut self, skus: &[String]) {
        self.done.extend(skus.iter().cloned());
    }
}

/// An order as the run saw it: its recalculated lines summed over the
/// batches, and its stored totals after the last batch that saw it.
struct Seen {
    summed: (LineCounts, i64),
    stored: (LineCounts, i64),
    cause: String,
}

/// What a full run keeps between its batches.
pub struct FullRun {
    /// Every SKU goes through this run (an audit): an order's summed lines
    /// are all of its lines, whatever its stored counts say.
    every_sku: bool,
    pub(super) queue: Option<SkuQueue>,
    orders: FxHashMap<String, Seen>,
    /// An audit keeps what it found.
    findings: Option<(Vec<LineChange>, FxHashMap<String, OrderChange>)>,
    pub lines_seen: usize,
    /// The bulk run's last claimed SKU: one pass in key order, so marks an
    /// event raises behind it are the drain's (with the pool cache), and a
    /// steady stream of events cannot keep the run going.
    pub(super) cursor: Option<String>,
}

impl FullRun {
    /// The bulk run: the dirty SKUs, batch after batch.
    pub fn bulk() -> Self {
        FullRun {
            every_sku: false,
            queue: None,
            orders: FxHashMap::default(),
            findings: None,
            lines_seen: 0,
            cursor: None,
        }
    }

    /// The audit: every SKU of `queue`, every difference kept.
    pub fn audit(queue: SkuQueue) -> Self {
        FullRun {
            every_sku: true,
            queue: Some(queue),
            findings: Some((Vec::new(), FxHashMap::default())),
            ..FullRun::bulk()
        }
    }

    /// Adds what a batch computed (before it is written).
    pub(super) fn tally(&mut self, changes: &Changes) {
        self.lines_seen += changes.lines_seen;
        for t in &changes.totals {
            let seen = self
                .orders
                .entry(t.order_id.clone())
                .or_insert_with(|| Seen {
                    summed: (LineCounts::default(), 0),
                    stored: (t.stored_counts, t.stored_qty),
                    cause: t.cause.clone(),
                });
            seen.summed.0.open += t.counts.open;
            seen.summed.0.backordered += t.counts.backordered;
            seen.summed.0.whole += t.counts.whole;
            seen.summed.1 = seen.summed.1.saturating_add(t.backorder_qty);
            seen.stored = (t.stored_counts, t.stored_qty);
        }
        if let Some((lines, orders)) = self.findings.as_mut() {
            lines.extend(changes.lines.iter().cloned());
            for change in &changes.orders {
                merge(orders, change.clone());
            }
        }
    }

    /// The orders seen whole (all their lines with qty > 0, by their stored
    /// count; every order in an audit) whose summed lines differ from their
    /// stored totals: `(order id, cause)`, by id. An audit records each
    /// as a difference.
    pub fn off_their_lines(&mut self) -> Vec<(String, String)> {
        let mut off: Vec<(String, String)> = Vec::new();
        for (id, seen) in &self.orders {
            let whole = self.every_sku || seen.summed.0.open == seen.stored.0.open;
            if !whole || seen.summed == seen.stored {
                continue;
            }
            off.push((id.clone(), seen.cause.clone()));
            if let Some((_, orders)) = self.findings.as_mut() {
                let ((old_counts, old_qty), (new_counts, new_qty)) = (seen.stored, seen.summed);
                merge(
                    orders,
                    OrderChange {
                        order_id: id.clone(),
                        old_status: old_counts.status(),
                        new_status: new_counts.status(),
                        old_backorder_qty: old_qty,
                        new_backorder_qty: new_qty,
                        old_counts,
                        new_counts,
                        cause: seen.cause.clone(),
                    },
                );
            }
        }
        off.sort_unstable();
        off
    }

    /// An audit's differences: lines, and orders by id with their net
    /// change (orders back where they started drop out).
    pub fn take_findings(&mut self) -> (Vec<LineChange>, Vec<OrderChange>) {
        let Some((lines, orders)) = self.findings.take() else {
            return (Vec::new(), Vec::new());
        };
        let mut orders: Vec<OrderChange> = orders
            .into_values()
            .filter(|o| (o.old_counts, o.old_backorder_qty) != (o.new_counts, o.new_backorder_qty))
            .collect();
        orders.sort_unstable_by(|a, b| a.order_id.cmp(&b.order_id));
        (lines, orders)
    }
}

/// Keeps the first stored values and the last new ones of an order.
fn merge(orders: &mut FxHashMap<String, OrderChange>, change: OrderChange) {
    match orders.get_mut(&change.order_id) {
        Some(kept) => {
            kept.new_status = change.new_status;
            kept.new_backorder_qty = change.new_backorder_qty;
            kept.new_counts = change.new_counts;
            kept.cause = change.cause;
        }
        None => {
            orders.insert(change.order_id.clone(), change);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recalc::OrderTotals;

    /// One line of `qty` backordered (of more ordered); the order's stored
    /// totals: `stored.0` lines, all backordered, `stored.1` in all.
    fn totals(id: &str, open: i64, qty: i64, stored: (i64, i64)) -> OrderTotals {
        let counts = |open| LineCounts {
            open,
            backordered: open,
            whole: 0,
        };
        OrderTotals {
            order_id: id.into(),
            counts: counts(open),
            backorder_qty: qty,
            stored_counts: counts(stored.0),
            stored_qty: stored.1,
            cause: "e1".into(),
        }
    }

    #[test]
    fn an_order_seen_over_two_batches_is_compared_once_whole() {
        let mut run = FullRun::bulk();
        // Two lines with qty > 0 stored; the totals say 9, the lines 3 + 4.
        let first = Changes {
            totals: vec![totals("A", 1, 3, (2, 9))],
            ..Changes::default()
        };
        run.tally(&first);
        assert!(run.off_their_lines().is_empty(), "half of A is not A");
        let second = Changes {
            totals: vec![totals("A", 1, 4, (2, 9))],
            ..Changes::default()
        };
        run.tally(&second);
        assert_eq!(run.off_their_lines(), [("A".to_owned(), "e1".to_owned())]);
    }

    #[test]
    fn an_order_whose_lines_match_its_totals_is_left_alone() {
        let mut run = FullRun::bulk();
        for qty in [3, 4] {
            let changes = Changes {
                totals: vec![totals("A", 1, qty, (2, 7))],
                ..Changes::default()
            };
            run.tally(&changes);
        }
        assert!(run.off_their_lines().is_empty());
    }

    #[test]
    fn the_queue_skips_what_a_replacement_group_already_loaded() {
        let skus = vec![("A".into(), 5), ("B".into(), 5), ("C".into(), 50)];
        let mut queue = SkuQueue::new(skus, 10, 20);
        assert_eq!(
            queue.next_skus(),
            [("A".to_owned(), 5), ("B".to_owned(), 5)]
        );
        queue.loaded(&["C".to_owned()]);
        assert!(queue.next_skus().is_empty());
    }
}
