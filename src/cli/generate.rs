use anyhow::Context;
use std::io::Write;

use crate::bookgen::{BookShape, generate};

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Number of order lines.
    #[arg(long, default_value_t = 10_000)]
    lines: usize,
    /// Number of distinct SKUs.
    #[arg(long, default_value_t = 1_000)]
    skus: usize,
    /// Random seed: the same seed gives the same book.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Zipf exponent of SKU popularity (higher: hotter hot SKUs).
    #[arg(long, default_value_t = 1.0)]
    skew: f64,
}

pub fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    let book = generate(BookShape {
        lines: args.lines,
        skus: args.skus,
        seed: args.seed,
        skew: args.skew,
    });
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    serde_json::to_writer(&mut out, &book)?;
    out.write_all(b"\n")?;
    out.flush().context("cannot write the book")
}
