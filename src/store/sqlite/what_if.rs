//! The what-if preview on SQLite: the batch applied and every SKU
//! recalculated inside one write transaction that is rolled back
//! (src/whatif.rs says why that is exactly what a real change writes).

use chrono::{DateTime, Utc};
use sqlx::{Connection, Row, SqliteConnection};

use super::SqliteStore;
use crate::events::Event;
use crate::store::{IngestOptions, StoreError, codec};
use crate::whatif::{PreviewFindings, listed_line_ids, sort_findings};

impl SqliteStore {
    /// Applies `events` and runs the audit's full recalculation on what
    /// they leave, then rolls everything back: nothing is written.
    pub async fn what_if(
        &self,
        events: &[Event],
        options: IngestOptions,
        as_of: DateTime<Utc>,
        limit: usize,
    ) -> Result<PreviewFindings, StoreError> {
        let mut conn = self.writing().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        // The events' own messages are never appended: the preview rolls back.
        let (ingest, _messages) =
            crate::store::ingest::apply_batch(&mut *tx, events, options).await?;
        let mut findings = super::audit_in(&mut tx, false, as_of).await?;
        sort_findings(&mut findings);
        let ids = listed_line_ids(&findings, limit);
        let line_facts = line_facts(&mut tx, &ids).await?;
        tx.rollback().await?;
        Ok(PreviewFindings {
            findings,
            ingest,
            line_facts,
        })
    }
}

/// Each listed line's SKU and its order's stored status, by line id.
async fn line_facts(
    conn: &mut SqliteConnection,
    ids: &[String],
) -> Result<crate::whatif::LineFacts, StoreError> {
    let ids_json = serde_json::to_string(ids).expect("strings serialize");
    let rows = sqlx::query(
        "SELECT l.id, l.sku, o.backorder_status
         FROM json_each(?) j JOIN order_lines l ON l.id = j.value JOIN orders o ON o.id = l.order_id",
    )
    .bind(ids_json)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let id: String = row.try_get(0)?;
            let status: String = row.try_get(2)?;
            let status = codec::backorder_status(&status, &|| format!("line \"{id}\""))?;
            Ok((id, (row.try_get(1)?, status)))
        })
        .collect()
}
