//! Applying a batch of events (PostgreSQL).
use sqlx::PgConnection;

use crate::events::Event;
use crate::store::{IngestOptions, IngestReport, StoreError};

/// Applies `events` in order in the caller's transaction, which holds the
/// event lock: records each id, applies the effect, marks the SKUs, queues a job.
pub(super) async fn ingest(
    _conn: &mut PgConnection,
    _events: &[Event],
    _options: IngestOptions,
) -> Result<IngestReport, StoreError> {
    unimplemented!("PostgreSQL ingest")
}
