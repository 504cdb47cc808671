//! Storage: the stored state, events, the dirty set and the write-back.
//! One module per database behind the [`Store`] trait.

mod any;
mod assemble;
mod audit_scan;
mod coalesce;
mod codec;
mod customers;
pub mod daemons;
pub mod delivery;
mod delivery_any;
pub mod digest;
pub mod feed;
mod feed_rows;
pub mod feed_stamps;
pub mod figures;

/// The tables an import replaces, children before their parents (the
/// order they are emptied in).
pub(crate) const IMPORTED_TABLES: [&str; 7] = [
    "order_lines",
    "orders",
    "purchase_orders",
    "inventory",
    "products",
    "warehouses",
    "client_settings",
];
mod group;
pub mod history;
mod ingest;
mod location;
pub mod messages;
mod pool_reads;
pub mod postgres;
mod recalculate;
pub mod samples;
pub mod set_aside;
pub mod sqlite;
mod views;
mod what_if;
mod writer;

pub use any::AnyStore;
pub use delivery_any::DeliveryStore;
pub use location::{Location, UrlError, is_secret_name, locate};
pub use writer::WriterLimits;

pub use views::*;

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::engine::Snapshot;
use crate::events::Event;
use crate::queue::RecalcJob;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A driver error; [`StoreError::kind`] says what it means.
    #[error("{}", describe_database_error(.0))]
    Database(#[from] sqlx::Error),
    /// Another process held the database longer than the busy timeout.
    #[error("{}", busy_message(.0))]
    Busy(String),
    /// The database or this process's writer cannot be reached.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// One failure answered to several requests (a writer's group): driver
    /// errors do not clone, so each gets its kind and message.
    #[error("{message}")]
    Shared { kind: ErrorKind, message: String },
    #[error("cannot bring the schema up to date: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value that the contract's types cannot hold: the database
    /// was edited by hand or by an incompatible version.
    #[error("stored {record} is unreadable: {problem}")]
    Corrupt { record: String, problem: String },
    #[error("queue error: {0}")]
    Queue(String),
    /// An event that the stored state refuses (unknown order, line or
    /// warehouse): the whole batch is rolled back.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The server took the connection but did not finish the handshake in
    /// time (or the connection itself took too long).
    #[error(
        "no answer from PostgreSQL at {host}:{port} within {secs} s \
         (database.connect_timeout_secs)"
    )]
    ConnectTimeout { host: String, port: u16, secs: u64 },
}

/// What a [`StoreError`] means to its caller, whichever the database: the
/// one place driver errors are classified (the API maps kinds to statuses,
/// the worker tells a database outage from a failure of the data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The stored state refuses an event (unknown order, bounds...).
    Refused,
    /// Another process holds the database (or a PostgreSQL transaction
    /// met another in a deadlock or serialization failure): retry later.
    Busy,
    /// Cannot connect, the connection was lost, or the writer is gone.
    Unavailable,
    /// A stored value the contract's types cannot hold.
    Corrupt,
    /// Anything else.
    Backend,
}

impl StoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Refused(_) => ErrorKind::Refused,
            StoreError::Busy(_) => ErrorKind::Busy,
            StoreError::Unavailable(_) | StoreError::ConnectTimeout { .. } => {
                ErrorKind::Unavailable
            }
            StoreError::Corrupt { .. } => ErrorKind::Corrupt,
            StoreError::Database(e) => database_error_kind(e),
            StoreError::Shared { kind, .. } => *kind,
            StoreError::Migrate(_) | StoreError::Queue(_) | StoreError::Url(_) => {
                ErrorKind::Backend
            }
        }
    }

    /// A failure of the database or its connection rather than of the data
    /// at hand: retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind(), ErrorKind::Busy | ErrorKind::Unavailable)
    }
}

fn database_error_kind(e: &sqlx::Error) -> ErrorKind {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if sqlite_busy(e) || matches!(&*code, "40001" | "40P01") {
                // PostgreSQL: serialization failure, deadlock.
                ErrorKind::Busy
            } else if code.starts_with("08") || code.starts_with("57") || code.starts_with("53") {
                // Connection, operator intervention (shutdown), resources.
                ErrorKind::Unavailable
            } else {
                ErrorKind::Backend
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => ErrorKind::Unavailable,
        _ => ErrorKind::Backend,
    }
}

/// SQLite's busy (5) and locked (6), with their extended codes (low byte).
fn sqlite_busy(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
        && db
            .code()
            .and_then(|code| code.parse::<i64>().ok())
            .is_some_and(|code| matches!(code & 0xff, 5 | 6))
}

fn describe_database_error(e: &sqlx::Error) -> String {
    if sqlite_busy(e) {
        busy_message(&e.to_string())
    } else {
        format!("database error: {e}")
    }
}

fn busy_message(detail: &str) -> String {
    format!(
        "another process holds the database (it stayed locked longer than \
         database.busy_timeout_secs; raise that setting to wait longer, or retry \
         when the other process is done): {detail}"
    )
}

/// The URL with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    location::redact(url)
}

/// How a database is opened, beyond what its URL says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    /// PostgreSQL: the longest wait for a connection to be set up.
    pub connect_timeout: std::time::Duration,
    /// PostgreSQL: the server cancels a statement running longer; `None`:
    /// no limit.
    pub statement_timeout: Option<std::time::Duration>,
    /// SQLite: how long a writer waits for another process's transaction.
    pub busy_timeout: std::time::Duration,
}

impl Default for OpenOptions {
    /// As the configuration's defaults say (config/default.toml).
    fn default() -> Self {
        crate::config::Settings::default().database.open_options()
    }
}

/// What an import wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ImportSummary {
    pub orders: usize,
    pub lines: usize,
    pub skus_marked_dirty: usize,
}

/// How far an import got, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportStep {
    /// `done` of the `total` rows of orders and lines are written.
    Writing { done: u64, total: u64 },
    /// The rows are written; the tables' indexes are being built.
    Indexing,
    /// Everything is written; the transaction commits.
    Committing,
}

pub trait Store {
    /// Creates or upgrades the schema.
    fn migrate(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Replaces the stored state with `snapshot` (stored backorder
    /// quantities included) and marks every SKU for recalculation, in one
    /// transaction. The snapshot must have passed `engine::validate`.
    /// Without `notify` that recalculation emits no change message
    /// (cause [`messages::QUIET_IMPORT_CAUSE`]); with it, as any other
    /// (cause `import`). `progress` hears how far it got.
    fn import(
        &self,
        snapshot: &Snapshot,
        notify: bool,
        progress: &(dyn Fn(ImportStep) + Sync),
    ) -> impl Future<Output = Result<ImportSummary, StoreError>> + Send;
    /// The stored state as a snapshot, `as_of` left for the caller.
    fn export(&self) -> impl Future<Output = Result<Snapshot, StoreError>> + Send;
    /// Applies a batch of checked events in one transaction: records each
    /// id (a repeat is skipped), applies its effect, marks the SKUs it can
    /// change and queues a recalculation job. A refused event rolls back
    /// the whole batch ([`StoreError::Refused`]).
    fn ingest(
        &self,
        events: &[Event],
        options: IngestOptions,
    ) -> impl Future<Output = Result<IngestReport, StoreError>> + Send;
    /// Recalculates up to `max_skus` dirty SKUs (plus the SKUs tied to them
    /// by replacement) in one transaction, writing back only what changed.
    /// `None` when nothing is dirty.
    fn recalculate_dirty(
        &self,
        max_skus: usize,
        as_of: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<BatchReport>, StoreError>> + Send;
    /// Like repeated [`Store::recalculate_dirty`] until nothing is dirty (or
    /// `stop` is set between batches), in bounded transactions, then the
    /// orders whose lines spanned batches are compared with their totals:
    /// for when most of the book is dirty.
    fn recalculate_bulk(
        &self,
        max_skus: usize,
        as_of: DateTime<Utc>,
        stop: &std::sync::atomic::AtomicBool,
        on_batch: impl FnMut(&BatchReport) + Send,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Runs every SKU through the engine and reports each line and order
    /// whose stored values differ from the answer, in one transaction;
    /// with `repair` it writes the answer (history cause `audit`), else it
    /// writes nothing.
    fn audit(
        &self,
        repair: bool,
        as_of: DateTime<Utc>,
    ) -> impl Future<Output = Result<crate::audit::AuditReport, StoreError>> + Send;
    /// How many of `skus` (all when `None`) wait for a recalculation.
    fn dirty_count(
        &self,
        skus: Option<&[String]>,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// What a waiter reads once its events have committed: every
    /// recalculation batch that begins later gets a higher tick.
    fn recalc_ticket(&self) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// How many of `skus` (all when `None`) still wait for a recalculation
    /// that includes what committed before `ticket` was read: dirty or set
    /// aside, and not recalculated since by a batch of a higher tick (so a
    /// SKU that newer events keep marking is done once one batch that began
    /// after the ticket wrote it back).
    fn waiting_count(
        &self,
        skus: Option<&[String]>,
        ticket: i64,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// Records the daemon's options, which [`Store::ingest`] then follows
    /// whichever process sends the events.
    fn publish_options(
        &self,
        options: IngestOptions,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Queues a recalculation job for the SKUs already marked dirty.
    fn enqueue(&self, job: &RecalcJob) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn queue_status(&self) -> impl Future<Output = Result<QueueStatus, StoreError>> + Send;

    // Read-only queries of the HTTP API and the metrics (store/sqlite/queries.rs).

    /// An order with every line, as stored; `None` when unknown.
    fn order_view(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<OrderView>, StoreError>> + Send;
    /// The stored state of the pools of `skus` (with the SKUs tied to them
    /// by replacement when `with_replacements` and replacement is on).
    fn pool_state(
        &self,
        skus: &[String],
        with_replacements: bool,
    ) -> impl Future<Output = Result<PoolState, StoreError>> + Send;
    /// What the availability feed and the purchasing report are computed
    /// from, for the whole book, from the stored backorder quantities
    /// (store/feed_rows.rs), orders scoped as of `as_of`.
    fn feed_source(
        &self,
        as_of: DateTime<Utc>,
    ) -> impl Future<Output = Result<crate::feed::FeedSource, StoreError>> + Send;
    /// The feed in parts (store/feed_stamps.rs): the SKUs whose stored
    /// figures are current, and the source of the rest (on PostgreSQL
    /// always the whole book's).
    fn feed_parts(
        &self,
        as_of: DateTime<Utc>,
        prefilter: feed_stamps::Prefilter,
    ) -> impl Future<Output = Result<feed_stamps::FeedParts, StoreError>> + Send;
    /// `sku`'s stored feed entry when it is current (store/feed_stamps.rs);
    /// `None`: it must be computed from the stored state.
    fn stored_entry(
        &self,
        sku: &str,
    ) -> impl Future<Output = Result<Option<crate::feed::FeedEntry>, StoreError>> + Send;
    /// A page of orders whose stored status is backordered, oldest first.
    fn backorders(
        &self,
        query: &BackorderQuery,
    ) -> impl Future<Output = Result<Vec<BackorderedOrder>, StoreError>> + Send;
    /// Whether the database answers (else an error) and its schema is current.
    fn readiness(&self) -> impl Future<Output = Result<Readiness, StoreError>> + Send;
    /// When the oldest waiting dirty mark was made.
    fn oldest_dirty_mark(
        &self,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, StoreError>> + Send;
    /// When the events `ids` were received (unknown ids skipped).
    fn received_at(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<DateTime<Utc>>, StoreError>> + Send;
}

/// The daemon options that decide which events recalculate at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestOptions {
    /// Status and payment changes recalculate at once (else: at the periodic run).
    pub recalculate_on_status_change: bool,
    /// A new order does not recalculate at once (it waits for the periodic run).
    pub defer_new_orders: bool,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            recalculate_on_status_change: true,
            defer_new_orders: false,
        }
    }
}

/// What happened to a batch of events.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestReport {
    /// Ids applied now, in order.
    pub accepted: Vec<String>,
    /// Ids seen before: acknowledged and ignored.
    pub duplicates: Vec<String>,
    /// SKUs marked for recalculation (empty when `all_marked`).
    pub marked_skus: Vec<String>,
    pub all_marked: bool,
}

/// What one recalculation transaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BatchReport {
    /// The dirty SKUs it cleared.
    pub skus: Vec<String>,
    /// Why they were dirty (event ids and the like), deduplicated.
    pub causes: Vec<String>,
    pub lines_seen: usize,
    pub lines_changed: usize,
    pub orders_changed: usize,
    /// Of the batch's time, what computing and recording the availability
    /// feed's figures took (store/figures.rs).
    #[serde(skip)]
    pub feed_time: std::time::Duration,
}

/// The queue as `status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStatus {
    pub pending: i64,
    pub running: i64,
    pub failed: i64,
    /// SKUs waiting for a recalculation (set-aside ones included).
    pub dirty_skus: i64,
    /// SKUs set aside after their recalculation failed (store/set_aside.rs).
    pub set_aside_skus: i64,
}
