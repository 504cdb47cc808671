//! The recalculation work: drain the store's dirty SKUs batch by batch.
//! The apalis job handler, `recalc --inline` and the periodic full run all
//! come here; the store does each batch in one transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Utc;
use tracing::{Instrument, info, info_span};

use crate::queue::RecalcJob;
use crate::store::{BatchReport, Store, StoreError};

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

/// Recalculates dirty SKUs until none is left or `stop` is set (checked
/// between batches: a batch is never cut in half). `on_batch` sees each
/// batch as it is written, for progress.
pub async fn drain<S: Store>(
    store: &S,
    sizes: &BatchSizes,
    stop: &AtomicBool,
    mut on_batch: impl FnMut(&BatchReport) + Send,
) -> Result<DrainReport, StoreError> {
    let mut report = DrainReport::default();
    let skus_per_batch = sizes.skus_per_batch;
    // When most of the book is dirty, one bulk transaction reads every
    // order header once rather than looking them up batch by batch.
    if store.dirty_count(None).await? >= sizes.bulk_from_skus as i64 {
        store
            .recalculate_bulk(skus_per_batch, Utc::now(), stop, |batch| {
                report.add(batch);
                on_batch(batch);
            })
            .await?;
    }
    while !stop.load(Ordering::Relaxed) {
        let Some(batch) = store.recalculate_dirty(skus_per_batch, Utc::now()).await? else {
            return Ok(report);
        };
        tracing::debug!(
            skus = batch.skus.len(),
            causes = ?batch.causes,
            lines_changed = batch.lines_changed,
            "batch written back"
        );
        report.add(&batch);
        on_batch(&batch);
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
            skus_per_batch: s.skus_per_batch,
            bulk_from_skus: s.bulk_from_skus,
        }
    }
}

/// What every job handler shares.
pub struct WorkerState<S> {
    pub store: Arc<S>,
    pub sizes: BatchSizes,
    /// Set on shutdown: the job in hand finishes its batch and returns.
    pub stop: Arc<AtomicBool>,
    /// One drain at a time in this process: a second would only wait on
    /// the first's write lock.
    pub busy: tokio::sync::Mutex<()>,
    /// What this process is doing, for `status`.
    pub activity: Activity,
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
/// others marked since). Errors are returned so that apalis retries the
/// job; the dirty marks stay meanwhile, so nothing is lost either way.
pub async fn run_job<S: Store>(
    job: &RecalcJob,
    state: &WorkerState<S>,
) -> Result<DrainReport, StoreError> {
    let span = info_span!("recalculate", skus = ?job.skus, events = ?job.causes, all = job.all);
    let _guard = state.busy.lock().await;
    state.activity.set(describe(job));
    let started = std::time::Instant::now();
    let mut meter = crate::meter::JobMeter::start();
    let report = drain(&*state.store, &state.sizes, &state.stop, |b| meter.batch(b))
        .instrument(span.clone())
        .await;
    meter.finish(&*state.store, &report).await;
    state.activity.set("idle".to_owned());
    let _entered = span.enter();
    match &report {
        Ok(r) if r.batches > 0 => info!(
            batches = r.batches,
            skus = r.skus,
            lines_changed = r.lines_changed,
            orders_changed = r.orders_changed,
            millis = started.elapsed().as_millis() as u64,
            "recalculated"
        ),
        Ok(_) => tracing::debug!("nothing dirty: already recalculated"),
        Err(e) => tracing::warn!(error = %e, "recalculation failed; the job will be retried"),
    }
    report
}
