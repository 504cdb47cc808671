//! The engine alone on a generated book of 1,000,000 lines over 100,000 SKUs
//! (Zipf popularity). Run: `cargo bench --bench engine`.
//! Target (issue 2): allocation at most 150 ms on one core.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

use backorderd::bookgen::{BookShape, generate};

// The allocator the `backorderd` binary ships with (src/main.rs), so that
// the figure is the engine's as users run it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use backorderd::engine::{self, snapshot::Settings};

fn book(settings: Settings) -> engine::Snapshot {
    let mut book = generate(BookShape {
        lines: 1_000_000,
        skus: 100_000,
        seed: 7,
        skew: 1.0,
    });
    book.settings = settings;
    book
}

fn engine_1m(c: &mut Criterion) {
    let plain = book(Settings::default());
    let as_of = plain.as_of.unwrap();
    let mut group = c.benchmark_group("engine_1m_lines_100k_skus");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("allocate_plain", |b| {
        b.iter(|| engine::allocate(black_box(&plain), as_of))
    });
    group.bench_function("validate", |b| {
        b.iter(|| engine::validate(black_box(&plain)))
    });

    let every = book(Settings {
        warehouse_based: true,
        consider_replacement_sku: true,
        prioritize_fully_shippable: true,
        prioritize_rush: true,
        prioritize_picked: true,
        use_payment_date: true,
        max_days_back: Some(45),
        ..Settings::default()
    });
    group.bench_function("allocate_every_setting", |b| {
        b.iter(|| engine::allocate(black_box(&every), as_of))
    });
    group.finish();
}

criterion_group!(benches, engine_1m);
criterion_main!(benches);
