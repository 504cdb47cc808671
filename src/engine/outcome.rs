//! What a recalculation produces, index-aligned with the snapshot it read so
//! that the engine copies no strings (the caller joins ids back on output).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Which class of section 2 an order falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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
        let mut counts = LineCounts::default();
        for (qty, backorder) in lines {
            counts.add(qty, backorder);
        }
        counts.status()
    }
}

/// What section 8 needs to know of an order's lines, kept as counts so that
/// a change to one line updates the order's status without reading the
/// others (the store keeps these counts beside each order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineCounts {
    /// Lines with qty above 0: the only ones that count.
    pub open: i64,
    /// Of those, lines with some backorder.
    pub backordered: i64,
    /// Of those, lines backordered for their whole qty (or more).
    pub whole: i64,
}

impl LineCounts {
    pub fn add(&mut self, qty: i64, backorder_qty: i64) {
        self.shift(qty, backorder_qty, 1);
    }

    pub fn remove(&mut self, qty: i64, backorder_qty: i64) {
        self.shift(qty, backorder_qty, -1);
    }

    fn shift(&mut self, qty: i64, backorder_qty: i64, by: i64) {
        if qty <= 0 {
            return;
        }
        self.open += by;
        self.backordered += by * i64::from(backorder_qty > 0);
        self.whole += by * i64::from(backorder_qty >= qty);
    }

    pub fn status(&self) -> BackorderStatus {
        if self.backordered <= 0 {
            BackorderStatus::None
        } else if self.whole >= self.open {
            BackorderStatus::Full
        } else {
            BackorderStatus::Partial
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
