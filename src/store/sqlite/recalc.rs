//! One recalculation transaction: claim dirty SKUs, load their group, run
//! the engine through [`crate::recalc`], write back what changed, clear the
//! marks. `BEGIN IMMEDIATE` takes the write lock first, so no event can
//! slip in between what was read and what is written.

use chrono::{DateTime, Utc};
use hashbrown::HashTable;
use rustc_hash::FxHashMap;
use sqlx::SqliteConnection;

use super::super::group::{HeaderWithTotals, LinesByOrder};
use super::direct;
use super::writeback::write_changes;
use crate::engine::LineCounts;
use crate::engine::snapshot::Settings;
use crate::engine::time_format::format_timestamp;
use crate::recalc::{self, Compare, GroupState, LineChange, OrderChange, OrderTotals};
use crate::store::assemble;
use crate::store::{BatchReport, StoreError};

/// At most this many lines per transaction, unless one SKU has more.
const LINES_PER_BATCH: usize = 50_000;

/// Every order's header and stored totals, read once by a bulk
/// recalculation instead of looked up batch by batch, indexed by id; and
/// the orders' changes, held back until the end of the bulk transaction so
/// that each order is written once, in key order, with its net change.
///
/// The cache also sums each order's recalculated lines over the batches,
/// so that at the end an order whose lines were all seen is compared with
/// its stored totals: drift (totals that do not match the lines) is found
/// and repaired even when no line of the order changed.
pub(super) struct HeaderCache {
    entries: Vec<Cached>,
    by_id: HashTable<u32>,
    /// Distinct causes, which `Cached::cause` points into.
    causes: Vec<String>,
    /// Every SKU is in this run (an audit): an order's summed lines are
    /// all of its lines, whatever its stored counts say.
    every_sku: bool,
    /// An audit without repair: batches write nothing.
    pub(super) dry_run: bool,
    /// When set, every batch's line changes are kept here: for an audit's
    /// report, and for the messages made at the end of the run.
    pub(super) line_changes: Option<Vec<LineChange>>,
}

struct Cached {
    /// The header and its current total and counts.
    current: HeaderWithTotals,
    /// The stored total and counts, once a batch has changed them.
    stored: Option<(i64, LineCounts)>,
    cause: u32,
    /// The order's lines seen so far, recalculated values.
    summed: (LineCounts, i64),
}

fn id_hash(id: &str) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(id)
}

impl HeaderCache {
    pub(super) fn new(headers: Vec<HeaderWithTotals>) -> Self {
        let mut by_id = HashTable::with_capacity(headers.len());
        for (i, entry) in headers.iter().enumerate() {
            by_id.insert_unique(id_hash(&entry.0.id), i as u32, |&j| {
                id_hash(&headers[j as usize].0.id)
            });
        }
        let entries = headers
            .into_iter()
            .map(|current| Cached {
                current,
                stored: None,
                cause: 0,
                summed: (LineCounts::default(), 0),
            })
            .collect();
        HeaderCache {
            entries,
            by_id,
            causes: Vec::new(),
            every_sku: false,
            dry_run: false,
            line_changes: Some(Vec::new()),
        }
    }

    fn cause_index(&mut self, cause: String) -> u32 {
        if self.causes.last() != Some(&cause) {
            self.causes.push(cause);
        }
        self.causes.len() as u32 - 1
    }

    /// Adds a batch's recalculated totals of its orders' lines.
    fn sum(&mut self, totals: Vec<OrderTotals>) {
        for t in totals {
            let Some(i) = self.index(&t.order_id) else {
                continue;
            };
            if self.entries[i].stored.is_none() {
                // The cause a drift repair will name, unless a change comes.
                let cause = self.cause_index(t.cause);
                self.entries[i].cause = cause;
            }
            let summed = &mut self.entries[i].summed;
            summed.0.open += t.counts.open;
            summed.0.backordered += t.counts.backordered;
            summed.0.whole += t.counts.whole;
            summed.1 = summed.1.saturating_add(t.backorder_qty);
        }
    }

    fn index(&self, id: &str) -> Option<usize> {
        self.by_id
            .find(id_hash(id), |&j| {
                self.entries[j as usize].current.0.id == id
            })
            .map(|&i| i as usize)
    }

    fn get(&self, id: &str) -> Option<&HeaderWithTotals> {
        self.index(id).map(|i| &self.entries[i].current)
    }

    /// Keeps `change` for the end, merged with earlier ones of its order:
    /// the first stored values, the last new ones.
    fn hold(&mut self, change: OrderChange) {
        let Some(i) = self.index(&change.order_id) else {
            return;
        };
        let cause = self.cause_index(change.cause);
        let entry = &mut self.entries[i];
        entry
            .stored
            .get_or_insert((change.old_backorder_qty, change.old_counts));
        entry.current.1 = change.new_backorder_qty;
        entry.current.2 = change.new_counts;
        entry.cause = cause;
    }

    /// The orders' net changes, by id; orders back where they started drop
    /// out. An order whose lines were all summed (all those with qty > 0,
    /// by its stored count) gets the totals of its lines.
    pub(super) fn take_order_changes(&mut self) -> Vec<OrderChange> {
        let mut changes: Vec<OrderChange> = Vec::new();
        for entry in &mut self.entries {
            let (summed_counts, summed_qty) = entry.summed;
            let whole = self.every_sku || summed_counts.open == entry.current.2.open;
            if whole && (summed_counts, summed_qty) != (entry.current.2, entry.current.1) {
                entry
                    .stored
                    .get_or_insert((entry.current.1, entry.current.2));
                entry.current.1 = summed_qty;
                entry.current.2 = summed_counts;
            }
            let Some((old_qty, old_counts)) = entry.stored.take() else {
                continue;
            };
            let (order, new_qty, new_counts) = &entry.current;
            if (old_qty, old_counts) == (*new_qty, *new_counts) {
                continue;
            }
            changes.push(OrderChange {
                order_id: order.id.clone(),
                old_status: old_counts.status(),
                new_status: new_counts.status(),
                old_backorder_qty: old_qty,
                new_backorder_qty: *new_qty,
                old_counts,
                new_counts: *new_counts,
                cause: self
                    .causes
                    .get(entry.cause as usize)
                    .cloned()
                    .unwrap_or_default(),
            });
        }
        changes.sort_unstable_by(|a, b| a.order_id.cmp(&b.order_id));
        changes
    }
}

pub(super) async fn recalculate_dirty(
    conn: &mut SqliteConnection,
    max_skus: usize,
    as_of: DateTime<Utc>,
    mut cache: Option<&mut HeaderCache>,
) -> Result<Option<BatchReport>, StoreError> {
    // Hot SKUs have long queues: a batch also stops at a line budget (but
    // takes at least one SKU), which bounds memory and lock time.
    let (claimed, claimed_lines) = direct::claim(conn, max_skus, LINES_PER_BATCH).await?;
    if claimed.is_empty() {
        return Ok(None);
    }
    let settings = super::load_settings(conn).await?;
    let mut causes: FxHashMap<String, String> = claimed.iter().cloned().collect();
    let claimed_skus = claimed.iter().map(|c| c.0.clone()).collect();
    let skus = assemble::group_skus::<sqlx::Sqlite>(conn, &settings, claimed_skus).await?;
    for sku in &skus {
        causes
            .entry(sku.clone())
            .or_insert_with(|| "replacement group".to_owned());
    }
    let sku_list = serde_json::to_string(&skus).expect("skus serialize");

    let group = load_group(
        conn,
        &sku_list,
        claimed_lines,
        settings,
        causes,
        cache.as_deref(),
    )
    .await?;
    let compare = Compare {
        whole_orders: false,
        totals: cache.is_some(),
    };
    let mut changes = recalc::changes_with(group, as_of, compare);
    let orders_changed = changes.orders.len();
    let mut dry_run = false;
    if let Some(cache) = cache.as_mut() {
        for change in std::mem::take(&mut changes.orders) {
            cache.hold(change);
        }
        cache.sum(std::mem::take(&mut changes.totals));
        if let Some(kept) = cache.line_changes.as_mut() {
            kept.extend(changes.lines.iter().cloned());
        }
        dry_run = cache.dry_run;
    }
    let mut messages = Vec::new();
    if !dry_run {
        write_changes(conn, &changes, &format_timestamp(&as_of)).await?;
        // A bulk run's orders change at its end: its messages are made there.
        if cache.is_none() {
            messages =
                crate::store::messages::for_write_back(&mut *conn, &changes.lines, &changes.orders)
                    .await?;
        }
    }
    // Every SKU of the group was loaded under the write lock, so the marks
    // of the replacement group are done too: each SKU is loaded once per
    // run, which the order sums of a bulk run count on.
    sqlx::query("DELETE FROM dirty_skus WHERE sku IN (SELECT value FROM json_each(?))")
        .bind(&sku_list)
        .execute(&mut *conn)
        .await?;
    crate::store::messages::append(&mut *conn, messages, Utc::now()).await?;

    let mut cause_list: Vec<String> = claimed.into_iter().map(|c| c.1).collect();
    cause_list.sort_unstable();
    cause_list.dedup();
    Ok(Some(BatchReport {
        skus,
        causes: cause_list,
        lines_seen: changes.lines_seen,
        lines_changed: changes.lines.len(),
        orders_changed,
    }))
}

/// The stored state of a group of SKUs (`sku_list`, a JSON array).
pub(super) async fn load_group(
    conn: &mut SqliteConnection,
    sku_list: &str,
    expected_lines: usize,
    settings: Settings,
    causes: FxHashMap<String, String>,
    cache: Option<&HeaderCache>,
) -> Result<GroupState, StoreError> {
    let warehouses = super::load_warehouses(conn).await?;
    let (products, inventory, purchase_orders) = direct::group_stock(conn, sku_list).await?;

    // The group's lines come as ranges of the SKU-clustered table.
    let lines = LinesByOrder::new(direct::group_lines(conn, sku_list, expected_lines).await?);
    let sorted_ids = lines.order_ids();
    let headers: Vec<HeaderWithTotals> = match cache {
        Some(cache) => sorted_ids
            .iter()
            .filter_map(|id| cache.get(id).cloned())
            .collect(),
        None => {
            let list = serde_json::to_string(&sorted_ids).expect("ids serialize");
            let mut headers = direct::headers(conn, &list).await?;
            headers.sort_unstable_by(|a, b| a.0.id.cmp(&b.0.id));
            headers
        }
    };
    drop(sorted_ids);
    let orders = lines.into_orders(headers)?;

    Ok(GroupState {
        settings,
        warehouses,
        products,
        inventory,
        purchase_orders,
        orders,
        causes,
    })
}
