//! One writer per `serve` process (docs/architecture.md, "The writer").
//!
//! A task owns the process's write connection and takes requests over a
//! channel. Event batches that arrive while it is busy are committed
//! together (group commit): it takes the first request, drains what else
//! is waiting (bounded by [`WriterLimits`]), runs them in one transaction,
//! each inside its own savepoint (a refused batch rolls back to its
//! savepoint and gets its refusal, the others still commit), queues one
//! recalculation job for the group, commits once and only then answers
//! each request. Other writes (a recalculation batch, an import, the
//! queue's bookkeeping) borrow the connection whole through a [`Lease`],
//! one at a time between groups: on SQLite nothing of this process then
//! ever competes for the database's one write lock, so "database is
//! locked" can only come from another process, after the busy timeout.
//!
//! The loop is written once; a [`WriteDialect`] gives each database's
//! begin statement and the locks a group takes first.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::pool::PoolConnection;
use sqlx::{Connection, Database, Pool};
use tokio::sync::{mpsc, oneshot};

use super::ingest::{self, IngestBackend};
use super::{ErrorKind, IngestOptions, IngestReport, StoreError};
use crate::events::Event;
use crate::queue::RecalcJob;

/// How much one group may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterLimits {
    /// Event batches (requests) per transaction.
    pub max_requests: usize,
    /// Events per transaction (a batch larger than this is a group alone).
    pub max_events: usize,
    /// Requests waiting in the channel before senders wait for room.
    pub queue: usize,
}

impl Default for WriterLimits {
    fn default() -> Self {
        WriterLimits {
            max_requests: 256,
            max_events: 2_000,
            queue: 1_024,
        }
    }
}

/// What one database does differently in the writer's loop.
pub(super) trait WriteDialect: Send + Sync + 'static {
    type Db: Database;
    /// Opens the group's transaction: on SQLite `BEGIN IMMEDIATE`, so the
    /// write lock is taken (or waited for) before anything is read.
    const BEGIN: &'static str;
    /// How often a group that failed on a conflict with another process
    /// ([`ErrorKind::Busy`]: a PostgreSQL deadlock) is run again whole.
    const ATTEMPTS: u32;
    /// Whether a group may leave out its recalculation job while one this
    /// writer queued has not started yet. True only where every
    /// recalculation batch of the process is a lease of this writer
    /// (SQLite): the waiting job's drain then claims after the group's
    /// commit, so it finds the group's marks. On PostgreSQL a batch runs on
    /// another connection beside the group and could end before the
    /// group's marks commit.
    const SHARE_WAITING_JOB: bool;
    /// Takes, at the start of the group's transaction, the locks its
    /// batches need (PostgreSQL: the event locks, src/store/postgres/locks.rs).
    fn lock_group<'c>(
        conn: &'c mut <Self::Db as Database>::Connection,
        batches: &'c [&'c [Event]],
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'c;
}

/// The writer's handle: sends requests to its task.
pub struct Writer<DB: Database> {
    requests: mpsc::Sender<Request<DB>>,
    alive: Arc<AtomicBool>,
    /// A recalculation job this writer queued has not started yet.
    job_waiting: Arc<AtomicBool>,
}

enum Request<DB: Database> {
    Ingest {
        events: Vec<Event>,
        options: IngestOptions,
        reply: oneshot::Sender<Result<IngestReport, StoreError>>,
    },
    Lease {
        reply: oneshot::Sender<Result<Lease<DB>, StoreError>>,
    },
}

fn gone() -> StoreError {
    StoreError::Unavailable("this process's database writer stopped".into())
}

impl<DB: Database> Writer<DB>
where
    DB::Connection: IngestBackend,
{
    /// Starts the writer task on `pool`.
    pub(super) fn start<D: WriteDialect<Db = DB>>(pool: Pool<DB>, limits: WriterLimits) -> Self {
        let (requests, receiver) = mpsc::channel(limits.queue.max(1));
        let alive = Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        let job_waiting = Arc::new(AtomicBool::new(false));
        let waiting = job_waiting.clone();
        tokio::spawn(async move {
            let outcome = tokio::spawn(run::<D>(pool, receiver, limits, waiting)).await;
            flag.store(false, Ordering::Relaxed);
            if let Err(e) = outcome {
                tracing::error!(error = %e, "the database writer died; writes answer unavailable");
            }
        });
        Writer {
            requests,
            alive,
            job_waiting,
        }
    }

    /// Whether requests wait for the connection now.
    pub fn has_waiting(&self) -> bool {
        self.requests.capacity() < self.requests.max_capacity()
    }

    /// A recalculation job begins: the next group queues a job of its own.
    /// Called before the job's drain claims anything.
    pub fn job_started(&self) {
        self.job_waiting.store(false, Ordering::SeqCst);
    }

    /// Whether the task still takes requests (readiness).
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed) && !self.requests.is_closed()
    }

    /// Applies a batch of events in the next group; answered after its commit.
    pub async fn ingest(
        &self,
        events: &[Event],
        options: IngestOptions,
    ) -> Result<IngestReport, StoreError> {
        let (reply, answer) = oneshot::channel();
        let request = Request::Ingest {
            events: events.to_vec(),
            options,
            reply,
        };
        self.requests.send(request).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// The write connection, alone, until the lease is dropped.
    pub async fn lease(&self) -> Result<Lease<DB>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Lease { reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// The write connection lent to one caller; it goes back to the writer
/// when dropped (a transaction left open on it is rolled back first, by
/// sqlx, on the connection's next use).
pub struct Lease<DB: Database> {
    conn: Option<PoolConnection<DB>>,
    back: Option<oneshot::Sender<PoolConnection<DB>>>,
}

impl<DB: Database> Deref for Lease<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &Self::Target {
        self.conn.as_ref().expect("a lease holds its connection")
    }
}

impl<DB: Database> DerefMut for Lease<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.conn.as_mut().expect("a lease holds its connection")
    }
}

impl<DB: Database> Drop for Lease<DB> {
    fn drop(&mut self) {
        if let (Some(conn), Some(back)) = (self.conn.take(), self.back.take()) {
            let _ = back.send(conn);
        }
    }
}

struct Pending {
    events: Vec<Event>,
    options: IngestOptions,
    reply: oneshot::Sender<Result<IngestReport, StoreError>>,
}

async fn run<D: WriteDialect>(
    pool: Pool<D::Db>,
    mut requests: mpsc::Receiver<Request<D::Db>>,
    limits: WriterLimits,
    job_waiting: Arc<AtomicBool>,
) where
    <D::Db as Database>::Connection: IngestBackend,
{
    // The connection goes back to the pool after each group or lease: on
    // SQLite that pool has one connection, shared with the queue's own
    // bookkeeping, which so waits its turn in the pool's queue instead of
    // spinning on the database's lock.
    let mut next = requests.recv().await;
    while let Some(request) = next.take() {
        match request {
            Request::Lease { reply } => {
                drop(lend(&pool, None, reply).await);
                next = requests.recv().await;
            }
            Request::Ingest {
                events,
                options,
                reply,
            } => {
                let mut group = vec![Pending {
                    events,
                    options,
                    reply,
                }];
                let mut event_count = group[0].events.len();
                // What is already waiting joins the group, up to the limits.
                while group.len() < limits.max_requests && event_count < limits.max_events {
                    match requests.try_recv() {
                        Ok(Request::Ingest {
                            events,
                            options,
                            reply,
                        }) => {
                            event_count += events.len();
                            group.push(Pending {
                                events,
                                options,
                                reply,
                            });
                        }
                        Ok(lease) => {
                            next = Some(lease);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                drop(commit_group::<D>(&pool, None, group, &job_waiting).await);
                if next.is_none() {
                    next = requests.recv().await;
                }
            }
        }
    }
}

/// The writer's connection, opened (again) when it has none.
async fn connection<DB: Database>(
    pool: &Pool<DB>,
    conn: Option<PoolConnection<DB>>,
) -> Result<PoolConnection<DB>, StoreError> {
    match conn {
        Some(conn) => Ok(conn),
        None => pool.acquire().await.map_err(StoreError::from),
    }
}

async fn lend<DB: Database>(
    pool: &Pool<DB>,
    conn: Option<PoolConnection<DB>>,
    reply: oneshot::Sender<Result<Lease<DB>, StoreError>>,
) -> Option<PoolConnection<DB>> {
    let conn = match connection(pool, conn).await {
        Ok(conn) => conn,
        Err(e) => {
            let _ = reply.send(Err(e));
            return None;
        }
    };
    let (back, returned) = oneshot::channel();
    let lease = Lease {
        conn: Some(conn),
        back: Some(back),
    };
    if let Err(Ok(mut lease)) = reply.send(Ok(lease)) {
        // The caller gave up waiting: keep the connection.
        return lease.conn.take();
    }
    // Dropped (its holder's future cancelled or done): it comes back.
    returned.await.ok()
}

/// Runs a group and answers each of its requests; the connection is kept
/// unless the group failed on it.
async fn commit_group<D: WriteDialect>(
    pool: &Pool<D::Db>,
    conn: Option<PoolConnection<D::Db>>,
    group: Vec<Pending>,
    job_waiting: &AtomicBool,
) -> Option<PoolConnection<D::Db>>
where
    <D::Db as Database>::Connection: IngestBackend,
{
    let mut conn = match connection(pool, conn).await {
        Ok(conn) => conn,
        Err(e) => {
            answer_all(group, &e);
            return None;
        }
    };
    let mut attempt = 1;
    loop {
        let share = D::SHARE_WAITING_JOB && job_waiting.load(Ordering::SeqCst);
        match run_group::<D>(&mut conn, &group, share).await {
            Ok((outcomes, queued)) => {
                if queued && D::SHARE_WAITING_JOB {
                    job_waiting.store(true, Ordering::SeqCst);
                }
                for (request, outcome) in group.into_iter().zip(outcomes) {
                    let _ = request.reply.send(outcome);
                }
                return Some(conn);
            }
            // Rolled back whole: nothing of the group was applied.
            Err(e) if e.kind() == ErrorKind::Busy && attempt < D::ATTEMPTS => {
                tracing::debug!(error = %e, attempt, "a group of events met another transaction; applying it again");
                attempt += 1;
            }
            Err(e) => {
                tracing::warn!(error = %e, requests = group.len(), "a group of events failed; none of it was applied");
                answer_all(group, &e);
                // A connection that failed is not trusted with the next group.
                return (e.kind() != ErrorKind::Unavailable).then_some(conn);
            }
        }
    }
}

fn answer_all(group: Vec<Pending>, e: &StoreError) {
    for request in group {
        let _ = request.reply.send(Err(same_error(e)));
    }
}

/// The group's error for each of its requests: the same kind and message.
fn same_error(e: &StoreError) -> StoreError {
    StoreError::Shared {
        kind: e.kind(),
        message: e.to_string(),
    }
}

/// One transaction: each request in its savepoint, one job for the group
/// (none when `share`: a job this writer queued is still waiting, and its
/// drain will find the group's marks). `Err` when the group as a whole
/// failed (nothing committed); a request's own failure is its outcome.
/// Also whether the group queued a job.
async fn run_group<D: WriteDialect>(
    conn: &mut <D::Db as Database>::Connection,
    group: &[Pending],
    share: bool,
) -> Result<(Vec<Result<IngestReport, StoreError>>, bool), StoreError>
where
    <D::Db as Database>::Connection: IngestBackend,
{
    let mut tx = conn.begin_with(D::BEGIN).await?;
    let batches: Vec<&[Event]> = group.iter().map(|r| r.events.as_slice()).collect();
    D::lock_group(&mut *tx, &batches).await?;
    let mut outcomes = Vec::with_capacity(group.len());
    // One job for the group: the causes and SKUs of its batches.
    let (mut causes, mut skus, mut all) = (Vec::new(), Vec::new(), false);
    let mut messages = Vec::new();
    for request in group {
        let mut savepoint = Connection::begin(&mut *tx).await?;
        match ingest::apply_batch(&mut *savepoint, &request.events, request.options).await {
            Ok((report, pending)) => {
                savepoint.commit().await?;
                messages.extend(pending);
                if report.all_marked || !report.marked_skus.is_empty() {
                    causes.extend(report.accepted.iter().cloned());
                    skus.extend(report.marked_skus.iter().cloned());
                    all |= report.all_marked;
                }
                outcomes.push(Ok(report));
            }
            // The database's own trouble fails the whole group.
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                savepoint.rollback().await?;
                outcomes.push(Err(e));
            }
        }
    }
    // A full recalculation is always queued: the waiting job may be a
    // drain of a few SKUs that began with a smaller batch size in mind.
    let queue = all || (!skus.is_empty() && !share);
    if queue {
        tx.push_job(&RecalcJob::new(causes, &skus, all)).await?;
    }
    // Last: on PostgreSQL the message log's lock is held from here to the commit.
    super::messages::append(&mut *tx, messages, chrono::Utc::now()).await?;
    tx.commit().await?;
    Ok((outcomes, queue))
}

/// A connection to write on: the writer's (leased) when this process runs
/// one, else one of the pool's (a CLI command).
pub enum WriteConnection<DB: Database> {
    Leased(Lease<DB>),
    Pooled(PoolConnection<DB>),
}

// The type is named by `RecalcStore::Conn`; its constructor stays for the
// store's backends, whose connections are `IngestBackend`s.
#[allow(private_bounds)]
impl<DB: Database> WriteConnection<DB>
where
    DB::Connection: IngestBackend,
{
    pub(super) async fn get(
        writer: Option<&Writer<DB>>,
        pool: &Pool<DB>,
    ) -> Result<Self, StoreError> {
        Ok(match writer {
            Some(writer) => WriteConnection::Leased(writer.lease().await?),
            None => WriteConnection::Pooled(pool.acquire().await?),
        })
    }
}

impl<DB: Database> Deref for WriteConnection<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &Self::Target {
        match self {
            WriteConnection::Leased(lease) => lease,
            WriteConnection::Pooled(conn) => conn,
        }
    }
}

impl<DB: Database> DerefMut for WriteConnection<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match self {
            WriteConnection::Leased(lease) => lease,
            WriteConnection::Pooled(conn) => conn,
        }
    }
}
