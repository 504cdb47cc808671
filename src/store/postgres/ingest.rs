//! The statements of event ingestion on PostgreSQL (the logic is
//! `store/ingest.rs`'s). The caller's transaction holds the event lock, so
//! batches never interleave; recalculations on other processes still run
//! beside it, hence the row locks taken in key order below.

use rustc_hash::FxHashMap;
use sqlx::PgConnection;

use crate::engine::snapshot::Order;
use crate::events::Event;
use crate::queue::RecalcJob;
use crate::recalc::OrderChange;
use crate::store::ingest::{
    DirtyMark, IngestBackend, OrderLines, StoredLine, bind_order_header, line_totals,
};
use crate::store::{IngestOptions, IngestReport, StoreError};

/// Applies `events` in order in the caller's transaction, which holds the
/// event lock: records each id, applies the effect, marks the SKUs, queues a job.
pub(super) async fn ingest(
    conn: &mut PgConnection,
    events: &[Event],
    options: IngestOptions,
) -> Result<IngestReport, StoreError> {
    crate::store::ingest::ingest(conn, events, options).await
}

/// Locks the lines of `order_id` in id order before their order's row is
/// written, the order in which a recalculation takes them (lines, then
/// their orders' totals), so that the two wait instead of deadlocking.
async fn lock_order_lines(conn: &mut PgConnection, order_id: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT 1 FROM order_lines WHERE order_id = $1 ORDER BY id FOR UPDATE")
        .bind(order_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Inserts `order`'s lines, at their positions in it.
async fn insert_lines(conn: &mut PgConnection, order: &Order) -> Result<(), StoreError> {
    let mut skus = Vec::with_capacity(order.lines.len());
    let mut ids = Vec::with_capacity(order.lines.len());
    let mut qtys = Vec::with_capacity(order.lines.len());
    let mut backorder_qtys = Vec::with_capacity(order.lines.len());
    for line in &order.lines {
        skus.push(line.sku.as_str());
        ids.push(line.id.as_str());
        qtys.push(line.qty);
        backorder_qtys.push(line.backorder_qty);
    }
    sqlx::query(
        "INSERT INTO order_lines (sku, order_id, position, id, qty, backorder_qty)
         SELECT l.sku, $1, l.n - 1, l.id, l.qty, l.backorder_qty
         FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[])
              WITH ORDINALITY AS l(sku, id, qty, backorder_qty, n)
         ORDER BY l.n",
    )
    .bind(&order.id)
    .bind(skus)
    .bind(ids)
    .bind(qtys)
    .bind(backorder_qtys)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl IngestBackend for PgConnection {
    crate::store::ingest::portable_statements!();

    async fn order_skus(&mut self, order_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT ARRAY(SELECT DISTINCT l.sku FROM order_lines l WHERE l.order_id = o.id)
             FROM orders o WHERE o.id = $1",
        )
        .bind(order_id)
        .fetch_optional(&mut *self)
        .await?)
    }

    async fn stored_lines(
        &mut self,
        line_ids: &[String],
    ) -> Result<FxHashMap<String, StoredLine>, StoreError> {
        let rows: Vec<(String, String, i64, String)> = sqlx::query_as(
            "SELECT id, order_id, position, sku FROM order_lines WHERE id = ANY($1)",
        )
        .bind(line_ids)
        .fetch_all(&mut *self)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, order_id, position, sku)| {
                let line = StoredLine {
                    order_id,
                    position,
                    sku,
                };
                (id, line)
            })
            .collect())
    }

    async fn orders_with_lines(
        &mut self,
        order_ids: &[String],
    ) -> Result<Vec<OrderLines>, StoreError> {
        // The lock comes first and the lines are read by a later statement:
        // a recalculation that moved some of these lines has then committed
        // (its order row was locked too), so the lines read are the ones the
        // absolute totals written next must match; one that comes later
        // waits for this transaction and moves the totals by its own change.
        let headers: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT id, backorder_qty, lines_open, lines_backordered, lines_whole
             FROM orders WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        )
        .bind(order_ids)
        .fetch_all(&mut *self)
        .await?;
        let lines: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT order_id, qty, backorder_qty FROM order_lines WHERE order_id = ANY($1)",
        )
        .bind(order_ids)
        .fetch_all(&mut *self)
        .await?;
        let mut orders: FxHashMap<String, OrderLines> = headers
            .into_iter()
            .map(|(order_id, backorder_qty, open, backordered, whole)| {
                let order = OrderLines {
                    order_id: order_id.clone(),
                    backorder_qty,
                    counts: crate::engine::LineCounts {
                        open,
                        backordered,
                        whole,
                    },
                    lines: Vec::new(),
                };
                (order_id, order)
            })
            .collect();
        for (order_id, qty, backorder_qty) in lines {
            if let Some(order) = orders.get_mut(&order_id) {
                order.lines.push((qty, backorder_qty));
            }
        }
        Ok(orders.into_values().collect())
    }

    async fn write_order_changes(
        &mut self,
        changes: &[OrderChange],
        at: &str,
    ) -> Result<(), StoreError> {
        let mut ids = Vec::with_capacity(changes.len());
        let mut new_statuses = Vec::with_capacity(changes.len());
        let mut new_qtys = Vec::with_capacity(changes.len());
        let mut open = Vec::with_capacity(changes.len());
        let mut backordered = Vec::with_capacity(changes.len());
        let mut whole = Vec::with_capacity(changes.len());
        for c in changes {
            ids.push(c.order_id.as_str());
            new_statuses.push(c.new_status.as_str());
            new_qtys.push(c.new_backorder_qty);
            open.push(c.new_counts.open);
            backordered.push(c.new_counts.backordered);
            whole.push(c.new_counts.whole);
        }
        // The rows are locked already (orders_with_lines): the totals are
        // written whole, not moved.
        sqlx::query(
            "UPDATE orders o SET backorder_status = c.status, backorder_qty = c.qty,
                 lines_open = c.open, lines_backordered = c.backordered, lines_whole = c.whole
             FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])
                  AS c(id, status, qty, open, backordered, whole)
             WHERE o.id = c.id",
        )
        .bind(&ids)
        .bind(&new_statuses)
        .bind(&new_qtys)
        .bind(&open)
        .bind(&backordered)
        .bind(&whole)
        .execute(&mut *self)
        .await?;
        super::writeback::write_history(self, &[], changes, at).await
    }

    async fn set_customer(&mut self, order: &Order) -> Result<(), StoreError> {
        crate::store::customers::postgres::write(self, &[order]).await
    }

    async fn replace_lines(&mut self, order: &Order) -> Result<(), StoreError> {
        lock_order_lines(self, &order.id).await?;
        sqlx::query("DELETE FROM order_lines WHERE order_id = $1")
            .bind(&order.id)
            .execute(&mut *self)
            .await?;
        insert_lines(self, order).await
    }

    async fn insert_order(&mut self, order: &Order) -> Result<(), StoreError> {
        let (counts, backorder_qty) =
            line_totals(order.lines.iter().map(|l| (l.qty, l.backorder_qty)));
        let insert = sqlx::query(
            "INSERT INTO orders (order_date, payment_date, payment_status, status, rush, picked, ship_from,
                                 id, position, backorder_status, backorder_qty, lines_open, lines_backordered, lines_whole)
             VALUES ($1, $2, $3, $4, $5, $6, $7,
                     $8, (SELECT COALESCE(MAX(position), -1) + 1 FROM orders), $9, $10, $11, $12, $13)",
        );
        bind_order_header(insert, order)
            .bind(&order.id)
            .bind(counts.status().as_str())
            .bind(backorder_qty)
            .bind(counts.open)
            .bind(counts.backordered)
            .bind(counts.whole)
            .execute(&mut *self)
            .await?;
        insert_lines(self, order).await
    }

    async fn move_lines(
        &mut self,
        new_order_id: &str,
        moves: &[(String, i64)],
    ) -> Result<(), StoreError> {
        let (line_ids, positions): (Vec<&str>, Vec<i64>) = moves
            .iter()
            .map(|(line_id, position)| (line_id.as_str(), *position))
            .unzip();
        sqlx::query("SELECT 1 FROM order_lines WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind(&line_ids)
            .execute(&mut *self)
            .await?;
        sqlx::query(
            "UPDATE order_lines l SET order_id = $1, position = m.position
             FROM unnest($2::text[], $3::bigint[]) AS m(id, position)
             WHERE l.id = m.id",
        )
        .bind(new_order_id)
        .bind(&line_ids)
        .bind(&positions)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn mark_dirty(&mut self, marks: &[DirtyMark]) -> Result<(), StoreError> {
        let mut skus = Vec::with_capacity(marks.len());
        let mut seqs = Vec::with_capacity(marks.len());
        let mut causes = Vec::with_capacity(marks.len());
        for mark in marks {
            skus.push(mark.sku.as_str());
            seqs.push(mark.seq);
            causes.push(mark.cause.as_str());
        }
        sqlx::query(
            "INSERT INTO dirty_skus (sku, marked_seq, cause)
             SELECT d.sku, d.seq, d.cause
             FROM unnest($1::text[], $2::bigint[], $3::text[]) WITH ORDINALITY AS d(sku, seq, cause, n)
             ORDER BY d.n
             ON CONFLICT (sku) DO UPDATE SET marked_seq = excluded.marked_seq, cause = excluded.cause",
        )
        .bind(skus)
        .bind(seqs)
        .bind(causes)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn push_job(&mut self, job: &RecalcJob) -> Result<(), StoreError> {
        super::push_job(self, job).await
    }
}
