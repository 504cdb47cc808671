//! Commands that feed or run the daemon: event, recalc, serve, status.

use anyhow::Context;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::storage::open;
use crate::config::Settings;
use crate::events::{Event, EventKind, parse_batch};
use crate::input::InputError;
use crate::store::AnyStore;
use crate::store::{IngestReport, Store};

#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// Return only once the recalculations this caused are written back (needs a
    /// running `backorderd serve`).
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up (exit 1) after this many seconds (at most a year,
    /// 31536000).
    #[arg(
        long,
        default_value_t = 300,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(0..=crate::config::MAX_INTERVAL_SECS)
    )]
    pub timeout: u64,
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    out.write_all(b"\n")?;
    out.flush().context("cannot write to standard output")
}

pub async fn event(settings: &Settings, file: &Path, wait: &WaitArgs) -> anyhow::Result<()> {
    let name = super::input_name(file);
    let bytes = super::read_input(file)?;
    let events = parse_batch(&bytes)
        .map_err(InputError::from)
        .with_context(|| format!("events {name} refused"))?;
    let store = open(settings).await?;
    let report = store
        .ingest(&events, settings.service.ingest_options())
        .await
        .with_context(|| format!("events {name} not applied (nothing of them was)"))?;
    finish(&store, report, wait).await
}

pub async fn recalc(
    settings: &Settings,
    all: bool,
    skus: Vec<String>,
    inline: bool,
    wait: &WaitArgs,
) -> anyhow::Result<()> {
    let event = Event {
        id: format!(
            "recalc-{}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.9fZ"),
            std::process::id()
        ),
        kind: EventKind::Recalculate { skus, all },
    };
    crate::events::check(&event).map_err(InputError::Other)?;
    let store = open(settings).await?;
    let report = store
        .ingest(&[event], settings.service.ingest_options())
        .await
        .context("cannot queue the recalculation")?;
    if inline {
        return run_inline(
            &store,
            &(&settings.service).into(),
            (&settings.service).into(),
        )
        .await;
    }
    finish(&store, report, wait).await
}

/// Prints the report; with --wait, first waits until every SKU the batch
/// marked is recalculated with its events.
async fn finish(store: &AnyStore, report: IngestReport, wait: &WaitArgs) -> anyhow::Result<()> {
    if wait.wait {
        let marked = (!report.all_marked).then_some(report.marked_skus.as_slice());
        let deadline = Instant::now() + Duration::from_secs(wait.timeout);
        // Read after the events committed (see `Store::waiting_count`).
        let ticket = store.recalc_ticket().await?;
        loop {
            if store.waiting_count(marked, ticket).await? == 0 {
                break;
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "the recalculation was queued but not done within {} s: is `backorderd serve` running?",
                    wait.timeout
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    print_json(&report)
}

async fn run_inline(
    store: &AnyStore,
    sizes: &crate::worker::BatchSizes,
    failures: crate::worker::FailurePolicy,
) -> anyhow::Result<()> {
    let total = store.dirty_count(None).await?;
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(total.max(0) as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} SKUs ({per_sec}, {eta} left) {msg}",
        )
        .expect("the template is valid"),
    );
    let started = Instant::now();
    let stop = AtomicBool::new(false);
    let report = crate::worker::drain(store, sizes, &stop, failures, None, |batch| {
        bar.inc(batch.skus.len() as u64);
    })
    .await
    .context("the recalculation failed; batches written before the failure stand")?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "recalculated {} SKUs ({} lines) in {seconds:.2} s: {} lines and {} orders changed",
        report.skus, report.lines_seen, report.lines_changed, report.orders_changed
    );
    print_json(&serde_json::json!({ "recalculated": report, "seconds": seconds }))?;
    if !report.set_aside.is_empty() {
        anyhow::bail!(
            "the recalculation of {} SKUs failed; they are set aside and retried by `serve` (`status` shows why): {}",
            report.set_aside.len(),
            report.set_aside.join(", ")
        );
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Listen for HTTP on this address instead of `http.listen`, e.g.
    /// 127.0.0.1:8080 (a non-loopback address needs `http.token`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
}

pub async fn serve(settings: &Settings, args: &ServeArgs) -> anyhow::Result<()> {
    let mut http = settings.http.clone();
    if let Some(listen) = args.listen {
        http.listen = listen;
    }
    http.check_exposure()?;
    crate::telemetry::init(&settings.log);
    let store = open(settings).await?;
    let delivery = crate::service::Delivery::from_settings(settings)?;
    crate::service::serve(store, &settings.service, &http, delivery).await
}

pub async fn status(settings: &Settings) -> anyhow::Result<()> {
    let store = open(settings).await?;
    let queue = store.queue_status().await?;
    let workers: Vec<serde_json::Value> = store
        .live_daemons()
        .await?
        .into_iter()
        .map(|d| {
            serde_json::json!({
                "name": d.name,
                "host": d.host,
                "pid": d.pid,
                "started_at": d.started_at,
                "last_seen": crate::store::daemons::ms_to_rfc3339(d.last_seen_ms),
                "doing": d.doing,
                "since": crate::store::daemons::ms_to_rfc3339(d.doing_since_ms),
            })
        })
        .collect();
    let set_aside: Vec<serde_json::Value> = store
        .set_aside_list()
        .await?
        .into_iter()
        .map(|s| {
            serde_json::json!({
                "sku": s.sku,
                "cause": s.cause,
                "error": s.error,
                "failed_at": crate::store::daemons::ms_to_rfc3339(s.failed_at_ms),
                "attempts": s.attempts,
                "retry_at": crate::store::daemons::ms_to_rfc3339(s.retry_at_ms),
            })
        })
        .collect();
    let now = crate::store::daemons::now_ms();
    let destinations: Vec<serde_json::Value> =
        crate::store::DeliveryStore::destinations_status(&store)
            .await?
            .into_iter()
            .map(|d| {
                serde_json::json!({
                    "destination": d.destination,
                    "backlog": d.pending + d.unscanned,
                    "oldest_undelivered_age_secs": d.oldest_pending_ms.map(|ms| (now - ms).max(0) as f64 / 1000.0),
                    "dead": d.dead,
                    "disabled_at": d.disabled_at_ms.map(crate::store::daemons::ms_to_rfc3339),
                    "disabled_reason": d.disabled_reason,
                })
            })
            .collect();
    print_json(&serde_json::json!({
        "backend": store.backend_name(),
        "destinations": destinations,
        "queue": { "pending": queue.pending, "running": queue.running, "failed": queue.failed },
        "dirty_skus": queue.dirty_skus,
        "set_aside": set_aside,
        "workers": workers,
    }))
}
