//! backorderd: the library behind the `backorderd` binary.
//!
//! - [`engine`]: the pure allocation engine (the contract, exactly).
//! - [`input`]: reading JSON documents with refusals that name the record.
//! - [`bookgen`]: synthetic books for trials and benchmarks.
//! - [`cli`]: the command line, a thin layer over the rest.
//! - [`api`]: the HTTP API of `serve`, another thin layer.
//! - [`delivery`]: change messages and their delivery by webhook and e-mail.
//! - [`feed`]: the availability feed and the purchasing report, pure.
//! - [`audit`]: the report of `backorderd audit`: stored values against the contract's answer.

pub mod api;
pub mod audit;
pub mod availability;
pub mod bookgen;
pub mod cli;
pub mod config;
pub mod console;
pub mod delivery;
pub mod digest;
pub mod engine;
pub mod events;
pub mod explain;
pub mod feed;
pub mod health;
pub mod input;
pub mod meter;
pub mod pacing;
pub mod queue;
pub mod recalc;
pub mod service;
pub mod store;
pub mod systemd;
pub mod telemetry;
pub mod waiting;
pub mod wake;
pub mod whatif;
pub mod worker;
