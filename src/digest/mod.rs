//! The scheduled `purchasing.digest` of `serve` (notifications.md section
//! 4): at each slot of `purchasing.digest_schedule`, the purchasing report
//! of the stored state becomes one message, sent by whichever process
//! claims the slot first (`store::digest`); the webhooks that take the type
//! and `purchasing.digest_email` receive it like any other message.
//!
//! A slot passed while no `serve` ran is not sent late: the next one is.

mod schedule;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tracing::{debug, info, warn};

use crate::availability::{self, FeedError};
use crate::store::AnyStore;
pub use schedule::{Schedule, ScheduleError};

/// Sends the digest of every slot from now on; runs until aborted.
pub async fn run(store: Arc<AnyStore>, schedule: Schedule, process: String) {
    info!(%schedule, "purchasing digest scheduled");
    loop {
        let slot = schedule.next_after(Utc::now());
        // Sleeps may wake early or late by the clock; the slot is fixed.
        while Utc::now() < slot {
            let left = (slot - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(left).await;
        }
        match send(&store, slot, &process).await {
            Ok(true) => info!(slot = %slot, "purchasing digest sent"),
            Ok(false) => debug!(slot = %slot, "purchasing digest sent by another process"),
            Err(e) => warn!(slot = %slot, error = %e, "could not send the purchasing digest"),
        }
    }
}

/// The digest of `slot`: `true` when this process sent it.
pub async fn send(store: &AnyStore, slot: DateTime<Utc>, process: &str) -> Result<bool, FeedError> {
    let report = availability::purchasing(store, None).await?;
    let body = serde_json::to_value(&report).expect("a report serializes");
    Ok(store.send_digest(slot, process, body).await?)
}
