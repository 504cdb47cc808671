//! The backend a database URL names, behind one type: every command and
//! the daemon work the same on either.

use chrono::{DateTime, Utc};

use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::*;
use crate::engine::Snapshot;
use crate::events::Event;
use crate::queue::RecalcJob;

pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl AnyStore {
    /// Opens the database `url` names ([`super::locate`] decides which),
    /// with the default [`OpenOptions`].
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, &OpenOptions::default()).await
    }

    /// Opens the database `url` names: PostgreSQL for `postgres://…`,
    /// SQLite (created if missing) for `sqlite://PATH` or a plain path; any
    /// other form is refused before anything is created.
    pub async fn open_with(url: &str, options: &OpenOptions) -> Result<Self, StoreError> {
        Ok(match super::locate(url)? {
            Location::Postgres(connect) => {
                AnyStore::Postgres(PgStore::connect(connect, options).await?)
            }
            Location::Sqlite(connect) => {
                AnyStore::Sqlite(SqliteStore::connect(connect, options).await?)
            }
        })
    }

    /// Up to `limit` change messages after `cursor`, in commit order.
    pub async fn messages_after(
        &self,
        cursor: super::feed::Cursor,
        limit: i64,
    ) -> Result<Vec<super::feed::FeedEntry>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => super::feed::sqlite::after(s.pool(), cursor, limit).await,
            AnyStore::Postgres(s) => super::feed::postgres::after(s.pool(), cursor, limit).await,
        }
    }

    /// Deletes up to `batch` messages created before `before` and below
    /// `keep_from` (see [`super::feed::sqlite::prune_expired_messages`]):
    /// how many.
    pub async fn prune_expired_messages(
        &self,
        before: DateTime<Utc>,
        keep_from: i64,
        batch: i64,
    ) -> Result<u64, StoreError> {
        match self {
            AnyStore::Sqlite(s) => {
                super::feed::sqlite::prune_expired_messages(
                    s.write_pool(),
                    before,
                    keep_from,
                    batch,
                )
                .await
            }
            AnyStore::Postgres(s) => {
                super::feed::postgres::prune_expired_messages(s.pool(), before, keep_from, batch)
                    .await
            }
        }
    }

    pub async fn register_daemon(&self, d: &super::daemons::DaemonInfo) -> Result<(), StoreError> {
        match self {
            AnyStore::Sqlite(s) => super::daemons::sqlite::register(s.write_pool(), d).await,
            AnyStore::Postgres(s) => super::daemons::postgres::register(s.pool(), d).await,
        }
    }

    /// Refreshes a daemon's row; `false` when it is gone.
    pub async fn daemon_heartbeat(
        &self,
        name: &str,
        doing: &str,
        doing_since_ms: i64,
    ) -> Result<bool, StoreError> {
        match self {
            AnyStore::Sqlite(s) => {
                super::daemons::sqlite::heartbeat(s.write_pool(), name, doing, doing_since_ms).await
            }
            AnyStore::Postgres(s) => {
                super::daemons::postgres::heartbeat(s.pool(), name, doing, doing_since_ms).await
            }
        }
    }

    pub async fn remove_daemon(&self, name: &str) -> Result<(), StoreError> {
        match self {
            AnyStore::Sqlite(s) => super::daemons::sqlite::remove(s.write_pool(), name).await,
            AnyStore::Postgres(s) => super::daemons::postgres::remove(s.pool(), name).await,
        }
    }

    /// Writes the chart sample of `minute`: the stored totals now and
    /// `lags`, the lags this process measured since its last sample.
    pub async fn record_sample(
        &self,
        minute: i64,
        lags: super::samples::Lags,
    ) -> Result<(), StoreError> {
        use super::samples::{Sample, postgres, sqlite};
        let totals = match self {
            AnyStore::Sqlite(s) => sqlite::totals(s.pool()).await?,
            AnyStore::Postgres(s) => postgres::totals(s.pool()).await?,
        };
        let sample = Sample {
            minute,
            backordered_units: totals.0,
            backordered_orders: totals.1,
            lag_max_ms: lags.max_ms,
            lag_count: lags.count,
        };
        match self {
            AnyStore::Sqlite(s) => sqlite::record(s.write_pool(), &sample).await,
            AnyStore::Postgres(s) => postgres::record(s.pool(), &sample).await,
        }
    }

    /// The chart samples from `since_minute` on, oldest first.
    pub async fn samples_since(
        &self,
        since_minute: i64,
    ) -> Result<Vec<super::samples::Sample>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => super::samples::sqlite::since(s.pool(), since_minute).await,
            AnyStore::Postgres(s) => super::samples::postgres::since(s.pool(), since_minute).await,
        }
    }

    /// The `serve` processes heard from lately.
    pub async fn live_daemons(&self) -> Result<Vec<super::daemons::DaemonInfo>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => super::daemons::sqlite::alive(s.pool()).await,
            AnyStore::Postgres(s) => super::daemons::postgres::alive(s.pool()).await,
        }
    }

    /// The newest `limit` history rows of an order, newest first.
    pub async fn order_history(
        &self,
        order_id: &str,
        limit: i64,
    ) -> Result<Vec<super::history::HistoryRow>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => {
                super::history::sqlite::of_order(s.pool(), order_id, limit).await
            }
            AnyStore::Postgres(s) => {
                super::history::postgres::of_order(s.pool(), order_id, limit).await
            }
        }
    }

    /// Moves `sku`'s dirty mark aside with `error` (store/set_aside.rs).
    pub async fn set_aside(
        &self,
        sku: &str,
        error: &str,
        first_retry: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let now = super::daemons::now_ms();
        match self {
            AnyStore::Sqlite(s) => {
                super::set_aside::sqlite::set_aside(s.write_pool(), sku, error, now, first_retry)
                    .await
            }
            AnyStore::Postgres(s) => {
                super::set_aside::postgres::set_aside(s.pool(), sku, error, now, first_retry).await
            }
        }
    }

    /// Marks dirty again the set-aside SKUs due for another try.
    pub async fn readmit_set_aside(&self) -> Result<u64, StoreError> {
        let now = super::daemons::now_ms();
        match self {
            AnyStore::Sqlite(s) => super::set_aside::sqlite::readmit_due(s.write_pool(), now).await,
            AnyStore::Postgres(s) => super::set_aside::postgres::readmit_due(s.pool(), now).await,
        }
    }

    pub async fn clear_set_aside(&self, skus: &[String]) -> Result<(), StoreError> {
        match self {
            AnyStore::Sqlite(s) => super::set_aside::sqlite::clear(s.write_pool(), skus).await,
            AnyStore::Postgres(s) => super::set_aside::postgres::clear(s.pool(), skus).await,
        }
    }

    pub async fn set_aside_count(&self) -> Result<i64, StoreError> {
        match self {
            AnyStore::Sqlite(s) => super::set_aside::sqlite::count(s.pool()).await,
            AnyStore::Postgres(s) => super::set_aside::postgres::count(s.pool()).await,
        }
    }

    pub async fn set_aside_list(&self) -> Result<Vec<super::set_aside::SetAsideSku>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => super::set_aside::sqlite::list(s.pool()).await,
            AnyStore::Postgres(s) => super::set_aside::postgres::list(s.pool()).await,
        }
    }

    /// The first dirty SKU, the one a batch of one claims.
    pub async fn first_dirty(&self) -> Result<Option<String>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => super::set_aside::sqlite::first_dirty(s.pool()).await,
            AnyStore::Postgres(s) => super::set_aside::postgres::first_dirty(s.pool()).await,
        }
    }

    /// Starts this process's writer (store/writer.rs): `serve` does, so
    /// that every write of the process goes through it.
    pub fn start_writer(&self, limits: super::WriterLimits) {
        match self {
            AnyStore::Sqlite(s) => s.start_writer(limits),
            AnyStore::Postgres(s) => s.start_writer(limits),
        }
    }

    /// `None` without a writer, else whether it still takes requests.
    pub fn writer_alive(&self) -> Option<bool> {
        match self {
            AnyStore::Sqlite(s) => s.writer_alive(),
            AnyStore::Postgres(s) => s.writer_alive(),
        }
    }

    /// A recalculation job begins its drain: the writer's next group of
    /// events queues a job of its own again (store/writer.rs).
    pub fn job_started(&self) {
        match self {
            AnyStore::Sqlite(s) => s.job_started(),
            AnyStore::Postgres(s) => s.job_started(),
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            AnyStore::Sqlite(_) => "sqlite",
            AnyStore::Postgres(_) => "postgres",
        }
    }
}

/// Calls the same method on whichever backend this is.
macro_rules! each_backend {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($store) => $call.await,
            AnyStore::Postgres($store) => $call.await,
        }
    };
}

impl Store for AnyStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        each_backend!(self, s => s.migrate())
    }

    async fn import(
        &self,
        snapshot: &Snapshot,
        notify: bool,
        progress: &(dyn Fn(ImportStep) + Sync),
    ) -> Result<ImportSummary, StoreError> {
        let summary = each_backend!(self, s => s.import(snapshot, notify, progress))?;
        crate::wake::wake();
        super::feed::committed();
        Ok(summary)
    }

    async fn export(&self) -> Result<Snapshot, StoreError> {
        each_backend!(self, s => s.export())
    }

    async fn ingest(
        &self,
        events: &[Event],
        options: IngestOptions,
    ) -> Result<IngestReport, StoreError> {
        let report = each_backend!(self, s => s.ingest(events, options))?;
        // A worker in this process fetches the job at once.
        crate::wake::wake();
        super::feed::committed();
        Ok(report)
    }

    async fn recalculate_dirty(
        &self,
        max_skus: usize,
        as_of: DateTime<Utc>,
    ) -> Result<Option<BatchReport>, StoreError> {
        let report = each_backend!(self, s => s.recalculate_dirty(max_skus, as_of))?;
        if report.is_some() {
            super::feed::committed();
        }
        Ok(report)
    }

    async fn recalculate_bulk(
        &self,
        max_skus: usize,
        as_of: DateTime<Utc>,
        stop: &std::sync::atomic::AtomicBool,
        on_batch: impl FnMut(&BatchReport) + Send,
    ) -> Result<(), StoreError> {
        let done = each_backend!(self, s => s.recalculate_bulk(max_skus, as_of, stop, on_batch));
        super::feed::committed();
        done
    }

    async fn audit(
        &self,
        repair: bool,
        as_of: DateTime<Utc>,
    ) -> Result<crate::audit::AuditReport, StoreError> {
        let report = each_backend!(self, s => s.audit(repair, as_of));
        super::feed::committed();
        report
    }

    async fn dirty_count(&self, skus: Option<&[String]>) -> Result<i64, StoreError> {
        each_backend!(self, s => s.dirty_count(skus))
    }

    async fn recalc_ticket(&self) -> Result<i64, StoreError> {
        each_backend!(self, s => s.recalc_ticket())
    }

    async fn waiting_count(&self, skus: Option<&[String]>, ticket: i64) -> Result<i64, StoreError> {
        each_backend!(self, s => s.waiting_count(skus, ticket))
    }

    async fn publish_options(&self, options: IngestOptions) -> Result<(), StoreError> {
        each_backend!(self, s => s.publish_options(options))
    }

    async fn enqueue(&self, job: &RecalcJob) -> Result<(), StoreError> {
        each_backend!(self, s => s.enqueue(job))?;
        crate::wake::wake();
        Ok(())
    }

    async fn queue_status(&self) -> Result<QueueStatus, StoreError> {
        each_backend!(self, s => s.queue_status())
    }

    async fn order_view(&self, id: &str) -> Result<Option<OrderView>, StoreError> {
        each_backend!(self, s => s.order_view(id))
    }

    async fn feed_source(
        &self,
        as_of: DateTime<Utc>,
    ) -> Result<crate::feed::FeedSource, StoreError> {
        each_backend!(self, s => s.feed_source(as_of))
    }

    async fn feed_parts(
        &self,
        as_of: DateTime<Utc>,
        prefilter: super::feed_stamps::Prefilter,
    ) -> Result<super::feed_stamps::FeedParts, StoreError> {
        each_backend!(self, s => s.feed_parts(as_of, prefilter))
    }

    async fn stored_entry(&self, sku: &str) -> Result<Option<crate::feed::FeedEntry>, StoreError> {
        each_backend!(self, s => s.stored_entry(sku))
    }

    async fn pool_state(
        &self,
        skus: &[String],
        with_replacements: bool,
    ) -> Result<PoolState, StoreError> {
        each_backend!(self, s => s.pool_state(skus, with_replacements))
    }

    async fn backorders(
        &self,
        query: &BackorderQuery,
    ) -> Result<Vec<BackorderedOrder>, StoreError> {
        each_backend!(self, s => s.backorders(query))
    }

    async fn readiness(&self) -> Result<Readiness, StoreError> {
        if self.writer_alive() == Some(false) {
            return Err(StoreError::Unavailable(
                "this process's database writer stopped".into(),
            ));
        }
        each_backend!(self, s => s.readiness())
    }

    async fn oldest_dirty_mark(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        each_backend!(self, s => s.oldest_dirty_mark())
    }

    async fn received_at(&self, ids: &[String]) -> Result<Vec<DateTime<Utc>>, StoreError> {
        each_backend!(self, s => s.received_at(ids))
    }
}
