//! The availability feed from the entries recalculations stored, where
//! they are still current, instead of computing every SKU from its lines.
//!
//! Each write-back stores the entry of every SKU of its group
//! (`availability_figures`, through `store::figures`) and stamps the SKU
//! (`feed_stamps`) with its pool version and the feed epoch as they are
//! after the write. A SKU's entry depends only on rows that move one of
//! the two when they change (its lines and their orders' headers, its
//! stock and purchase orders: its version; settings, warehouses, products
//! and an import: the epoch; migrations `*_pool_versions.sql` and
//! `*_feed_stamps.sql`), and on the time only through `max_days_back`. So
//! while both are what the stamp says and `max_days_back` is off, the
//! stored entry is exactly what the stored state gives; with replacement,
//! only if every SKU tied to it is current too. Every other SKU of the
//! book is computed from the stored state as before, in the same read
//! transaction, and the two are merged by SKU. Backends without pool
//! versions (PostgreSQL) stamp nothing and compute everything.

use super::StoreError;
use crate::feed::{FeedEntry, FeedFilter, FeedSource, SkuFigures, Waiting};

/// From this many SKUs to compute on, the whole book is computed in one
/// pass instead (its two scans cost less than so many SKU lookups).
pub const MOST_STALE: usize = 5_000;

/// The feed's parts read in one transaction: the SKUs whose stored figures
/// are current (those a [`Prefilter`] may leave out omitted), and the
/// source of the others (its settings and warehouses are the book's).
#[derive(Debug, Clone, Default)]
pub struct FeedParts {
    pub stored: Vec<SkuFigures>,
    pub source: FeedSource,
}

/// What the stored totals of a SKU must lie within for a filter to keep
/// it: a warehouse's backordered units are part of the SKU's (never
/// negative), so with a warehouse only the minimum tells.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prefilter {
    pub min: Option<i64>,
    pub max: Option<i64>,
}

impl Prefilter {
    pub fn of(filter: &FeedFilter) -> Prefilter {
        Prefilter {
            min: filter.backordered_min,
            max: filter
                .backordered_max
                .filter(|_| filter.warehouse.is_none()),
        }
    }
}

/// A SKU of the book as its stamp says.
pub(in crate::store) enum Stamp {
    /// Not current: computed.
    Stale,
    /// Current, and outside the prefilter: left out.
    Skipped,
    /// Current: `(entry, waiting orders, oldest waiting)` as stored.
    Stored(String, i64, Option<String>),
}

pub(in crate::store) struct BookSku {
    pub sku: String,
    pub stamp: Stamp,
}

/// The stored figures of `rows`' current SKUs, and the SKUs to compute:
/// the others, with (`edges`: replacement is on) every SKU tied to one of
/// them.
pub(in crate::store) fn split(
    rows: Vec<BookSku>,
    edges: Option<&[(String, String)]>,
) -> Result<(Vec<SkuFigures>, Vec<String>), StoreError> {
    let mut stale: Vec<String> = Vec::new();
    let mut current = Vec::with_capacity(rows.len());
    for row in rows {
        match row.stamp {
            Stamp::Stale => stale.push(row.sku),
            stamp => current.push((row.sku, stamp)),
        }
    }
    if let Some(edges) = edges
        && !stale.is_empty()
    {
        // A SKU tied to a stale one is computed with it, left out or not.
        let tied: rustc_hash::FxHashSet<String> =
            crate::recalc::replacement_closure(stale.iter().map(String::as_str), edges)
                .into_iter()
                .collect();
        let (moved, kept): (Vec<_>, Vec<_>) =
            current.into_iter().partition(|(sku, _)| tied.contains(sku));
        current = kept;
        stale.extend(moved.into_iter().map(|(sku, _)| sku));
        stale.sort_unstable();
    }
    let stored = current
        .into_iter()
        .filter_map(|(sku, stamp)| match stamp {
            Stamp::Stored(entry, orders, oldest) => Some((sku, (entry, orders, oldest))),
            Stamp::Stale | Stamp::Skipped => None,
        })
        .map(|(sku, (entry, orders, oldest))| {
            Ok(SkuFigures {
                entry: parse_entry(&sku, &entry)?,
                waiting: Waiting {
                    orders,
                    oldest: match oldest {
                        Some(text) => Some(super::codec::timestamp(&text, &|| {
                            format!("the feed stamp of sku {sku:?}")
                        })?),
                        None => None,
                    },
                },
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok((stored, stale))
}

/// [`split`] for a search that needs backordered units (a minimum of at
/// least 1): `in_range`, the current stamps within the prefilter, and
/// `stale`, every SKU with lines whose stamp is not current. A SKU without
/// lines has no backordered unit, so no other SKU can be listed; with
/// replacement, every SKU tied to a stale one is computed with it (read or
/// not), as [`split`] does.
pub(in crate::store) fn split_ranged(
    in_range: Vec<BookSku>,
    mut stale: Vec<String>,
    edges: Option<&[(String, String)]>,
) -> Result<(Vec<SkuFigures>, Vec<String>), StoreError> {
    if let Some(edges) = edges
        && !stale.is_empty()
    {
        stale = crate::recalc::replacement_closure(stale.iter().map(String::as_str), edges);
    }
    stale.sort_unstable();
    stale.dedup();
    // Read in the index's order; the feed is by SKU.
    let mut in_range = in_range;
    in_range.sort_unstable_by(|a, b| a.sku.cmp(&b.sku));
    let computed: rustc_hash::FxHashSet<&str> = stale.iter().map(String::as_str).collect();
    let rows: Vec<BookSku> = in_range
        .into_iter()
        .filter(|row| !computed.contains(row.sku.as_str()))
        .collect();
    let (stored, none) = split(rows, None)?;
    debug_assert!(none.is_empty(), "only current stamps are passed");
    Ok((stored, stale))
}

/// Whether `prefilter` keeps only SKUs with backordered units, so a search
/// can start from the stamps within it ([`split_ranged`]).
pub fn needs_backordered(prefilter: Prefilter) -> bool {
    prefilter.min.is_some_and(|min| min >= 1)
}

/// A stored entry read back.
pub(in crate::store) fn parse_entry(sku: &str, text: &str) -> Result<FeedEntry, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        record: format!("the stored availability figures of sku {sku:?}"),
        problem: e.to_string(),
    })
}

/// The figures of the whole book, by SKU: `stored` and those computed
/// from `computed` (disjoint SKUs).
pub fn merge(mut stored: Vec<SkuFigures>, computed: Vec<SkuFigures>) -> Vec<SkuFigures> {
    if computed.is_empty() {
        return stored;
    }
    stored.extend(computed);
    stored.sort_by(|a, b| a.entry.sku.cmp(&b.entry.sku));
    stored
}
