//! The what-if preview on PostgreSQL: the batch applied and every SKU
//! recalculated inside one transaction that is rolled back (src/whatif.rs
//! says why that is exactly what a real change writes). It holds every
//! event lock and lock stripe meanwhile, as a repairing audit does.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use super::{PgStore, audit, recalc};
use crate::events::Event;
use crate::store::{IngestOptions, StoreError, codec};
use crate::whatif::{PreviewFindings, listed_line_ids, sort_findings};

const ATTEMPTS: u32 = 20;

impl PgStore {
    /// Applies `events` and runs the audit's full recalculation on what
    /// they leave, then rolls everything back: nothing is written.
    pub async fn what_if(
        &self,
        events: &[Event],
        options: IngestOptions,
        as_of: DateTime<Utc>,
        limit: usize,
    ) -> Result<PreviewFindings, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut tx = self.pool.begin().await?;
            match preview_in(&mut tx, events, options, as_of, limit).await {
                Ok(preview) => {
                    tx.rollback().await?;
                    return Ok(preview);
                }
                Err(e) if recalc::is_transient(&e) && attempt < ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "what-if meets another writer; trying again");
                }
                Err(e) => return Err(e),
            }
        }
    }
}

async fn preview_in(
    conn: &mut PgConnection,
    events: &[Event],
    options: IngestOptions,
    as_of: DateTime<Utc>,
    limit: usize,
) -> Result<PreviewFindings, StoreError> {
    audit::lock_everything(&mut *conn).await?;
    // The events' own messages are never appended: the preview rolls back.
    let (ingest, _messages) =
        crate::store::ingest::apply_batch(&mut *conn, events, options).await?;
    let mut findings = audit::audit_in(&mut *conn, false, as_of).await?;
    sort_findings(&mut findings);
    let ids = listed_line_ids(&findings, limit);
    let rows = sqlx::query(
        "SELECT l.id, l.sku, o.backorder_status
         FROM order_lines l JOIN orders o ON o.id = l.order_id WHERE l.id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let line_facts = rows
        .iter()
        .map(|row| {
            let id: String = row.try_get(0)?;
            let status: String = row.try_get(2)?;
            let status = codec::backorder_status(&status, &|| format!("line \"{id}\""))?;
            Ok((id, (row.try_get(1)?, status)))
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(PreviewFindings {
        findings,
        ingest,
        line_facts,
    })
}
