//! Read-only queries for the HTTP API and the metrics (PostgreSQL), and
//! the reads of a group's stored state that they share with the rest of
//! the backend. Rows go to `store::assemble`, as SQLite's do, so both
//! backends answer alike.
//!
//! Text is compared and sorted `COLLATE "C"` (byte order), as Rust and
//! SQLite do, whatever collation the database was created with.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use rustc_hash::FxHashMap;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{PgConnection, PgPool, Postgres, Row};

use crate::engine::LineCounts;
use crate::engine::snapshot::Settings;
use crate::recalc::GroupState;
use crate::store::StoreError;
use crate::store::assemble;
use crate::store::codec::HeaderRow;
use crate::store::group::{HeaderWithTotals, LineRow, LinesByOrder};
use crate::store::views::{BackorderQuery, BackorderedOrder, OrderView, PoolState, Readiness};

/// An order header's columns from `orders o`, read by [`header`] from the
/// start of a row.
pub(super) const HEADER_COLUMNS: &str =
    "o.id, o.order_date, o.payment_date, o.payment_status, o.status, o.rush, o.picked, o.ship_from";

/// The header columns at the start of `row`.
pub(super) fn header(row: &PgRow) -> Result<HeaderRow<&str>, StoreError> {
    Ok(HeaderRow::from_row(row)?)
}

/// Runs `query` and maps each row as it arrives, so that a large result is
/// never held twice.
pub(super) async fn map_rows<'q, R, T>(
    conn: &mut PgConnection,
    query: sqlx::query::QueryAs<'q, Postgres, R, PgArguments>,
    mut map: impl FnMut(R) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError>
where
    R: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin + 'q,
{
    let mut rows = query.fetch(conn);
    let mut out = Vec::new();
    while let Some(row) = rows.try_next().await? {
        out.push(map(row)?);
    }
    Ok(out)
}

pub(super) async fn order_view(
    conn: &mut PgConnection,
    id: &str,
) -> Result<Option<OrderView>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {HEADER_COLUMNS}, o.backorder_status, o.backorder_qty FROM orders o WHERE o.id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let order = header(&row)?.into_order()?;
    let lines: Vec<assemble::OrderLineRow> = sqlx::query_as(
        "SELECT id, sku, qty, backorder_qty, eta FROM order_lines WHERE order_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    assemble::order_view(order, row.try_get(8)?, row.try_get(9)?, lines).map(Some)
}

pub(super) async fn pool_state(
    conn: &mut PgConnection,
    skus: &[String],
    with_replacements: bool,
) -> Result<PoolState, StoreError> {
    let settings = super::load_settings(conn).await?;
    let skus = if with_replacements {
        assemble::group_skus::<Postgres>(conn, &settings, skus.to_vec()).await?
    } else {
        assemble::sorted_skus(skus.to_vec())
    };
    let group = load_group(conn, &skus, settings, FxHashMap::default()).await?;
    let dirty_skus: Vec<String> = sqlx::query_scalar(
        r#"SELECT sku FROM dirty_skus WHERE sku = ANY($1) ORDER BY sku COLLATE "C""#,
    )
    .bind(&skus)
    .fetch_all(&mut *conn)
    .await?;
    Ok(assemble::pool_state(group, skus, dirty_skus))
}

/// The stored state of the group `skus` (sorted, closed under replacement
/// as the caller needs): what a recalculation of it and the API's pool
/// views read.
pub(super) async fn load_group(
    conn: &mut PgConnection,
    skus: &[String],
    settings: Settings,
    causes: FxHashMap<String, String>,
) -> Result<GroupState, StoreError> {
    let warehouses = super::load_warehouses(conn).await?;
    let (products, inventory, purchase_orders) = load_stock(conn, skus).await?;
    let lines: Vec<LineRow> = sqlx::query_as(
        "SELECT order_id, position, id, sku, qty, backorder_qty, eta FROM order_lines WHERE sku = ANY($1)",
    )
    .bind(skus)
    .fetch_all(&mut *conn)
    .await?;
    let orders = orders_of_lines(conn, lines).await?;

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

/// The products, inventory rows and purchase orders of `skus`.
pub(super) async fn load_stock(
    conn: &mut PgConnection,
    skus: &[String],
) -> Result<crate::store::recalculate::Stock, StoreError> {
    let products = map_rows(
        conn,
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            r#"SELECT {} FROM products WHERE sku = ANY($1) ORDER BY sku COLLATE "C""#,
            assemble::PRODUCT_COLUMNS
        )))
        .bind(skus),
        assemble::product,
    )
    .await?;
    let inventory = map_rows(
        conn,
        sqlx::query_as(
            r#"SELECT sku, warehouse, on_hand FROM inventory WHERE sku = ANY($1)
               ORDER BY sku COLLATE "C", warehouse COLLATE "C""#,
        )
        .bind(skus),
        assemble::inventory_row,
    )
    .await?;
    let purchase_orders = map_rows(
        conn,
        sqlx::query_as(
            "SELECT id, sku, warehouse, qty_ordered, qty_received, expected_date
             FROM purchase_orders WHERE sku = ANY($1) ORDER BY position",
        )
        .bind(skus),
        assemble::purchase_order,
    )
    .await?;
    Ok((products, inventory, purchase_orders))
}

/// The orders of `lines`, each holding those lines, headers read by id.
pub(super) async fn orders_of_lines(
    conn: &mut PgConnection,
    lines: Vec<LineRow>,
) -> Result<Vec<crate::recalc::StoredOrder>, StoreError> {
    let lines = LinesByOrder::new(lines);
    let mut headers = {
        let ids = lines.order_ids();
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {HEADER_COLUMNS}, o.backorder_qty, o.lines_open, o.lines_backordered, o.lines_whole
             FROM orders o WHERE o.id = ANY($1)"
        )))
        .bind(ids)
        .fetch(&mut *conn);
        let mut headers: Vec<HeaderWithTotals> = Vec::new();
        while let Some(row) = rows.try_next().await? {
            let counts = LineCounts {
                open: row.try_get(9)?,
                backordered: row.try_get(10)?,
                whole: row.try_get(11)?,
            };
            headers.push((header(&row)?.into_order()?, row.try_get(8)?, counts));
        }
        headers
    };
    headers.sort_unstable_by(|a, b| a.0.id.cmp(&b.0.id));
    lines.into_orders(headers)
}

/// The stored order date with its final `Z` left out sorts as the instant
/// it names: every stored timestamp is UTC with 0, 3, 6 or 9 fractional
/// digits, and a shorter string that is a prefix of a longer one is earlier.
const DATE_KEY: &str = r#"rtrim(o.order_date, 'Z') COLLATE "C""#;

pub(super) async fn backorders(
    conn: &mut PgConnection,
    query: &BackorderQuery,
) -> Result<Vec<BackorderedOrder>, StoreError> {
    let (after_key, after_id) = match &query.after {
        Some(c) => (Some(c.date_key.as_str()), Some(c.order_id.as_str())),
        None => (None, None),
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        r#"SELECT {HEADER_COLUMNS}, o.backorder_status, o.backorder_qty, {DATE_KEY}
         FROM orders o
         WHERE o.backorder_status IN ('full', 'partial')
           AND o.backorder_status = ANY($1)
           AND ($2::text IS NULL OR o.id IN (
                SELECT l.order_id FROM order_lines l WHERE l.sku = $2 AND l.backorder_qty > 0))
           AND ($3::text IS NULL OR ({DATE_KEY}, o.id COLLATE "C") > ($3, $4))
           AND ($6::text IS NULL OR o.ship_from = $6)
           AND {DATE_KEY} >= coalesce($7::text, '')
           AND ($8::text IS NULL OR {DATE_KEY} < $8)
         ORDER BY {DATE_KEY}, o.id COLLATE "C"
         LIMIT $5"#
    )))
    .bind(query.status.statuses())
    .bind(query.sku.as_deref())
    .bind(after_key)
    .bind(after_id)
    .bind(query.limit as i64)
    .bind(query.warehouse.as_deref())
    .bind(query.from.as_ref().map(crate::store::views::date_key))
    .bind(query.until.as_ref().map(crate::store::views::date_key))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            assemble::backordered_order(
                header(row)?,
                row.try_get(8)?,
                row.try_get(9)?,
                row.try_get(10)?,
            )
        })
        .collect()
}

/// Whether the server answers (a pooled connection is checked before it is
/// handed out) and which of this binary's migrations it lacks.
pub(super) async fn readiness(pool: &PgPool) -> Result<Readiness, StoreError> {
    let mut conn = pool.acquire().await?;
    let missing = assemble::missing_migrations::<Postgres>(
        &mut *conn,
        sqlx::migrate!("migrations/postgres"),
        apalis_postgres::PostgresStorage::migrations(),
    )
    .await?;
    Ok(Readiness {
        missing_migrations: missing,
    })
}

/// When each of the events `ids` was received, in the order of `ids`
/// (unknown ids are skipped).
pub(super) async fn received_at(
    conn: &mut PgConnection,
    ids: &[String],
) -> Result<Vec<DateTime<Utc>>, StoreError> {
    let texts: Vec<String> = sqlx::query_scalar(
        "SELECT e.received_at FROM unnest($1::text[]) WITH ORDINALITY j (id, n)
         JOIN received_events e ON e.id = j.id ORDER BY j.n",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    assemble::received_times(&texts)
}
