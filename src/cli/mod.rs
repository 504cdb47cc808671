//! The command line: one module per command, each a thin layer over the
//! library.

mod generate;
mod simulate;
mod storage;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use crate::input::InputError;

/// Exit code for refused input (contract: snapshot.md, events.md).
pub const EXIT_REFUSED: i32 = 2;
/// Exit code for every other failure.
pub const EXIT_FAILURE: i32 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "backorderd",
    version,
    about = "Backorder recalculation: decides which waiting order gets short stock, exactly and incrementally",
    long_about = "backorderd runs the prioritized oldest-first backorder allocation: given stock, \
                  purchase orders and orders, it decides for every order line how many units are \
                  backordered, the order's backorder status and when the missing units are expected.\n\n\
                  Exit codes: 0 success; 2 input refused (the message names the record and the rule); \
                  1 any other failure."
)]
pub struct Cli {
    /// The database: `sqlite://PATH` (created on first use).
    #[arg(long, env = "DATABASE_URL", global = true, default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
    #[command(subcommand)]
    pub command: Command,
}

/// An SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://backorderd.db";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the allocation result of a snapshot file; touches no database.
    ///
    /// Reads a snapshot (JSON, see snapshot.md) and prints the result: every line's
    /// backorder quantity and ETA, every order's scope, status and backorder quantity,
    /// in the snapshot's order. A snapshot without `as_of` is computed as of now.
    Simulate {
        /// The snapshot file; `-` reads standard input.
        file: PathBuf,
        /// Indent the JSON output.
        #[arg(long)]
        pretty: bool,
    },
    /// Write a synthetic snapshot (for trials and benchmarks) to standard output.
    ///
    /// SKU popularity follows a Zipf-like law, so a few hot SKUs get long queues; stock
    /// covers about half of the demand. The same seed always gives the same book.
    Generate(generate::GenerateArgs),
    /// Create the database if needed and bring its schema up to date.
    Migrate,
    /// Replace the stored state with a snapshot and queue a full recalculation.
    ///
    /// The snapshot's stored backorder quantities are kept as they are until the
    /// recalculation writes new ones. A refused snapshot (exit 2) changes nothing.
    Import {
        /// The snapshot file; `-` reads standard input.
        file: PathBuf,
    },
    /// Print the stored state as a snapshot, stored backorder quantities in the lines.
    ///
    /// `as_of` is the moment of the export, so `simulate` on the output recomputes
    /// what the daemon would compute now.
    Export {
        /// Indent the JSON output.
        #[arg(long)]
        pretty: bool,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let url = cli.database_url.as_str();
    match cli.command {
        Command::Simulate { file, pretty } => simulate::run(&file, pretty),
        Command::Generate(args) => generate::run(&args),
        Command::Migrate => block_on(storage::migrate(url)),
        Command::Import { file } => block_on(storage::import(url, &file)),
        Command::Export { pretty } => block_on(storage::export(url, pretty)),
    }
}

fn block_on<T>(work: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    use anyhow::Context;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(work)
}

/// The error and its causes on one line, leaving out a cause that only
/// repeats what was already said (database drivers wrap their own errors).
pub fn describe(err: &anyhow::Error) -> String {
    let mut said = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if said.contains(&text) {
            continue;
        }
        if !said.is_empty() {
            said.push_str(": ");
        }
        said.push_str(&text);
    }
    said
}

/// Refused input exits 2, anything else 1.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if err
        .chain()
        .any(|cause| cause.downcast_ref::<InputError>().is_some())
    {
        EXIT_REFUSED
    } else {
        EXIT_FAILURE
    }
}

/// How messages name an input file.
pub fn input_name(path: &std::path::Path) -> String {
    if path.as_os_str() == "-" {
        "from standard input".to_owned()
    } else {
        path.display().to_string()
    }
}

/// Reads a whole file, or standard input for `-`.
pub fn read_input(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    use std::io::Read;
    if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
        Ok(bytes)
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    }
}
