//! Applying a batch of events, whichever the database: what each event
//! asks of the stored state, what the state refuses, which SKUs and orders
//! follow, and the report. A backend supplies the statements through
//! [`IngestBackend`], all inside the one transaction that holds the batch,
//! together with the dirty marks and the queued job, so a crash loses
//! neither the effect nor its recalculation.

use std::future::Future;

use chrono::{DateTime, Utc};
use rustc_hash::{FxHashMap, FxHashSet};

use super::{IngestOptions, IngestReport, StoreError};
use crate::engine::LineCounts;
use crate::engine::limits::{MAX_QUANTITY, signed_quantity_in_bounds};
use crate::engine::snapshot::{
    Order, OrderStatus, PaymentStatus, PurchaseOrder, Settings, Warehouse,
};
use crate::engine::time_format::format_timestamp;
use crate::events::{Event, EventKind, event_record};
use crate::queue::RecalcJob;
use crate::recalc::OrderChange;

/// Where a stored line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredLine {
    pub order_id: String,
    pub position: i64,
    pub sku: String,
}

/// An order's stored totals and its lines' `(qty, backorder_qty)`: what a
/// refresh of its status compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OrderLines {
    pub order_id: String,
    pub backorder_qty: i64,
    pub counts: LineCounts,
    pub lines: Vec<(i64, i64)>,
}

/// A SKU to recalculate, because of the event `cause` numbered `seq`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct DirtyMark {
    pub sku: String,
    pub seq: i64,
    pub cause: String,
}

/// The statements of one backend, each run in the batch's transaction.
/// Checks against the state (unknown order...) are the caller's: these
/// report what they find.
pub(super) trait IngestBackend: Send {
    /// The options the running daemon recorded, if one ever did.
    fn stored_options(
        &mut self,
    ) -> impl Future<Output = Result<Option<IngestOptions>, StoreError>> + Send;
    /// Records an event id: its sequence number, `None` when seen before.
    fn record_event(
        &mut self,
        id: &str,
        type_name: &str,
        received_at: &str,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;
    fn known_warehouse(
        &mut self,
        warehouse: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Moves on hand by `delta`, creating the inventory row if missing:
    /// the new on hand.
    fn add_on_hand(
        &mut self,
        sku: &str,
        warehouse: &str,
        delta: i64,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;
    fn set_on_hand(
        &mut self,
        sku: &str,
        warehouse: &str,
        on_hand: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Adds to a PO's received qty: the PO's SKU and new received qty,
    /// `None` for an unknown PO.
    fn receive_po(
        &mut self,
        po_id: &str,
        qty: i64,
    ) -> impl Future<Output = Result<Option<(String, i64)>, StoreError>> + Send;
    /// The stored SKU of a PO, `None` for an unknown one.
    fn purchase_order_sku(
        &mut self,
        po_id: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// Replaces a PO, or adds it after every stored one.
    fn upsert_purchase_order(
        &mut self,
        po: &PurchaseOrder,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The distinct SKUs of an order's lines; `None` for an unknown order.
    fn order_skus(
        &mut self,
        order_id: &str,
    ) -> impl Future<Output = Result<Option<Vec<String>>, StoreError>> + Send;
    /// Those of `line_ids` that are stored, by id.
    fn stored_lines(
        &mut self,
        line_ids: &[String],
    ) -> impl Future<Output = Result<FxHashMap<String, StoredLine>, StoreError>> + Send;
    /// Writes a stored order's header (its totals are the refresh's).
    fn update_order_header(
        &mut self,
        order: &Order,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Replaces a stored order's lines with `order`'s.
    fn replace_lines(
        &mut self,
        order: &Order,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Adds a new order after every stored one, with the totals of its lines.
    fn insert_order(
        &mut self,
        order: &Order,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn update_status(
        &mut self,
        order_id: &str,
        status: OrderStatus,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn update_payment(
        &mut self,
        order_id: &str,
        payment_status: PaymentStatus,
        payment_date: Option<&DateTime<Utc>>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Adds `new_order_id` after every stored order, with `order_id`'s
    /// header and zero totals (for the refresh to set).
    fn copy_order_header(
        &mut self,
        order_id: &str,
        new_order_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Moves lines to `new_order_id`, each to its position.
    fn move_lines(
        &mut self,
        new_order_id: &str,
        moves: &[(String, i64)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn load_settings(&mut self) -> impl Future<Output = Result<Settings, StoreError>> + Send;
    fn save_settings(
        &mut self,
        settings: &Settings,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Sets a line's stored backorder qty: its `(order_id, sku)`, `None`
    /// for an unknown line.
    fn override_line(
        &mut self,
        line_id: &str,
        backorder_qty: i64,
    ) -> impl Future<Output = Result<Option<(String, String)>, StoreError>> + Send;
    /// A stored order's header, without its lines.
    fn order_header(
        &mut self,
        order_id: &str,
    ) -> impl Future<Output = Result<Order, StoreError>> + Send;
    fn load_warehouses(
        &mut self,
    ) -> impl Future<Output = Result<Vec<Warehouse>, StoreError>> + Send;
    /// The stored orders among `order_ids`, each with its lines, held
    /// until the end of the transaction for the status writes that follow.
    fn orders_with_lines(
        &mut self,
        order_ids: &[String],
    ) -> impl Future<Output = Result<Vec<OrderLines>, StoreError>> + Send;
    /// Writes orders' new totals, a history row each and the outbox rows
    /// they call for.
    fn write_order_changes(
        &mut self,
        changes: &[OrderChange],
        at: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Upserts the marks (sorted by SKU), a newer event replacing the cause.
    fn mark_dirty(
        &mut self,
        marks: &[DirtyMark],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Marks every SKU of the stored lines.
    fn mark_all_dirty(
        &mut self,
        seq: i64,
        cause: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn push_job(&mut self, job: &RecalcJob) -> impl Future<Output = Result<(), StoreError>> + Send;
}

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
        ) -> Result<Option<(String, String)>, $crate::store::StoreError> {
            Ok(::sqlx::query_as(
                "UPDATE order_lines SET backorder_qty = $1 WHERE id = $2 RETURNING order_id, sku",
            )
            .bind(backorder_qty)
            .bind(line_id)
            .fetch_optional(&mut *self)
            .await?)
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
pub(super) use portable_statements;

/// Binds an order header's columns, as both databases store them: order
/// date, payment date, payment status, status, rush, picked, ship from.
pub(super) fn bind_order_header<'q, DB: sqlx::Database>(
    query: sqlx::query::Query<'q, DB, DB::Arguments>,
    order: &Order,
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<String>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    query
        .bind(format_timestamp(&order.order_date))
        .bind(order.payment_date.as_ref().map(format_timestamp))
        .bind(order.payment_status.as_str().to_owned())
        .bind(order.status.as_str().to_owned())
        .bind(i64::from(order.rush))
        .bind(i64::from(order.picked))
        .bind(order.ship_from.clone())
}

/// What one event asks of the recalculation.
#[derive(Default)]
struct Effect {
    skus: Vec<String>,
    all: bool,
    /// Orders whose lines were replaced, moved or overridden: their status
    /// is recomputed from the stored lines at once.
    orders: Vec<String>,
}

/// Applies `events` in order: records each id (a repeat is skipped),
/// applies its effect, refreshes the orders it touched, marks the SKUs it
/// can change and queues one job when anything was marked.
pub(super) async fn ingest<B: IngestBackend>(
    db: &mut B,
    events: &[Event],
    options: IngestOptions,
) -> Result<IngestReport, StoreError> {
    // The running daemon's options decide, whoever sends the events.
    let options = db.stored_options().await?.unwrap_or(options);
    let mut report = IngestReport::default();
    // sku -> (event seq, event id) of the last event that marked it
    let mut marks: FxHashMap<String, (i64, String)> = FxHashMap::default();
    let mut mark_all: Option<(i64, String)> = None;
    let mut refresh: Vec<(String, String)> = Vec::new();
    let now = format_timestamp(&Utc::now());

    for (index, event) in events.iter().enumerate() {
        let Some(seq) = db
            .record_event(&event.id, event.kind.type_name(), &now)
            .await?
        else {
            report.duplicates.push(event.id.clone());
            continue;
        };
        let effect = apply(db, &event.kind, options).await.map_err(|e| match e {
            StoreError::Refused(problem) => StoreError::Refused(format!(
                "{}: {problem}",
                event_record(index, Some(&event.id))
            )),
            other => other,
        })?;
        report.accepted.push(event.id.clone());
        if effect.all {
            mark_all = Some((seq, event.id.clone()));
        }
        for sku in effect.skus {
            marks.insert(sku, (seq, event.id.clone()));
        }
        refresh.extend(effect.orders.into_iter().map(|o| (o, event.id.clone())));
    }

    refresh_orders(db, &refresh, &now).await?;

    if let Some((seq, cause)) = &mark_all {
        db.mark_all_dirty(*seq, cause).await?;
        report.all_marked = true;
    }
    let mut marked: Vec<DirtyMark> = marks
        .into_iter()
        .map(|(sku, (seq, cause))| DirtyMark { sku, seq, cause })
        .collect();
    marked.sort_unstable();
    if !marked.is_empty() {
        db.mark_dirty(&marked).await?;
    }
    if !report.all_marked {
        report.marked_skus = marked.into_iter().map(|mark| mark.sku).collect();
    }
    if report.all_marked || !report.marked_skus.is_empty() {
        let job = RecalcJob::new(
            report.accepted.clone(),
            &report.marked_skus,
            report.all_marked,
        );
        db.push_job(&job).await?;
    }
    Ok(report)
}

async fn apply<B: IngestBackend>(
    db: &mut B,
    event: &EventKind,
    options: IngestOptions,
) -> Result<Effect, StoreError> {
    let one = |sku: &str| Effect {
        skus: vec![sku.to_owned()],
        ..Effect::default()
    };
    match event {
        EventKind::PoReceived {
            sku,
            warehouse,
            qty,
            po_id,
        } => {
            require_warehouse(db, warehouse, "warehouse").await?;
            let on_hand = db.add_on_hand(sku, warehouse, *qty).await?;
            require_on_hand_in_bounds(sku, warehouse, on_hand)?;
            let mut effect = one(sku);
            if let Some(po_id) = po_id {
                // An unknown PO id is not an error: the stock still arrived.
                // The PO may be of another SKU, whose ETAs then move too.
                if let Some((po_sku, received)) = db.receive_po(po_id, *qty).await? {
                    if received > MAX_QUANTITY {
                        return Err(StoreError::Refused(format!(
                            "purchase order \"{po_id}\" would have qty_received {received}, \
                             above the largest quantity {MAX_QUANTITY}"
                        )));
                    }
                    effect.skus.extend((po_sku != *sku).then_some(po_sku));
                }
            }
            Ok(effect)
        }
        EventKind::InventoryAdjusted {
            sku,
            warehouse,
            delta,
        } => {
            require_warehouse(db, warehouse, "warehouse").await?;
            let on_hand = db.add_on_hand(sku, warehouse, *delta).await?;
            require_on_hand_in_bounds(sku, warehouse, on_hand)?;
            Ok(one(sku))
        }
        EventKind::InventorySet {
            sku,
            warehouse,
            on_hand,
        } => {
            require_warehouse(db, warehouse, "warehouse").await?;
            db.set_on_hand(sku, warehouse, *on_hand).await?;
            Ok(one(sku))
        }
        EventKind::PurchaseOrderUpserted { purchase_order } => {
            upsert_purchase_order(db, purchase_order).await
        }
        EventKind::OrderUpserted { order } => upsert_order(db, order, options).await,
        EventKind::OrderStatusChanged { order_id, status } => {
            let skus = require_order(db, order_id).await?;
            db.update_status(order_id, *status).await?;
            Ok(status_effect(skus, options))
        }
        EventKind::OrderPaymentChanged {
            order_id,
            payment_status,
            payment_date,
        } => {
            let skus = require_order(db, order_id).await?;
            db.update_payment(order_id, *payment_status, payment_date.as_ref())
                .await?;
            Ok(status_effect(skus, options))
        }
        EventKind::OrderSplit {
            order_id,
            new_order_id,
            line_ids,
        } => split_order(db, order_id, new_order_id, line_ids).await,
        EventKind::SettingsChanged { settings } => {
            let mut stored = db.load_settings().await?;
            settings.apply(&mut stored);
            db.save_settings(&stored).await?;
            Ok(Effect {
                all: true,
                ..Effect::default()
            })
        }
        EventKind::BackorderOverride {
            line_id,
            backorder_qty,
        } => {
            let (order_id, sku) = db
                .override_line(line_id, *backorder_qty)
                .await?
                .ok_or_else(|| StoreError::Refused(format!("unknown line \"{line_id}\"")))?;
            // An active line's override stands until the next recalculation
            // of its SKU (events.md), so it marks nothing; a frozen line's
            // value decides what it holds of the pool, so the others move.
            let frozen = order_scope(db, &order_id).await? == crate::engine::Scope::Frozen;
            Ok(Effect {
                skus: if frozen { vec![sku] } else { Vec::new() },
                orders: vec![order_id],
                ..Effect::default()
            })
        }
        EventKind::Recalculate { skus, all } => Ok(Effect {
            skus: skus.clone(),
            all: *all,
            ..Effect::default()
        }),
    }
}

/// Section 2's class of a stored order, as of now.
async fn order_scope<B: IngestBackend>(
    db: &mut B,
    order_id: &str,
) -> Result<crate::engine::Scope, StoreError> {
    let order = db.order_header(order_id).await?;
    let settings = db.load_settings().await?;
    let warehouses = db.load_warehouses().await?;
    Ok(crate::engine::scope_of(
        &order,
        &settings,
        &warehouses,
        Utc::now(),
    ))
}

fn status_effect(skus: Vec<String>, options: IngestOptions) -> Effect {
    if options.recalculate_on_status_change {
        Effect {
            skus,
            ..Effect::default()
        }
    } else {
        Effect::default()
    }
}

/// Refuses an event that would leave an on-hand beyond the quantity
/// bounds: the batch's transaction is then rolled back, nothing applied.
fn require_on_hand_in_bounds(sku: &str, warehouse: &str, on_hand: i64) -> Result<(), StoreError> {
    if signed_quantity_in_bounds(on_hand) {
        Ok(())
    } else {
        Err(StoreError::Refused(format!(
            "on_hand of sku \"{sku}\" in warehouse \"{warehouse}\" would become {on_hand}, \
             beyond the bounds -{MAX_QUANTITY} to {MAX_QUANTITY}"
        )))
    }
}

async fn require_warehouse<B: IngestBackend>(
    db: &mut B,
    warehouse: &str,
    field: &str,
) -> Result<(), StoreError> {
    if db.known_warehouse(warehouse).await? {
        Ok(())
    } else {
        Err(StoreError::Refused(format!(
            "{field} names unknown warehouse \"{warehouse}\""
        )))
    }
}

/// The SKUs of an order's lines; refuses an unknown order.
async fn require_order<B: IngestBackend>(
    db: &mut B,
    order_id: &str,
) -> Result<Vec<String>, StoreError> {
    db.order_skus(order_id)
        .await?
        .ok_or_else(|| StoreError::Refused(format!("unknown order \"{order_id}\"")))
}

async fn upsert_purchase_order<B: IngestBackend>(
    db: &mut B,
    po: &PurchaseOrder,
) -> Result<Effect, StoreError> {
    require_warehouse(db, &po.warehouse, "purchase_order.warehouse").await?;
    let old_sku = db.purchase_order_sku(&po.id).await?;
    db.upsert_purchase_order(po).await?;
    let mut skus = vec![po.sku.clone()];
    skus.extend(old_sku.filter(|old| *old != po.sku));
    Ok(Effect {
        skus,
        ..Effect::default()
    })
}

async fn upsert_order<B: IngestBackend>(
    db: &mut B,
    order: &Order,
    options: IngestOptions,
) -> Result<Effect, StoreError> {
    if let Some(ship_from) = &order.ship_from {
        require_warehouse(db, ship_from, "order.ship_from").await?;
    }
    let line_ids: Vec<String> = order.lines.iter().map(|l| l.id.clone()).collect();
    let stored = db.stored_lines(&line_ids).await?;
    for line in &order.lines {
        if let Some(owner) = stored.get(&line.id)
            && owner.order_id != order.id
        {
            return Err(StoreError::Refused(format!(
                "line \"{}\" belongs to order \"{}\" already",
                line.id, owner.order_id
            )));
        }
    }
    let old_skus = db.order_skus(&order.id).await?;
    let existed = old_skus.is_some();
    if existed {
        db.replace_lines(order).await?;
        db.update_order_header(order).await?;
    } else {
        db.insert_order(order).await?;
    }
    let mut skus = old_skus.unwrap_or_default();
    if existed || !options.defer_new_orders {
        skus.extend(order.lines.iter().map(|l| l.sku.clone()));
    }
    Ok(Effect {
        skus,
        orders: vec![order.id.clone()],
        ..Effect::default()
    })
}

async fn split_order<B: IngestBackend>(
    db: &mut B,
    order_id: &str,
    new_order_id: &str,
    line_ids: &[String],
) -> Result<Effect, StoreError> {
    require_order(db, order_id).await?;
    if db.order_skus(new_order_id).await?.is_some() {
        return Err(StoreError::Refused(format!(
            "new_order_id \"{new_order_id}\" names an existing order"
        )));
    }
    let stored = db.stored_lines(line_ids).await?;
    let mut moved = Vec::with_capacity(line_ids.len());
    for line_id in line_ids {
        match stored.get(line_id) {
            Some(line) if line.order_id == order_id => {
                moved.push((line.position, line_id.clone(), line.sku.clone()));
            }
            _ => {
                return Err(StoreError::Refused(format!(
                    "line \"{line_id}\" is not a line of order \"{order_id}\""
                )));
            }
        }
    }
    moved.sort_unstable();
    db.copy_order_header(order_id, new_order_id).await?;
    db.move_lines(new_order_id, &split_positions(&moved))
        .await?;
    // The new order's id breaks priority ties differently: its SKUs are
    // recalculated; both orders' statuses follow their lines at once.
    let mut skus: Vec<String> = moved.into_iter().map(|(_, _, sku)| sku).collect();
    skus.sort_unstable();
    skus.dedup();
    Ok(Effect {
        skus,
        orders: vec![order_id.to_owned(), new_order_id.to_owned()],
        ..Effect::default()
    })
}

/// Each moved line's position in the new order: the lines keep their
/// relative order. `moved` is `(old position, line id, sku)`, sorted; a
/// line named twice takes the later of its places, as if moved twice.
fn split_positions(moved: &[(i64, String, String)]) -> Vec<(String, i64)> {
    let mut positions: Vec<(String, i64)> = Vec::with_capacity(moved.len());
    for (position, (_, line_id, _)) in moved.iter().enumerate() {
        match positions.last_mut() {
            Some(last) if last.0 == *line_id => last.1 = position as i64,
            _ => positions.push((line_id.clone(), position as i64)),
        }
    }
    positions
}

/// Recomputes the totals of orders whose lines an event replaced, moved or
/// overrode, from their stored lines. `orders` are `(order id, cause)`.
async fn refresh_orders<B: IngestBackend>(
    db: &mut B,
    orders: &[(String, String)],
    at: &str,
) -> Result<(), StoreError> {
    let causes = last_causes(orders);
    if causes.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = causes.iter().map(|(id, _)| (*id).to_owned()).collect();
    let stored = db.orders_with_lines(&ids).await?;
    let changes = order_changes(&causes, stored);
    if changes.is_empty() {
        return Ok(());
    }
    db.write_order_changes(&changes, at).await
}

/// An order refreshed twice in a batch changes once, for its last cause,
/// in the place of its last refresh.
fn last_causes(orders: &[(String, String)]) -> Vec<(&str, &str)> {
    let mut seen = FxHashSet::default();
    let mut last: Vec<(&str, &str)> = orders
        .iter()
        .rev()
        .filter(|(order_id, _)| seen.insert(order_id.as_str()))
        .map(|(order_id, cause)| (order_id.as_str(), cause.as_str()))
        .collect();
    last.reverse();
    last
}

/// The orders among `causes` whose stored totals differ from their lines',
/// in the order of `causes`; orders not stored are passed over.
fn order_changes(causes: &[(&str, &str)], stored: Vec<OrderLines>) -> Vec<OrderChange> {
    let mut stored: FxHashMap<String, OrderLines> = stored
        .into_iter()
        .map(|order| (order.order_id.clone(), order))
        .collect();
    let mut changes = Vec::new();
    for &(order_id, cause) in causes {
        let Some(order) = stored.remove(order_id) else {
            continue;
        };
        let (new_counts, new_backorder_qty) = line_totals(order.lines.iter().copied());
        if (new_counts, new_backorder_qty) != (order.counts, order.backorder_qty) {
            changes.push(OrderChange {
                order_id: order.order_id,
                old_status: order.counts.status(),
                new_status: new_counts.status(),
                old_backorder_qty: order.backorder_qty,
                new_backorder_qty,
                old_counts: order.counts,
                new_counts,
                cause: cause.to_owned(),
            });
        }
    }
    changes
}

/// The counts and backorder qty of an order with these `(qty,
/// backorder_qty)` lines.
pub(super) fn line_totals(lines: impl IntoIterator<Item = (i64, i64)>) -> (LineCounts, i64) {
    let mut counts = LineCounts::default();
    let mut backorder_qty = 0;
    for (qty, line_backorder_qty) in lines {
        counts.add(qty, line_backorder_qty);
        // Bounded terms cannot reach i64's limit before millions of lines;
        // saturate rather than wrap all the same.
        backorder_qty = i64::saturating_add(backorder_qty, line_backorder_qty);
    }
    (counts, backorder_qty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::BackorderStatus;

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn an_order_refreshed_twice_keeps_its_last_cause_and_place() {
        let orders = owned(&[("A", "e1"), ("B", "e2"), ("A", "e3"), ("C", "e4")]);
        assert_eq!(
            last_causes(&orders),
            vec![("B", "e2"), ("A", "e3"), ("C", "e4")]
        );
    }

    #[test]
    fn only_orders_whose_totals_moved_change() {
        let (counts, backorder_qty) = line_totals([(5, 0), (3, 0)]);
        let stored = vec![
            OrderLines {
                order_id: "same".into(),
                backorder_qty,
                counts,
                lines: vec![(5, 0), (3, 0)],
            },
            OrderLines {
                order_id: "moved".into(),
                backorder_qty,
                counts,
                lines: vec![(5, 5), (3, 1), (0, 2)],
            },
        ];
        let changes = order_changes(&[("same", "e1"), ("gone", "e1"), ("moved", "e2")], stored);
        assert_eq!(changes.len(), 1);
        let change = &changes[0];
        assert_eq!(change.order_id, "moved");
        assert_eq!(change.cause, "e2");
        assert_eq!(
            (change.old_status, change.new_status),
            (BackorderStatus::None, BackorderStatus::Partial)
        );
        assert_eq!((change.old_backorder_qty, change.new_backorder_qty), (0, 8));
        assert_eq!(
            change.new_counts,
            LineCounts {
                open: 2,
                backordered: 2,
                whole: 1
            }
        );
        assert_eq!(change.notification(), Some("backordered"));
    }

    #[test]
    fn split_lines_keep_their_relative_order() {
        let moved = |rows: &[(i64, &str)]| -> Vec<(i64, String, String)> {
            rows.iter()
                .map(|(p, id)| (*p, (*id).to_owned(), "SKU".to_owned()))
                .collect()
        };
        assert_eq!(
            split_positions(&moved(&[(1, "b"), (4, "d")])),
            vec![("b".to_owned(), 0), ("d".to_owned(), 1)]
        );
        // A line named twice ends where a second move would put it.
        assert_eq!(
            split_positions(&moved(&[(1, "b"), (1, "b"), (4, "d")])),
            vec![("b".to_owned(), 1), ("d".to_owned(), 2)]
        );
    }
}
