//! How long one recalculation of the hottest SKU takes, on SQLite, with
//! the pool read from the database (a cold process) and from the pool
//! cache (a warm one), and how long the longest transaction of a full run
//! of the whole book is. Figures, not a test:
//!
//!     cargo run --release --example hot_pool -- [LINES] [SKUS]
//!
//! Defaults: 1,000,000 lines over 100,000 SKUs (Zipf-like, exponent 1:
//! the hottest SKU holds tens of thousands of lines).

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use backorderd::bookgen::{self, BookShape};
use backorderd::store::sqlite::SqliteStore;
use backorderd::store::{IngestOptions, Store};
use chrono::Utc;

const ROUNDS: usize = 20;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let lines: usize = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let skus: usize = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let dir = std::env::temp_dir().join(format!("hot-pool-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}", dir.join("book.db").display());

    let book = bookgen::generate(BookShape {
        lines,
        skus,
        ..BookShape::default()
    });
    let hot = {
        let mut counts = std::collections::HashMap::<&str, usize>::new();
        for l in book.orders.iter().flat_map(|o| &o.lines) {
            *counts.entry(l.sku.as_str()).or_default() += 1;
        }
        let (sku, n) = counts.into_iter().max_by_key(|c| c.1).expect("a book");
        println!("book: {lines} lines over {skus} SKUs; hottest {sku}: {n} lines");
        sku.to_owned()
    };
    let warehouse = book.warehouses[0].id.clone();

    let store = SqliteStore::open(&url).await?;
    store.migrate().await?;
    store.import(&book, false, &|_| {}).await?;
    let stop = AtomicBool::new(false);
    let mut longest = Duration::ZERO;
    let mut last = Instant::now();
    let mut batches = 0;
    let started = Instant::now();
    store
        .recalculate_bulk(2000, Utc::now(), &stop, |_| {
            longest = longest.max(last.elapsed());
            last = Instant::now();
            batches += 1;
        })
        .await?;
    println!(
        "full run of the book: {} in {batches} transactions, the longest {}",
        ms(started.elapsed()),
        ms(longest)
    );
    while store.recalculate_dirty(2000, Utc::now()).await?.is_some() {}

    // One event on the hot SKU, then its recalculation.
    let mut seq = 0;
    let mut round = |store: SqliteStore| {
        let hot = hot.clone();
        let warehouse = warehouse.clone();
        seq += 1;
        let id = format!("bench-{seq}");
        async move {
            let event = format!(
                r#"{{"id":"{id}","type":"inventory_adjusted","sku":"{hot}","warehouse":"{warehouse}","delta":1}}"#
            );
            let events = backorderd::events::parse_batch(event.as_bytes()).expect("an event");
            store.ingest(&events, IngestOptions::default()).await?;
            let start = Instant::now();
            let report = store.recalculate_dirty(2000, Utc::now()).await?;
            let took = start.elapsed();
            anyhow::ensure!(report.is_some(), "the hot SKU was dirty");
            anyhow::Ok((store, took))
        }
    };
    let mut cold = Vec::new();
    let mut store = store;
    for _ in 0..ROUNDS / 4 {
        // A new process: the pool comes from the database.
        drop(store);
        store = SqliteStore::open(&url).await?;
        let (s, took) = round(store).await?;
        store = s;
        cold.push(took);
    }
    let mut warm = Vec::new();
    for _ in 0..ROUNDS {
        let (s, took) = round(store).await?;
        store = s;
        warm.push(took);
    }
    println!(
        "one recalculation of the hottest SKU after an event on it: cold (read from the database) median {}, warm (pool cache) median {}, max {}",
        ms(median(cold)),
        ms(median(warm.clone())),
        ms(warm.into_iter().max().unwrap_or_default())
    );
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
