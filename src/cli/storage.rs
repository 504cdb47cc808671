//! Commands over the stored state: migrate, import, export.

use anyhow::Context;
use chrono::Utc;
use secrecy::ExposeSecret;
use std::io::Write;
use std::path::Path;

use crate::config::Settings;
use crate::engine::{self, Snapshot};
use crate::input::{InputError, from_json};
use crate::store::{AnyStore, Store, redact_url};

/// Opens the database and brings its schema up to date: every command may
/// be the first to touch a new database.
pub async fn open(settings: &Settings) -> anyhow::Result<AnyStore> {
    let options = settings.database.open_options();
    let store = AnyStore::open_with(settings.database_url.expose_secret(), &options)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                redact_url(settings.database_url.expose_secret())
            )
        })?;
    store
        .migrate()
        .await
        .context("cannot bring the database schema up to date")?;
    Ok(store)
}

pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    open(settings).await?;
    eprintln!("schema is up to date");
    Ok(())
}

pub async fn import(settings: &Settings, file: &Path, notify: bool) -> anyhow::Result<()> {
    let name = super::input_name(file);
    let bytes = super::read_input(file)?;
    let snapshot: Snapshot =
        from_json(&bytes).with_context(|| format!("snapshot {name} refused"))?;
    drop(bytes);
    engine::validate(&snapshot)
        .map_err(InputError::from)
        .with_context(|| format!("snapshot {name} refused"))?;
    let store = open(settings).await?;
    let summary = store
        .import(&snapshot, notify)
        .await
        .context("import failed; the stored state is unchanged")?;
    eprintln!(
        "imported {} orders with {} lines; {} SKUs queued for recalculation",
        summary.orders, summary.lines, summary.skus_marked_dirty
    );
    Ok(())
}

pub async fn export(settings: &Settings, pretty: bool) -> anyhow::Result<()> {
    let store = open(settings).await?;
    let mut snapshot = store.export().await.context("export failed")?;
    snapshot.as_of = Some(Utc::now());
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    if pretty {
        serde_json::to_writer_pretty(&mut out, &snapshot)?;
    } else {
        serde_json::to_writer(&mut out, &snapshot)?;
    }
    out.write_all(b"\n")?;
    out.flush().context("cannot write the snapshot")
}
