//! Peak heap the engine allocates beyond its input, per line, on the
//! 1,000,000-line book. Run: `cargo bench --bench engine_memory`.
//! Target (issue 2): at most 200 bytes per line.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use backorderd::bookgen::{BookShape, generate};
use backorderd::engine::{self, snapshot::Settings};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn measure(name: &str, settings: Settings) {
    let mut book = generate(BookShape {
        lines: 1_000_000,
        skus: 100_000,
        seed: 7,
        skew: 1.0,
    });
    book.settings = settings;
    let lines: usize = book.orders.iter().map(|o| o.lines.len()).sum();
    let as_of = book.as_of.unwrap();
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let allocation = engine::allocate(&book, as_of);
    let peak = PEAK.load(Ordering::Relaxed) - before;
    let kept = CURRENT.load(Ordering::Relaxed) - before;
    println!(
        "{name:<24} lines {lines}  peak {:.1} MB = {:.1} bytes/line (result kept: {:.1} bytes/line)",
        peak as f64 / 1e6,
        peak as f64 / lines as f64,
        kept as f64 / lines as f64
    );
    drop(allocation);
}

fn main() {
    // `cargo bench` passes --bench; this harness takes no options.
    measure("plain", Settings::default());
    measure(
        "every setting",
        Settings {
            warehouse_based: true,
            consider_replacement_sku: true,
            prioritize_fully_shippable: true,
            prioritize_rush: true,
            prioritize_picked: true,
            use_payment_date: true,
            max_days_back: Some(45),
            ..Settings::default()
        },
    );
}
