//! Read-only queries for the HTTP API and the metrics (PostgreSQL).
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::store::StoreError;
use crate::store::views::{BackorderQuery, BackorderedOrder, OrderView, PoolState, Readiness};

pub(super) async fn order_view(
    _conn: &mut PgConnection,
    _id: &str,
) -> Result<Option<OrderView>, StoreError> {
    unimplemented!()
}

pub(super) async fn pool_state(
    _conn: &mut PgConnection,
    _skus: &[String],
    _with_replacements: bool,
) -> Result<PoolState, StoreError> {
    unimplemented!()
}

pub(super) async fn backorders(
    _conn: &mut PgConnection,
    _query: &BackorderQuery,
) -> Result<Vec<BackorderedOrder>, StoreError> {
    unimplemented!()
}

pub(super) async fn readiness(_pool: &PgPool) -> Result<Readiness, StoreError> {
    unimplemented!()
}

pub(super) async fn oldest_dirty_mark(
    _conn: &mut PgConnection,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    unimplemented!()
}

pub(super) async fn received_at(
    _conn: &mut PgConnection,
    _ids: &[String],
) -> Result<Vec<DateTime<Utc>>, StoreError> {
    unimplemented!()
}
