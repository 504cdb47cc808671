//! The statements of event ingestion on PostgreSQL (the logic is
//! `store/ingest.rs`'s). The caller's transaction holds the event lock, so
//! batches never interleave; recalculations on other processes still run
//! beside it, hence the row locks taken in key order below.

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use sqlx::PgConnection;

use crate::engine::snapshot::{
    Order, OrderStatus, PaymentStatus, PurchaseOrder, Settings, Warehouse,
};
use crate::engine::time_format::{format_date, format_timestamp};
use crate::events::Event;
use crate::queue::RecalcJob;
use crate::recalc::OrderChange;
use crate::store::codec::HeaderRow;
use crate::store::ingest::{DirtyMark, IngestBackend, OrderLines, StoredLine, line_totals};
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

/// Locks the lines of `order_id` in id order, so that a recalculation
/// writing some of them (also in id order) waits instead of deadlocking.
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
    async fn stored_options(&mut self) -> Result<Option<IngestOptions>, StoreError> {
        let stored: Option<(bool, bool)> = sqlx::query_as(
            "SELECT recalculate_on_status_change, defer_new_orders FROM service_options WHERE id = 1",
        )
        .fetch_optional(&mut *self)
        .await?;
        Ok(stored.map(
            |(recalculate_on_status_change, defer_new_orders)| IngestOptions {
                recalculate_on_status_change,
                defer_new_orders,
            },
        ))
    }

    async fn record_event(
        &mut self,
        id: &str,
        type_name: &str,
        received_at: &str,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO received_events (id, type, received_at) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO NOTHING RETURNING seq",
        )
        .bind(id)
        .bind(type_name)
        .bind(received_at)
        .fetch_optional(&mut *self)
        .await?)
    }

    async fn known_warehouse(&mut self, warehouse: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM warehouses WHERE id = $1)")
                .bind(warehouse)
                .fetch_one(&mut *self)
                .await?,
        )
    }

    async fn add_on_hand(
        &mut self,
        sku: &str,
        warehouse: &str,
        delta: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO inventory (sku, warehouse, on_hand) VALUES ($1, $2, $3)
             ON CONFLICT (sku, warehouse) DO UPDATE SET on_hand = inventory.on_hand + excluded.on_hand",
        )
        .bind(sku)
        .bind(warehouse)
        .bind(delta)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn set_on_hand(
        &mut self,
        sku: &str,
        warehouse: &str,
        on_hand: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO inventory (sku, warehouse, on_hand) VALUES ($1, $2, $3)
             ON CONFLICT (sku, warehouse) DO UPDATE SET on_hand = excluded.on_hand",
        )
        .bind(sku)
        .bind(warehouse)
        .bind(on_hand)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn receive_po(&mut self, po_id: &str, qty: i64) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "UPDATE purchase_orders SET qty_received = qty_received + $1 WHERE id = $2 RETURNING sku",
        )
        .bind(qty)
        .bind(po_id)
        .fetch_optional(&mut *self)
        .await?)
    }

    async fn purchase_order_sku(&mut self, po_id: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT sku FROM purchase_orders WHERE id = $1")
                .bind(po_id)
                .fetch_optional(&mut *self)
                .await?,
        )
    }

    async fn upsert_purchase_order(&mut self, po: &PurchaseOrder) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO purchase_orders (id, position, sku, warehouse, qty_ordered, qty_received, expected_date)
             VALUES ($1, (SELECT COALESCE(MAX(position), -1) + 1 FROM purchase_orders), $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO UPDATE SET sku = excluded.sku, warehouse = excluded.warehouse,
                 qty_ordered = excluded.qty_ordered, qty_received = excluded.qty_received,
                 expected_date = excluded.expected_date",
        )
        .bind(&po.id)
        .bind(&po.sku)
        .bind(&po.warehouse)
        .bind(po.qty_ordered)
        .bind(po.qty_received)
        .bind(po.expected_date.as_ref().map(format_date))
        .execute(&mut *self)
        .await?;
        Ok(())
    }

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

    async fn upsert_order(&mut self, order: &Order) -> Result<bool, StoreError> {
        // Lines before their order, as a recalculation takes them.
        lock_order_lines(self, &order.id).await?;
        let existed = sqlx::query(
            "UPDATE orders SET order_date = $1, payment_date = $2, payment_status = $3, status = $4,
                 rush = $5, picked = $6, ship_from = $7 WHERE id = $8",
        )
        .bind(format_timestamp(&order.order_date))
        .bind(order.payment_date.as_ref().map(format_timestamp))
        .bind(order.payment_status.as_str())
        .bind(order.status.as_str())
        .bind(i64::from(order.rush))
        .bind(i64::from(order.picked))
        .bind(&order.ship_from)
        .bind(&order.id)
        .execute(&mut *self)
        .await?
        .rows_affected()
            > 0;
        if existed {
            sqlx::query("DELETE FROM order_lines WHERE order_id = $1")
                .bind(&order.id)
                .execute(&mut *self)
                .await?;
        } else {
            let (counts, backorder_qty) =
                line_totals(order.lines.iter().map(|l| (l.qty, l.backorder_qty)));
            sqlx::query(
                "INSERT INTO orders (id, position, order_date, payment_date, payment_status, status, rush, picked, ship_from,
                                     backorder_status, backorder_qty, lines_open, lines_backordered, lines_whole)
                 VALUES ($1, (SELECT COALESCE(MAX(position), -1) + 1 FROM orders), $2, $3, $4, $5, $6, $7, $8,
                         $9, $10, $11, $12, $13)",
            )
            .bind(&order.id)
            .bind(format_timestamp(&order.order_date))
            .bind(order.payment_date.as_ref().map(format_timestamp))
            .bind(order.payment_status.as_str())
            .bind(order.status.as_str())
            .bind(i64::from(order.rush))
            .bind(i64::from(order.picked))
            .bind(&order.ship_from)
            .bind(counts.status().as_str())
            .bind(backorder_qty)
            .bind(counts.open)
            .bind(counts.backordered)
            .bind(counts.whole)
            .execute(&mut *self)
            .await?;
        }
        insert_lines(self, order).await?;
        Ok(existed)
    }

    async fn update_status(
        &mut self,
        order_id: &str,
        status: OrderStatus,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE orders SET status = $1 WHERE id = $2")
            .bind(status.as_str())
            .bind(order_id)
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn update_payment(
        &mut self,
        order_id: &str,
        payment_status: PaymentStatus,
        payment_date: Option<&DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE orders SET payment_status = $1, payment_date = $2 WHERE id = $3")
            .bind(payment_status.as_str())
            .bind(payment_date.map(format_timestamp))
            .bind(order_id)
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn split_order(
        &mut self,
        order_id: &str,
        new_order_id: &str,
        moves: &[(String, i64)],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO orders (id, position, order_date, payment_date, payment_status, status, rush, picked, ship_from)
             SELECT $1, (SELECT MAX(position) + 1 FROM orders), order_date, payment_date, payment_status, status, rush, picked, ship_from
             FROM orders WHERE id = $2",
        )
        .bind(new_order_id)
        .bind(order_id)
        .execute(&mut *self)
        .await?;
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

    async fn load_settings(&mut self) -> Result<Settings, StoreError> {
        super::load_settings(self).await
    }

    async fn save_settings(&mut self, settings: &Settings) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO client_settings (id, settings) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET settings = excluded.settings",
        )
        .bind(serde_json::to_string(settings).expect("settings serialize"))
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn override_line(
        &mut self,
        line_id: &str,
        backorder_qty: i64,
    ) -> Result<Option<(String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "UPDATE order_lines SET backorder_qty = $1 WHERE id = $2 RETURNING order_id, sku",
        )
        .bind(backorder_qty)
        .bind(line_id)
        .fetch_optional(&mut *self)
        .await?)
    }

    async fn order_header(&mut self, order_id: &str) -> Result<Order, StoreError> {
        type Columns = (
            String,
            String,
            Option<String>,
            String,
            String,
            i64,
            i64,
            Option<String>,
        );
        let (id, order_date, payment_date, payment_status, status, rush, picked, ship_from): Columns =
            sqlx::query_as(
                "SELECT id, order_date, payment_date, payment_status, status, rush, picked, ship_from
                 FROM orders WHERE id = $1",
            )
            .bind(order_id)
            .fetch_one(&mut *self)
            .await?;
        HeaderRow(
            id,
            order_date,
            payment_date,
            payment_status,
            status,
            rush,
            picked,
            ship_from,
        )
        .into_order()
    }

    async fn load_warehouses(&mut self) -> Result<Vec<Warehouse>, StoreError> {
        super::load_warehouses(self).await
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
        let mut old_statuses = Vec::with_capacity(changes.len());
        let mut new_statuses = Vec::with_capacity(changes.len());
        let mut old_qtys = Vec::with_capacity(changes.len());
        let mut new_qtys = Vec::with_capacity(changes.len());
        let mut open = Vec::with_capacity(changes.len());
        let mut backordered = Vec::with_capacity(changes.len());
        let mut whole = Vec::with_capacity(changes.len());
        let mut causes = Vec::with_capacity(changes.len());
        let mut notifications = Vec::with_capacity(changes.len());
        for c in changes {
            ids.push(c.order_id.as_str());
            old_statuses.push(c.old_status.as_str());
            new_statuses.push(c.new_status.as_str());
            old_qtys.push(c.old_backorder_qty);
            new_qtys.push(c.new_backorder_qty);
            open.push(c.new_counts.open);
            backordered.push(c.new_counts.backordered);
            whole.push(c.new_counts.whole);
            causes.push(c.cause.as_str());
            notifications.push(c.notification());
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
        sqlx::query(
            "INSERT INTO history (at, order_id, line_id, old_backorder_qty, new_backorder_qty, old_status, new_status, cause)
             SELECT $1, h.order_id, NULL, h.old_qty, h.new_qty, h.old_status, h.new_status, h.cause
             FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[])
                  WITH ORDINALITY AS h(order_id, old_qty, new_qty, old_status, new_status, cause, n)
             ORDER BY h.n",
        )
        .bind(at)
        .bind(&ids)
        .bind(&old_qtys)
        .bind(&new_qtys)
        .bind(&old_statuses)
        .bind(&new_statuses)
        .bind(&causes)
        .execute(&mut *self)
        .await?;
        if notifications.iter().any(Option::is_some) {
            sqlx::query(
                "INSERT INTO outbox (at, order_id, kind, old_status, new_status)
                 SELECT $1, b.order_id, b.kind, b.old_status, b.new_status
                 FROM unnest($2::text[], $3::text[], $4::text[], $5::text[])
                      WITH ORDINALITY AS b(order_id, kind, old_status, new_status, n)
                 WHERE b.kind IS NOT NULL
                 ORDER BY b.n",
            )
            .bind(at)
            .bind(&ids)
            .bind(&notifications)
            .bind(&old_statuses)
            .bind(&new_statuses)
            .execute(&mut *self)
            .await?;
        }
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

    async fn mark_all_dirty(&mut self, seq: i64, cause: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO dirty_skus (sku, marked_seq, cause)
             SELECT DISTINCT sku, $1::bigint, $2::text FROM order_lines ORDER BY sku
             ON CONFLICT (sku) DO UPDATE SET marked_seq = excluded.marked_seq, cause = excluded.cause",
        )
        .bind(seq)
        .bind(cause)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn push_job(&mut self, job: &RecalcJob) -> Result<(), StoreError> {
        super::push_job(self, job).await
    }
}
