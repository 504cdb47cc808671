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
