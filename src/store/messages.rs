//! The message log (table `messages`): appending the messages of a change
//! in the transaction that makes it, so a message exists if and only if
//! its change committed.
//!
//! Each message gets the next `seq` of its key (table `message_keys`), a
//! new id and its `position` (commit order, which every destination and
//! the pull feed follow). On PostgreSQL the transaction first takes the
//! message log's advisory lock, held to its commit, so positions are handed
//! out in commit order (the migration explains why); take it last in the
//! transaction, just before appending, to serialize only the tail.
//!
//! The SQL is the same on both databases but for the type `created_at` is
//! bound as, so it is written once and instantiated per connection type.

use chrono::{DateTime, Utc};

use super::StoreError;
use crate::delivery::message::{Draft, Message, new_message_id};

/// One message to append: what it says and what caused it.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub draft: Draft,
    /// Event ids, or `import`, `periodic`, `manual`.
    pub causes: Vec<String>,
}

/// The second key of the message log's advisory lock (the first is the
/// project's lock space, store/postgres/mod.rs `LOCK_SPACE`).
pub const MESSAGE_LOG_LOCK: (i32, i32) = (0x626f_0d00, -2);

macro_rules! message_log {
    ($conn:ty, $(lock = $lock:literal,)? |$at:ident| $created:expr) => {
        /// Appends `messages` on `conn` (inside the caller's transaction),
        /// all created at `created_at`, in the order given; returns them
        /// as stored (id, seq), in the same order.
        pub async fn append_messages(
            conn: &mut $conn,
            messages: Vec<NewMessage>,
            created_at: DateTime<Utc>,
        ) -> Result<Vec<Message>, StoreError> {
            if messages.is_empty() {
                return Ok(Vec::new());
            }
            $(
                sqlx::query($lock)
                    .bind(MESSAGE_LOG_LOCK.0)
                    .bind(MESSAGE_LOG_LOCK.1)
                    .execute(&mut *conn)
                    .await?;
            )?
            let mut stored = Vec::with_capacity(messages.len());
            for NewMessage { draft, causes } in messages {
                let (seq,): (i64,) = sqlx::query_as(
                    "INSERT INTO message_keys (key, last_seq) VALUES ($1, 1)
                     ON CONFLICT (key) DO UPDATE SET last_seq = message_keys.last_seq + 1
                     RETURNING last_seq",
                )
                .bind(&draft.key)
                .fetch_one(&mut *conn)
                .await?;
                let message =
                    draft.into_message(new_message_id(created_at), seq as u64, created_at, causes);
                let body = serde_json::to_string(&message).map_err(|e| StoreError::Corrupt {
                    record: format!("message {}", message.id),
                    problem: e.to_string(),
                })?;
                let $at = created_at;
                sqlx::query(
                    "INSERT INTO messages (id, type, key, seq, created_at, body)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&message.id)
                .bind(message.kind.as_str())
                .bind(&message.key)
                .bind(seq)
                .bind($created)
                .bind(body)
                .execute(&mut *conn)
                .await?;
                stored.push(message);
            }
            Ok(stored)
        }
    };
}

pub mod sqlite {
    use super::*;
    message_log!(sqlx::SqliteConnection, |at| at
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
}

pub mod postgres {
    use super::*;
    message_log!(
        sqlx::PgConnection,
        lock = "SELECT pg_advisory_xact_lock($1, $2)",
        |at| at
    );
}
