//! Import and export of the whole state (PostgreSQL).
use sqlx::PgConnection;

use crate::engine::Snapshot;
use crate::store::{ImportSummary, StoreError};

/// Replaces the stored state with `snapshot` and marks every SKU dirty, in
/// the caller's transaction (which then queues the job).
pub(super) async fn import(
    _conn: &mut PgConnection,
    _snapshot: &Snapshot,
) -> Result<ImportSummary, StoreError> {
    unimplemented!("PostgreSQL import")
}

/// The stored state as a snapshot, `as_of` left for the caller.
pub(super) async fn export(_conn: &mut PgConnection) -> Result<Snapshot, StoreError> {
    unimplemented!("PostgreSQL export")
}
