//! The product availability feed and the purchasing report: pure functions
//! of a [`FeedSource`] (no IO, no clock). One entry per SKU says what its
//! pools hold after allocation and what channels may still sell; the
//! report says what purchasing must order. `previous`/`after` comparisons
//! of an entry are plain equality of two [`FeedEntry`] values.

pub mod purchasing;
pub mod source;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::engine::is_eligible;
use crate::engine::snapshot::Product;
use crate::engine::time_format::date_opt;
pub use source::{FeedSource, LineTally};

/// One SKU's figures (docs/reference/feed.md). Read back from the text a
/// recalculation stored (`store::figures`), hence `Deserialize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeedEntry {
    pub sku: String,
    pub vendor: Option<String>,
    pub allow_backorders: bool,
    /// Stock in eligible warehouses.
    pub on_hand: i64,
    /// Units given to active lines.
    pub allocated: i64,
    /// Units backordered on active lines.
    pub backordered: i64,
    /// Stock promised to nobody, summed over the SKU's pools.
    pub free: i64,
    /// Open purchase-order units in eligible warehouses.
    pub on_order: i64,
    #[serde(with = "date_opt")]
    #[schema(value_type = Option<String>, format = Date)]
    pub next_eta: Option<NaiveDate>,
    /// `free` plus the backorder allowance; `null`: unlimited.
    pub sellable: Option<i64>,
    /// Some warehouse's backordered units exceed its threshold.
    pub over_threshold: bool,
    /// Every warehouse the SKU has stock, purchase orders, a threshold or
    /// orders shipping from, by id.
    pub warehouses: Vec<WarehouseFigures>,
}

/// A SKU's figures in one warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WarehouseFigures {
    pub warehouse: String,
    /// Whether its stock and purchase orders count (allocation rules).
    pub eligible: bool,
    pub on_hand: i64,
    pub on_order: i64,
    #[serde(with = "date_opt")]
    #[schema(value_type = Option<String>, format = Date)]
    pub next_eta: Option<NaiveDate>,
    /// Units backordered on active lines of orders shipping from here.
    pub backordered: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<i64>,
    pub over_threshold: bool,
    /// With `warehouse_based` only: this warehouse's pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free: Option<i64>,
    /// With `warehouse_based` only (`null` inside: unlimited).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schema(value_type = Option<i64>)]
    pub sellable: Option<Option<i64>>,
}

/// A field that is present, `null` included, is `Some`: `sellable: null`
/// (unlimited) is not the absent `sellable` of a feed without
/// `warehouse_based`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

/// What the purchasing report needs of a SKU beyond its feed entry: the
/// active orders waiting for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Waiting {
    /// Active orders with a backordered line of the SKU (once each).
    pub orders: i64,
    /// The oldest order date among those.
    pub oldest: Option<DateTime<Utc>>,
}

/// A SKU's entry with its waiting orders: what a recalculation records
/// per SKU, and what the feed and the report are made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkuFigures {
    pub entry: FeedEntry,
    pub waiting: Waiting,
}

/// Sellercloud's catalog filter: SKUs whose backordered units (in one
/// warehouse, or in all) lie between two bounds, both included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedFilter {
    pub backordered_min: Option<i64>,
    pub backordered_max: Option<i64>,
    pub warehouse: Option<String>,
}

/// A bad query parameter or option, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {problem}")]
pub struct QueryError {
    pub parameter: &'static str,
    pub problem: String,
}

impl FeedFilter {
    /// Refuses negative bounds, a minimum above the maximum and a
    /// warehouse the book does not know.
    pub fn check(
        &self,
        warehouses: &[crate::engine::snapshot::Warehouse],
    ) -> Result<(), QueryError> {
        for (parameter, bound) in [
            ("backordered_min", self.backordered_min),
            ("backordered_max", self.backordered_max),
        ] {
            if let Some(value) = bound.filter(|v| *v < 0) {
                return Err(QueryError {
                    parameter,
                    problem: format!("must not be negative (got {value})"),
                });
            }
        }
        if let (Some(min), Some(max)) = (self.backordered_min, self.backordered_max)
            && min > max
        {
            return Err(QueryError {
                parameter: "backordered_min",
                problem: format!("{min} is above backordered_max {max}"),
            });
        }
        if let Some(w) = &self.warehouse
            && !warehouses.iter().any(|known| &known.id == w)
        {
            return Err(QueryError {
                parameter: "warehouse",
                problem: format!("unknown warehouse \"{w}\""),
            });
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.backordered_min.is_none() && self.backordered_max.is_none()
    }

    pub fn matches(&self, entry: &FeedEntry) -> bool {
        if self.is_empty() {
            return true;
        }
        let backordered = match &self.warehouse {
            None => entry.backordered,
            Some(w) => entry
                .warehouses
                .iter()
                .find(|f| &f.warehouse == w)
                .map_or(0, |f| f.backordered),
        };
        self.backordered_min.is_none_or(|min| backordered >= min)
            && self.backordered_max.is_none_or(|max| backordered <= max)
    }
}

/// One warehouse's rows of a SKU.
#[derive(Debug, Clone, Default)]
pub(crate) struct WarehouseAcc {
    pub on_hand: i64,
    pub on_order: i64,
    pub next_eta: Option<NaiveDate>,
    pub lines: LineTally,
}

/// Everything of one SKU, gathered from the source's rows.
#[derive(Debug, Clone, Default)]
pub(crate) struct SkuAcc<'a> {
    pub product: Option<&'a Product>,
    pub warehouses: BTreeMap<&'a str, WarehouseAcc>,
    /// Lines of orders without a ship-from warehouse.
    pub unshipped: LineTally,
}

impl SkuAcc<'_> {
    /// Every line tally of the SKU, whatever its ship-from.
    pub fn all_lines(&self) -> LineTally {
        let mut all = self.unshipped;
        for w in self.warehouses.values() {
            all.merge(&w.lines);
        }
        all
    }
}

pub(crate) struct Gathered<'a> {
    pub skus: BTreeMap<&'a str, SkuAcc<'a>>,
    eligible: FxHashMap<&'a str, bool>,
}

impl Gathered<'_> {
    pub fn eligible(&self, warehouse: &str) -> bool {
        self.eligible.get(warehouse).copied().unwrap_or(false)
    }
}

pub(crate) fn gather(source: &FeedSource) -> Gathered<'_> {
    let eligible: FxHashMap<&str, bool> = source
        .warehouses
        .iter()
        .map(|w| (w.id.as_str(), is_eligible(w.kind, &source.settings)))
        .collect();
    let mut skus: BTreeMap<&str, SkuAcc> = BTreeMap::new();
    for p in &source.products {
        let acc = skus.entry(&p.sku).or_default();
        acc.product = Some(p);
        for w in p.backorder_thresholds.keys() {
            acc.warehouses.entry(w).or_default();
        }
    }
    for row in &source.inventory {
        let w = skus
            .entry(&row.sku)
            .or_default()
            .warehouses
            .entry(&row.warehouse)
            .or_default();
        w.on_hand += row.on_hand;
    }
    for po in &source.purchase_orders {
        let open = po.open_qty();
        // A received or cancelled PO says nothing about the SKU.
        if open > 0 {
            let w = skus
                .entry(&po.sku)
                .or_default()
                .warehouses
                .entry(&po.warehouse)
                .or_default();
            w.on_order += open;
            if let Some(date) = po.expected_date {
                w.next_eta = Some(w.next_eta.map_or(date, |d| d.min(date)));
            }
        }
    }
    for ((sku, ship_from), tally) in &source.lines {
        let acc = skus.entry(sku).or_default();
        match ship_from {
            Some(w) => acc.warehouses.entry(w).or_default().lines.merge(tally),
            None => acc.unshipped.merge(tally),
        }
    }
    Gathered { skus, eligible }
}

/// A pool: `None` is the SKU's one pool, `Some(w)` its pool in `w` with
/// `warehouse_based`.
type PoolKey<'a> = (&'a str, Option<&'a str>);

#[derive(Debug, Clone, Copy, Default)]
struct PoolFigures {
    size: i64,
    allocated: i64,
}

impl PoolFigures {
    /// Units of active lines beyond the pool's own stock: what they drew
    /// on their replacement SKU's pool.
    fn cover(&self) -> i64 {
        (self.allocated - self.size).max(0)
    }
}

fn pools<'a>(g: &Gathered<'a>, source: &FeedSource) -> BTreeMap<PoolKey<'a>, PoolFigures> {
    let mut pools = BTreeMap::new();
    for (&sku, acc) in &g.skus {
        if source.settings.warehouse_based {
            for (&w, wacc) in &acc.warehouses {
                let stock = if g.eligible(w) {
                    wacc.on_hand.max(0)
                } else {
                    0
                };
                pools.insert(
                    (sku, Some(w)),
                    PoolFigures {
                        size: (stock - wacc.lines.frozen_held).max(0),
                        allocated: wacc.lines.allocated,
                    },
                );
            }
        } else {
            let stock: i64 = acc
                .warehouses
                .iter()
                .filter(|(w, _)| g.eligible(w))
                .map(|(_, w)| w.on_hand)
                .sum();
            let lines = acc.all_lines();
            pools.insert(
                (sku, None),
                PoolFigures {
                    size: (stock.max(0) - lines.frozen_held).max(0),
                    allocated: lines.allocated,
                },
            );
        }
    }
    pools
}

/// What lines of other SKUs drew on each pool as their replacement.
fn draws<'a>(
    g: &Gathered<'a>,
    source: &FeedSource,
    pools: &BTreeMap<PoolKey<'a>, PoolFigures>,
) -> FxHashMap<(&'a str, Option<&'a str>), i64> {
    let mut draws = FxHashMap::default();
    if !source.settings.consider_replacement_sku {
        return draws;
    }
    for (&(sku, w), pool) in pools {
        let Some(replacement) = g.skus[sku]
            .product
            .and_then(|p| p.replacement_sku.as_deref())
            .filter(|r| *r != sku)
        else {
            continue;
        };
        let cover = pool.cover();
        if cover > 0 {
            *draws.entry((replacement, w)).or_insert(0) += cover;
        }
    }
    draws
}

/// A warehouse's backorder allowance: `None` unlimited.
fn allowance(product: Option<&Product>, warehouse: &str, backordered: i64) -> Option<i64> {
    match product {
        Some(p) if !p.allow_backorders => Some(0),
        Some(p) => p
            .backorder_thresholds
            .get(warehouse)
            .map(|&t| (t - backordered).max(0)),
        None => None,
    }
}

/// The feed, one entry per SKU of the source, by SKU (byte order).
pub fn entries(source: &FeedSource) -> Vec<FeedEntry> {
    figures(source).into_iter().map(|f| f.entry).collect()
}

/// [`entries`] with each SKU's waiting orders.
pub fn figures(source: &FeedSource) -> Vec<SkuFigures> {
    let g = gather(source);
    let pools = pools(&g, source);
    let draws = draws(&g, source, &pools);
    let free_of = |key: PoolKey| -> i64 {
        let pool = pools.get(&key).copied().unwrap_or_default();
        let drawn = draws.get(&key).copied().unwrap_or(0);
        (pool.size - pool.allocated.min(pool.size) - drawn).max(0)
    };
    let eligible_ids: Vec<&str> = source
        .warehouses
        .iter()
        .filter(|w| g.eligible(&w.id))
        .map(|w| w.id.as_str())
        .collect();
    let warehouse_based = source.settings.warehouse_based;

    g.skus
        .iter()
        .map(|(&sku, acc)| {
            let backordered_in = |w: &str| {
                acc.warehouses
                    .get(w)
                    .map_or(0, |wacc| wacc.lines.backordered)
            };
            let mut warehouses = Vec::with_capacity(acc.warehouses.len());
            let (mut on_hand, mut on_order, mut next_eta) = (0i64, 0i64, None::<NaiveDate>);
            let mut over_threshold = false;
            for (&w, wacc) in &acc.warehouses {
                let eligible = g.eligible(w);
                if eligible {
                    on_hand += wacc.on_hand;
                    on_order += wacc.on_order;
                    next_eta = match (next_eta, wacc.next_eta) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                let threshold = acc
                    .product
                    .and_then(|p| p.backorder_thresholds.get(w).copied());
                let over = threshold.is_some_and(|t| wacc.lines.backordered > t);
                over_threshold |= over;
                let (allocated, free, sellable) = if warehouse_based {
                    let free = free_of((sku, Some(w)));
                    let own = allowance(acc.product, w, wacc.lines.backordered);
                    (
                        Some(wacc.lines.allocated),
                        Some(free),
                        Some(own.map(|a| free + a)),
                    )
                } else {
                    (None, None, None)
                };
                warehouses.push(WarehouseFigures {
                    warehouse: w.to_owned(),
                    eligible,
                    on_hand: wacc.on_hand,
                    on_order: wacc.on_order,
                    next_eta: wacc.next_eta,
                    backordered: wacc.lines.backordered,
                    threshold,
                    over_threshold: over,
                    allocated,
                    free,
                    sellable,
                });
            }
            let lines = acc.all_lines();
            let free = if warehouse_based {
                acc.warehouses
                    .keys()
                    .map(|&w| free_of((sku, Some(w))))
                    .sum()
            } else {
                free_of((sku, None))
            };
            // The SKU's allowance: the sum over every eligible warehouse,
            // unlimited as soon as one of them is.
            let allowance = eligible_ids.iter().try_fold(0i64, |sum, &w| {
                allowance(acc.product, w, backordered_in(w)).map(|a| sum + a)
            });
            let entry = FeedEntry {
                sku: sku.to_owned(),
                vendor: acc.product.and_then(|p| p.vendor.clone()),
                allow_backorders: acc.product.is_none_or(|p| p.allow_backorders),
                on_hand,
                allocated: lines.allocated,
                backordered: lines.backordered,
                free,
                on_order,
                next_eta,
                sellable: allowance.map(|a| free + a),
                over_threshold,
                warehouses,
            };
            SkuFigures {
                entry,
                waiting: Waiting {
                    orders: lines.waiting_orders,
                    oldest: lines.oldest_waiting,
                },
            }
        })
        .collect()
}

/// The entry of one SKU; `None` when the source knows nothing of it.
pub fn entry(source: &FeedSource, sku: &str) -> Option<FeedEntry> {
    entries(source).into_iter().find(|e| e.sku == sku)
}
