//! Commands over the stored state: migrate, import, export.

use anyhow::Context;
use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};
use secrecy::ExposeSecret;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use crate::config::Settings;
use crate::engine::{self, Snapshot};
use crate::input::{InputError, from_json};
use crate::store::{AnyStore, ImportStep, Store, redact_url};

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
    let shown = ImportBar::new(std::io::stderr().is_terminal());
    shown.stage(format!("reading {name}"));
    let bytes = super::read_input(file)?;
    let snapshot: Snapshot =
        from_json(&bytes).with_context(|| format!("snapshot {name} refused"))?;
    drop(bytes);
    shown.stage("checking the snapshot".into());
    engine::validate(&snapshot)
        .map_err(InputError::from)
        .with_context(|| format!("snapshot {name} refused"))?;
    shown.stage("opening the database".into());
    let store = open(settings).await?;
    let summary = store
        .import(&snapshot, notify, &|step| shown.step(step))
        .await
        .context("import failed; the stored state is unchanged")?;
    shown.finish();
    eprintln!(
        "imported {} orders with {} lines; {} SKUs queued for recalculation",
        summary.orders, summary.lines, summary.skus_marked_dirty
    );
    Ok(())
}

/// The import's progress on a terminal (hidden elsewhere, so that logs
/// and pipes get the summary line only): a spinner naming the stage while
/// the file is read and checked, a bar of the rows written, then the last
/// stages by name.
struct ImportBar {
    bar: ProgressBar,
}

const ROWS_TEMPLATE: &str =
    "{elapsed_precise} [{wide_bar}] {pos}/{len} rows ({per_sec}, {eta} left) {msg}";

impl ImportBar {
    fn new(on_terminal: bool) -> Self {
        let bar = if on_terminal {
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} {spinner} {msg}")
                .expect("the template is valid"),
        );
        ImportBar { bar }
    }

    fn stage(&self, message: String) {
        self.bar.set_message(message);
    }

    fn step(&self, step: ImportStep) {
        match step {
            ImportStep::Writing { done, total } => {
                if self.bar.length() != Some(total) {
                    self.bar.set_style(
                        ProgressStyle::with_template(ROWS_TEMPLATE).expect("the template is valid"),
                    );
                    self.bar.set_length(total);
                    self.bar.set_message("orders and lines written");
                }
                self.bar.set_position(done);
            }
            ImportStep::Indexing => self.bar.set_message("building the indexes"),
            ImportStep::Committing => self.bar.set_message("committing"),
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_import_bar_follows_the_stages_and_the_rows() {
        let shown = ImportBar::new(false);
        shown.stage("reading book.json".into());
        assert_eq!(shown.bar.message(), "reading book.json");
        assert_eq!(shown.bar.length(), None);
        shown.step(ImportStep::Writing {
            done: 0,
            total: 1400,
        });
        assert_eq!(shown.bar.length(), Some(1400));
        assert_eq!(shown.bar.position(), 0);
        assert_eq!(shown.bar.message(), "orders and lines written");
        shown.step(ImportStep::Writing {
            done: 700,
            total: 1400,
        });
        assert_eq!(shown.bar.position(), 700);
        shown.step(ImportStep::Writing {
            done: 1400,
            total: 1400,
        });
        assert_eq!(shown.bar.position(), 1400);
        shown.step(ImportStep::Indexing);
        assert_eq!(shown.bar.message(), "building the indexes");
        shown.step(ImportStep::Committing);
        assert_eq!(shown.bar.message(), "committing");
        shown.finish();
        assert!(shown.bar.is_finished());
    }
}
