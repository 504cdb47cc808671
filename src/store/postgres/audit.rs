//! The audit on PostgreSQL: the statements that stream the stored book
//! into the backend-independent scan (`store/audit_scan.rs`): the stock,
//! every order header, then every line by SKU, each row handed on as it
//! arrives (sqlx `fetch`), so that memory holds the headers and one
//! chunk's lines, never the whole book.
//!
//! What makes the reads agree with each other: a plain audit runs in one
//! `REPEATABLE READ` transaction, so every statement sees the same
//! snapshot while events and recalculations go on; an audit that repairs
//! (and the what-if, which applies events first) holds every event lock
//! and lock stripe instead, so nothing else writes the book until it
//! commits or rolls back.

use futures_util::TryStreamExt;
use sqlx::{Connection, PgConnection, Row};

use super::{LOCK_SPACE, PgStore, SKU_LOCK_STRIPES, locks, queries, recalc, writeback};
use crate::engine::LineCounts;
use crate::engine::snapshot::Line;
use crate::engine::time_format::format_timestamp;
use crate::recalc::Changes;
use crate::store::StoreError;
use crate::store::assemble;
use crate::store::audit_scan::{AuditScan, Stock};
use crate::store::codec;
use crate::store::recalculate::{Written, append_messages};

/// How often an audit is tried again after a deadlock or a serialization
/// failure.
const ATTEMPTS: u32 = 20;

impl PgStore {
    /// Every SKU through the engine, every order compared whole; with
    /// `repair` the answer is written (cause `audit`) and committed, else
    /// nothing is written.
    pub(super) async fn audit_book(
        &self,
        repair: bool,
        as_of: chrono::DateTime<chrono::Utc>,
    ) -> Result<crate::audit::AuditReport, StoreError> {
        let begin = if repair {
            "BEGIN"
        } else {
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut conn = self.pool.acquire().await?;
            let mut tx = conn.begin_with(begin).await?;
            let run = async {
                if repair {
                    lock_everything(&mut tx).await?;
                }
                audit_in(&mut tx, repair, as_of).await
            };
            match run.await {
                Ok(findings) => {
                    if repair {
                        tx.commit().await?;
                    } else {
                        tx.rollback().await?;
                    }
                    return Ok(crate::audit::AuditReport::new(findings, as_of, repair));
                }
                Err(e) if recalc::is_transient(&e) && attempt < ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "audit meets another writer; trying again");
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Every event lock and lock stripe (in that order, as an import and the
/// what-if take them): no event and no recalculation writes the book
/// until this transaction ends.
pub(super) async fn lock_everything(conn: &mut PgConnection) -> Result<(), StoreError> {
    locks::take(&mut *conn, &locks::EventLocks::everything()).await?;
    // In ascending order, as nobody else waits for a stripe: no deadlock.
    sqlx::query("SELECT pg_advisory_xact_lock($1, s) FROM generate_series(0, $2 - 1) s")
        .bind(LOCK_SPACE)
        .bind(SKU_LOCK_STRIPES)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The audit's run inside the caller's transaction, whose reads agree
/// (see the module's comment). With `repair` the answer is written, its
/// messages appended and every mark cleared (the whole book was just
/// recalculated with every writer kept out).
pub(super) async fn audit_in(
    conn: &mut PgConnection,
    repair: bool,
    as_of: chrono::DateTime<chrono::Utc>,
) -> Result<crate::audit::Findings, StoreError> {
    let (dirty_skus, orders): (i64, i64) =
        sqlx::query_as("SELECT (SELECT COUNT(*) FROM dirty_skus), (SELECT COUNT(*) FROM orders)")
            .fetch_one(&mut *conn)
            .await?;
    let mut scan = AuditScan::new(
        stock(conn).await?,
        orders as usize,
        as_of,
        crate::audit::CAUSE,
    );
    each_header(conn, &mut scan).await?;
    each_line(conn, &mut scan).await?;
    let found = scan.finish();
    if repair {
        // Totals move by deltas on PostgreSQL: every order a changed line
        // belongs to, and every order found off its lines, is set from its
        // lines once they are written (under its row lock).
        let mut orders: Vec<(String, String)> = found
            .lines
            .iter()
            .map(|l| l.order_id.as_str())
            .chain(found.orders.iter().map(|o| o.order_id.as_str()))
            .map(|id| (id.to_owned(), crate::audit::CAUSE.to_owned()))
            .collect();
        orders.sort_unstable();
        orders.dedup();
        let changes = Changes {
            lines: found.lines.clone(),
            drifted: orders,
            ..Changes::default()
        };
        let written: Written =
            writeback::write_changes(&mut *conn, &changes, &format_timestamp(&as_of)).await?;
        sqlx::query("DELETE FROM dirty_skus")
            .execute(&mut *conn)
            .await?;
        append_messages(&mut *conn, &written).await?;
    }
    Ok(crate::audit::Findings {
        dirty_skus,
        lines_checked: found.lines_checked,
        orders_checked: found.orders_checked,
        lines: found.lines,
        orders: found.orders,
    })
}

/// Everything of the book but its orders: inventory by SKU and warehouse
/// in byte order (as the scan searches it), purchase orders in their
/// stored order.
async fn stock(conn: &mut PgConnection) -> Result<Stock, StoreError> {
    let settings = super::load_settings(conn).await?;
    let warehouses = super::load_warehouses(conn).await?;
    let products = queries::map_rows(
        conn,
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            r#"SELECT {} FROM products ORDER BY sku COLLATE "C""#,
            assemble::PRODUCT_COLUMNS
        ))),
        assemble::product,
    )
    .await?;
    let (inventory, purchase_orders) = super::snapshot_io::stock_rows(conn).await?;
    Ok(Stock {
        settings,
        warehouses,
        products,
        inventory,
        purchase_orders,
    })
}

/// Every order header with its stored totals.
async fn each_header(conn: &mut PgConnection, scan: &mut AuditScan) -> Result<(), StoreError> {
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {}, o.backorder_qty, o.lines_open, o.lines_backordered, o.lines_whole
         FROM orders o",
        queries::HEADER_COLUMNS
    )))
    .fetch(&mut *conn);
    while let Some(row) = rows.try_next().await? {
        let counts = LineCounts {
            open: row.try_get(9)?,
            backordered: row.try_get(10)?,
            whole: row.try_get(11)?,
        };
        scan.add_order((
            queries::header(&row)?.into_order()?,
            row.try_get(8)?,
            counts,
        ));
    }
    Ok(())
}

/// Every line, each SKU's lines together (the scan needs no more than
/// that of the order: any collation will do, and the index on `sku`
/// serves it), with its order id borrowed from the row.
async fn each_line(conn: &mut PgConnection, scan: &mut AuditScan) -> Result<(), StoreError> {
    let mut rows = sqlx::query(
        "SELECT order_id, position, id, sku, qty, backorder_qty, eta FROM order_lines ORDER BY sku",
    )
    .fetch(&mut *conn);
    while let Some(row) = rows.try_next().await? {
        let line = Line {
            id: row.try_get(2)?,
            sku: row.try_get(3)?,
            qty: row.try_get(4)?,
            backorder_qty: row.try_get(5)?,
        };
        let eta = codec::optional_date(row.try_get(6)?, &|| format!("line {:?}", line.id))?;
        scan.add_line(row.try_get(0)?, row.try_get(1)?, line, eta)?;
    }
    Ok(())
}
