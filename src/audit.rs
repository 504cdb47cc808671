//! The audit's report, pure: what an audit run found between the stored
//! values and the contract's answer for the stored state. The comparison
//! itself is the recalculation's (`recalc::changes_with` with every order
//! whole): an audit is a full recalculation that writes nothing, or, with
//! repair, one whose history rows say `audit`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::engine::time_format::{format_date, format_timestamp};
use crate::engine::{BackorderStatus, LineCounts};
use crate::recalc::{LineChange, OrderChange};

/// The cause an audit's repair writes in the history and outbox.
pub const CAUSE: &str = "audit";

/// Exit status of `backorderd audit` when drift was found (repaired or
/// not); 0 when the stored state is the contract's answer.
pub const EXIT_DRIFT: i32 = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditReport {
    /// The instant the engine computed for (RFC 3339, UTC).
    pub as_of: String,
    /// Whether anything differs (the exit status 3 of the command).
    pub drift: bool,
    /// Whether the differences were written back (`--repair`).
    pub repaired: bool,
    /// SKUs marked for a recalculation when the audit began: their lines
    /// may differ only because the recalculation has not run yet.
    pub dirty_skus: i64,
    pub lines_checked: usize,
    pub orders_checked: usize,
    pub lines_differing: usize,
    pub orders_differing: usize,
    /// Lines whose stored backorder qty or ETA differs, by order then line.
    pub lines: Vec<LineDifference>,
    /// Orders whose stored status, backorder qty or line counts differ.
    pub orders: Vec<OrderDifference>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LineDifference {
    pub order_id: String,
    pub line_id: String,
    pub stored: LineValues,
    pub expected: LineValues,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LineValues {
    pub backorder_qty: i64,
    pub eta: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OrderDifference {
    pub order_id: String,
    pub stored: OrderValues,
    pub expected: OrderValues,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OrderValues {
    pub backorder_status: BackorderStatus,
    pub backorder_qty: i64,
    /// Lines with qty > 0.
    pub lines_open: i64,
    /// Of those, lines with a backorder.
    pub lines_backordered: i64,
    /// Of those, lines wholly backordered.
    pub lines_whole: i64,
}

impl OrderValues {
    fn new(status: BackorderStatus, backorder_qty: i64, counts: LineCounts) -> Self {
        OrderValues {
            backorder_status: status,
            backorder_qty,
            lines_open: counts.open,
            lines_backordered: counts.backordered,
            lines_whole: counts.whole,
        }
    }
}

/// What a store's audit run saw.
#[derive(Debug, Default)]
pub struct Findings {
    pub dirty_skus: i64,
    pub lines_checked: usize,
    pub orders_checked: usize,
    pub lines: Vec<LineChange>,
    pub orders: Vec<OrderChange>,
}

fn eta(date: Option<NaiveDate>) -> Option<String> {
    date.as_ref().map(format_date)
}

impl AuditReport {
    pub fn new(findings: Findings, as_of: DateTime<Utc>, repaired: bool) -> Self {
        let Findings {
            dirty_skus,
            lines_checked,
            orders_checked,
            mut lines,
            mut orders,
        } = findings;
        lines.sort_unstable_by(|a, b| (&a.order_id, &a.line_id).cmp(&(&b.order_id, &b.line_id)));
        orders.sort_unstable_by(|a, b| a.order_id.cmp(&b.order_id));
        let lines: Vec<LineDifference> = lines
            .into_iter()
            .map(|c| LineDifference {
                stored: LineValues {
                    backorder_qty: c.old_backorder_qty,
                    eta: eta(c.old_eta),
                },
                expected: LineValues {
                    backorder_qty: c.new_backorder_qty,
                    eta: eta(c.new_eta),
                },
                order_id: c.order_id,
                line_id: c.line_id,
            })
            .collect();
        let orders: Vec<OrderDifference> = orders
            .into_iter()
            .map(|c| OrderDifference {
                stored: OrderValues::new(c.old_status, c.old_backorder_qty, c.old_counts),
                expected: OrderValues::new(c.new_status, c.new_backorder_qty, c.new_counts),
                order_id: c.order_id,
            })
            .collect();
        AuditReport {
            as_of: format_timestamp(&as_of),
            drift: !lines.is_empty() || !orders.is_empty(),
            repaired,
            dirty_skus,
            lines_checked,
            orders_checked,
            lines_differing: lines.len(),
            orders_differing: orders.len(),
            lines,
            orders,
        }
    }

    pub fn drift_found(&self) -> bool {
        self.drift
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(order: &str, id: &str, old: i64, new: i64) -> LineChange {
        LineChange {
            line_id: id.into(),
            order_id: order.into(),
            qty: 5,
            old_eta: None,
            old_backorder_qty: old,
            new_backorder_qty: new,
            new_eta: NaiveDate::from_ymd_opt(2026, 12, 24),
            cause: CAUSE.into(),
        }
    }

    #[test]
    fn differences_are_sorted_and_counted() {
        let findings = Findings {
            dirty_skus: 0,
            lines_checked: 10,
            orders_checked: 4,
            lines: vec![line("B", "B1", 0, 5), line("A", "A2", 1, 0)],
            orders: vec![],
        };
        let report = AuditReport::new(findings, Utc::now(), false);
        assert!(report.drift_found());
        assert_eq!(report.lines_differing, 2);
        assert_eq!(report.lines[0].line_id, "A2");
        assert_eq!(report.lines[1].expected.eta.as_deref(), Some("2026-12-24"));
    }

    #[test]
    fn no_difference_is_no_drift() {
        let report = AuditReport::new(Findings::default(), Utc::now(), false);
        assert!(!report.drift_found());
    }
}
