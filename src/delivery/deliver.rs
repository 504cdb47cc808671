//! The delivery loop, a task of `serve` per destination (docs/delivery.md,
//! "How delivery works"), the same on both databases.
//!
//! Each round it settles the attempts that finished (one transaction for
//! all of them), moves the destination's cursor over the new messages in
//! bounded batches (store/delivery.rs), then claims due messages up to
//! `notify.concurrency` in flight. Only the oldest waiting message of a
//! key is ever due, so the messages in flight are all of different keys
//! and each key goes in order, while keys never wait for one another. A
//! destination that is slow or down only fills its own task: the others
//! and the recalculation go on.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use metrics::{counter, histogram};
use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::destination::{Destination, Outcome};
use super::retry::{self, Next};
use crate::store::AnyStore;
use crate::store::delivery::{Claimed, Settled, Settlement};

pub const DELIVERIES: &str = "backorderd_deliveries_total";
pub const DELIVERY_LAG: &str = "backorderd_delivery_lag_seconds";
pub const DELIVERY_BACKLOG: &str = "backorderd_delivery_backlog";
pub const DEAD_MESSAGES: &str = "backorderd_dead_messages";
pub const OLDEST_UNDELIVERED: &str = "backorderd_oldest_undelivered_age_seconds";

pub const MESSAGES_CREATED: &str = "backorderd_messages_created_total";

/// The newest message counted in [`MESSAGES_CREATED`]; negative until
/// [`count_messages_from`] (a `serve` starting) sets where to begin.
static COUNTED_UP_TO: tokio::sync::Mutex<i64> = tokio::sync::Mutex::const_new(-1);

/// Messages committed after `position` (the newest when `serve` starts)
/// are counted in [`MESSAGES_CREATED`].
pub async fn count_messages_from(position: i64) {
    *COUNTED_UP_TO.lock().await = position;
}

/// Adds the messages committed since the last scrape to
/// [`MESSAGES_CREATED`], by type: read from the log, so they are the
/// messages of every process on the database, each once they committed.
pub async fn count_created_messages<S: crate::store::DeliveryStore>(
    store: &S,
) -> Result<(), crate::store::StoreError> {
    let mut counted = COUNTED_UP_TO.lock().await;
    if *counted < 0 {
        return Ok(());
    }
    for (kind, count, newest) in store.messages_created_since(*counted).await? {
        counter!(MESSAGES_CREATED, "type" => kind).increment(count.max(0) as u64);
        *counted = (*counted).max(newest);
    }
    Ok(())
}

/// Describes the delivery metrics (called with the others, src/meter.rs).
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        MESSAGES_CREATED,
        "Change messages committed to the log by type (by any process on the database), since this process started."
    );
    describe_counter!(
        DELIVERIES,
        "Delivery attempts by destination and outcome (delivered, retry, dead, gone, pruned)."
    );
    describe_histogram!(
        DELIVERY_LAG,
        metrics::Unit::Seconds,
        "From a message's creation to its delivery, by destination."
    );
    describe_gauge!(
        DELIVERY_BACKLOG,
        "Messages a destination has yet to take (read at each scrape)."
    );
    describe_gauge!(DEAD_MESSAGES, "Dead messages per destination.");
    describe_gauge!(
        OLDEST_UNDELIVERED,
        metrics::Unit::Seconds,
        "Age of the oldest message a destination has yet to take."
    );
}

/// Sets the gauges from the stored state (at each scrape of `/metrics`).
pub fn set_gauges(status: &[crate::store::delivery::DestinationStatus], now_ms: i64) {
    use metrics::gauge;
    for d in status {
        let name = d.destination.clone();
        gauge!(DELIVERY_BACKLOG, "destination" => name.clone())
            .set((d.pending + d.unscanned) as f64);
        gauge!(DEAD_MESSAGES, "destination" => name.clone()).set(d.dead as f64);
        let age = d
            .oldest_pending_ms
            .map_or(0.0, |ms| (now_ms - ms).max(0) as f64 / 1000.0);
        gauge!(OLDEST_UNDELIVERED, "destination" => name).set(age);
    }
}

/// What every destination's task follows.
#[derive(Debug, Clone, Copy)]
pub struct LoopSettings {
    pub retry_window: Duration,
    pub retry_base: Duration,
    pub concurrency: usize,
    /// Pause of an idle round.
    pub poll: Duration,
}

/// Messages looked at per scan transaction, and scans per round: a round
/// over a large backlog still reaches the claims.
const SCAN_BATCH: i64 = 1000;
const SCANS_PER_ROUND: usize = 10;
/// Pause after a database error, and of a disabled destination's round.
const TROUBLE_PAUSE: Duration = Duration::from_secs(1);

/// Runs one destination until `stop`; the attempts in flight then get
/// `grace` to finish and be recorded (those cut are sent again after
/// their lease, by this or another process).
pub async fn run(
    store: Arc<AnyStore>,
    destination: Arc<Destination>,
    settings: LoopSettings,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let name = destination.name.clone();
    let mut state = Round {
        store,
        destination,
        settings,
        in_flight: JoinSet::new(),
        finished: Vec::new(),
    };
    info!(destination = %name, "delivering");
    loop {
        let wait = match state.round().await {
            Ok(wait) => wait,
            Err(e) => {
                warn!(destination = %name, error = %e, "delivery round failed; trying again");
                TROUBLE_PAUSE
            }
        };
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            Some(joined) = state.in_flight.join_next(), if !state.in_flight.is_empty() => {
                state.take(joined);
            }
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
    }
    let _ = tokio::time::timeout(grace, async {
        while let Some(joined) = state.in_flight.join_next().await {
            state.take(joined);
        }
    })
    .await;
    if let Err(e) = state.settle().await {
        warn!(destination = %name, error = %e, "could not record the last attempts; they are sent again after their lease");
    }
}

struct Round {
    store: Arc<AnyStore>,
    destination: Arc<Destination>,
    settings: LoopSettings,
    in_flight: JoinSet<Settlement>,
    /// Finished attempts not recorded yet (kept across a database error).
    finished: Vec<Settlement>,
}

impl Round {
    fn take(&mut self, joined: Result<Settlement, tokio::task::JoinError>) {
        match joined {
            Ok(settlement) => self.finished.push(settlement),
            // A panicked attempt is sent again when its lease ends.
            Err(e) => {
                warn!(destination = %self.destination.name, error = %e, "a delivery attempt panicked")
            }
        }
    }

    /// One round; returns how long to wait at most before the next.
    async fn round(&mut self) -> Result<Duration, crate::store::StoreError> {
        while let Some(joined) = self.in_flight.try_join_next() {
            self.take(joined);
        }
        self.settle().await?;
        let name = self.destination.name.clone();
        let Some(row) = self.store.delivery_destination(&name).await? else {
            self.store.delivery_ensure(&name).await?;
            return Ok(Duration::ZERO);
        };
        let newest = self.store.newest_message_position().await?;
        let mut cursor = row.cursor;
        let destination = self.destination.clone();
        let wanted = move |m: &crate::store::delivery::Scanned| destination.wants(m);
        for _ in 0..SCANS_PER_ROUND {
            if cursor >= newest {
                break;
            }
            let seen = self.store.delivery_scan(&name, SCAN_BATCH, &wanted).await?;
            if seen == 0 {
                break;
            }
            cursor += seen as i64;
        }
        if row.disabled_at_ms.is_some() {
            return Ok(TROUBLE_PAUSE);
        }
        let free = self
            .settings
            .concurrency
            .saturating_sub(self.in_flight.len());
        if free == 0 || !self.store.delivery_any_due(&name).await? {
            return Ok(self.settings.poll);
        }
        let token = claim_token();
        let claimed = self
            .store
            .delivery_claim(&name, self.destination.lease, &token, free as i64)
            .await?;
        for claimed in claimed {
            let store = self.store.clone();
            let destination = self.destination.clone();
            let settings = self.settings;
            self.in_flight
                .spawn(async move { attempt(&store, &destination, settings, claimed).await });
        }
        Ok(if cursor < newest {
            Duration::ZERO
        } else {
            self.settings.poll
        })
    }

    /// Records the finished attempts; on success counts them.
    async fn settle(&mut self) -> Result<(), crate::store::StoreError> {
        if self.finished.is_empty() {
            return Ok(());
        }
        let name = self.destination.name.clone();
        self.store.delivery_settle(&name, &self.finished).await?;
        let now_ms = crate::store::daemons::now_ms();
        for settlement in self.finished.drain(..) {
            let outcome = match &settlement.settled {
                Settled::Delivered => {
                    let lag = (now_ms - settlement.claimed.created_ms).max(0) as f64 / 1000.0;
                    histogram!(DELIVERY_LAG, "destination" => name.clone()).record(lag);
                    "delivered"
                }
                Settled::Retry { .. } => "retry",
                Settled::Dead { message_id, error } => {
                    warn!(destination = %name, message = %message_id, error = %error, "message dead after its retry window");
                    "dead"
                }
                Settled::Pruned => {
                    warn!(destination = %name, position = settlement.claimed.position, "a message left the log before it was sent (pruned while no serve had this destination configured)");
                    "pruned"
                }
                Settled::Gone { .. } => {
                    warn!(destination = %name, "the endpoint answered 410 Gone: disabled until re-enabled by hand (backorderd enable-destination)");
                    "gone"
                }
            };
            counter!(DELIVERIES, "destination" => name.clone(), "outcome" => outcome).increment(1);
        }
        Ok(())
    }
}

fn claim_token() -> String {
    format!("{:032x}", rand::rng().random::<u128>())
}

/// Sends one claimed message and says what the attempt settles.
async fn attempt(
    store: &AnyStore,
    destination: &Destination,
    settings: LoopSettings,
    claimed: Claimed,
) -> Settlement {
    let message = match store.delivery_message(claimed.position).await {
        Ok(Some(message)) => message,
        // Gone from the log (pruned while no process had this destination
        // configured, src/delivery/retention.rs): nothing left to send.
        Ok(None) => {
            return Settlement {
                claimed,
                settled: Settled::Pruned,
            };
        }
        Err(e) => {
            let at_ms = crate::store::daemons::now_ms() + settings.retry_base.as_millis() as i64;
            return Settlement {
                claimed,
                settled: Settled::Retry {
                    at_ms,
                    error: format!("cannot read the message: {e}"),
                },
            };
        }
    };
    let (id, body) = message;
    let outcome = destination.attempt(&id, body).await;
    let settled = match outcome {
        Outcome::Delivered => Settled::Delivered,
        Outcome::Gone(error) => Settled::Gone { error },
        Outcome::Retry(error) => {
            let created =
                DateTime::<Utc>::from_timestamp_millis(claimed.created_ms).unwrap_or_default();
            let failures = u32::try_from(claimed.attempts + 1).unwrap_or(u32::MAX);
            let jitter = rand::rng().random::<f64>();
            match retry::next_scaled(
                created,
                Utc::now(),
                failures,
                settings.retry_window,
                jitter,
                settings.retry_base,
            ) {
                Next::RetryAt(at) => Settled::Retry {
                    at_ms: at.timestamp_millis(),
                    error,
                },
                Next::Dead => Settled::Dead {
                    message_id: id,
                    error,
                },
            }
        }
    };
    Settlement { claimed, settled }
}
