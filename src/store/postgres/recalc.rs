//! PostgreSQL's statements for the recalculation sequence
//! (`store::recalculate`), and its real differences: several workers run
//! it at once, so a batch claims only SKUs whose lock stripe it takes
//! without waiting (`pg_try_advisory_xact_lock`), and it writes back
//! beside other writers (`writeback.rs`).

use rustc_hash::FxHashMap;
use sqlx::PgConnection;

use super::{LOCK_SPACE, SKU_LOCK_STRIPES, load_settings, queries, writeback};
use crate::engine::snapshot::Settings;
use crate::recalc::{Changes, GroupState, StoredOrder};
use crate::store::StoreError;
use crate::store::group::LineRow;
use crate::store::recalculate::pool_cache::{LogEntry, Versions};
use crate::store::recalculate::portable;
use crate::store::recalculate::{ClaimBudget, Mark, RecalcDialect, Stock, Written};

/// A deadlock or serialization failure: the transaction did nothing and
/// may simply be run again.
pub(super) fn is_transient(e: &StoreError) -> bool {
    match e {
        StoreError::Database(sqlx::Error::Database(db)) => {
            matches!(db.code().as_deref(), Some("40P01" | "40001"))
        }
        _ => false,
    }
}

fn marks(rows: Vec<(String, String, i64, i64)>) -> Vec<Mark> {
    rows.into_iter()
        .map(|(sku, cause, seq, lines)| Mark {
            sku,
            cause,
            seq,
            lines: lines as usize,
        })
        .collect()
}

impl RecalcDialect for PgConnection {
    /// Only a window of the next SKUs is tried, so that one worker does not
    /// take every stripe of a large dirty set and leave the others idle.
    async fn claim(
        &mut self,
        max_skus: usize,
        line_budget: usize,
        after: Option<&str>,
    ) -> Result<Vec<Mark>, StoreError> {
        // A full run walks the keys; a drain takes the longest waiting
        // first (see `clear_marks`), so a hot SKU marked again and again
        // does not keep the others waiting.
        let next_dirty = match after {
            Some(_) => {
                "SELECT sku, cause, marked_seq FROM dirty_skus WHERE sku > $5 ORDER BY sku LIMIT $3"
            }
            None => {
                "SELECT sku, cause, marked_seq FROM dirty_skus WHERE sku > $5 ORDER BY marked_at, sku LIMIT $3"
            }
        };
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT sku, cause, marked_seq, (SELECT COUNT(*) FROM order_lines l WHERE l.sku = next_dirty.sku)
             FROM ({next_dirty}) next_dirty
             WHERE pg_try_advisory_xact_lock($1, hashtext(sku) & ($2 - 1))
             LIMIT $4"
        )))
        .bind(LOCK_SPACE)
        .bind(SKU_LOCK_STRIPES)
        .bind(4 * max_skus as i64)
        .bind(max_skus as i64)
        // Every SKU sorts after the empty string.
        .bind(after.unwrap_or(""))
        .fetch_all(&mut *self)
        .await?;
        // The stripes of those left out stay held to the commit: harmless.
        let mut budget = ClaimBudget::new(line_budget);
        Ok(marks(rows)
            .into_iter()
            .take_while(|m| budget.admit(m.lines))
            .collect())
    }

    async fn begin_tick(&mut self) -> Result<i64, StoreError> {
        // Drawn before the batch's first read: at READ COMMITTED each later
        // statement sees whatever committed before this value was drawn.
        Ok(sqlx::query_scalar("SELECT nextval('recalc_clock')")
            .fetch_one(&mut *self)
            .await?)
    }

    async fn record_tick(&mut self, skus: &[String], tick: i64) -> Result<(), StoreError> {
        let mut sorted: Vec<&str> = skus.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        sqlx::query(
            "INSERT INTO recalc_ticks (sku, tick) SELECT s, $2 FROM unnest($1::text[]) s
             ON CONFLICT (sku) DO UPDATE SET tick = GREATEST(recalc_ticks.tick, excluded.tick)",
        )
        .bind(&sorted)
        .bind(tick)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn take(&mut self, skus: &[String]) -> Result<Option<Vec<Mark>>, StoreError> {
        let all: Option<bool> = sqlx::query_scalar(
            "SELECT bool_and(pg_try_advisory_xact_lock($1, hashtext(s) & ($2 - 1))) FROM unnest($3::text[]) s",
        )
        .bind(LOCK_SPACE)
        .bind(SKU_LOCK_STRIPES)
        .bind(skus)
        .fetch_one(&mut *self)
        .await?;
        if !all.unwrap_or(true) {
            return Ok(None);
        }
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT sku, cause, marked_seq, 0::int8 FROM dirty_skus WHERE sku = ANY($1)",
        )
        .bind(skus)
        .fetch_all(&mut *self)
        .await?;
        Ok(Some(marks(rows)))
    }

    async fn settings(&mut self) -> Result<Settings, StoreError> {
        load_settings(self).await
    }

    async fn replacement_edges(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        portable::replacement_edges::<sqlx::Postgres>(self).await
    }

    async fn load_group(
        &mut self,
        skus: &[String],
        _expected_lines: usize,
        settings: Settings,
        causes: FxHashMap<String, String>,
    ) -> Result<GroupState, StoreError> {
        queries::load_group(self, skus, settings, causes).await
    }

    async fn write_changes(&mut self, changes: &Changes, at: &str) -> Result<Written, StoreError> {
        writeback::write_changes(self, changes, at).await
    }

    async fn clear_marks(&mut self, marks: &[Mark]) -> Result<(), StoreError> {
        let mut pairs: Vec<(&str, i64)> = marks.iter().map(|m| (m.sku.as_str(), m.seq)).collect();
        pairs.sort_unstable();
        let (skus, seqs): (Vec<&str>, Vec<i64>) = pairs.into_iter().unzip();
        sqlx::query(
            "DELETE FROM dirty_skus d USING unnest($1::text[], $2::int8[]) AS c(sku, seq)
             WHERE d.sku = c.sku AND d.marked_seq <= c.seq",
        )
        .bind(&skus)
        .bind(&seqs)
        .execute(&mut *self)
        .await?;
        // A mark an event raised since the batch read goes to the back of
        // the drain's queue: it has waited since about now.
        sqlx::query(
            "UPDATE dirty_skus d SET marked_at = floor(extract(epoch FROM clock_timestamp()) * 1000)
             FROM unnest($1::text[], $2::int8[]) AS c(sku, seq)
             WHERE d.sku = c.sku AND d.marked_seq > c.seq",
        )
        .bind(&skus)
        .bind(&seqs)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn load_orders(
        &mut self,
        skus: &[String],
        ids: &[String],
    ) -> Result<Vec<StoredOrder>, StoreError> {
        let lines: Vec<LineRow> = sqlx::query_as(
            "SELECT order_id, position, id, sku, qty, backorder_qty, eta FROM order_lines
             WHERE order_id = ANY($1) AND sku = ANY($2)",
        )
        .bind(ids)
        .bind(skus)
        .fetch_all(&mut *self)
        .await?;
        queries::orders_of_lines(self, lines).await
    }

    async fn load_stock(&mut self, skus: &[String]) -> Result<Stock, StoreError> {
        queries::load_stock(self, skus).await
    }

    async fn prune_pool_log(
        &mut self,
        skus: &[String],
        upto: Option<&Versions>,
    ) -> Result<(), StoreError> {
        let upto: Vec<i64> = match upto {
            Some(v) => v.skus.clone(),
            None => vec![i64::MAX; skus.len()],
        };
        sqlx::query(
            "DELETE FROM pool_log p USING unnest($1::text[], $2::int8[]) AS c(sku, upto)
             WHERE p.sku = c.sku AND p.version <= c.upto",
        )
        .bind(skus)
        .bind(&upto)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn pause_pool_log(&mut self) -> Result<(), StoreError> {
        crate::store::recalculate::pool_cache::pause_log::<sqlx::Postgres>(self).await
    }

    async fn end_pool_log_pause(&mut self) -> Result<(), StoreError> {
        crate::store::recalculate::pool_cache::end_pause::<sqlx::Postgres>(self).await
    }

    async fn log_written(&mut self, order_ids: &[String]) -> Result<(), StoreError> {
        let ids = "(SELECT unnest($1::text[]) AS id)";
        crate::store::recalculate::pool_cache::log_written::<sqlx::Postgres, _>(
            self,
            ids,
            order_ids.to_vec(),
        )
        .await
    }

    async fn pool_versions(&mut self, skus: &[String]) -> Result<Versions, StoreError> {
        let (epoch, versions): (i64, Vec<i64>) = sqlx::query_as(
            "SELECT (SELECT epoch FROM pool_epoch),
                    ARRAY(SELECT COALESCE(v.version, 0)
                          FROM unnest($1::text[]) WITH ORDINALITY AS s(sku, n)
                          LEFT JOIN pool_versions v ON v.sku = s.sku ORDER BY s.n)",
        )
        .bind(skus)
        .fetch_one(&mut *self)
        .await?;
        Ok(Versions {
            epoch,
            skus: versions,
        })
    }

    async fn pool_log(
        &mut self,
        skus: &[String],
        since: &Versions,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let rows: Vec<(String, i64, Option<String>)> = sqlx::query_as(
            "SELECT p.sku, p.version, p.order_id
             FROM unnest($1::text[], $2::int8[]) AS c(sku, since)
             JOIN pool_log p ON p.sku = c.sku AND p.version > c.since",
        )
        .bind(skus)
        .bind(&since.skus)
        .fetch_all(&mut *self)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(sku, version, order_id)| LogEntry {
                sku,
                version,
                order_id,
            })
            .collect())
    }
}
