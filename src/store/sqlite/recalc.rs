//! One recalculation transaction: claim dirty SKUs, load their group, run
//! the engine through [`crate::recalc`], write back what changed, clear the
//! marks. `BEGIN IMMEDIATE` takes the write lock first, so no event can
//! slip in between what was read and what is written.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use rustc_hash::{FxHashMap, FxHashSet};
use sqlx::{Row, SqliteConnection};

use super::super::codec;
use super::writeback::write_changes;
use crate::engine::snapshot::{InventoryRow, Line, Product, PurchaseOrder};
use crate::engine::time_format::format_timestamp;
use crate::recalc::{self, GroupState, StoredOrder, replacement_closure};
use crate::store::{BatchReport, StoreError};

pub(super) async fn recalculate_dirty(
    conn: &mut SqliteConnection,
    max_skus: usize,
    as_of: DateTime<Utc>,
) -> Result<Option<BatchReport>, StoreError> {
    let claimed: Vec<(String, String)> =
        sqlx::query_as("SELECT sku, cause FROM dirty_skus ORDER BY sku LIMIT ?")
            .bind(max_skus as i64)
            .fetch_all(&mut *conn)
            .await?;
    if claimed.is_empty() {
        return Ok(None);
    }
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

    let group = load_group(conn, &sku_list, &skus, settings, causes).await?;
    let changes = recalc::changes(group, as_of);
    write_changes(conn, &changes, &format_timestamp(&as_of)).await?;
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
    skus: &[String],
    settings: crate::engine::snapshot::Settings,
    causes: FxHashMap<String, String>,
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

    const TOUCHED: &str = "WITH touched AS (
            SELECT DISTINCT l.order_id AS id FROM json_each(?) j
            CROSS JOIN order_lines l ON l.sku = j.value)";
    let mut orders: Vec<StoredOrder> = Vec::new();
    {
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{TOUCHED} SELECT {}, o.backorder_status, o.backorder_qty
             FROM touched t CROSS JOIN orders o ON o.id = t.id ORDER BY o.id",
            super::ORDER_HEADER_COLUMNS
        )))
        .bind(sku_list)
        .fetch(&mut *conn);
        while let Some(row) = rows.try_next().await? {
            let order = super::decode_order_header(&row)?;
            let record = format!("order {:?}", order.id);
            orders.push(StoredOrder {
                status: codec::backorder_status(row.get(8), &record)?,
                backorder_qty: row.get(9),
                order,
                etas: Vec::new(),
                other_lines: Vec::new(),
            });
        }
    }

    let in_group: FxHashSet<&str> = skus.iter().map(String::as_str).collect();
    let mut next = 0;
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{TOUCHED} SELECT l.order_id, l.id, l.sku, l.qty, l.backorder_qty, l.eta
         FROM touched t CROSS JOIN order_lines l ON l.order_id = t.id
         ORDER BY l.order_id, l.position"
    )))
    .bind(sku_list)
    .fetch(&mut *conn);
    while let Some(row) = rows.try_next().await? {
        let order_id: &str = row.get(0);
        while next < orders.len() && orders[next].order.id.as_str() < order_id {
            next += 1;
        }
        let Some(stored) = orders.get_mut(next).filter(|o| o.order.id == order_id) else {
            return Err(StoreError::Corrupt {
                record: format!("line {:?}", row.get::<&str, _>(1)),
                problem: format!("its order {order_id:?} is missing"),
            });
        };
        let sku: &str = row.get(2);
        let (qty, backorder_qty): (i64, i64) = (row.get(3), row.get(4));
        if in_group.contains(sku) {
            let eta = match row.get::<Option<&str>, _>(5) {
                Some(text) => Some(codec::date(
                    text,
                    &format!("line {:?}", row.get::<&str, _>(1)),
                )?),
                None => None,
            };
            stored.order.lines.push(Line {
                id: row.get(1),
                sku: sku.to_owned(),
                qty,
                backorder_qty,
            });
            stored.etas.push(eta);
        } else {
            stored.other_lines.push((qty, backorder_qty));
        }
    }
    drop(rows);

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
