//! Import and export of the whole state (PostgreSQL).
//!
//! Import streams each table through `COPY … FROM STDIN` in the text format:
//! one round trip per chunk instead of one statement per row, which is what
//! makes a million lines take seconds. Export streams rows as they come.

use crate::store::recalculate::pool_cache;
use std::io::Write as _;

use futures_util::TryStreamExt;
use rustc_hash::FxHashMap;
use sqlx::PgConnection;

use super::queries::{HEADER_COLUMNS, header, map_rows};
use crate::engine::Snapshot;
use crate::engine::snapshot::{InventoryRow, Order, PurchaseOrder};
use crate::engine::time_format::{format_date, format_timestamp};
use crate::store::{ImportStep, ImportSummary, StoreError, assemble};

/// Bytes of COPY data sent at a time: large enough that the round trips
/// do not count, small enough that the server works while we encode.
const COPY_CHUNK: usize = 1 << 20;

/// Replaces the stored state with `snapshot` and marks every SKU dirty, in
/// the caller's transaction (which then queues the job).
pub(super) async fn import(
    conn: &mut PgConnection,
    snapshot: &Snapshot,
    cause: &str,
    progress: &(dyn Fn(ImportStep) + Sync),
) -> Result<ImportSummary, StoreError> {
    // Every row is rewritten: one epoch bump at the end, not a log row each.
    pool_cache::pause_log::<sqlx::Postgres>(conn).await?;
    // The two large tables are loaded without their foreign keys and
    // secondary indexes, which are re-created afterwards: checking a key
    // and inserting into each index row by row costs several times the
    // load itself, where one validation join and one sort per index do not.
    // The exclusive locks come first, so that nothing holding one of these
    // tables can deadlock with the import's later lock upgrades.
    sqlx::query("LOCK TABLE orders, order_lines IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *conn)
        .await?;
    let restore = set_aside_keys(conn, &["orders", "order_lines"]).await?;
    // Room to sort a million keys in memory when the indexes are rebuilt.
    sqlx::query("SET LOCAL maintenance_work_mem = '256MB'")
        .execute(&mut *conn)
        .await?;
    // DELETE, not TRUNCATE: TRUNCATE is not MVCC-safe (a reader whose
    // snapshot predates the import could find the tables empty).
    for table in crate::store::IMPORTED_TABLES {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(&mut *conn)
            .await?;
    }
    let settings = serde_json::to_string(&snapshot.settings).expect("settings serialize");
    sqlx::query("INSERT INTO client_settings (id, settings) VALUES (1, $1)")
        .bind(settings)
        .execute(&mut *conn)
        .await?;
    copy_in(
        conn,
        "warehouses (id, position, kind)",
        snapshot.warehouses.iter().enumerate(),
        |row, (position, w)| {
            row.text(&w.id)
                .int(position as i64)
                .text(w.kind.as_str())
                .end_row();
        },
        &mut |_| {},
    )
    .await?;
    copy_in(
        conn,
        "products (sku, position, replacement_sku, vendor, allow_backorders, backorder_thresholds)",
        snapshot.products.iter().enumerate(),
        |row, (position, p)| {
            row.text(&p.sku)
                .int(position as i64)
                .opt_text(p.replacement_sku.as_deref())
                .opt_text(p.vendor.as_deref())
                .text(if p.allow_backorders { "t" } else { "f" })
                .opt_text(assemble::thresholds_column(p).as_deref())
                .end_row();
        },
        &mut |_| {},
    )
    .await?;
    // Rows repeating a (sku, warehouse) are summed, as section 3 sums them.
    let mut inventory: Vec<(&str, &str, i64)> = Vec::with_capacity(snapshot.inventory.len());
    let mut at: FxHashMap<(&str, &str), usize> = FxHashMap::default();
    for r in &snapshot.inventory {
        let key = (r.sku.as_str(), r.warehouse.as_str());
        match at.get(&key) {
            Some(&i) => inventory[i].2 += r.on_hand,
            None => {
                at.insert(key, inventory.len());
                inventory.push((key.0, key.1, r.on_hand));
            }
        }
    }
    drop(at);
    copy_in(
        conn,
        "inventory (sku, warehouse, on_hand)",
        inventory,
        |row, (sku, warehouse, on_hand)| {
            row.text(sku).text(warehouse).int(on_hand).end_row();
        },
        &mut |_| {},
    )
    .await?;
    copy_in(
        conn,
        "purchase_orders (id, position, sku, warehouse, qty_ordered, qty_received, expected_date)",
        snapshot.purchase_orders.iter().enumerate(),
        |row, (position, po)| {
            row.text(&po.id)
                .int(position as i64)
                .text(&po.sku)
                .text(&po.warehouse)
                .int(po.qty_ordered)
                .int(po.qty_received)
                .opt_text(po.expected_date.as_ref().map(format_date).as_deref())
                .end_row();
        },
        &mut |_| {},
    )
    .await?;
    let total = (snapshot.orders.len()
        + snapshot.orders.iter().map(|o| o.lines.len()).sum::<usize>()) as u64;
    let mut done = 0;
    progress(ImportStep::Writing { done, total });
    let mut written = |rows: u64| {
        done += rows;
        progress(ImportStep::Writing { done, total });
    };
    copy_in(
        conn,
        "orders (id, position, order_date, payment_date, payment_status, status, rush, picked, ship_from,
                 backorder_status, backorder_qty, lines_open, lines_backordered, lines_whole)",
        snapshot.orders.iter().enumerate(),
        |row, (position, o)| {
            let (counts, backorder_qty) = assemble::stored_totals(o);
            row.text(&o.id)
                .int(position as i64)
                .text(&format_timestamp(&o.order_date))
                .opt_text(o.payment_date.as_ref().map(format_timestamp).as_deref())
                .text(o.payment_status.as_str())
                .text(o.status.as_str())
                .int(i64::from(o.rush))
                .int(i64::from(o.picked))
                .opt_text(o.ship_from.as_deref())
                .text(counts.status().as_str())
                .int(backorder_qty)
                .int(counts.open)
                .int(counts.backordered)
                .int(counts.whole)
                .end_row();
        },
        &mut written,
    )
    .await?;
    copy_in(
        conn,
        "order_lines (id, sku, order_id, position, qty, backorder_qty)",
        &snapshot.orders,
        |rows, o| {
            for (position, l) in o.lines.iter().enumerate() {
                rows.text(&l.id)
                    .text(&l.sku)
                    .text(&o.id)
                    .int(position as i64)
                    .int(l.qty)
                    .int(l.backorder_qty)
                    .end_row();
            }
        },
        &mut written,
    )
    .await?;

    progress(ImportStep::Indexing);
    for statement in restore {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut *conn)
            .await?;
    }

    let mut skus: Vec<&str> = snapshot
        .orders
        .iter()
        .flat_map(|o| o.lines.iter().map(|l| l.sku.as_str()))
        .collect();
    skus.sort_unstable();
    skus.dedup();
    let marked = sqlx::query(
        "INSERT INTO dirty_skus (sku, marked_seq, cause)
         SELECT sku, (SELECT COALESCE(MAX(seq), 0) FROM received_events), $2 FROM unnest($1::text[]) AS s (sku)
         ON CONFLICT (sku) DO UPDATE SET marked_seq = excluded.marked_seq, cause = excluded.cause",
    )
    .bind(&skus)
    .bind(cause)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let with_customer: Vec<&Order> = snapshot
        .orders
        .iter()
        .filter(|o| o.customer.is_some())
        .collect();
    crate::store::customers::postgres::write(&mut *conn, &with_customer).await?;
    // The tables changed wholesale: fresh statistics let the recalculation
    // that follows plan its reads for the new sizes at once.
    sqlx::query("ANALYZE orders, order_lines")
        .execute(&mut *conn)
        .await?;
    pool_cache::resume_log::<sqlx::Postgres>(conn).await?;
    Ok(ImportSummary {
        orders: snapshot.orders.len(),
        lines: snapshot.orders.iter().map(|o| o.lines.len()).sum(),
        skus_marked_dirty: marked as usize,
    })
}

/// The inventory by SKU and warehouse in byte order, and the purchase
/// orders in their stored order (which decides the PO an ETA comes from):
/// what the export and the audit read alike.
pub(super) async fn stock_rows(
    conn: &mut PgConnection,
) -> Result<(Vec<InventoryRow>, Vec<PurchaseOrder>), StoreError> {
    let inventory = map_rows(
        conn,
        sqlx::query_as(
            r#"SELECT sku, warehouse, on_hand FROM inventory ORDER BY sku COLLATE "C", warehouse COLLATE "C""#,
        ),
        assemble::inventory_row,
    )
    .await?;
    let purchase_orders = map_rows(
        conn,
        sqlx::query_as(
            "SELECT id, sku, warehouse, qty_ordered, qty_received, expected_date
             FROM purchase_orders ORDER BY position",
        ),
        assemble::purchase_order,
    )
    .await?;
    Ok((inventory, purchase_orders))
}

/// The stored state as a snapshot, `as_of` left for the caller.
pub(super) async fn export(conn: &mut PgConnection) -> Result<Snapshot, StoreError> {
    let settings = super::load_settings(conn).await?;
    let warehouses = super::load_warehouses(conn).await?;
    let products = map_rows(
        conn,
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM products ORDER BY position",
            assemble::PRODUCT_COLUMNS
        ))),
        assemble::product,
    )
    .await?;
    let (inventory, purchase_orders) = stock_rows(conn).await?;

    let mut orders: Vec<Order> = Vec::new();
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {HEADER_COLUMNS} FROM orders o ORDER BY o.position"
    )))
    .fetch(&mut *conn);
    while let Some(row) = rows.try_next().await? {
        orders.push(header(&row)?.into_order()?);
    }
    drop(rows);

    // Lines come in the orders' order, so one merge pass attaches them.
    assemble::attach_lines(
        &mut orders,
        sqlx::query_as(
            "SELECT l.order_id, l.id, l.sku, l.qty, l.backorder_qty
             FROM orders o JOIN order_lines l ON l.order_id = o.id
             ORDER BY o.position, l.position",
        )
        .fetch(&mut *conn),
    )
    .await?;
    let customers = crate::store::customers::postgres::read(&mut *conn).await?;
    crate::store::customers::attach(&mut orders, customers);

    Ok(Snapshot {
        as_of: None,
        settings,
        warehouses,
        products,
        inventory,
        purchase_orders,
        orders,
    })
}

/// Drops the foreign keys of `tables` and their indexes that back no
/// constraint, as the schema defines them now (so that a later migration
/// is followed), and returns the statements that re-create them: indexes
/// first, then the keys, whose validation can use them.
async fn set_aside_keys(
    conn: &mut PgConnection,
    tables: &[&str],
) -> Result<Vec<String>, StoreError> {
    let keys: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, quote_ident(c.conname), pg_get_constraintdef(c.oid)
         FROM pg_constraint c
         WHERE c.contype = 'f' AND c.conrelid = ANY($1::text[]::regclass[])
         ORDER BY c.oid",
    )
    .bind(tables)
    .fetch_all(&mut *conn)
    .await?;
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
         FROM pg_index i
         WHERE i.indrelid = ANY($1::text[]::regclass[])
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
         ORDER BY i.indexrelid",
    )
    .bind(tables)
    .fetch_all(&mut *conn)
    .await?;
    let mut restore = Vec::new();
    for (table, name, definition) in keys {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE {table} DROP CONSTRAINT {name}"
        )))
        .execute(&mut *conn)
        .await?;
        restore.push(format!(
            "ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"
        ));
    }
    for (name, definition) in indexes.into_iter().rev() {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX {name}")))
            .execute(&mut *conn)
            .await?;
        restore.insert(0, definition);
    }
    Ok(restore)
}

/// Streams `items` into `table_and_columns` with `COPY … FROM STDIN`, each
/// item written as rows by `write`.
async fn copy_in<T>(
    conn: &mut PgConnection,
    table_and_columns: &str,
    items: impl IntoIterator<Item = T>,
    mut write: impl FnMut(&mut CopyRows, T),
    sent: &mut (dyn FnMut(u64) + Send),
) -> Result<(), StoreError> {
    let mut copy = conn
        .copy_in_raw(&format!("COPY {table_and_columns} FROM STDIN"))
        .await?;
    let mut rows = CopyRows::default();
    for item in items {
        write(&mut rows, item);
        if rows.buf.len() >= COPY_CHUNK {
            copy.send(rows.buf.as_slice()).await?;
            rows.buf.clear();
            sent(std::mem::take(&mut rows.rows));
        }
    }
    if !rows.buf.is_empty() {
        copy.send(rows.buf.as_slice()).await?;
    }
    copy.finish().await?;
    sent(rows.rows);
    Ok(())
}

/// Rows in COPY's text format: fields separated by tabs, rows ended by a
/// newline, `\N` for NULL, and a backslash before any backslash, tab,
/// newline or carriage return in a value (else they would end it).
#[derive(Default)]
struct CopyRows {
    buf: Vec<u8>,
    /// A field was written in the current row (the next one needs a tab).
    open: bool,
    /// Rows ended since the last send.
    rows: u64,
}

impl CopyRows {
    fn field(&mut self) {
        if self.open {
            self.buf.push(b'\t');
        }
        self.open = true;
    }

    fn text(&mut self, value: &str) -> &mut Self {
        self.field();
        let bytes = value.as_bytes();
        // These bytes are ASCII, never part of a multi-byte UTF-8 sequence.
        if !bytes
            .iter()
            .any(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
        {
            self.buf.extend_from_slice(bytes);
            return self;
        }
        for &b in bytes {
            match b {
                b'\\' => self.buf.extend_from_slice(b"\\\\"),
                b'\t' => self.buf.extend_from_slice(b"\\t"),
                b'\n' => self.buf.extend_from_slice(b"\\n"),
                b'\r' => self.buf.extend_from_slice(b"\\r"),
                _ => self.buf.push(b),
            }
        }
        self
    }

    fn opt_text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.text(v),
            None => {
                self.field();
                self.buf.extend_from_slice(b"\\N");
                self
            }
        }
    }

    fn int(&mut self, value: i64) -> &mut Self {
        self.field();
        write!(self.buf, "{value}").expect("writing to a Vec succeeds");
        self
    }

    fn end_row(&mut self) -> &mut Self {
        self.buf.push(b'\n');
        self.open = false;
        self.rows += 1;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::CopyRows;

    #[test]
    fn copy_text_escapes_what_would_end_a_field_or_row() {
        let mut rows = CopyRows::default();
        rows.text("a\tb\nc\\d\re").opt_text(None).int(-42).text("é");
        rows.end_row();
        assert_eq!(
            String::from_utf8(rows.buf).unwrap(),
            "a\\tb\\nc\\\\d\\re\t\\N\t-42\té\n"
        );
    }
}
