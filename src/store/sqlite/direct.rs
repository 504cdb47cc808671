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
use crate::store::recalculate::{ClaimBudget, Mark};

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
                lines.push(line_row(r)?);
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

/// The dirty SKUs to recalculate next, in key order, with their causes
/// and marks: up to `max_skus`, within the line budget
/// ([`ClaimBudget`]).
pub(super) async fn claim(
    conn: &mut SqliteConnection,
    max_skus: usize,
    line_budget: usize,
    after: Option<&str>,
) -> Result<Vec<Mark>, StoreError> {
    with_rusqlite(conn, |db| {
        let claim = || -> rusqlite::Result<Vec<Mark>> {
            // Two statements, so that each walks the key's index.
            let mut dirty = db.prepare(match after {
                // A drain takes the longest waiting first (see
                // `clear_marks`), so a hot SKU marked again and again does
                // not keep the others waiting; a full run walks the keys.
                None => "SELECT sku, cause, marked_seq FROM dirty_skus ORDER BY marked_at, sku LIMIT ?1",
                Some(_) => {
                    "SELECT sku, cause, marked_seq FROM dirty_skus WHERE sku > ?2 ORDER BY sku LIMIT ?1"
                }
            })?;
            let mut count = db.prepare("SELECT COUNT(*) FROM order_lines WHERE sku = ?1")?;
            let mut budget = ClaimBudget::new(line_budget);
            let mut claimed = Vec::new();
            let mut rows = match after {
                None => dirty.query([max_skus as i64])?,
                Some(after) => dirty.query(rusqlite::params![max_skus as i64, after])?,
            };
            while let Some(r) = rows.next()? {
                let sku: String = r.get(0)?;
                let lines: i64 = count.query_row([&sku], |c| c.get(0))?;
                if !budget.admit(lines as usize) {
                    break;
                }
                claimed.push(Mark {
                    sku,
                    cause: r.get(1)?,
                    seq: r.get(2)?,
                    lines: lines as usize,
                });
            }
            Ok(claimed)
        };
        claim().map_err(db_error)
    })
    .await
}

/// The lines of the orders in `id_list` that are of the SKUs in
/// `sku_list` (both JSON arrays).
pub(super) async fn order_lines_in(
    conn: &mut SqliteConnection,
    id_list: &str,
    sku_list: &str,
) -> Result<Vec<LineRow>, StoreError> {
    with_rusqlite(conn, |db| {
        let read = || -> rusqlite::Result<Vec<LineRow>> {
            let mut statement = db.prepare(
                "SELECT l.order_id, l.position, l.id, l.sku, l.qty, l.backorder_qty, l.eta
                 FROM json_each(?1) j CROSS JOIN order_lines l ON l.order_id = j.value
                 WHERE l.sku IN (SELECT value FROM json_each(?2))",
            )?;
            let mut rows = statement.query([id_list, sku_list])?;
            let mut lines = Vec::new();
            while let Some(r) = rows.next()? {
                lines.push(line_row(r)?);
            }
            Ok(lines)
        };
        read().map_err(db_error)
    })
    .await
}

fn line_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LineRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
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

/// The stored totals and `(qty, backorder_qty)` lines of the orders
/// `order_ids` (unknown ones are left out): two prepared statements
/// stepped per order, since a full run's end sets hundreds of thousands.
pub(super) async fn orders_with_lines(
    conn: &mut SqliteConnection,
    order_ids: &[String],
) -> Result<Vec<crate::store::ingest::OrderLines>, StoreError> {
    with_rusqlite(conn, |db| {
        let read = || -> rusqlite::Result<Vec<crate::store::ingest::OrderLines>> {
            let mut header = db.prepare(
                "SELECT backorder_qty, lines_open, lines_backordered, lines_whole FROM orders WHERE id = ?1",
            )?;
            let mut lines =
                db.prepare("SELECT qty, backorder_qty FROM order_lines WHERE order_id = ?1")?;
            let mut orders = Vec::with_capacity(order_ids.len());
            for order_id in order_ids {
                let mut rows = header.query([order_id])?;
                let Some(row) = rows.next()? else {
                    continue;
                };
                let (backorder_qty, counts) = (
                    row.get(0)?,
                    LineCounts {
                        open: row.get(1)?,
                        backordered: row.get(2)?,
                        whole: row.get(3)?,
                    },
                );
                drop(rows);
                let lines = lines
                    .query_map([order_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<(i64, i64)>>>()?;
                orders.push(crate::store::ingest::OrderLines {
                    order_id: order_id.clone(),
                    backorder_qty,
                    counts,
                    lines,
                });
            }
            Ok(orders)
        };
        read().map_err(db_error)
    })
    .await
}
