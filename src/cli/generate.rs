use anyhow::Context;
use std::io::Write;

use crate::bookgen::{BookShape, generate};

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Number of order lines (at most 100,000,000).
    #[arg(long, default_value_t = 10_000, value_parser = parse_count)]
    lines: usize,
    /// Number of distinct SKUs (at most 100,000,000).
    #[arg(long, default_value_t = 1_000, value_parser = parse_count)]
    skus: usize,
    /// Random seed: the same seed gives the same book.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Zipf exponent of SKU popularity, 0 (uniform) to 10 (higher: hotter
    /// hot SKUs).
    #[arg(long, default_value_t = 1.0, value_parser = parse_skew)]
    skew: f64,
}

/// The most lines or SKUs a book may have: beyond it the book would not
/// fit in memory anyway, and a huge count once made the generator panic.
const MAX_COUNT: usize = 100_000_000;

fn parse_count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n <= MAX_COUNT => Ok(n),
        _ => Err(format!(
            "must be a whole number from 0 to {MAX_COUNT} (got {text})"
        )),
    }
}

/// The largest `--skew`: past it nearly every line is of the hottest SKU.
const MAX_SKEW: f64 = 10.0;

/// A finite exponent from 0 to [`MAX_SKEW`]: NaN, infinities and negative
/// numbers make no Zipf law (and once made the sampler panic).
fn parse_skew(text: &str) -> Result<f64, String> {
    let skew: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if skew.is_finite() && (0.0..=MAX_SKEW).contains(&skew) {
        Ok(skew)
    } else {
        Err(format!(
            "must be a number from 0 to {MAX_SKEW} (got {text})"
        ))
    }
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
