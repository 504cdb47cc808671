//! The availability feed and the purchasing report of the stored state:
//! the store's reads, then the pure functions of [`crate::feed`] off the
//! async threads. The HTTP API and the command line both call these.

use chrono::Utc;

use crate::feed::purchasing::{self, Report};
use crate::feed::{self, FeedEntry, FeedFilter, FeedSource, QueryError};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the feed's computation failed: {0}")]
    Task(String),
}

async fn compute<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, FeedError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| FeedError::Task(e.to_string()))
}

/// Every SKU's entry that `filter` keeps, by SKU.
pub async fn whole<S: Store>(store: &S, filter: FeedFilter) -> Result<Vec<FeedEntry>, FeedError> {
    let source = store.feed_source(Utc::now()).await?;
    filter.check(&source.warehouses)?;
    compute(move || {
        let mut entries = feed::entries(&source);
        entries.retain(|e| filter.matches(e));
        entries
    })
    .await
}

/// One SKU's entry from its pools' stored state (with the SKUs tied to it
/// by replacement); `None` when nothing is stored about it.
pub async fn one<S: Store>(store: &S, sku: &str) -> Result<Option<FeedEntry>, FeedError> {
    let pools = store
        .pool_state(std::slice::from_ref(&sku.to_owned()), true)
        .await?;
    Ok(entry_of(&pools, sku, Utc::now()))
}

/// One SKU's entry from `pools`, its stored state read with the SKUs tied
/// to it by replacement (as [`one`] reads it), for a caller that needs the
/// same state for more (the console's product page).
pub fn entry_of(
    pools: &crate::store::PoolState,
    sku: &str,
    as_of: chrono::DateTime<Utc>,
) -> Option<FeedEntry> {
    let source = FeedSource::from_stored(&pools.snapshot, as_of);
    feed::entry(&source, sku)
}

/// The purchasing report, for every vendor or one.
pub async fn purchasing<S: Store>(store: &S, vendor: Option<String>) -> Result<Report, FeedError> {
    let source = store.feed_source(Utc::now()).await?;
    compute(move || purchasing::report(&source, vendor.as_deref()))
        .await?
        .map_err(FeedError::from)
}
