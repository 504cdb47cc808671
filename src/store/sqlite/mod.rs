//! The embedded default: one SQLite file, created on first use, in WAL mode.

use futures_util::TryStreamExt;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Sqlite};

mod book_scan;
mod checkpoint;
mod direct;
mod feed_lines;
mod feed_stamps;
mod import;
mod ingest;
mod messages;
mod queries;
mod recalc;
mod what_if;
mod writeback;

use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

use super::codec::{HeaderRow, from_json_text};
use super::recalculate;
use super::writer::{WriteConnection, WriteDialect, Writer};
use super::{
    BatchReport, ImportStep, ImportSummary, IngestOptions, IngestReport, QueueStatus, Store,
    StoreError, WriterLimits, assemble,
};
use crate::engine::snapshot::*;
use crate::engine::time_format::format_timestamp;
use crate::events::Event;

pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection, for every write of a `serve` process: its writer's
    /// groups and leases and the queue's bookkeeping take turns on it (a
    /// fair queue) instead of racing for SQLite's write lock, where a
    /// waiter polls and can starve past the busy timeout.
    write_pool: SqlitePool,
    /// This process's writer, once `serve` started it: every write then
    /// goes through it (store/writer.rs).
    writer: std::sync::OnceLock<Writer<Sqlite>>,
    /// Hot pools kept between recalculations (store/recalculate/pool_cache.rs).
    pools: recalculate::PoolCache,
    /// Large pools' stored state kept for the read paths (store/pool_reads.rs).
    pool_reads: super::pool_reads::PoolReads,
}

/// The longest wait for a turn on the write connection.
const WRITE_TURN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// SQLite in the writer's loop.
struct Dialect;

impl WriteDialect for Dialect {
    type Db = Sqlite;
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    // The write lock is held from BEGIN: no conflict can roll a group back.
    const ATTEMPTS: u32 = 1;
    const SHARE_WAITING_JOB: bool = true;
    async fn lock_group(
        _conn: &mut SqliteConnection,
        _batches: &[&[Event]],
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

/// How much of the database file a read connection maps (1 GiB).
pub(super) const READ_MMAP_BYTES: &str = "1073741824";

impl recalculate::RecalcStore for SqliteStore {
    type Db = Sqlite;

    type Conn = WriteConnection<Sqlite>;
    // The write lock first: nothing slips in between what a batch reads
    // and what it writes.
    const BEGIN: &'static str = "BEGIN IMMEDIATE";

    /// A turn on the writer's connection, so a recalculation and this
    /// process's ingest take turns instead of racing for the lock.
    async fn connection(&self) -> Result<WriteConnection<Sqlite>, StoreError> {
        self.writing().await
    }

    fn is_transient(&self, _: &StoreError) -> bool {
        false
    }

    fn pool_cache(&self) -> Option<&recalculate::PoolCache> {
        Some(&self.pools)
    }

    /// Small transactions only while events wait for the connection: each
    /// of a full run's transactions rewrites the pages of the orders it
    /// touches, which lie all over the table, so with nobody waiting ten
    /// times larger ones write far fewer pages in all.
    fn full_run_lines(&self) -> usize {
        match self.writer.get() {
            Some(writer) if writer.has_waiting() => recalculate::FULL_RUN_LINES,
            _ => recalculate::LINES_PER_BATCH,
        }
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://PATH`,
    /// `sqlite:PATH` or a plain path), with the default options.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        match super::locate(url)? {
            super::Location::Sqlite(connect) => {
                Self::connect(connect, &super::OpenOptions::default()).await
            }
            super::Location::Postgres(_) => Err(StoreError::Url(super::UrlError::InvalidSqlite {
                shown: super::redact_url(url),
                problem: "it names a PostgreSQL database".to_owned(),
            })),
        }
    }

    /// Opens (creating if missing) the database `connect` names.
    ///
    /// The read pool maps up to [`READ_MMAP_BYTES`] of the file.
    pub async fn connect(
        connect: SqliteConnectOptions,
        options: &super::OpenOptions,
    ) -> Result<Self, StoreError> {
        // WAL, NORMAL sync and a busy timeout on every pooled connection: apalis
        // sets its own PRAGMAs on one connection only (shared/notes/apalis-1.0.md).
        let connect = connect
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(options.busy_timeout)
            .foreign_keys(true)
            // A recalculation reads each order's page once per batch that
            // touches it: a cache of 16 MiB per connection keeps the hot
            // part of the book in memory instead of re-reading it from the OS.
            .pragma("cache_size", "-16384")
            // The pool-version triggers give every UPDATE of a line or an
            // order a statement journal; in a temporary file that was a
            // pwrite per page per statement (a third of a full run's end).
            .pragma("temp_store", "memory");
        // Reads map the file rather than copy each page out of the OS cache
        // (pread): a page of the console's order or product page reads every
        // order of a hot SKU's pool, scattered over the orders table, and the
        // copies were a fifth of its time. Address space only, not memory.
        let read = connect.clone().pragma("mmap_size", READ_MMAP_BYTES);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(read)
            .await?;
        let write_pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            // A turn can wait behind a long recalculation (a bulk run).
            .acquire_timeout(WRITE_TURN_TIMEOUT.max(options.busy_timeout))
            .connect_lazy_with(checkpoint::writer_options(connect));
        Ok(SqliteStore {
            pool,
            write_pool,
            writer: std::sync::OnceLock::new(),
            pools: recalculate::PoolCache::default(),
            pool_reads: super::pool_reads::PoolReads::default(),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Starts this process's writer: from now on every write of this store
    /// goes through it.
    pub fn start_writer(&self, limits: WriterLimits) {
        self.writer.get_or_init(|| {
            checkpoint::start(self.pool.clone());
            Writer::start::<Dialect>(self.write_pool.clone(), limits)
        });
    }

    /// The pool for writes: the one-connection pool the writer takes turns
    /// on once it runs (the queue's bookkeeping uses it too), else the pool.
    pub fn write_pool(&self) -> &SqlitePool {
        if self.writer.get().is_some() {
            &self.write_pool
        } else {
            &self.pool
        }
    }

    pub fn writer_alive(&self) -> Option<bool> {
        self.writer.get().map(Writer::is_alive)
    }

    /// A recalculation job of this process begins (store/writer.rs).
    pub fn job_started(&self) {
        if let Some(writer) = self.writer.get() {
            writer.job_started();
        }
    }

    /// The connection to write on: the writer's when it runs.
    async fn writing(&self) -> Result<WriteConnection<Sqlite>, StoreError> {
        WriteConnection::get(self.writer.get(), &self.pool).await
    }
}

impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("migrations/sqlite").run(&self.pool).await?;
        // The queue's tables, tracked in their own migrations table so that
        // neither set of migrations sees the other's as unknown.
        let mut queue = apalis_sqlite::SqliteStorage::migrations();
        queue.dangerous_set_table_name("_apalis_migrations");
        queue.run(&self.pool).await?;
        Ok(())
    }

    async fn import(
        &self,
        snapshot: &Snapshot,
        notify: bool,
        progress: &(dyn Fn(ImportStep) + Sync),
    ) -> Result<ImportSummary, StoreError> {
        let cause = super::messages::import_cause(notify);
        let mut conn = self.writing().await?;
        // Off around the transaction (SQLite ignores the pragma inside
        // one): see store/sqlite/import.rs for why the rows need no check.
        sqlx::query("PRAGMA foreign_keys = OFF")
            .execute(&mut *conn)
            .await?;
        let imported = import_in(&mut conn, snapshot, cause, progress).await;
        // After the rollback of a failed import too: the connection goes
        // back to its pool as it came.
        let restored = sqlx::query("PRAGMA foreign_keys = ON")
            .execute(&mut *conn)
            .await;
        if restored.is_err()
            && let WriteConnection::Pooled(mut pooled) = conn
        {
            pooled.close_on_drop();
        }
        let marked = imported?;
        restored?;
        self.pools.clear();
        self.pool_reads.clear();
        Ok(ImportSummary {
            orders: snapshot.orders.len(),
            lines: snapshot.orders.iter().map(|o| o.lines.len()).sum(),
            skus_marked_dirty: marked as usize,
        })
    }

    async fn export(&self) -> Result<Snapshot, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let settings = load_settings(&mut conn).await?;
        let warehouses = load_warehouses(&mut conn).await?;

        let products = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM products ORDER BY position",
            assemble::PRODUCT_COLUMNS
        )))
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(assemble::product)
        .collect::<Result<_, _>>()?;
        let inventory =
            sqlx::query_as("SELECT sku, warehouse, on_hand FROM inventory ORDER BY sku, warehouse")
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .map(assemble::inventory_row)
                .collect::<Result<_, _>>()?;

        let mut purchase_orders = Vec::new();
        let mut rows = sqlx::query_as::<_, assemble::PurchaseOrderRow>(
            "SELECT id, sku, warehouse, qty_ordered, qty_received, expected_date FROM purchase_orders ORDER BY position",
        )
        .fetch(&mut *conn);
        while let Some(row) = rows.try_next().await? {
            purchase_orders.push(assemble::purchase_order(row)?);
        }
        drop(rows);

        let mut orders: Vec<Order> = Vec::new();
        let mut rows = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
            "SELECT {ORDER_HEADER_JSON} FROM orders o ORDER BY o.position"
        )))
        .fetch(&mut *conn);
        while let Some(text) = rows.try_next().await? {
            orders.push(from_json_text::<HeaderRow>(&text, "an order")?.into_order()?);
        }
        drop(rows);

        // Lines come in the orders' order, so one merge pass attaches them.
        assemble::attach_lines(
            &mut orders,
            sqlx::query_as(
                "SELECT l.order_id, l.id, l.sku, l.qty, l.backorder_qty
                 FROM orders o CROSS JOIN order_lines l ON l.order_id = o.id
                 ORDER BY o.position, l.position",
            )
            .fetch(&mut *conn),
        )
        .await?;
        let customers = super::customers::sqlite::read(&mut conn).await?;
        super::customers::attach(&mut orders, customers);

        Ok(Snapshot {
            as_of: None,
            settings,
            warehouses,
            products,
            inventory,
            purchase_orders,
            orders,
        })
    }

    async fn ingest(
        &self,
        events: &[Event],
        options: IngestOptions,
    ) -> Result<IngestReport, StoreError> {
        if let Some(writer) = self.writer.get() {
            return writer.ingest(events, options).await;
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let report = ingest::ingest(&mut tx, events, options).await?;
        tx.commit().await?;
        Ok(report)
    }

    async fn recalculate_dirty(
        &self,
        max_skus: usize,
        as_of: DateTime<Utc>,
    ) -> Result<Option<BatchReport>, StoreError> {
        recalculate::recalculate_dirty(self, max_skus, as_of).await
    }

    async fn recalculate_bulk(
        &self,
        max_skus: usize,
        as_of: DateTime<Utc>,
        stop: &std::sync::atomic::AtomicBool,
        on_batch: impl FnMut(&BatchReport) + Send,
    ) -> Result<(), StoreError> {
        recalculate::recalculate_bulk(self, max_skus, as_of, stop, on_batch).await
    }

    async fn audit(
        &self,
        repair: bool,
        as_of: DateTime<Utc>,
    ) -> Result<crate::audit::AuditReport, StoreError> {
        let mut conn = self.writing().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let findings = audit_in(&mut tx, repair, as_of).await?;
        if repair {
            // The repair's messages go last, as in every write-back.
            let written = recalculate::Written {
                lines: findings.lines.clone(),
                orders: findings.orders.clone(),
            };
            recalculate::append_messages(&mut *tx, &written).await?;
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(crate::audit::AuditReport::new(findings, as_of, repair))
    }

    async fn dirty_count(&self, skus: Option<&[String]>) -> Result<i64, StoreError> {
        let count =
            match skus {
                None => {
                    sqlx::query_scalar(
                        "SELECT (SELECT COUNT(*) FROM dirty_skus) + (SELECT COUNT(*) FROM set_aside_skus s
                         WHERE NOT EXISTS (SELECT 1 FROM dirty_skus d WHERE d.sku = s.sku))",
                    )
                    .fetch_one(&self.pool)
                    .await?
                }
                // Set-aside SKUs (store/set_aside.rs) still wait.
                Some(skus) => sqlx::query_scalar(
                    "SELECT (SELECT COUNT(*) FROM dirty_skus WHERE sku IN (SELECT value FROM json_each(?1)))
                          + (SELECT COUNT(*) FROM set_aside_skus s WHERE sku IN (SELECT value FROM json_each(?1))
                             AND NOT EXISTS (SELECT 1 FROM dirty_skus d WHERE d.sku = s.sku))",
                )
                .bind(serde_json::to_string(skus).expect("skus serialize"))
                .fetch_one(&self.pool)
                .await?,
            };
        Ok(count)
    }

    async fn recalc_ticket(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT tick FROM recalc_clock WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn waiting_count(&self, skus: Option<&[String]>, ticket: i64) -> Result<i64, StoreError> {
        let count = match skus {
            None => sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT sku FROM dirty_skus UNION SELECT sku FROM set_aside_skus) w
                         WHERE NOT EXISTS (SELECT 1 FROM recalc_ticks t WHERE t.sku = w.sku AND t.tick > ?1)",
            )
            .bind(ticket)
            .fetch_one(&self.pool)
            .await?,
            Some(skus) => sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT DISTINCT value AS sku FROM json_each(?1)) w
                 WHERE (EXISTS (SELECT 1 FROM dirty_skus d WHERE d.sku = w.sku)
                        OR EXISTS (SELECT 1 FROM set_aside_skus s WHERE s.sku = w.sku))
                   AND NOT EXISTS (SELECT 1 FROM recalc_ticks t WHERE t.sku = w.sku AND t.tick > ?2)",
            )
            .bind(serde_json::to_string(skus).expect("skus serialize"))
            .bind(ticket)
            .fetch_one(&self.pool)
            .await?,
        };
        Ok(count)
    }

    async fn publish_options(&self, options: IngestOptions) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO service_options (id, recalculate_on_status_change, defer_new_orders)
             VALUES (1, ?, ?)
             ON CONFLICT (id) DO UPDATE SET
                 recalculate_on_status_change = excluded.recalculate_on_status_change,
                 defer_new_orders = excluded.defer_new_orders",
        )
        .bind(options.recalculate_on_status_change)
        .bind(options.defer_new_orders)
        .execute(&mut *self.writing().await?)
        .await?;
        Ok(())
    }

    async fn enqueue(&self, job: &crate::queue::RecalcJob) -> Result<(), StoreError> {
        let mut conn = self.writing().await?;
        ingest::push_job(&mut conn, job).await
    }

    async fn queue_status(&self) -> Result<QueueStatus, StoreError> {
        let (pending, running, failed): (i64, i64, i64) = sqlx::query_as(
            "SELECT
                COALESCE(SUM(status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts)), 0),
                COALESCE(SUM(status IN ('Queued', 'Running')), 0),
                COALESCE(SUM(status = 'Killed' OR (status = 'Failed' AND attempts >= max_attempts)), 0)
             FROM Jobs WHERE job_type = ?",
        )
        .bind(crate::queue::QUEUE)
        .fetch_one(&self.pool)
        .await?;
        Ok(QueueStatus {
            pending,
            running,
            failed,
            dirty_skus: self.dirty_count(None).await?,
            set_aside_skus: crate::store::set_aside::sqlite::count(&self.pool).await?,
        })
    }

    async fn order_view(&self, id: &str) -> Result<Option<super::OrderView>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let view = queries::order_view(&mut tx, id).await?;
        tx.commit().await?;
        Ok(view)
    }

    async fn feed_source(
        &self,
        as_of: DateTime<Utc>,
    ) -> Result<crate::feed::FeedSource, StoreError> {
        let mut tx = self.pool.begin().await?;
        let settings = load_settings(&mut tx).await?;
        let warehouses = load_warehouses(&mut tx).await?;
        let cutoff = super::feed_rows::cutoff_key(&settings, as_of);
        let tallied = feed_lines::tally_rows(&mut tx, cutoff).await?;
        let source = super::feed_rows::feed_source::<Sqlite>(
            &mut tx,
            settings,
            warehouses,
            "rtrim(o.order_date, 'Z')",
            as_of,
            Some(tallied),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(source)
    }

    async fn feed_parts(
        &self,
        as_of: DateTime<Utc>,
        prefilter: super::feed_stamps::Prefilter,
    ) -> Result<super::feed_stamps::FeedParts, StoreError> {
        let mut tx = self.pool.begin().await?;
        let parts = feed_stamps::feed_parts(&mut tx, as_of, prefilter).await?;
        tx.commit().await?;
        Ok(parts)
    }

    async fn stored_entry(&self, sku: &str) -> Result<Option<crate::feed::FeedEntry>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let entry = feed_stamps::stored_entry(&mut tx, sku).await?;
        tx.commit().await?;
        Ok(entry)
    }

    async fn pool_state(
        &self,
        skus: &[String],
        with_replacements: bool,
    ) -> Result<super::PoolState, StoreError> {
        let mut tx = self.pool.begin().await?;
        let state = queries::pool_state(
            &mut tx,
            skus,
            with_replacements,
            &self.pool_reads,
            &self.pools,
        )
        .await?;
        tx.commit().await?;
        Ok(state)
    }

    async fn backorders(
        &self,
        query: &super::BackorderQuery,
    ) -> Result<Vec<super::BackorderedOrder>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        queries::backorders(&mut conn, query).await
    }

    async fn readiness(&self) -> Result<super::Readiness, StoreError> {
        queries::readiness(&self.pool.connect_options()).await
    }

    async fn oldest_dirty_mark(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        super::assemble::oldest_dirty_mark::<sqlx::Sqlite>(&mut conn).await
    }

    async fn received_at(&self, ids: &[String]) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        queries::received_at(&mut conn, ids).await
    }
}

/// The import's transaction on `conn` (foreign keys off): the state
/// replaced, every SKU marked, the job queued; the number of SKUs marked.
async fn import_in(
    conn: &mut SqliteConnection,
    snapshot: &Snapshot,
    cause: &str,
    progress: &(dyn Fn(ImportStep) + Sync),
) -> Result<u64, StoreError> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    recalculate::pool_cache::pause_log::<Sqlite>(&mut tx).await?;
    let marked = import::replace_state(&mut tx, snapshot, cause, progress).await?;
    // The triggers did not see the lines loaded: give their SKUs the
    // version rows the feed's search finds stale stamps by.
    sqlx::query(feed_stamps::REGISTER_LINE_SKUS)
        .execute(&mut *tx)
        .await?;
    ingest::push_job(
        &mut tx,
        &crate::queue::RecalcJob::new(vec![cause.into()], &[], true),
    )
    .await?;
    recalculate::pool_cache::resume_log::<Sqlite>(&mut tx).await?;
    progress(ImportStep::Committing);
    tx.commit().await?;
    Ok(marked)
}

/// An order header as one JSON array, from `orders o`, read back as a
/// [`codec::HeaderRow`]: one value per order instead of eight keeps the per-row
/// cost of the driver down.
const ORDER_HEADER_JSON: &str = "json_array(o.id, o.order_date, o.payment_date, o.payment_status, o.status, o.rush, o.picked, o.ship_from)";

/// The audit's run inside the caller's write transaction (so nothing
/// changes under it): the whole book read in one pass per table and run
/// through the engine chunk by chunk, every order compared whole
/// (store/audit_scan.rs). With repair the answer is written and every
/// mark cleared (the whole book was just recalculated under the write
/// lock); without, nothing is written.
async fn audit_in(
    tx: &mut SqliteConnection,
    repair: bool,
    as_of: DateTime<Utc>,
) -> Result<crate::audit::Findings, StoreError> {
    let dirty_skus: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dirty_skus")
        .fetch_one(&mut *tx)
        .await?;
    let found = book_scan::audit(&mut *tx, as_of, crate::audit::CAUSE).await?;
    let changes = crate::recalc::Changes {
        lines: found.lines,
        orders: found.orders,
        ..Default::default()
    };
    if repair {
        writeback::write_changes(&mut *tx, &changes, &format_timestamp(&as_of)).await?;
        sqlx::query("DELETE FROM dirty_skus")
            .execute(&mut *tx)
            .await?;
    }
    Ok(crate::audit::Findings {
        dirty_skus,
        lines_checked: found.lines_checked,
        orders_checked: found.orders_checked,
        lines: changes.lines,
        orders: changes.orders,
    })
}

async fn load_settings(conn: &mut SqliteConnection) -> Result<Settings, StoreError> {
    super::ingest::IngestBackend::load_settings(conn).await
}

async fn load_warehouses(conn: &mut SqliteConnection) -> Result<Vec<Warehouse>, StoreError> {
    super::ingest::IngestBackend::load_warehouses(conn).await
}

/// Inserts orders with their lines, each at its position or (`None`) after
/// every stored order, with the status and counts of the lines given. One
/// statement per table over a JSON array, whatever the number of rows.
async fn insert_orders(
    conn: &mut SqliteConnection,
    orders: &[(Option<i64>, &Order)],
) -> Result<(), StoreError> {
    let mut headers = Vec::with_capacity(orders.len());
    for &(position, o) in orders {
        let (counts, backorder_qty) = assemble::stored_totals(o);
        headers.push(serde_json::json!([
            o.id,
            position,
            format_timestamp(&o.order_date),
            o.payment_date.as_ref().map(format_timestamp),
            o.payment_status.as_str(),
            o.status.as_str(),
            o.rush,
            o.picked,
            o.ship_from,
            counts.status().as_str(),
            backorder_qty,
            counts.open,
            counts.backordered,
            counts.whole
        ]));
    }
    sqlx::query(
        "INSERT INTO orders (id, position, order_date, payment_date, payment_status, status, rush, picked, ship_from,
                             backorder_status, backorder_qty, lines_open, lines_backordered, lines_whole)
         SELECT j.value->>0, COALESCE(j.value->>1, (SELECT COALESCE(MAX(position), -1) + 1 FROM orders)),
                j.value->>2, j.value->>3, j.value->>4, j.value->>5, j.value->>6, j.value->>7, j.value->>8,
                j.value->>9, j.value->>10, j.value->>11, j.value->>12, j.value->>13
         FROM json_each(?) j",
    )
    .bind(serde_json::Value::Array(headers).to_string())
    .execute(&mut *conn)
    .await?;
    insert_lines(conn, orders.iter().map(|o| o.1)).await
}

/// Inserts the lines of orders already stored.
async fn insert_lines<'a>(
    conn: &mut SqliteConnection,
    orders: impl Iterator<Item = &'a Order>,
) -> Result<(), StoreError> {
    let mut lines = Vec::new();
    for o in orders {
        for (k, l) in o.lines.iter().enumerate() {
            lines.push(serde_json::json!([
                l.sku,
                o.id,
                k,
                l.id,
                l.qty,
                l.backorder_qty
            ]));
        }
    }
    sqlx::query(
        "INSERT INTO order_lines (sku, order_id, position, id, qty, backorder_qty)
         SELECT j.value->>0, j.value->>1, j.value->>2, j.value->>3, j.value->>4, j.value->>5
         FROM json_each(?) j",
    )
    .bind(serde_json::Value::Array(lines).to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
