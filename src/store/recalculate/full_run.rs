//! What a full run (the bulk run) keeps across its batches: the orders it
//! saw, so that an order whose lines span several batches is still
//! compared with its stored totals at the end.
//!
//! The bulk run commits each batch on its own (bounded transactions, so
//! ingest waits at most one of them). Its tally may then be stale for an
//! order an event changed between two batches; so the end does not write
//! the tally: it names the orders whose tally is off their stored totals,
//! and those are set from their stored lines under their row locks, read
//! at that moment (`RecalcDialect::refresh_orders`, what events use).

use rustc_hash::FxHashMap;

use crate::engine::LineCounts;
use crate::recalc::Changes;

/// An order as the run saw it: its recalculated lines summed over the
/// batches, and its stored totals after the last batch that saw it.
struct Seen {
    summed: (LineCounts, i64),
    stored: (LineCounts, i64),
    cause: String,
}

/// What a full run keeps between its batches.
pub struct FullRun {
    orders: FxHashMap<String, Seen>,
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
            orders: FxHashMap::default(),
            lines_seen: 0,
            cursor: None,
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
    }

    /// The orders seen whole (all their lines with qty > 0, by their stored
    /// count) whose summed lines differ from their stored totals:
    /// `(order id, cause)`, by id.
    pub fn off_their_lines(&self) -> Vec<(String, String)> {
        let mut off: Vec<(String, String)> = self
            .orders
            .iter()
            .filter(|(_, seen)| seen.summed.0.open == seen.stored.0.open)
            .filter(|(_, seen)| seen.summed != seen.stored)
            .map(|(id, seen)| (id.clone(), seen.cause.clone()))
            .collect();
        off.sort_unstable();
        off
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
}
