//! The `backorder_samples` table behind the console's charts: one row per
//! minute with the backordered units and orders as stored, and the longest
//! event-to-result lag measured in that minute. `serve` writes the row of
//! the current minute from its heartbeat (service.rs); several daemons on
//! one database share the row (the newest figures, the longest lag win).
//!
//! The SQL is the same on both backends (`$N` placeholders work in SQLite
//! too), so it is written once and instantiated per pool type.

use super::StoreError;

/// One minute's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Unix minutes.
    pub minute: i64,
    pub backordered_units: i64,
    pub backordered_orders: i64,
    /// The longest lag measured in the minute; `None`: no event was
    /// written back in it.
    pub lag_max_ms: Option<i64>,
    pub lag_count: i64,
}

/// The lags this process measured since its last sample: (longest, count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lags {
    pub max_ms: Option<i64>,
    pub count: i64,
}

/// Samples kept: 7 days of minutes.
pub const KEPT_MINUTES: i64 = 7 * 24 * 60;

macro_rules! sample_table {
    ($pool:ty) => {
        /// The stored totals now: (units, orders) backordered.
        pub async fn totals(pool: &$pool) -> Result<(i64, i64), StoreError> {
            // The partial index of backordered orders holds exactly these rows.
            Ok(sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(backorder_qty), 0) AS BIGINT), COUNT(*)
                 FROM orders WHERE backorder_status IN ('full', 'partial')",
            )
            .fetch_one(pool)
            .await?)
        }

        /// Writes (or merges into) the row of `sample.minute`, and prunes
        /// the rows older than [`super::KEPT_MINUTES`].
        pub async fn record(pool: &$pool, sample: &super::Sample) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO backorder_samples
                     (minute, backordered_units, backordered_orders, lag_max_ms, lag_count)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (minute) DO UPDATE SET
                     backordered_units = excluded.backordered_units,
                     backordered_orders = excluded.backordered_orders,
                     lag_max_ms = CASE
                         WHEN backorder_samples.lag_max_ms IS NULL THEN excluded.lag_max_ms
                         WHEN excluded.lag_max_ms IS NULL THEN backorder_samples.lag_max_ms
                         WHEN excluded.lag_max_ms > backorder_samples.lag_max_ms THEN excluded.lag_max_ms
                         ELSE backorder_samples.lag_max_ms END,
                     lag_count = backorder_samples.lag_count + excluded.lag_count",
            )
            .bind(sample.minute)
            .bind(sample.backordered_units)
            .bind(sample.backordered_orders)
            .bind(sample.lag_max_ms)
            .bind(sample.lag_count)
            .execute(pool)
            .await?;
            sqlx::query("DELETE FROM backorder_samples WHERE minute < $1")
                .bind(sample.minute - super::KEPT_MINUTES)
                .execute(pool)
                .await?;
            Ok(())
        }

        /// The samples from `since_minute` on, oldest first.
        pub async fn since(
            pool: &$pool,
            since_minute: i64,
        ) -> Result<Vec<super::Sample>, StoreError> {
            let rows: Vec<(i64, i64, i64, Option<i64>, i64)> = sqlx::query_as(
                "SELECT minute, backordered_units, backordered_orders, lag_max_ms, lag_count
                 FROM backorder_samples WHERE minute >= $1 ORDER BY minute",
            )
            .bind(since_minute)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(
                    |(minute, backordered_units, backordered_orders, lag_max_ms, lag_count)| {
                        super::Sample {
                            minute,
                            backordered_units,
                            backordered_orders,
                            lag_max_ms,
                            lag_count,
                        }
                    },
                )
                .collect())
        }
    };
}

pub mod sqlite {
    use super::StoreError;
    sample_table!(sqlx::SqlitePool);
}

pub mod postgres {
    use super::StoreError;
    sample_table!(sqlx::PgPool);
}
