//! Daemon figures on a generated book, printed (a bench command, not criterion):
//!
//!     cargo bench --bench daemon                      # 1,000,000 lines, 100,000 SKUs
//!     BENCH_LINES=100000 BENCH_SKUS=10000 cargo bench --bench daemon
//!
//! The knobs (environment variables) and what each printed figure means are
//! in README.md ("Performance"). For SQLite, and for PostgreSQL on a server
//! of the bench's own (or `BENCH_POSTGRES_URL`, a server where the bench may
//! create and drop the databases `backorderd_bench*`; `BENCH_POSTGRES=0`
//! skips it):
//! 1. `recalc --all --inline` from a state where every stored backorder is 0,
//!    against the fair peer on a copy of the same database (same run): one
//!    window-function SQL UPDATE computing the same plain oldest-first
//!    allocation of the lines, then one UPDATE of the orders' statuses and
//!    totals, each writing only the rows whose value changes; on SQLite also
//!    the bare write floor (support/floor.rs: the rows the run wrote, written
//!    by a plain script with the same statements, in one transaction).
//! 2. A full recalculation that changes nothing, and the peer again.
//! 3. Peak memory (max RSS) of each `recalc` process.
//! 4. With `serve` running on the book: event-to-written-back latency (p50,
//!    p99) of single events, and sustained events per second (on
//!    PostgreSQL with one and with two `serve` processes), events ingested
//!    in this process, each to another SKU.
//! 5. The skewed workload (support/skewed.rs, support/load.rs): events as a
//!    shop sends them, about half on the hottest SKU, one per HTTP request
//!    to a real `serve`, from 1, 4 and 16 senders (1 and 4 on PostgreSQL),
//!    then from 4 during `recalc --all`; and one recalculation of the
//!    hottest SKU timed in this process.

use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backorderd::events::{Event, EventKind};
use backorderd::store::{AnyStore, IngestOptions, Store};

#[path = "support/floor.rs"]
mod floor;
#[path = "support/http.rs"]
mod http;
#[path = "support/load.rs"]
mod load;
#[path = "support/pg_server.rs"]
mod pg_server;
#[path = "support/skewed.rs"]
mod skewed;
mod support;
use skewed::percentile;

/// Runs `backorderd ARGS` on `url` to success: (wall seconds, max RSS in MiB).
fn run(url: &str, args: &[&str]) -> (f64, f64) {
    let (code, secs, rss) = support::measure(url, args);
    assert_eq!(code, 0, "backorderd {args:?} failed");
    (secs, rss)
}

/// The fair peer's first statement: the plain oldest-first allocation of
/// the book's default settings as one set-based UPDATE, writing only the
/// lines whose value changes (what a database-only implementation would
/// run). `{max}`/`{min}` are the dialect's two-argument max and min, `{row}`
/// joins `order_lines` to `r` by the table's primary key.
const WINDOW_UPDATE: &str = "
WITH pool AS (
  SELECT i.sku, {max}(0, SUM(i.on_hand)) AS size
  FROM inventory i JOIN warehouses w ON w.id = i.warehouse
  WHERE w.kind NOT IN ('dropship', 'unsellable') GROUP BY i.sku),
ranked AS (
  SELECT l.id, l.sku, l.order_id, l.position, l.qty,
         SUM(l.qty) OVER (PARTITION BY l.sku ORDER BY o.order_date, o.id, l.position
                          ROWS UNBOUNDED PRECEDING) - l.qty AS ahead
  FROM order_lines l JOIN orders o ON o.id = l.order_id
  WHERE o.status = 'in_process')
UPDATE order_lines SET backorder_qty = {new}
FROM ranked r LEFT JOIN pool p ON p.sku = r.sku
WHERE {row} AND order_lines.backorder_qty <> {new}";

/// The fair peer's second statement: each order's status, total and line
/// counts from its lines, writing only the orders whose values change.
const ORDER_UPDATE: &str = "
UPDATE orders SET backorder_status = t.status, backorder_qty = t.qty,
    lines_open = t.open, lines_backordered = t.backordered, lines_whole = t.whole
FROM (SELECT order_id, SUM(backorder_qty) AS qty,
        SUM(CASE WHEN qty > 0 THEN 1 ELSE 0 END) AS open,
        SUM(CASE WHEN qty > 0 AND backorder_qty > 0 THEN 1 ELSE 0 END) AS backordered,
        SUM(CASE WHEN qty > 0 AND backorder_qty >= qty THEN 1 ELSE 0 END) AS whole,
        CASE WHEN SUM(CASE WHEN qty > 0 AND backorder_qty > 0 THEN 1 ELSE 0 END) = 0 THEN 'none'
             WHEN SUM(CASE WHEN qty > 0 AND backorder_qty >= qty THEN 1 ELSE 0 END)
                  >= SUM(CASE WHEN qty > 0 THEN 1 ELSE 0 END) THEN 'full'
             ELSE 'partial' END AS status
      FROM order_lines GROUP BY order_id) t
WHERE orders.id = t.order_id
  AND (orders.backorder_status <> t.status OR orders.backorder_qty <> t.qty
       OR orders.lines_open <> t.open OR orders.lines_backordered <> t.backordered
       OR orders.lines_whole <> t.whole)";

fn window_update(max: &str, min: &str, row: &str) -> String {
    let new = format!("r.qty - {max}(0, {min}(r.qty, COALESCE(p.size, 0) - r.ahead))");
    WINDOW_UPDATE
        .replace("{new}", &new)
        .replace("{max}", max)
        .replace("{min}", min)
        .replace("{row}", row)
}

/// The book's SKU popularity unless `BENCH_SKEW` says otherwise: the
/// hottest of 100,000 SKUs gets about 22,000 of 1,000,000 lines.
const SKEW: f64 = 0.8;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let started = Instant::now();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at the start: {}", load.trim());
    let dir = tempfile::tempdir().unwrap();
    let (book, lines, skus) = support::generated_book(dir.path(), SKEW);
    println!(
        "book: {lines} lines over {skus} SKUs, --skew {}, every stored backorder 0",
        support::env_f64("BENCH_SKEW", SKEW)
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let classic = support::env_or("BENCH_CLASSIC", 1) != 0;

    println!("\n== SQLite ==");
    sqlite(&rt, dir.path(), &book, skus, classic);
    if support::env_or("BENCH_POSTGRES", 1) == 0 {
        println!("\nPostgreSQL: skipped (BENCH_POSTGRES=0)");
    } else if let Ok(server) = std::env::var("BENCH_POSTGRES_URL") {
        println!(
            "\n== PostgreSQL ({}) ==",
            backorderd::store::redact_url(&server)
        );
        postgres(&rt, dir.path(), &server, &book, skus, classic);
    } else if let Some(server) = pg_server::PgServer::start(&rt) {
        println!(
            "\n== PostgreSQL (the bench's own server: fsync on, shared_buffers 512 MB, work_mem 64 MB) =="
        );
        postgres(&rt, dir.path(), &server.url, &book, skus, classic);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nbench wall time {:.0} s; load average at the end: {}",
        started.elapsed().as_secs_f64(),
        load.trim()
    );
}

fn sqlite(rt: &tokio::runtime::Runtime, dir: &Path, book: &Path, skus: usize, classic: bool) {
    let db = dir.join("bench.db");
    if let Ok(ready) = std::env::var("BENCH_SQLITE_DB") {
        // A book imported and recalculated before (`import`, then `recalc
        // --all --inline`): the skewed runs alone, on a copy of it.
        std::fs::copy(&ready, &db).expect("BENCH_SQLITE_DB is a readable SQLite file");
        println!("database: a copy of {ready} (BENCH_SQLITE_DB)");
        let url = format!("sqlite://{}", db.display());
        load::skewed_runs(rt, dir, &url, skus, "sqlite", &[1, 4, 16], true);
        return;
    }
    let window_db = dir.join("window.db");
    let url = format!("sqlite://{}", db.display());
    let (import_secs, import_rss) = run(&url, &["import", book.to_str().unwrap()]);
    println!(
        "import                                  {import_secs:8.2} s   peak {import_rss:.0} MB"
    );
    // Fold the WAL in, so that the copy is a whole database.
    rt.block_on(async {
        let store = backorderd::store::sqlite::SqliteStore::open(&url)
            .await
            .unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(store.pool())
            .await
            .unwrap();
    });
    if !classic {
        run(&url, &["recalc", "--all", "--inline"]);
        load::skewed_runs(rt, dir, &url, skus, "sqlite", &[1, 4, 16], true);
        return;
    }
    std::fs::copy(&db, &window_db).unwrap();
    let floor_db = dir.join("floor.db");
    std::fs::copy(&db, &floor_db).unwrap();
    let window_url = format!("sqlite://{}", window_db.display());
    recalculations(
        rt,
        &url,
        &window_url,
        &window_update(
            "MAX",
            "MIN",
            "order_lines.sku = r.sku AND order_lines.order_id = r.order_id AND order_lines.position = r.position",
        ),
        Some(&floor_db),
    );
    let _ = std::fs::remove_file(&window_db);
    let _ = std::fs::remove_file(&floor_db);
    if support::env_or("BENCH_FULL_RUNS_ONLY", 0) != 0 {
        return;
    }
    events(rt, &url, skus, 1, &[1]);
    load::skewed_runs(rt, dir, &url, skus, "sqlite", &[1, 4, 16], true);
}

/// `server` with its database name replaced by `name`.
fn database_url(server: &str, name: &str) -> String {
    let (base, _) = server
        .rsplit_once('/')
        .expect("BENCH_POSTGRES_URL is postgres://USER@HOST:PORT/DATABASE");
    format!("{base}/{name}")
}

fn postgres(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    server: &str,
    book: &Path,
    skus: usize,
    classic: bool,
) {
    let admin = |statement: String| {
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(server).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                .execute(&mut conn)
                .await
                .unwrap();
        })
    };
    for name in ["backorderd_bench", "backorderd_bench_window"] {
        admin(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
    admin("CREATE DATABASE backorderd_bench".into());
    let url = database_url(server, "backorderd_bench");
    let (import_secs, import_rss) = run(&url, &["import", book.to_str().unwrap()]);
    println!(
        "import                                  {import_secs:8.2} s   peak {import_rss:.0} MB"
    );
    if !classic {
        run(&url, &["recalc", "--all", "--inline"]);
        load::skewed_runs(rt, dir, &url, skus, "postgres", &[1, 4], false);
        return;
    }
    admin("CREATE DATABASE backorderd_bench_window TEMPLATE backorderd_bench".into());
    let window_url = database_url(server, "backorderd_bench_window");
    // Both copies start with fresh statistics.
    for u in [&url, &window_url] {
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(u).await.unwrap();
            sqlx::raw_sql("VACUUM ANALYZE")
                .execute(&mut conn)
                .await
                .unwrap();
        });
    }
    recalculations(
        rt,
        &url,
        &window_url,
        &window_update("GREATEST", "LEAST", "order_lines.id = r.id"),
        None,
    );
    admin("DROP DATABASE backorderd_bench_window WITH (FORCE)".into());
    if support::env_or("BENCH_FULL_RUNS_ONLY", 0) != 0 {
        return;
    }
    events(rt, &url, skus, 1, &[1, 4]);
    events(rt, &url, skus, 2, &[1, 4]);
    load::skewed_runs(rt, dir, &url, skus, "postgres", &[1, 4], false);
}

/// The fair peer (the window UPDATE of the lines, then the UPDATE of the
/// orders) on `url`: its wall time.
fn peer(rt: &tokio::runtime::Runtime, url: &str, window: &str) -> f64 {
    rt.block_on(async {
        let store = AnyStore::open(url).await.unwrap();
        let started = Instant::now();
        for statement in [window, ORDER_UPDATE] {
            match &store {
                AnyStore::Sqlite(s) => sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                    .execute(s.pool())
                    .await
                    .map(drop),
                AnyStore::Postgres(s) => sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                    .execute(s.pool())
                    .await
                    .map(drop),
            }
            .unwrap();
        }
        started.elapsed().as_secs_f64()
    })
}

fn load() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A full recalculation from all 0 against the fair peer on a copy (same
/// run), then both again when nothing changes; on SQLite (`floor`: a copy
/// of the database before the run) the bare write floor of the rows the
/// run wrote.
fn recalculations(
    rt: &tokio::runtime::Runtime,
    url: &str,
    window_url: &str,
    window: &str,
    floor: Option<&Path>,
) {
    println!("load average before the full runs: {}", load());
    let (full_secs, full_rss) = run(url, &["recalc", "--all", "--inline"]);
    let peer_secs = peer(rt, window_url, window);
    let (noop_secs, noop_rss) = run(url, &["recalc", "--all", "--inline"]);
    let peer_noop_secs = peer(rt, window_url, window);
    println!(
        "recalc --all --inline, from all 0       {full_secs:8.2} s   max RSS {full_rss:6.0} MiB"
    );
    println!("fair peer (lines + orders), from all 0  {peer_secs:8.2} s");
    println!(
        "  ratio (peer / recalc)                 {:8.2} x  (target: at least 3)",
        peer_secs / full_secs
    );
    if let Some(floor) = floor {
        let (floor_secs, rows) = floor::write_floor(url, floor);
        println!(
            "bare write floor ({rows} rows)      {floor_secs:8.2} s   (the run's rows, same statements, one transaction)"
        );
        println!(
            "  ratio (recalc / floor)                {:8.2} x  (target: at most 1.3)",
            full_secs / floor_secs
        );
    }
    println!(
        "recalc --all --inline, nothing changes  {noop_secs:8.2} s   max RSS {noop_rss:6.0} MiB"
    );
    println!("fair peer, nothing changes              {peer_noop_secs:8.2} s");
    println!(
        "  ratio (peer / recalc)                 {:8.2} x",
        peer_noop_secs / noop_secs
    );
    println!("load average after the full runs: {}", load());
}

/// With `workers` `serve` processes on the recalculated book: the latency
/// of single events (one worker only), then events per second with
/// each of `senders` clients sending one event per transaction.
fn events(rt: &tokio::runtime::Runtime, url: &str, skus: usize, workers: usize, senders: &[usize]) {
    // Any free port: this part sends no HTTP, and 8080 may be taken.
    let serves: Vec<Child> = (0..workers)
        .map(|_| load::start_serve(url, "127.0.0.1:0", None))
        .collect();
    rt.block_on(async {
        let store = Arc::new(AnyStore::open(url).await.unwrap());
        // Until every serve runs its worker: an event sent before would
        // time the start-up, not the daemon.
        load::wait_for_daemons(&store, workers).await;
        let event = move |n: usize| Event {
            id: format!("bench-{workers}-{n}"),
            kind: EventKind::InventoryAdjusted {
                sku: backorderd::bookgen::sku_name((n * 7919) % skus),
                warehouse: "MAIN".into(),
                delta: 1,
            },
        };
        if workers == 1 {
            let mut latencies = Vec::new();
            for n in 0..300 {
                let e = event(n);
                let EventKind::InventoryAdjusted { sku, .. } = &e.kind else {
                    unreachable!()
                };
                let sku = [sku.clone()];
                let started = Instant::now();
                store.ingest(&[e], IngestOptions::default()).await.unwrap();
                while store.dirty_count(Some(&sku)).await.unwrap() > 0 {
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            latencies.sort_by(f64::total_cmp);
            println!(
                "event to written back (1 serve, 300 single events)  p50 {:6.1} ms   p99 {:6.1} ms  (target p99 under 50 ms)",
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99)
            );
        }

        for &senders in senders {
            sustained(&store, event, workers, senders).await;
        }
    });
    serves.into_iter().for_each(load::stop_serve);
}

/// 5,000 events, one per transaction, from `senders` clients, until all
/// are written back. One sender sends from this task: a spawned task's
/// hand-offs between threads cost as much as the work (half the rate).
async fn sustained(
    store: &Arc<AnyStore>,
    event: impl Fn(usize) -> Event + Copy + Send + 'static,
    workers: usize,
    senders: usize,
) {
    let burst = 5_000;
    let first = 1_000 + senders * 10_000;
    let started = Instant::now();
    if senders == 1 {
        for n in 0..burst {
            store
                .ingest(&[event(first + n)], IngestOptions::default())
                .await
                .unwrap();
        }
    } else {
        let mut senders_done = Vec::new();
        for sender in 0..senders {
            let store = store.clone();
            senders_done.push(tokio::spawn(async move {
                for n in (sender..burst).step_by(senders) {
                    store
                        .ingest(&[event(first + n)], IngestOptions::default())
                        .await
                        .unwrap();
                }
            }));
        }
        for done in senders_done {
            done.await.unwrap();
        }
    }
    while store.dirty_count(None).await.unwrap() > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "sustained, {workers} serve: {burst} events from {senders} sender(s), one per transaction, all written back in {secs:.2} s = {:.0} events/s",
        burst as f64 / secs
    );
}
