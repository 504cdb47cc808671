//! The statements that read the same on both databases.

/// The [`IngestBackend`] statements that read the same on both databases
/// (sqlx binds `$N` on SQLite too), written once and expanded inside each
/// backend's `impl IngestBackend`: the drivers share no connection type, and
/// bounds generic over `sqlx::Database` for every bind would outweigh the
/// statements. `super` is the backend's module (its `load_settings`...).
macro_rules! portable_statements {
    () => {
        async fn stored_options(
            &mut self,
        ) -> Result<Option<$crate::store::IngestOptions>, $crate::store::StoreError> {
            let stored: Option<(bool, bool)> = ::sqlx::query_as(
                "SELECT recalculate_on_status_change, defer_new_orders FROM service_options WHERE id = 1",
            )
            .fetch_optional(&mut *self)
            .await?;
            Ok(stored.map(|(recalculate_on_status_change, defer_new_orders)| {
                $crate::store::IngestOptions {
                    recalculate_on_status_change,
                    defer_new_orders,
                }
            }))
        }

        async fn record_event(
            &mut self,
            id: &str,
            type_name: &str,
            received_at: &str,
        ) -> Result<Option<i64>, $crate::store::StoreError> {
            Ok(::sqlx::query_scalar(
                "INSERT INTO received_events (id, type, received_at) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO NOTHING RETURNING seq",
            )
            .bind(id)
            .bind(type_name)
            .bind(received_at)
            .fetch_optional(&mut *self)
            .await?)
        }

        async fn known_warehouse(
            &mut self,
            warehouse: &str,
        ) -> Result<bool, $crate::store::StoreError> {
            Ok(
                ::sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM warehouses WHERE id = $1)")
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
        ) -> Result<i64, $crate::store::StoreError> {
            // Both terms are within the quantity bounds (the event's check,
            // and every stored value was checked on its way in), so the sum
            // cannot overflow in SQL; the caller checks the result.
            Ok(::sqlx::query_scalar(
                "INSERT INTO inventory (sku, warehouse, on_hand) VALUES ($1, $2, $3)
                 ON CONFLICT (sku, warehouse) DO UPDATE SET on_hand = inventory.on_hand + excluded.on_hand
                 RETURNING on_hand",
            )
            .bind(sku)
            .bind(warehouse)
            .bind(delta)
            .fetch_one(&mut *self)
            .await?)
        }

        async fn set_on_hand(
            &mut self,
            sku: &str,
            warehouse: &str,
            on_hand: i64,
        ) -> Result<(), $crate::store::StoreError> {
            ::sqlx::query(
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

        async fn receive_po(
            &mut self,
            po_id: &str,
            qty: i64,
        ) -> Result<Option<(String, i64)>, $crate::store::StoreError> {
            // As for `add_on_hand`: bounded terms, the result checked by the caller.
            Ok(::sqlx::query_as(
                "UPDATE purchase_orders SET qty_received = qty_received + $1 WHERE id = $2
                 RETURNING sku, qty_received",
            )
            .bind(qty)
            .bind(po_id)
            .fetch_optional(&mut *self)
            .await?)
        }

        async fn replacement_sku(
            &mut self,
            sku: &str,
        ) -> Result<Option<String>, $crate::store::StoreError> {
            let stored: Option<Option<String>> =
                ::sqlx::query_scalar("SELECT replacement_sku FROM products WHERE sku = $1")
                    .bind(sku)
                    .fetch_optional(&mut *self)
                    .await?;
            Ok(stored.flatten())
        }

        async fn upsert_product(
            &mut self,
            product: &$crate::engine::snapshot::Product,
        ) -> Result<(), $crate::store::StoreError> {
            ::sqlx::query(
                "INSERT INTO products (sku, position, replacement_sku, vendor, allow_backorders, backorder_thresholds)
                 VALUES ($1, (SELECT COALESCE(MAX(position), -1) + 1 FROM products), $2, $3, $4, $5)
                 ON CONFLICT (sku) DO UPDATE SET replacement_sku = excluded.replacement_sku,
                     vendor = excluded.vendor, allow_backorders = excluded.allow_backorders,
                     backorder_thresholds = excluded.backorder_thresholds",
            )
            .bind(&product.sku)
            .bind(&product.replacement_sku)
            .bind(&product.vendor)
            .bind(product.allow_backorders)
            .bind($crate::store::assemble::thresholds_column(product))
            .execute(&mut *self)
            .await?;
            Ok(())
        }

        async fn purchase_order_sku(
            &mut self,
            po_id: &str,
        ) -> Result<Option<String>, $crate::store::StoreError> {
            Ok(
                ::sqlx::query_scalar("SELECT sku FROM purchase_orders WHERE id = $1")
                    .bind(po_id)
                    .fetch_optional(&mut *self)
                    .await?,
            )
        }

        async fn upsert_purchase_order(
            &mut self,
            po: &$crate::engine::snapshot::PurchaseOrder,
        ) -> Result<(), $crate::store::StoreError> {
            ::sqlx::query(
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
            .bind(po.expected_date.as_ref().map($crate::engine::time_format::format_date))
            .execute(&mut *self)
            .await?;
            Ok(())
        }

        async fn update_order_header(
            &mut self,
            order: &$crate::engine::snapshot::Order,
        ) -> Result<(), $crate::store::StoreError> {
            let update = ::sqlx::query(
                "UPDATE orders SET order_date = $1, payment_date = $2, payment_status = $3, status = $4,
                     rush = $5, picked = $6, ship_from = $7 WHERE id = $8",
            );
            $crate::store::ingest::bind_order_header(update, order)
            .bind(&order.id)
            .execute(&mut *self)
            .await?;
            Ok(())
        }

        async fn update_status(
            &mut self,
            order_id: &str,
            status: $crate::engine::snapshot::OrderStatus,
        ) -> Result<(), $crate::store::StoreError> {
            ::sqlx::query("UPDATE orders SET status = $1 WHERE id = $2")
                .bind(status.as_str())
                .bind(order_id)
                .execute(&mut *self)
                .await?;
            Ok(())
        }

        async fn update_payment(
            &mut self,
            order_id: &str,
            payment_status: $crate::engine::snapshot::PaymentStatus,
            payment_date: Option<&::chrono::DateTime<::chrono::Utc>>,
        ) -> Result<(), $crate::store::StoreError> {
            ::sqlx::query("UPDATE orders SET payment_status = $1, payment_date = $2 WHERE id = $3")
                .bind(payment_status.as_str())
                .bind(payment_date.map($crate::engine::time_format::format_timestamp))
                .bind(order_id)
                .execute(&mut *self)
                .await?;
            Ok(())
        }

        async fn copy_order_header(
            &mut self,
            order_id: &str,
            new_order_id: &str,
        ) -> Result<(), $crate::store::StoreError> {
            ::sqlx::query(
                "INSERT INTO orders (id, position, order_date, payment_date, payment_status, status, rush, picked, ship_from)
                 SELECT $1, (SELECT MAX(position) + 1 FROM orders), order_date, payment_date, payment_status, status, rush, picked, ship_from
                 FROM orders WHERE id = $2",
            )
            .bind(new_order_id)
            .bind(order_id)
            .execute(&mut *self)
            .await?;
            Ok(())
        }

        async fn load_settings(
            &mut self,
        ) -> Result<$crate::engine::snapshot::Settings, $crate::store::StoreError> {
            let stored: Option<String> =
                ::sqlx::query_scalar("SELECT settings FROM client_settings WHERE id = 1")
                    .fetch_optional(&mut *self)
                    .await?;
            match stored {
                Some(text) => ::serde_json::from_str(&text).map_err(|e| {
                    $crate::store::StoreError::Corrupt {
                        record: "client settings".into(),
                        problem: e.to_string(),
                    }
                }),
                None => Ok($crate::engine::snapshot::Settings::default()),
            }
        }

        async fn save_settings(
            &mut self,
            settings: &$crate::engine::snapshot::Settings,
        ) -> Result<(), $crate::store::StoreError> {
            ::sqlx::query(
                "INSERT INTO client_settings (id, settings) VALUES (1, $1)
                 ON CONFLICT (id) DO UPDATE SET settings = excluded.settings",
            )
            .bind(::serde_json::to_string(settings).expect("settings serialize"))
            .execute(&mut *self)
            .await?;
            Ok(())
        }

        async fn override_line(
            &mut self,
            line_id: &str,
            backorder_qty: i64,
        ) -> Result<Option<(String, String, i64)>, $crate::store::StoreError> {
            // Read first: RETURNING gives the new value, the history wants the old.
            let old: Option<(String, String, i64)> = ::sqlx::query_as(
                "SELECT order_id, sku, backorder_qty FROM order_lines WHERE id = $1",
            )
            .bind(line_id)
            .fetch_optional(&mut *self)
            .await?;
            if old.is_some() {
                ::sqlx::query("UPDATE order_lines SET backorder_qty = $1 WHERE id = $2")
                    .bind(backorder_qty)
                    .bind(line_id)
                    .execute(&mut *self)
                    .await?;
            }
            Ok(old)
        }

        async fn line_history(
            &mut self,
            row: &$crate::store::ingest::LineHistory,
            at: &str,
        ) -> Result<(), $crate::store::StoreError> {
            ::sqlx::query(
                "INSERT INTO history (at, order_id, line_id, old_backorder_qty, new_backorder_qty, cause)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(at)
            .bind(&row.order_id)
            .bind(&row.line_id)
            .bind(row.old_backorder_qty)
            .bind(row.new_backorder_qty)
            .bind(&row.cause)
            .execute(&mut *self)
            .await?;
            Ok(())
        }

        async fn order_header(
            &mut self,
            order_id: &str,
        ) -> Result<$crate::engine::snapshot::Order, $crate::store::StoreError> {
            let row = ::sqlx::query(
                "SELECT id, order_date, payment_date, payment_status, status, rush, picked, ship_from
                 FROM orders WHERE id = $1",
            )
            .bind(order_id)
            .fetch_one(&mut *self)
            .await?;
            $crate::store::codec::HeaderRow::<String>::from_row(&row)?.into_order()
        }

        async fn load_warehouses(
            &mut self,
        ) -> Result<Vec<$crate::engine::snapshot::Warehouse>, $crate::store::StoreError> {
            let rows: Vec<(String, String)> =
                ::sqlx::query_as("SELECT id, kind FROM warehouses ORDER BY position")
                    .fetch_all(&mut *self)
                    .await?;
            rows.into_iter()
                .map(|(id, kind)| {
                    let kind =
                        $crate::store::codec::warehouse_kind(&kind, &|| format!("warehouse {id:?}"))?;
                    Ok($crate::engine::snapshot::Warehouse { id, kind })
                })
                .collect()
        }

        async fn mark_all_dirty(
            &mut self,
            seq: i64,
            cause: &str,
        ) -> Result<(), $crate::store::StoreError> {
            // `WHERE true` tells SQLite's parser that ON CONFLICT is the
            // upsert's, not a join's.
            ::sqlx::query(
                "INSERT INTO dirty_skus (sku, marked_seq, cause)
                 SELECT DISTINCT sku, $1, $2 FROM order_lines WHERE true ORDER BY sku
                 ON CONFLICT (sku) DO UPDATE SET marked_seq = excluded.marked_seq, cause = excluded.cause",
            )
            .bind(seq)
            .bind(cause)
            .execute(&mut *self)
            .await?;
            Ok(())
        }
    };
}
pub(in crate::store) use portable_statements;
