//! The availability feed's and the purchasing report's figures on a
//! generated book, printed (a bench command, not criterion):
//!
//!     cargo bench --bench feed                      # 1,000,000 lines, 100,000 SKUs
//!     BENCH_LINES=100000 BENCH_SKUS=10000 cargo bench --bench feed
//!
//! On SQLite: the book is imported and recalculated, then the whole feed
//! is computed and written as JSON Lines (in the process, as `serve`
//! answers it, and by the `availability --jsonl` command), one SKU's entry
//! is read many times (median and slowest), and the purchasing report is
//! computed (and printed as CSV by the command). Targets: the whole feed
//! under 2 s, one SKU under 5 ms, the report under 2 s. And what recording
//! the feed's changes (`product.availability_changed`) adds to a
//! recalculation of the hottest SKU: the feed entries computed from the
//! group and the engine's answer, and the two statements on
//! `availability_figures` and the stamp of `feed_stamps`, against the
//! whole recalculation after an `inventory_adjusted` (target: at most
//! 10%).
//!
//! The feed is read from the entries the recalculation stored where they
//! are current (store/feed_stamps.rs); the bench also computes it the
//! older way, from every stored line, checks that both are equal (entries
//! and report) and prints both times. `BENCH_DB=PATH` measures on that
//! SQLite database (a copy: it is recalculated first, which stamps it)
//! instead of a generated book.

mod support;
use std::time::Instant;

use backorderd::availability;
use backorderd::engine;
use backorderd::events::{Event, EventKind};
use backorderd::feed::{self, FeedFilter, FeedSource};
use backorderd::store::sqlite::SqliteStore;
use backorderd::store::{IngestOptions, Store};
use support::measure as run;

const ONE_SKU_READS: usize = 200;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = match std::env::var("BENCH_DB") {
        Ok(path) => {
            println!("database: {path}");
            format!("sqlite://{path}")
        }
        Err(_) => {
            let (book, lines, skus) = support::generated_book(dir.path(), 0.8);
            println!("book: {lines} lines over {skus} SKUs (SQLite)");
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            assert_eq!(run(&url, &["import", book.to_str().unwrap()]).0, 0);
            url
        }
    };
    let (code, secs, _) = run(&url, &["recalc", "--all", "--inline"]);
    assert_eq!(code, 0);
    println!("recalc --all --inline (stamps every SKU): {secs:.2} s");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = backorderd::store::sqlite::SqliteStore::open(&url)
            .await
            .unwrap();

        let started = Instant::now();
        let entries = availability::whole(&store, FeedFilter::default())
            .await
            .unwrap();
        let computed = started.elapsed().as_secs_f64();
        let mut jsonl = Vec::with_capacity(entries.len() * 300);
        for e in &entries {
            serde_json::to_writer(&mut jsonl, e).unwrap();
            jsonl.push(b'\n');
        }
        let written = started.elapsed().as_secs_f64();
        println!(
            "whole feed, {} SKUs: {computed:.2} s read, {written:.2} s as JSON Lines ({:.0} MB)  (target: 2 s)",
            entries.len(),
            jsonl.len() as f64 / 1e6
        );
        // The same from every stored line, as before the stamps.
        let started = Instant::now();
        let source = store.feed_source(chrono::Utc::now()).await.unwrap();
        let from_lines = feed::entries(&source);
        println!(
            "whole feed computed from every line (the path without stamps): {:.2} s",
            started.elapsed().as_secs_f64()
        );
        assert!(from_lines == entries, "stored and computed feeds differ");
        let report_from_lines = feed::purchasing::report(&source, None).unwrap();
        println!("  equal: every entry of both ways");

        // SKUs spread over the book, the hottest (SKU-000000) among them.
        let step = (entries.len() / ONE_SKU_READS).max(1);
        let picks: Vec<String> = entries
            .iter()
            .step_by(step)
            .map(|e| e.sku.clone())
            .collect();
        let mut times = Vec::with_capacity(picks.len());
        for sku in &picks {
            let started = Instant::now();
            let entry = availability::one(&store, sku).await.unwrap();
            times.push(started.elapsed().as_secs_f64() * 1e3);
            assert!(entry.is_some(), "{sku}");
        }
        times.sort_by(f64::total_cmp);
        println!(
            "one SKU's entry, {} SKUs: median {:.2} ms, slowest {:.2} ms  (target: 5 ms)",
            times.len(),
            times[times.len() / 2],
            times[times.len() - 1]
        );
        let mut hot = Vec::new();
        for _ in 0..20 {
            let started = Instant::now();
            let entry = availability::one(&store, HOT_SKU).await.unwrap();
            hot.push(started.elapsed().as_secs_f64() * 1e3);
            assert!(entry.is_some());
        }
        hot.sort_by(f64::total_cmp);
        println!(
            "the hottest SKU's entry ({HOT_SKU}), 20 reads: median {:.2} ms, slowest {:.2} ms  (target: 5 ms)",
            hot[hot.len() / 2],
            hot[hot.len() - 1]
        );

        let started = Instant::now();
        let report = availability::purchasing(&store, None).await.unwrap();
        let secs = started.elapsed().as_secs_f64();
        let listed: usize = report.vendors.iter().map(|v| v.skus.len()).sum();
        println!("purchasing report, {listed} SKUs short: {secs:.2} s  (target: 2 s)");
        assert!(report == report_from_lines, "stored and computed reports differ");
        println!("  equal to the report computed from every line");

        // After the recalculations below the hottest SKU is stamped again;
        // an event not yet recalculated makes its entry computed.
        hot_figures_cost(&store).await;
        let event = Event {
            id: "bench-stale".into(),
            kind: EventKind::InventoryAdjusted {
                sku: HOT_SKU.into(),
                warehouse: "MAIN".into(),
                delta: 1,
            },
        };
        store.ingest(&[event], IngestOptions::default()).await.unwrap();
        let started = Instant::now();
        availability::one(&store, HOT_SKU).await.unwrap();
        let one_ms = started.elapsed().as_secs_f64() * 1e3;
        let started = Instant::now();
        availability::whole(&store, FeedFilter::default()).await.unwrap();
        println!(
            "with the hottest SKU changed and not recalculated: its entry {one_ms:.2} ms, the whole feed {:.2} s",
            started.elapsed().as_secs_f64()
        );
    });

    let (code, secs, rss) = run(&url, &["availability", "--jsonl"]);
    assert_eq!(code, 0);
    println!("`availability --jsonl` command  {secs:6.2} s wall, max RSS {rss:5.0} MiB");
    let (code, secs, rss) = run(&url, &["purchasing", "--csv"]);
    assert_eq!(code, 0);
    println!("`purchasing --csv` command      {secs:6.2} s wall, max RSS {rss:5.0} MiB");
}

const HOT_SKU: &str = "SKU-000000";
const HOT_REPS: usize = 20;

fn median(mut ms: Vec<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

/// The hottest SKU's recalculation through the store (its feed entry
/// compared and recorded included), and the part of it that recording the
/// feed's changes adds, timed alone on the same SKU's pools.
async fn hot_figures_cost(store: &SqliteStore) {
    let mut whole = Vec::new();
    for rep in 0..HOT_REPS + 2 {
        let event = Event {
            id: format!("bench-hot-{rep}"),
            kind: EventKind::InventoryAdjusted {
                sku: HOT_SKU.into(),
                warehouse: "MAIN".into(),
                delta: if rep % 2 == 0 { 1 } else { -1 },
            },
        };
        store
            .ingest(&[event], IngestOptions::default())
            .await
            .unwrap();
        let started = Instant::now();
        while store
            .recalculate_dirty(2000, chrono::Utc::now())
            .await
            .unwrap()
            .is_some()
        {}
        if rep >= 2 {
            whole.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    let pools = store.pool_state(&[HOT_SKU.to_owned()], true).await.unwrap();
    let snapshot = pools.snapshot;
    let now = chrono::Utc::now();
    let allocation = engine::allocate(&snapshot, now);
    let lines: usize = snapshot.orders.iter().map(|o| o.lines.len()).sum();
    let mut entries_ms = Vec::new();
    let mut sql_ms = Vec::new();
    for _ in 0..HOT_REPS {
        let started = Instant::now();
        let entries = feed::entries(&FeedSource::from_allocation(&snapshot, &allocation));
        let texts: Vec<(String, String)> = entries
            .iter()
            .map(|e| (e.sku.clone(), serde_json::to_string(e).unwrap()))
            .collect();
        entries_ms.push(started.elapsed().as_secs_f64() * 1e3);
        let started = Instant::now();
        let skus: Vec<&str> = texts.iter().map(|t| t.0.as_str()).collect();
        let mut tx = store.pool().begin().await.unwrap();
        let stored: Vec<(String, String)> = sqlx::query_as(
            "SELECT f.sku, f.entry FROM json_each($1) j
             CROSS JOIN availability_figures f ON f.sku = j.value",
        )
        .bind(serde_json::to_string(&skus).unwrap())
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO availability_figures (sku, entry)
             SELECT json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]')
             FROM json_each($1) j WHERE true
             ON CONFLICT (sku) DO UPDATE SET entry = excluded.entry",
        )
        .bind(serde_json::to_string(&texts).unwrap())
        .execute(&mut *tx)
        .await
        .unwrap();
        // The stamp, as store/figures.rs writes it.
        let stamps: Vec<(&str, i64, i64, Option<String>)> =
            skus.iter().map(|s| (*s, 0, 1, None)).collect();
        sqlx::query(backorderd::store::figures::STAMPS_UPSERT)
            .bind(serde_json::to_string(&stamps).unwrap())
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert!(!stored.is_empty(), "the hottest SKU's figures are stored");
        sql_ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let whole = median(whole);
    let added = median(entries_ms) + median(sql_ms);
    println!(
        "recording feed changes, hottest SKU ({lines} lines): {added:.2} ms of a {whole:.2} ms recalculation after inventory_adjusted ({:.1}%)  (target: at most 10%)",
        100.0 * added / whole
    );
}
