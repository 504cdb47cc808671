//! The whole stored book in one pass per table, stepped through rusqlite
//! (see `direct.rs` for why): every order header, then every line in the
//! table's own order (by SKU, a straight walk of the clustered table), each
//! handed on with its text borrowed from the row, so the only copies made
//! are the strings the engine's types own.
//!
//! The audit reads the book this way ([`AuditScan`]); a full
//! recalculation, which reads the same rows batch by batch today, could
//! use these readers as well.

use rusqlite::Connection;
use sqlx::SqliteConnection;

use super::direct::{self, db_error, with_rusqlite};
use crate::engine::snapshot::{InventoryRow, Line, Settings, Warehouse};
use crate::store::StoreError;
use crate::store::assemble;
use crate::store::audit_scan::{AuditScan, Differences, Stock};
use crate::store::codec;

/// The audit's pass ([`AuditScan`]) over the stored book, inside the
/// caller's transaction.
pub(super) async fn audit(
    conn: &mut SqliteConnection,
    as_of: chrono::DateTime<chrono::Utc>,
    cause: &str,
) -> Result<Differences, StoreError> {
    let settings = super::load_settings(conn).await?;
    let warehouses = super::load_warehouses(conn).await?;
    with_rusqlite(conn, |db| {
        with_small_cache(db, |db| {
            let stock = stock(db, settings, warehouses)?;
            let count: i64 = db
                .query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0))
                .map_err(db_error)?;
            let mut scan = AuditScan::new(stock, count as usize, as_of, cause);
            each_header(db, |header| {
                scan.add_order(header);
                Ok(())
            })?;
            each_line(db, |order_id, position, line, eta| {
                scan.add_line(order_id, position, line, eta)
            })?;
            Ok(scan.finish())
        })
    })
    .await
}

/// The scan's page cache while it reads (KiB): it reads each page once, in
/// table order, so a few MiB serve it as well as the connection's own.
const SCAN_CACHE_KIB: i64 = 4096;

/// Runs `read` with the file unmapped and a small page cache, then puts
/// the connection's own settings back (whatever `read` returned).
///
/// Why: the scan reads every page of the book once. Mapped, each page it
/// touches stays in the process's resident memory until the map goes
/// (212 MB of the 1,000,000-line book, beside 250 MB of the scan's own);
/// read with `pread` through a small cache, they stay in the OS's cache,
/// which is not the process's, and the scan is no slower.
fn with_small_cache<T>(
    db: &Connection,
    read: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let get = |pragma: &str| -> Result<i64, StoreError> {
        db.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
            .map_err(db_error)
    };
    let (mmap, cache) = (get("mmap_size")?, get("cache_size")?);
    db.execute_batch(&format!(
        "PRAGMA mmap_size = 0; PRAGMA cache_size = -{SCAN_CACHE_KIB}"
    ))
    .map_err(db_error)?;
    let result = read(db);
    let restored = db
        .execute_batch(&format!(
            "PRAGMA mmap_size = {mmap}; PRAGMA cache_size = {cache}"
        ))
        .map_err(db_error);
    let value = result?;
    restored?;
    Ok(value)
}

/// The products, inventory (by SKU and warehouse) and purchase orders (in
/// their stored order), with the settings and warehouses read before.
fn stock(
    db: &Connection,
    settings: Settings,
    warehouses: Vec<Warehouse>,
) -> Result<Stock, StoreError> {
    let read = || -> rusqlite::Result<_> {
        let mut statement = db.prepare(&format!(
            "SELECT {} FROM products",
            assemble::PRODUCT_COLUMNS
        ))?;
        let products = statement
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<rusqlite::Result<Vec<assemble::ProductRow>>>()?;
        let mut statement =
            db.prepare("SELECT sku, warehouse, on_hand FROM inventory ORDER BY sku, warehouse")?;
        let inventory = statement
            .query_map([], |r| {
                Ok(InventoryRow {
                    sku: r.get(0)?,
                    warehouse: r.get(1)?,
                    on_hand: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut statement = db.prepare(
            "SELECT id, sku, warehouse, qty_ordered, qty_received, expected_date
             FROM purchase_orders ORDER BY position",
        )?;
        let purchase_orders = statement
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<assemble::PurchaseOrderRow>>>()?;
        Ok((products, inventory, purchase_orders))
    };
    let (products, inventory, purchase_orders) = read().map_err(db_error)?;
    let products = products
        .into_iter()
        .map(assemble::product)
        .collect::<Result<Vec<_>, _>>()?;
    let purchase_orders = purchase_orders
        .into_iter()
        .map(assemble::purchase_order)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Stock {
        settings,
        warehouses,
        products,
        inventory,
        purchase_orders,
    })
}

/// Every order header with its stored totals, in key order.
fn each_header(
    db: &Connection,
    mut each: impl FnMut(crate::store::group::HeaderWithTotals) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut statement = db
        .prepare(&format!("SELECT {} FROM orders o", direct::HEADER_COLUMNS))
        .map_err(db_error)?;
    let mut rows = statement.query([]).map_err(db_error)?;
    while let Some(r) = rows.next().map_err(db_error)? {
        each(direct::header(r)?)?;
    }
    Ok(())
}

/// Every line, SKU after SKU (a walk of the SKU-clustered table), with its
/// order id borrowed from the row.
fn each_line(
    db: &Connection,
    mut each: impl FnMut(&str, i64, Line, Option<chrono::NaiveDate>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let text = |r: &rusqlite::Row<'_>, i: usize| -> Result<String, StoreError> {
        let value = r.get_ref(i).map_err(db_error)?;
        Ok(value.as_str().map_err(|e| db_error(e.into()))?.to_owned())
    };
    let mut statement = db
        .prepare("SELECT order_id, position, id, sku, qty, backorder_qty, eta FROM order_lines ORDER BY sku")
        .map_err(db_error)?;
    let mut rows = statement.query([]).map_err(db_error)?;
    while let Some(r) = rows.next().map_err(db_error)? {
        let order_id = r
            .get_ref(0)
            .and_then(|v| v.as_str().map_err(rusqlite::Error::from))
            .map_err(db_error)?;
        let line = Line {
            id: text(r, 2)?,
            sku: text(r, 3)?,
            qty: r.get(4).map_err(db_error)?,
            backorder_qty: r.get(5).map_err(db_error)?,
        };
        let eta = match r
            .get_ref(6)
            .and_then(|v| v.as_str_or_null().map_err(rusqlite::Error::from))
            .map_err(db_error)?
        {
            Some(text) => Some(codec::date(text, &|| format!("line {:?}", line.id))?),
            None => None,
        };
        each(order_id, r.get(1).map_err(db_error)?, line, eta)?;
    }
    Ok(())
}
