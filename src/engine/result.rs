//! The result format of `snapshot.md`, serialized straight from the snapshot
//! and its [`Allocation`] without building an intermediate copy.

use chrono::NaiveDate;
use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::outcome::{Allocation, BackorderStatus, Scope};
use super::snapshot::Snapshot;
use super::time_format::date_opt;

pub struct ResultView<'a> {
    pub snapshot: &'a Snapshot,
    pub allocation: &'a Allocation,
}

#[derive(serde::Serialize)]
struct LineRow<'a> {
    order_id: &'a str,
    line_id: &'a str,
    sku: &'a str,
    qty: i64,
    backorder_qty: i64,
    #[serde(with = "date_opt")]
    eta: Option<NaiveDate>,
}

#[derive(serde::Serialize)]
struct OrderRow<'a> {
    order_id: &'a str,
    scope: Scope,
    status: BackorderStatus,
    backorder_qty: i64,
}

struct Lines<'a>(&'a ResultView<'a>);
struct Orders<'a>(&'a ResultView<'a>);

impl Serialize for Lines<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let view = self.0;
        let rows = view
            .snapshot
            .orders
            .iter()
            .zip(view.allocation.lines_by_order(&view.snapshot.orders))
            .flat_map(|(order, outcomes)| {
                order
                    .lines
                    .iter()
                    .zip(outcomes)
                    .map(move |(line, out)| LineRow {
                        order_id: &order.id,
                        line_id: &line.id,
                        sku: &line.sku,
                        qty: line.qty,
                        backorder_qty: out.backorder_qty,
                        eta: out.eta,
                    })
            });
        s.collect_seq(rows)
    }
}

impl Serialize for Orders<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let view = self.0;
        let rows = view
            .snapshot
            .orders
            .iter()
            .zip(&view.allocation.orders)
            .map(|(order, out)| OrderRow {
                order_id: &order.id,
                scope: out.scope,
                status: out.status,
                backorder_qty: out.backorder_qty,
            });
        s.collect_seq(rows)
    }
}

impl Serialize for ResultView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Result", 2)?;
        st.serialize_field("lines", &Lines(self))?;
        st.serialize_field("orders", &Orders(self))?;
        st.end()
    }
}
