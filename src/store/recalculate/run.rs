//! The transactions around [`batch`], for a store that opens its own: one
//! batch per transaction, retried when the database says it did nothing
//! (a deadlock, a serialization failure) or another worker holds part of
//! the group. A caller that owns its transaction (the writer task) calls
//! [`batch`] itself.

use std::future::Future;
use std::ops::DerefMut;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::full_run::FullRun;
use super::{Attempt, LINES_PER_BATCH, PoolCache, RecalcDialect, Written, append_messages, batch};
use crate::engine::time_format::format_timestamp;
use crate::store::{BatchReport, StoreError};

/// A full run's transactions hold at most this many lines (unless one SKU
/// has more): each is a few tens of milliseconds, so an event waits at
/// most that long behind a `recalc --all` of the whole book.
pub const FULL_RUN_LINES: usize = 5_000;

/// How often a transaction is tried again after a deadlock, a
/// serialization failure or a replacement group another worker holds
/// part of.
const ATTEMPTS: u32 = 20;

/// Orders set from their lines per transaction at the end of a bulk run.
const REFRESH_CHUNK: usize = 1_000;

/// A store whose recalculations open their own transactions.
pub trait RecalcStore: Sync {
    type Db: sqlx::Database;
    /// The connection writes take (SQLite: a turn on the writer's one
    /// connection), on which [`RecalcStore::BEGIN`] opens the transaction.
    type Conn: DerefMut<Target = <Self::Db as sqlx::Database>::Connection> + Send;
    /// The statement that opens a write transaction (SQLite: `BEGIN
    /// IMMEDIATE`, so nothing slips in between what a batch reads and
    /// what it writes).
    const BEGIN: &'static str;
    fn connection(&self) -> impl Future<Output = Result<Self::Conn, StoreError>> + Send;
    /// The transaction did nothing and may simply be run again.
    fn is_transient(&self, error: &StoreError) -> bool;
    /// The process's cache of hot pools, if it keeps one.
    fn pool_cache(&self) -> Option<&PoolCache>;
    /// The line budget of a full run's next transaction.
    fn full_run_lines(&self) -> usize {
        FULL_RUN_LINES
    }
}

fn backoff(attempt: u32) -> impl Future<Output = ()> {
    tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt)))
}

/// One batch of the dirty SKUs in its own transaction; `None` when nothing
/// is dirty (or the rest of every group stayed another worker's).
pub async fn recalculate_dirty<S: RecalcStore>(
    store: &S,
    max_skus: usize,
    as_of: DateTime<Utc>,
) -> Result<Option<BatchReport>, StoreError>
where
    <S::Db as sqlx::Database>::Connection: RecalcDialect,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut conn = store.connection().await?;
        let mut tx =
            sqlx::Connection::begin_with(&mut *conn, sqlx::AssertSqlSafe(S::BEGIN.to_owned()))
                .await?;
        let cache = store.pool_cache();
        match batch(&mut *tx, max_skus, LINES_PER_BATCH, as_of, cache, None).await {
            Ok(Attempt::Done(Some(report))) => {
                tx.commit().await?;
                if let Some(cache) = cache {
                    cache.committed(&report.skus);
                }
                return Ok(Some(report));
            }
            Ok(Attempt::Done(None)) => {
                tx.commit().await?;
                return Ok(None);
            }
            // The worker holding the rest of the group drains it too.
            Ok(Attempt::Busy) if attempt >= ATTEMPTS => return Ok(None),
            Ok(Attempt::Busy) => {}
            Err(e) if store.is_transient(&e) && attempt < ATTEMPTS => {
                tracing::debug!(error = %e, attempt, "recalculation meets another writer; trying again");
            }
            Err(e) => return Err(e),
        }
        drop(tx);
        drop(conn);
        backoff(attempt).await;
    }
}

/// Every dirty SKU, in bounded transactions (each committed on its own,
/// so events go on between them), until nothing is dirty or `stop` is set;
/// then the orders whose lines spanned batches and whose totals are off
/// their lines are set from their lines.
pub async fn recalculate_bulk<S: RecalcStore>(
    store: &S,
    max_skus: usize,
    as_of: DateTime<Utc>,
    stop: &AtomicBool,
    mut on_batch: impl FnMut(&BatchReport) + Send,
) -> Result<(), StoreError>
where
    <S::Db as sqlx::Database>::Connection: RecalcDialect,
{
    let mut run = FullRun::bulk();
    let mut attempt = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut conn = store.connection().await?;
        let mut tx =
            sqlx::Connection::begin_with(&mut *conn, sqlx::AssertSqlSafe(S::BEGIN.to_owned()))
                .await?;
        match batch(
            &mut *tx,
            max_skus,
            store.full_run_lines(),
            as_of,
            None,
            Some(&mut run),
        )
        .await
        {
            Ok(Attempt::Done(Some(report))) => {
                tx.commit().await?;
                on_batch(&report);
                attempt = 0;
                continue;
            }
            Ok(Attempt::Done(None)) => break,
            Ok(Attempt::Busy) if attempt >= ATTEMPTS => break,
            Ok(Attempt::Busy) => {}
            Err(e) if store.is_transient(&e) && attempt < ATTEMPTS => {
                tracing::debug!(error = %e, attempt, "bulk recalculation meets another writer; trying again");
            }
            Err(e) => return Err(e),
        }
        drop(tx);
        drop(conn);
        attempt += 1;
        backoff(attempt).await;
    }
    set_from_lines(store, &run.off_their_lines(), &format_timestamp(&as_of)).await?;
    Ok(())
}

/// Sets from their stored lines, under their row locks, the orders whose
/// lines a full run saw over several batches and whose totals are off them
/// (drift), in id order (so each transaction's writes fall on neighbouring
/// pages), `REFRESH_CHUNK` per transaction, each with its messages.
async fn set_from_lines<S: RecalcStore>(
    store: &S,
    orders: &[(String, String)],
    at: &str,
) -> Result<(), StoreError>
where
    <S::Db as sqlx::Database>::Connection: RecalcDialect,
{
    for chunk in orders.chunks(REFRESH_CHUNK) {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut conn = store.connection().await?;
            let mut tx =
                sqlx::Connection::begin_with(&mut *conn, sqlx::AssertSqlSafe(S::BEGIN.to_owned()))
                    .await?;
            // As in the run's batches: a log row per order and SKU would
            // double the writes; one epoch bump instead.
            let set = async {
                tx.pause_pool_log().await?;
                let orders = tx.refresh_orders(chunk, at).await?;
                tx.end_pool_log_pause().await?;
                let written = Written {
                    lines: Vec::new(),
                    orders,
                };
                append_messages(&mut *tx, &written).await
            };
            match set.await {
                Ok(()) => {
                    tx.commit().await?;
                    break;
                }
                Err(e) if store.is_transient(&e) && attempt < ATTEMPTS => {}
                Err(e) => return Err(e),
            }
            drop(tx);
            drop(conn);
            backoff(attempt).await;
        }
    }
    Ok(())
}
