//! The daemon bench's skewed runs: `serve` on the recalculated book, the
//! workload of `skewed.rs` from 1, 4, 16 senders, during a full recompute,
//! and one recalculation of the hottest SKU timed in this process.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backorderd::events::{Event, EventKind};
use backorderd::store::{AnyStore, IngestOptions, Store};

use crate::skewed::{self, Plan, Shape, percentile};
use crate::support::{BIN, env_f64, env_or};

/// `serve` on `url`, answering HTTP on `listen`, its log (warnings and
/// errors) into `log` when given.
pub fn start_serve(url: &str, listen: &str, log: Option<&Path>) -> Child {
    let stderr = match log {
        Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
        None => Stdio::null(),
    };
    Command::new(BIN)
        .args(["--database-url", url, "serve"])
        .env("BACKORDERD__SERVICE__POLL_INTERVAL_MS", "5")
        .env(
            "BACKORDERD__LOG__FILTER",
            std::env::var("BENCH_SERVE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env("BACKORDERD__HTTP__LISTEN", listen)
        .stderr(stderr)
        .spawn()
        .expect("serve starts")
}

/// SIGTERM, then a clean exit.
pub fn stop_serve(mut serve: Child) {
    // SAFETY: sends SIGTERM to our own child.
    unsafe { libc::kill(serve.id() as i32, libc::SIGTERM) };
    let status = serve.wait().unwrap();
    assert!(status.success(), "serve exited with {status}");
}

/// Until `workers` daemons are registered (each runs its queue worker).
pub async fn wait_for_daemons(store: &AnyStore, workers: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while store.live_daemons().await.unwrap().len() < workers {
        assert!(
            Instant::now() < deadline,
            "serve did not start within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(text) => text
            .split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect(),
        Err(_) => default.to_vec(),
    }
}

fn shape(senders: usize) -> Shape {
    Shape {
        senders,
        max_events: env_or("BENCH_EVENTS", 50_000),
        duration: Duration::from_secs(env_or("BENCH_SECS", 10) as u64),
        burst: env_or("BENCH_BURST", 100).max(1),
        pause: Duration::from_millis(env_or("BENCH_BURST_PAUSE_MS", 10) as u64),
        wait_every: env_or("BENCH_WAIT_EVERY", 20),
    }
}

async fn one_row(store: &AnyStore, sql: &'static str) -> (String, i64, i64) {
    match store {
        AnyStore::Sqlite(s) => sqlx::query_as(sql).fetch_one(s.pool()).await,
        AnyStore::Postgres(s) => sqlx::query_as(sql).fetch_one(s.pool()).await,
    }
    .unwrap()
}

/// The SKU with the most lines of in-process orders: (SKU, lines,
/// backordered lines), and the number of orders.
async fn hottest(store: &AnyStore) -> ((String, i64, i64), usize) {
    let hot = one_row(
        store,
        "SELECT l.sku, COUNT(*), SUM(CASE WHEN l.backorder_qty > 0 THEN 1 ELSE 0 END)
         FROM order_lines l JOIN orders o ON o.id = l.order_id
         WHERE o.status = 'in_process'
         GROUP BY l.sku ORDER BY COUNT(*) DESC, l.sku LIMIT 1",
    )
    .await;
    let orders = one_row(
        store,
        "SELECT 'orders', COUNT(*), CAST(0 AS BIGINT) FROM orders",
    )
    .await
    .1;
    (hot, orders as usize)
}

/// Until nothing is dirty: seconds taken, `None` after two minutes.
async fn drained(store: &AnyStore) -> Option<f64> {
    let started = Instant::now();
    while store.dirty_count(None).await.unwrap() > 0 {
        if started.elapsed() > Duration::from_secs(120) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Some(started.elapsed().as_secs_f64())
}

fn print_drain(label: &str, secs: Option<f64>) {
    match secs {
        Some(s) => println!("{label}: all written back   {s:7.2} s after the last answer"),
        None => println!("{label}: all written back   NOT within 120 s after the last answer"),
    }
}

/// Warnings and errors `serve` logged, and how many say "locked".
fn print_log(label: &str, log: &Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    if let Ok(keep) = std::env::var("BENCH_KEEP_LOG") {
        std::fs::write(&keep, &text).expect("BENCH_KEEP_LOG is a writable path");
    }
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    let locked = lines.iter().filter(|l| l.contains("locked")).count();
    println!(
        "{label}: serve logged {} warnings/errors during these runs, {locked} of them \"locked\"",
        lines.len()
    );
    if let Some(first) = lines.first() {
        println!(
            "{label}:   first: {}",
            first.chars().take(300).collect::<String>()
        );
    }
}

/// The sums of serve's batch-time histograms (`GET /metrics`): seconds of
/// written-back batches, the availability feed's part of them, and the
/// number of batches.
fn batch_seconds(addr: SocketAddr) -> [f64; 3] {
    let text = ureq::get(format!("http://{addr}/metrics"))
        .call()
        .and_then(|mut answer| answer.body_mut().read_to_string())
        .unwrap_or_default();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    [
        value("backorderd_batch_duration_seconds_sum "),
        value("backorderd_availability_recording_seconds_sum "),
        value("backorderd_batch_duration_seconds_count "),
    ]
}

/// What the availability feed's recording cost the write-back between two
/// [`batch_seconds`] readings.
fn print_feed_share(label: &str, before: [f64; 3], after: [f64; 3]) {
    let [batches, feed, count] = [0, 1, 2].map(|i| after[i] - before[i]);
    let share = if batches > 0.0 { feed / batches } else { 0.0 };
    println!(
        "{label}: write-back    {count:.0} batches, {batches:.2} s; availability feed recording {feed:.3} s of it = {:.1}% (computing each SKU's figures, comparing them, stamps and messages)",
        share * 100.0
    );
}

/// The skewed runs on `url` (already recalculated) with one `serve`:
/// `BENCH_SENDERS` (or `default_senders`) runs, then, with `full`, 4
/// senders during `recalc --all --wait`; then, `serve` stopped, one
/// recalculation of the hottest SKU timed in this process.
pub fn skewed_runs(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    url: &str,
    skus: usize,
    name: &str,
    default_senders: &[usize],
    full: bool,
) {
    let store = rt.block_on(AnyStore::open(url)).unwrap();
    let ((hot, hot_lines, hot_backordered), orders) = rt.block_on(hottest(&store));
    let plan = Arc::new(Plan::new(
        skus,
        orders,
        hot.clone(),
        env_f64("BENCH_HOT_SHARE", 0.5),
    ));
    println!(
        "{name}: hottest SKU {hot}: {hot_lines} lines of in-process orders wait on it ({hot_backordered} backordered); {orders} orders"
    );
    println!(
        "{name}: events: SKUs by a Zipf law of exponent {:.3} over {skus} SKUs (rank 1 = {hot}); 45% inventory_adjusted, 25% po_received, 15% order_upserted (1-3 lines), 10% order_status_changed (half cancels), 5% inventory_set; one per POST /v1/events",
        plan.exponent
    );
    let s = shape(1);
    println!(
        "{name}: each sender: keep-alive HTTP/1.1, bursts of {} back to back then {} ms pause, up to 1 request in {} with ?wait=true (on a second connection); a run stops after {} s or {} requests in all",
        s.burst,
        s.pause.as_millis(),
        s.wait_every,
        s.duration.as_secs(),
        s.max_events
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = dir.join(format!("serve-{name}.log"));
    let serve = start_serve(url, &addr.to_string(), Some(&log));
    rt.block_on(async {
        wait_for_daemons(&store, 1).await;
        drained(&store).await;
        for senders in env_list("BENCH_SENDERS", default_senders) {
            let label = format!("{name}, {senders:2} senders");
            let shape = shape(senders.max(1));
            let stop = Arc::new(AtomicBool::new(false));
            let before = batch_seconds(addr);
            let mut tally = skewed::run(
                addr,
                plan.clone(),
                shape,
                &format!("{name}-s{senders}"),
                stop,
            )
            .await;
            skewed::print(&label, &shape, &mut tally);
            print_drain(&label, drained(&store).await);
            print_feed_share(&label, before, batch_seconds(addr));
        }
        if full && env_or("BENCH_DURING_FULL", 1) != 0 {
            during_full_recompute(url, addr, plan.clone(), name, &store).await;
        }
    });
    stop_serve(serve);
    print_log(name, &log);
    rt.block_on(hot_recalculation(&store, &hot, hot_lines, name));
}

/// 4 senders for as long as `recalc --all --wait` (a separate process;
/// `serve` does the recompute) runs.
async fn during_full_recompute(
    url: &str,
    addr: SocketAddr,
    plan: Arc<Plan>,
    name: &str,
    store: &AnyStore,
) {
    let label = format!("{name},  4 senders during recalc --all");
    let stop = Arc::new(AtomicBool::new(false));
    let recalc_url = url.to_owned();
    let recalc = std::thread::spawn(move || {
        crate::support::measure(
            &recalc_url,
            &["recalc", "--all", "--wait", "--timeout", "900"],
        )
    });
    let watch = {
        let stop = stop.clone();
        tokio::spawn(async move {
            while !recalc.is_finished() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            stop.store(true, Ordering::Relaxed);
            recalc.join().unwrap()
        })
    };
    let mut shape = shape(4);
    shape.duration = Duration::from_secs(900);
    shape.max_events = shape.max_events.saturating_mul(20);
    let mut tally = skewed::run(addr, plan, shape, &format!("{name}-full"), stop).await;
    let (code, secs, _) = watch.await.unwrap();
    skewed::print(&label, &shape, &mut tally);
    println!(
        "{label}: recalc --all --wait   {secs:7.2} s wall, exit {code} (the whole book recalculated by serve while the senders ran; they sent for {:.2} s)",
        tally.elapsed.as_secs_f64()
    );
    print_drain(&label, drained(store).await);
}

/// Times `Store::recalculate_dirty` on one opened store, in this process,
/// right after an event marked the hottest SKU (the ingest is not timed):
/// what the queue worker calls for each job. A store that keeps pools in
/// memory keeps them across these calls.
async fn hot_recalculation(store: &AnyStore, hot: &str, hot_lines: i64, name: &str) {
    let reps = env_or("BENCH_RECALC_REPS", 30).max(1);
    let warm_up = 3;
    while store
        .recalculate_dirty(2000, chrono::Utc::now())
        .await
        .unwrap()
        .is_some()
    {}
    for (what, changes) in [
        ("after inventory_adjusted +1/-1", true),
        ("after a recalculate event, nothing changed", false),
    ] {
        let mut ms = Vec::new();
        let mut feed_ms = Vec::new();
        let mut seen = 0;
        for rep in 0..warm_up + reps {
            let kind = if changes {
                EventKind::InventoryAdjusted {
                    sku: hot.to_owned(),
                    warehouse: "MAIN".into(),
                    delta: if rep % 2 == 0 { 1 } else { -1 },
                }
            } else {
                EventKind::Recalculate {
                    skus: vec![hot.to_owned()],
                    all: false,
                }
            };
            let id = format!("{name}-hot-{changes}-{rep}");
            store
                .ingest(&[Event { id, kind }], IngestOptions::default())
                .await
                .unwrap();
            let started = Instant::now();
            let report = store
                .recalculate_dirty(2000, chrono::Utc::now())
                .await
                .unwrap()
                .expect("the hottest SKU is dirty");
            let elapsed = started.elapsed().as_secs_f64() * 1000.0;
            assert!(
                report.skus.iter().any(|s| s == hot),
                "recalculated {:?}",
                report.skus
            );
            seen = report.lines_seen;
            if rep >= warm_up {
                ms.push(elapsed);
                feed_ms.push(report.feed_time.as_secs_f64() * 1000.0);
            }
        }
        ms.sort_by(f64::total_cmp);
        feed_ms.sort_by(f64::total_cmp);
        println!(
            "{name}: hottest SKU recalculation, {what}: availability feed recording p50 {:7.2} ms of it",
            percentile(&feed_ms, 0.5)
        );
        println!(
            "{name}: hottest SKU recalculation, {what}: p50 {:7.1} ms  p99 {:7.1} ms  max {:7.1} ms  ({reps} after {warm_up} warm-up; {seen} lines seen of {hot_lines}; timed: Store::recalculate_dirty in this process on one opened store, serve stopped)",
            percentile(&ms, 0.5),
            percentile(&ms, 0.99),
            ms.last().unwrap()
        );
    }
}
