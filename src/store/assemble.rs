//! Turning rows into the library's values and back, the same for every
//! backend: each backend runs its own SQL and hands the rows here, so the
//! rules (an order's stored counts, how lines join their orders, what a view
//! holds) are written once.

use super::codec::{self, HeaderRow};
use super::views::{BackorderCursor, BackorderedOrder, OrderView, PoolState};
use super::{StoreError, codec::Record};
use crate::engine::LineCounts;
use crate::engine::snapshot::{
    InventoryRow, Line, Order, Product, PurchaseOrder, Settings, Snapshot,
};
use crate::recalc::{GroupState, replacement_closure};

/// `(id, sku, qty, backorder_qty, eta)` of one order's line.
pub type OrderLineRow = (String, String, i64, i64, Option<String>);
/// `(order_id, id, sku, qty, backorder_qty)` of a line in an export.
pub type ExportLineRow = (String, String, String, i64, i64);
/// `(id, sku, warehouse, qty_ordered, qty_received, expected_date)`
pub type PurchaseOrderRow = (String, String, String, i64, i64, Option<String>);

/// What an order stores beside its lines: the counts its status comes from
/// and its backorder total, as its lines say.
pub fn stored_totals(order: &Order) -> (LineCounts, i64) {
    let mut counts = LineCounts::default();
    for l in &order.lines {
        counts.add(l.qty, l.backorder_qty);
    }
    let backorder_qty = order
        .lines
        .iter()
        .fold(0i64, |sum, l| sum.saturating_add(l.backorder_qty));
    (counts, backorder_qty)
}

/// `(sku, replacement_sku, vendor, allow_backorders, backorder_thresholds)`,
/// the thresholds as a JSON object (NULL: none).
pub type ProductRow = (String, Option<String>, Option<String>, bool, Option<String>);

/// The product columns, in [`ProductRow`]'s order, for a `SELECT`.
pub const PRODUCT_COLUMNS: &str =
    "sku, replacement_sku, vendor, allow_backorders, backorder_thresholds";

pub fn product(row: ProductRow) -> Result<Product, StoreError> {
    let (sku, replacement_sku, vendor, allow_backorders, thresholds) = row;
    let backorder_thresholds = match thresholds.as_deref() {
        None => Default::default(),
        Some(text) => serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
            record: format!("product {sku:?}"),
            problem: format!("backorder_thresholds is not a JSON object of counts: {e}"),
        })?,
    };
    Ok(Product {
        sku,
        replacement_sku,
        vendor,
        allow_backorders,
        backorder_thresholds,
    })
}

/// A product's thresholds as stored: NULL when it has none.
pub fn thresholds_column(product: &Product) -> Option<String> {
    (!product.backorder_thresholds.is_empty())
        .then(|| serde_json::to_string(&product.backorder_thresholds).expect("a map serializes"))
}

pub fn inventory_row(
    (sku, warehouse, on_hand): (String, String, i64),
) -> Result<InventoryRow, StoreError> {
    Ok(InventoryRow {
        sku,
        warehouse,
        on_hand,
    })
}

pub fn purchase_order(row: PurchaseOrderRow) -> Result<PurchaseOrder, StoreError> {
    let (id, sku, warehouse, qty_ordered, qty_received, expected_date) = row;
    let expected_date = codec::optional_date(expected_date.as_deref(), &|| {
        format!("purchase order {id:?}")
    })?;
    Ok(PurchaseOrder {
        id,
        sku,
        warehouse,
        qty_ordered,
        qty_received,
        expected_date,
    })
}

/// Gives lines to their orders when both come in the orders' stored order:
/// one merge pass, no lookup.
struct LineMerge<'a> {
    orders: &'a mut [Order],
    next: usize,
}

impl<'a> LineMerge<'a> {
    fn new(orders: &'a mut [Order]) -> Self {
        LineMerge { orders, next: 0 }
    }

    fn push(&mut self, row: ExportLineRow) -> Result<(), StoreError> {
        let (order_id, id, sku, qty, backorder_qty) = row;
        while self.next < self.orders.len() && self.orders[self.next].id != order_id {
            self.next += 1;
        }
        let Some(order) = self.orders.get_mut(self.next) else {
            return Err(StoreError::Corrupt {
                record: format!("line {id:?}"),
                problem: "its order is out of sequence".into(),
            });
        };
        order.lines.push(Line {
            id,
            sku,
            qty,
            backorder_qty,
        });
        Ok(())
    }
}

/// An order as stored, from its header, stored status and total, and its
/// lines in position order.
pub fn order_view(
    mut order: Order,
    backorder_status: &str,
    backorder_qty: i64,
    lines: Vec<OrderLineRow>,
) -> Result<OrderView, StoreError> {
    let id = order.id.clone();
    let backorder_status = codec::backorder_status(backorder_status, &|| format!("order {id:?}"))?;
    let mut etas = Vec::with_capacity(lines.len());
    for (line_id, sku, qty, line_backorder_qty, eta) in lines {
        etas.push(codec::optional_date(eta.as_deref(), &|| {
            format!("line {line_id:?}")
        })?);
        order.lines.push(Line {
            id: line_id,
            sku,
            qty,
            backorder_qty: line_backorder_qty,
        });
    }
    Ok(OrderView {
        order,
        etas,
        backorder_status,
        backorder_qty,
    })
}

/// One order of a backorders page, from its header columns, stored status
/// and total, and its sort key (`date_key`).
pub fn backordered_order<S: AsRef<str>>(
    header: HeaderRow<S>,
    backorder_status: &str,
    backorder_qty: i64,
    date_key: String,
) -> Result<BackorderedOrder, StoreError> {
    let order = header.into_order()?;
    let record = || format!("order {:?}", order.id);
    let backorder_status = codec::backorder_status(backorder_status, &record)?;
    Ok(BackorderedOrder {
        cursor: BackorderCursor {
            date_key,
            order_id: order.id.clone(),
        },
        backorder_status,
        backorder_qty,
        order_date: order.order_date,
        payment_date: order.payment_date,
        status: order.status,
        payment_status: order.payment_status,
        rush: order.rush,
        picked: order.picked,
        ship_from: order.ship_from,
        order_id: order.id,
    })
}

/// `skus` closed under the replacement relation when the settings use
/// replacements (else as they are), sorted: a group whose recalculation is
/// self-contained.
pub async fn group_skus<DB>(
    conn: &mut DB::Connection,
    settings: &Settings,
    skus: Vec<String>,
) -> Result<Vec<String>, StoreError>
where
    DB: sqlx::Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    (String, String): for<'r> sqlx::FromRow<'r, DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    if !settings.consider_replacement_sku {
        return Ok(sorted_skus(skus));
    }
    let edges = super::recalculate::portable::replacement_edges::<DB>(conn).await?;
    Ok(sorted_skus(replacement_closure(
        skus.iter().map(String::as_str),
        &edges,
    )))
}

pub fn sorted_skus(mut skus: Vec<String>) -> Vec<String> {
    skus.sort_unstable();
    skus.dedup();
    skus
}

/// Gives each line of `rows` (in the orders' stored order) to its order.
pub async fn attach_lines(
    orders: &mut [Order],
    mut rows: impl futures_util::TryStream<Ok = ExportLineRow, Error = sqlx::Error> + Unpin,
) -> Result<(), StoreError> {
    use futures_util::TryStreamExt;
    let mut merge = LineMerge::new(orders);
    while let Some(row) = rows.try_next().await? {
        merge.push(row)?;
    }
    Ok(())
}

/// The pools' state as the API shows it: the group's orders by id.
pub fn pool_state(group: GroupState, skus: Vec<String>, dirty_skus: Vec<String>) -> PoolState {
    let mut orders: Vec<Order> = group.orders.into_iter().map(|o| o.order).collect();
    orders.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    PoolState {
        snapshot: std::sync::Arc::new(Snapshot {
            as_of: None,
            settings: group.settings,
            warehouses: group.warehouses,
            products: group.products,
            inventory: group.inventory,
            purchase_orders: group.purchase_orders,
            orders,
        }),
        skus,
        dirty_skus,
    }
}

/// When the oldest waiting dirty mark was made; `None` when nothing is
/// dirty. A later mark of a SKU keeps the time of the first, so this says
/// how long the queue has waited.
pub async fn oldest_dirty_mark<DB>(
    conn: &mut DB::Connection,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError>
where
    DB: sqlx::Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    (Option<i64>,): for<'r> sqlx::FromRow<'r, DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    let millis: Option<i64> = sqlx::query_scalar("SELECT MIN(marked_at) FROM dirty_skus")
        .fetch_one(&mut *conn)
        .await?;
    Ok(millis.and_then(chrono::DateTime::from_timestamp_millis))
}

/// Which of the schema's migrations and the queue's the database behind
/// `conn` has not applied, as "VERSION DESCRIPTION". The queue's are
/// recorded in their own table, so that neither set sees the other's as
/// unknown; a migrations table not created yet means none applied.
pub async fn missing_migrations<DB>(
    conn: &mut DB::Connection,
    schema: sqlx::migrate::Migrator,
    mut queue: sqlx::migrate::Migrator,
) -> Result<Vec<String>, StoreError>
where
    DB: sqlx::Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    queue.dangerous_set_table_name("_apalis_migrations");
    let mut missing = Vec::new();
    for (migrator, table) in [(schema, "_sqlx_migrations"), (queue, "_apalis_migrations")] {
        let applied: Vec<i64> = match sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT version FROM {table} WHERE success"
        )))
        .fetch_all(&mut *conn)
        .await
        {
            Ok(applied) => applied,
            // SQLite's "no such table", PostgreSQL's undefined_table.
            Err(sqlx::Error::Database(e))
                if e.message().contains("no such table")
                    || e.code().as_deref() == Some("42P01") =>
            {
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        };
        for m in migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
        {
            if !applied.contains(&m.version) {
                missing.push(format!("{} {}", m.version, m.description));
            }
        }
    }
    Ok(missing)
}

/// Decodes stored receive times.
pub fn received_times(texts: &[String]) -> Result<Vec<chrono::DateTime<chrono::Utc>>, StoreError> {
    let record: Record = &|| "a received event".to_owned();
    texts.iter().map(|t| codec::timestamp(t, record)).collect()
}
