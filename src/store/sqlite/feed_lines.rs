//! The availability feed's line tallies on SQLite without the aggregate
//! query: SQLite sorts a million joined rows for its GROUP BY, and sqlx
//! hands each row over separately. Instead, two plain scans through
//! rusqlite: every order header once (into a table by id), then every
//! line in the table's own order (by SKU, then order id), each line's
//! order found in that table, summed per SKU and header group as the
//! aggregate of `feed_rows.rs` would. No string is copied per line: SKUs
//! are compared in place and copied once each, header fields are interned.

use rustc_hash::FxHashMap;
use sqlx::SqliteConnection;

use super::direct::{db_error, with_rusqlite};
use crate::store::StoreError;
use crate::store::feed_rows::TallyRow;

/// An order header as the tally needs it; text fields interned.
struct Header {
    ship_from: u32,
    status: u32,
    payment: u32,
    old: bool,
    date_key: Box<str>,
}

/// One group of a SKU's lines, as one aggregate row.
struct Group {
    ship_from: u32,
    status: u32,
    payment: u32,
    old: bool,
    allocated: i64,
    backordered: i64,
    frozen_held: i64,
    waiting: i64,
    last_waiting_order: Option<u32>,
    oldest: Option<u32>,
}

#[derive(Default)]
struct Interner {
    ids: FxHashMap<Option<String>, u32>,
    texts: Vec<Option<String>>,
}

impl Interner {
    fn intern(&mut self, text: Option<&str>) -> u32 {
        if let Some(&id) = self.ids.get(&text.map(str::to_owned)) {
            return id;
        }
        let id = self.texts.len() as u32;
        self.texts.push(text.map(str::to_owned));
        self.ids.insert(text.map(str::to_owned), id);
        id
    }

    fn text(&self, id: u32) -> Option<String> {
        self.texts[id as usize].clone()
    }
}

/// The rows of `feed_rows`' aggregate; `cutoff`: the date key before which
/// an order is older than `max_days_back`.
pub(in crate::store) async fn tally_rows(
    conn: &mut SqliteConnection,
    cutoff: Option<String>,
) -> Result<Vec<TallyRow>, StoreError> {
    with_rusqlite(conn, |db| tally(db, cutoff.as_deref()).map_err(db_error)).await
}

fn tally(db: &rusqlite::Connection, cutoff: Option<&str>) -> rusqlite::Result<Vec<TallyRow>> {
    let mut interner = Interner::default();
    let mut headers: Vec<Header> = Vec::new();
    let mut by_id: FxHashMap<Box<str>, u32> = FxHashMap::default();
    let mut statement = db.prepare(
        "SELECT id, ship_from, status, payment_status, rtrim(order_date, 'Z') FROM orders",
    )?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let date_key: String = row.get(4)?;
        let header = Header {
            ship_from: interner.intern(row.get_ref(1)?.as_str_or_null()?),
            status: interner.intern(Some(row.get_ref(2)?.as_str()?)),
            payment: interner.intern(Some(row.get_ref(3)?.as_str()?)),
            old: cutoff.is_some_and(|c| date_key.as_str() < c),
            date_key: date_key.into_boxed_str(),
        };
        by_id.insert(row.get_ref(0)?.as_str()?.into(), headers.len() as u32);
        headers.push(header);
    }
    drop(rows);

    let mut out: Vec<TallyRow> = Vec::new();
    let mut sku = String::new();
    let mut groups: Vec<Group> = Vec::new();
    let flush = |sku: &str, groups: &mut Vec<Group>, out: &mut Vec<TallyRow>| {
        for g in groups.drain(..) {
            out.push((
                sku.to_owned(),
                interner.text(g.ship_from),
                interner.text(g.status).unwrap_or_default(),
                interner.text(g.payment).unwrap_or_default(),
                i64::from(g.old),
                g.allocated,
                g.backordered,
                g.frozen_held,
                g.waiting,
                g.oldest.map(|o| headers[o as usize].date_key.to_string()),
            ));
        }
    };
    let mut statement = db.prepare("SELECT sku, order_id, qty, backorder_qty FROM order_lines")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let line_sku = row.get_ref(0)?.as_str()?;
        if line_sku != sku {
            flush(&sku, &mut groups, &mut out);
            sku.clear();
            sku.push_str(line_sku);
        }
        // A line without its order cannot be stored (a foreign key).
        let Some(&order) = by_id.get(row.get_ref(1)?.as_str()?) else {
            continue;
        };
        let (qty, backorder_qty): (i64, i64) = (row.get(2)?, row.get(3)?);
        let h = &headers[order as usize];
        let at = match groups.iter().position(|g| {
            (g.ship_from, g.status, g.payment, g.old) == (h.ship_from, h.status, h.payment, h.old)
        }) {
            Some(at) => at,
            None => {
                groups.push(Group {
                    ship_from: h.ship_from,
                    status: h.status,
                    payment: h.payment,
                    old: h.old,
                    allocated: 0,
                    backordered: 0,
                    frozen_held: 0,
                    waiting: 0,
                    last_waiting_order: None,
                    oldest: None,
                });
                groups.len() - 1
            }
        };
        let g = &mut groups[at];
        g.allocated += qty - backorder_qty;
        g.backordered += backorder_qty;
        g.frozen_held += qty - backorder_qty.clamp(0, qty.max(0));
        if backorder_qty > 0 {
            // Lines come by order id within a SKU: an order's lines are
            // consecutive, so it is counted once.
            if g.last_waiting_order != Some(order) {
                g.waiting += 1;
                g.last_waiting_order = Some(order);
            }
            if g.oldest
                .is_none_or(|o| h.date_key < headers[o as usize].date_key)
            {
                g.oldest = Some(order);
            }
        }
    }
    flush(&sku, &mut groups, &mut out);
    Ok(out)
}
