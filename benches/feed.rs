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
//! under 2 s, one SKU under 5 ms, the report under 2 s.

mod support;
use std::time::Instant;

use backorderd::availability;
use backorderd::feed::FeedFilter;
use support::measure as run;

const ONE_SKU_READS: usize = 200;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (book, lines, skus) = support::generated_book(dir.path(), 0.8);
    println!("book: {lines} lines over {skus} SKUs (SQLite)");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    assert_eq!(run(&url, &["import", book.to_str().unwrap()]).0, 0);
    assert_eq!(run(&url, &["recalc", "--all", "--inline"]).0, 0);

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
            "whole feed, {} SKUs: {computed:.2} s computed, {written:.2} s as JSON Lines ({:.0} MB)  (target: 2 s)",
            entries.len(),
            jsonl.len() as f64 / 1e6
        );

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

        let started = Instant::now();
        let report = availability::purchasing(&store, None).await.unwrap();
        let secs = started.elapsed().as_secs_f64();
        let listed: usize = report.vendors.iter().map(|v| v.skus.len()).sum();
        println!("purchasing report, {listed} SKUs short: {secs:.2} s  (target: 2 s)");
    });

    let (code, secs, rss) = run(&url, &["availability", "--jsonl"]);
    assert_eq!(code, 0);
    println!("`availability --jsonl` command  {secs:6.2} s wall, max RSS {rss:5.0} MiB");
    let (code, secs, rss) = run(&url, &["purchasing", "--csv"]);
    assert_eq!(code, 0);
    println!("`purchasing --csv` command      {secs:6.2} s wall, max RSS {rss:5.0} MiB");
}
