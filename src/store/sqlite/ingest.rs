//! The statements of event ingestion on SQLite (the logic is
//! `store/ingest.rs`'s).

use rustc_hash::FxHashMap;
use sqlx::{Row, SqliteConnection};

use super::writeback::write_order_changes;
use crate::engine::snapshot::Order;
use crate::events::Event;
use crate::queue::{QUEUE, RecalcJob};
use crate::recalc::OrderChange;
use crate::store::coalesce::{WaitingJobStatements, join_waiting_job};
use crate::store::ingest::{DirtyMark, IngestBackend, OrderLines, StoredLine};
use crate::store::{IngestOptions, IngestReport, StoreError};

pub(super) async fn ingest(
    conn: &mut SqliteConnection,
    events: &[Event],
    options: IngestOptions,
) -> Result<IngestReport, StoreError> {
    crate::store::ingest::ingest(conn, events, options).await
}

/// This database's queue table, for [`join_waiting_job`].
const WAITING_JOB: WaitingJobStatements = WaitingJobStatements {
    find: "SELECT id, job FROM Jobs
           WHERE job_type = ? AND status = 'Pending' AND lock_by IS NULL
             AND (run_at IS NULL OR run_at <= unixepoch())
           ORDER BY run_at LIMIT 1",
    absorb: "UPDATE Jobs SET job = ? WHERE id = ? AND status = 'Pending' AND lock_by IS NULL
             RETURNING id",
};

/// Queues `job`, unless a job is waiting to be fetched: that one absorbs
/// it. Inside a write transaction this loses no wake-up: the worker's fetch
/// needs the write lock too, so the waiting job is fetched, and drains,
/// only after this transaction's marks are committed. Outside one, the
/// conditional UPDATE either reaches a job still waiting or queues anew.
pub(super) async fn push_job(
    conn: &mut SqliteConnection,
    job: &RecalcJob,
) -> Result<(), StoreError> {
    if join_waiting_job::<sqlx::Sqlite>(conn, &WAITING_JOB, job).await? {
        return Ok(());
    }
    let task = apalis::prelude::TaskBuilder::new(job.payload()).build();
    apalis_sqlite::queries::push_tasks(conn, QUEUE, &[task])
        .await
        .map_err(|e| match e {
            apalis_sqlite::Error::Database(e) => StoreError::Database(e),
            other => StoreError::Queue(other.to_string()),
        })
}

impl IngestBackend for SqliteConnection {
    crate::store::ingest::portable_statements!();

    async fn order_skus(&mut self, order_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM orders WHERE id = ?")
            .bind(order_id)
            .fetch_optional(&mut *self)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        Ok(Some(
            sqlx::query_scalar("SELECT DISTINCT sku FROM order_lines WHERE order_id = ?")
                .bind(order_id)
                .fetch_all(&mut *self)
                .await?,
        ))
    }

    async fn stored_lines(
        &mut self,
        line_ids: &[String],
    ) -> Result<FxHashMap<String, StoredLine>, StoreError> {
        let mut stored = FxHashMap::default();
        for line_id in line_ids {
            let row = sqlx::query("SELECT order_id, position, sku FROM order_lines WHERE id = ?")
                .bind(line_id)
                .fetch_optional(&mut *self)
                .await?;
            if let Some(row) = row {
                let line = StoredLine {
                    order_id: row.get(0),
                    position: row.get(1),
                    sku: row.get(2),
                };
                stored.insert(line_id.clone(), line);
            }
        }
        Ok(stored)
    }

    async fn replace_lines(&mut self, order: &Order) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM order_lines WHERE order_id = ?")
            .bind(&order.id)
            .execute(&mut *self)
            .await?;
        super::insert_lines(self, std::iter::once(order)).await
    }

    async fn insert_order(&mut self, order: &Order) -> Result<(), StoreError> {
        super::insert_orders(self, &[(None, order)]).await
    }

    async fn move_lines(
        &mut self,
        new_order_id: &str,
        moves: &[(String, i64)],
    ) -> Result<(), StoreError> {
        for (line_id, position) in moves {
            sqlx::query("UPDATE order_lines SET order_id = ?, position = ? WHERE id = ?")
                .bind(new_order_id)
                .bind(position)
                .bind(line_id)
                .execute(&mut *self)
                .await?;
        }
        Ok(())
    }

    async fn orders_with_lines(
        &mut self,
        order_ids: &[String],
    ) -> Result<Vec<OrderLines>, StoreError> {
        super::direct::orders_with_lines(self, order_ids).await
    }

    async fn set_customer(&mut self, order: &Order) -> Result<(), StoreError> {
        crate::store::customers::sqlite::write(self, &[order]).await
    }

    async fn write_order_changes(
        &mut self,
        changes: &[OrderChange],
        at: &str,
    ) -> Result<(), StoreError> {
        write_order_changes(self, changes, at).await
    }

    async fn mark_dirty(&mut self, marks: &[DirtyMark]) -> Result<(), StoreError> {
        let rows: Vec<(&str, i64, &str)> = marks
            .iter()
            .map(|mark| (mark.sku.as_str(), mark.seq, mark.cause.as_str()))
            .collect();
        sqlx::query(
            "INSERT INTO dirty_skus (sku, marked_seq, cause)
             SELECT j.value->>0, j.value->>1, j.value->>2 FROM json_each(?) j WHERE true
             ON CONFLICT (sku) DO UPDATE SET marked_seq = excluded.marked_seq, cause = excluded.cause",
        )
        .bind(serde_json::to_string(&rows).expect("rows serialize"))
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn push_job(&mut self, job: &RecalcJob) -> Result<(), StoreError> {
        push_job(self, job).await
    }
}
