//! The scheduled `purchasing.digest`: one message per schedule slot, however
//! many `serve` processes share the database. A process claims the slot
//! (a row of `digest_slots`, keyed by the slot's instant) and appends the
//! message in the same transaction, so a slot is sent by the first process
//! to commit its claim, and a claim never exists without its message.

use chrono::{DateTime, Utc};
use sqlx::Connection;

use super::messages::{self, PendingMessage};
use super::{AnyStore, StoreError};
use crate::delivery::message::{Data, Draft, MessageType};
use crate::engine::time_format::format_timestamp;

/// The key of every digest (one sequence of them).
pub const DIGEST_KEY: &str = "purchasing:digest";

/// The claim, the same SQL on both databases (`$N` binds on SQLite too):
/// whether this transaction took the slot.
macro_rules! claim {
    ($tx:expr, $slot:expr, $by:expr) => {
        sqlx::query(
            "INSERT INTO digest_slots (slot, claimed_at, claimed_by) VALUES ($1, $2, $3)
             ON CONFLICT (slot) DO NOTHING",
        )
        .bind($slot)
        .bind(format_timestamp(&Utc::now()))
        .bind($by)
        .execute(&mut *$tx)
        .await?
        .rows_affected()
            > 0
    };
}

fn pending(slot: &str, report: serde_json::Value) -> PendingMessage {
    let mut data = report;
    if let Some(object) = data.as_object_mut() {
        object.insert("scheduled_for".to_owned(), slot.into());
    }
    PendingMessage {
        draft: Draft {
            kind: MessageType::PurchasingDigest,
            key: DIGEST_KEY.to_owned(),
            data: Data::Other(data),
        },
        causes: vec!["periodic".to_owned()],
    }
}

impl AnyStore {
    /// Appends the digest of `slot` (`report`: the purchasing report's JSON)
    /// unless a process (`by` names this one) already did: `true` when this
    /// call sent it.
    pub async fn send_digest(
        &self,
        slot: DateTime<Utc>,
        by: &str,
        report: serde_json::Value,
    ) -> Result<bool, StoreError> {
        let slot = format_timestamp(&slot);
        let sent = match self {
            AnyStore::Sqlite(s) => {
                let mut conn = s.write_pool().acquire().await?;
                let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
                let claimed = claim!(tx, &slot, by);
                if claimed {
                    messages::append(&mut *tx, vec![pending(&slot, report)], Utc::now()).await?;
                }
                tx.commit().await?;
                claimed
            }
            AnyStore::Postgres(s) => {
                let mut tx = s.pool().begin().await?;
                let claimed = claim!(tx, &slot, by);
                if claimed {
                    messages::append(&mut *tx, vec![pending(&slot, report)], Utc::now()).await?;
                }
                tx.commit().await?;
                claimed
            }
        };
        if sent {
            super::feed::committed();
        }
        Ok(sent)
    }
}
