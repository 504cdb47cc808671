//! Applying a batch of events to the stored state, in one transaction with
//! the dirty marks and the queued job, so that a crash loses neither.

use rustc_hash::FxHashMap;
use sqlx::{Row, SqliteConnection};

use super::writeback::refresh_order_statuses;
use crate::engine::snapshot::{Order, PurchaseOrder};
use crate::engine::time_format::{format_date, format_timestamp};
use crate::events::{Event, EventKind, event_record};
use crate::queue::{QUEUE, RecalcJob};
use crate::store::{IngestOptions, IngestReport, StoreError};

/// What one event asks of the recalculation.
#[derive(Default)]
struct Effect {
    skus: Vec<String>,
    all: bool,
    /// Orders whose lines were replaced, moved or overridden: their status
    /// is recomputed from the stored lines at once.
    orders: Vec<String>,
}

pub(super) async fn ingest(
    conn: &mut SqliteConnection,
    events: &[Event],
    options: IngestOptions,
) -> Result<IngestReport, StoreError> {
    // The running daemon's options decide, whoever sends the events.
    let stored: Option<(bool, bool)> = sqlx::query_as(
        "SELECT recalculate_on_status_change, defer_new_orders FROM service_options WHERE id = 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    let options = match stored {
        Some((recalculate_on_status_change, defer_new_orders)) => IngestOptions {
            recalculate_on_status_change,
            defer_new_orders,
        },
        None => options,
    };
    let mut report = IngestReport::default();
    // sku -> (event seq, event id) of the last event that marked it
    let mut marks: FxHashMap<String, (i64, String)> = FxHashMap::default();
    let mut mark_all: Option<(i64, String)> = None;
    let mut refresh: Vec<(String, String)> = Vec::new();
    let now = format_timestamp(&chrono::Utc::now());

    for (index, event) in events.iter().enumerate() {
        let seq: Option<i64> = sqlx::query_scalar(
            "INSERT INTO received_events (id, type, received_at) VALUES (?, ?, ?)
             ON CONFLICT (id) DO NOTHING RETURNING seq",
        )
        .bind(&event.id)
        .bind(event.kind.type_name())
        .bind(&now)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(seq) = seq else {
            report.duplicates.push(event.id.clone());
            continue;
        };
        let effect = apply(conn, &event.kind, options)
            .await
            .map_err(|e| match e {
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

    refresh_order_statuses(conn, &refresh, &now).await?;

    if let Some((seq, cause)) = &mark_all {
        sqlx::query(
            "INSERT INTO dirty_skus (sku, marked_seq, cause)
             SELECT DISTINCT sku, ?, ? FROM order_lines WHERE true
             ON CONFLICT (sku) DO UPDATE SET marked_seq = excluded.marked_seq, cause = excluded.cause",
        )
        .bind(seq)
        .bind(cause)
        .execute(&mut *conn)
        .await?;
        report.all_marked = true;
    }
    let mut marked: Vec<(String, (i64, String))> = marks.into_iter().collect();
    marked.sort_unstable();
    if !marked.is_empty() {
        let rows: Vec<(&str, i64, &str)> = marked
            .iter()
            .map(|(sku, (seq, cause))| (sku.as_str(), *seq, cause.as_str()))
            .collect();
        sqlx::query(
            "INSERT INTO dirty_skus (sku, marked_seq, cause)
             SELECT j.value->>0, j.value->>1, j.value->>2 FROM json_each(?) j WHERE true
             ON CONFLICT (sku) DO UPDATE SET marked_seq = excluded.marked_seq, cause = excluded.cause",
        )
        .bind(serde_json::to_string(&rows).expect("rows serialize"))
        .execute(&mut *conn)
        .await?;
    }
    if !report.all_marked {
        report.marked_skus = marked.into_iter().map(|(sku, _)| sku).collect();
    }
    if report.all_marked || !report.marked_skus.is_empty() {
        let job = RecalcJob::new(
            report.accepted.clone(),
            &report.marked_skus,
            report.all_marked,
        );
        push_job(conn, &job).await?;
    }
    Ok(report)
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

async fn apply(
    conn: &mut SqliteConnection,
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
            known_warehouse(conn, warehouse, "warehouse").await?;
            add_on_hand(conn, sku, warehouse, *qty).await?;
            let mut effect = one(sku);
            if let Some(po_id) = po_id {
                // An unknown PO id is not an error: the stock still arrived.
                // The PO may be of another SKU, whose ETAs then move too.
                let po_sku: Option<String> = sqlx::query_scalar(
                    "UPDATE purchase_orders SET qty_received = qty_received + ? WHERE id = ? RETURNING sku",
                )
                .bind(qty)
                .bind(po_id)
                .fetch_optional(&mut *conn)
                .await?;
                effect.skus.extend(po_sku.filter(|s| s != sku));
            }
            Ok(effect)
        }
        EventKind::InventoryAdjusted {
            sku,
            warehouse,
            delta,
        } => {
            known_warehouse(conn, warehouse, "warehouse").await?;
            add_on_hand(conn, sku, warehouse, *delta).await?;
            Ok(one(sku))
        }
        EventKind::InventorySet {
            sku,
            warehouse,
            on_hand,
        } => {
            known_warehouse(conn, warehouse, "warehouse").await?;
            sqlx::query(
                "INSERT INTO inventory (sku, warehouse, on_hand) VALUES (?, ?, ?)
                 ON CONFLICT (sku, warehouse) DO UPDATE SET on_hand = excluded.on_hand",
            )
            .bind(sku)
            .bind(warehouse)
            .bind(on_hand)
            .execute(&mut *conn)
            .await?;
            Ok(one(sku))
        }
        EventKind::PurchaseOrderUpserted { purchase_order } => {
            upsert_purchase_order(conn, purchase_order).await
        }
        EventKind::OrderUpserted { order } => upsert_order(conn, order, options).await,
        EventKind::OrderStatusChanged { order_id, status } => {
            let skus = order_skus(conn, order_id).await?;
            sqlx::query("UPDATE orders SET status = ? WHERE id = ?")
                .bind(status.as_str())
                .bind(order_id)
                .execute(&mut *conn)
                .await?;
            Ok(status_effect(skus, options))
        }
        EventKind::OrderPaymentChanged {
            order_id,
            payment_status,
            payment_date,
        } => {
            let skus = order_skus(conn, order_id).await?;
            sqlx::query("UPDATE orders SET payment_status = ?, payment_date = ? WHERE id = ?")
                .bind(payment_status.as_str())
                .bind(payment_date.as_ref().map(format_timestamp))
                .bind(order_id)
                .execute(&mut *conn)
                .await?;
            Ok(status_effect(skus, options))
        }
        EventKind::OrderSplit {
            order_id,
            new_order_id,
            line_ids,
        } => split_order(conn, order_id, new_order_id, line_ids).await,
        EventKind::SettingsChanged { settings } => {
            let mut stored = super::load_settings(conn).await?;
            settings.apply(&mut stored);
            sqlx::query(
                "INSERT INTO client_settings (id, settings) VALUES (1, ?)
                 ON CONFLICT (id) DO UPDATE SET settings = excluded.settings",
            )
            .bind(serde_json::to_string(&stored).expect("settings serialize"))
            .execute(&mut *conn)
            .await?;
            Ok(Effect {
                all: true,
                ..Effect::default()
            })
        }
        EventKind::BackorderOverride {
            line_id,
            backorder_qty,
        } => {
            let found: Option<(String, String)> = sqlx::query_as(
                "UPDATE order_lines SET backorder_qty = ? WHERE id = ? RETURNING order_id, sku",
            )
            .bind(backorder_qty)
            .bind(line_id)
            .fetch_optional(&mut *conn)
            .await?;
            let (order_id, sku) =
                found.ok_or_else(|| StoreError::Refused(format!("unknown line \"{line_id}\"")))?;
            // An active line's override stands until the next recalculation
            // of its SKU (events.md), so it marks nothing; a frozen line's
            // value decides what it holds of the pool, so the others move.
            let frozen = order_scope(conn, &order_id).await? == crate::engine::Scope::Frozen;
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
async fn order_scope(
    conn: &mut SqliteConnection,
    order_id: &str,
) -> Result<crate::engine::Scope, StoreError> {
    let header: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM orders o WHERE o.id = ?",
        super::ORDER_HEADER_JSON
    )))
    .bind(order_id)
    .fetch_one(&mut *conn)
    .await?;
    let order =
        super::super::codec::from_json_text::<super::super::codec::HeaderRow>(&header, "an order")?
            .into_order()?;
    let settings = super::load_settings(conn).await?;
    let warehouses = super::load_warehouses(conn).await?;
    Ok(crate::engine::scope_of(
        &order,
        &settings,
        &warehouses,
        chrono::Utc::now(),
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

async fn known_warehouse(
    conn: &mut SqliteConnection,
    warehouse: &str,
    field: &str,
) -> Result<(), StoreError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM warehouses WHERE id = ?")
        .bind(warehouse)
        .fetch_optional(&mut *conn)
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::Refused(format!(
            "{field} names unknown warehouse \"{warehouse}\""
        ))),
    }
}

async fn add_on_hand(
    conn: &mut SqliteConnection,
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
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The SKUs of an order's lines; refuses an unknown order.
async fn order_skus(
    conn: &mut SqliteConnection,
    order_id: &str,
) -> Result<Vec<String>, StoreError> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM orders WHERE id = ?")
        .bind(order_id)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_none() {
        return Err(StoreError::Refused(format!("unknown order \"{order_id}\"")));
    }
    Ok(
        sqlx::query_scalar("SELECT DISTINCT sku FROM order_lines WHERE order_id = ?")
            .bind(order_id)
            .fetch_all(&mut *conn)
            .await?,
    )
}

async fn upsert_purchase_order(
    conn: &mut SqliteConnection,
    po: &PurchaseOrder,
) -> Result<Effect, StoreError> {
    known_warehouse(conn, &po.warehouse, "purchase_order.warehouse").await?;
    let old_sku: Option<String> =
        sqlx::query_scalar("SELECT sku FROM purchase_orders WHERE id = ?")
            .bind(&po.id)
            .fetch_optional(&mut *conn)
            .await?;
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
    .execute(&mut *conn)
    .await?;
    let mut skus = vec![po.sku.clone()];
    skus.extend(old_sku.filter(|old| *old != po.sku));
    Ok(Effect {
        skus,
        ..Effect::default()
    })
}

async fn upsert_order(
    conn: &mut SqliteConnection,
    order: &Order,
    options: IngestOptions,
) -> Result<Effect, StoreError> {
    if let Some(ship_from) = &order.ship_from {
        known_warehouse(conn, ship_from, "order.ship_from").await?;
    }
    for line in &order.lines {
        let owner: Option<String> =
            sqlx::query_scalar("SELECT order_id FROM order_lines WHERE id = ?")
                .bind(&line.id)
                .fetch_optional(&mut *conn)
                .await?;
        if let Some(owner) = owner.filter(|owner| *owner != order.id) {
            return Err(StoreError::Refused(format!(
                "line \"{}\" belongs to order \"{owner}\" already",
                line.id
            )));
        }
    }
    let old_skus: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT sku FROM order_lines WHERE order_id = ?")
            .bind(&order.id)
            .fetch_all(&mut *conn)
            .await?;
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
    .execute(&mut *conn)
    .await?
    .rows_affected()
        > 0;
    if existed {
        sqlx::query("DELETE FROM order_lines WHERE order_id = ?")
            .bind(&order.id)
            .execute(&mut *conn)
            .await?;
        super::insert_lines(conn, std::iter::once(order)).await?;
    } else {
        super::insert_orders(conn, &[(None, order)]).await?;
    }
    let mut skus = old_skus;
    if existed || !options.defer_new_orders {
        skus.extend(order.lines.iter().map(|l| l.sku.clone()));
    }
    Ok(Effect {
        skus,
        orders: vec![order.id.clone()],
        ..Effect::default()
    })
}

async fn split_order(
    conn: &mut SqliteConnection,
    order_id: &str,
    new_order_id: &str,
    line_ids: &[String],
) -> Result<Effect, StoreError> {
    order_skus(conn, order_id).await?;
    let taken: Option<i64> = sqlx::query_scalar("SELECT 1 FROM orders WHERE id = ?")
        .bind(new_order_id)
        .fetch_optional(&mut *conn)
        .await?;
    if taken.is_some() {
        return Err(StoreError::Refused(format!(
            "new_order_id \"{new_order_id}\" names an existing order"
        )));
    }
    let mut moved = Vec::with_capacity(line_ids.len());
    for line_id in line_ids {
        let row = sqlx::query("SELECT order_id, position, sku FROM order_lines WHERE id = ?")
            .bind(line_id)
            .fetch_optional(&mut *conn)
            .await?;
        match row {
            Some(row) if row.get::<&str, _>(0) == order_id => {
                moved.push((
                    row.get::<i64, _>(1),
                    line_id.clone(),
                    row.get::<String, _>(2),
                ));
            }
            _ => {
                return Err(StoreError::Refused(format!(
                    "line \"{line_id}\" is not a line of order \"{order_id}\""
                )));
            }
        }
    }
    sqlx::query(
        "INSERT INTO orders (id, position, order_date, payment_date, payment_status, status, rush, picked, ship_from)
         SELECT ?, (SELECT MAX(position) + 1 FROM orders), order_date, payment_date, payment_status, status, rush, picked, ship_from
         FROM orders WHERE id = ?",
    )
    .bind(new_order_id)
    .bind(order_id)
    .execute(&mut *conn)
    .await?;
    // The moved lines keep their relative order in the new order.
    moved.sort_unstable();
    for (position, (_, line_id, _)) in moved.iter().enumerate() {
        sqlx::query("UPDATE order_lines SET order_id = ?, position = ? WHERE id = ?")
            .bind(new_order_id)
            .bind(position as i64)
            .bind(line_id)
            .execute(&mut *conn)
            .await?;
    }
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
