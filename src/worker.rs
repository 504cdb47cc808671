//! The recalculation work: drain the store's dirty SKUs batch by batch.
//! The apalis job handler, `recalc --inline` and the periodic full run all
//! come here; the store does each batch in one transaction.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::FutureExt;
use tracing::{Instrument, error, info, info_span, warn};

use crate::pacing::Pacer;
use crate::queue::RecalcJob;
use crate::store::{AnyStore, BatchReport, Store, StoreError};

/// What a drain did, summed over its batches.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DrainReport {
    pub batches: usize,
    pub skus: usize,
    pub lines_seen: usize,
    pub lines_changed: usize,
    pub orders_changed: usize,
    /// Stopped early because shutdown was asked for; the rest stays dirty.
    pub interrupted: bool,
    /// SKUs whose recalculation failed on its own and were set aside
    /// (store/set_aside.rs); the rest was recalculated.
    pub set_aside: Vec<String>,
}

impl DrainReport {
    fn add(&mut self, batch: &BatchReport) {
        self.batches += 1;
        self.skus += batch.skus.len();
        self.lines_seen += batch.lines_seen;
        self.lines_changed += batch.lines_changed;
        self.orders_changed += batch.orders_changed;
    }
}

/// Why a drain stopped short.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug: the recalculation panicked. Its transaction was rolled back.
    #[error("the recalculation panicked: {0}")]
    Panicked(String),
}

impl JobError {
    /// A failure of the database or its connection rather than of the
    /// SKUs at hand: retrying later may succeed, and no SKU is to blame.
    fn is_transient(&self) -> bool {
        matches!(self, JobError::Store(e) if e.is_transient())
    }
}

/// The panic's message, for the error.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

/// Runs `work`, turning a panic into [`JobError::Panicked`]: the unwinding
/// drops its transaction (rolled back), and the worker goes on.
pub async fn guarded<T, E: Into<JobError>>(
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, JobError> {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(outcome) => outcome.map_err(Into::into),
        Err(panic) => Err(JobError::Panicked(panic_message(&*panic))),
    }
}

/// What a drain does with a SKU whose recalculation fails on its own.
#[derive(Debug, Clone, Copy)]
pub struct FailurePolicy {
    /// The pause before the first retry of a set-aside SKU (it doubles).
    pub first_retry: Duration,
}

impl From<&crate::config::ServiceSettings> for FailurePolicy {
    /// Six heartbeats (30 s by default) before the first retry.
    fn from(s: &crate::config::ServiceSettings) -> Self {
        FailurePolicy {
            first_retry: s.heartbeat.saturating_mul(6),
        }
    }
}

/// Recalculates dirty SKUs until none is left or `stop` is set (checked
/// between batches: a batch is never cut in half). `on_batch` sees each
/// batch as it is written, for progress.
///
/// A batch that fails while the database answers is retried SKU by SKU:
/// the SKU whose batch of one fails is set aside with its error (and
/// retried later), and the drain goes on with full batches. A failure of
/// the database itself ends the drain with the error; the marks stay.
///
/// With a `pacer` (the daemon's worker), a drain that has caught up waits
/// before its next batch ([`crate::pacing`]).
pub async fn drain(
    store: &AnyStore,
    sizes: &BatchSizes,
    stop: &AtomicBool,
    policy: FailurePolicy,
    pacer: Option<&Pacer>,
    mut on_batch: impl FnMut(&BatchReport) + Send,
) -> Result<DrainReport, JobError> {
    let mut report = DrainReport::default();
    // Rows of earlier failures are cleared as their SKUs succeed.
    let mut earlier_failures = store.set_aside_count().await? > 0;
    let mut succeeded: Vec<String> = Vec::new();
    // When most of the book is dirty, one bulk transaction reads every
    // order header once rather than looking them up batch by batch.
    if store.dirty_count(None).await? >= sizes.bulk_from_skus as i64 {
        let bulk = store.recalculate_bulk(sizes.skus_per_batch, Utc::now(), stop, |batch| {
            report.add(batch);
            if earlier_failures {
                succeeded.extend(batch.skus.iter().cloned());
            }
            on_batch(batch);
        });
        if let Err(e) = guarded(bulk).await {
            if e.is_transient() {
                return Err(e);
            }
            // Rolled back whole: the batches below find the culprit.
            warn!(error = %e, "the bulk recalculation failed; going on batch by batch");
            report = DrainReport::default();
            succeeded.clear();
        }
    }
    if !succeeded.is_empty() {
        store.clear_set_aside(&succeeded).await?;
    }
    let mut isolating = false;
    // A job begins paced: the batch before it may have been the hot SKU.
    let mut paced = true;
    while !stop.load(Ordering::Relaxed) {
        let max_skus = if isolating { 1 } else { sizes.skus_per_batch };
        let suspect = if isolating {
            store.first_dirty().await?
        } else {
            None
        };
        if let Some(pacer) = pacer
            && paced
        {
            pacer.wait().await;
        }
        let started = Instant::now();
        let failure = match guarded(store.recalculate_dirty(max_skus, Utc::now())).await {
            Ok(None) => return Ok(report),
            Ok(Some(batch)) => {
                if let Some(pacer) = pacer {
                    pacer.record(started);
                }
                paced = crate::pacing::is_hot(batch.skus.len(), batch.lines_seen);
                let took = started.elapsed();
                crate::meter::batch_written(&batch, took);
                tracing::debug!(
                    skus = batch.skus.len(),
                    causes = batch.causes.len(),
                    lines_seen = batch.lines_seen,
                    lines_changed = batch.lines_changed,
                    orders_changed = batch.orders_changed,
                    micros = took.as_micros() as u64,
                    feed_micros = batch.feed_time.as_micros() as u64,
                    "batch written back"
                );
                if earlier_failures {
                    store.clear_set_aside(&batch.skus).await?;
                }
                report.add(&batch);
                on_batch(&batch);
                continue;
            }
            Err(failure) => failure,
        };
        if failure.is_transient() || store.readiness().await.is_err() {
            return Err(failure);
        }
        match suspect {
            None => {
                warn!(error = %failure, skus = max_skus, "a recalculation batch failed; recalculating SKU by SKU to find the failing one");
                isolating = true;
            }
            Some(sku) => {
                let error_text = failure.to_string();
                if store
                    .set_aside(&sku, &error_text, policy.first_retry)
                    .await?
                {
                    error!(sku = %sku, error = %error_text, "the recalculation of this SKU failed; it is set aside and retried later, the other SKUs go on");
                    crate::meter::set_aside(1);
                    report.set_aside.push(sku);
                    earlier_failures = true;
                }
                isolating = false;
            }
        }
    }
    report.interrupted = true;
    Ok(report)
}

/// How a drain cuts its work (config `service.skus_per_batch`,
/// `service.bulk_from_skus`).
#[derive(Debug, Clone, Copy)]
pub struct BatchSizes {
    pub skus_per_batch: usize,
    pub bulk_from_skus: u64,
}

impl From<&crate::config::ServiceSettings> for BatchSizes {
    fn from(s: &crate::config::ServiceSettings) -> Self {
        BatchSizes {
            skus_per_batch: s.skus_per_batch.get(),
            bulk_from_skus: s.bulk_from_skus.get() as u64,
        }
    }
}

/// What every job handler shares.
pub struct WorkerState {
    pub store: Arc<AnyStore>,
    pub sizes: BatchSizes,
    pub failures: FailurePolicy,
    /// Set on shutdown: the job in hand finishes its batch and returns.
    pub stop: Arc<AtomicBool>,
    /// One drain at a time in this process: a second would only wait on
    /// the first's write lock.
    pub busy: tokio::sync::Mutex<()>,
    /// What this process is doing, for `status`.
    pub activity: Activity,
    /// Spaces the batches of a drain that has caught up.
    pub pacer: Pacer,
    /// Progress reports for `/readyz` and the watchdog.
    pub health: Arc<crate::health::WorkerHealth>,
}

/// What a worker is doing and since when (Unix ms), shared with the task
/// that reports it in the `daemons` table.
#[derive(Debug)]
pub struct Activity(std::sync::Mutex<(String, i64)>);

impl Default for Activity {
    fn default() -> Self {
        Activity(std::sync::Mutex::new((
            "idle".to_owned(),
            crate::store::daemons::now_ms(),
        )))
    }
}

impl Activity {
    pub fn set(&self, doing: String) {
        if let Ok(mut current) = self.0.lock() {
            *current = (doing, crate::store::daemons::now_ms());
        }
    }

    pub fn get(&self) -> (String, i64) {
        self.0
            .lock()
            .map(|current| current.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }
}

/// How `status` shows a job in hand.
fn describe(job: &RecalcJob) -> String {
    if job.all {
        return "recalculating every SKU".to_owned();
    }
    format!(
        "recalculating (events: {}; SKUs: {})",
        job.causes.join(", "),
        job.skus.join(", ")
    )
}

/// Runs one queued job: drains the dirty set (the job's own SKUs and any
/// others marked since). Errors, panics included, are returned so that
/// apalis retries the job; the dirty marks stay meanwhile, so nothing is
/// lost either way, and the worker goes on.
pub async fn run_job(job: &RecalcJob, state: &WorkerState) -> Result<DrainReport, JobError> {
    let span = info_span!("recalculate", skus = ?job.skus, events = ?job.causes, all = job.all);
    let _guard = state.busy.lock().await;
    state.store.job_started();
    state.activity.set(describe(job));
    state.health.job_started();
    let started = std::time::Instant::now();
    let mut meter = crate::meter::JobMeter::start();
    let health = state.health.clone();
    let drained = drain(
        &state.store,
        &state.sizes,
        &state.stop,
        state.failures,
        Some(&state.pacer),
        |b| {
            meter.batch(b);
            health.progressed();
        },
    );
    let report = guarded(drained).instrument(span.clone()).await;
    meter.finish(&*state.store, &report).await;
    state.activity.set("idle".to_owned());
    state.health.job_ended();
    let _entered = span.enter();
    match &report {
        Ok(r) if r.batches > 0 || !r.set_aside.is_empty() => info!(
            batches = r.batches,
            skus = r.skus,
            lines_changed = r.lines_changed,
            orders_changed = r.orders_changed,
            set_aside = r.set_aside.len(),
            millis = started.elapsed().as_millis() as u64,
            "recalculated"
        ),
        Ok(_) => tracing::debug!("nothing dirty: already recalculated"),
        Err(e) => error!(error = %e, "recalculation failed; the job will be retried"),
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_in_the_work_is_an_error_not_a_crash() {
        let outcome = guarded(async {
            let sku = "TEA";
            if !sku.is_empty() {
                panic!("an engine bug on {sku}");
            }
            Ok::<(), StoreError>(())
        })
        .await;
        match outcome {
            Err(e @ JobError::Panicked(_)) => {
                assert!(
                    e.to_string().contains("panicked: an engine bug on TEA"),
                    "{e}"
                );
                assert!(!e.is_transient(), "a panic blames the SKUs at hand");
            }
            other => panic!("not a panic error: {other:?}"),
        }
        // Work that does not panic passes its outcome through.
        let fine = guarded(async { Ok::<u32, StoreError>(7) }).await;
        assert_eq!(fine.unwrap(), 7);
    }

    #[test]
    fn database_outages_are_transient_and_bad_data_is_not() {
        let outage = JobError::Store(StoreError::Unavailable("the writer is gone".into()));
        assert!(outage.is_transient());
        let busy = JobError::Store(StoreError::Busy(
            "another process holds the database".into(),
        ));
        assert!(busy.is_transient());
        let corrupt = JobError::Store(StoreError::Corrupt {
            record: "order A".into(),
            problem: "unknown status".into(),
        });
        assert!(!corrupt.is_transient());
        let refused = JobError::Store(StoreError::Refused("TEA lines are refused".into()));
        assert!(!refused.is_transient());
    }
}
