//! Delivery state per destination (migration `*_delivery.sql`): the
//! cursor into the message log, the messages still to deliver (one due
//! head per key, the others behind it), claims with a lease, the dead list
//! and the 410-disabled flag.
//!
//! Everything works in bounded batches on rows: a backlog of a million
//! messages stays in the database, never in memory.
//!
//! Written once for both databases: the SQL differs only in PostgreSQL's
//! row locks. There, a scan (and a redelivery) locks the destination's row
//! exclusively and a settlement shares it, so a scan that puts a message
//! behind a key's head never races the head's settlement that wakes the
//! next one; claims use `FOR UPDATE SKIP LOCKED`, so two processes never
//! claim one row. SQLite has one writer at a time: its transactions start
//! with `BEGIN IMMEDIATE` and need no row locks.

use super::StoreError;

/// A message of the log, as a scan sees it.
pub struct Scanned {
    pub position: i64,
    pub kind: String,
    pub key: String,
    pub created_ms: i64,
    pub body: String,
}

/// A claimed message: this process sends it until its lease ends.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub position: i64,
    pub key: String,
    pub created_ms: i64,
    /// Failed attempts so far.
    pub attempts: i64,
    pub claim: String,
}

/// How an attempt settled a claimed message.
#[derive(Debug, Clone)]
pub enum Settled {
    Delivered,
    /// Failed; due again at `at_ms`.
    Retry {
        at_ms: i64,
        error: String,
    },
    /// Failed after its retry window.
    Dead {
        message_id: String,
        error: String,
    },
    /// 410 Gone: the destination is disabled, the message stays due.
    Gone {
        error: String,
    },
    /// The message left the log (pruned) before it was sent: the
    /// destination stopped holding it (see [`sqlite::oldest_needed`]).
    Pruned,
}

#[derive(Debug, Clone)]
pub struct Settlement {
    pub claimed: Claimed,
    pub settled: Settled,
}

/// The state of a destination's row.
#[derive(Debug, Clone, Default)]
pub struct DestinationRow {
    pub cursor: i64,
    pub disabled_at_ms: Option<i64>,
    pub disabled_reason: Option<String>,
}

/// One destination as `status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DestinationStatus {
    pub destination: String,
    /// Messages it has yet to take (looked at already).
    pub pending: i64,
    /// Messages of the log not looked at yet for it (some may not be of
    /// its types).
    pub unscanned: i64,
    pub dead: i64,
    /// When the oldest message it has yet to take was created (Unix ms).
    pub oldest_pending_ms: Option<i64>,
    pub disabled_at_ms: Option<i64>,
    pub disabled_reason: Option<String>,
}

/// One dead message.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadMessage {
    pub destination: String,
    pub message_id: String,
    pub key: String,
    pub position: i64,
    pub created_ms: i64,
    pub attempts: i64,
    pub last_error: String,
    pub dead_at_ms: i64,
}

macro_rules! delivery_state {
    (
        $db:ty,
        begin = $begin:literal,
        for_update = $for_update:literal,
        for_share = $for_share:literal,
        skip_locked = $skip_locked:literal,
        created_ms = $created_ms:literal $(,)?
    ) => {
        use sqlx::{Connection, Pool};

        use super::*;

        type Db = $db;

        /// Makes sure `name` has its row; a new one starts at the newest
        /// message (a destination added later gets what comes after).
        pub async fn ensure(pool: &Pool<Db>, name: &str, now_ms: i64) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO delivery_destinations (name, cursor, added_at_ms)
                 SELECT $1, COALESCE(MAX(position), 0), $2 FROM messages WHERE true
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(now_ms)
            .execute(pool)
            .await?;
            Ok(())
        }

        pub async fn destination(
            pool: &Pool<Db>,
            name: &str,
        ) -> Result<Option<DestinationRow>, StoreError> {
            let row: Option<(i64, Option<i64>, Option<String>)> = sqlx::query_as(
                "SELECT cursor, disabled_at_ms, disabled_reason FROM delivery_destinations WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(pool)
            .await?;
            Ok(row.map(|(cursor, disabled_at_ms, disabled_reason)| DestinationRow {
                cursor,
                disabled_at_ms,
                disabled_reason,
            }))
        }

        /// Records that a process with `name` in its configuration runs
        /// its delivery loop: the destination is live, its messages kept.
        pub async fn touch(pool: &Pool<Db>, name: &str, now_ms: i64) -> Result<(), StoreError> {
            sqlx::query("UPDATE delivery_destinations SET seen_ms = $2 WHERE name = $1")
                .bind(name)
                .bind(now_ms)
                .execute(pool)
                .await?;
            Ok(())
        }

        /// The oldest position a live destination still needs, and that
        /// destination: its oldest pending message, or the first one
        /// after its cursor (not looked at yet). Live: in `configured`
        /// (this process's destinations) or seen since `live_since_ms`.
        /// `None`: no live destination needs anything.
        pub async fn oldest_needed(
            pool: &Pool<Db>,
            live_since_ms: i64,
            configured: &[String],
        ) -> Result<Option<(i64, String)>, StoreError> {
            let rows: Vec<(String, i64, Option<i64>)> =
                sqlx::query_as("SELECT name, cursor, seen_ms FROM delivery_destinations")
                    .fetch_all(pool)
                    .await?;
            let newest = newest_position(pool).await?;
            let mut hold: Option<(i64, String)> = None;
            for (name, cursor, seen_ms) in rows {
                let live = configured.contains(&name)
                    || seen_ms.is_some_and(|seen| seen >= live_since_ms);
                if !live {
                    continue;
                }
                // The primary key's range: one index seek.
                let (first,): (Option<i64>,) = sqlx::query_as(
                    "SELECT MIN(position) FROM delivery_pending WHERE destination = $1",
                )
                .bind(&name)
                .fetch_one(pool)
                .await?;
                let unscanned = (cursor < newest).then_some(cursor + 1);
                let needed = match (first, unscanned) {
                    (Some(a), Some(b)) => a.min(b),
                    (a, b) => match a.or(b) {
                        Some(p) => p,
                        None => continue,
                    },
                };
                if hold.as_ref().is_none_or(|(p, _)| needed < *p) {
                    hold = Some((needed, name));
                }
            }
            Ok(hold)
        }

        /// Messages after `position` per type: (type, count, newest position).
        pub async fn created_since(
            pool: &Pool<Db>,
            position: i64,
        ) -> Result<Vec<(String, i64, i64)>, StoreError> {
            let rows = sqlx::query_as(
                "SELECT type, COUNT(*), MAX(position) FROM messages WHERE position > $1 GROUP BY type",
            )
            .bind(position)
            .fetch_all(pool)
            .await?;
            Ok(rows)
        }

        /// The newest message's position (0: none).
        pub async fn newest_position(pool: &Pool<Db>) -> Result<i64, StoreError> {
            let (newest,): (Option<i64>,) = sqlx::query_as("SELECT MAX(position) FROM messages")
                .fetch_one(pool)
                .await?;
            Ok(newest.unwrap_or(0))
        }

        /// Looks at up to `batch` messages after the destination's cursor:
        /// those `wanted` become pending (due now when no earlier message
        /// of their key waits, else behind it); the cursor moves past all.
        /// Returns how many were looked at.
        pub async fn scan(
            pool: &Pool<Db>,
            name: &str,
            batch: i64,
            now_ms: i64,
            wanted: &(dyn Fn(&Scanned) -> bool + Sync),
        ) -> Result<usize, StoreError> {
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin_with($begin).await?;
            let Some((cursor,)): Option<(i64,)> = sqlx::query_as(concat!(
                "SELECT cursor FROM delivery_destinations WHERE name = $1",
                $for_update
            ))
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            else {
                return Ok(0);
            };
            let rows: Vec<(i64, String, String, i64, String)> = sqlx::query_as(concat!(
                "SELECT position, type, key, ",
                $created_ms,
                ", body FROM messages WHERE position > $1 ORDER BY position LIMIT $2"
            ))
            .bind(cursor)
            .bind(batch)
            .fetch_all(&mut *tx)
            .await?;
            let Some(last) = rows.last().map(|r| r.0) else {
                return Ok(0);
            };
            let seen = rows.len();
            for (position, kind, key, created_ms, body) in rows {
                let message = Scanned {
                    position,
                    kind,
                    key,
                    created_ms,
                    body,
                };
                if !wanted(&message) {
                    continue;
                }
                sqlx::query(
                    "INSERT INTO delivery_pending (destination, position, key, created_ms, attempts, next_at_ms)
                     SELECT $1, $2, $3, $4, 0, CASE WHEN EXISTS (
                         SELECT 1 FROM delivery_pending WHERE destination = $1 AND key = $3
                     ) THEN NULL ELSE $5 END
                     WHERE true
                     ON CONFLICT (destination, position) DO NOTHING",
                )
                .bind(name)
                .bind(message.position)
                .bind(&message.key)
                .bind(message.created_ms)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("UPDATE delivery_destinations SET cursor = $2 WHERE name = $1")
                .bind(name)
                .bind(last)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(seen)
        }

        /// Whether some message of `name` is due at `now_ms` (a read, so
        /// an idle destination does not take the write lock to find out).
        pub async fn any_due(pool: &Pool<Db>, name: &str, now_ms: i64) -> Result<bool, StoreError> {
            let row: Option<(i64,)> = sqlx::query_as(
                "SELECT position FROM delivery_pending
                 WHERE destination = $1 AND next_at_ms <= $2 LIMIT 1",
            )
            .bind(name)
            .bind(now_ms)
            .fetch_optional(pool)
            .await?;
            Ok(row.is_some())
        }

        /// Claims up to `limit` due heads until `lease_until_ms`.
        pub async fn claim(
            pool: &Pool<Db>,
            name: &str,
            now_ms: i64,
            lease_until_ms: i64,
            token: &str,
            limit: i64,
        ) -> Result<Vec<Claimed>, StoreError> {
            let rows: Vec<(i64, String, i64, i64)> = sqlx::query_as(concat!(
                "UPDATE delivery_pending SET next_at_ms = $3, claim = $4
                 WHERE destination = $1 AND position IN (
                     SELECT position FROM delivery_pending
                     WHERE destination = $1 AND next_at_ms <= $2
                     ORDER BY next_at_ms LIMIT $5",
                $skip_locked,
                ") RETURNING position, key, created_ms, attempts"
            ))
            .bind(name)
            .bind(now_ms)
            .bind(lease_until_ms)
            .bind(token)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut claimed: Vec<Claimed> = rows
                .into_iter()
                .map(|(position, key, created_ms, attempts)| Claimed {
                    position,
                    key,
                    created_ms,
                    attempts,
                    claim: token.to_owned(),
                })
                .collect();
            claimed.sort_by_key(|c| c.position);
            Ok(claimed)
        }

        /// A message's id and body; `None` when it is gone from the log.
        pub async fn message(
            pool: &Pool<Db>,
            position: i64,
        ) -> Result<Option<(String, String)>, StoreError> {
            Ok(sqlx::query_as("SELECT id, body FROM messages WHERE position = $1")
                .bind(position)
                .fetch_optional(pool)
                .await?)
        }

        /// Writes what the attempts came to, in one transaction. A
        /// settlement whose claim another process took over (the lease ran
        /// out) is dropped: that process settles the message.
        pub async fn settle(
            pool: &Pool<Db>,
            name: &str,
            settlements: &[Settlement],
            now_ms: i64,
        ) -> Result<(), StoreError> {
            if settlements.is_empty() {
                return Ok(());
            }
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin_with($begin).await?;
            sqlx::query(concat!(
                "SELECT cursor FROM delivery_destinations WHERE name = $1",
                $for_share
            ))
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
            for Settlement { claimed, settled } in settlements {
                let done = match settled {
                    Settled::Delivered | Settled::Pruned => true,
                    Settled::Dead { message_id, error } => {
                        sqlx::query(
                            "INSERT INTO delivery_dead (destination, position, message_id, key, created_ms, attempts, last_error, dead_at_ms)
                             SELECT destination, position, $4, key, created_ms, attempts + 1, $5, $6
                             FROM delivery_pending WHERE destination = $1 AND position = $2 AND claim = $3
                             ON CONFLICT (destination, position) DO UPDATE SET attempts = excluded.attempts,
                                 last_error = excluded.last_error, dead_at_ms = excluded.dead_at_ms",
                        )
                        .bind(name)
                        .bind(claimed.position)
                        .bind(&claimed.claim)
                        .bind(message_id)
                        .bind(error)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                        true
                    }
                    Settled::Retry { at_ms, error } => {
                        sqlx::query(
                            "UPDATE delivery_pending SET next_at_ms = $4, attempts = attempts + 1,
                                 last_error = $5, claim = NULL
                             WHERE destination = $1 AND position = $2 AND claim = $3",
                        )
                        .bind(name)
                        .bind(claimed.position)
                        .bind(&claimed.claim)
                        .bind(at_ms)
                        .bind(error)
                        .execute(&mut *tx)
                        .await?;
                        false
                    }
                    Settled::Gone { error } => {
                        sqlx::query(
                            "UPDATE delivery_pending SET next_at_ms = $4, last_error = $5, claim = NULL
                             WHERE destination = $1 AND position = $2 AND claim = $3",
                        )
                        .bind(name)
                        .bind(claimed.position)
                        .bind(&claimed.claim)
                        .bind(now_ms)
                        .bind(error)
                        .execute(&mut *tx)
                        .await?;
                        sqlx::query(
                            "UPDATE delivery_destinations SET disabled_at_ms = $2, disabled_reason = $3
                             WHERE name = $1 AND disabled_at_ms IS NULL",
                        )
                        .bind(name)
                        .bind(now_ms)
                        .bind(error)
                        .execute(&mut *tx)
                        .await?;
                        false
                    }
                };
                if !done {
                    continue;
                }
                let removed = sqlx::query(
                    "DELETE FROM delivery_pending WHERE destination = $1 AND position = $2 AND claim = $3",
                )
                .bind(name)
                .bind(claimed.position)
                .bind(&claimed.claim)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if removed == 1 {
                    wake_next_of_key(&mut tx, name, &claimed.key, now_ms).await?;
                }
            }
            tx.commit().await?;
            Ok(())
        }

        /// Makes the oldest waiting message of `key` the due head.
        async fn wake_next_of_key(
            conn: &mut <Db as sqlx::Database>::Connection,
            name: &str,
            key: &str,
            now_ms: i64,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "UPDATE delivery_pending SET next_at_ms = $3
                 WHERE destination = $1 AND next_at_ms IS NULL AND position = (
                     SELECT MIN(position) FROM delivery_pending WHERE destination = $1 AND key = $2
                 )",
            )
            .bind(name)
            .bind(key)
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// Clears the 410 flag; `false` when `name` is unknown.
        pub async fn enable(pool: &Pool<Db>, name: &str) -> Result<bool, StoreError> {
            let updated = sqlx::query(
                "UPDATE delivery_destinations SET disabled_at_ms = NULL, disabled_reason = NULL WHERE name = $1",
            )
            .bind(name)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(updated == 1)
        }

        /// Dead messages, oldest first; of one destination when given.
        pub async fn dead(
            pool: &Pool<Db>,
            destination: Option<&str>,
            limit: i64,
        ) -> Result<Vec<DeadMessage>, StoreError> {
            let rows: Vec<(String, String, String, i64, i64, i64, String, i64)> = sqlx::query_as(
                "SELECT destination, message_id, key, position, created_ms, attempts, last_error, dead_at_ms
                 FROM delivery_dead WHERE ($1 IS NULL OR destination = $1)
                 ORDER BY destination, position LIMIT $2",
            )
            .bind(destination)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(
                    |(destination, message_id, key, position, created_ms, attempts, last_error, dead_at_ms)| {
                        DeadMessage {
                            destination,
                            message_id,
                            key,
                            position,
                            created_ms,
                            attempts,
                            last_error,
                            dead_at_ms,
                        }
                    },
                )
                .collect())
        }

        /// Puts dead messages back (the message `id`, or every one when
        /// `None`), of one destination when given; a message goes behind
        /// the one of its key in hand, if any. Returns how many.
        pub async fn redeliver(
            pool: &Pool<Db>,
            id: Option<&str>,
            destination: Option<&str>,
            now_ms: i64,
        ) -> Result<u64, StoreError> {
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin_with($begin).await?;
            let rows: Vec<(String, i64, String)> = sqlx::query_as(
                "SELECT destination, position, key FROM delivery_dead
                 WHERE ($1 IS NULL OR message_id = $1) AND ($2 IS NULL OR destination = $2)
                 ORDER BY destination, position",
            )
            .bind(id)
            .bind(destination)
            .fetch_all(&mut *tx)
            .await?;
            let mut locked: Option<String> = None;
            for (name, position, key) in &rows {
                if locked.as_deref() != Some(name.as_str()) {
                    sqlx::query(concat!(
                        "SELECT cursor FROM delivery_destinations WHERE name = $1",
                        $for_update
                    ))
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
                    locked = Some(name.clone());
                }
                sqlx::query(
                    "INSERT INTO delivery_pending (destination, position, key, created_ms, attempts, next_at_ms)
                     SELECT $1, $2, $3, $4, 0, CASE WHEN EXISTS (
                         SELECT 1 FROM delivery_pending WHERE destination = $1 AND key = $3
                     ) THEN NULL ELSE $5 END
                     WHERE true
                     ON CONFLICT (destination, position) DO NOTHING",
                )
                .bind(name)
                .bind(position)
                .bind(key)
                // Its retry window starts again at the redelivery.
                .bind(now_ms)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM delivery_dead WHERE destination = $1 AND position = $2")
                    .bind(name)
                    .bind(position)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(rows.len() as u64)
        }

        /// Every destination that ever had a row, by name.
        pub async fn status(pool: &Pool<Db>) -> Result<Vec<DestinationStatus>, StoreError> {
            let newest = newest_position(pool).await?;
            let rows: Vec<(String, i64, Option<i64>, Option<String>)> = sqlx::query_as(
                "SELECT name, cursor, disabled_at_ms, disabled_reason FROM delivery_destinations ORDER BY name",
            )
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for (destination, cursor, disabled_at_ms, disabled_reason) in rows {
                let (pending,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM delivery_pending WHERE destination = $1",
                )
                .bind(&destination)
                .fetch_one(pool)
                .await?;
                let oldest: Option<(i64,)> = sqlx::query_as(
                    "SELECT created_ms FROM delivery_pending WHERE destination = $1 ORDER BY position LIMIT 1",
                )
                .bind(&destination)
                .fetch_optional(pool)
                .await?;
                let (dead,): (i64,) =
                    sqlx::query_as("SELECT COUNT(*) FROM delivery_dead WHERE destination = $1")
                        .bind(&destination)
                        .fetch_one(pool)
                        .await?;
                // A message not looked at yet is undelivered too (it may
                // turn out not to be of its types: the scan is quick).
                let unscanned_oldest: Option<(i64,)> = if cursor < newest {
                    sqlx::query_as(concat!(
                        "SELECT ",
                        $created_ms,
                        " FROM messages WHERE position > $1 ORDER BY position LIMIT 1"
                    ))
                    .bind(cursor)
                    .fetch_optional(pool)
                    .await?
                } else {
                    None
                };
                let oldest_pending_ms = match (oldest, unscanned_oldest) {
                    (Some((a,)), Some((b,))) => Some(a.min(b)),
                    (a, b) => a.or(b).map(|o| o.0),
                };
                out.push(DestinationStatus {
                    destination,
                    pending,
                    unscanned: (newest - cursor).max(0),
                    dead,
                    oldest_pending_ms,
                    disabled_at_ms,
                    disabled_reason,
                });
            }
            Ok(out)
        }
    };
}

pub mod sqlite {
    delivery_state!(
        sqlx::Sqlite,
        begin = "BEGIN IMMEDIATE",
        for_update = "",
        for_share = "",
        skip_locked = "",
        // RFC 3339 text to Unix milliseconds.
        created_ms = "CAST(ROUND((julianday(created_at) - 2440587.5) * 86400000) AS INTEGER)",
    );
}

pub mod postgres {
    delivery_state!(
        sqlx::Postgres,
        begin = "BEGIN",
        for_update = " FOR UPDATE",
        for_share = " FOR SHARE",
        skip_locked = " FOR UPDATE SKIP LOCKED",
        created_ms = "CAST(EXTRACT(EPOCH FROM created_at) * 1000 AS BIGINT)",
    );
}
