//! The large reads and writes of a recalculation (a group's lines, order
//! headers, written-back values), stepped through rusqlite on sqlx's own
//! connection handle.
//!
//! Why: sqlx's SQLite driver hands every row from its worker thread to the
//! caller and copies each value, several microseconds a row; a full
//! recalculation reads over a million rows and may write as many. rusqlite
//! steps the same prepared statement in place at SQLite's own speed. All of
//! it runs inside the transaction sqlx opened, while sqlx's lock on the
//! handle is held.

use rusqlite::Connection;
use sqlx::SqliteConnection;

use super::super::codec::HeaderRow;
use super::super::group::{HeaderWithTotals, LineRow};
use crate::engine::LineCounts;
use crate::engine::snapshot::{InventoryRow, Product, PurchaseOrder};
use crate::store::StoreError;
use crate::store::assemble;

pub(super) fn db_error(e: rusqlite::Error) -> StoreError {
    let busy = matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    );
    if busy {
        return StoreError::Busy(format!("bulk read: {e}"));
    }
    StoreError::Database(sqlx::Error::Protocol(format!("bulk read: {e}")))
}

/// Runs `read` with a rusqlite view of `conn`'s handle.
pub(super) async fn with_rusqlite<T>(
    conn: &mut SqliteConnection,
    read: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut locked = conn.lock_handle().await?;
    let handle = locked.as_raw_handle();
    // SAFETY: the handle stays open and unused by sqlx while `locked` lives
    // (sqlx's worker waits for the lock); `from_handle` does not close it on
    // drop, and the view is dropped before the lock is released.
    let view = unsafe { Connection::from_handle(handle.as_ptr()) }.map_err(db_error)?;
    let result = read(&view);
    drop(view);
    drop(locked);
    result
}

/// The lines of the SKUs in `sku_list` (a JSON array).
pub(super) async fn group_lines(
    conn: &mut SqliteConnection,
    sku_list: &str,
    expected_lines: usize,
) -> Result<Vec<LineRow>, StoreError> {
    with_rusqlite(conn, |db| {
        let read = || -> rusqlite::Result<Vec<LineRow>> {
            let mut statement = db.prepare(
                "SELECT l.order_id, l.position, l.id, l.sku, l.qty, l.backorder_qty, l.eta
                 FROM json_each(?1) j CROSS JOIN order_lines l ON l.sku = j.value",
            )?;
            let mut lines = Vec::with_capacity(expected_lines);
            let mut rows = statement.query([sku_list])?;
            while let Some(r) = rows.next()? {
                lines.push((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ));
            }
            Ok(lines)
        };
        read().map_err(db_error)
    })
    .await
}

pub(super) const HEADER_COLUMNS: &str =
    "o.id, o.order_date, o.payment_date, o.payment_status, o.status, o.rush, o.picked, o.ship_from,
     o.backorder_qty, o.lines_open, o.lines_backordered, o.lines_whole";

pub(super) fn header(r: &rusqlite::Row<'_>) -> Result<HeaderWithTotals, StoreError> {
    let text = |i: usize| -> rusqlite::Result<&str> {
        r.get_ref(i)?.as_str().map_err(rusqlite::Error::from)
    };
    let optional_text = |i: usize| -> rusqlite::Result<Option<&str>> {
        r.get_ref(i)?
            .as_str_or_null()
            .map_err(rusqlite::Error::from)
    };
    let row = HeaderRow(
        r.get(0).map_err(db_error)?,
        text(1).map_err(db_error)?,
        optional_text(2).map_err(db_error)?,
        text(3).map_err(db_error)?,
        text(4).map_err(db_error)?,
        r.get(5).map_err(db_error)?,
        r.get(6).map_err(db_error)?,
        r.get(7).map_err(db_error)?,
    );
    let counts = LineCounts {
        open: r.get(9).map_err(db_error)?,
        backordered: r.get(10).map_err(db_error)?,
        whole: r.get(11).map_err(db_error)?,
    };
    Ok((row.into_order()?, r.get(8).map_err(db_error)?, counts))
}

/// The headers of the orders whose ids `id_list` (a JSON array) names.
pub(super) async fn headers(
    conn: &mut SqliteConnection,
    id_list: &str,
) -> Result<Vec<HeaderWithTotals>, StoreError> {
    with_rusqlite(conn, |db| {
        let mut statement = db
            .prepare(&format!(
                "SELECT {HEADER_COLUMNS} FROM json_each(?1) j CROSS JOIN orders o ON o.id = j.value"
            ))
            .map_err(db_error)?;
        let mut rows = statement.query([id_list]).map_err(db_error)?;
        let mut headers = Vec::new();
        while let Some(r) = rows.next().map_err(db_error)? {
            headers.push(header(r)?);
        }
        Ok(headers)
    })
    .await
}

/// Every order header.
pub(super) async fn all_headers(
    conn: &mut SqliteConnection,
) -> Result<Vec<HeaderWithTotals>, StoreError> {
    with_rusqlite(conn, |db| {
        let count: i64 = db
            .query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0))
            .map_err(db_error)?;
        let mut headers = Vec::with_capacity(count as usize);
        let mut statement = db
            .prepare(&format!("SELECT {HEADER_COLUMNS} FROM orders o"))
            .map_err(db_error)?;
        let mut rows = statement.query([]).map_err(db_error)?;
        while let Some(r) = rows.next().map_err(db_error)? {
            headers.push(header(r)?);
        }
        Ok(headers)
    })
    .await
}

/// The dirty SKUs to recalculate next, in key order, with their causes: up
/// to `max_skus`, and no more lines than `line_budget` (but at least one
/// SKU, however long its queue). Also how many lines they have.
pub(super) async fn claim(
    conn: &mut SqliteConnection,
    max_skus: usize,
    line_budget: usize,
) -> Result<(Vec<(String, String)>, usize), StoreError> {
    with_rusqlite(conn, |db| {
        let claim = || -> rusqlite::Result<(Vec<(String, String)>, usize)> {
            let mut dirty =
                db.prepare("SELECT sku, cause FROM dirty_skus ORDER BY sku LIMIT ?1")?;
            let mut count = db.prepare("SELECT COUNT(*) FROM order_lines WHERE sku = ?1")?;
            let mut claimed = Vec::new();
            let mut lines = 0usize;
            let mut rows = dirty.query([max_skus as i64])?;
            while let Some(r) = rows.next()? {
                let sku: String = r.get(0)?;
                let n: i64 = count.query_row([&sku], |c| c.get(0))?;
                if !claimed.is_empty() && lines + n as usize > line_budget {
                    break;
                }
                lines += n as usize;
                claimed.push((sku, r.get(1)?));
            }
            Ok((claimed, lines))
        };
        claim().map_err(db_error)
    })
    .await
}

/// The products, inventory rows and purchase orders of the SKUs in
/// `sku_list` (a JSON array).
pub(super) async fn group_stock(
    conn: &mut SqliteConnection,
    sku_list: &str,
) -> Result<(Vec<Product>, Vec<InventoryRow>, Vec<PurchaseOrder>), StoreError> {
    with_rusqlite(conn, |db| {
        let read = || -> rusqlite::Result<_> {
            let mut statement = db.prepare(
                "SELECT p.sku, p.replacement_sku, p.vendor, p.allow_backorders, p.backorder_thresholds
                 FROM json_each(?1) j CROSS JOIN products p ON p.sku = j.value",
            )?;
            let products = statement
                .query_map([sku_list], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<rusqlite::Result<Vec<assemble::ProductRow>>>()?;
            let mut statement = db.prepare(
                "SELECT i.sku, i.warehouse, i.on_hand FROM json_each(?1) j CROSS JOIN inventory i ON i.sku = j.value
                 ORDER BY i.sku, i.warehouse",
            )?;
            let inventory = statement
                .query_map([sku_list], |r| {
                    Ok(InventoryRow {
                        sku: r.get(0)?,
                        warehouse: r.get(1)?,
                        on_hand: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut statement = db.prepare(
                "SELECT p.id, p.sku, p.warehouse, p.qty_ordered, p.qty_received, p.expected_date
                 FROM json_each(?1) j CROSS JOIN purchase_orders p ON p.sku = j.value
                 ORDER BY p.position",
            )?;
            let purchase_orders = statement
                .query_map([sku_list], |r| {
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
        let (products, inventory, rows) = read().map_err(db_error)?;
        let products = products
            .into_iter()
            .map(assemble::product)
            .collect::<Result<Vec<Product>, _>>()?;
        let purchase_orders = rows
            .into_iter()
            .map(assemble::purchase_order)
            .collect::<Result<Vec<PurchaseOrder>, _>>()?;
        Ok((products, inventory, purchase_orders))
    })
    .await
}
