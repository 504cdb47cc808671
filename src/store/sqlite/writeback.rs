//! Writing recalculated values back: set-based statements over a JSON
//! array (one statement per table, whatever the number of rows), a history
//! row per change and an outbox row when an order enters or leaves backorder.

use serde_json::json;
use sqlx::{Row, SqliteConnection};

use crate::engine::LineCounts;
use crate::engine::time_format::format_date;
use crate::recalc::{Changes, OrderChange};
use crate::store::StoreError;

fn json_rows(rows: &[serde_json::Value]) -> String {
    serde_json::to_string(rows).expect("rows serialize")
}

pub(super) async fn write_changes(
    conn: &mut SqliteConnection,
    changes: &Changes,
    at: &str,
) -> Result<(), StoreError> {
    if !changes.lines.is_empty() {
        let rows: Vec<serde_json::Value> = changes
            .lines
            .iter()
            .map(|c| {
                json!([
                    c.line_id,
                    c.new_backorder_qty,
                    c.new_eta.as_ref().map(format_date),
                    c.order_id,
                    c.old_backorder_qty,
                    c.cause
                ])
            })
            .collect();
        let rows = json_rows(&rows);
        sqlx::query(
            "UPDATE order_lines SET backorder_qty = j.value->>1, eta = j.value->>2
             FROM json_each(?) j WHERE order_lines.id = j.value->>0",
        )
        .bind(&rows)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO history (at, order_id, line_id, old_backorder_qty, new_backorder_qty, cause)
             SELECT ?, j.value->>3, j.value->>0, j.value->>4, j.value->>1, j.value->>5 FROM json_each(?) j",
        )
        .bind(at)
        .bind(&rows)
        .execute(&mut *conn)
        .await?;
    }
    write_order_changes(conn, &changes.orders, at).await
}

pub(super) async fn write_order_changes(
    conn: &mut SqliteConnection,
    changes: &[OrderChange],
    at: &str,
) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    let rows: Vec<serde_json::Value> = changes
        .iter()
        .map(|c| {
            json!([
                c.order_id,
                c.new_status.as_str(),
                c.new_backorder_qty,
                c.old_status.as_str(),
                c.old_backorder_qty,
                c.cause,
                c.notification(),
                c.new_counts.open,
                c.new_counts.backordered,
                c.new_counts.whole
            ])
        })
        .collect();
    let rows = json_rows(&rows);
    sqlx::query(
        "UPDATE orders SET backorder_status = j.value->>1, backorder_qty = j.value->>2,
             lines_open = j.value->>7, lines_backordered = j.value->>8, lines_whole = j.value->>9
         FROM json_each(?) j WHERE orders.id = j.value->>0",
    )
    .bind(&rows)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO history (at, order_id, line_id, old_backorder_qty, new_backorder_qty, old_status, new_status, cause)
         SELECT ?, j.value->>0, NULL, j.value->>4, j.value->>2, j.value->>3, j.value->>1, j.value->>5
         FROM json_each(?) j",
    )
    .bind(at)
    .bind(&rows)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO outbox (at, order_id, kind, old_status, new_status)
         SELECT ?, j.value->>0, j.value->>6, j.value->>3, j.value->>1
         FROM json_each(?) j WHERE j.value->>6 IS NOT NULL",
    )
    .bind(at)
    .bind(&rows)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Recomputes the status of orders whose lines an event replaced, moved or
/// overrode, from their stored lines. `orders` are `(order id, cause)`.
pub(super) async fn refresh_order_statuses(
    conn: &mut SqliteConnection,
    orders: &[(String, String)],
    at: &str,
) -> Result<(), StoreError> {
    let mut changes = Vec::new();
    for (order_id, cause) in orders {
        let Some(row) = sqlx::query(
            "SELECT backorder_qty, lines_open, lines_backordered, lines_whole FROM orders WHERE id = ?",
        )
        .bind(order_id)
        .fetch_optional(&mut *conn)
        .await?
        else {
            continue;
        };
        let old_backorder_qty: i64 = row.get(0);
        let old_counts = LineCounts {
            open: row.get(1),
            backordered: row.get(2),
            whole: row.get(3),
        };
        let lines: Vec<(i64, i64)> =
            sqlx::query_as("SELECT qty, backorder_qty FROM order_lines WHERE order_id = ?")
                .bind(order_id)
                .fetch_all(&mut *conn)
                .await?;
        let mut new_counts = LineCounts::default();
        for &(qty, backorder_qty) in &lines {
            new_counts.add(qty, backorder_qty);
        }
        let new_backorder_qty = lines.iter().map(|l| l.1).sum();
        if (new_counts, new_backorder_qty) != (old_counts, old_backorder_qty) {
            changes.push(OrderChange {
                order_id: order_id.clone(),
                old_status: old_counts.status(),
                new_status: new_counts.status(),
                old_backorder_qty,
                new_backorder_qty,
                new_counts,
                cause: cause.clone(),
            });
        }
    }
    // An order refreshed twice in a batch keeps its last change only.
    changes.reverse();
    let mut seen = rustc_hash::FxHashSet::default();
    changes.retain(|c| seen.insert(c.order_id.clone()));
    changes.reverse();
    write_order_changes(conn, &changes, at).await
}
