//! `import` on SQLite: the stored state replaced by a snapshot, in the
//! caller's one write transaction.
//!
//! A million lines in a few seconds comes from four things, none of which
//! changes what is stored:
//! - rows go through prepared rusqlite statements on sqlx's handle, one
//!   bind and step each (no JSON built and decoded per row);
//! - each table gets its rows in its key order, so every insert appends to
//!   the end of its b-tree instead of landing on a random page;
//! - the secondary indexes of the rewritten tables are dropped for the
//!   load and created again from their own stored definitions before the
//!   commit (one sort each instead of a random insert per row), and so are
//!   the pool-version triggers, which do nothing while the import has the
//!   pool log paused anyway. It is all one transaction: a failure rolls the
//!   schema back with the rows, and other connections never see it;
//! - foreign keys are not checked row by row (the caller turns them off
//!   around the transaction): the snapshot passed `engine::validate`, which
//!   refuses any warehouse it does not declare, and a line is stored with
//!   the order it is written in, so every reference holds by construction.

use rusqlite::{Connection, params};
use sqlx::SqliteConnection;

use super::direct::{db_error, with_rusqlite};
use crate::engine::snapshot::{Order, Snapshot};
use crate::engine::time_format::{format_date, format_timestamp};
use crate::store::{ImportStep, StoreError, assemble};

use crate::store::IMPORTED_TABLES as TABLES;

/// Rows between two progress reports.
const REPORT_EVERY: u64 = 1 << 14;

/// The cache for the load (negative: KiB), 64 MiB: the unique index of
/// line ids (about 46 bytes a line), which no insertion order can serve
/// together with the lines' own key, then stays in memory while it is
/// filled at random, instead of pages going to the WAL and back.
const LOAD_CACHE: i64 = -65_536;

/// Replaces the stored state with `snapshot` inside the open transaction
/// on `conn` (pool log paused, foreign keys off) and marks every SKU of its
/// lines dirty with `cause`; the number of SKUs marked.
pub(super) async fn replace_state(
    conn: &mut SqliteConnection,
    snapshot: &Snapshot,
    cause: &str,
    progress: &(dyn Fn(ImportStep) + Sync),
) -> Result<u64, StoreError> {
    with_rusqlite(conn, |db| {
        let run = || -> rusqlite::Result<u64> {
            let cache: i64 = db.query_row("PRAGMA cache_size", [], |r| r.get(0))?;
            db.execute_batch(&format!("PRAGMA cache_size = {LOAD_CACHE}"))?;
            let result = load(db, snapshot, cause, progress);
            db.execute_batch(&format!("PRAGMA cache_size = {cache}"))?;
            result
        };
        run().map_err(db_error)
    })
    .await
}

fn load(
    db: &Connection,
    snapshot: &Snapshot,
    cause: &str,
    progress: &(dyn Fn(ImportStep) + Sync),
) -> rusqlite::Result<u64> {
    let rebuilt = set_aside_schema(db)?;
    for table in TABLES {
        // Without triggers or checked foreign keys, SQLite empties the
        // table whole instead of row by row.
        db.execute_batch(&format!("DELETE FROM {table}"))?;
    }
    let mut rows = Rows::new(snapshot, progress);
    write_stock(db, snapshot)?;
    let orders = write_orders(db, snapshot, &mut rows)?;
    let skus = write_lines(db, snapshot, &orders, &mut rows)?;
    drop(orders);
    progress(ImportStep::Indexing);
    for statement in &rebuilt {
        db.execute_batch(statement)?;
    }
    mark_dirty(db, &skus, cause)
}

/// Drops the secondary indexes of the replaced tables and the pool
/// triggers on them, and returns the statements that create them again,
/// as stored in the schema (whatever migration made them).
fn set_aside_schema(db: &Connection) -> rusqlite::Result<Vec<String>> {
    let tables = TABLES.map(|t| format!("'{t}'")).join(", ");
    let mut found = db.prepare(&format!(
        "SELECT type, name, sql FROM sqlite_schema
         WHERE tbl_name IN ({tables}) AND sql IS NOT NULL
           AND (type = 'index' OR (type = 'trigger' AND name LIKE 'pool\\_%' ESCAPE '\\'))
         ORDER BY type = 'trigger', rowid"
    ))?;
    let found: Vec<(String, String, String)> = found
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut rebuilt = Vec::with_capacity(found.len());
    for (kind, name, sql) in found {
        let name = name.replace('"', "\"\"");
        db.execute_batch(&format!("DROP {} \"{name}\"", kind.to_uppercase()))?;
        rebuilt.push(sql);
    }
    Ok(rebuilt)
}

/// Counts written rows of orders and lines for the progress display.
struct Rows<'a> {
    done: u64,
    total: u64,
    progress: &'a (dyn Fn(ImportStep) + Sync),
}

impl<'a> Rows<'a> {
    fn new(snapshot: &Snapshot, progress: &'a (dyn Fn(ImportStep) + Sync)) -> Self {
        let lines: usize = snapshot.orders.iter().map(|o| o.lines.len()).sum();
        let total = (snapshot.orders.len() + lines) as u64;
        progress(ImportStep::Writing { done: 0, total });
        Rows {
            done: 0,
            total,
            progress,
        }
    }

    fn one(&mut self) {
        self.done += 1;
        if self.done.is_multiple_of(REPORT_EVERY) || self.done == self.total {
            (self.progress)(ImportStep::Writing {
                done: self.done,
                total: self.total,
            });
        }
    }
}

/// Settings, warehouses, products, inventory and purchase orders.
fn write_stock(db: &Connection, s: &Snapshot) -> rusqlite::Result<()> {
    let settings = serde_json::to_string(&s.settings).expect("settings serialize");
    db.execute(
        "INSERT INTO client_settings (id, settings) VALUES (1, ?1)",
        [settings],
    )?;
    let mut insert =
        db.prepare("INSERT INTO warehouses (id, position, kind) VALUES (?1, ?2, ?3)")?;
    for (position, w) in s.warehouses.iter().enumerate() {
        insert.execute(params![w.id, position as i64, w.kind.as_str()])?;
    }
    let mut insert = db.prepare(
        "INSERT INTO products (sku, position, replacement_sku, vendor, allow_backorders, backorder_thresholds)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (position, p) in sorted_by(&s.products, |p| p.sku.as_str()) {
        insert.execute(params![
            p.sku,
            position as i64,
            p.replacement_sku,
            p.vendor,
            p.allow_backorders,
            assemble::thresholds_column(p)
        ])?;
    }
    // Rows repeating a (sku, warehouse) are summed, as section 3 sums them.
    let mut insert = db.prepare(
        "INSERT INTO inventory (sku, warehouse, on_hand) VALUES (?1, ?2, ?3)
         ON CONFLICT (sku, warehouse) DO UPDATE SET on_hand = on_hand + excluded.on_hand",
    )?;
    let mut inventory: Vec<_> = s.inventory.iter().collect();
    // Stable: repeated rows are summed in the snapshot's order.
    inventory.sort_by(|a, b| (&a.sku, &a.warehouse).cmp(&(&b.sku, &b.warehouse)));
    for r in inventory {
        insert.execute(params![r.sku, r.warehouse, r.on_hand])?;
    }
    let mut insert = db.prepare(
        "INSERT INTO purchase_orders (id, position, sku, warehouse, qty_ordered, qty_received, expected_date)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (position, po) in sorted_by(&s.purchase_orders, |po| po.id.as_str()) {
        insert.execute(params![
            po.id,
            position as i64,
            po.sku,
            po.warehouse,
            po.qty_ordered,
            po.qty_received,
            po.expected_date.as_ref().map(format_date)
        ])?;
    }
    Ok(())
}

/// The records with their positions in the snapshot, in key order.
fn sorted_by<'a, T>(records: &'a [T], key: impl Fn(&'a T) -> &'a str) -> Vec<(usize, &'a T)> {
    let mut sorted: Vec<(usize, &T)> = records.iter().enumerate().collect();
    sorted.sort_unstable_by(|a, b| key(a.1).cmp(key(b.1)));
    sorted
}

/// The orders' headers with their stored totals, in id order; returns
/// the orders with their positions in the snapshot, in that order.
fn write_orders<'a>(
    db: &Connection,
    s: &'a Snapshot,
    rows: &mut Rows<'_>,
) -> rusqlite::Result<Vec<(usize, &'a Order)>> {
    let orders = sorted_by(&s.orders, |o| o.id.as_str());
    let mut insert = db.prepare(
        "INSERT INTO orders (id, position, order_date, payment_date, payment_status, status, rush, picked, ship_from,
                             backorder_status, backorder_qty, lines_open, lines_backordered, lines_whole,
                             customer_email, customer_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?;
    for &(position, o) in &orders {
        let (counts, backorder_qty) = assemble::stored_totals(o);
        let customer = o.customer.as_ref();
        insert.execute(params![
            o.id,
            position as i64,
            format_timestamp(&o.order_date),
            o.payment_date.as_ref().map(format_timestamp),
            o.payment_status.as_str(),
            o.status.as_str(),
            o.rush,
            o.picked,
            o.ship_from,
            counts.status().as_str(),
            backorder_qty,
            counts.open,
            counts.backordered,
            counts.whole,
            customer.and_then(|c| c.email.as_deref()),
            customer.and_then(|c| c.name.as_deref()),
        ])?;
        rows.one();
    }
    Ok(orders)
}

/// Every line, in the table's key order (SKU, order id, position); returns
/// the SKUs, sorted and distinct. `orders` is in id order, so sorting the
/// lines by SKU alone, stably, gives the key order.
fn write_lines<'a>(
    db: &Connection,
    s: &'a Snapshot,
    orders: &[(usize, &'a Order)],
    rows: &mut Rows<'_>,
) -> rusqlite::Result<Vec<&'a str>> {
    let total: usize = s.orders.iter().map(|o| o.lines.len()).sum();
    let mut lines: Vec<(&str, u32, u32)> = Vec::with_capacity(total);
    for (k, (_, o)) in orders.iter().enumerate() {
        for (position, l) in o.lines.iter().enumerate() {
            lines.push((l.sku.as_str(), k as u32, position as u32));
        }
    }
    lines.sort_by(|a, b| a.0.cmp(b.0));
    let mut insert = db.prepare(
        "INSERT INTO order_lines (sku, order_id, position, id, qty, backorder_qty)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut skus: Vec<&str> = Vec::new();
    for (sku, k, position) in lines {
        let order = orders[k as usize].1;
        let line = &order.lines[position as usize];
        insert.execute(params![
            sku,
            order.id,
            position as i64,
            line.id,
            line.qty,
            line.backorder_qty
        ])?;
        if skus.last() != Some(&sku) {
            skus.push(sku);
        }
        rows.one();
    }
    Ok(skus)
}

/// Marks each SKU dirty as of the newest event (a mark left from before
/// keeps its time).
fn mark_dirty(db: &Connection, skus: &[&str], cause: &str) -> rusqlite::Result<u64> {
    let seq: i64 = db.query_row(
        "SELECT COALESCE(MAX(seq), 0) FROM received_events",
        [],
        |r| r.get(0),
    )?;
    let mut upsert = db.prepare(
        "INSERT INTO dirty_skus (sku, marked_seq, cause) VALUES (?1, ?2, ?3)
         ON CONFLICT (sku) DO UPDATE SET marked_seq = excluded.marked_seq, cause = excluded.cause",
    )?;
    let mut marked = 0;
    for sku in skus {
        marked += upsert.execute(params![sku, seq, cause])? as u64;
    }
    Ok(marked)
}
