//! The availability feed and the purchasing report of the stored state:
//! the store's reads, then the pure functions of [`crate::feed`] off the
//! async threads. The HTTP API and the command line both call these.

use chrono::Utc;

use crate::feed::purchasing::{self, Report};
use crate::feed::{self, FeedEntry, FeedFilter, FeedSource, QueryError, SkuFigures};
use crate::store::feed_stamps::{self, FeedParts, Prefilter};
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

/// Every SKU's figures, by SKU: the stored ones that are current, the
/// others computed from the stored state (store/feed_stamps.rs); with the
/// book's warehouses.
/// `prefilter`: SKUs whose stored figures it rules out may be left out.
async fn figures<S: Store>(store: &S, prefilter: Prefilter) -> Result<Figures, FeedError> {
    let FeedParts { stored, source } = store.feed_parts(Utc::now(), prefilter).await?;
    let (settings, warehouses) = (source.settings, source.warehouses.clone());
    let computed = if source.lines.is_empty()
        && source.products.is_empty()
        && source.inventory.is_empty()
        && source.purchase_orders.is_empty()
    {
        Vec::new()
    } else {
        compute(move || feed::figures(&source)).await?
    };
    Ok(Figures {
        settings,
        warehouses,
        skus: feed_stamps::merge(stored, computed),
    })
}

struct Figures {
    settings: crate::engine::snapshot::Settings,
    warehouses: Vec<crate::engine::snapshot::Warehouse>,
    skus: Vec<SkuFigures>,
}

/// Every SKU's entry that `filter` keeps, by SKU.
pub async fn whole<S: Store>(store: &S, filter: FeedFilter) -> Result<Vec<FeedEntry>, FeedError> {
    let figures = figures(store, Prefilter::of(&filter)).await?;
    filter.check(&figures.warehouses)?;
    Ok(figures
        .skus
        .into_iter()
        .map(|f| f.entry)
        .filter(|e| filter.matches(e))
        .collect())
}

/// One SKU's entry: stored when current, else from its pools' stored
/// state (with the SKUs tied to it by replacement); `None` when nothing is
/// stored about it.
pub async fn one<S: Store>(store: &S, sku: &str) -> Result<Option<FeedEntry>, FeedError> {
    if let Some(entry) = store.stored_entry(sku).await? {
        return Ok(Some(entry));
    }
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
    // Only SKUs with backordered units can be short; a vendor is checked
    // against every product, so then every SKU is read.
    let prefilter = match vendor {
        None => Prefilter {
            min: Some(1),
            max: None,
        },
        Some(_) => Prefilter::default(),
    };
    let figures = figures(store, prefilter).await?;
    purchasing::report_of(
        &figures.skus,
        figures.settings.warehouse_based,
        vendor.as_deref(),
    )
    .map_err(FeedError::from)
}
