//! `backorderd availability [SKU]` and `backorderd purchasing`: the feed
//! and the report of the stored state (src/availability.rs), printed.

use anyhow::Context;
use std::io::Write;

use crate::availability;
use crate::config::Settings;
use crate::feed::{FeedFilter, purchasing};

#[derive(Debug, clap::Args)]
pub struct AvailabilityArgs {
    /// One SKU's entry (exit 1 when nothing is stored about it); else every SKU's.
    pub sku: Option<String>,
    /// One entry a line (JSON Lines) instead of one JSON array.
    #[arg(long)]
    pub jsonl: bool,
    /// Only SKUs with at least this many units backordered (in --warehouse when given).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub backordered_min: Option<i64>,
    /// Only SKUs with at most this many units backordered (in --warehouse when given).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub backordered_max: Option<i64>,
    /// The warehouse whose backordered units the bounds compare.
    #[arg(long, value_name = "ID")]
    pub warehouse: Option<String>,
}

pub async fn availability(settings: &Settings, args: AvailabilityArgs) -> anyhow::Result<()> {
    let store = super::storage::open(settings).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if let Some(sku) = &args.sku {
        let entry = availability::one(&store, sku)
            .await
            .context("cannot read the feed")?
            .with_context(|| format!("nothing is stored about SKU {sku:?}"))?;
        serde_json::to_writer(&mut out, &entry)?;
        writeln!(out)?;
        out.flush()?;
        return Ok(());
    }
    let filter = FeedFilter {
        backordered_min: args.backordered_min,
        backordered_max: args.backordered_max,
        warehouse: args.warehouse,
    };
    let entries = availability::whole(&store, filter)
        .await
        .context("cannot read the feed")?;
    if args.jsonl {
        for entry in &entries {
            serde_json::to_writer(&mut out, entry)?;
            writeln!(out)?;
        }
    } else {
        serde_json::to_writer(&mut out, &entries)?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

pub async fn purchasing(
    settings: &Settings,
    vendor: Option<String>,
    csv: bool,
) -> anyhow::Result<()> {
    let store = super::storage::open(settings).await?;
    let report = availability::purchasing(&store, vendor)
        .await
        .context("cannot compute the purchasing report")?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if csv {
        out.write_all(purchasing::to_csv(&report).as_bytes())?;
    } else {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}
