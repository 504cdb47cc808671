//! The `set_aside_skus` table: SKUs whose recalculation failed on their own.
//!
//! A poison SKU (a stored value the recalculation cannot use, a database
//! rule that refuses its write-back, a bug that panics on it) would fail
//! every batch it is claimed in, and keep its dirty mark, so every later
//! batch would claim it and fail again: nothing else would be recalculated.
//! The worker isolates it (docs/architecture.md, "failing recalculations")
//! and moves its mark here with the error; the rest of the dirty set drains
//! on. At `retry_at` the mark moves back to `dirty_skus` for another try;
//! a successful recalculation of the SKU deletes its row. A set-aside SKU
//! still counts as waiting (`dirty_count`), so `--wait` does not report it
//! written back.
//!
//! The SQL is the same on both backends but for the list parameter.

use std::time::Duration;

use super::StoreError;

/// One set-aside SKU, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SetAsideSku {
    pub sku: String,
    /// What had marked it dirty.
    pub cause: String,
    /// The last failure.
    pub error: String,
    pub failed_at_ms: i64,
    pub attempts: i64,
    pub retry_at_ms: i64,
}

/// Longest pause between two attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);

/// The pause before attempt `attempts + 1`: `first`, doubling each time, at
/// most an hour.
pub fn retry_delay(attempts: i64, first: Duration) -> Duration {
    let doublings = attempts.clamp(1, 20) as u32 - 1;
    first
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(MAX_RETRY_DELAY)
}

macro_rules! set_aside_table {
    ($pool:ty, $begin:literal, $in_list:literal, $list:ty, $bind_list:expr) => {
        /// Moves `sku`'s dirty mark here with `error`; `false` when it was
        /// not dirty (someone else recalculated or set it aside meanwhile).
        pub async fn set_aside(
            pool: &$pool,
            sku: &str,
            error: &str,
            now_ms: i64,
            first_retry: std::time::Duration,
        ) -> Result<bool, StoreError> {
            // SQLite: take the write lock first, or the upgrade from a read
            // could fail at once when another writer committed meanwhile.
            let mut tx = pool.begin_with($begin).await?;
            let attempts: Option<i64> =
                sqlx::query_scalar("SELECT attempts FROM set_aside_skus WHERE sku = $1")
                    .bind(sku)
                    .fetch_optional(&mut *tx)
                    .await?;
            let attempts = attempts.unwrap_or(0).saturating_add(1);
            let delay = super::retry_delay(attempts, first_retry);
            let retry_at = now_ms.saturating_add(delay.as_millis() as i64);
            let moved = sqlx::query(
                "INSERT INTO set_aside_skus (sku, cause, error, failed_at, attempts, retry_at)
                 SELECT sku, cause, $2, $3, $4, $5 FROM dirty_skus WHERE sku = $1
                 ON CONFLICT (sku) DO UPDATE SET cause = excluded.cause, error = excluded.error,
                     failed_at = excluded.failed_at, attempts = excluded.attempts,
                     retry_at = excluded.retry_at",
            )
            .bind(sku)
            .bind(error)
            .bind(now_ms)
            .bind(attempts)
            .bind(retry_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("DELETE FROM dirty_skus WHERE sku = $1")
                .bind(sku)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(moved > 0)
        }

        /// Marks dirty again every set-aside SKU whose retry time has come;
        /// how many. Their rows stay (with the attempts) until a
        /// recalculation of the SKU succeeds.
        pub async fn readmit_due(pool: &$pool, now_ms: i64) -> Result<u64, StoreError> {
            let readmitted = sqlx::query(
                "INSERT INTO dirty_skus (sku, marked_seq, cause, marked_at)
                 SELECT sku, (SELECT COALESCE(MAX(seq), 0) FROM received_events), cause, $1
                 FROM set_aside_skus WHERE retry_at <= $1
                 ON CONFLICT (sku) DO NOTHING",
            )
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(readmitted)
        }

        /// Forgets the failures of `skus`, just recalculated.
        pub async fn clear(pool: &$pool, skus: &[String]) -> Result<(), StoreError> {
            let list: $list = $bind_list(skus);
            sqlx::query(concat!("DELETE FROM set_aside_skus WHERE sku ", $in_list))
                .bind(list)
                .execute(pool)
                .await?;
            Ok(())
        }

        pub async fn count(pool: &$pool) -> Result<i64, StoreError> {
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM set_aside_skus")
                .fetch_one(pool)
                .await?)
        }

        /// Every set-aside SKU, by SKU.
        pub async fn list(pool: &$pool) -> Result<Vec<SetAsideSku>, StoreError> {
            let rows: Vec<(String, String, String, i64, i64, i64)> = sqlx::query_as(
                "SELECT sku, cause, error, failed_at, attempts, retry_at
                 FROM set_aside_skus ORDER BY sku",
            )
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(sku, cause, error, failed_at_ms, attempts, retry_at_ms)| SetAsideSku {
                    sku,
                    cause,
                    error,
                    failed_at_ms,
                    attempts,
                    retry_at_ms,
                })
                .collect())
        }

        /// The SKU a batch of one would claim now: the first dirty one.
        pub async fn first_dirty(pool: &$pool) -> Result<Option<String>, StoreError> {
            Ok(
                sqlx::query_scalar("SELECT sku FROM dirty_skus ORDER BY sku LIMIT 1")
                    .fetch_optional(pool)
                    .await?,
            )
        }
    };
}

pub mod sqlite {
    use super::{SetAsideSku, StoreError};

    fn json_list(skus: &[String]) -> String {
        serde_json::to_string(skus).expect("skus serialize")
    }

    set_aside_table!(
        sqlx::SqlitePool,
        "BEGIN IMMEDIATE",
        "IN (SELECT value FROM json_each($1))",
        String,
        json_list
    );
}

pub mod postgres {
    use super::{SetAsideSku, StoreError};

    fn array(skus: &[String]) -> Vec<String> {
        skus.to_vec()
    }

    set_aside_table!(sqlx::PgPool, "BEGIN", "= ANY($1)", Vec<String>, array);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_delay_doubles_up_to_an_hour() {
        let first = Duration::from_secs(30);
        assert_eq!(retry_delay(1, first), first);
        assert_eq!(retry_delay(2, first), Duration::from_secs(60));
        assert_eq!(retry_delay(4, first), Duration::from_secs(240));
        assert_eq!(retry_delay(50, first), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(i64::MAX, first), MAX_RETRY_DELAY);
    }
}
