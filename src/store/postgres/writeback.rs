//! Writing a recalculation's changes back on PostgreSQL, one set-based
//! statement per table (arrays through `unnest`), beside other workers and
//! events:
//! - a line is written only if it still holds what the engine read (its
//!   order, qty, backorder and ETA); a line an event changed or moved
//!   meanwhile is left to the recalculation that event asked for;
//! - an order's counts and total move by the change of the lines written,
//!   so changes to one order from several workers add up; its status then
//!   follows from the counts it has after the move.

use rustc_hash::{FxHashMap, FxHashSet};
use sqlx::PgConnection;

use crate::engine::LineCounts;
use crate::engine::time_format::format_date;
use crate::recalc::{Changes, LineChange, OrderChange};
use crate::store::StoreError;
use crate::store::messages::history_cause;
use crate::store::recalculate::Written;

pub(super) async fn write_changes(
    conn: &mut PgConnection,
    changes: &Changes,
    at: &str,
) -> Result<Written, StoreError> {
    let mut lines = changes.lines.clone();
    // Every order a line of this batch belongs to, locked in key order
    // before anything is moved: two workers whose batches share orders
    // then wait for each other rather than deadlock, and each reads its
    // orders' lines (for their messages) with no other write-back between.
    lock_orders(conn, &lines).await?;
    let mut written = Written::default();
    if !lines.is_empty() {
        lines.sort_unstable_by(|a, b| a.line_id.cmp(&b.line_id));
        let ids = write_lines(conn, &lines).await?;
        lines.retain(|l| ids.contains(l.line_id.as_str()));
        // Orders off their lines are set from their lines below, not moved.
        let drifted: FxHashSet<&str> = changes.drifted.iter().map(|d| d.0.as_str()).collect();
        let moving: Vec<LineChange> = lines
            .iter()
            .filter(|l| !drifted.contains(l.order_id.as_str()))
            .cloned()
            .collect();
        let orders = move_orders(conn, &moving).await?;
        write_history(conn, &lines, &orders, at).await?;
        written.orders = orders;
    }
    // What was read may be stale by now; under the order's row lock its
    // lines say what its totals must be (as after an event's refresh).
    if !changes.drifted.is_empty() {
        let repaired =
            crate::store::ingest::refresh_orders(&mut *conn, &changes.drifted, at).await?;
        written.orders.extend(repaired);
    }
    written.lines = lines;
    Ok(written)
}

/// The ids of the lines written: those still as read, in the same order
/// (an event may have moved a line to another order, or changed it).
async fn write_lines(
    conn: &mut PgConnection,
    lines: &[LineChange],
) -> Result<FxHashSet<String>, StoreError> {
    let ids: Vec<&str> = lines.iter().map(|l| l.line_id.as_str()).collect();
    let orders: Vec<&str> = lines.iter().map(|l| l.order_id.as_str()).collect();
    let qtys: Vec<i64> = lines.iter().map(|l| l.qty).collect();
    let old: Vec<i64> = lines.iter().map(|l| l.old_backorder_qty).collect();
    let old_etas: Vec<Option<String>> = lines
        .iter()
        .map(|l| l.old_eta.as_ref().map(format_date))
        .collect();
    let new: Vec<i64> = lines.iter().map(|l| l.new_backorder_qty).collect();
    let new_etas: Vec<Option<String>> = lines
        .iter()
        .map(|l| l.new_eta.as_ref().map(format_date))
        .collect();
    let written: Vec<String> = sqlx::query_scalar(
        "UPDATE order_lines l SET backorder_qty = c.new_qty, eta = c.new_eta
         FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::text[], $6::int8[], $7::text[])
              AS c(id, order_id, qty, old_qty, old_eta, new_qty, new_eta)
         WHERE l.id = c.id AND l.order_id = c.order_id AND l.qty = c.qty
           AND l.backorder_qty = c.old_qty AND l.eta IS NOT DISTINCT FROM c.old_eta
         RETURNING l.id",
    )
    .bind(&ids)
    .bind(&orders)
    .bind(&qtys)
    .bind(&old)
    .bind(&old_etas)
    .bind(&new)
    .bind(&new_etas)
    .fetch_all(&mut *conn)
    .await?;
    Ok(written.into_iter().collect())
}

/// Moves each order's counts and total by its written lines' change and
/// sets its status from the result; returns the orders that changed.
async fn move_orders(
    conn: &mut PgConnection,
    lines: &[LineChange],
) -> Result<Vec<OrderChange>, StoreError> {
    let mut moves: FxHashMap<&str, (LineCounts, i64, &str)> = FxHashMap::default();
    for l in lines {
        let (counts, qty, _) = moves.entry(l.order_id.as_str()).or_insert((
            LineCounts::default(),
            0,
            l.cause.as_str(),
        ));
        counts.remove(l.qty, l.old_backorder_qty);
        counts.add(l.qty, l.new_backorder_qty);
        *qty = qty.saturating_add(l.new_backorder_qty - l.old_backorder_qty);
    }
    let mut moves: Vec<(&str, (LineCounts, i64, &str))> = moves
        .into_iter()
        .filter(|(_, (counts, qty, _))| *counts != LineCounts::default() || *qty != 0)
        .collect();
    if moves.is_empty() {
        return Ok(Vec::new());
    }
    // Key order: two workers moving the same orders lock them alike.
    moves.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let ids: Vec<&str> = moves.iter().map(|m| m.0).collect();
    let column = |f: fn(&(LineCounts, i64, &str)) -> i64| -> Vec<i64> {
        moves.iter().map(|m| f(&m.1)).collect()
    };
    // The status follows the moved counts as `LineCounts::status` has it;
    // the end-to-end tests compare it with the engine's.
    let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "UPDATE orders o SET lines_open = o.lines_open + d.open,
             lines_backordered = o.lines_backordered + d.backordered,
             lines_whole = o.lines_whole + d.whole,
             backorder_qty = o.backorder_qty + d.qty,
             backorder_status = CASE
                 WHEN o.lines_backordered + d.backordered <= 0 THEN 'none'
                 WHEN o.lines_whole + d.whole >= o.lines_open + d.open THEN 'full'
                 ELSE 'partial' END
         FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[])
              AS d(id, open, backordered, whole, qty)
         WHERE o.id = d.id
         RETURNING o.id, o.lines_open, o.lines_backordered, o.lines_whole, o.backorder_qty",
    )
    .bind(&ids)
    .bind(column(|m| m.0.open))
    .bind(column(|m| m.0.backordered))
    .bind(column(|m| m.0.whole))
    .bind(column(|m| m.1))
    .fetch_all(&mut *conn)
    .await?;

    let by_id: FxHashMap<&str, &(LineCounts, i64, &str)> =
        moves.iter().map(|(id, m)| (*id, m)).collect();
    let mut changes: Vec<OrderChange> = rows
        .into_iter()
        .map(|(order_id, open, backordered, whole, new_qty)| {
            let (delta, delta_qty, cause) = by_id[order_id.as_str()];
            let new_counts = LineCounts {
                open,
                backordered,
                whole,
            };
            let old_counts = LineCounts {
                open: open - delta.open,
                backordered: backordered - delta.backordered,
                whole: whole - delta.whole,
            };
            OrderChange {
                old_status: old_counts.status(),
                new_status: new_counts.status(),
                old_backorder_qty: new_qty - delta_qty,
                new_backorder_qty: new_qty,
                old_counts,
                new_counts,
                cause: (*cause).to_owned(),
                order_id,
            }
        })
        .collect();
    changes.sort_unstable_by(|a, b| a.order_id.cmp(&b.order_id));
    Ok(changes)
}

/// A history row per written line, then per changed order.
pub(super) async fn write_history(
    conn: &mut PgConnection,
    lines: &[LineChange],
    orders: &[OrderChange],
    at: &str,
) -> Result<(), StoreError> {
    let mut order_ids: Vec<&str> = Vec::with_capacity(lines.len() + orders.len());
    let mut line_ids: Vec<Option<&str>> = Vec::with_capacity(order_ids.capacity());
    let mut old_qty: Vec<i64> = Vec::with_capacity(order_ids.capacity());
    let mut new_qty: Vec<i64> = Vec::with_capacity(order_ids.capacity());
    let mut old_status: Vec<Option<&str>> = Vec::with_capacity(order_ids.capacity());
    let mut new_status: Vec<Option<&str>> = Vec::with_capacity(order_ids.capacity());
    let mut causes: Vec<&str> = Vec::with_capacity(order_ids.capacity());
    for l in lines {
        order_ids.push(&l.order_id);
        line_ids.push(Some(&l.line_id));
        old_qty.push(l.old_backorder_qty);
        new_qty.push(l.new_backorder_qty);
        old_status.push(None);
        new_status.push(None);
        causes.push(history_cause(&l.cause));
    }
    for o in orders {
        order_ids.push(&o.order_id);
        line_ids.push(None);
        old_qty.push(o.old_backorder_qty);
        new_qty.push(o.new_backorder_qty);
        old_status.push(Some(o.old_status.as_str()));
        new_status.push(Some(o.new_status.as_str()));
        causes.push(history_cause(&o.cause));
    }
    sqlx::query(
        "INSERT INTO history (at, order_id, line_id, old_backorder_qty, new_backorder_qty, old_status, new_status, cause)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::text[], $8::text[])",
    )
    .bind(at)
    .bind(&order_ids)
    .bind(&line_ids)
    .bind(&old_qty)
    .bind(&new_qty)
    .bind(&old_status)
    .bind(&new_status)
    .bind(&causes)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn lock_orders(conn: &mut PgConnection, lines: &[LineChange]) -> Result<(), StoreError> {
    let mut ids: Vec<&str> = lines.iter().map(|l| l.order_id.as_str()).collect();
    if ids.is_empty() {
        return Ok(());
    }
    ids.sort_unstable();
    ids.dedup();
    sqlx::query("SELECT 1 FROM orders WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&ids)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
