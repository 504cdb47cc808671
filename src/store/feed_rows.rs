//! The feed's source from the stored state, the same SQL on both databases:
//! the stock side as stored, and the lines summed per SKU, ship-from
//! warehouse and the header fields an order's scope depends on, so that a
//! million lines come back as about one row per SKU. Each group's scope is
//! then decided by the engine's own rule.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;

use super::assemble::{self, PRODUCT_COLUMNS, ProductRow, PurchaseOrderRow};
use super::{StoreError, codec};
use crate::engine::snapshot::{Settings, Warehouse};
use crate::engine::{Scope, limits, scope_of_parts};
use crate::feed::{FeedSource, LineTally};

/// `(sku, ship_from, status, payment_status, old, allocated, backordered,
/// frozen_held, waiting_orders, oldest waiting order's date key)`
pub(in crate::store) type TallyRow = (
    String,
    Option<String>,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
);

/// The date key before which an order is older than `max_days_back`.
pub(in crate::store) fn cutoff_key(settings: &Settings, as_of: DateTime<Utc>) -> Option<String> {
    settings
        .max_days_back
        .and_then(|days| limits::cutoff(as_of, days))
        .map(|cutoff| super::date_key(&cutoff))
}

/// Some SKUs only: `skus` a JSON array of them, bound as `$1`, and
/// `list` the database's query of its elements (`SELECT value FROM
/// json_each($1)` on SQLite).
#[derive(Debug, Clone, Copy)]
pub struct OnlySkus<'a> {
    pub skus: &'a str,
    pub list: &'a str,
}

/// Reads the source on `conn` (one read transaction, for a consistent
/// view). `date_key` is the database's expression of `o.order_date` that
/// sorts as the instant (see `BackorderCursor::date_key`). `tallied`: the
/// lines' aggregate rows when the backend read them its own way. `only`:
/// the source of those SKUs alone (every warehouse still, which the
/// allowance sums over).
pub async fn feed_source<DB>(
    conn: &mut DB::Connection,
    settings: Settings,
    warehouses: Vec<Warehouse>,
    date_key: &str,
    as_of: DateTime<Utc>,
    tallied: Option<Vec<TallyRow>>,
    only: Option<OnlySkus<'_>>,
) -> Result<FeedSource, StoreError>
where
    DB: sqlx::Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    ProductRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    (String, String, i64): for<'r> sqlx::FromRow<'r, DB::Row>,
    PurchaseOrderRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    TallyRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    // `column IN (the list)`, or nothing without `only`.
    let among = |column: &str, joiner: &str| match only {
        Some(o) => format!("{joiner} {column} IN ({})", o.list),
        None => String::new(),
    };
    let bound = only.map(|o| o.skus.to_owned());
    // Bound only when the statement has the placeholder.
    macro_rules! with_only {
        ($query:expr) => {{
            let query = $query;
            match &bound {
                Some(list) => query.bind(list.clone()),
                None => query,
            }
        }};
    }
    let products = with_only!(sqlx::query_as::<_, ProductRow>(sqlx::AssertSqlSafe(
        format!(
            "SELECT {PRODUCT_COLUMNS} FROM products {}",
            among("sku", "WHERE")
        )
    )))
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(assemble::product)
    .collect::<Result<_, _>>()?;
    let inventory = with_only!(sqlx::query_as::<_, (String, String, i64)>(
        sqlx::AssertSqlSafe(format!(
            "SELECT sku, warehouse, on_hand FROM inventory {}",
            among("sku", "WHERE")
        ))
    ))
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(assemble::inventory_row)
    .collect::<Result<_, _>>()?;
    let purchase_orders = with_only!(sqlx::query_as::<_, PurchaseOrderRow>(sqlx::AssertSqlSafe(
        format!(
            "SELECT id, sku, warehouse, qty_ordered, qty_received, expected_date
             FROM purchase_orders WHERE qty_ordered > qty_received {}",
            among("sku", "AND")
        )
    )))
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(assemble::purchase_order)
    .collect::<Result<_, _>>()?;

    // The cutoff is formatted here, never taken from input.
    let old = match cutoff_key(&settings, as_of) {
        Some(cutoff) => {
            format!("CAST(CASE WHEN {date_key} < '{cutoff}' THEN 1 ELSE 0 END AS BIGINT)")
        }
        None => "CAST(0 AS BIGINT)".to_owned(),
    };
    let rows = match tallied {
        Some(rows) => rows,
        None => {
            with_only!(sqlx::query_as::<_, TallyRow>(sqlx::AssertSqlSafe(format!(
                "SELECT l.sku, o.ship_from, o.status, o.payment_status, {old},
             CAST(SUM(l.qty - l.backorder_qty) AS BIGINT),
             CAST(SUM(l.backorder_qty) AS BIGINT),
             CAST(SUM(CASE WHEN l.backorder_qty <= 0 THEN l.qty
                           WHEN l.backorder_qty >= l.qty THEN 0
                           ELSE l.qty - l.backorder_qty END) AS BIGINT),
             CAST(COUNT(DISTINCT CASE WHEN l.backorder_qty > 0 THEN l.order_id END) AS BIGINT),
             MIN(CASE WHEN l.backorder_qty > 0 THEN {date_key} END)
         FROM order_lines l JOIN orders o ON o.id = l.order_id
         {}
         GROUP BY 1, 2, 3, 4, 5",
                among("l.sku", "WHERE")
            ))))
            .fetch_all(&mut *conn)
            .await?
        }
    };

    let kinds: FxHashMap<&str, _> = warehouses.iter().map(|w| (w.id.as_str(), w.kind)).collect();
    let mut lines: BTreeMap<(String, Option<String>), LineTally> = BTreeMap::new();
    for row in rows {
        let (sku, ship_from, status, payment, old, allocated, backordered, held, waiting, oldest) =
            row;
        let record = || format!("orders with lines of sku {sku:?}");
        let status = codec::order_status(&status, &record)?;
        let payment = codec::payment_status(&payment, &record)?;
        let kind = ship_from.as_deref().and_then(|w| kinds.get(w).copied());
        let tally = match scope_of_parts(status, payment, kind, old != 0, &settings) {
            Scope::Active => LineTally {
                allocated,
                backordered,
                frozen_held: 0,
                waiting_orders: waiting,
                oldest_waiting: match oldest {
                    Some(key) => Some(codec::timestamp(&format!("{key}Z"), &record)?),
                    None => None,
                },
            },
            Scope::Frozen => LineTally {
                frozen_held: held,
                ..LineTally::default()
            },
            Scope::Closed | Scope::Excluded => {
                lines.entry((sku, None)).or_default();
                continue;
            }
        };
        lines.entry((sku, ship_from)).or_default().merge(&tally);
    }
    Ok(FeedSource {
        settings,
        warehouses,
        products,
        inventory,
        purchase_orders,
        lines,
    })
}
