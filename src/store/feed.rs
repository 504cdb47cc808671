//! The message log read back: the pull feed (messages after a cursor, in
//! position order, which is commit order), its wake-up, and retention.
//! The SQL reads the same on both backends (`$N` placeholders work in
//! SQLite too) except for the timestamp bind, so it is written once and
//! instantiated per pool type.

use std::sync::LazyLock;

use tokio::sync::watch;

use super::StoreError;

/// One stored message: its position and its JSON exactly as delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    pub position: i64,
    pub body: String,
}

/// A place in the feed. Opaque to clients: `c` and a position; the empty
/// cursor (or none) is the start of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor(pub i64);

/// A cursor that this daemon did not hand out.
#[derive(Debug, thiserror::Error)]
#[error("not a cursor of this feed: {0:?} (pass the `next` value of an earlier answer)")]
pub struct BadCursor(pub String);

impl Cursor {
    pub fn parse(text: &str) -> Result<Cursor, BadCursor> {
        if text.is_empty() {
            return Ok(Cursor(0));
        }
        text.strip_prefix('c')
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|n| *n >= 0 && !text[1..].starts_with('+'))
            .map(Cursor)
            .ok_or_else(|| BadCursor(text.to_owned()))
    }

    /// The cursor after `entries`, or this one when there are none.
    pub fn after(self, entries: &[FeedEntry]) -> Cursor {
        entries.last().map_or(self, |e| Cursor(e.position))
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// Bumped after every commit of this process that may have written
/// messages; long-polls of this process watch it (others poll).
static COMMITTED: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);

/// Wakes this process's long-polls: a write that may hold messages committed.
pub fn committed() {
    COMMITTED.send_modify(|n| *n = n.wrapping_add(1));
}

/// A receiver of [`committed`], to subscribe before reading the feed so
/// that a commit between the read and the wait is not missed.
pub fn watch_commits() -> watch::Receiver<u64> {
    COMMITTED.subscribe()
}

/// Most messages one feed read returns.
pub const MAX_LIMIT: i64 = 1000;

macro_rules! feed_reads {
    ($pool:ty, $at:ty, $format:expr) => {
        /// Up to `limit` messages after `cursor`, in position order.
        pub async fn after(
            pool: &$pool,
            cursor: super::Cursor,
            limit: i64,
        ) -> Result<Vec<super::FeedEntry>, StoreError> {
            let rows: Vec<(i64, String)> = sqlx::query_as(
                "SELECT position, body FROM messages WHERE position > $1 ORDER BY position LIMIT $2",
            )
            .bind(cursor.0)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(position, body)| super::FeedEntry { position, body })
                .collect())
        }

        /// Deletes up to `batch` of the oldest messages created before
        /// `before` and below the position `keep_from` (the oldest one a
        /// live destination still needs, src/delivery/retention.rs), and
        /// the dead-list entries of the messages it deleted: the number
        /// of messages deleted.
        pub async fn prune_expired_messages(
            pool: &$pool,
            before: chrono::DateTime<chrono::Utc>,
            keep_from: i64,
            batch: i64,
        ) -> Result<u64, StoreError> {
            let before: $at = $format(before);
            let deleted: Vec<(i64,)> = sqlx::query_as(
                "DELETE FROM messages WHERE position IN (
                     SELECT position FROM messages WHERE created_at < $1 AND position < $2
                     ORDER BY position LIMIT $3)
                 RETURNING position",
            )
            .bind(before)
            .bind(keep_from)
            .bind(batch)
            .fetch_all(pool)
            .await?;
            if let Some(last) = deleted.iter().map(|d| d.0).max() {
                // A dead message is redeliverable only while the log has
                // it. Its own statement: one left behind by a failure here
                // goes with the next batch (`<=`).
                sqlx::query(
                    "DELETE FROM delivery_dead WHERE position <= $1
                     AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.position = delivery_dead.position)",
                )
                .bind(last)
                .execute(pool)
                .await?;
            }
            Ok(deleted.len() as u64)
        }
    };
}

pub mod sqlite {
    use super::StoreError;
    feed_reads!(sqlx::SqlitePool, String, |at: chrono::DateTime<
        chrono::Utc,
    >| at
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
}

pub mod postgres {
    use super::StoreError;
    feed_reads!(
        sqlx::PgPool,
        chrono::DateTime<chrono::Utc>,
        |at: chrono::DateTime<chrono::Utc>| at
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_what_they_print_and_refuse_the_rest() {
        assert_eq!(Cursor::parse("").unwrap(), Cursor(0));
        assert_eq!(Cursor::parse(&Cursor(42).to_string()).unwrap(), Cursor(42));
        for bad in ["42", "c", "c-1", "c+1", "x1", "c1.5"] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
    }
}
