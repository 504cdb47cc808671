//! How long the message log keeps a message (docs/contract-notes.md,
//! "Retention and delivery"): `notify.retention_secs` from its creation,
//! but never while a live destination still has to take it. A message a
//! webhook or the mail has not delivered yet (nor given up on) is kept
//! whatever its age, and `serve` says so in its log; what a destination
//! gave up on (dead) goes with the retention, and its dead-list entry
//! with it.
//!
//! A destination is live while a `serve` with it in its configuration
//! runs: every heartbeat each process marks its destinations seen, and a
//! destination not seen for 12 heartbeats (removed from every
//! configuration) stops holding messages. The process that prunes always
//! counts its own destinations as live.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::Utc;
use tracing::{info, warn};

use crate::store::{AnyStore, StoreError};

/// Messages pruned per statement: a short write, however many expired.
const PRUNE_BATCH: i64 = 10_000;
/// At most this many batches per heartbeat, so a large backlog of expired
/// messages (a first start after a long retention change) is pruned over
/// several heartbeats without holding up the rest.
const PRUNE_BATCHES_PER_BEAT: usize = 10;
/// Heartbeats without a process that has a destination configured after
/// which it no longer holds messages.
const LIVE_HEARTBEATS: u32 = 12;
/// The warning that messages are held past the retention is repeated at
/// most this often.
const WARN_EVERY_MS: i64 = 600_000;

/// What a process's heartbeat needs to keep the log.
#[derive(Debug, Clone)]
pub struct Retention {
    /// `notify.retention_secs`.
    pub keep: Duration,
    /// This process's destinations, by name.
    pub destinations: Vec<String>,
    pub heartbeat: Duration,
}

/// When this process last warned that messages are held (Unix ms).
static LAST_WARNING_MS: AtomicI64 = AtomicI64::new(i64::MIN);

impl Retention {
    /// One heartbeat's work: marks this process's destinations live, then
    /// deletes messages past the retention that no live destination still
    /// needs, in bounded batches. Returns how many it deleted.
    pub async fn run(&self, store: &AnyStore) -> Result<u64, StoreError> {
        for name in &self.destinations {
            store.delivery_touch(name).await?;
        }
        let Ok(keep) = chrono::Duration::from_std(self.keep) else {
            return Ok(0);
        };
        let now = Utc::now();
        let before = now - keep;
        let live_for = (self.heartbeat * LIVE_HEARTBEATS).as_millis() as i64;
        let live_since = now.timestamp_millis() - live_for;
        let hold = store
            .delivery_oldest_needed(live_since, &self.destinations)
            .await?;
        let keep_from = hold.as_ref().map_or(i64::MAX, |(position, _)| *position);
        let mut pruned = 0;
        for _ in 0..PRUNE_BATCHES_PER_BEAT {
            let deleted = store
                .prune_expired_messages(before, keep_from, PRUNE_BATCH)
                .await?;
            pruned += deleted;
            if deleted < PRUNE_BATCH as u64 {
                break;
            }
        }
        if pruned > 0 {
            info!(
                messages = pruned,
                "pruned change messages past notify.retention_secs"
            );
        }
        if let Some((position, destination)) = hold {
            self.warn_if_held(store, before, position, &destination)
                .await?;
        }
        Ok(pruned)
    }

    /// Says loudly (at most every 10 minutes) that the log keeps messages
    /// past the retention because `destination` has yet to take them.
    async fn warn_if_held(
        &self,
        store: &AnyStore,
        before: chrono::DateTime<Utc>,
        position: i64,
        destination: &str,
    ) -> Result<(), StoreError> {
        let oldest = store
            .messages_after(crate::store::feed::Cursor(0), 1)
            .await?;
        let Some(first) = oldest.first() else {
            return Ok(());
        };
        let created = serde_json::from_str::<serde_json::Value>(&first.body)
            .ok()
            .and_then(|m| m["created_at"].as_str().map(str::to_owned))
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok());
        let held = first.position >= position && created.is_some_and(|c| c < before);
        let now_ms = Utc::now().timestamp_millis();
        let last = LAST_WARNING_MS.load(Ordering::Relaxed);
        if held && now_ms.saturating_sub(last) >= WARN_EVERY_MS {
            LAST_WARNING_MS.store(now_ms, Ordering::Relaxed);
            warn!(
                destination = %destination,
                oldest_created_at = %created.map(|c| c.to_rfc3339()).unwrap_or_default(),
                retention_secs = self.keep.as_secs(),
                "change messages older than notify.retention_secs are kept: this destination has \
                 yet to take them (see `backorderd status`); they go once it has them, or \
                 12 heartbeats after no serve has it configured"
            );
        }
        Ok(())
    }
}
