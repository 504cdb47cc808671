//! Hot pools kept in memory, so that recalculating a SKU with tens of
//! thousands of waiting lines costs what changed, not what it holds.
//!
//! Why it cannot go stale: every row a pool is computed from (its lines,
//! their orders' headers and totals, its inventory, purchase orders and
//! product, the settings and warehouses) is watched by triggers in the
//! database (migrations `*_pool_versions.sql`). Any change, whoever makes
//! it (this process, another `serve`, a CLI command, a hand-written
//! UPDATE), bumps the SKU's version in `pool_versions` and logs what
//! changed in `pool_log` (`(sku, version, order id)`, no order id for
//! stock), in the same transaction; settings, warehouses and products bump
//! the global `pool_epoch`. A batch reads the group's versions inside its
//! own transaction before it uses a cached pool: equal, the pool is
//! current; ahead with a complete log, only the orders named (and the
//! stock, if named) are read again; anything else (another epoch, a gap in
//! the log, a version behind) reloads the group. The orders a batch wrote
//! are read again by the next batch whatever the log says, since the
//! caller's transaction may yet roll back.
//!
//! A pool is kept only when it has at least [`MIN_POOL_LINES`] lines, and
//! all kept pools hold at most [`MAX_CACHED_LINES`] lines (least recently
//! used first out).

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rustc_hash::{FxHashMap, FxHashSet};

use super::RecalcDialect;
use crate::engine::snapshot::{Order, Settings, Snapshot};
use crate::recalc::{self, Changes, Compare, GroupState, StoredOrder, StoredValues};
use crate::store::StoreError;

/// Smaller groups are read from the database each time.
pub const MIN_POOL_LINES: usize = 1_000;
/// The most lines all cached pools hold together.
pub const MAX_CACHED_LINES: usize = 500_000;

/// A group's versions: the global epoch and each SKU's (0 when it has
/// none yet), aligned with the group's sorted SKUs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versions {
    pub epoch: i64,
    pub skus: Vec<i64>,
}

/// One row of `pool_log`: SKU `sku` reached `version` because `order_id`
/// (or its stock, when `None`) changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub sku: String,
    pub version: i64,
    pub order_id: Option<String>,
}

/// What to do with a cached pool, from its versions and the database's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Read again these orders, and the stock when `stock`.
    Patch {
        orders: FxHashSet<String>,
        stock: bool,
    },
    Reload,
}

/// The pure guard: `cached` are the versions the pool was read at, `now`
/// the database's, `log` its rows after `cached` for the group's `skus`.
pub fn plan(skus: &[String], cached: &Versions, now: &Versions, log: &[LogEntry]) -> Plan {
    if cached.epoch != now.epoch || cached.skus.len() != skus.len() || now.skus.len() != skus.len()
    {
        return Plan::Reload;
    }
    let mut orders = FxHashSet::default();
    let mut stock = false;
    for (at, sku) in skus.iter().enumerate() {
        let (from, to) = (cached.skus[at], now.skus[at]);
        if to < from {
            return Plan::Reload;
        }
        let mut seen: Vec<i64> = log
            .iter()
            .filter(|e| e.sku == *sku && e.version > from && e.version <= to)
            .map(|e| e.version)
            .collect();
        seen.sort_unstable();
        seen.dedup();
        // Each version in between must say what it changed.
        if seen.len() as i64 != to - from {
            return Plan::Reload;
        }
    }
    for entry in log {
        match &entry.order_id {
            Some(id) => {
                orders.insert(id.clone());
            }
            None => stock = true,
        }
    }
    Plan::Patch { orders, stock }
}

/// A group's stored state as the engine reads it, with what it was read at.
struct CachedPool {
    skus: Vec<String>,
    versions: Versions,
    /// Orders by id, each holding the group's lines in position order.
    snapshot: Snapshot,
    stored: Vec<StoredValues>,
    /// Orders read again next time whatever the log says: those whose
    /// stored totals had drifted from their lines.
    reload: FxHashSet<String>,
    /// Orders the last batch wrote, set in the pool as written: read again
    /// next time unless that batch's commit was confirmed
    /// ([`PoolCache::committed`]), since the caller's transaction may
    /// have rolled back.
    written: FxHashSet<String>,
    /// The versions the last batch's own write-back left, until its commit
    /// is confirmed: then the pool is current at them.
    after_write: Option<Versions>,
    lines: usize,
    used: u64,
}

impl CachedPool {
    fn new(skus: Vec<String>, versions: Versions, group: GroupState) -> Self {
        let mut orders = group.orders;
        orders.sort_unstable_by(|a, b| a.order.id.cmp(&b.order.id));
        let (orders, stored) = split(orders);
        let lines = orders.iter().map(|o| o.lines.len()).sum();
        CachedPool {
            skus,
            versions,
            snapshot: Snapshot {
                as_of: None,
                settings: group.settings,
                warehouses: group.warehouses,
                products: group.products,
                inventory: group.inventory,
                purchase_orders: group.purchase_orders,
                orders,
            },
            stored,
            reload: FxHashSet::default(),
            written: FxHashSet::default(),
            after_write: None,
            lines,
            used: 0,
        }
    }

    /// Sets the stored values of the pool to what `changes` writes back,
    /// so that after a confirmed commit nothing of it is read again.
    fn apply(&mut self, changes: &Changes) {
        for line in &changes.lines {
            let Some(at) = self.order_at(&line.order_id) else {
                continue;
            };
            let order = &mut self.snapshot.orders[at];
            if let Some(k) = order.lines.iter().position(|l| l.id == line.line_id) {
                order.lines[k].backorder_qty = line.new_backorder_qty;
                self.stored[at].etas[k] = line.new_eta;
            }
        }
        for order in &changes.orders {
            if let Some(at) = self.order_at(&order.order_id) {
                self.stored[at].counts = order.new_counts;
                self.stored[at].backorder_qty = order.new_backorder_qty;
            }
        }
    }

    fn order_at(&self, id: &str) -> Option<usize> {
        self.snapshot
            .orders
            .binary_search_by(|o| o.id.as_str().cmp(id))
            .ok()
    }

    /// Replaces the orders `ids` by `fresh` (those of them that still have
    /// lines in the group), keeping the orders sorted by id.
    fn replace_orders(&mut self, ids: &FxHashSet<String>, fresh: Vec<StoredOrder>) {
        let mut kept_orders = Vec::with_capacity(self.snapshot.orders.len() + fresh.len());
        let mut kept_stored = Vec::with_capacity(kept_orders.capacity());
        let old = std::mem::take(&mut self.snapshot.orders)
            .into_iter()
            .zip(std::mem::take(&mut self.stored))
            .filter(|(o, _)| !ids.contains(&o.id));
        let mut fresh = fresh;
        fresh.sort_unstable_by(|a, b| a.order.id.cmp(&b.order.id));
        let (fresh_orders, fresh_stored) = split(fresh);
        let mut fresh = fresh_orders.into_iter().zip(fresh_stored).peekable();
        for (order, stored) in old {
            while let Some((next, _)) = fresh.peek()
                && next.id < order.id
            {
                let (o, s) = fresh.next().expect("peeked");
                kept_orders.push(o);
                kept_stored.push(s);
            }
            kept_orders.push(order);
            kept_stored.push(stored);
        }
        for (o, s) in fresh {
            kept_orders.push(o);
            kept_stored.push(s);
        }
        self.lines = kept_orders.iter().map(|o| o.lines.len()).sum();
        self.snapshot.orders = kept_orders;
        self.stored = kept_stored;
    }
}

fn split(orders: Vec<StoredOrder>) -> (Vec<Order>, Vec<StoredValues>) {
    orders
        .into_iter()
        .map(|o| {
            (
                o.order,
                StoredValues {
                    etas: o.etas,
                    counts: o.counts,
                    backorder_qty: o.backorder_qty,
                },
            )
        })
        .unzip()
}

#[derive(Default)]
struct Pools {
    pools: Vec<CachedPool>,
    clock: u64,
}

/// The cache of one process. Each pool is taken out while a batch uses
/// it, so two batches never share one.
#[derive(Default)]
pub struct PoolCache {
    pools: Mutex<Pools>,
}

impl PoolCache {
    fn take(&self, skus: &[String]) -> Option<CachedPool> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let at = pools.pools.iter().position(|p| p.skus == skus)?;
        Some(pools.pools.swap_remove(at))
    }

    fn put(&self, mut pool: CachedPool) {
        if pool.lines < MIN_POOL_LINES || pool.lines > MAX_CACHED_LINES {
            return;
        }
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.clock += 1;
        pool.used = pools.clock;
        pools.pools.push(pool);
        while pools.pools.iter().map(|p| p.lines).sum::<usize>() > MAX_CACHED_LINES {
            let oldest = (0..pools.pools.len())
                .min_by_key(|&i| pools.pools[i].used)
                .expect("over the bound, so not empty");
            pools.pools.swap_remove(oldest);
        }
    }

    /// A copy of the group's cached pool for a read path
    /// (store/pool_reads.rs): its orders and stock, the versions it is
    /// current at, and the orders to read again whatever the log says
    /// (those a batch wrote whose commit is not confirmed, and those whose
    /// totals drifted). `None` when the group is not cached, or a batch
    /// has it in hand.
    pub(crate) fn copy_for_read(
        &self,
        skus: &[String],
    ) -> Option<(Snapshot, Versions, FxHashSet<String>)> {
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let pool = pools.pools.iter().find(|p| p.skus == skus)?;
        let again = pool.written.union(&pool.reload).cloned().collect();
        Some((pool.snapshot.clone(), pool.versions.clone(), again))
    }

    /// Forgets every pool (an import replaced the state).
    pub fn clear(&self) {
        self.pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pools
            .clear();
    }

    /// The changes of the group `skus`, from the cached pool where its
    /// versions allow, else from the database (and then cached when large).
    pub(super) async fn changes<D: RecalcDialect>(
        &self,
        db: &mut D,
        skus: &[String],
        expected_lines: usize,
        settings: Settings,
        causes: FxHashMap<String, String>,
        as_of: DateTime<Utc>,
    ) -> Result<Changes, StoreError> {
        let cached = self.take(skus).map(|mut pool| {
            // Its last write-back's commit was never confirmed.
            if pool.after_write.take().is_some() {
                tracing::debug!(skus = ?skus, "pool cache: last write-back unconfirmed");
            }
            pool
        });
        if cached.is_none() && expected_lines < MIN_POOL_LINES {
            let group = db
                .load_group(skus, expected_lines, settings, causes)
                .await?;
            db.prune_pool_log(skus, None).await?;
            return Ok(recalc::changes(group, as_of));
        }
        let versions = db.pool_versions(skus).await?;
        let mut pool = match cached {
            Some(pool) => refreshed(db, pool, &versions).await?,
            None => None,
        };
        if pool.is_none() {
            tracing::debug!(skus = ?skus, "pool cache: reloaded");
            let group = db
                .load_group(skus, expected_lines, settings, causes.clone())
                .await?;
            pool = Some(CachedPool::new(skus.to_vec(), versions.clone(), group));
        }
        let mut pool = pool.expect("loaded above");
        // What the pool is now read at is all a later batch needs.
        db.prune_pool_log(skus, Some(&versions)).await?;
        pool.snapshot.settings = settings;
        pool.versions = versions;
        let changes = recalc::changes_of(
            &pool.snapshot,
            &pool.stored,
            &causes,
            as_of,
            Compare::default(),
        );
        pool.apply(&changes);
        pool.written = changes
            .lines
            .iter()
            .map(|l| l.order_id.clone())
            .chain(changes.orders.iter().map(|o| o.order_id.clone()))
            .collect();
        pool.reload = changes.drifted.iter().map(|d| d.0.clone()).collect();
        self.put(pool);
        Ok(changes)
    }

    /// The batch of the group `skus` wrote its changes back and the group's
    /// versions are now `after` (read in the same transaction).
    pub(super) fn written(&self, skus: &[String], after: Versions) {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pool) = pools.pools.iter_mut().find(|p| p.skus == skus) {
            pool.after_write = Some(after);
        }
    }

    /// The transaction of the batch of `skus` committed: its pool is
    /// current at the versions its write-back left.
    pub fn committed(&self, skus: &[String]) {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pool) = pools.pools.iter_mut().find(|p| p.skus == skus)
            && let Some(after) = pool.after_write.take()
        {
            pool.versions = after;
            pool.written.clear();
        }
    }
}

/// `pool` brought up to `now` by reading again what changed, or `None`
/// when it must be reloaded whole.
async fn refreshed<D: RecalcDialect>(
    db: &mut D,
    mut pool: CachedPool,
    now: &Versions,
) -> Result<Option<CachedPool>, StoreError> {
    let log = if pool.versions == *now {
        Vec::new()
    } else if pool.versions.epoch != now.epoch {
        return Ok(None);
    } else {
        db.pool_log(&pool.skus, &pool.versions).await?
    };
    let Plan::Patch { mut orders, stock } = plan(&pool.skus, &pool.versions, now, &log) else {
        return Ok(None);
    };
    orders.extend(std::mem::take(&mut pool.reload));
    orders.extend(std::mem::take(&mut pool.written));
    // Past a quarter of the pool, one pass over the group is cheaper.
    if orders.len() * 4 > pool.snapshot.orders.len() {
        return Ok(None);
    }
    tracing::debug!(skus = ?pool.skus, orders = orders.len(), stock, "pool cache: patched");
    if !orders.is_empty() {
        let ids: Vec<String> = orders.iter().cloned().collect();
        let fresh = db.load_orders(&pool.skus, &ids).await?;
        pool.replace_orders(&orders, fresh);
    }
    if stock {
        let (products, inventory, purchase_orders) = db.load_stock(&pool.skus).await?;
        pool.snapshot.products = products;
        pool.snapshot.inventory = inventory;
        pool.snapshot.purchase_orders = purchase_orders;
    }
    Ok(Some(pool))
}

/// [`RecalcDialect::log_written`] for a database whose list of written
/// order ids is `ids` (a subquery with the column `id`, reading the first
/// parameter, bound to `list`): the statements are the same on both.
pub async fn log_written<DB, T>(
    conn: &mut DB::Connection,
    ids: &str,
    list: T,
) -> Result<(), StoreError>
where
    DB: sqlx::Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    for<'q> DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> T: sqlx::Encode<'q, DB> + sqlx::Type<DB> + Clone + Send + 'q,
{
    let touched = format!(
        "SELECT DISTINCT l.sku, l.order_id FROM {ids} w JOIN order_lines l ON l.order_id = w.id"
    );
    let statements = [
        // Versions above each SKU's present one, in order id order.
        format!(
            "INSERT INTO pool_log (sku, version, order_id)
             SELECT t.sku,
                    COALESCE(v.version, 0)
                        + ROW_NUMBER() OVER (PARTITION BY t.sku ORDER BY t.order_id),
                    t.order_id
             FROM ({touched}) t LEFT JOIN pool_versions v ON v.sku = t.sku"
        ),
        format!(
            "INSERT INTO pool_versions (sku, version)
             SELECT t.sku, COUNT(*) FROM ({touched}) t WHERE true GROUP BY t.sku
             ON CONFLICT (sku) DO UPDATE SET version = pool_versions.version + excluded.version"
        ),
    ];
    for statement in statements {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .bind(list.clone())
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("DELETE FROM pool_log_paused")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Stops the triggers' log for the rest of this transaction (an import
/// rewrites every row; the log would be as large as the book).
pub async fn pause_log<DB>(conn: &mut DB::Connection) -> Result<(), StoreError>
where
    DB: sqlx::Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    sqlx::query("INSERT INTO pool_log_paused (id) VALUES (1) ON CONFLICT DO NOTHING")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Ends [`pause_log`]: every cached pool, in any process, is out of date.
pub async fn resume_log<DB>(conn: &mut DB::Connection) -> Result<(), StoreError>
where
    DB: sqlx::Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    sqlx::query("DELETE FROM pool_log")
        .execute(&mut *conn)
        .await?;
    end_pause::<DB>(conn).await
}

/// Ends [`pause_log`] keeping the log: the epoch moves, so every cached
/// pool reloads whatever the log says.
pub async fn end_pause<DB>(conn: &mut DB::Connection) -> Result<(), StoreError>
where
    DB: sqlx::Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    for statement in [
        "DELETE FROM pool_log_paused",
        "UPDATE pool_epoch SET epoch = epoch + 1",
    ] {
        sqlx::query(statement).execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skus(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn entry(sku: &str, version: i64, order: Option<&str>) -> LogEntry {
        LogEntry {
            sku: sku.into(),
            version,
            order_id: order.map(str::to_owned),
        }
    }

    fn versions(epoch: i64, skus: &[i64]) -> Versions {
        Versions {
            epoch,
            skus: skus.to_vec(),
        }
    }

    #[test]
    fn equal_versions_read_nothing_again() {
        let group = skus(&["A", "B"]);
        let v = versions(1, &[4, 7]);
        assert_eq!(
            plan(&group, &v, &v, &[]),
            Plan::Patch {
                orders: FxHashSet::default(),
                stock: false
            }
        );
    }

    #[test]
    fn a_complete_log_names_exactly_the_orders_and_stock_to_read() {
        let group = skus(&["A", "B"]);
        let log = [
            entry("A", 5, Some("SO-1")),
            entry("A", 6, None),
            entry("B", 8, Some("SO-2")),
        ];
        let Plan::Patch { orders, stock } =
            plan(&group, &versions(1, &[4, 7]), &versions(1, &[6, 8]), &log)
        else {
            panic!("a complete log patches");
        };
        assert!(stock);
        assert_eq!(
            orders,
            ["SO-1", "SO-2"].map(str::to_owned).into_iter().collect()
        );
    }

    #[test]
    fn a_gap_in_the_log_reloads() {
        // Version 6 of A is missing (pruned by another process).
        let group = skus(&["A"]);
        let log = [entry("A", 5, Some("SO-1")), entry("A", 7, Some("SO-3"))];
        assert_eq!(
            plan(&group, &versions(1, &[4]), &versions(1, &[7]), &log),
            Plan::Reload
        );
    }

    #[test]
    fn another_epoch_or_a_version_behind_reloads() {
        let group = skus(&["A"]);
        let log = [entry("A", 5, Some("SO-1"))];
        assert_eq!(
            plan(&group, &versions(1, &[4]), &versions(2, &[5]), &log),
            Plan::Reload,
            "settings, warehouses or products changed"
        );
        assert_eq!(
            plan(&group, &versions(1, &[5]), &versions(1, &[4]), &[]),
            Plan::Reload,
            "the database is behind what was cached"
        );
    }

    fn stored(id: &str, lines: usize) -> StoredOrder {
        let order: Order = serde_json::from_value(serde_json::json!({
            "id": id, "order_date": "2026-11-01T00:00:00Z", "payment_status": "paid",
            "status": "in_process", "lines": (0..lines).map(|i| serde_json::json!({
                "id": format!("{id}-{i}"), "sku": "A", "qty": 1, "backorder_qty": 0
            })).collect::<Vec<_>>()
        }))
        .unwrap();
        StoredOrder {
            etas: vec![None; lines],
            order,
            counts: crate::engine::LineCounts::default(),
            backorder_qty: 0,
        }
    }

    #[test]
    fn orders_read_again_replace_theirs_and_stay_sorted() {
        let group = GroupState {
            orders: vec![stored("A", 1), stored("C", 1), stored("E", 2)],
            ..GroupState::default()
        };
        let mut pool = CachedPool::new(skus(&["A"]), Versions::default(), group);
        assert_eq!(pool.lines, 4);
        // C changed (now 3 lines), D is new, E left the pool.
        let ids: FxHashSet<String> = ["C", "D", "E"].map(str::to_owned).into_iter().collect();
        pool.replace_orders(&ids, vec![stored("D", 1), stored("C", 3)]);
        let order_ids: Vec<&str> = pool.snapshot.orders.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(order_ids, ["A", "C", "D"]);
        assert_eq!(pool.snapshot.orders[1].lines.len(), 3);
        assert_eq!(pool.stored[1].etas.len(), 3, "stored values stay aligned");
        assert_eq!(pool.lines, 5);
    }

    #[test]
    fn log_rows_past_the_versions_read_do_not_fill_a_gap() {
        // Versions 5 and 6 were read as the target 6, but the log holds 5
        // and 7 (7 committed after the versions were read): 6 is missing.
        let group = skus(&["A"]);
        let log = [entry("A", 5, Some("SO-1")), entry("A", 7, Some("SO-2"))];
        assert_eq!(
            plan(&group, &versions(1, &[4]), &versions(1, &[6]), &log),
            Plan::Reload
        );
    }
}
