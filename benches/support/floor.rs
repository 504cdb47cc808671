//! The bare write floor of a full run on SQLite: the rows the run wrote
//! (lines, orders, history, messages and their keys, availability
//! figures and the feed's stamps, cleared marks), read from the recalculated database, written
//! by a plain script into a copy of the database as it was before the run,
//! with the same kind of statements (one prepared statement per table,
//! stepped per row by key), the pool log paused as the run pauses it, in
//! one transaction. What the run costs beyond it is reading and computing.

use std::path::Path;
use std::time::Instant;

use rusqlite::{Connection, params};

type Line = (String, String, i64, i64, Option<String>);
type Order = (String, String, i64, i64, i64, i64);
type History = (
    String,
    String,
    Option<String>,
    i64,
    i64,
    Option<String>,
    Option<String>,
    String,
);
type Message = (String, String, String, i64, String, String);
type Stamp = (String, i64, i64, i64, i64, Option<String>);

fn all<T>(
    db: &Connection,
    sql: &str,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Vec<T> {
    let mut statement = db.prepare(sql).unwrap();
    statement
        .query_map([], row)
        .unwrap()
        .collect::<rusqlite::Result<Vec<T>>>()
        .unwrap()
}

/// `(seconds, rows written)` of the floor: `url` is the recalculated
/// database (`sqlite://PATH`), `before` a copy of it from before the run.
pub fn write_floor(url: &str, before: &Path) -> (f64, usize) {
    let done = Connection::open(url.trim_start_matches("sqlite://")).unwrap();
    let lines: Vec<Line> = all(
        &done,
        "SELECT sku, order_id, position, backorder_qty, eta FROM order_lines
         WHERE backorder_qty <> 0 OR eta IS NOT NULL",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    );
    let orders: Vec<Order> = all(
        &done,
        "SELECT id, backorder_status, backorder_qty, lines_open, lines_backordered, lines_whole
         FROM orders WHERE backorder_qty <> 0 OR backorder_status <> 'none'",
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        },
    );
    let history: Vec<History> = all(
        &done,
        "SELECT at, order_id, line_id, old_backorder_qty, new_backorder_qty, old_status, new_status, cause
         FROM history ORDER BY seq",
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        },
    );
    let messages: Vec<Message> = all(
        &done,
        "SELECT id, type, key, seq, created_at, body FROM messages ORDER BY position",
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        },
    );
    let keys: Vec<(String, i64)> = all(&done, "SELECT key, last_seq FROM message_keys", |r| {
        Ok((r.get(0)?, r.get(1)?))
    });
    let figures: Vec<(String, String)> =
        all(&done, "SELECT sku, entry FROM availability_figures", |r| {
            Ok((r.get(0)?, r.get(1)?))
        });
    let stamps: Vec<Stamp> = all(
        &done,
        "SELECT sku, epoch, version, backordered, waiting_orders, oldest_waiting FROM feed_stamps",
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        },
    );
    drop(done);
    let db = Connection::open(before).unwrap();
    db.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -16384;
         PRAGMA temp_store = memory;",
    )
    .unwrap();
    let marks: Vec<(String, i64)> = all(&db, "SELECT sku, marked_seq FROM dirty_skus", |r| {
        Ok((r.get(0)?, r.get(1)?))
    });
    let rows = lines.len()
        + orders.len()
        + history.len()
        + messages.len()
        + keys.len()
        + figures.len()
        + stamps.len()
        + marks.len();

    let started = Instant::now();
    let write = || -> rusqlite::Result<()> {
        db.execute_batch("BEGIN IMMEDIATE; INSERT INTO pool_log_paused (id) VALUES (1);")?;
        let mut update = db.prepare(
            "UPDATE order_lines SET backorder_qty = ?4, eta = ?5
             WHERE sku = ?1 AND order_id = ?2 AND position = ?3",
        )?;
        for (sku, order, position, qty, eta) in &lines {
            update.execute(params![sku, order, position, qty, eta])?;
        }
        let mut update = db.prepare(
            "UPDATE orders SET backorder_status = ?2, backorder_qty = ?3,
                 lines_open = ?4, lines_backordered = ?5, lines_whole = ?6
             WHERE id = ?1",
        )?;
        for (id, status, qty, open, backordered, whole) in &orders {
            update.execute(params![id, status, qty, open, backordered, whole])?;
        }
        let mut insert = db.prepare(
            "INSERT INTO history (at, order_id, line_id, old_backorder_qty, new_backorder_qty, old_status, new_status, cause)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for (at, order, line, old, new, old_status, new_status, cause) in &history {
            insert.execute(params![
                at, order, line, old, new, old_status, new_status, cause
            ])?;
        }
        let mut insert = db.prepare(
            "INSERT INTO messages (id, type, key, seq, created_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (id, kind, key, seq, created_at, body) in &messages {
            insert.execute(params![id, kind, key, seq, created_at, body])?;
        }
        let mut upsert = db.prepare(
            "INSERT INTO message_keys (key, last_seq) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET last_seq = excluded.last_seq",
        )?;
        for (key, seq) in &keys {
            upsert.execute(params![key, seq])?;
        }
        let mut upsert = db.prepare(
            "INSERT INTO availability_figures (sku, entry) VALUES (?1, ?2)
             ON CONFLICT (sku) DO UPDATE SET entry = excluded.entry",
        )?;
        for (sku, entry) in &figures {
            upsert.execute(params![sku, entry])?;
        }
        let mut upsert = db.prepare(
            "INSERT INTO feed_stamps
                 (sku, epoch, version, backordered, waiting_orders, oldest_waiting)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (sku) DO UPDATE SET epoch = excluded.epoch,
                 version = excluded.version, backordered = excluded.backordered,
                 waiting_orders = excluded.waiting_orders,
                 oldest_waiting = excluded.oldest_waiting",
        )?;
        for (sku, epoch, version, backordered, waiting, oldest) in &stamps {
            upsert.execute(params![sku, epoch, version, backordered, waiting, oldest])?;
        }
        let mut delete =
            db.prepare("DELETE FROM dirty_skus WHERE sku = ?1 AND marked_seq <= ?2")?;
        for (sku, seq) in &marks {
            delete.execute(params![sku, seq])?;
        }
        db.execute_batch(
            "DELETE FROM pool_log_paused; UPDATE pool_epoch SET epoch = epoch + 1; COMMIT;",
        )
    };
    write().unwrap();
    (started.elapsed().as_secs_f64(), rows)
}
