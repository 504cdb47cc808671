//! `serve`: the long-running daemon. Wires the store, the apalis worker,
//! its wake-ups, the periodic full recalculation and the signals; stops on
//! SIGTERM, SIGINT or SIGHUP after the job in hand, within the grace period.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use futures_util::StreamExt;
use tracing::{error, info, warn};

use crate::config::{HttpSettings, ServiceSettings};
use crate::events::{Event, EventKind};
use crate::health::WorkerHealth;
use crate::queue::{QUEUE, RecalcJob};
use crate::store::{AnyStore, IngestOptions, Store};
use crate::worker::{WorkerState, guarded, run_job};

impl ServiceSettings {
    pub fn ingest_options(&self) -> IngestOptions {
        IngestOptions {
            recalculate_on_status_change: self.recalculate_on_status_change,
            defer_new_orders: self.defer_new_orders,
        }
    }
}

/// SIGTERM, SIGINT and SIGHUP, caught from the start so that a signal
/// during start-up also ends in an orderly stop. SIGHUP (a closed terminal,
/// `kill -HUP`) stops like SIGTERM: nothing is reloaded live, and under
/// systemd `Restart=always` starts the daemon again with its configuration
/// read anew (README, "Signals").
fn shutdown_signals() -> anyhow::Result<signal_hook_tokio::Signals> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    signal_hook_tokio::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .context("cannot install the signal handlers")
}

/// Pause before a failed job is handed back to apalis for its retry, so a
/// database outage is not hammered (cut short by a stop).
const FAILED_JOB_PAUSE: Duration = Duration::from_secs(1);

/// The apalis handler. A failure of any kind, a panic included, fails this
/// job (apalis retries it) and leaves the worker running.
async fn handle_job(job: RecalcJob, state: Data<Arc<WorkerState>>) -> Result<(), BoxDynError> {
    let outcome = guarded(run_job(&job, &state)).await;
    if let Err(e) = outcome {
        let deadline = tokio::time::Instant::now() + FAILED_JOB_PAUSE;
        while tokio::time::Instant::now() < deadline && !state.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        return Err(e.into());
    }
    Ok(())
}

/// A name no other live worker has: apalis refuses a name it saw less than
/// a heartbeat ago (shared/notes/apalis-1.0.md).
fn worker_name() -> String {
    format!("backorderd-{}-{}", host_name(), std::process::id())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// Every heartbeat, tells the database this daemon is alive and what it
/// is doing (`status` lists it), and looks after work no job covers.
async fn report_presence(
    store: Arc<AnyStore>,
    state: Arc<WorkerState>,
    mut daemon: crate::store::daemons::DaemonInfo,
    every: Duration,
    retention: crate::delivery::retention::Retention,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    let mut sampled_minute = None;
    loop {
        ticks.tick().await;
        let (doing, since) = state.activity.get();
        let outcome = match store.daemon_heartbeat(&daemon.name, &doing, since).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                daemon.doing = doing;
                daemon.doing_since_ms = since;
                daemon.last_seen_ms = crate::store::daemons::now_ms();
                store.register_daemon(&daemon).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            warn!(error = %e, "could not report this daemon as alive");
        }
        if let Err(e) = resume_left_work(&store).await {
            warn!(error = %e, "could not check for work left without a job");
        }
        if let Err(e) = retention.run(&store).await {
            warn!(error = %e, "could not prune expired change messages");
        }
        sample(&store, &mut sampled_minute).await;
    }
}

/// Writes the console's chart sample: once a minute the stored totals,
/// and at every heartbeat that has new lags to add (cheap: one aggregate
/// over the backordered orders' index, one row written).
async fn sample(store: &AnyStore, sampled_minute: &mut Option<i64>) {
    let minute = chrono::Utc::now().timestamp().div_euclid(60);
    let lags = crate::meter::take_lags();
    if *sampled_minute == Some(minute) && lags.count == 0 {
        return;
    }
    match store.record_sample(minute, lags).await {
        Ok(()) => *sampled_minute = Some(minute),
        Err(e) => {
            crate::meter::restore_lags(lags);
            warn!(error = %e, "could not write the console's chart sample");
        }
    }
}

/// Set-aside SKUs whose retry time has come are marked dirty again, and
/// marks that no job covers (its job dead-lettered after failing at every
/// attempt) get a job.
async fn resume_left_work(store: &AnyStore) -> Result<(), crate::store::StoreError> {
    let readmitted = store.readmit_set_aside().await?;
    if readmitted > 0 {
        info!(
            skus = readmitted,
            "retrying the recalculation of set-aside SKUs"
        );
    }
    let queue = store.queue_status().await?;
    let claimable = queue.dirty_skus > queue.set_aside_skus || readmitted > 0;
    if claimable && queue.pending == 0 && queue.running == 0 {
        store
            .enqueue(&RecalcJob::new(vec!["resume".into()], &[], false))
            .await?;
    }
    Ok(())
}

/// What the queue worker needs, whichever incarnation of it runs.
struct QueueWorker {
    store: Arc<AnyStore>,
    state: Arc<WorkerState>,
    heartbeat: Duration,
    /// Whether a worker fetches jobs now (readiness).
    health: Arc<WorkerHealth>,
}

/// Pause before a worker that died is started again.
const WORKER_RESTART_PAUSE: Duration = Duration::from_secs(1);

/// Runs the apalis worker until `stop` turns true. A worker can die while
/// the daemon runs on (apalis ends it when a poll fails, e.g. while the
/// database restarts): it is started again, under a new name as apalis
/// refuses a name it saw lately, with a wake-up job for the marks left.
async fn run_queue_worker(
    worker: QueueWorker,
    name: String,
    first_start: tokio::sync::oneshot::Sender<()>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), WorkerError> {
    let first_start = Arc::new(std::sync::Mutex::new(Some(first_start)));
    for incarnation in 1u32.. {
        let name = match incarnation {
            1 => name.clone(),
            n => format!("{name}-{n}"),
        };
        let health = worker.health.clone();
        let first_start = first_start.clone();
        let on_event = move |_: &WorkerContext, event: &apalis::prelude::Event| match event {
            apalis::prelude::Event::Start => {
                health.set_running(true);
                if let Some(tx) = first_start.lock().ok().and_then(|mut t| t.take()) {
                    let _ = tx.send(());
                }
            }
            apalis::prelude::Event::Error(e) => warn!(error = %e, "queue worker error"),
            apalis::prelude::Event::Stop | apalis::prelude::Event::Exit => {
                health.set_running(false)
            }
            _ => {}
        };
        let mut stop_this = stop.clone();
        let until_stopped = async move {
            let _ = stop_this.wait_for(|stopped| *stopped).await;
            Ok::<(), WorkerError>(())
        };
        // The same worker on either backend's queue; only the storage type differs.
        macro_rules! run_worker {
            ($backend:expr) => {
                WorkerBuilder::new(name.as_str())
                    .backend($backend)
                    .concurrency(1)
                    .data(worker.state.clone())
                    .on_event(on_event)
                    .build(handle_job)
                    .run_until(until_stopped)
                    .await
            };
        }
        let outcome = match &*worker.store {
            AnyStore::Sqlite(sqlite) => {
                let config = apalis_sqlite::Config::default()
                    .queue(QUEUE)
                    .heartbeat_interval(worker.heartbeat)
                    .missed_heartbeats(3);
                // Polled on our wake-ups, not apalis's interval (src/wake.rs).
                // The queue's bookkeeping takes turns with the writer on the
                // one write connection (store/writer.rs).
                run_worker!(
                    SqliteStorage::<RecalcJob>::new(sqlite.write_pool())
                        .with_config(config)
                        .poll_with_stream(crate::wake::stream())
                )
            }
            AnyStore::Postgres(postgres) => {
                let config = apalis_postgres::Config::default()
                    .queue(QUEUE)
                    .heartbeat_interval(worker.heartbeat)
                    .missed_heartbeats(3);
                run_worker!(
                    PostgresStorage::<RecalcJob>::new(postgres.pool())
                        .with_config(config)
                        .poll_with_stream(crate::wake::stream())
                )
            }
        };
        worker.health.set_running(false);
        if *stop.borrow() {
            return outcome;
        }
        warn!(worker = %name, outcome = ?outcome, "the queue worker stopped on its own; starting it again");
        tokio::select! {
            _ = tokio::time::sleep(WORKER_RESTART_PAUSE) => {}
            _ = stop.wait_for(|stopped| *stopped) => return Ok(()),
        }
        let wake_up = RecalcJob::new(vec!["worker restart".into()], &[], false);
        if let Err(e) = worker.store.enqueue(&wake_up).await {
            warn!(error = %e, "could not queue a job for the marks left; the next event or restart will");
        }
    }
    unreachable!("the incarnations outnumber u32")
}

/// The destinations `serve` delivers the message log to, and how.
pub struct Delivery {
    pub destinations: Vec<Arc<crate::delivery::destination::Destination>>,
    pub settings: crate::delivery::deliver::LoopSettings,
    /// How long messages are kept (`notify.retention_secs`).
    pub retention: Duration,
    /// `purchasing.digest_schedule`: none when unset.
    pub digest: Option<crate::digest::Schedule>,
}

impl Delivery {
    pub fn from_settings(settings: &crate::config::Settings) -> anyhow::Result<Delivery> {
        let destinations = crate::delivery::destination::Destination::all(settings)
            .map_err(|e| anyhow::anyhow!("cannot set up the delivery destinations: {e}"))?;
        Ok(Delivery {
            destinations,
            retention: settings.notify.retention,
            digest: settings.purchasing.as_ref().and_then(|p| p.digest_schedule),
            settings: crate::delivery::deliver::LoopSettings {
                retry_window: settings.notify.retry_window,
                retry_base: settings.notify.retry_base,
                concurrency: settings.notify.concurrency.get(),
                poll: settings
                    .service
                    .poll_interval
                    .clamp(Duration::from_millis(10), Duration::from_millis(100)),
            },
        })
    }
}

pub async fn serve(
    store: AnyStore,
    settings: &ServiceSettings,
    http: &HttpSettings,
    delivery: Delivery,
) -> anyhow::Result<()> {
    let mut signals = shutdown_signals()?;
    let listener = crate::api::bind(http.listen).await?;
    let health = Arc::new(WorkerHealth::new(crate::health::stall_after(
        settings.heartbeat,
    )));
    // Every write of this process goes through one writer from here on.
    store.start_writer(crate::store::WriterLimits::default());
    let store = Arc::new(store);
    let stop = Arc::new(AtomicBool::new(false));
    let state = Arc::new(WorkerState {
        store: store.clone(),
        sizes: settings.into(),
        failures: settings.into(),
        stop: stop.clone(),
        busy: tokio::sync::Mutex::new(()),
        activity: Default::default(),
        pacer: Default::default(),
        health: health.clone(),
    });

    store.publish_options(settings.ingest_options()).await?;
    // Before "ready": a destination seen for the first time takes every
    // message committed from here on.
    for destination in &delivery.destinations {
        store
            .delivery_ensure(&destination.name)
            .await
            .with_context(|| format!("cannot record the destination {}", destination.name))?;
    }
    // `/metrics` counts the messages committed from here on.
    crate::delivery::deliver::count_messages_from(store.newest_message_position().await?).await;
    // Marks left by a crash or by events sent while no daemon ran.
    let dirty = store.dirty_count(None).await?;
    if dirty > 0 {
        info!(
            dirty_skus = dirty,
            "resuming recalculation left from before"
        );
        store
            .enqueue(&RecalcJob::new(vec!["startup".into()], &[], false))
            .await?;
    }

    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let (stop_worker_tx, stop_worker_rx) = tokio::sync::watch::channel(false);
    let name = worker_name();
    let worker_task = tokio::spawn(run_queue_worker(
        QueueWorker {
            store: store.clone(),
            state: state.clone(),
            heartbeat: settings.heartbeat,
            health: health.clone(),
        },
        name.clone(),
        started_tx,
        stop_worker_rx,
    ));
    tokio::select! {
        started = started_rx => {
            if started.is_err() {
                let outcome = worker_task.await;
                anyhow::bail!("the queue worker did not start: {outcome:?}");
            }
        }
        _ = tokio::time::sleep(Duration::from_secs(30)) => {
            anyhow::bail!("the queue worker did not start within 30 s");
        }
    }
    health.set_running(true);
    // The worker fetches at once on work queued here, on PostgreSQL when any
    // process queues a job, and every poll interval anyway (src/wake.rs).
    let mut wakers = vec![tokio::spawn(crate::wake::tick(settings.poll_interval))];
    if let AnyStore::Postgres(postgres) = &*store {
        wakers.push(tokio::spawn(crate::wake::listen_postgres(
            postgres.pool().clone(),
            settings.heartbeat,
        )));
    }
    let (http_stop, http_stopped) = tokio::sync::watch::channel(false);
    let api_state = Arc::new(crate::api::AppState::new(
        store.clone(),
        http,
        settings.ingest_options(),
        health.clone(),
        http_stopped,
    ));
    info!(address = %listener.local_addr()?, "HTTP API listening");
    let api_task = tokio::spawn(crate::api::serve(
        listener,
        api_state,
        http.body_limit_bytes.get(),
    ));
    let daemon = crate::store::daemons::DaemonInfo {
        name: name.clone(),
        host: host_name(),
        pid: i64::from(std::process::id()),
        started_at: crate::engine::time_format::format_timestamp(&chrono::Utc::now()),
        heartbeat_secs: settings.heartbeat.as_secs().max(1) as i64,
        last_seen_ms: crate::store::daemons::now_ms(),
        doing: "idle".to_owned(),
        doing_since_ms: crate::store::daemons::now_ms(),
    };
    store.register_daemon(&daemon).await?;
    let presence = tokio::spawn(report_presence(
        store.clone(),
        state.clone(),
        daemon,
        settings.heartbeat,
        crate::delivery::retention::Retention {
            keep: delivery.retention,
            destinations: delivery
                .destinations
                .iter()
                .map(|d| d.name.clone())
                .collect(),
            heartbeat: settings.heartbeat,
        },
    ));
    info!(worker = %name, "backorderd is ready");
    crate::systemd::ready();
    crate::systemd::spawn_watchdog(health.clone(), store.clone());

    // One task per destination: a slow or dead one holds up only itself.
    let (stop_delivery_tx, stop_delivery_rx) = tokio::sync::watch::channel(false);
    let delivery_tasks: Vec<_> = delivery
        .destinations
        .into_iter()
        .map(|destination| {
            tokio::spawn(crate::delivery::deliver::run(
                store.clone(),
                destination,
                delivery.settings,
                stop_delivery_rx.clone(),
                settings.shutdown_grace,
            ))
        })
        .collect();

    let periodic = settings
        .full_recalculation_interval
        .map(|every| tokio::spawn(periodic_full_run(store.clone(), every)));
    let digest = delivery
        .digest
        .map(|schedule| tokio::spawn(crate::digest::run(store.clone(), schedule, name.clone())));

    let signal = signals.next().await.unwrap_or(signal_hook::consts::SIGTERM);
    info!(signal, "stopping: finishing the job in hand");
    crate::systemd::stopping();
    stop.store(true, Ordering::Relaxed);
    let _ = http_stop.send(true);
    let deadline = tokio::time::Instant::now() + settings.shutdown_grace;
    for task in [periodic, digest].into_iter().flatten() {
        task.abort();
    }
    presence.abort();
    for waker in wakers {
        waker.abort();
    }
    let _ = stop_worker_tx.send(true);
    let _ = stop_delivery_tx.send(true);
    match tokio::time::timeout_at(deadline, worker_task).await {
        Ok(Ok(Ok(()))) => info!("stopped"),
        Ok(Ok(Err(e))) => warn!(error = %e, "the queue worker stopped with an error"),
        Ok(Err(e)) => error!(error = %e, "the queue worker panicked"),
        Err(_) => warn!(
            grace_secs = settings.shutdown_grace.as_secs(),
            "the job in hand did not finish within the grace period; its transaction is rolled back and redone at the next start"
        ),
    }
    // The HTTP server stopped taking connections at the signal; requests in
    // hand (a `?wait=true` answers 503 at once) get the rest of the grace.
    match tokio::time::timeout_at(deadline, api_task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => warn!(error = %e, "the HTTP server stopped with an error"),
        Ok(Err(e)) => error!(error = %e, "the HTTP server panicked"),
        Err(_) => warn!("HTTP requests still in hand at the end of the grace period were cut"),
    }
    for task in delivery_tasks {
        if tokio::time::timeout_at(deadline, task).await.is_err() {
            warn!(
                "deliveries still in hand at the end of the grace period were cut; they are sent again after their lease"
            );
        }
    }
    if let Err(e) = store.remove_daemon(&name).await {
        warn!(error = %e, "could not remove this daemon from the list of live ones; it drops out after three heartbeats");
    }
    Ok(())
}

/// Every `every`, marks every SKU dirty: repairs any drift and moves orders
/// into the frozen class as time passes. The event id names the period, so
/// several daemons on one database ask for one run per period.
async fn periodic_full_run(store: Arc<AnyStore>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let period = chrono::Utc::now().timestamp() / every.as_secs().max(1) as i64;
        let event = Event {
            id: format!("periodic-full-recalculation-{period}"),
            kind: EventKind::Recalculate {
                skus: Vec::new(),
                all: true,
            },
        };
        if let Err(e) = store.ingest(&[event], IngestOptions::default()).await {
            warn!(error = %e, "could not queue the periodic full recalculation");
        }
    }
}
