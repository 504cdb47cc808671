//! Applying a batch of events, whichever the database: what each event
//! asks of the stored state, what the state refuses, which SKUs and orders
//! follow, and the report. A backend supplies the statements through
//! [`IngestBackend`], all inside the one transaction that holds the batch,
//! together with the dirty marks and the queued job, so a crash loses
//! neither the effect nor its recalculation.

mod backend;
mod orders;
mod portable;
mod products;
mod purchase_orders;
mod settings;
mod splits;
mod stock;

use chrono::Utc;
use rustc_hash::FxHashMap;

use super::{IngestOptions, IngestReport, StoreError};
use crate::delivery::message::OrderState;
use crate::engine::LineCounts;
use crate::engine::snapshot::Order;
use crate::engine::time_format::format_timestamp;
use crate::events::{Event, EventKind, event_record};
use crate::queue::RecalcJob;
use crate::store::messages::{self, PendingMessage};

pub(in crate::store) use backend::IngestBackend;
pub(in crate::store) use orders::{line_totals, refresh_orders};
pub(in crate::store) use portable::portable_statements;

/// Where a stored line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::store) struct StoredLine {
    pub order_id: String,
    pub position: i64,
    pub sku: String,
}

/// An order's stored totals and its lines' `(qty, backorder_qty)`: what a
/// refresh of its status compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::store) struct OrderLines {
    pub order_id: String,
    pub backorder_qty: i64,
    pub counts: LineCounts,
    pub lines: Vec<(i64, i64)>,
}

/// A SKU to recalculate, because of the event `cause` numbered `seq`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(in crate::store) struct DirtyMark {
    pub sku: String,
    pub seq: i64,
    pub cause: String,
}

/// Binds an order header's columns, as both databases store them: order
/// date, payment date, payment status, status, rush, picked, ship from.
pub(in crate::store) fn bind_order_header<'q, DB: sqlx::Database>(
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
    /// Lines whose stored backorder qty the event set (an override):
    /// `(order_id, line_id, old, new)`, for their history rows.
    overridden: Vec<(String, String, i64, i64)>,
}

/// A line's history row written by an event (an override), not by a
/// recalculation.
pub(in crate::store) struct LineHistory {
    pub order_id: String,
    pub line_id: String,
    pub old_backorder_qty: i64,
    pub new_backorder_qty: i64,
    pub cause: String,
}

/// Applies `events` in order: records each id (a repeat is skipped),
/// applies its effect, refreshes the orders it touched, marks the SKUs it
/// can change and queues one job when anything was marked.
pub(super) async fn ingest<B: IngestBackend>(
    db: &mut B,
    events: &[Event],
    options: IngestOptions,
) -> Result<IngestReport, StoreError> {
    let (report, messages) = apply_batch(db, events, options).await?;
    if report.all_marked || !report.marked_skus.is_empty() {
        let job = RecalcJob::new(
            report.accepted.clone(),
            &report.marked_skus,
            report.all_marked,
        );
        db.push_job(&job).await?;
    }
    messages::append(db, messages, Utc::now()).await?;
    Ok(report)
}

/// [`ingest`] without the job and without numbering the messages of the
/// events' own effects (returned): the writer queues one job for a whole
/// group and numbers its messages last, before its commit.
pub(super) async fn apply_batch<B: IngestBackend>(
    db: &mut B,
    events: &[Event],
    options: IngestOptions,
) -> Result<(IngestReport, Vec<PendingMessage>), StoreError> {
    // The running daemon's options decide, whoever sends the events.
    let options = db.stored_options().await?.unwrap_or(options);
    let mut report = IngestReport::default();
    // sku -> (event seq, event id) of the last event that marked it
    let mut marks: FxHashMap<String, (i64, String)> = FxHashMap::default();
    let mut mark_all: Option<(i64, String)> = None;
    let mut refresh: Vec<(String, String)> = Vec::new();
    let mut touched = Touched::default();
    let now = format_timestamp(&Utc::now());

    for (index, event) in events.iter().enumerate() {
        let Some(seq) = db
            .record_event(&event.id, event.kind.type_name(), &now)
            .await?
        else {
            report.duplicates.push(event.id.clone());
            continue;
        };
        touched.before(db, &event.kind, &event.id).await?;
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
        for (order_id, line_id, old, new) in effect.overridden {
            if old != new {
                let row = LineHistory {
                    order_id,
                    line_id,
                    old_backorder_qty: old,
                    new_backorder_qty: new,
                    cause: event.id.clone(),
                };
                db.line_history(&row, &now).await?;
            }
        }
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
    let messages = messages::for_events(db, touched.orders).await?;
    Ok((report, messages))
}

/// The orders a batch's events change by their own effect (a new or
/// replaced order, a split, an override), each with its state before the
/// first of them touched it and the events that did.
#[derive(Default)]
struct Touched {
    orders: Vec<(String, Option<OrderState>, Vec<String>)>,
}

impl Touched {
    async fn before<B: IngestBackend>(
        &mut self,
        db: &mut B,
        event: &EventKind,
        event_id: &str,
    ) -> Result<(), StoreError> {
        let ids: Vec<String> = match event {
            EventKind::OrderUpserted { order } => vec![order.id.clone()],
            EventKind::OrderSplit {
                order_id,
                new_order_id,
                ..
            } => vec![order_id.clone(), new_order_id.clone()],
            EventKind::BackorderOverride { line_id, .. } => db
                .stored_lines(std::slice::from_ref(line_id))
                .await?
                .into_values()
                .map(|line| line.order_id)
                .collect(),
            _ => return Ok(()),
        };
        for id in ids {
            if let Some(seen) = self.orders.iter_mut().find(|o| o.0 == id) {
                if !seen.2.iter().any(|c| c == event_id) {
                    seen.2.push(event_id.to_owned());
                }
                continue;
            }
            let mut states = messages::order_states(db, std::slice::from_ref(&id)).await?;
            let before = states.remove(&id);
            self.orders.push((id, before, vec![event_id.to_owned()]));
        }
        Ok(())
    }
}

async fn apply<B: IngestBackend>(
    db: &mut B,
    event: &EventKind,
    options: IngestOptions,
) -> Result<Effect, StoreError> {
    match event {
        EventKind::PoReceived {
            sku,
            warehouse,
            qty,
            po_id,
        } => stock::po_received(db, sku, warehouse, *qty, po_id.as_deref()).await,
        EventKind::InventoryAdjusted {
            sku,
            warehouse,
            delta,
        } => stock::inventory_adjusted(db, sku, warehouse, *delta).await,
        EventKind::InventorySet {
            sku,
            warehouse,
            on_hand,
        } => stock::inventory_set(db, sku, warehouse, *on_hand).await,
        EventKind::PurchaseOrderUpserted { purchase_order } => {
            purchase_orders::upsert_purchase_order(db, purchase_order).await
        }
        EventKind::ProductUpserted { product } => products::upsert_product(db, product).await,
        EventKind::OrderUpserted { order } => orders::upsert_order(db, order, options).await,
        EventKind::OrderStatusChanged { order_id, status } => {
            let skus = orders::require_order(db, order_id).await?;
            db.update_status(order_id, *status).await?;
            Ok(splits::status_effect(skus, options))
        }
        EventKind::OrderPaymentChanged {
            order_id,
            payment_status,
            payment_date,
        } => {
            let skus = orders::require_order(db, order_id).await?;
            db.update_payment(order_id, *payment_status, payment_date.as_ref())
                .await?;
            Ok(splits::status_effect(skus, options))
        }
        EventKind::OrderSplit {
            order_id,
            new_order_id,
            line_ids,
        } => splits::split_order(db, order_id, new_order_id, line_ids).await,
        EventKind::SettingsChanged { settings } => settings::settings_changed(db, settings).await,
        EventKind::BackorderOverride {
            line_id,
            backorder_qty,
        } => settings::backorder_override(db, line_id, *backorder_qty).await,
        EventKind::Recalculate { skus, all } => Ok(Effect {
            skus: skus.clone(),
            all: *all,
            ..Effect::default()
        }),
    }
}
