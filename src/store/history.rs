//! The `history` table read back: an order's timeline for the admin
//! console (a row per written-back change, by recalculation, override or
//! audit). The SQL is the same on both backends (`$N` placeholders work in
//! SQLite too), so it is written once and instantiated per pool type.

use super::StoreError;

/// One change to an order or one of its lines.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct HistoryRow {
    pub at: String,
    /// `None`: the order's own status and total changed.
    pub line_id: Option<String>,
    pub old_backorder_qty: i64,
    pub new_backorder_qty: i64,
    pub old_status: Option<String>,
    pub new_status: Option<String>,
    /// The event id, `import`, `audit`, ...
    pub cause: String,
}

type Row = (
    String,
    Option<String>,
    i64,
    i64,
    Option<String>,
    Option<String>,
    String,
);

fn into_row((at, line_id, old, new, old_status, new_status, cause): Row) -> HistoryRow {
    HistoryRow {
        at,
        line_id,
        old_backorder_qty: old,
        new_backorder_qty: new,
        old_status,
        new_status,
        cause,
    }
}

macro_rules! history_reads {
    ($pool:ty) => {
        /// The newest `limit` changes of `order_id`, newest first (index
        /// `history_by_order`).
        pub async fn of_order(
            pool: &$pool,
            order_id: &str,
            limit: i64,
        ) -> Result<Vec<HistoryRow>, StoreError> {
            let rows: Vec<super::Row> = sqlx::query_as(
                "SELECT at, line_id, old_backorder_qty, new_backorder_qty, old_status, new_status, cause
                 FROM history WHERE order_id = $1 ORDER BY seq DESC LIMIT $2",
            )
            .bind(order_id)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(super::into_row).collect())
        }
    };
}

pub mod sqlite {
    use super::{HistoryRow, StoreError};
    history_reads!(sqlx::SqlitePool);
}

pub mod postgres {
    use super::{HistoryRow, StoreError};
    history_reads!(sqlx::PgPool);
}
