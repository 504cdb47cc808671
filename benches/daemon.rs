//! End-to-end figures of the daemon on SQLite (issue 3), printed as a table.
//!
//!     cargo bench --bench daemon                      # 1,000,000 lines, 100,000 SKUs
//!     BENCH_LINES=100000 BENCH_SKUS=10000 cargo bench --bench daemon
//!
//! 1. `recalc --all --inline` from a state where every stored backorder is 0,
//!    against one window-function SQL UPDATE computing the same plain
//!    oldest-first allocation on a copy of the same database (same run).
//! 2. A full recalculation that changes nothing.
//! 3. Peak memory (max RSS) of each `recalc` process.
//! 4. With `serve` running on the book: event-to-written-back latency (p50,
//!    p99) of single events, and sustained events per second.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backorderd::events::{Event, EventKind};
use backorderd::store::sqlite::SqliteStore;
use backorderd::store::{IngestOptions, Store};

const BIN: &str = env!("CARGO_BIN_EXE_backorderd");

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `backorderd ARGS` to completion: (wall seconds, max RSS in MiB).
fn run(db: &Path, args: &[&str]) -> (f64, f64) {
    let started = Instant::now();
    // Reaped by wait4 below, which also reports the child's peak memory.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(BIN)
        .args(["--database-url", &format!("sqlite://{}", db.display())])
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .expect("backorderd runs");
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child and fills `usage`, a plain C struct.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "backorderd {args:?} failed"
    );
    (
        started.elapsed().as_secs_f64(),
        usage.ru_maxrss as f64 / 1024.0,
    )
}

/// The plain oldest-first allocation of the book's default settings, as one
/// set-based statement: what a database-only implementation would run.
const WINDOW_UPDATE: &str = "
WITH pool AS (
  SELECT i.sku, MAX(0, SUM(i.on_hand)) AS size
  FROM inventory i JOIN warehouses w ON w.id = i.warehouse
  WHERE w.kind NOT IN ('dropship', 'unsellable') GROUP BY i.sku),
ranked AS (
  SELECT l.sku, l.order_id, l.position, l.qty,
         SUM(l.qty) OVER (PARTITION BY l.sku ORDER BY o.order_date, o.id, l.position
                          ROWS UNBOUNDED PRECEDING) - l.qty AS ahead
  FROM order_lines l JOIN orders o ON o.id = l.order_id
  WHERE o.status = 'in_process')
UPDATE order_lines SET backorder_qty = r.qty - MAX(0, MIN(r.qty, COALESCE(p.size, 0) - r.ahead))
FROM ranked r LEFT JOIN pool p ON p.sku = r.sku
WHERE order_lines.sku = r.sku AND order_lines.order_id = r.order_id
  AND order_lines.position = r.position";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let lines = env_or("BENCH_LINES", 1_000_000);
    let skus = env_or("BENCH_SKUS", 100_000);
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("book.json");
    let db = dir.path().join("bench.db");
    let fresh = dir.path().join("fresh.db");
    let window_db = dir.path().join("window.db");

    let out = std::fs::File::create(&book).unwrap();
    let status = Command::new(BIN)
        .args([
            "generate",
            "--lines",
            &lines.to_string(),
            "--skus",
            &skus.to_string(),
        ])
        .stdout(out)
        .status()
        .unwrap();
    assert!(status.success());
    println!("book: {lines} lines over {skus} SKUs, every stored backorder 0");
    let (import_secs, _) = run(&db, &["import", book.to_str().unwrap()]);
    println!("import                                  {import_secs:8.2} s");
    // Fold the WAL in, so that copies are whole databases.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(db.to_str().unwrap()).await.unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(store.pool())
            .await
            .unwrap();
    });
    std::fs::copy(&db, &fresh).unwrap();
    std::fs::copy(&db, &window_db).unwrap();

    let (full_secs, full_rss) = run(&db, &["recalc", "--all", "--inline"]);
    let window_secs = rt.block_on(async {
        let store = SqliteStore::open(window_db.to_str().unwrap())
            .await
            .unwrap();
        let started = Instant::now();
        sqlx::query(WINDOW_UPDATE)
            .execute(store.pool())
            .await
            .unwrap();
        started.elapsed().as_secs_f64()
    });
    let (noop_secs, noop_rss) = run(&db, &["recalc", "--all", "--inline"]);
    println!(
        "recalc --all --inline, from all 0       {full_secs:8.2} s   max RSS {full_rss:6.0} MiB"
    );
    println!("window-function UPDATE, same data       {window_secs:8.2} s");
    println!(
        "  ratio (window / recalc)               {:8.2} x  (target: at least 5)",
        window_secs / full_secs
    );
    println!(
        "recalc --all --inline, nothing changes  {noop_secs:8.2} s   max RSS {noop_rss:6.0} MiB  (targets: under 1 s, under 300 MiB)"
    );
    let _ = std::fs::remove_file(&fresh);
    let _ = std::fs::remove_file(&window_db);

    latency(&rt, &db, skus);
}

/// Starts `serve` on the recalculated book and measures events through it.
fn latency(rt: &tokio::runtime::Runtime, db: &Path, skus: usize) {
    let mut serve = Command::new(BIN)
        .args([
            "--database-url",
            &format!("sqlite://{}", db.display()),
            "serve",
        ])
        .env("BACKORDERD__SERVICE__POLL_INTERVAL_MS", "5")
        .env("BACKORDERD__LOG__FILTER", "warn")
        // Any free port: the bench needs no HTTP, and 8080 may be taken.
        .env("BACKORDERD__HTTP__LISTEN", "127.0.0.1:0")
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    rt.block_on(async {
        let store = SqliteStore::open(db.to_str().unwrap()).await.unwrap();
        // Wait until serve has registered its worker.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let event = |n: usize| Event {
            id: format!("bench-{n}"),
            kind: EventKind::InventoryAdjusted {
                sku: backorderd::bookgen::sku_name((n * 7919) % skus),
                warehouse: "MAIN".into(),
                delta: 1,
            },
        };
        let written_back = |sku: String| {
            let store = &store;
            async move {
                while store.dirty_count(Some(std::slice::from_ref(&sku))).await.unwrap() > 0 {
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
            }
        };

        let mut latencies = Vec::new();
        for n in 0..300 {
            let e = event(n);
            let EventKind::InventoryAdjusted { sku, .. } = &e.kind else {
                unreachable!()
            };
            let sku = sku.clone();
            let started = Instant::now();
            store.ingest(&[e], IngestOptions::default()).await.unwrap();
            written_back(sku).await;
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        latencies.sort_by(f64::total_cmp);
        println!(
            "event to written back (serve, 300 single events)  p50 {:6.1} ms   p99 {:6.1} ms  (target p99 under 50 ms)",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );

        let burst = 5_000;
        let started = Instant::now();
        for n in 0..burst {
            store
                .ingest(&[event(1_000 + n)], IngestOptions::default())
                .await
                .unwrap();
        }
        while store.dirty_count(None).await.unwrap() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "sustained: {burst} events, one per transaction, all written back in {secs:.2} s = {:.0} events/s",
            burst as f64 / secs
        );
    });
    // SAFETY: sends SIGTERM to our own child.
    unsafe { libc::kill(serve.id() as i32, libc::SIGTERM) };
    let status = serve.wait().unwrap();
    assert!(status.success(), "serve exited with {status}");
}
