//! The command line: one module per command, each a thin layer over the
//! library.

mod audit;
mod check_config;
mod daemon;
mod delivery;
mod feed;
mod generate;
mod messages;
mod simulate;
mod storage;
mod what_if;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use crate::input::InputError;

/// Exit code for refused input (docs/reference/cli.md, exit codes).
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
                  1 any other failure.\n\n\
                  Reference (formats, rules, events, HTTP API, commands): docs/reference/ in the \
                  source repository."
)]
pub struct Cli {
    /// The database: `sqlite://PATH` (created on first use) or
    /// `postgres://USER:PASSWORD@HOST/DB`. Default: the configuration's
    /// `database_url`, `sqlite://backorderd.db` unless set.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// A TOML configuration file layered over the built-in defaults
    /// (config/default.toml lists every key); `BACKORDERD__SECTION__KEY`
    /// environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the allocation result of a snapshot file; touches no database.
    ///
    /// Reads a snapshot (JSON, docs/reference/snapshot.md) and prints the result: every line's
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
    ///
    /// The import's recalculation emits no change message unless --notify is given
    /// (a bulk load must not mail every customer).
    Import {
        /// The snapshot file; `-` reads standard input.
        file: PathBuf,
        /// Let the import's recalculation emit change messages (cause `import`).
        #[arg(long)]
        notify: bool,
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
    /// Apply the events of a JSON Lines file (one event per line) and queue the
    /// recalculations they cause.
    ///
    /// Each event is checked and applied in the file's order, all in one
    /// transaction: if any event is refused (bad JSON, unknown type or field,
    /// unknown order, line or warehouse, negative quantity) nothing of the file is
    /// applied and the command exits 2 naming the event. An id seen before is
    /// acknowledged and ignored, so a sender may retry a file freely. Prints a
    /// JSON report: accepted ids, duplicate ids, SKUs marked. Event types and
    /// their fields: docs/reference/events.md.
    Event {
        /// The JSON Lines file; `-` reads standard input.
        file: PathBuf,
        #[command(flatten)]
        wait: daemon::WaitArgs,
    },
    /// Queue a recalculation of some SKUs or of everything.
    ///
    /// Without --inline a running `backorderd serve` does the work; --inline does
    /// it in this process (for a maintenance window or cron), showing progress on
    /// a terminal.
    #[command(group = clap::ArgGroup::new("what").required(true).args(["all", "sku"]))]
    Recalc {
        /// Every SKU.
        #[arg(long)]
        all: bool,
        /// These SKUs (and the SKUs tied to them by replacement).
        #[arg(long, num_args = 1.., value_name = "SKU")]
        sku: Vec<String>,
        /// Recalculate here and now instead of leaving it to the daemon.
        #[arg(long, conflicts_with = "wait")]
        inline: bool,
        #[command(flatten)]
        wait: daemon::WaitArgs,
    },
    /// Run the daemon: recalculate as events arrive, until SIGTERM or SIGINT.
    ///
    /// On a signal it stops taking jobs, finishes the batch in hand and exits 0
    /// within `service.shutdown_grace_secs`. A full recalculation runs every
    /// `service.full_recalculation_interval_secs`. Logs go to standard error
    /// (`log.format = "json"` for JSON lines). It also answers HTTP on
    /// `http.listen` (docs/reference/http.md).
    Serve(daemon::ServeArgs),
    /// Print the change messages (the pull feed) as JSON Lines, in commit order.
    ///
    /// Reads the database directly. Prints the messages after --after (from the
    /// oldest kept one without it), then `next cursor: C` on standard error: pass C
    /// as --after to continue. With --follow it keeps printing new messages until
    /// stopped.
    Changes {
        /// Print the messages after this cursor (the `next` of an earlier read).
        #[arg(long, value_name = "CURSOR")]
        after: Option<String>,
        /// At most this many messages.
        #[arg(long, value_name = "N")]
        limit: Option<i64>,
        /// Keep printing messages as they are committed.
        #[arg(long)]
        follow: bool,
    },
    /// Print every change of an order and its lines (old and new values, cause,
    /// time), newest first, as JSON; exit 2 for an unknown order.
    History {
        /// The order's id.
        order_id: String,
    },
    /// Print the queue's state as JSON: pending, running and failed jobs, and
    /// the SKUs waiting for a recalculation.
    Status,
    /// Prints the availability feed of the stored state: per SKU and warehouse,
    /// on hand, allocated, backordered, free, on order, next ETA, sellable and
    /// whether a backorder threshold is exceeded (docs/reference/feed.md).
    ///
    /// Without SKU: every SKU's entry, by SKU, as one JSON array (or --jsonl),
    /// filtered by --backordered-min/--backordered-max (in --warehouse when
    /// given). A bad filter (negative, min above max, unknown warehouse) exits 2.
    Availability(feed::AvailabilityArgs),
    /// Prints the purchasing report: per vendor, each SKU whose backordered
    /// units no open purchase order covers (its shortfall), with its
    /// backordered and on-order units, the oldest waiting order's date and the
    /// number of waiting orders. A vendor no product names exits 2.
    Purchasing {
        /// Only this vendor's SKUs.
        #[arg(long, value_name = "VENDOR")]
        vendor: Option<String>,
        /// CSV (one row per SKU) instead of JSON.
        #[arg(long)]
        csv: bool,
    },
    /// Check the configuration and the database location, and print the
    /// effective configuration with secrets redacted; exit 1 naming the bad key.
    ///
    /// Reads every layer as `serve` does. For SQLite it checks that the URL
    /// parses and that the file's directory exists and is writable (and the
    /// file, if there); it opens no database and runs no migration. The
    /// systemd unit runs it before `serve` (ExecStartPre).
    CheckConfig,
    /// Compare every stored line and order with the contract's answer for
    /// the stored state; with --repair, write the answer.
    ///
    /// Runs every SKU through the engine, as a full recalculation does, and prints
    /// one JSON document: a summary and each line (backorder qty, ETA) and order
    /// (status, backorder qty, line counts) whose stored values differ, stored
    /// beside expected. Without --repair it writes nothing. With --repair the
    /// differences are written in the same transaction, with history rows whose
    /// cause is `audit`. Exit codes: 0 nothing differs; 3 something differed
    /// (and, with --repair, was repaired); 1 failure (nothing written).
    Audit {
        /// Write the contract's answer where the stored values differ.
        #[arg(long)]
        repair: bool,
        /// Indent the JSON output.
        #[arg(long)]
        pretty: bool,
    },
    /// Show what a settings change would change on the stored state, writing nothing.
    ///
    /// Applies the settings (and the events of --events) and recalculates every SKU, as
    /// a `settings_changed` event makes the daemon do, inside a transaction it then
    /// rolls back; prints one JSON document: how many lines and orders would change,
    /// how many orders would become or stop being backordered, and the changed lines
    /// (order, line, SKU, backorder qty, ETA and the order's status, before and after)
    /// and orders. On a terminal a one-line summary goes to standard error.
    /// Exit codes: 0 done; 2 a setting or event refused (named); 1 any other failure.
    WhatIf(what_if::WhatIfArgs),
    /// List the messages given up on after their retry window, per
    /// destination, with the last attempt's error, as JSON.
    Dead {
        /// Only this destination's (`webhook:<url>` or `email`; `status` lists them).
        #[arg(long, value_name = "DESTINATION")]
        destination: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: i64,
    },
    /// Put dead messages back on their way, with a new retry window.
    ///
    /// A message is sent after the message of its key in hand, if any.
    /// Exit 2 when the message is not dead (for that destination).
    #[command(group = clap::ArgGroup::new("which").required(true).args(["id", "all"]))]
    Redeliver {
        /// The message id (`backorderd dead` lists them).
        id: Option<String>,
        /// Every dead message (of the destination, when given).
        #[arg(long)]
        all: bool,
        /// Only for this destination (else every one where it is dead).
        #[arg(long, value_name = "DESTINATION")]
        destination: Option<String>,
    },
    /// Re-enable a destination disabled after it answered 410 Gone: its
    /// waiting messages are sent again. Exit 2 for an unknown destination.
    EnableDestination {
        /// `webhook:<url>` or `email`, as `status` shows it.
        destination: String,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = || {
        crate::config::load(cli.config.as_deref(), cli.database_url.as_deref())
            .map_err(anyhow::Error::from)
    };
    match cli.command {
        Command::Simulate { file, pretty } => simulate::run(&file, pretty),
        Command::Generate(args) => generate::run(&args),
        Command::Migrate => block_on(storage::migrate(&settings()?)),
        Command::Import { file, notify } => block_on(storage::import(&settings()?, &file, notify)),
        Command::Changes {
            after,
            limit,
            follow,
        } => block_on(messages::changes(
            &settings()?,
            after.as_deref(),
            limit,
            follow,
        )),
        Command::History { order_id } => block_on(messages::history(&settings()?, &order_id)),
        Command::Export { pretty } => block_on(storage::export(&settings()?, pretty)),
        Command::Event { file, wait } => block_on(daemon::event(&settings()?, &file, &wait)),
        Command::Recalc {
            all,
            sku,
            inline,
            wait,
        } => block_on(daemon::recalc(&settings()?, all, sku, inline, &wait)),
        Command::Serve(args) => run_multi_thread(daemon::serve(&settings()?, &args)),
        Command::Status => block_on(daemon::status(&settings()?)),
        Command::Audit { repair, pretty } => {
            if block_on(audit::run(&settings()?, repair, pretty))? {
                std::process::exit(crate::audit::EXIT_DRIFT);
            }
            Ok(())
        }
        Command::WhatIf(args) => block_on(what_if::run(&settings()?, &args)),
        Command::Dead { destination, limit } => {
            block_on(delivery::dead(&settings()?, destination.as_deref(), limit))
        }
        Command::Redeliver {
            id,
            all: _,
            destination,
        } => block_on(delivery::redeliver(
            &settings()?,
            id.as_deref(),
            destination.as_deref(),
        )),
        Command::EnableDestination { destination } => {
            block_on(delivery::enable(&settings()?, &destination))
        }
        Command::Availability(args) => block_on(feed::availability(&settings()?, args)),
        Command::Purchasing { vendor, csv } => {
            block_on(feed::purchasing(&settings()?, vendor, csv))
        }
        Command::CheckConfig => {
            check_config::run(cli.config.as_deref(), cli.database_url.as_deref())
        }
    }
}

fn run_multi_thread(
    work: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(work)
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
    let refused = |cause: &(dyn std::error::Error + 'static)| {
        cause.downcast_ref::<InputError>().is_some()
            || cause.downcast_ref::<crate::feed::QueryError>().is_some()
            || matches!(
                cause.downcast_ref::<crate::availability::FeedError>(),
                Some(crate::availability::FeedError::Query(_))
            )
            || matches!(
                cause.downcast_ref::<crate::store::StoreError>(),
                Some(crate::store::StoreError::Refused(_))
            )
    };
    if err.chain().any(refused) {
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
