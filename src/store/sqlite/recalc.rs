//! One recalculation transaction: claim dirty SKUs, load their group, run
//! the engine through [`crate::recalc`], write back what changed, clear the
//! marks. `BEGIN IMMEDIATE` takes the write lock first, so no event can
//! slip in between what was read and what is written.

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use sqlx::{Row, SqliteConnection};

use super::super::codec;
use super::writeback::write_changes;
use crate::engine::LineCounts;
use crate::engine::snapshot::{InventoryRow, Line, Order, Product, PurchaseOrder};
use crate::engine::time_format::format_timestamp;
use crate::recalc::{self, GroupState, StoredOrder, replacement_closure};
use crate::store::{BatchReport, StoreError};

/// At most this many lines per transaction, unless one SKU has more.
const LINES_PER_BATCH: i64 = 50_000;

/// Every order's header and stored totals, by id: a bulk recalculation
/// reads them in one pass instead of looking each up once per batch.
pub(super) type HeaderCache = FxHashMap<String, (Order, i64, LineCounts)>;

/// Reads every order header, in chunks of ids so that no single value
/// holds them all.
pub(super) async fn load_header_cache(
    conn: &mut SqliteConnection,
) -> Result<HeaderCache, StoreError> {
    const CHUNK: i64 = 50_000;
    let mut cache = HeaderCache::default();
    let mut after = String::new();
    loop {
        let chunk: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT json_group_array(json_array({}, o.backorder_qty, o.lines_open, o.lines_backordered, o.lines_whole))
             FROM (SELECT * FROM orders WHERE id > ? ORDER BY id LIMIT ?) o",
            super::ORDER_HEADER_JSON
        )))
        .bind(&after)
        .bind(CHUNK)
        .fetch_one(&mut *conn)
        .await?;
        let rows: Vec<HeaderJson> = super::from_json_text(&chunk, "orders")?;
        let Some(last) = rows.iter().map(|r| &r.0.0).max() else {
            return Ok(cache);
        };
        after = last.clone();
        for (header, backorder_qty, open, backordered, whole) in rows {
            let order = header.into_order()?;
            let counts = LineCounts {
                open,
                backordered,
                whole,
            };
            cache.insert(order.id.clone(), (order, backorder_qty, counts));
        }
    }
}

/// An order header with its stored total and counts, as SQL builds it.
type HeaderJson = (super::HeaderRow, i64, i64, i64, i64);

pub(super) async fn recalculate_dirty(
    conn: &mut SqliteConnection,
    max_skus: usize,
    as_of: DateTime<Utc>,
    mut cache: Option<&mut HeaderCache>,
) -> Result<Option<BatchReport>, StoreError> {
    let candidates: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT d.sku, d.cause, (SELECT COUNT(*) FROM order_lines l WHERE l.sku = d.sku)
         FROM dirty_skus d ORDER BY d.sku LIMIT ?",
    )
    .bind(max_skus as i64)
    .fetch_all(&mut *conn)
    .await?;
    if candidates.is_empty() {
        return Ok(None);
    }
    // Hot SKUs have long queues: a batch also stops at a line budget (but
    // takes at least one SKU), which bounds memory and lock time.
    let mut budget = LINES_PER_BATCH;
    let claimed: Vec<(String, String)> = candidates
        .into_iter()
        .enumerate()
        .take_while(|(i, c)| {
            let take = *i == 0 || budget >= c.2;
            budget = budget.saturating_sub(c.2);
            take
        })
        .map(|(_, (sku, cause, _))| (sku, cause))
        .collect();
    let settings = super::load_settings(conn).await?;
    let mut causes: FxHashMap<String, String> = claimed.iter().cloned().collect();
    let skus = if settings.consider_replacement_sku {
        let edges: Vec<(String, String)> = sqlx::query_as(
            "SELECT sku, replacement_sku FROM products WHERE replacement_sku IS NOT NULL",
        )
        .fetch_all(&mut *conn)
        .await?;
        let closure = replacement_closure(claimed.iter().map(|c| c.0.as_str()), &edges);
        for sku in &closure {
            causes
                .entry(sku.clone())
                .or_insert_with(|| "replacement group".to_owned());
        }
        closure
    } else {
        claimed.iter().map(|c| c.0.clone()).collect()
    };
    let sku_list = serde_json::to_string(&skus).expect("skus serialize");

    let group = load_group(conn, &sku_list, settings, causes, cache.as_deref()).await?;
    let changes = recalc::changes(group, as_of);
    write_changes(conn, &changes, &format_timestamp(&as_of)).await?;
    if let Some(cache) = cache.as_mut() {
        for change in &changes.orders {
            if let Some(entry) = cache.get_mut(&change.order_id) {
                entry.1 = change.new_backorder_qty;
                entry.2 = change.new_counts;
            }
        }
    }
    sqlx::query("DELETE FROM dirty_skus WHERE sku IN (SELECT value FROM json_each(?))")
        .bind(serde_json::to_string(&claimed.iter().map(|c| &c.0).collect::<Vec<_>>()).unwrap())
        .execute(&mut *conn)
        .await?;

    let mut cause_list: Vec<String> = claimed.into_iter().map(|c| c.1).collect();
    cause_list.sort_unstable();
    cause_list.dedup();
    Ok(Some(BatchReport {
        skus,
        causes: cause_list,
        lines_seen: changes.lines_seen,
        lines_changed: changes.lines.len(),
        orders_changed: changes.orders.len(),
    }))
}

async fn load_group(
    conn: &mut SqliteConnection,
    sku_list: &str,
    settings: crate::engine::snapshot::Settings,
    causes: FxHashMap<String, String>,
    cache: Option<&HeaderCache>,
) -> Result<GroupState, StoreError> {
    let warehouses = super::load_warehouses(conn).await?;
    let products = sqlx::query(
        "SELECT p.sku, p.replacement_sku FROM json_each(?) j CROSS JOIN products p ON p.sku = j.value",
    )
    .bind(sku_list)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|row| Product {
        sku: row.get(0),
        replacement_sku: row.get(1),
    })
    .collect();
    let inventory = sqlx::query(
        "SELECT i.sku, i.warehouse, i.on_hand FROM json_each(?) j CROSS JOIN inventory i ON i.sku = j.value",
    )
    .bind(sku_list)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|row| InventoryRow {
        sku: row.get(0),
        warehouse: row.get(1),
        on_hand: row.get(2),
    })
    .collect();
    let mut purchase_orders = Vec::new();
    for row in sqlx::query(
        "SELECT p.id, p.sku, p.warehouse, p.qty_ordered, p.qty_received, p.expected_date
         FROM json_each(?) j CROSS JOIN purchase_orders p ON p.sku = j.value",
    )
    .bind(sku_list)
    .fetch_all(&mut *conn)
    .await?
    {
        let id: String = row.get(0);
        let expected_date = match row.get::<Option<&str>, _>(5) {
            Some(text) => Some(codec::date(text, &format!("purchase order {id:?}"))?),
            None => None,
        };
        purchase_orders.push(PurchaseOrder {
            sku: row.get(1),
            warehouse: row.get(2),
            qty_ordered: row.get(3),
            qty_received: row.get(4),
            expected_date,
            id,
        });
    }

    // The group's lines, read as ranges of the SKU-clustered table and
    // aggregated into one JSON value (the driver's cost is per row), then
    // put in their orders' line order.
    let lines: String = sqlx::query_scalar(
        "SELECT json_group_array(json_array(l.order_id, l.position, l.id, l.sku, l.qty, l.backorder_qty, l.eta))
         FROM json_each(?) j CROSS JOIN order_lines l ON l.sku = j.value",
    )
    .bind(sku_list)
    .fetch_one(&mut *conn)
    .await?;
    type LineRow = (String, i64, String, String, i64, i64, Option<String>);
    let mut lines: Vec<LineRow> = super::from_json_text(&lines, "order lines")?;
    lines.sort_unstable_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut order_ids: Vec<&str> = lines.iter().map(|l| l.0.as_str()).collect();
    order_ids.dedup();

    let headers: Vec<(Order, i64, LineCounts)> = match cache {
        Some(cache) => order_ids
            .iter()
            .filter_map(|id| cache.get(*id).cloned())
            .collect(),
        None => {
            let headers: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT json_group_array(json_array({}, o.backorder_qty, o.lines_open, o.lines_backordered, o.lines_whole))
                 FROM json_each(?) j CROSS JOIN orders o ON o.id = j.value",
                super::ORDER_HEADER_JSON
            )))
            .bind(serde_json::to_string(&order_ids).expect("ids serialize"))
            .fetch_one(&mut *conn)
            .await?;
            let rows: Vec<HeaderJson> = super::from_json_text(&headers, "orders")?;
            let mut headers = Vec::with_capacity(rows.len());
            for (header, backorder_qty, open, backordered, whole) in rows {
                let counts = LineCounts {
                    open,
                    backordered,
                    whole,
                };
                headers.push((header.into_order()?, backorder_qty, counts));
            }
            headers
        }
    };
    if headers.len() != order_ids.len() {
        return Err(StoreError::Corrupt {
            record: "order lines".into(),
            problem: format!(
                "{} of their orders are missing",
                order_ids.len() - headers.len()
            ),
        });
    }
    let mut orders: Vec<StoredOrder> = headers
        .into_iter()
        .map(|(order, backorder_qty, counts)| StoredOrder {
            order,
            etas: Vec::new(),
            counts,
            backorder_qty,
        })
        .collect();
    orders.sort_unstable_by(|a, b| a.order.id.cmp(&b.order.id));
    let mut next = 0;
    for (order_id, _, id, sku, qty, backorder_qty, eta) in lines {
        while orders[next].order.id != order_id {
            next += 1;
        }
        let eta = match eta {
            Some(text) => Some(codec::date(&text, &format!("line {id:?}"))?),
            None => None,
        };
        orders[next].order.lines.push(Line {
            id,
            sku,
            qty,
            backorder_qty,
        });
        orders[next].etas.push(eta);
    }

    Ok(GroupState {
        settings,
        warehouses,
        products,
        inventory,
        purchase_orders,
        orders,
        causes,
    })
}
