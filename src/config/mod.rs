//! The daemon's settings, in layers (lowest first):
//!
//! 1. the defaults in `config/default.toml`, embedded in the binary so it
//!    works from any directory: the only place a default is written;
//! 2. the file given with `--config` (TOML; it must exist);
//! 3. environment variables `BACKORDERD__<SECTION>__<KEY>`, e.g.
//!    `BACKORDERD__SERVICE__POLL_INTERVAL_MS=10`, `BACKORDERD__LOG__FORMAT=json`,
//!    `BACKORDERD__DATABASE_URL=...` (an empty value counts as unset);
//! 4. the database URL the caller passes (`--database-url` / `DATABASE_URL`).
//!
//! Each field's type checks its value's bounds while it is read (see
//! `values.rs`); unknown keys and bad values are refused with an error naming
//! the key and where it was set (`layers.rs`). Adding a setting: the field
//! here, its default in `config/default.toml`, its row in the README (the
//! tests check that the three agree).

mod delivery;
mod layers;
mod purchasing;
mod syntax;
mod values;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub use delivery::{EmailSettings, NotifySettings, WebhookSettings};
pub use layers::{Loaded, Origins, load, load_from, load_from_with_origins, load_with_origins};
pub use purchasing::PurchasingSettings;
pub use values::LogFormat;
use values::{Count, Millis, Secs, database_url, token};

use crate::store::OpenOptions;

/// Upper bound for every interval setting (one year), so that adding an
/// interval to an instant cannot overflow.
pub const MAX_INTERVAL_SECS: u64 = 365 * 24 * 60 * 60;
const YEAR: u64 = MAX_INTERVAL_SECS;
const YEAR_MS: u64 = MAX_INTERVAL_SECS * 1000;
/// Bound of the counts that have no natural one.
const MAX_COUNT: u64 = u32::MAX as u64;

/// All settings of the daemon.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The database; its `Debug` redacts it: show it with [`redact_url`](crate::store::redact_url).
    #[serde(with = "database_url")]
    pub database_url: SecretString,
    pub database: DatabaseSettings,
    pub service: ServiceSettings,
    pub log: LogSettings,
    pub http: HttpSettings,
    pub notify: NotifySettings,
    /// `[[webhooks]]`, in the file only (an array of tables).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<WebhookSettings>,
    /// `[email]`: no mail without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailSettings>,
    /// `[purchasing]`: the scheduled digest; none without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchasing: Option<PurchasingSettings>,
}

impl Default for Settings {
    /// The embedded defaults alone.
    fn default() -> Self {
        load_from(None, None, Vec::new()).expect("the embedded defaults are valid")
    }
}

/// How the database is opened (the URL says which one).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// PostgreSQL: the longest wait for a connection to be set up.
    #[serde(rename = "connect_timeout_secs", with = "Secs::<1, 3600>")]
    pub connect_timeout: Duration,
    /// PostgreSQL: the server cancels a statement running longer; `None`
    /// (0): no limit.
    #[serde(rename = "statement_timeout_secs", with = "Secs::<0, 604_800>")]
    pub statement_timeout: Option<Duration>,
    /// SQLite: how long a writer waits for another process's transaction.
    #[serde(rename = "busy_timeout_secs", with = "Secs::<0, 3600>")]
    pub busy_timeout: Duration,
}

impl DatabaseSettings {
    pub fn open_options(&self) -> OpenOptions {
        OpenOptions {
            connect_timeout: self.connect_timeout,
            statement_timeout: self.statement_timeout,
            busy_timeout: self.busy_timeout,
        }
    }
}

/// How the service schedules recalculations and talks to its queue.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    /// `order_status_changed` / `order_payment_changed` events trigger a
    /// recalculation at once; when false they wait for the periodic full run.
    pub recalculate_on_status_change: bool,
    /// "Don't mark backorders while orders are being created": when true, an
    /// `order_upserted` for an order not yet stored triggers no recalculation.
    pub defer_new_orders: bool,
    /// Between periodic full recalculations; `None` (0): none.
    #[serde(rename = "full_recalculation_interval_secs", with = "Secs::<0, YEAR>")]
    pub full_recalculation_interval: Option<Duration>,
    /// Between polls of the queue for jobs enqueued by other processes.
    #[serde(rename = "poll_interval_ms", with = "Millis::<1, YEAR_MS>")]
    pub poll_interval: Duration,
    /// How long a shutdown waits for running work.
    #[serde(rename = "shutdown_grace_secs", with = "Secs::<0, YEAR>")]
    pub shutdown_grace: Duration,
    /// SKUs recalculated per transaction.
    #[serde(with = "Count::<1, MAX_COUNT>")]
    pub skus_per_batch: NonZeroUsize,
    /// Between queue worker heartbeats.
    #[serde(rename = "heartbeat_secs", with = "Secs::<1, YEAR>")]
    pub heartbeat: Duration,
    /// From this many dirty SKUs on, a recalculation runs as one bulk
    /// transaction that reads every order header once.
    #[serde(with = "Count::<1, MAX_COUNT>")]
    pub bulk_from_skus: NonZeroUsize,
}

/// Where and how the daemon logs (always to standard error).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive, e.g. `info,backorderd=debug`; `RUST_LOG`, if
    /// set, takes precedence.
    #[serde(deserialize_with = "values::log_filter")]
    pub filter: String,
}

/// The HTTP API of `serve` (src/api).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Address and port to listen on; `serve --listen` overrides it.
    pub listen: SocketAddr,
    /// Bearer token required by every endpoint but /healthz and /readyz;
    /// empty: none (allowed on a loopback address only). Its `Debug` redacts it.
    #[serde(with = "token")]
    pub token: SecretString,
    /// Largest request body accepted, in bytes (larger: 413).
    #[serde(with = "Count::<1, 1_073_741_824>")]
    pub body_limit_bytes: NonZeroUsize,
    /// How long a `?wait=true` request waits for the write-back (then 504).
    #[serde(rename = "wait_timeout_secs", with = "Secs::<1, YEAR>")]
    pub wait_timeout: Duration,
    /// How long a request's line and headers may take to arrive (then the
    /// connection is closed); also how long an idle connection stays open.
    #[serde(rename = "header_timeout_secs", with = "Secs::<1, YEAR>")]
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive (then 408).
    #[serde(rename = "body_timeout_secs", with = "Secs::<1, YEAR>")]
    pub body_timeout: Duration,
    /// Connections open at once; one more is answered 503.
    #[serde(with = "Count::<1, 65_536>")]
    pub max_connections: NonZeroUsize,
}

impl HttpSettings {
    /// The bearer token, `None` when unset.
    pub fn token(&self) -> Option<&str> {
        Some(self.token.expose_secret()).filter(|token| !token.is_empty())
    }

    /// Refuses to expose the API beyond this machine without a token.
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        if self.token().is_none() && !self.listen.ip().is_loopback() {
            return Err(ConfigError::Other(format!(
                "refusing to listen on {} without a token: set `http.token` \
                 (BACKORDERD__HTTP__TOKEN) or listen on a loopback address such as 127.0.0.1",
                self.listen
            )));
        }
        Ok(())
    }
}

/// Why the settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {} not found", .0.display())]
    FileNotFound(PathBuf),
    #[error("configuration file {}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("environment variable {name} is not valid UTF-8")]
    NotUnicode { name: String },
    /// An unknown key or an invalid value; `origin` says where it was set.
    #[error("configuration key `{key}`{}: {message}",
        origin.as_ref().map_or_else(String::new, |origin| format!(" (set by {origin})")))]
    Invalid {
        key: String,
        origin: Option<String>,
        message: String,
    },
    #[error("configuration: {0}")]
    Other(String),
}

#[cfg(test)]
mod tests;
