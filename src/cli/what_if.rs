//! `backorderd what-if --settings FILE|JSON [--events FILE]`: what a
//! settings change would make the next recalculation write, computed on
//! the stored state without writing (src/whatif.rs).

use anyhow::Context;
use chrono::Utc;
use std::io::{IsTerminal, Write};
use std::path::Path;

use crate::config::Settings;
use crate::input::InputError;
use crate::whatif::{WhatIfRequest, parse_settings};

#[derive(Debug, clap::Args)]
pub struct WhatIfArgs {
    /// The settings to try: a JSON object given inline (it starts with `{`),
    /// a file holding one, or `-` for standard input. The keys present
    /// replace the stored ones, as in a `settings_changed` event.
    #[arg(long, value_name = "FILE|JSON")]
    pub settings: String,
    /// Events applied after the settings change, before the recalculation
    /// (one event, a JSON array or JSON Lines, as `event` reads them).
    #[arg(long, value_name = "FILE")]
    pub events: Option<std::path::PathBuf>,
    /// How many changed lines and orders to list (the counts are always exact).
    #[arg(long, default_value_t = crate::whatif::DEFAULT_LIMIT)]
    pub limit: usize,
    /// Indent the JSON output.
    #[arg(long)]
    pub pretty: bool,
}

pub async fn run(settings: &Settings, args: &WhatIfArgs) -> anyhow::Result<()> {
    let request = read_request(args)?;
    let store = super::storage::open(settings).await?;
    let report = store
        .what_if(&request, settings.service.ingest_options(), Utc::now())
        .await
        .context("what-if refused or failed; nothing was written")?;
    let mut out = std::io::stdout().lock();
    if args.pretty {
        serde_json::to_writer_pretty(&mut out, &report)?;
    } else {
        serde_json::to_writer(&mut out, &report)?;
    }
    writeln!(out)?;
    out.flush()?;
    if std::io::stderr().is_terminal() {
        eprintln!("{}", report.summary());
    }
    Ok(())
}

fn read_request(args: &WhatIfArgs) -> anyhow::Result<WhatIfRequest> {
    let text = if args.settings.trim_start().starts_with('{') {
        args.settings.clone().into_bytes()
    } else {
        super::read_input(Path::new(&args.settings))?
    };
    let value: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| InputError::Other(format!("--settings is not valid JSON: {e}")))?;
    let patch = parse_settings(value).map_err(|e| InputError::Other(e.message))?;
    let events = match &args.events {
        None => Vec::new(),
        Some(file) => {
            let bytes = super::read_input(file)?;
            crate::events::parse_batch(&bytes)
                .map_err(InputError::from)
                .with_context(|| format!("events {} refused", super::input_name(file)))?
        }
    };
    let request = WhatIfRequest {
        settings: patch,
        events,
        limit: Some(args.limit),
    };
    request.limit().map_err(InputError::Other)?;
    Ok(request)
}
