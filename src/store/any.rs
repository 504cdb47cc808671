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
    /// Opens the database `url` names: `postgres://…` or `postgresql://…`
    /// for PostgreSQL; `sqlite://PATH`, `sqlite:PATH` or a plain path for
    /// SQLite (created if missing). Any other scheme is refused.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        match url.split_once("://").map(|(scheme, _)| scheme) {
            Some("postgres" | "postgresql") => Ok(AnyStore::Postgres(PgStore::open(url).await?)),
            Some("sqlite") | None => Ok(AnyStore::Sqlite(SqliteStore::open(url).await?)),
            Some(_) => Err(StoreError::UnsupportedUrl(url.to_owned())),
        }
    }

    pub async fn register_daemon(&self, d: &super::daemons::DaemonInfo) -> Result<(), StoreError> {
        match self {
            AnyStore::Sqlite(s) => super::daemons::sqlite::register(s.pool(), d).await,
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
                super::daemons::sqlite::heartbeat(s.pool(), name, doing, doing_since_ms).await
            }
            AnyStore::Postgres(s) => {
                super::daemons::postgres::heartbeat(s.pool(), name, doing, doing_since_ms).await
            }
        }
    }

    pub async fn remove_daemon(&self, name: &str) -> Result<(), StoreError> {
        match self {
            AnyStore::Sqlite(s) => super::daemons::sqlite::remove(s.pool(), name).await,
            AnyStore::Postgres(s) => super::daemons::postgres::remove(s.pool(), name).await,
        }
    }

    /// The `serve` processes heard from lately.
    pub async fn live_daemons(&self) -> Result<Vec<super::daemons::DaemonInfo>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => super::daemons::sqlite::alive(s.pool()).await,
            AnyStore::Postgres(s) => super::daemons::postgres::alive(s.pool()).await,
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

    async fn import(&self, snapshot: &Snapshot) -> Result<ImportSummary, StoreError> {
        each_backend!(self, s => s.import(snapshot))
    }

    async fn export(&self) -> Result<Snapshot, StoreError> {
        each_backend!(self, s => s.export())
    }

    async fn ingest(
        &self,
        events: &[Event],
        options: IngestOptions,
    ) -> Result<IngestReport, StoreError> {
        each_backend!(self, s => s.ingest(events, options))
    }

    async fn recalculate_dirty(
        &self,
        max_skus: usize,
        as_of: DateTime<Utc>,
    ) -> Result<Option<BatchReport>, StoreError> {
        each_backend!(self, s => s.recalculate_dirty(max_skus, as_of))
    }

    async fn recalculate_bulk(
        &self,
        max_skus: usize,
        as_of: DateTime<Utc>,
        stop: &std::sync::atomic::AtomicBool,
        on_batch: impl FnMut(&BatchReport) + Send,
    ) -> Result<(), StoreError> {
        each_backend!(self, s => s.recalculate_bulk(max_skus, as_of, stop, on_batch))
    }

    async fn audit(
        &self,
        repair: bool,
        as_of: DateTime<Utc>,
    ) -> Result<crate::audit::AuditReport, StoreError> {
        each_backend!(self, s => s.audit(repair, as_of))
    }

    async fn dirty_count(&self, skus: Option<&[String]>) -> Result<i64, StoreError> {
        each_backend!(self, s => s.dirty_count(skus))
    }

    async fn publish_options(&self, options: IngestOptions) -> Result<(), StoreError> {
        each_backend!(self, s => s.publish_options(options))
    }

    async fn enqueue(&self, job: &RecalcJob) -> Result<(), StoreError> {
        each_backend!(self, s => s.enqueue(job))
    }

    async fn queue_status(&self) -> Result<QueueStatus, StoreError> {
        each_backend!(self, s => s.queue_status())
    }

    async fn order_view(&self, id: &str) -> Result<Option<OrderView>, StoreError> {
        each_backend!(self, s => s.order_view(id))
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
        each_backend!(self, s => s.readiness())
    }

    async fn oldest_dirty_mark(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        each_backend!(self, s => s.oldest_dirty_mark())
    }

    async fn received_at(&self, ids: &[String]) -> Result<Vec<DateTime<Utc>>, StoreError> {
        each_backend!(self, s => s.received_at(ids))
    }
}
