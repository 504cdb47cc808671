//! The Prometheus metrics: their names, the recorder (the `metrics` crate's
//! global recorder, rendered by `GET /metrics`, no listener of its own),
//! and what a recalculation job records.
//!
//! Counted as work is done: jobs done and failed, the duration of each
//! job's drain, SKUs, lines and orders changed, and for each event behind a
//! written-back batch the lag from its receipt to the write-back. Read from
//! the database at each scrape: queue depth (jobs, dirty SKUs) and the age
//! of the oldest dirty mark.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store::samples::Lags;
use crate::store::{BatchReport, QueueStatus, Store};
use crate::worker::DrainReport;

pub const JOBS: &str = "backorderd_jobs_total";
pub const RECALC_SECONDS: &str = "backorderd_recalculation_duration_seconds";
pub const SKUS_RECALCULATED: &str = "backorderd_skus_recalculated_total";
pub const LINES_CHANGED: &str = "backorderd_lines_changed_total";
pub const ORDERS_CHANGED: &str = "backorderd_orders_changed_total";
pub const LAG_SECONDS: &str = "backorderd_event_to_result_lag_seconds";
pub const EVENTS: &str = "backorderd_events_total";
pub const QUEUE_JOBS: &str = "backorderd_queue_jobs";
pub const DIRTY_SKUS: &str = "backorderd_dirty_skus";
pub const OLDEST_MARK_AGE: &str = "backorderd_oldest_dirty_mark_age_seconds";
pub const SET_ASIDE_TOTAL: &str = "backorderd_skus_set_aside_total";
pub const SET_ASIDE_NOW: &str = "backorderd_set_aside_skus";
pub const BATCH_SECONDS: &str = "backorderd_batch_duration_seconds";
pub const FEED_SECONDS: &str = "backorderd_availability_recording_seconds";

/// Histogram buckets, in seconds, from a millisecond to ten minutes.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0,
];

/// One written-back batch: its time (`took`) and the feed's share of it.
pub fn batch_written(batch: &BatchReport, took: Duration) {
    histogram!(BATCH_SECONDS).record(took.as_secs_f64());
    histogram!(FEED_SECONDS).record(batch.feed_time.as_secs_f64());
}

/// At most this many event ids per job are looked up for the lag.
const LAG_SAMPLE: usize = 1000;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The lags measured since the last chart sample took them.
static LAGS: Mutex<Lags> = Mutex::new(Lags {
    max_ms: None,
    count: 0,
});

fn note_lag(lag: Duration) {
    let ms = i64::try_from(lag.as_millis()).unwrap_or(i64::MAX);
    let mut lags = LAGS.lock().unwrap_or_else(|e| e.into_inner());
    lags.max_ms = Some(lags.max_ms.map_or(ms, |m| m.max(ms)));
    lags.count += 1;
}

/// The lags measured since the last call (for the console's chart sample).
pub fn take_lags() -> Lags {
    std::mem::take(&mut *LAGS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Puts lags taken by [`take_lags`] back, when their sample could not be written.
pub fn restore_lags(taken: Lags) {
    let mut lags = LAGS.lock().unwrap_or_else(|e| e.into_inner());
    lags.max_ms = match (lags.max_ms, taken.max_ms) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    lags.count += taken.count;
}

/// The process's recorder, installed on first use. If another recorder is
/// installed already (a test harness), metrics go there and this handle
/// renders an empty registry.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .expect("the buckets are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_ok() {
            describe();
        }
        handle
    })
}

fn describe() {
    describe_counter!(JOBS, "Recalculation jobs run, by outcome (done, failed).");
    crate::delivery::deliver::describe_metrics();
    describe_histogram!(
        RECALC_SECONDS,
        metrics::Unit::Seconds,
        "Time a job took to drain the dirty SKUs."
    );
    describe_histogram!(
        BATCH_SECONDS,
        metrics::Unit::Seconds,
        "Time each recalculation batch took, from its claim to its commit."
    );
    describe_histogram!(
        FEED_SECONDS,
        metrics::Unit::Seconds,
        "Of each batch's time, what computing and recording the availability feed's figures took (its stamps and product.availability_changed messages)."
    );
    describe_counter!(SKUS_RECALCULATED, "SKUs recalculated.");
    describe_counter!(
        LINES_CHANGED,
        "Order lines whose backorder qty or ETA changed."
    );
    describe_counter!(
        ORDERS_CHANGED,
        "Orders whose backorder status or qty changed."
    );
    describe_histogram!(
        LAG_SECONDS,
        metrics::Unit::Seconds,
        "From an event's receipt to the write-back of the recalculation it caused."
    );
    describe_counter!(
        EVENTS,
        "Events received over HTTP, by outcome (accepted, duplicate, refused)."
    );
    describe_gauge!(
        QUEUE_JOBS,
        "Jobs in the queue, by state (pending, running, failed)."
    );
    describe_gauge!(DIRTY_SKUS, "SKUs waiting for a recalculation.");
    describe_counter!(
        SET_ASIDE_TOTAL,
        "Times a SKU whose recalculation failed on its own was set aside."
    );
    describe_gauge!(
        SET_ASIDE_NOW,
        "SKUs set aside after a failed recalculation, waiting for their retry."
    );
    describe_gauge!(
        OLDEST_MARK_AGE,
        metrics::Unit::Seconds,
        "Age of the oldest dirty mark: how long the queue has waited (0 when nothing waits)."
    );
}

/// What one job records, batch by batch; see [`crate::worker::run_job`].
pub struct JobMeter {
    started: Instant,
    /// Each written batch's causes, with when it was written.
    written: Vec<(Vec<String>, DateTime<Utc>)>,
}

impl Default for JobMeter {
    fn default() -> Self {
        Self::start()
    }
}

impl JobMeter {
    pub fn start() -> Self {
        JobMeter {
            started: Instant::now(),
            written: Vec::new(),
        }
    }

    pub fn batch(&mut self, batch: &BatchReport) {
        let room = LAG_SAMPLE.saturating_sub(self.written.iter().map(|w| w.0.len()).sum());
        let causes = batch.causes.iter().take(room).cloned().collect();
        self.written.push((causes, Utc::now()));
    }

    /// Records the job's outcome, and the lag of the events behind it (one
    /// read of their receipt times; a failure to read them only skips that).
    pub async fn finish<S: Store, E>(self, store: &S, report: &Result<DrainReport, E>) {
        let r = match report {
            Ok(r) => r,
            Err(_) => {
                counter!(JOBS, "outcome" => "failed").increment(1);
                return;
            }
        };
        // A job that had to set a SKU aside failed for that SKU.
        let outcome = if r.set_aside.is_empty() {
            "done"
        } else {
            "failed"
        };
        counter!(JOBS, "outcome" => outcome).increment(1);
        if r.batches == 0 {
            return;
        }
        histogram!(RECALC_SECONDS).record(self.started.elapsed().as_secs_f64());
        counter!(SKUS_RECALCULATED).increment(r.skus as u64);
        counter!(LINES_CHANGED).increment(r.lines_changed as u64);
        counter!(ORDERS_CHANGED).increment(r.orders_changed as u64);
        for (causes, at) in self.written {
            if causes.is_empty() {
                continue;
            }
            let Ok(received) = store.received_at(&causes).await else {
                continue;
            };
            for t in received {
                let lag = (at - t).to_std().unwrap_or(Duration::ZERO);
                histogram!(LAG_SECONDS).record(lag.as_secs_f64());
                note_lag(lag);
            }
        }
    }
}

/// Sets the queue gauges from the database, just before a scrape renders.
pub fn set_queue(queue: &QueueStatus, oldest_mark: Option<DateTime<Utc>>, now: DateTime<Utc>) {
    gauge!(QUEUE_JOBS, "state" => "pending").set(queue.pending as f64);
    gauge!(QUEUE_JOBS, "state" => "running").set(queue.running as f64);
    gauge!(QUEUE_JOBS, "state" => "failed").set(queue.failed as f64);
    gauge!(DIRTY_SKUS).set(queue.dirty_skus as f64);
    gauge!(SET_ASIDE_NOW).set(queue.set_aside_skus as f64);
    let age = match oldest_mark {
        Some(t) if queue.dirty_skus > 0 => (now - t).to_std().unwrap_or(Duration::ZERO),
        _ => Duration::ZERO,
    };
    gauge!(OLDEST_MARK_AGE).set(age.as_secs_f64());
}

/// Counts SKUs set aside after a failed recalculation.
pub fn set_aside(n: u64) {
    counter!(SET_ASIDE_TOTAL).increment(n);
}

/// Counts events received over HTTP by outcome.
pub fn events(outcome: &'static str, n: usize) {
    if n > 0 {
        counter!(EVENTS, "outcome" => outcome).increment(n as u64);
    }
}
