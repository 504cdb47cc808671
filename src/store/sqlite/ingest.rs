//! The statements of event ingestion on SQLite (the logic is
//! `store/ingest.rs`'s).

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use sqlx::{Row, SqliteConnection};

use super::writeback::write_order_changes;
use crate::engine::snapshot::{
    Order, OrderStatus, PaymentStatus, PurchaseOrder, Settings, Warehouse,
};
use crate::engine::time_format::{format_date, format_timestamp};
use crate::events::Event;
use crate::queue::{QUEUE, RecalcJob};
use crate::recalc::OrderChange;
use crate::store::ingest::{DirtyMark, IngestBackend, OrderLines, StoredLine};
use crate::store::{IngestOptions, IngestReport, StoreError};

pub(super) async fn ingest(
    conn: &mut SqliteConnection,
    events: &[Event],
    options: IngestOptions,
) -> Result<IngestReport, StoreError> {
    crate::store::ingest::ingest(conn, events, options).await
}

pub(super) async fn push_job(
    conn: &mut SqliteConnection,
    job: &RecalcJob,
) -> Result<(), StoreError> {
    let task = apalis::prelude::TaskBuilder::new(job.payload()).build();
    apalis_sqlite::queries::push_tasks(conn, QUEUE, &[task])
        .await
        .map_err(|e| match e {
            apalis_sqlite::Error::Database(e) => StoreError::Database(e),
            other => StoreError::Queue(other.to_string()),
        })
}

impl IngestBackend for SqliteConnection {
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
            "INSERT INTO received_events (id, type, received_at) VALUES (?, ?, ?)
             ON CONFLICT (id) DO NOTHING RETURNING seq",
        )
        .bind(id)
        .bind(type_name)
        .bind(received_at)
        .fetch_optional(&mut *self)
        .await?)
    }

    async fn known_warehouse(&mut self, warehouse: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM warehouses WHERE id = ?")
            .bind(warehouse)
            .fetch_optional(&mut *self)
            .await?;
        Ok(found.is_some())
    }

    async fn add_on_hand(
        &mut self,
        sku: &str,
        warehouse: &str,
        delta: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO inventory (sku, warehouse, on_hand) VALUES (?, ?, ?)
             ON CONFLICT (sku, warehouse) DO UPDATE SET on_hand = on_hand + excluded.on_hand",
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
            "INSERT INTO inventory (sku, warehouse, on_hand) VALUES (?, ?, ?)
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
            "UPDATE purchase_orders SET qty_received = qty_received + ? WHERE id = ? RETURNING sku",
        )
        .bind(qty)
        .bind(po_id)
        .fetch_optional(&mut *self)
        .await?)
    }

    async fn purchase_order_sku(&mut self, po_id: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT sku FROM purchase_orders WHERE id = ?")
                .bind(po_id)
                .fetch_optional(&mut *self)
                .await?,
        )
    }

    async fn upsert_purchase_order(&mut self, po: &PurchaseOrder) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO purchase_orders (id, position, sku, warehouse, qty_ordered, qty_received, expected_date)
             VALUES (?1, (SELECT COALESCE(MAX(position), -1) + 1 FROM purchase_orders), ?2, ?3, ?4, ?5, ?6)
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
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM orders WHERE id = ?")
            .bind(order_id)
            .fetch_optional(&mut *self)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        Ok(Some(
            sqlx::query_scalar("SELECT DISTINCT sku FROM order_lines WHERE order_id = ?")
                .bind(order_id)
                .fetch_all(&mut *self)
                .await?,
        ))
    }

    async fn stored_lines(
        &mut self,
        line_ids: &[String],
    ) -> Result<FxHashMap<String, StoredLine>, StoreError> {
        let mut stored = FxHashMap::default();
        for line_id in line_ids {
            let row = sqlx::query("SELECT order_id, position, sku FROM order_lines WHERE id = ?")
                .bind(line_id)
                .fetch_optional(&mut *self)
                .await?;
            if let Some(row) = row {
                let line = StoredLine {
                    order_id: row.get(0),
                    position: row.get(1),
                    sku: row.get(2),
                };
                stored.insert(line_id.clone(), line);
            }
        }
        Ok(stored)
    }

    async fn upsert_order(&mut self, order: &Order) -> Result<bool, StoreError> {
        let existed = sqlx::query(
            "UPDATE orders SET order_date = ?, payment_date = ?, payment_status = ?, status = ?,
                 rush = ?, picked = ?, ship_from = ? WHERE id = ?",
        )
        .bind(format_timestamp(&order.order_date))
        .bind(order.payment_date.as_ref().map(format_timestamp))
        .bind(order.payment_status.as_str())
        .bind(order.status.as_str())
        .bind(order.rush)
        .bind(order.picked)
        .bind(&order.ship_from)
        .bind(&order.id)
        .execute(&mut *self)
        .await?
        .rows_affected()
            > 0;
        if existed {
            sqlx::query("DELETE FROM order_lines WHERE order_id = ?")
                .bind(&order.id)
                .execute(&mut *self)
                .await?;
            super::insert_lines(self, std::iter::once(order)).await?;
        } else {
            super::insert_orders(self, &[(None, order)]).await?;
        }
        Ok(existed)
    }

    async fn update_status(
        &mut self,
        order_id: &str,
        status: OrderStatus,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE orders SET status = ? WHERE id = ?")
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
        sqlx::query("UPDATE orders SET payment_status = ?, payment_date = ? WHERE id = ?")
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
             SELECT ?, (SELECT MAX(position) + 1 FROM orders), order_date, payment_date, payment_status, status, rush, picked, ship_from
             FROM orders WHERE id = ?",
        )
        .bind(new_order_id)
        .bind(order_id)
        .execute(&mut *self)
        .await?;
        for (line_id, position) in moves {
            sqlx::query("UPDATE order_lines SET order_id = ?, position = ? WHERE id = ?")
                .bind(new_order_id)
                .bind(position)
                .bind(line_id)
                .execute(&mut *self)
                .await?;
        }
        Ok(())
    }

    async fn load_settings(&mut self) -> Result<Settings, StoreError> {
        super::load_settings(self).await
    }

    async fn save_settings(&mut self, settings: &Settings) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO client_settings (id, settings) VALUES (1, ?)
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
            "UPDATE order_lines SET backorder_qty = ? WHERE id = ? RETURNING order_id, sku",
        )
        .bind(backorder_qty)
        .bind(line_id)
        .fetch_optional(&mut *self)
        .await?)
    }

    async fn order_header(&mut self, order_id: &str) -> Result<Order, StoreError> {
        let header: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM orders o WHERE o.id = ?",
            super::ORDER_HEADER_JSON
        )))
        .bind(order_id)
        .fetch_one(&mut *self)
        .await?;
        super::from_json_text::<super::HeaderRow>(&header, "an order")?.into_order()
    }

    async fn load_warehouses(&mut self) -> Result<Vec<Warehouse>, StoreError> {
        super::load_warehouses(self).await
    }

    async fn orders_with_lines(
        &mut self,
        order_ids: &[String],
    ) -> Result<Vec<OrderLines>, StoreError> {
        let mut orders = Vec::with_capacity(order_ids.len());
        for order_id in order_ids {
            let Some(row) = sqlx::query(
                "SELECT backorder_qty, lines_open, lines_backordered, lines_whole FROM orders WHERE id = ?",
            )
            .bind(order_id)
            .fetch_optional(&mut *self)
            .await?
            else {
                continue;
            };
            let lines: Vec<(i64, i64)> =
                sqlx::query_as("SELECT qty, backorder_qty FROM order_lines WHERE order_id = ?")
                    .bind(order_id)
                    .fetch_all(&mut *self)
                    .await?;
            orders.push(OrderLines {
                order_id: order_id.clone(),
                backorder_qty: row.get(0),
                counts: crate::engine::LineCounts {
                    open: row.get(1),
                    backordered: row.get(2),
                    whole: row.get(3),
                },
                lines,
            });
        }
        Ok(orders)
    }

    async fn write_order_changes(
        &mut self,
        changes: &[OrderChange],
        at: &str,
    ) -> Result<(), StoreError> {
        write_order_changes(self, changes, at).await
    }

    async fn mark_dirty(&mut self, marks: &[DirtyMark]) -> Result<(), StoreError> {
        let rows: Vec<(&str, i64, &str)> = marks
            .iter()
            .map(|mark| (mark.sku.as_str(), mark.seq, mark.cause.as_str()))
            .collect();
        sqlx::query(
            "INSERT INTO dirty_skus (sku, marked_seq, cause)
             SELECT j.value->>0, j.value->>1, j.value->>2 FROM json_each(?) j WHERE true
             ON CONFLICT (sku) DO UPDATE SET marked_seq = excluded.marked_seq, cause = excluded.cause",
        )
        .bind(serde_json::to_string(&rows).expect("rows serialize"))
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn mark_all_dirty(&mut self, seq: i64, cause: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO dirty_skus (sku, marked_seq, cause)
             SELECT DISTINCT sku, ?, ? FROM order_lines WHERE true
             ON CONFLICT (sku) DO UPDATE SET marked_seq = excluded.marked_seq, cause = excluded.cause",
        )
        .bind(seq)
        .bind(cause)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn push_job(&mut self, job: &RecalcJob) -> Result<(), StoreError> {
        push_job(self, job).await
    }
}
