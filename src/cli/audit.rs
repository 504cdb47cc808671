//! `backorderd audit [--repair]`: the stored values against the contract's
//! answer for the stored state (src/audit.rs has the report).

use anyhow::Context;
use chrono::Utc;
use std::io::Write;

use crate::config::Settings;
use crate::store::Store;

/// Prints the report on standard output and a summary on standard error;
/// `true` when anything differed (the caller exits 3).
pub async fn run(settings: &Settings, repair: bool, pretty: bool) -> anyhow::Result<bool> {
    let store = super::storage::open(settings).await?;
    let report = store
        .audit(repair, Utc::now())
        .await
        .context("audit failed; nothing was written")?;
    let mut out = std::io::stdout().lock();
    if pretty {
        serde_json::to_writer_pretty(&mut out, &report)?;
    } else {
        serde_json::to_writer(&mut out, &report)?;
    }
    writeln!(out)?;
    out.flush()?;
    let verb = if report.repaired {
        "repaired"
    } else {
        "differ"
    };
    if report.drift_found() {
        eprintln!(
            "drift: {} of {} lines and {} of {} orders {verb}",
            report.lines_differing,
            report.lines_checked,
            report.orders_differing,
            report.orders_checked
        );
    } else {
        eprintln!(
            "no drift: {} lines and {} orders as the contract says",
            report.lines_checked, report.orders_checked
        );
    }
    if report.dirty_skus > 0 {
        eprintln!(
            "note: {} SKUs were waiting for a recalculation; their differences may only be pending",
            report.dirty_skus
        );
    }
    Ok(report.drift_found())
}
