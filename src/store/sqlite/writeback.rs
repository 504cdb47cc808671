//! Writing recalculated values back, with a history row per change (the
//! change messages are the caller's: store/messages.rs). Each table gets one
//! prepared statement stepped once per row through rusqlite (see
//! `direct.rs`): the per-row cost is SQLite's own.

use rusqlite::params;
use sqlx::SqliteConnection;

use super::direct::{db_error, with_rusqlite};
use crate::engine::time_format::format_date;
use crate::recalc::{Changes, LineChange, OrderChange};
use crate::store::StoreError;
use crate::store::messages::history_cause;

pub(super) async fn write_changes(
    conn: &mut SqliteConnection,
    changes: &Changes,
    at: &str,
) -> Result<(), StoreError> {
    if changes.lines.is_empty() && changes.orders.is_empty() {
        return Ok(());
    }
    with_rusqlite(conn, |db| {
        write_lines(db, &changes.lines, at)
            .and_then(|()| write_orders(db, &changes.orders, at))
            .map_err(db_error)
    })
    .await
}

pub(super) async fn write_order_changes(
    conn: &mut SqliteConnection,
    changes: &[OrderChange],
    at: &str,
) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    with_rusqlite(conn, |db| write_orders(db, changes, at).map_err(db_error)).await
}

fn write_lines(db: &rusqlite::Connection, lines: &[LineChange], at: &str) -> rusqlite::Result<()> {
    let mut update =
        db.prepare("UPDATE order_lines SET backorder_qty = ?2, eta = ?3 WHERE id = ?1")?;
    let mut history = db.prepare(
        "INSERT INTO history (at, order_id, line_id, old_backorder_qty, new_backorder_qty, cause)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for c in lines {
        let eta = c.new_eta.as_ref().map(format_date);
        update.execute(params![c.line_id, c.new_backorder_qty, eta])?;
        history.execute(params![
            at,
            c.order_id,
            c.line_id,
            c.old_backorder_qty,
            c.new_backorder_qty,
            history_cause(&c.cause)
        ])?;
    }
    Ok(())
}

fn write_orders(
    db: &rusqlite::Connection,
    orders: &[OrderChange],
    at: &str,
) -> rusqlite::Result<()> {
    let mut update = db.prepare(
        "UPDATE orders SET backorder_status = ?2, backorder_qty = ?3,
             lines_open = ?4, lines_backordered = ?5, lines_whole = ?6
         WHERE id = ?1",
    )?;
    let mut history = db.prepare(
        "INSERT INTO history (at, order_id, line_id, old_backorder_qty, new_backorder_qty, old_status, new_status, cause)
         VALUES (?1, ?2, NULL, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for c in orders {
        let (old, new) = (c.old_status.as_str(), c.new_status.as_str());
        update.execute(params![
            c.order_id,
            new,
            c.new_backorder_qty,
            c.new_counts.open,
            c.new_counts.backordered,
            c.new_counts.whole
        ])?;
        history.execute(params![
            at,
            c.order_id,
            c.old_backorder_qty,
            c.new_backorder_qty,
            old,
            new,
            history_cause(&c.cause)
        ])?;
    }
    Ok(())
}
