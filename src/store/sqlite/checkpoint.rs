//! The WAL checkpoint of a `serve` process, off its write connection.
//!
//! SQLite copies the write-ahead log back into the database file at the
//! commit that takes the log past 1,000 pages, in the committing
//! connection: after a large write-back that commit (and every request the
//! writer holds meanwhile) waited for the copy. The writer's connection
//! therefore never checkpoints; a task does it on a read connection, in
//! passive mode, which waits for no lock and lets the writer go on.

use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::SqliteConnectOptions;

/// How often the task copies the log back.
const EVERY: Duration = Duration::from_millis(500);

/// The write connection's options: no checkpoint of its own, the whole
/// file mapped for reading, and a page cache of 64 MiB (a hot pool's
/// write-back touches tens of thousands of order pages; with a smaller
/// cache SQLite spills dirty pages before the commit).
pub(super) fn writer_options(connect: SqliteConnectOptions) -> SqliteConnectOptions {
    connect
        .pragma("wal_autocheckpoint", "0")
        .pragma("mmap_size", super::READ_MMAP_BYTES)
        .pragma("cache_size", "-65536")
}

/// Starts the checkpoint task on `pool` (a read pool of the same file).
/// It ends with the runtime; a failed checkpoint is tried again next time
/// (the log only grows meanwhile).
pub(super) fn start(pool: SqlitePool) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                tracing::debug!(error = %e, "WAL checkpoint failed; trying again later");
            }
        }
    });
}
