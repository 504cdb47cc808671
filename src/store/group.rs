//! Putting a group's lines back into their orders, the same for every
//! backend: the lines arrive by SKU, each is given to its order by hashing,
//! and each order's lines are put in their stored order (sorting a batch's
//! lines by order id costs more).

use chrono::NaiveDate;
use rustc_hash::FxHashMap;

use super::{StoreError, codec};
use crate::engine::LineCounts;
use crate::engine::snapshot::{Line, Order};
use crate::recalc::StoredOrder;

/// `(order_id, position, id, sku, qty, backorder_qty, eta)`
pub type LineRow = (String, i64, String, String, i64, i64, Option<String>);
/// An order (no lines) with its stored total and counts.
pub type HeaderWithTotals = (Order, i64, LineCounts);

/// A group's lines, each tied to a slot per distinct order.
pub struct LinesByOrder {
    lines: Vec<LineRow>,
    /// The slot of each line's order.
    line_slots: Vec<u32>,
    /// Slots in order id order.
    by_id: Vec<u32>,
    /// A line of each slot's order, for its id.
    first_line: Vec<u32>,
}

impl LinesByOrder {
    pub fn new(lines: Vec<LineRow>) -> Self {
        let mut slot_of: FxHashMap<&str, u32> = FxHashMap::default();
        let mut first_line: Vec<u32> = Vec::new();
        let line_slots: Vec<u32> = lines
            .iter()
            .enumerate()
            .map(|(at, l)| {
                *slot_of.entry(l.0.as_str()).or_insert_with(|| {
                    first_line.push(at as u32);
                    first_line.len() as u32 - 1
                })
            })
            .collect();
        drop(slot_of);
        let mut by_id: Vec<u32> = (0..first_line.len() as u32).collect();
        by_id.sort_unstable_by_key(|&slot| lines[first_line[slot as usize] as usize].0.as_str());
        LinesByOrder {
            lines,
            line_slots,
            by_id,
            first_line,
        }
    }

    /// The ids of the lines' orders, sorted, each once.
    pub fn order_ids(&self) -> Vec<&str> {
        self.by_id
            .iter()
            .map(|&slot| {
                self.lines[self.first_line[slot as usize] as usize]
                    .0
                    .as_str()
            })
            .collect()
    }

    /// The stored orders, each with its group lines in position order.
    /// `headers` are those of [`LinesByOrder::order_ids`], in that order;
    /// a missing one means the database lost an order its lines point to.
    pub fn into_orders(
        self,
        headers: Vec<HeaderWithTotals>,
    ) -> Result<Vec<StoredOrder>, StoreError> {
        if headers.len() != self.by_id.len() {
            return Err(StoreError::Corrupt {
                record: "order lines".into(),
                problem: format!(
                    "{} of their orders are missing",
                    self.by_id.len().abs_diff(headers.len())
                ),
            });
        }
        // Where each slot's order stands in `headers`.
        let mut place = vec![0u32; self.by_id.len()];
        for (at, &slot) in self.by_id.iter().enumerate() {
            place[slot as usize] = at as u32;
        }
        let mut grouped: Vec<Vec<(i64, Line, Option<NaiveDate>)>> = vec![Vec::new(); headers.len()];
        for ((_, position, id, sku, qty, backorder_qty, eta), slot) in
            self.lines.into_iter().zip(self.line_slots)
        {
            let eta = match eta {
                Some(text) => Some(codec::date(&text, &|| format!("line {id:?}"))?),
                None => None,
            };
            let line = Line {
                id,
                sku,
                qty,
                backorder_qty,
            };
            grouped[place[slot as usize] as usize].push((position, line, eta));
        }
        Ok(headers
            .into_iter()
            .zip(grouped)
            .map(|((order, backorder_qty, counts), mut lines)| {
                lines.sort_unstable_by_key(|l| l.0);
                let (lines, etas) = lines.into_iter().map(|(_, l, eta)| (l, eta)).unzip();
                StoredOrder {
                    order: Order { lines, ..order },
                    etas,
                    counts,
                    backorder_qty,
                }
            })
            .collect())
    }
}
