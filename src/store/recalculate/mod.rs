//! The recalculation sequence, written once for every database: claim
//! dirty SKUs, close them under replacement, load their group, run the
//! engine ([`crate::recalc`]), write back what changed, clear the marks.
//!
//! Each database supplies a [`RecalcDialect`]: its statements and its real
//! differences (SQLite steps its large reads and writes through rusqlite;
//! PostgreSQL claims only SKUs whose lock stripe it takes without waiting,
//! and writes lines only where they still hold what was read). Nothing
//! here begins or commits: the caller hands [`batch`] a connection inside
//! its own transaction, so a writer task can run it beside other work.
//!
//! The full run ([`full_run`]) is the same batches with a tally of the
//! orders they saw, so that orders whose lines span several batches are
//! still compared with their stored totals at the end. (The audit reads
//! the whole book in one pass instead: `store/audit_scan.rs`.)

pub mod full_run;
pub mod pool_cache;
pub mod portable;
mod run;

use std::future::Future;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;

use crate::engine::snapshot::Settings;
use crate::engine::time_format::format_timestamp;
use crate::recalc::{
    self, Changes, Compare, GroupState, LineChange, OrderChange, replacement_closure,
};
use crate::store::figures::{self, FiguresLog};
use crate::store::ingest::IngestBackend;
use crate::store::messages::{self, MessageLog};
use crate::store::{BatchReport, StoreError};

pub use full_run::FullRun;
pub use pool_cache::PoolCache;
pub use run::{FULL_RUN_LINES, RecalcStore, recalculate_bulk, recalculate_dirty};

/// At most this many lines per drain transaction, unless one SKU has more.
pub const LINES_PER_BATCH: usize = 50_000;

/// A group's products, inventory rows and purchase orders.
pub type Stock = (
    Vec<crate::engine::snapshot::Product>,
    Vec<crate::engine::snapshot::InventoryRow>,
    Vec<crate::engine::snapshot::PurchaseOrder>,
);

/// A dirty SKU a batch took: why, the mark it read (cleared only if no
/// newer event raised it), and how many lines it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub sku: String,
    pub cause: String,
    pub seq: i64,
    pub lines: usize,
}

/// Which dirty SKUs one batch takes, in key order: up to the line budget
/// (at least one SKU, however long its queue), and a SKU large enough for
/// the pool cache alone, so that its group is the same batch after batch.
#[derive(Debug, Default)]
pub struct ClaimBudget {
    limit: usize,
    lines: usize,
    taken: usize,
    closed: bool,
}

impl ClaimBudget {
    pub fn new(line_budget: usize) -> Self {
        ClaimBudget {
            limit: line_budget,
            ..ClaimBudget::default()
        }
    }

    /// Whether the next SKU, with `lines` lines, is taken; once one is
    /// refused, none after it is.
    pub fn admit(&mut self, lines: usize) -> bool {
        let large = lines >= pool_cache::MIN_POOL_LINES;
        if self.closed || (self.taken > 0 && (large || self.lines + lines > self.limit)) {
            self.closed = true;
            return false;
        }
        self.taken += 1;
        self.lines += lines;
        self.closed = large;
        true
    }
}

/// What a write-back wrote: the lines still as the engine read them (on
/// PostgreSQL an event may have changed one meanwhile; it is left to the
/// recalculation that event asked for) and the orders whose totals moved.
/// The batch's messages are made from these.
#[derive(Debug, Default)]
pub struct Written {
    pub lines: Vec<LineChange>,
    pub orders: Vec<OrderChange>,
}

/// What one database does for [`batch`], inside the caller's transaction;
/// its message statements ([`MessageLog`]) let the batch append the
/// messages of what it wrote before the caller commits.
pub trait RecalcDialect: MessageLog + FiguresLog + IngestBackend + Send + Sized {
    /// The next dirty SKUs in key order: up to `max_skus`, no more than
    /// `line_budget` lines (but at least one SKU), each one this
    /// transaction may recalculate now.
    /// `after`: only SKUs after this one (a full run's single pass).
    fn claim(
        &mut self,
        max_skus: usize,
        line_budget: usize,
        after: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Mark>, StoreError>> + Send;
    /// The batch's tick, drawn before it reads anything: higher than every
    /// tick a waiter read before this batch began (`Store::recalc_ticket`).
    fn begin_tick(&mut self) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// Records that the batch of `tick` recalculated `skus`.
    fn record_tick(
        &mut self,
        skus: &[String],
        tick: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Makes `skus` this transaction's to recalculate (a worker holding one
    /// of them makes it `None`) and returns their dirty marks, if any.
    fn take(
        &mut self,
        skus: &[String],
    ) -> impl Future<Output = Result<Option<Vec<Mark>>, StoreError>> + Send;
    fn settings(&mut self) -> impl Future<Output = Result<Settings, StoreError>> + Send;
    /// `(sku, replacement_sku)` of every product that names one.
    fn replacement_edges(
        &mut self,
    ) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;
    /// The stored state of the group `skus` (sorted).
    fn load_group(
        &mut self,
        skus: &[String],
        expected_lines: usize,
        settings: Settings,
        causes: FxHashMap<String, String>,
    ) -> impl Future<Output = Result<GroupState, StoreError>> + Send;
    /// Writes lines, orders and their history: what was written, for the
    /// batch's messages.
    fn write_changes(
        &mut self,
        changes: &Changes,
        at: &str,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;
    /// Deletes the marks as read: one an event raised since stays.
    fn clear_marks(
        &mut self,
        marks: &[Mark],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Sets the totals of `orders` `(id, cause)` from their stored lines,
    /// under their row locks: those that changed (what events use).
    fn refresh_orders(
        &mut self,
        orders: &[(String, String)],
        at: &str,
    ) -> impl Future<Output = Result<Vec<OrderChange>, StoreError>> + Send {
        crate::store::ingest::refresh_orders(self, orders, at)
    }
    /// The orders `ids` (header, stored totals) with their lines of the
    /// group `skus`; an order without such lines is left out.
    fn load_orders(
        &mut self,
        skus: &[String],
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<crate::recalc::StoredOrder>, StoreError>> + Send;
    /// The products, inventory rows and purchase orders of `skus`.
    fn load_stock(
        &mut self,
        skus: &[String],
    ) -> impl Future<Output = Result<Stock, StoreError>> + Send;
    /// Deletes the log rows of `skus` up to `upto` (all of them when `None`):
    /// what a later batch may still need stays.
    fn prune_pool_log(
        &mut self,
        skus: &[String],
        upto: Option<&pool_cache::Versions>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A full run's batch rewrites much of its groups: instead of a log row
    /// per written row, the log is paused for this transaction and
    /// [`RecalcDialect::end_pool_log_pause`] bumps the epoch once.
    fn pause_pool_log(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Ends the pause: every cached pool, in any process, is out of date.
    fn end_pool_log_pause(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Ends the pause after a drain's write-back of the orders `order_ids`
    /// (sorted, distinct), logging what the triggers would have: for each
    /// SKU with lines in them, one version per such order. One statement
    /// for the whole write-back instead of a trigger run per written row.
    fn log_written(
        &mut self,
        order_ids: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The cheap check of a cached pool (see [`pool_cache`]).
    fn pool_versions(
        &mut self,
        skus: &[String],
    ) -> impl Future<Output = Result<pool_cache::Versions, StoreError>> + Send;
    /// The log of what changed in `skus` after the versions `since`.
    fn pool_log(
        &mut self,
        skus: &[String],
        since: &pool_cache::Versions,
    ) -> impl Future<Output = Result<Vec<pool_cache::LogEntry>, StoreError>> + Send;
}

/// How a batch ended.
#[derive(Debug)]
pub enum Attempt {
    /// `None`: nothing was left to claim.
    Done(Option<BatchReport>),
    /// Part of the replacement group is another worker's: roll back, try
    /// again later.
    Busy,
}

/// One recalculation batch in the caller's transaction: claim, close under
/// replacement, load (from `cache` when it holds the group and its
/// versions say it is current), compute, write back, clear the marks. A
/// `run` tallies what the batch saw for the end of a full run.
pub async fn batch<D: RecalcDialect>(
    db: &mut D,
    max_skus: usize,
    line_budget: usize,
    as_of: DateTime<Utc>,
    cache: Option<&PoolCache>,
    mut run: Option<&mut FullRun>,
) -> Result<Attempt, StoreError> {
    let tick = db.begin_tick().await?;
    let after = run.as_deref().and_then(|r| r.cursor.clone());
    let mut marks = db.claim(max_skus, line_budget, after.as_deref()).await?;
    if marks.is_empty() {
        return Ok(Attempt::Done(None));
    }
    if let Some(run) = run.as_deref_mut() {
        // Claimed in key order: the next batch starts after the last.
        run.cursor = marks.iter().map(|m| m.sku.clone()).max();
    }
    let settings = db.settings().await?;
    let mut skus: Vec<String> = marks.iter().map(|m| m.sku.clone()).collect();
    if settings.consider_replacement_sku {
        let edges = db.replacement_edges().await?;
        let group = replacement_closure(skus.iter().map(String::as_str), &edges);
        let extra: Vec<String> = group
            .iter()
            .filter(|sku| !skus.contains(sku))
            .cloned()
            .collect();
        if !extra.is_empty() {
            // Their marks, read now, are cleared too: what is loaded next
            // includes every event up to them.
            let Some(extra_marks) = db.take(&extra).await? else {
                return Ok(Attempt::Busy);
            };
            marks.extend(extra_marks);
        }
        skus = group;
    }
    skus.sort_unstable();
    skus.dedup();

    let mut causes: FxHashMap<String, String> = marks
        .iter()
        .map(|m| (m.sku.clone(), m.cause.clone()))
        .collect();
    for sku in &skus {
        causes
            .entry(sku.clone())
            .or_insert_with(|| "replacement group".to_owned());
    }
    let expected_lines = marks.iter().map(|m| m.lines).sum();
    let compare = Compare {
        whole_orders: false,
        totals: run.is_some(),
    };
    let changes = match cache {
        // A full run reads every pool anyway and tallies orders: the cache
        // serves the drain's repeated recalculations of hot pools.
        Some(cache) if run.is_none() => {
            cache
                .changes(db, &skus, expected_lines, settings, causes, as_of)
                .await?
        }
        _ => {
            let group = db
                .load_group(&skus, expected_lines, settings, causes)
                .await?;
            // No cache of this process holds the group now; another
            // process's finds a gap and reloads.
            db.prune_pool_log(&skus, None).await?;
            recalc::changes_with(group, as_of, compare)
        }
    };
    let lines_seen = changes.lines_seen;
    let at = format_timestamp(&as_of);
    let full_run = run.is_some();
    // A drain beside a cache logs its write-back itself (see log_written).
    let wrote = !changes.lines.is_empty() || !changes.orders.is_empty();
    let own_log = cache.filter(|_| !full_run && wrote);
    if let Some(run) = run {
        run.tally(&changes);
    }
    if full_run || own_log.is_some() {
        db.pause_pool_log().await?;
    }
    // A full run's batch writes its orders too, as a drain's does: each
    // bounded transaction commits lines, their orders and their messages
    // together, so a run that stops half-way leaves nothing unannounced.
    let written = db.write_changes(&changes, &at).await?;
    if full_run {
        db.end_pool_log_pause().await?;
    }
    if let Some(cache) = own_log {
        db.log_written(&written_orders(&written)).await?;
        cache.written(&skus, db.pool_versions(&skus).await?);
    }
    db.clear_marks(&marks).await?;
    db.record_tick(&skus, tick).await?;
    let (lines_changed, orders_changed) = (written.lines.len(), written.orders.len());
    append_messages(db, &written).await?;
    let appending = std::time::Instant::now();
    figures::append(db, &changes.feed).await?;
    let feed_time = changes.feed_time + appending.elapsed();

    let mut cause_list: Vec<String> = marks.into_iter().map(|m| m.cause).collect();
    cause_list.sort_unstable();
    cause_list.dedup();
    Ok(Attempt::Done(Some(BatchReport {
        skus,
        causes: cause_list,
        lines_seen,
        lines_changed,
        orders_changed,
        feed_time,
    })))
}

/// The messages of what a write-back wrote, appended last (on PostgreSQL
/// the log's lock is held from here to the commit).
pub async fn append_messages<D: RecalcDialect>(
    db: &mut D,
    written: &Written,
) -> Result<(), StoreError> {
    let pending = messages::for_write_back(db, &written.lines, &written.orders).await?;
    messages::append(db, pending, Utc::now()).await?;
    Ok(())
}

/// The orders a write-back touched, sorted, each once.
fn written_orders(written: &Written) -> Vec<String> {
    let mut ids: Vec<String> = written
        .lines
        .iter()
        .map(|l| l.order_id.clone())
        .chain(written.orders.iter().map(|o| o.order_id.clone()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_stops_at_its_line_budget_and_takes_a_hot_sku_alone() {
        let mut budget = ClaimBudget::new(1_500);
        assert!(budget.admit(600));
        assert!(budget.admit(600));
        assert!(!budget.admit(600), "over the budget");
        assert!(!budget.admit(1), "nothing after a refusal");

        let mut budget = ClaimBudget::new(50_000);
        assert!(budget.admit(10));
        assert!(
            !budget.admit(22_000),
            "the hot SKU waits for a batch of its own"
        );
        let mut budget = ClaimBudget::new(5_000);
        assert!(budget.admit(22_000), "at least one SKU");
        assert!(!budget.admit(10), "and it alone");
    }
}
