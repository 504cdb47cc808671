//! PostgreSQL, for several `serve` processes sharing one database.
//!
//! Concurrency (docs/architecture.md, "Several workers"):
//! - Batches of events that touch the same SKUs, orders, lines or purchase
//!   orders apply one at a time, under transaction-scoped advisory locks
//!   taken in one order (locks.rs), so they take effect in the order they
//!   were accepted; unrelated batches apply side by side.
//! - A recalculation claims dirty SKUs whose lock stripe it can take at
//!   once (`pg_try_advisory_xact_lock`), so two workers never recalculate
//!   one SKU at the same time and never wait on each other.
//! - A recalculation writes a line only if it is still as read, and moves
//!   each order's counts by the change of its own lines: a concurrent
//!   event or worker is never overwritten with a stale value.
//! - A dirty mark is cleared only if no newer event raised it meanwhile.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Postgres};

mod audit;
mod ingest;
mod locks;
mod messages;
mod queries;
mod recalc;
mod snapshot_io;
mod what_if;
mod writeback;

use super::recalculate;
use super::writer::{WriteDialect, Writer};
use super::{
    BatchReport, ImportStep, ImportSummary, IngestOptions, IngestReport, QueueStatus, Store,
    StoreError, WriterLimits,
};
use crate::engine::snapshot::*;
use crate::events::Event;
use crate::queue::{QUEUE, RecalcJob};
use crate::store::coalesce::{WaitingJobStatements, join_waiting_job};

/// The first key of every advisory lock backorderd takes ("bo" + 0x0rd),
/// so that they cannot meet an application's own advisory locks.
const LOCK_SPACE: i32 = 0x626f_0d00;
/// SKUs are spread over this many recalculation locks: enough for workers
/// to rarely meet, few enough for one transaction to hold them all within
/// PostgreSQL's default lock table.
const SKU_LOCK_STRIPES: i32 = 1024;
/// How often a batch of events is applied again after a deadlock with a
/// recalculation (each attempt rolls back whole).
const INGEST_ATTEMPTS: u32 = 5;

pub struct PgStore {
    pool: PgPool,
    /// This process's writer, once `serve` started it (store/writer.rs).
    writer: std::sync::OnceLock<Writer<Postgres>>,
}

/// PostgreSQL in the writer's loop.
struct Dialect;

impl WriteDialect for Dialect {
    type Db = Postgres;
    const BEGIN: &'static str = "BEGIN";
    const ATTEMPTS: u32 = INGEST_ATTEMPTS;
    const SHARE_WAITING_JOB: bool = false;
    async fn lock_group(conn: &mut PgConnection, batches: &[&[Event]]) -> Result<(), StoreError> {
        locks::take(conn, &locks::EventLocks::of(batches)).await
    }
}

impl recalculate::RecalcStore for PgStore {
    type Db = sqlx::Postgres;

    type Conn = sqlx::pool::PoolConnection<sqlx::Postgres>;
    const BEGIN: &'static str = "BEGIN";

    async fn connection(&self) -> Result<Self::Conn, StoreError> {
        Ok(self.pool.acquire().await?)
    }

    fn is_transient(&self, error: &StoreError) -> bool {
        recalc::is_transient(error)
    }

    /// Off on PostgreSQL for now: nothing fills the version log (see
    /// migrations/postgres/*_pool_versions.sql).
    fn pool_cache(&self) -> Option<&recalculate::PoolCache> {
        None
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://…` or `postgresql://…`) with the
    /// default options.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        match super::locate(url)? {
            super::Location::Postgres(connect) => {
                Self::connect(connect, &super::OpenOptions::default()).await
            }
            super::Location::Sqlite(_) => Err(StoreError::Url(super::UrlError::InvalidPostgres {
                shown: super::redact_url(url),
                problem: "it names an SQLite database".to_owned(),
            })),
        }
    }

    /// Connects to the server `connect` names, within
    /// `options.connect_timeout`.
    pub async fn connect(
        connect: PgConnectOptions,
        options: &super::OpenOptions,
    ) -> Result<Self, StoreError> {
        // Notices ("already exists, skipping" from idempotent migrations)
        // would reach the log as noise.
        let mut connect = connect
            .application_name("backorderd")
            .options([("client_min_messages", "warning")]);
        if let Some(limit) = options.statement_timeout {
            let millis = limit.as_millis().to_string();
            connect = connect.options([("statement_timeout", millis.as_str())]);
        }
        // sqlx has no connect timeout of its own: a server that takes the
        // connection and never answers would hold the caller forever.
        let timed_out = || StoreError::ConnectTimeout {
            host: connect.get_socket().map_or_else(
                || connect.get_host().to_owned(),
                |s| s.display().to_string(),
            ),
            port: connect.get_port(),
            secs: options.connect_timeout.as_secs(),
        };
        // One connection first: the pool would retry a refused or failed
        // connection until its timeout and then report only the timeout.
        tokio::time::timeout(options.connect_timeout, async {
            PgConnection::connect_with(&connect).await?.close().await
        })
        .await
        .map_err(|_| timed_out())??;
        // A pooled connection may also wait for a busy pool: at least 30 s.
        let acquire = options.connect_timeout.max(Duration::from_secs(30));
        let pool = PgPoolOptions::new()
            .max_connections(6)
            .acquire_timeout(acquire)
            .connect_with(connect.clone())
            .await?;
        Ok(PgStore {
            pool,
            writer: std::sync::OnceLock::new(),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Starts this process's writer: event batches then commit in groups.
    /// Recalculations keep their own transactions on the pool, which
    /// PostgreSQL runs beside the writer's (row locks, not one file lock).
    pub fn start_writer(&self, limits: WriterLimits) {
        self.writer
            .get_or_init(|| Writer::start::<Dialect>(self.pool.clone(), limits));
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
}

impl Store for PgStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        // sqlx's migrator holds an advisory lock while it runs: processes
        // starting together migrate one after the other.
        sqlx::migrate!("migrations/postgres")
            .run(&self.pool)
            .await?;
        // The queue's tables, tracked in their own migrations table so that
        // neither set of migrations sees the other's as unknown.
        let mut queue = apalis_postgres::PostgresStorage::migrations();
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
        let mut tx = self.pool.begin().await?;
        // Replaces everything: no batch of events applies meanwhile.
        locks::take(&mut tx, &locks::EventLocks::everything()).await?;
        let summary = snapshot_io::import(&mut tx, snapshot, cause, progress).await?;
        push_job(&mut tx, &RecalcJob::new(vec![cause.into()], &[], true)).await?;
        progress(ImportStep::Committing);
        tx.commit().await?;
        Ok(summary)
    }

    async fn export(&self) -> Result<Snapshot, StoreError> {
        // One snapshot of the whole state, however long the read takes.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let snapshot = snapshot_io::export(&mut tx).await?;
        tx.commit().await?;
        Ok(snapshot)
    }

    async fn ingest(
        &self,
        events: &[Event],
        options: IngestOptions,
    ) -> Result<IngestReport, StoreError> {
        if let Some(writer) = self.writer.get() {
            return writer.ingest(events, options).await;
        }
        let event_locks = locks::EventLocks::of(&[events]);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut tx = self.pool.begin().await?;
            locks::take(&mut tx, &event_locks).await?;
            match ingest::ingest(&mut tx, events, options).await {
                Ok(report) => {
                    tx.commit().await?;
                    return Ok(report);
                }
                // Rolled back whole: nothing of the batch was applied.
                Err(e) if e.kind() == super::ErrorKind::Busy && attempt < INGEST_ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "events meet a recalculation; applying them again");
                }
                Err(e) => return Err(e),
            }
        }
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
        self.audit_book(repair, as_of).await
    }

    async fn dirty_count(&self, skus: Option<&[String]>) -> Result<i64, StoreError> {
        let count = match skus {
            None => sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM dirty_skus) + (SELECT COUNT(*) FROM set_aside_skus s
                         WHERE NOT EXISTS (SELECT 1 FROM dirty_skus d WHERE d.sku = s.sku))",
            )
            .fetch_one(&self.pool)
            .await?,
            // Set-aside SKUs (store/set_aside.rs) still wait.
            Some(skus) => {
                sqlx::query_scalar(
                    "SELECT (SELECT COUNT(*) FROM dirty_skus WHERE sku = ANY($1))
                          + (SELECT COUNT(*) FROM set_aside_skus s WHERE sku = ANY($1)
                             AND NOT EXISTS (SELECT 1 FROM dirty_skus d WHERE d.sku = s.sku))",
                )
                .bind(skus)
                .fetch_one(&self.pool)
                .await?
            }
        };
        Ok(count)
    }

    async fn recalc_ticket(&self) -> Result<i64, StoreError> {
        // Not nextval: a waiter draws nothing, it reads the last value
        // any batch drew (none yet: 0).
        Ok(sqlx::query_scalar(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM recalc_clock",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    async fn waiting_count(&self, skus: Option<&[String]>, ticket: i64) -> Result<i64, StoreError> {
        let count = match skus {
            None => sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT sku FROM dirty_skus UNION SELECT sku FROM set_aside_skus) w
                         WHERE NOT EXISTS (SELECT 1 FROM recalc_ticks t WHERE t.sku = w.sku AND t.tick > $1)",
            )
            .bind(ticket)
            .fetch_one(&self.pool)
            .await?,
            Some(skus) => sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT DISTINCT s AS sku FROM unnest($1::text[]) s) w
                 WHERE (EXISTS (SELECT 1 FROM dirty_skus d WHERE d.sku = w.sku)
                        OR EXISTS (SELECT 1 FROM set_aside_skus a WHERE a.sku = w.sku))
                   AND NOT EXISTS (SELECT 1 FROM recalc_ticks t WHERE t.sku = w.sku AND t.tick > $2)",
            )
            .bind(skus)
            .bind(ticket)
            .fetch_one(&self.pool)
            .await?,
        };
        Ok(count)
    }

    async fn publish_options(&self, options: IngestOptions) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO service_options (id, recalculate_on_status_change, defer_new_orders)
             VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET
                 recalculate_on_status_change = excluded.recalculate_on_status_change,
                 defer_new_orders = excluded.defer_new_orders",
        )
        .bind(options.recalculate_on_status_change)
        .bind(options.defer_new_orders)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn enqueue(&self, job: &RecalcJob) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        push_job(&mut conn, job).await
    }

    async fn queue_status(&self) -> Result<QueueStatus, StoreError> {
        let (pending, running, failed): (i64, i64, i64) = sqlx::query_as(
            "SELECT
                COUNT(*) FILTER (WHERE status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts)),
                COUNT(*) FILTER (WHERE status IN ('Queued', 'Running')),
                COUNT(*) FILTER (WHERE status = 'Killed' OR (status = 'Failed' AND attempts >= max_attempts))
             FROM apalis.jobs WHERE job_type = $1",
        )
        .bind(QUEUE)
        .fetch_one(&self.pool)
        .await?;
        Ok(QueueStatus {
            pending,
            running,
            failed,
            dirty_skus: self.dirty_count(None).await?,
            set_aside_skus: crate::store::set_aside::postgres::count(&self.pool).await?,
        })
    }

    async fn order_view(&self, id: &str) -> Result<Option<super::OrderView>, StoreError> {
        let mut tx = read_transaction(&self.pool).await?;
        let view = queries::order_view(&mut tx, id).await?;
        tx.commit().await?;
        Ok(view)
    }

    async fn feed_source(
        &self,
        as_of: DateTime<Utc>,
    ) -> Result<crate::feed::FeedSource, StoreError> {
        let mut tx = read_transaction(&self.pool).await?;
        let settings = load_settings(&mut tx).await?;
        let warehouses = load_warehouses(&mut tx).await?;
        let source = super::feed_rows::feed_source::<sqlx::Postgres>(
            &mut tx,
            settings,
            warehouses,
            r#"(rtrim(o.order_date, 'Z') COLLATE "C")"#,
            as_of,
            None,
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(source)
    }

    /// No stamps on PostgreSQL (store/feed_stamps.rs): the whole source.
    async fn feed_parts(
        &self,
        as_of: DateTime<Utc>,
        _prefilter: super::feed_stamps::Prefilter,
    ) -> Result<super::feed_stamps::FeedParts, StoreError> {
        Ok(super::feed_stamps::FeedParts {
            stored: Vec::new(),
            source: self.feed_source(as_of).await?,
        })
    }

    async fn stored_entry(&self, _sku: &str) -> Result<Option<crate::feed::FeedEntry>, StoreError> {
        Ok(None)
    }

    async fn pool_state(
        &self,
        skus: &[String],
        with_replacements: bool,
    ) -> Result<super::PoolState, StoreError> {
        let mut tx = read_transaction(&self.pool).await?;
        let state = queries::pool_state(&mut tx, skus, with_replacements).await?;
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
        queries::readiness(&self.pool).await
    }

    async fn oldest_dirty_mark(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        super::assemble::oldest_dirty_mark::<sqlx::Postgres>(&mut conn).await
    }

    async fn received_at(&self, ids: &[String]) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        queries::received_at(&mut conn, ids).await
    }
}

/// A transaction that reads one consistent state.
async fn read_transaction(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// This database's queue table, for [`join_waiting_job`].
const WAITING_JOB: WaitingJobStatements = WaitingJobStatements {
    find: "SELECT id, job FROM apalis.jobs
           WHERE job_type = $1 AND status = 'Pending' AND run_at <= now()
           ORDER BY run_at LIMIT 1 FOR UPDATE SKIP LOCKED",
    absorb: "UPDATE apalis.jobs SET job = $1 WHERE id = $2 AND status = 'Pending' RETURNING id",
};

/// Queues `job`, unless a job is waiting to be fetched: that one absorbs
/// it. Inside a transaction this loses no wake-up: the waiting job's row
/// stays locked to the commit, and the worker's fetch skips locked rows,
/// so it is fetched, and drains, only after this transaction's marks are
/// committed. A job being fetched right now is locked and skipped here, so
/// a new one is queued. Outside a transaction, the conditional UPDATE
/// either reaches a job still waiting or queues anew.
pub(super) async fn push_job(conn: &mut PgConnection, job: &RecalcJob) -> Result<(), StoreError> {
    if join_waiting_job::<sqlx::Postgres>(conn, &WAITING_JOB, job).await? {
        return Ok(());
    }
    let task = apalis::prelude::TaskBuilder::new(job.payload()).build();
    apalis_postgres::queries::push_tasks(conn, QUEUE, vec![task])
        .await
        .map_err(|e| match e {
            apalis_postgres::Error::Database(e) => StoreError::Database(e),
            other => StoreError::Queue(other.to_string()),
        })
}

async fn load_settings(conn: &mut PgConnection) -> Result<Settings, StoreError> {
    super::ingest::IngestBackend::load_settings(conn).await
}

async fn load_warehouses(conn: &mut PgConnection) -> Result<Vec<Warehouse>, StoreError> {
    super::ingest::IngestBackend::load_warehouses(conn).await
}
