//! Recalculation transactions (PostgreSQL).
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::store::{BatchReport, StoreError};

pub(super) async fn recalculate_dirty(
    _pool: &PgPool,
    _max_skus: usize,
    _as_of: DateTime<Utc>,
) -> Result<Option<BatchReport>, StoreError> {
    unimplemented!()
}

pub(super) async fn recalculate_bulk(
    _pool: &PgPool,
    _max_skus: usize,
    _as_of: DateTime<Utc>,
    _stop: &std::sync::atomic::AtomicBool,
    _on_batch: impl FnMut(&BatchReport) + Send,
) -> Result<(), StoreError> {
    unimplemented!()
}
