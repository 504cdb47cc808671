//! `cargo bench --bench delivery`: the delivery loop's figures, printed.
//!
//! Runs the real `backorderd serve` on a fresh SQLite database with webhook
//! receivers in this process that answer 200 at once, and appends messages
//! to the log the way the write-back does (`append_on_sqlite`):
//!
//! 1. delivery lag (creation to receipt) p50/p99 at 500 messages/s;
//! 2. the same with a second, dead endpoint (nothing listens): the first
//!    endpoint's lag;
//! 3. the event path as the daemon bench measures it (support/skewed.rs:
//!    4 senders, one event per `POST /v1/events`, about half on the
//!    hottest SKU; events per second, accept p99, event-to-result p99) on
//!    a generated book (`DELIVERY_BENCH_LINES`, 100,000 lines, over
//!    `DELIVERY_BENCH_SKUS`, 10,000 SKUs) with one dead endpoint;
//! 4. a million messages appended for that endpoint
//!    (`DELIVERY_BENCH_BACKLOG` changes the count), then the same event
//!    run beside them, and the daemon's memory (RSS) before and after,
//!    and its peak.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backorderd::delivery::message::{Data, Draft, MessageType};
use backorderd::store::messages::PendingMessage;
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "support/http.rs"]
mod http;
#[path = "support/skewed.rs"]
mod skewed;
// Only the binary's path and the knobs are used here.
#[allow(dead_code)]
mod support;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const RATE: usize = 500;
const SECONDS: usize = 10;

/// A receiver answering 200 at once; records each message's lag in ms.
async fn receiver(lags: Arc<Mutex<Vec<f64>>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let lags = lags.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    // Keep-alive: one request after another on the connection.
                    let head_end = loop {
                        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at + 4;
                        }
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buffer.len() < head_end + length {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body: serde_json::Value =
                        serde_json::from_slice(&buffer[head_end..head_end + length])
                            .unwrap_or_default();
                    buffer.drain(..head_end + length);
                    if let Some(created) = body["created_at"]
                        .as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    {
                        let lag = chrono::Utc::now().signed_duration_since(created);
                        lags.lock()
                            .unwrap()
                            .push(lag.num_microseconds().unwrap_or(0) as f64 / 1000.0);
                    }
                    if stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn draft(i: usize) -> PendingMessage {
    PendingMessage {
        draft: Draft {
            kind: MessageType::OrderBackorderChanged,
            key: format!("order:B-{}", i % 5000),
            data: Data::Other(serde_json::json!({"order_id": format!("B-{}", i % 5000), "n": i})),
        },
        causes: vec!["bench".into()],
    }
}

async fn append(url: &str, batch: Vec<PendingMessage>) {
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
    backorderd::store::messages::append_on_sqlite(&mut tx, batch, chrono::Utc::now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    conn.close().await.unwrap();
}

fn serve(url: &str, config: &str) -> Child {
    serve_on(url, config, "127.0.0.1:0")
}

fn serve_on(url: &str, config: &str, listen: &str) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_backorderd"))
        .args([
            "--database-url",
            url,
            "--config",
            config,
            "serve",
            "--listen",
            listen,
        ])
        .env("BACKORDERD__SERVICE__FULL_RECALCULATION_INTERVAL_SECS", "0")
        .env("BACKORDERD__SERVICE__POLL_INTERVAL_MS", "5")
        .env("BACKORDERD__LOG__FILTER", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Ready once the destinations' rows exist.
    std::thread::sleep(Duration::from_secs(3));
    assert!(child.try_wait().unwrap().is_none(), "serve exited");
    child
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = ((values.len() as f64 - 1.0) * p).round() as usize;
    values.get(at).copied().unwrap_or(f64::NAN)
}

fn config(dir: &std::path::Path, name: &str, urls: &[String]) -> String {
    let mut text = String::new();
    for url in urls {
        text.push_str(&format!(
            "[[webhooks]]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\ntimeout_secs = 5\n\n"
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Appends at `RATE` per second for `SECONDS`, in batches every 20 ms.
async fn paced(url: &str, offset: usize) {
    let per_tick = RATE / 50;
    let start = Instant::now();
    for tick in 0..(SECONDS * 50) {
        let batch = (0..per_tick)
            .map(|i| draft(offset + tick * per_tick + i))
            .collect();
        append(url, batch).await;
        let due = start + Duration::from_millis(20 * (tick as u64 + 1));
        tokio::time::sleep_until(due.into()).await;
    }
}

async fn wait_count(lags: &Arc<Mutex<Vec<f64>>>, count: usize, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while lags.lock().unwrap().len() < count {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

#[tokio::main]
async fn main() {
    println!("load average at the start: {}", load_average());
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let status = Command::new(env!("CARGO_BIN_EXE_backorderd"))
        .args(["--database-url", &url, "migrate"])
        .status()
        .unwrap();
    assert!(status.success());
    let total = RATE * SECONDS;

    // 1. One endpoint.
    let lags = Arc::new(Mutex::new(Vec::new()));
    let port = receiver(lags.clone()).await;
    let good = format!("http://127.0.0.1:{port}/hook");
    let mut daemon = serve(
        &url,
        &config(dir.path(), "one.toml", std::slice::from_ref(&good)),
    );
    paced(&url, 0).await;
    let complete = wait_count(&lags, total, Duration::from_secs(60)).await;
    let mut one: Vec<f64> = lags.lock().unwrap().drain(..).collect();
    println!(
        "delivery lag at {RATE} messages/s, one endpoint: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} of {total} delivered)",
        percentile(&mut one, 0.5),
        percentile(&mut one, 0.99),
        percentile(&mut one, 1.0),
        one.len(),
    );
    assert!(complete, "not every message was delivered");
    let _ = daemon.kill();
    let _ = daemon.wait();

    // 2. The same endpoint and a dead one.
    let dead = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!(
            "http://127.0.0.1:{}/hook",
            socket.local_addr().unwrap().port()
        )
    };
    let mut daemon = serve(&url, &config(dir.path(), "two.toml", &[good.clone(), dead]));
    paced(&url, total).await;
    wait_count(&lags, total, Duration::from_secs(60)).await;
    let mut two: Vec<f64> = lags.lock().unwrap().drain(..).collect();
    println!(
        "delivery lag at {RATE} messages/s with a second endpoint dead: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} of {total} delivered)",
        percentile(&mut two, 0.5),
        percentile(&mut two, 0.99),
        percentile(&mut two, 1.0),
        two.len(),
    );

    let _ = daemon.kill();
    let _ = daemon.wait();

    // 3 and 4. The event path, then a million messages waiting for a dead
    // endpoint, then the event path again beside them.
    event_path_and_backlog(dir.path()).await;
    println!("load average at the end: {}", load_average());
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

const EVENT_RUN_SECS: u64 = 10;

/// The skewed workload of the daemon bench (support/skewed.rs): 4 senders,
/// one event per `POST /v1/events`, about half on the hottest SKU.
async fn event_run(addr: std::net::SocketAddr, plan: &Arc<skewed::Plan>, label: &str) {
    let shape = skewed::Shape {
        senders: 4,
        max_events: 50_000,
        duration: Duration::from_secs(EVENT_RUN_SECS),
        burst: 100,
        pause: Duration::from_millis(10),
        wait_every: 20,
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tally = skewed::run(addr, plan.clone(), shape, label, stop).await;
    skewed::print(label, &shape, &mut tally);
}

/// Until nothing waits for a recalculation (at most two minutes).
async fn drained(store: &backorderd::store::AnyStore) {
    use backorderd::store::Store;
    let deadline = Instant::now() + Duration::from_secs(120);
    while store.dirty_count(None).await.unwrap() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn event_path_and_backlog(dir: &std::path::Path) {
    let lines = support::env_or("DELIVERY_BENCH_LINES", 100_000);
    let skus = support::env_or("DELIVERY_BENCH_SKUS", 10_000);
    let book = dir.join("book.json");
    let status = Command::new(support::BIN)
        .args(["generate", "--lines", &lines.to_string()])
        .args(["--skus", &skus.to_string(), "--skew", "0.8"])
        .stdout(std::fs::File::create(&book).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let url = format!("sqlite://{}", dir.join("events.db").display());
    for args in [
        &["import", book.to_str().unwrap()][..],
        &["recalc", "--all", "--inline"][..],
    ] {
        let status = Command::new(support::BIN)
            .args(["--database-url", &url])
            .args(args)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "backorderd {args:?}");
    }
    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    let (hot, hot_lines): (String, i64) = sqlx::query_as(
        "SELECT sku, COUNT(*) FROM order_lines GROUP BY sku ORDER BY COUNT(*) DESC, sku LIMIT 1",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    let (orders,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orders")
        .fetch_one(&db)
        .await
        .unwrap();
    let plan = Arc::new(skewed::Plan::new(skus, orders as usize, hot.clone(), 0.5));
    println!(
        "event path: a book of {lines} lines over {skus} SKUs (hottest {hot}, {hot_lines} lines); \
         4 senders for {EVENT_RUN_SECS} s, one event per POST /v1/events, about half on {hot}; \
         serve has one webhook endpoint, dead (nothing listens)"
    );
    let dead = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!(
            "http://127.0.0.1:{}/hook",
            socket.local_addr().unwrap().port()
        )
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    let mut daemon = serve_on(
        &url,
        &config(dir, "dead.toml", std::slice::from_ref(&dead)),
        &listen,
    );
    let store = backorderd::store::AnyStore::open(&url).await.unwrap();
    let pid = daemon.id();
    event_run(addr, &plan, "no backlog").await;
    drained(&store).await;
    let rss_no_backlog = rss_kib(pid, "VmRSS:");

    // A million messages waiting for the dead endpoint.
    let backlog: usize = std::env::var("DELIVERY_BENCH_BACKLOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let started = Instant::now();
    let mut appended = 0;
    while appended < backlog {
        let n = 5000.min(backlog - appended);
        append(&url, (0..n).map(|i| draft(appended + i)).collect()).await;
        appended += n;
    }
    let appended_in = started.elapsed();
    // Until the daemon has looked at all of them (its backlog for the dead
    // endpoint holds them all) or five minutes.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut pending = 0i64;
    while Instant::now() < deadline {
        let row: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM delivery_pending")
            .fetch_one(&db)
            .await
            .unwrap();
        pending = row.0;
        if pending as usize >= backlog {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let rss_backlog = rss_kib(pid, "VmRSS:");
    println!(
        "{backlog} messages appended in {:.1} s; the dead endpoint's backlog: {pending} rows after {:.1} s",
        appended_in.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    event_run(addr, &plan, "1M backlog").await;
    drained(&store).await;
    println!(
        "serve RSS: {} MiB after the first event run, {} MiB with the backlog, {} MiB after the second event run, peak {} MiB",
        rss_no_backlog / 1024,
        rss_backlog / 1024,
        rss_kib(pid, "VmRSS:") / 1024,
        rss_kib(pid, "VmHWM:") / 1024,
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
}
