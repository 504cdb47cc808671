//! Read-only queries for the HTTP API and the metrics: an order as stored,
//! the stored state of some SKUs' pools, pages of backordered orders, the
//! readiness check, and the times behind the queue-age and lag metrics.
//! None of them writes; each reads in one (deferred) transaction, so it
//! sees one consistent state while recalculations go on.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rustc_hash::{FxHashMap, FxHashSet};
use sqlx::{Connection, Row, SqliteConnection};

use super::super::codec::{HeaderRow, from_json_text};
use super::{ORDER_HEADER_JSON, load_settings};
use crate::engine::snapshot::Snapshot;
use crate::store::pool_reads::{self, PoolReads};
use crate::store::recalculate::PoolCache;
use crate::store::recalculate::pool_cache::{Plan, Versions, plan};
use crate::store::views::{
    BackorderQuery, BackorderedOrder, OrderView, PoolState, Readiness, date_key,
};
use crate::store::{StoreError, assemble};

/// How long the readiness check waits for a lock before saying the
/// database does not answer.
const READINESS_BUSY_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) async fn order_view(
    conn: &mut SqliteConnection,
    id: &str,
) -> Result<Option<OrderView>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_HEADER_JSON}, o.backorder_status, o.backorder_qty FROM orders o WHERE o.id = ?"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let order = from_json_text::<HeaderRow>(row.get(0), "an order")?.into_order()?;
    let lines: Vec<assemble::OrderLineRow> = sqlx::query_as(
        "SELECT id, sku, qty, backorder_qty, eta FROM order_lines WHERE order_id = ? ORDER BY position",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    assemble::order_view(order, row.get(1), row.get(2), lines).map(Some)
}

/// The pools' stored state; a large group's from `kept` when its versions
/// say nothing changed since it was read, else patched from a kept state
/// (this reader's or the worker's pool cache's) by the pool log where it
/// allows (store/pool_reads.rs).
pub(super) async fn pool_state(
    conn: &mut SqliteConnection,
    skus: &[String],
    with_replacements: bool,
    kept: &PoolReads,
    cache: &PoolCache,
) -> Result<PoolState, StoreError> {
    use crate::store::recalculate::RecalcDialect;
    let settings = load_settings(conn).await?;
    let skus = if with_replacements {
        assemble::group_skus::<sqlx::Sqlite>(conn, &settings, skus.to_vec()).await?
    } else {
        assemble::sorted_skus(skus.to_vec())
    };
    let list = serde_json::to_string(&skus).expect("skus serialize");
    let versions = conn.pool_versions(&skus).await?;
    let snapshot = match kept.get(&skus, &versions) {
        Some(snapshot) => snapshot,
        None => {
            let snapshot = match patched(conn, &skus, &versions, kept, cache).await? {
                Some(mut snapshot) => {
                    snapshot.settings = settings;
                    Arc::new(snapshot)
                }
                None => {
                    tracing::debug!(skus = ?skus, "pool reads: the group read whole");
                    let group = conn
                        .load_group(&skus, 0, settings, FxHashMap::default())
                        .await?;
                    assemble::pool_state(group, Vec::new(), Vec::new()).snapshot
                }
            };
            kept.put(&skus, versions, snapshot.clone());
            snapshot
        }
    };
    let dirty_skus: Vec<String> = sqlx::query_scalar(
        "SELECT d.sku FROM json_each(?) j CROSS JOIN dirty_skus d ON d.sku = j.value ORDER BY d.sku",
    )
    .bind(&list)
    .fetch_all(&mut *conn)
    .await?;
    Ok(PoolState {
        snapshot,
        skus,
        dirty_skus,
    })
}

/// The group `skus` at `now` from a kept state brought up to date by the
/// pool log: this reader's own first (no copy of the worker's pool
/// needed), then the worker's; `None` when neither can be.
async fn patched(
    conn: &mut SqliteConnection,
    skus: &[String],
    now: &Versions,
    kept: &PoolReads,
    cache: &PoolCache,
) -> Result<Option<Snapshot>, StoreError> {
    if let Some((base, at)) = kept.base(skus)
        && let Some(read) = to_read(
            conn,
            skus,
            &at,
            now,
            FxHashSet::default(),
            base.orders.len(),
        )
        .await?
    {
        tracing::debug!(skus = ?skus, orders = read.0.len(), stock = read.1, "pool reads: patched a kept state");
        return Ok(Some(patch(conn, skus, (*base).clone(), read).await?));
    }
    if let Some((base, at, again)) = cache.copy_for_read(skus)
        && let Some(read) = to_read(conn, skus, &at, now, again, base.orders.len()).await?
    {
        tracing::debug!(skus = ?skus, orders = read.0.len(), stock = read.1, "pool reads: patched the worker's pool");
        return Ok(Some(patch(conn, skus, base, read).await?));
    }
    Ok(None)
}

/// What a state of `skus` read at `at` must read again to be at `now`:
/// the orders the log names (and `again`), and whether the stock; `None`
/// when the log cannot tell (another epoch, a gap) or so much changed that
/// reading the group is cheaper.
async fn to_read(
    conn: &mut SqliteConnection,
    skus: &[String],
    at: &Versions,
    now: &Versions,
    again: FxHashSet<String>,
    orders_kept: usize,
) -> Result<Option<(FxHashSet<String>, bool)>, StoreError> {
    use crate::store::recalculate::RecalcDialect;
    if at.epoch != now.epoch {
        return Ok(None);
    }
    let log = match at == now {
        true => Vec::new(),
        false => conn.pool_log(skus, at).await?,
    };
    let Plan::Patch { mut orders, stock } = plan(skus, at, now, &log) else {
        return Ok(None);
    };
    orders.extend(again);
    Ok(pool_reads::worth_patching(orders.len(), orders_kept).then_some((orders, stock)))
}

/// `base` with the orders `read.0` read again (and the stock if `read.1`).
async fn patch(
    conn: &mut SqliteConnection,
    skus: &[String],
    mut base: Snapshot,
    (orders, stock): (FxHashSet<String>, bool),
) -> Result<Snapshot, StoreError> {
    use crate::store::recalculate::RecalcDialect;
    if !orders.is_empty() {
        let ids: Vec<String> = orders.iter().cloned().collect();
        let fresh = conn.load_orders(skus, &ids).await?;
        let fresh = fresh.into_iter().map(|o| o.order).collect();
        pool_reads::patch_orders(&mut base.orders, &orders, fresh);
    }
    if stock {
        let (products, inventory, purchase_orders) = conn.load_stock(skus).await?;
        base.products = products;
        base.inventory = inventory;
        base.purchase_orders = purchase_orders;
    }
    Ok(base)
}

/// The stored order date with its final `Z` left out sorts as the instant
/// it names: every stored timestamp is UTC with 0, 3, 6 or 9 fractional
/// digits, and a shorter string that is a prefix of a longer one is earlier.
/// The index `orders_backordered_by_date` is keyed on it; the query repeats
/// that index's WHERE term so that SQLite walks it (docs/architecture.md).
const DATE_KEY: &str = "rtrim(o.order_date, 'Z')";

/// The statement of [`backorders`]; `?1` statuses (JSON), `?2` SKU, `?3`
/// `?4` the cursor, `?5` limit, `?6` warehouse, `?7` `?8` date keys.
/// The page's statement. By date (`by_sku` false), it walks the partial
/// index of backordered orders in order and stops at the page's end: fast
/// unless a filter rejects most orders. By SKU, it starts from the SKU's
/// backordered lines (the `order_lines` key), looks their orders up by id
/// and sorts just those: fast unless the SKU has very many. The parameters
/// are the same in both.
fn backorders_statement_from(by_sku: bool) -> String {
    let (backordered, sku) = if by_sku {
        // Not the partial index's term: its orders come from the lines.
        (
            "o.id IN (SELECT l.order_id FROM order_lines l WHERE l.sku = ?2 AND l.backorder_qty > 0)",
            "?2 IS NOT NULL",
        )
    } else {
        (
            "o.backorder_status IN ('full', 'partial')",
            "(?2 IS NULL OR o.id IN (
                SELECT l.order_id FROM order_lines l WHERE l.sku = ?2 AND l.backorder_qty > 0))",
        )
    };
    format!(
        "SELECT {ORDER_HEADER_JSON}, o.backorder_status, o.backorder_qty, {DATE_KEY}
         FROM orders o
         WHERE {backordered}
           AND o.backorder_status IN (SELECT value FROM json_each(?1))
           AND {sku}
           AND (?3 IS NULL OR ({DATE_KEY}, o.id) > (?3, ?4))
           AND (?6 IS NULL OR o.ship_from = ?6)
           AND {DATE_KEY} >= coalesce(?7, '')
           AND (?8 IS NULL OR {DATE_KEY} < ?8)
         ORDER BY {DATE_KEY}, o.id
         LIMIT ?5"
    )
}

/// From this many backordered lines of the filtered SKU on, the page walks
/// the date index instead (so many matches fill a page quickly).
const SKU_DRIVEN_UP_TO: i64 = 20_000;

/// Whether the page should start from the SKU's lines.
async fn few_backordered_lines(
    conn: &mut SqliteConnection,
    sku: Option<&str>,
) -> Result<bool, StoreError> {
    let Some(sku) = sku else { return Ok(false) };
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM order_lines
           WHERE sku = ? AND backorder_qty > 0 LIMIT ?)",
    )
    .bind(sku)
    .bind(SKU_DRIVEN_UP_TO)
    .fetch_one(&mut *conn)
    .await?;
    Ok(count < SKU_DRIVEN_UP_TO)
}

pub(super) async fn backorders(
    conn: &mut SqliteConnection,
    query: &BackorderQuery,
) -> Result<Vec<BackorderedOrder>, StoreError> {
    let statuses = serde_json::to_string(query.status.statuses()).expect("statuses serialize");
    let (after_key, after_id) = match &query.after {
        Some(c) => (Some(c.date_key.as_str()), Some(c.order_id.as_str())),
        None => (None, None),
    };
    let by_sku = few_backordered_lines(conn, query.sku.as_deref()).await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(backorders_statement_from(by_sku)))
        .bind(statuses)
        .bind(query.sku.as_deref())
        .bind(after_key)
        .bind(after_id)
        .bind(query.limit as i64)
        .bind(query.warehouse.as_deref())
        .bind(query.from.as_ref().map(date_key))
        .bind(query.until.as_ref().map(date_key))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|row| {
            let header = from_json_text::<HeaderRow>(row.get(0), "an order")?;
            assemble::backordered_order(header, row.get(1), row.get(2), row.get(3))
        })
        .collect()
}

/// Opens a new connection (the pool's may outlive a vanished file) without
/// creating the database, and compares the applied migrations with this
/// binary's. An error: the database does not answer.
pub(super) async fn readiness(
    options: &sqlx::sqlite::SqliteConnectOptions,
) -> Result<Readiness, StoreError> {
    let options = options
        .clone()
        .create_if_missing(false)
        .busy_timeout(READINESS_BUSY_TIMEOUT);
    let mut conn = SqliteConnection::connect_with(&options).await?;
    let missing = assemble::missing_migrations::<sqlx::Sqlite>(
        &mut conn,
        sqlx::migrate!("migrations/sqlite"),
        apalis_sqlite::SqliteStorage::migrations(),
    )
    .await?;
    conn.close().await?;
    Ok(Readiness {
        missing_migrations: missing,
    })
}

/// When each of the events `ids` was received (unknown ids are skipped).
pub(super) async fn received_at(
    conn: &mut SqliteConnection,
    ids: &[String],
) -> Result<Vec<DateTime<Utc>>, StoreError> {
    let texts: Vec<String> = sqlx::query_scalar(
        "SELECT e.received_at FROM json_each(?) j CROSS JOIN received_events e ON e.id = j.value",
    )
    .bind(serde_json::to_string(ids).expect("ids serialize"))
    .fetch_all(&mut *conn)
    .await?;
    assemble::received_times(&texts)
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    /// The backorder list reads `orders_backordered_by_date` in its order
    /// (no sort of the backordered orders, no scan of the book), with and
    /// without filters.
    #[tokio::test]
    async fn the_backorder_list_walks_its_index_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("plan.db").display());
        let store = crate::store::sqlite::SqliteStore::open(&url).await.unwrap();
        crate::store::Store::migrate(&store).await.unwrap();
        let plan_of = |sku: Option<&'static str>, warehouse: Option<&'static str>| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "EXPLAIN QUERY PLAN {}",
                super::backorders_statement_from(false)
            )))
            .bind(r#"["full"]"#)
            .bind(sku)
            .bind(None::<&str>)
            .bind(None::<&str>)
            .bind(51_i64)
            .bind(warehouse)
            .bind(Some("2026-11-01T00:00:00"))
            .bind(None::<&str>)
            .fetch_all(store.pool())
        };
        for (sku, warehouse) in [(None, None), (Some("TEA"), Some("MAIN"))] {
            let rows = plan_of(sku, warehouse).await.unwrap();
            let plan: Vec<String> = rows.iter().map(|r| r.get::<String, _>(3)).collect();
            let plan = plan.join("\n");
            assert!(
                plan.contains("SEARCH o USING INDEX orders_backordered_by_date"),
                "{plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "sorts: {plan}");
            assert!(!plan.contains("SCAN o"), "scans the orders: {plan}");
        }
        // By SKU: from the SKU's lines by their key, orders by id; no scan.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {}",
            super::backorders_statement_from(true)
        )))
        .bind(r#"["full"]"#)
        .bind(Some("TEA"))
        .bind(None::<&str>)
        .bind(None::<&str>)
        .bind(51_i64)
        .bind(None::<&str>)
        .bind(Some("2026-11-01T00:00:00"))
        .bind(None::<&str>)
        .fetch_all(store.pool())
        .await
        .unwrap();
        let plan: Vec<String> = rows.iter().map(|r| r.get::<String, _>(3)).collect();
        let plan = plan.join("\n");
        assert!(!plan.contains("SCAN o"), "scans the orders: {plan}");
        assert!(!plan.contains("SCAN l"), "scans the lines: {plan}");
        assert!(plan.contains("PRIMARY KEY (sku=?)"), "{plan}");
    }
}
