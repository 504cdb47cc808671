use anyhow::Context;
use chrono::Utc;
use std::io::Write;
use std::path::Path;

use crate::engine::{self, ResultView, Snapshot};
use crate::input::{InputError, from_json};

pub fn run(file: &Path, pretty: bool) -> anyhow::Result<()> {
    let name = super::input_name(file);
    let bytes = super::read_input(file)?;
    let snapshot: Snapshot =
        from_json(&bytes).with_context(|| format!("snapshot {name} refused"))?;
    drop(bytes);
    let allocation = engine::recalculate(&snapshot, Utc::now())
        .map_err(InputError::from)
        .with_context(|| format!("snapshot {name} refused"))?;

    let view = ResultView {
        snapshot: &snapshot,
        allocation: &allocation,
    };
    let stdout = std::io::stdout().lock();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout);
    if pretty {
        serde_json::to_writer_pretty(&mut out, &view)?;
    } else {
        serde_json::to_writer(&mut out, &view)?;
    }
    out.write_all(b"\n")?;
    out.flush().context("cannot write the result")?;
    Ok(())
}
