//! The console's page times and the what-if preview on a generated book,
//! printed (a bench command, not criterion):
//!
//!     cargo bench --bench console                     # 1,000,000 lines, 100,000 SKUs
//!     BENCH_LINES=100000 BENCH_SKUS=10000 cargo bench --bench console
//!
//! On SQLite: the book is imported and recalculated; `what-if` of one
//! setting runs as a command (wall time of the process, target 2 s), then
//! `serve` starts without a token (loopback: no sign-in) and each console
//! page is fetched `BENCH_PAGE_REPS` times (default 30, after 3 warm-ups)
//! on one keep-alive connection: p50, p99 and max of the time to the whole
//! answer (the server's render time plus a loopback round trip; target
//! 200 ms p99), and the first fetch apart (a large pool's first read). The
//! hottest SKU's product page is among them. The product search by
//! backordered units (console and API, with and without a warehouse) is
//! fetched `BENCH_SEARCH_REPS` times (default 30). Then the hottest SKU's
//! product page and the page of one of its orders are each fetched
//! `BENCH_PAGE_REPS` times right after an event that changes their pool
//! (`inventory_adjusted` +1 / -1 on `SKU-000000`): once as soon as the
//! event is accepted (before or while its recalculation runs), once after
//! `?wait=true` (its recalculation written back).
//!
//! `BENCH_DB=PATH` measures the pages on that SQLite database as it is
//! (already imported and recalculated), skipping the book and the what-if.

mod support;
use support::{BIN, env_or, measure};

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

fn get(agent: &ureq::Agent, url: &str) -> (u16, String) {
    let mut response = agent.get(url).call().expect("serve answers");
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .unwrap();
    (status, text)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn post(agent: &ureq::Agent, url: &str, body: &str) -> u16 {
    agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body.as_bytes())
        .expect("serve answers")
        .status()
        .as_u16()
}

/// p50, p99, max of `times` (sorted here).
fn figures(times: &mut [f64]) -> (f64, f64, f64) {
    times.sort_by(f64::total_cmp);
    (
        percentile(times, 0.5),
        percentile(times, 0.99),
        times[times.len() - 1],
    )
}

/// An order with a line of the hottest SKU, from the database file.
fn order_of_hottest(url: &str) -> String {
    let path = url.trim_start_matches("sqlite://");
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    db.query_row(
        "SELECT order_id FROM order_lines WHERE sku = 'SKU-000000' ORDER BY order_id LIMIT 1",
        [],
        |r| r.get(0),
    )
    .expect("the hottest SKU has lines")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = match std::env::var("BENCH_DB") {
        Ok(path) => {
            println!("database: {path} as it is");
            format!("sqlite://{path}")
        }
        Err(_) => {
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            book_and_what_if(dir.path(), &url);
            url
        }
    };
    pages(&url);
}

/// Imports and recalculates the generated book, then times the what-if.
fn book_and_what_if(dir: &std::path::Path, url: &str) {
    let (book, lines, skus) = support::generated_book(dir, 1.0);
    println!("book: {lines} lines over {skus} SKUs (SQLite)");
    assert_eq!(measure(url, &["import", book.to_str().unwrap()]).0, 0);
    assert_eq!(measure(url, &["recalc", "--all", "--inline"]).0, 0);

    for settings in [r#"{"prioritize_rush":true}"#, r#"{"warehouse_based":true}"#] {
        for _ in 0..2 {
            let (code, secs, rss) = measure(url, &["what-if", "--settings", settings]);
            assert_eq!(code, 0);
            println!(
                "what-if {settings:28} {secs:6.2} s wall, max RSS {rss:5.0} MiB (target: 2 s)"
            );
        }
    }
}

/// `serve` on `url`, each page fetched and timed.
fn pages(url: &str) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut serve = Command::new(BIN)
        .args([
            "--database-url",
            url,
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("BACKORDERD__LOG__FILTER", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let agent = agent();
    let started = Instant::now();
    while ureq::get(format!("{base}/readyz")).call().is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "serve not ready"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A backordered order, its first SKU, and its warehouse.
    let (_, page) = get(&agent, &format!("{base}/v1/backorders?limit=1"));
    let page: serde_json::Value = serde_json::from_str(&page).unwrap();
    let first = &page["orders"][0];
    let order_id = first["order_id"].as_str().unwrap().to_owned();
    let (_, order) = get(&agent, &format!("{base}/v1/orders/{order_id}"));
    let order: serde_json::Value = serde_json::from_str(&order).unwrap();
    let sku = order["lines"][0]["sku"].as_str().unwrap().to_owned();
    let lines = order["lines"].as_array().unwrap();
    let last_sku = lines[lines.len() - 1]["sku"].as_str().unwrap().to_owned();
    let reps = env_or("BENCH_PAGE_REPS", 30);
    let search_reps = env_or("BENCH_SEARCH_REPS", 30);
    let pages = [
        ("/".to_owned(), reps),
        ("/backorders".to_owned(), reps),
        ("/backorders?status=full".to_owned(), reps),
        (format!("/backorders?sku={sku}"), reps),
        (
            "/backorders?warehouse=MAIN&from=2026-10-01&to=2026-11-30".to_owned(),
            reps,
        ),
        (format!("/orders/{order_id}"), reps),
        (format!("/products/{sku}"), reps),
        (format!("/products/{last_sku}"), reps),
        // The hottest SKU of a generated book (`generate` names it so).
        ("/products/SKU-000000".to_owned(), reps),
        ("/messages".to_owned(), reps),
        ("/settings".to_owned(), reps),
        ("/products?min_backordered=50".to_owned(), search_reps),
        (
            "/products?min_backordered=50&warehouse=MAIN".to_owned(),
            search_reps,
        ),
        (
            "/v1/availability?backordered_min=50".to_owned(),
            search_reps,
        ),
    ];
    println!(
        "page (times fetched)                        p50        p99        max      first (target: p99 200 ms)"
    );
    for (path, reps) in &pages {
        let reps = *reps;
        let mut times = Vec::with_capacity(reps);
        // The first fetch reads what no earlier one kept (store/pool_reads.rs).
        let mut first = 0.0;
        for i in 0..reps + 3 {
            let t = Instant::now();
            let (status, _) = get(&agent, &format!("{base}{path}"));
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(status, 200, "{path}");
            if i == 0 {
                first = ms;
            }
            if i >= 3 {
                times.push(ms);
            }
        }
        let (p50, p99, max) = figures(&mut times);
        println!(
            "{:44} {p50:7.1} ms {p99:7.1} ms {max:7.1} ms {first:7.1} ms",
            format!("{path} ({reps})"),
        );
    }
    after_events(&agent, &base, &order_of_hottest(url), reps);
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(serve.id() as i32, libc::SIGTERM) };
    let _ = serve.wait();
}

/// The hottest SKU's pages, each fetched right after an event on its pool.
fn after_events(agent: &ureq::Agent, base: &str, order: &str, reps: usize) {
    println!("right after an inventory_adjusted of SKU-000000     p50        p99        max");
    let mut n = 0;
    for (wait, when) in [("", "accepted"), ("?wait=true", "written back")] {
        for path in [
            "/products/SKU-000000".to_owned(),
            format!("/orders/{order}"),
        ] {
            let mut times = Vec::with_capacity(reps);
            for _ in 0..reps {
                n += 1;
                let delta = if n % 2 == 0 { -1 } else { 1 };
                let event = format!(
                    r#"{{"id":"bench-console-{n}-{}","type":"inventory_adjusted","sku":"SKU-000000","warehouse":"MAIN","delta":{delta}}}"#,
                    std::process::id()
                );
                let status = post(agent, &format!("{base}/v1/events{wait}"), &event);
                assert!((200..300).contains(&status), "the event: {status}");
                let t = Instant::now();
                let (status, _) = get(agent, &format!("{base}{path}"));
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                assert_eq!(status, 200, "{path}");
            }
            let (p50, p99, max) = figures(&mut times);
            println!(
                "{:44} {p50:7.1} ms {p99:7.1} ms {max:7.1} ms",
                format!("{path} ({when}, {reps})")
            );
        }
    }
}
