//! What a recalculation produces, index-aligned with the snapshot it read so
//! that the engine copies no strings (the caller joins ids back on output).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Which class of section 2 an order falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Active,
    Closed,
    Excluded,
    Frozen,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Active => "active",
            Scope::Closed => "closed",
            Scope::Excluded => "excluded",
            Scope::Frozen => "frozen",
        }
    }
}

/// An order's backorder status (section 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackorderStatus {
    None,
    Partial,
    Full,
}

impl BackorderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BackorderStatus::None => "none",
            BackorderStatus::Partial => "partial",
            BackorderStatus::Full => "full",
        }
    }

    /// Section 8, from `(qty, backorder_qty)` of each line. Lines with qty 0
    /// are ignored; a stored backorder above qty counts as "whole qty".
    pub fn of_lines(lines: impl IntoIterator<Item = (i64, i64)>) -> BackorderStatus {
        let mut any_backordered = false;
        let mut all_whole = true;
        for (qty, backorder) in lines {
            if qty <= 0 {
                continue;
            }
            let backorder = backorder.clamp(0, qty);
            any_backordered |= backorder > 0;
            all_whole &= backorder == qty;
        }
        match (any_backordered, all_whole) {
            (false, _) => BackorderStatus::None,
            (true, true) => BackorderStatus::Full,
            (true, false) => BackorderStatus::Partial,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineOutcome {
    pub backorder_qty: i64,
    pub eta: Option<NaiveDate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderOutcome {
    pub scope: Scope,
    pub status: BackorderStatus,
    /// Sum of the order's lines' backorder quantities.
    pub backorder_qty: i64,
}

/// The result of one recalculation: `lines` follows the snapshot's lines
/// order by order (flattened), `orders` the snapshot's orders.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Allocation {
    pub lines: Vec<LineOutcome>,
    pub orders: Vec<OrderOutcome>,
}

impl Allocation {
    /// The outcomes of each order's lines, in snapshot order.
    pub fn lines_by_order<'a>(
        &'a self,
        orders: &'a [super::snapshot::Order],
    ) -> impl Iterator<Item = &'a [LineOutcome]> + 'a {
        let mut start = 0;
        orders.iter().map(move |o| {
            let slice = &self.lines[start..start + o.lines.len()];
            start += o.lines.len();
            slice
        })
    }
}
