//! The dialect statements that read the same on every database, written
//! once; each `RecalcDialect` calls them with its own driver.

use crate::store::StoreError;

/// `(sku, replacement_sku)` of every product that names one.
pub async fn replacement_edges<DB>(
    conn: &mut DB::Connection,
) -> Result<Vec<(String, String)>, StoreError>
where
    DB: sqlx::Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    (String, String): for<'r> sqlx::FromRow<'r, DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    Ok(sqlx::query_as(
        "SELECT sku, replacement_sku FROM products WHERE replacement_sku IS NOT NULL",
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// Every SKU that has lines, with how many.
pub async fn sku_line_counts<DB>(
    conn: &mut DB::Connection,
) -> Result<Vec<(String, usize)>, StoreError>
where
    DB: sqlx::Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    (String, i64): for<'r> sqlx::FromRow<'r, DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT sku, COUNT(*) FROM order_lines GROUP BY sku")
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows.into_iter().map(|(s, n)| (s, n as usize)).collect())
}

/// How many SKUs are dirty and how many orders are stored.
pub async fn audit_counts<DB>(conn: &mut DB::Connection) -> Result<(i64, usize), StoreError>
where
    DB: sqlx::Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    (i64, i64): for<'r> sqlx::FromRow<'r, DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    let (dirty, orders): (i64, i64) =
        sqlx::query_as("SELECT (SELECT COUNT(*) FROM dirty_skus), (SELECT COUNT(*) FROM orders)")
            .fetch_one(&mut *conn)
            .await?;
    Ok((dirty, orders as usize))
}
