//! The daemon's settings, in layers (lowest first):
//!
//! 1. the defaults in `config/default.toml`, embedded in the binary so it
//!    works from any directory;
//! 2. the file given with `--config` (TOML; it must exist);
//! 3. environment variables `BACKORDERD__<SECTION>__<KEY>`, e.g.
//!    `BACKORDERD__SERVICE__POLL_INTERVAL_MS=10`, `BACKORDERD__LOG__FORMAT=json`,
//!    `BACKORDERD__DATABASE_URL=...` (an empty value counts as unset);
//! 4. the database URL the caller passes (`--database-url` / `DATABASE_URL`).
//!
//! Unknown keys and invalid values are refused with an error naming the key
//! and where it came from (the file, or the environment variable).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat, Source, Value, ValueKind};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_path_to_error::Segment;

use crate::store::{OpenOptions, is_secret_name, redact_url};

/// Prefix of the environment variables read as settings.
pub const ENV_PREFIX: &str = "BACKORDERD";
/// Separator between the prefix, sections and keys of those variables.
pub const ENV_SEPARATOR: &str = "__";
/// The database URL when no layer sets one.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://backorderd.db";
/// Upper bound for every interval setting (one year), so that adding an
/// interval to an instant cannot overflow.
pub const MAX_INTERVAL_SECS: u64 = 365 * 24 * 60 * 60;
/// `http.max_connections` at most (each takes a file descriptor).
const MAX_CONNECTIONS: u64 = 65_536;

/// The embedded lowest layer.
const DEFAULTS: &str = include_str!("../config/default.toml");

/// All settings of the daemon.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub database: DatabaseSettings,
    pub service: ServiceSettings,
    pub log: LogSettings,
    pub http: HttpSettings,
}

/// How the database is opened (the URL says which one).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// PostgreSQL: seconds to wait for a connection to be set up.
    pub connect_timeout_secs: u64,
    /// PostgreSQL: the server cancels a statement running longer; 0: no limit.
    pub statement_timeout_secs: u64,
    /// SQLite: seconds a writer waits for another process's transaction.
    pub busy_timeout_secs: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            connect_timeout_secs: 10,
            statement_timeout_secs: 300,
            busy_timeout_secs: 10,
        }
    }
}

impl DatabaseSettings {
    pub fn open_options(&self) -> OpenOptions {
        OpenOptions {
            connect_timeout: Duration::from_secs(self.connect_timeout_secs),
            statement_timeout: (self.statement_timeout_secs > 0)
                .then(|| Duration::from_secs(self.statement_timeout_secs)),
            busy_timeout: Duration::from_secs(self.busy_timeout_secs),
        }
    }
}

/// How the service schedules recalculations and talks to its queue.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    /// `order_status_changed` / `order_payment_changed` events trigger a
    /// recalculation at once; when false they wait for the periodic full run.
    pub recalculate_on_status_change: bool,
    /// "Don't mark backorders while orders are being created": when true, an
    /// `order_upserted` for an order not yet stored triggers no recalculation;
    /// new orders wait for the periodic full run.
    pub defer_new_orders: bool,
    /// Seconds between periodic full recalculations; 0 disables them.
    pub full_recalculation_interval_secs: u64,
    /// Milliseconds between polls of the queue for jobs enqueued by other
    /// processes (at least 1).
    pub poll_interval_ms: u64,
    /// Seconds a shutdown waits for running work.
    pub shutdown_grace_secs: u64,
    /// SKUs recalculated per transaction (at least 1).
    pub skus_per_batch: usize,
    /// Seconds between queue worker heartbeats (at least 1).
    pub heartbeat_secs: u64,
    /// From this many dirty SKUs on, a recalculation runs as one bulk
    /// transaction that reads every order header once.
    pub bulk_from_skus: u64,
}

/// The HTTP API of `serve` (src/api).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Address and port to listen on; `serve --listen` overrides it.
    pub listen: std::net::SocketAddr,
    /// Bearer token required by every endpoint but /healthz and /readyz;
    /// empty: none (allowed on a loopback address only).
    pub token: ApiToken,
    /// Largest request body accepted, in bytes (larger: 413).
    pub body_limit_bytes: usize,
    /// How long a `?wait=true` request waits for the write-back (then 504).
    pub wait_timeout_secs: u64,
    /// How long a request's line and headers may take to arrive (then the
    /// connection is closed); also how long an idle connection stays open.
    pub header_timeout_secs: u64,
    /// How long a request's body may take to arrive (then 408).
    pub body_timeout_secs: u64,
    /// Connections open at once; one more is answered 503.
    pub max_connections: usize,
}

/// The API's bearer token; `Debug` and `Display` never show it, and its
/// memory is wiped when dropped.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct ApiToken(SecretString);

impl ApiToken {
    pub fn new(token: impl Into<String>) -> Self {
        ApiToken(SecretString::from(token.into()))
    }

    /// The token, `None` when unset (empty).
    pub fn expose(&self) -> Option<&str> {
        let token = self.0.expose_secret();
        (!token.is_empty()).then_some(token)
    }
}

impl PartialEq for ApiToken {
    fn eq(&self, other: &Self) -> bool {
        self.0.expose_secret() == other.0.expose_secret()
    }
}

impl Eq for ApiToken {}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.expose().is_none() {
            "ApiToken(unset)"
        } else {
            "ApiToken(***)"
        })
    }
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.expose().is_none() { "" } else { "***" })
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: ApiToken::default(),
            body_limit_bytes: 1024 * 1024,
            wait_timeout_secs: 60,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            max_connections: 512,
        }
    }
}

impl HttpSettings {
    pub fn wait_timeout(&self) -> Duration {
        Duration::from_secs(self.wait_timeout_secs)
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs)
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs)
    }

    /// Refuses to expose the API beyond this machine without a token.
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        if self.token.expose().is_none() && !self.listen.ip().is_loopback() {
            return Err(ConfigError::Other(format!(
                "refusing to listen on {} without a token: set `http.token` \
                 (BACKORDERD__HTTP__TOKEN) or listen on a loopback address such as 127.0.0.1",
                self.listen
            )));
        }
        Ok(())
    }
}

/// Where and how the daemon logs (always to standard error).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive, e.g. `info,backorderd=debug`; `RUST_LOG`, if
    /// set, takes precedence.
    pub filter: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl<'de> Deserialize<'de> for LogFormat {
    /// `text` or `json`, in any case.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match name.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(serde::de::Error::invalid_value(
                serde::de::Unexpected::Str(&name),
                &"\"text\" or \"json\"",
            )),
        }
    }
}

/// A database URL whose `Debug` and `Display` hide any password (and whose
/// memory is wiped when dropped); use [`DatabaseUrl::expose`] to connect.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(SecretString::from(url.into()))
    }

    /// The URL, password included.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for DatabaseUrl {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for DatabaseUrl {}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&redact_url(self.expose()))
            .finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(self.expose()))
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_url: DatabaseUrl::new(DEFAULT_DATABASE_URL),
            database: DatabaseSettings::default(),
            service: ServiceSettings::default(),
            log: LogSettings::default(),
            http: HttpSettings::default(),
        }
    }
}

impl Default for ServiceSettings {
    fn default() -> Self {
        ServiceSettings {
            recalculate_on_status_change: true,
            defer_new_orders: false,
            full_recalculation_interval_secs: 3600,
            poll_interval_ms: 50,
            shutdown_grace_secs: 20,
            skus_per_batch: 2000,
            heartbeat_secs: 5,
            bulk_from_skus: 5000,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Text,
            filter: "info".to_owned(),
        }
    }
}

impl ServiceSettings {
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    /// `None` when the periodic full recalculation is disabled.
    pub fn full_recalculation_interval(&self) -> Option<Duration> {
        (self.full_recalculation_interval_secs > 0)
            .then(|| Duration::from_secs(self.full_recalculation_interval_secs))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs)
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
    #[error("configuration key `{key}`{}: {message}", describe_origin(.origin))]
    Invalid {
        key: String,
        origin: Option<String>,
        message: String,
    },
    #[error("configuration: {0}")]
    Other(String),
}

fn describe_origin(origin: &Option<String>) -> String {
    origin
        .as_deref()
        .map_or_else(String::new, |origin| format!(" (set by {origin})"))
}

/// Loads the settings from the embedded defaults, `file`, the process
/// environment and `database_url`, in that order of precedence (lowest first).
pub fn load(file: Option<&Path>, database_url: Option<&str>) -> Result<Settings, ConfigError> {
    load_from(file, database_url, process_env()?)
}

/// [`load`] with `env` in place of the process environment: only the
/// variables prefixed `BACKORDERD__` (in any case) are read.
pub fn load_from(
    file: Option<&Path>,
    database_url: Option<&str>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, ConfigError> {
    load_layers(file, database_url, env).map(|loaded| loaded.settings)
}

/// [`load`], keeping the merged tree the settings came from: what
/// `check-config` shows.
pub fn load_with_origins(
    file: Option<&Path>,
    database_url: Option<&str>,
) -> Result<Loaded, ConfigError> {
    load_layers(file, database_url, process_env()?)
}

/// Settings with the merged tree they were read from.
pub struct Loaded {
    pub settings: Settings,
    /// Every key set by any layer, merged, each value with its origin.
    pub tree: config::Map<String, Value>,
    file: Option<PathBuf>,
    database_url_given: bool,
}

impl Loaded {
    /// The value the embedded defaults give `key` (dotted), if any.
    pub fn default_at(key: &str) -> Option<Value> {
        let defaults = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .build()
            .ok()?
            .collect()
            .ok()?;
        value_at(&defaults, key).cloned()
    }

    /// Where `key` (dotted) was set, as the errors name it: a file, an
    /// environment variable, or `--database-url` / `DATABASE_URL`; `None`
    /// for a built-in default.
    pub fn origin(&self, key: &str) -> Option<String> {
        if key == "database_url" && self.database_url_given {
            return Some("--database-url / DATABASE_URL".to_owned());
        }
        match invalid(
            &self.tree,
            self.file.as_deref(),
            key.to_owned(),
            String::new(),
        ) {
            ConfigError::Invalid { origin, .. } => origin,
            _ => None,
        }
    }

    /// The error for a bad value at `key`, naming where it was set.
    pub fn invalid(&self, key: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_owned(),
            origin: self.origin(key),
            message,
        }
    }
}

fn load_layers(
    file: Option<&Path>,
    database_url: Option<&str>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded, ConfigError> {
    let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError::FileNotFound(path.to_owned()));
        }
        builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
    }
    // A bare `BACKORDERD__` names no key: not ours.
    let bare = format!("{ENV_PREFIX}{ENV_SEPARATOR}");
    let env: config::Map<String, String> = env
        .into_iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case(&bare))
        .collect();
    builder = builder.add_source(
        Environment::with_prefix(ENV_PREFIX)
            .separator(ENV_SEPARATOR)
            .ignore_empty(true)
            .source(Some(env)),
    );
    if let Some(url) = database_url {
        builder = builder
            .set_override("database_url", url)
            .map_err(|err| ConfigError::Other(err.to_string()))?;
    }
    let config = builder.build().map_err(|err| build_error(err, file))?;
    // The merged tree, each value with its origin, to say where a bad key was set.
    let tree = config
        .collect()
        .map_err(|err| ConfigError::Other(err.to_string()))?;
    let settings: Settings = serde_path_to_error::deserialize(config).map_err(|err| {
        let key = dotted(err.path());
        // A type error quotes the value: not for a secret.
        let message = if is_secret_key(&key) {
            "invalid value (not shown: it may be secret)".to_owned()
        } else {
            strip_decoration(err.inner())
        };
        invalid(&tree, file, key, message)
    })?;
    settings.validate(&tree, file)?;
    let loaded = Loaded {
        settings,
        tree,
        file: file.map(Path::to_owned),
        database_url_given: database_url.is_some(),
    };
    // The URL is read where every command will read it: an unsupported form
    // is refused here, before anything is opened or created.
    crate::store::locate(loaded.settings.database_url.expose())
        .map_err(|err| loaded.invalid("database_url", err.to_string()))?;
    Ok(loaded)
}

/// Keys whose values are never shown: the token, passwords, keys, and the
/// database URL (shown only through [`redact_url`]).
pub fn is_secret_key(key: &str) -> bool {
    let name = key.rsplit('.').next().unwrap_or(key);
    is_secret_name(name) || name == "database_url"
}

/// The process environment's `BACKORDERD__*` variables. Others are skipped
/// whatever they contain; ours must be UTF-8.
fn process_env() -> Result<Vec<(String, String)>, ConfigError> {
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}").to_lowercase();
    let mut ours = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if !name.to_lowercase().starts_with(&prefix) {
            continue;
        }
        let value = value
            .into_string()
            .map_err(|_: OsString| ConfigError::NotUnicode {
                name: name.to_owned(),
            })?;
        ours.push((name.to_owned(), value));
    }
    Ok(ours)
}

impl Settings {
    /// Ranges that types alone do not enforce.
    fn validate(
        &self,
        tree: &config::Map<String, Value>,
        file: Option<&Path>,
    ) -> Result<(), ConfigError> {
        let service = &self.service;
        let intervals = [
            (
                "service.full_recalculation_interval_secs",
                service.full_recalculation_interval_secs,
                0,
                MAX_INTERVAL_SECS,
            ),
            (
                "service.poll_interval_ms",
                service.poll_interval_ms,
                1,
                MAX_INTERVAL_SECS * 1000,
            ),
            (
                "service.shutdown_grace_secs",
                service.shutdown_grace_secs,
                0,
                MAX_INTERVAL_SECS,
            ),
            (
                "service.heartbeat_secs",
                service.heartbeat_secs,
                1,
                MAX_INTERVAL_SECS,
            ),
        ];
        // The `config` crate rounds a fractional number given for an integer.
        let integers = intervals
            .iter()
            .map(|(key, ..)| *key)
            .chain(DATABASE_TIMEOUTS.iter().map(|(key, ..)| *key))
            .chain(["service.skus_per_batch", "service.bulk_from_skus"])
            .chain(["http.body_limit_bytes", "http.wait_timeout_secs"])
            .chain(["http.header_timeout_secs", "http.body_timeout_secs"])
            .chain(["http.max_connections"]);
        for key in integers {
            if let Some(Value {
                kind: ValueKind::Float(number),
                ..
            }) = value_at(tree, key)
            {
                let message = format!("{number} is not a whole number");
                return Err(invalid(tree, file, key.to_owned(), message));
            }
        }
        for (key, value, min, max) in intervals {
            if !(min..=max).contains(&value) {
                let message = format!("{value} is out of range: expected {min} to {max}");
                return Err(invalid(tree, file, key.to_owned(), message));
            }
        }
        let http = [
            (
                "http.body_limit_bytes",
                self.http.body_limit_bytes as u64,
                1 << 30,
            ),
            (
                "http.wait_timeout_secs",
                self.http.wait_timeout_secs,
                MAX_INTERVAL_SECS,
            ),
            (
                "http.header_timeout_secs",
                self.http.header_timeout_secs,
                MAX_INTERVAL_SECS,
            ),
            (
                "http.body_timeout_secs",
                self.http.body_timeout_secs,
                MAX_INTERVAL_SECS,
            ),
            (
                "http.max_connections",
                self.http.max_connections as u64,
                MAX_CONNECTIONS,
            ),
        ];
        for (key, value, max) in http {
            if !(1..=max).contains(&value) {
                let message = format!("{value} is out of range: expected 1 to {max}");
                return Err(invalid(tree, file, key.to_owned(), message));
            }
        }
        let database = &self.database;
        let values = [
            database.connect_timeout_secs,
            database.statement_timeout_secs,
            database.busy_timeout_secs,
        ];
        for ((key, min, max), value) in DATABASE_TIMEOUTS.iter().zip(values) {
            if !(*min..=*max).contains(&value) {
                let message = format!("{value} is out of range: expected {min} to {max}");
                return Err(invalid(tree, file, (*key).to_owned(), message));
            }
        }
        if service.skus_per_batch == 0 {
            let message = "0 is out of range: expected at least 1".to_owned();
            return Err(invalid(
                tree,
                file,
                "service.skus_per_batch".to_owned(),
                message,
            ));
        }
        if let Err(err) = tracing_subscriber::EnvFilter::builder().parse(&self.log.filter) {
            let message = format!("{:?} is not a valid log filter: {err}", self.log.filter);
            return Err(invalid(tree, file, "log.filter".to_owned(), message));
        }
        if self.database_url.expose().trim().is_empty() {
            let message = "the database URL is empty".to_owned();
            return Err(invalid(tree, file, "database_url".to_owned(), message));
        }
        Ok(())
    }
}

/// The database timeouts with their ranges, in the order of
/// [`DatabaseSettings`]' fields.
const DATABASE_TIMEOUTS: [(&str, u64, u64); 3] = [
    ("database.connect_timeout_secs", 1, 3600),
    ("database.statement_timeout_secs", 0, 7 * 24 * 3600),
    ("database.busy_timeout_secs", 0, 3600),
];

/// The error for `key`, saying where its value was set: the environment
/// variable, or the file as the user named it. (The embedded defaults and the
/// `database_url` argument have no origin.)
fn invalid(
    tree: &config::Map<String, Value>,
    file: Option<&Path>,
    key: String,
    message: String,
) -> ConfigError {
    let origin = origin_of(tree, &key).and_then(|origin| {
        if origin == ENV_ORIGIN {
            let name = format!(
                "{ENV_PREFIX}{ENV_SEPARATOR}{}",
                key.replace('.', ENV_SEPARATOR)
            );
            Some(format!("environment variable {}", name.to_uppercase()))
        } else {
            file.map(|path| path.display().to_string())
        }
    });
    ConfigError::Invalid {
        key,
        origin,
        message,
    }
}

/// How the `config` crate names the origin of environment values.
const ENV_ORIGIN: &str = "the environment";

/// Where the value at `key` (dotted) was set, if known: a file path or
/// [`ENV_ORIGIN`].
fn origin_of(tree: &config::Map<String, Value>, key: &str) -> Option<String> {
    value_at(tree, key)?.origin().map(str::to_owned)
}

/// The merged value at `key` (dotted), with its origin.
fn value_at<'t>(tree: &'t config::Map<String, Value>, key: &str) -> Option<&'t Value> {
    let mut segments = key.split('.');
    let mut value = tree.get(segments.next()?)?;
    for segment in segments {
        let ValueKind::Table(table) = &value.kind else {
            return None;
        };
        value = table.get(segment)?;
    }
    Some(value)
}

/// The path as `section.key`, without the `?` serde_path_to_error uses for
/// unknown parts.
fn dotted(path: &serde_path_to_error::Path) -> String {
    let parts: Vec<String> = path
        .iter()
        .filter_map(|segment| match segment {
            Segment::Map { key } => Some(key.clone()),
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect();
    if parts.is_empty() {
        "(top level)".to_owned()
    } else {
        parts.join(".")
    }
}

/// The message of a deserialization error without the "for key ... in ..."
/// that the `config` crate appends (we name the key and origin ourselves).
fn strip_decoration(err: &config::ConfigError) -> String {
    match err {
        config::ConfigError::Type {
            unexpected,
            expected,
            ..
        } => format!("invalid type: {unexpected}, expected {expected}"),
        config::ConfigError::At { error, .. } => strip_decoration(error),
        config::ConfigError::NotFound(key) => format!("missing key {key:?}"),
        other => other.to_string(),
    }
}

fn build_error(err: config::ConfigError, file: Option<&Path>) -> ConfigError {
    match (err, file) {
        (
            config::ConfigError::FileParse {
                uri: Some(_),
                cause,
            },
            Some(path),
        ) => ConfigError::File {
            path: path.to_owned(),
            message: syntax_error(path, cause.as_ref()),
        },
        // Other errors of the builder carry no value of ours.
        (err, _) => ConfigError::Other(err.to_string()),
    }
}

/// A TOML syntax error as "line L, column C (key `K`): WHAT". The TOML
/// parser's own message quotes the offending line, which may hold the token
/// or a password: only its first line, the diagnosis, is kept, and only when
/// it quotes nothing from the line.
fn syntax_error(path: &Path, cause: &(dyn std::error::Error + 'static)) -> String {
    let Some(error) = cause.downcast_ref::<toml::de::Error>() else {
        return "not valid TOML".to_owned();
    };
    let file = std::fs::read_to_string(path).unwrap_or_default();
    // The parser is handed the text without its byte order mark, so its
    // offsets count from after it.
    let text = file.strip_prefix('\u{feff}').unwrap_or(&file);
    let Some(mut start) = error.span().map(|span| span.start.min(text.len())) else {
        return "not valid TOML".to_owned();
    };
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let before = &text[..start];
    let line_number = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let line = text[line_start..].lines().next().unwrap_or("");
    let diagnosis = error.message().lines().next().unwrap_or("").trim();
    let quotes_the_line = diagnosis
        .split(|c: char| c.is_whitespace() || "`'\"".contains(c))
        .filter(|word| word.len() >= 3)
        .any(|word| line.contains(word) && !COMMON_WORDS.contains(&word));
    let what = if diagnosis.is_empty() || quotes_the_line {
        "not valid TOML".to_owned()
    } else {
        diagnosis.to_owned()
    };
    let key = key_of_line(before, line).map_or_else(String::new, |key| format!(" (key `{key}`)"));
    format!(
        "line {line_number}, column {column}{key}: {what} (the line is not shown: it may hold a secret)"
    )
}

/// Words of a diagnosis that say nothing about the line's content.
const COMMON_WORDS: &[&str] = &["key", "value", "string", "table", "array", "true", "false"];

/// The dotted key a line sets, its section included, if it reads as
/// `name = …` (or `name.sub = …`) under `[section]`.
fn key_of_line(before: &str, line: &str) -> Option<String> {
    let is_key = |name: &str| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    let (name, _) = line.split_once('=')?;
    let name = name.trim();
    if !is_key(name) {
        return None;
    }
    let section = before.lines().rev().find_map(|l| {
        let l = l.trim();
        let inner = l.strip_prefix('[')?.split(']').next()?.trim();
        is_key(inner).then(|| inner.to_owned())
    });
    Some(match section {
        Some(section) => format!("{section}.{name}"),
        None => name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn toml_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn defaults_load_with_no_file_and_no_env() {
        let settings = load_from(None, None, env(&[])).unwrap();
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.database_url.expose(), "sqlite://backorderd.db");
        assert!(settings.service.recalculate_on_status_change);
        assert!(!settings.service.defer_new_orders);
        assert_eq!(settings.service.full_recalculation_interval_secs, 3600);
        assert_eq!(settings.service.poll_interval_ms, 50);
        assert_eq!(settings.service.shutdown_grace_secs, 20);
        assert_eq!(settings.service.skus_per_batch, 2000);
        assert_eq!(settings.service.heartbeat_secs, 5);
        assert_eq!(settings.log.format, LogFormat::Text);
        assert_eq!(settings.log.filter, "info");
    }

    #[test]
    fn the_embedded_file_sets_every_key() {
        // Deserializing the embedded file alone fails if a key is missing.
        let config = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .build()
            .unwrap();
        let settings: Settings = config.try_deserialize().unwrap();
        assert_eq!(settings, Settings::default());
        for key in [
            "BACKORDERD__DATABASE_URL",
            "BACKORDERD__DATABASE__CONNECT_TIMEOUT_SECS",
            "BACKORDERD__DATABASE__STATEMENT_TIMEOUT_SECS",
            "BACKORDERD__DATABASE__BUSY_TIMEOUT_SECS",
            "BACKORDERD__SERVICE__RECALCULATE_ON_STATUS_CHANGE",
            "BACKORDERD__SERVICE__DEFER_NEW_ORDERS",
            "BACKORDERD__SERVICE__FULL_RECALCULATION_INTERVAL_SECS",
            "BACKORDERD__SERVICE__POLL_INTERVAL_MS",
            "BACKORDERD__SERVICE__SHUTDOWN_GRACE_SECS",
            "BACKORDERD__SERVICE__SKUS_PER_BATCH",
            "BACKORDERD__SERVICE__HEARTBEAT_SECS",
            "BACKORDERD__LOG__FORMAT",
            "BACKORDERD__LOG__FILTER",
            "BACKORDERD__HTTP__LISTEN",
            "BACKORDERD__HTTP__TOKEN",
            "BACKORDERD__HTTP__BODY_LIMIT_BYTES",
            "BACKORDERD__HTTP__WAIT_TIMEOUT_SECS",
        ] {
            assert!(
                DEFAULTS.contains(key),
                "default.toml does not mention {key}"
            );
        }
    }

    #[test]
    fn a_file_overrides_defaults() {
        let file = toml_file(
            "[service]\npoll_interval_ms = 10\ndefer_new_orders = true\n\
             full_recalculation_interval_secs = 0\n[log]\nformat = \"json\"\n",
        );
        let settings = load_from(Some(file.path()), None, env(&[])).unwrap();
        assert_eq!(settings.service.poll_interval_ms, 10);
        assert_eq!(settings.service.poll_interval(), Duration::from_millis(10));
        assert!(settings.service.defer_new_orders);
        assert_eq!(settings.service.full_recalculation_interval(), None);
        assert_eq!(settings.log.format, LogFormat::Json);
        // Untouched keys keep their defaults.
        assert_eq!(settings.service.skus_per_batch, 2000);
        assert_eq!(settings.log.filter, "info");
    }

    #[test]
    fn env_overrides_file_and_the_argument_overrides_everything() {
        let file = toml_file(
            "database_url = \"sqlite://from-file.db\"\n\
             [service]\npoll_interval_ms = 10\nheartbeat_secs = 7\n",
        );
        let vars = env(&[
            ("BACKORDERD__SERVICE__POLL_INTERVAL_MS", "25"),
            ("BACKORDERD__SERVICE__RECALCULATE_ON_STATUS_CHANGE", "false"),
            ("BACKORDERD__LOG__FORMAT", "json"),
            ("BACKORDERD__LOG__FILTER", "warn,backorderd=debug"),
            ("BACKORDERD__DATABASE_URL", "sqlite://from-env.db"),
        ]);
        let settings = load_from(Some(file.path()), None, vars.clone()).unwrap();
        assert_eq!(settings.service.poll_interval_ms, 25);
        assert_eq!(settings.service.heartbeat_secs, 7);
        assert!(!settings.service.recalculate_on_status_change);
        assert_eq!(settings.log.format, LogFormat::Json);
        assert_eq!(settings.log.filter, "warn,backorderd=debug");
        assert_eq!(settings.database_url.expose(), "sqlite://from-env.db");

        let settings = load_from(Some(file.path()), Some("sqlite://flag.db"), vars).unwrap();
        assert_eq!(settings.database_url.expose(), "sqlite://flag.db");
    }

    #[test]
    fn foreign_and_empty_env_vars_are_ignored() {
        let vars = env(&[
            ("PATH", "/usr/bin"),
            ("DATABASE_URL", "sqlite://not-read-here.db"),
            ("BACKORDERD_HOME", "/srv"),
            ("BACKORDERD_SERVICE__POLL_INTERVAL_MS", "1"),
            ("BACKORDERD__", "1"),
            ("BACKORDERD__LOG__FILTER", ""),
        ]);
        assert_eq!(load_from(None, None, vars).unwrap(), Settings::default());
    }

    #[test]
    fn unknown_keys_are_refused_naming_them() {
        let file = toml_file("[service]\npoll_intervall_ms = 10\n");
        let err = load_from(Some(file.path()), None, env(&[])).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("poll_intervall_ms"), "{message}");
        assert!(message.contains("service"), "{message}");
        assert!(
            message.contains(&file.path().display().to_string()),
            "{message}"
        );

        let file = toml_file("colour = \"blue\"\n");
        let message = load_from(Some(file.path()), None, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(message.contains("colour"), "{message}");

        let vars = env(&[("BACKORDERD__LOG__LEVEL", "debug")]);
        let message = load_from(None, None, vars).unwrap_err().to_string();
        assert!(message.contains("level"), "{message}");
        assert!(message.contains("BACKORDERD__LOG__LEVEL"), "{message}");
    }

    #[test]
    fn invalid_values_are_refused_naming_the_key() {
        let cases = [
            ("[log]\nformat = \"xml\"\n", "log.format"),
            (
                "[service]\nfull_recalculation_interval_secs = -1\n",
                "service.full_recalculation_interval_secs",
            ),
            (
                "[service]\ndefer_new_orders = \"sometimes\"\n",
                "service.defer_new_orders",
            ),
            ("[service]\nskus_per_batch = 0\n", "service.skus_per_batch"),
            (
                "[service]\npoll_interval_ms = 0\n",
                "service.poll_interval_ms",
            ),
            (
                "[service]\nheartbeat_secs = 99999999999\n",
                "service.heartbeat_secs",
            ),
            ("[log]\nfilter = \"=[\"\n", "log.filter"),
            ("service = 3\n", "service"),
            (
                "[service]\npoll_interval_ms = 1.5\n",
                "service.poll_interval_ms",
            ),
        ];
        for (text, key) in cases {
            let file = toml_file(text);
            let err = load_from(Some(file.path()), None, env(&[])).unwrap_err();
            let message = err.to_string();
            assert!(message.contains(&format!("`{key}`")), "{text:?}: {message}");
            assert!(
                message.contains(&file.path().display().to_string()),
                "{text:?}: {message}"
            );
        }

        let vars = env(&[("BACKORDERD__SERVICE__POLL_INTERVAL_MS", "-5")]);
        let message = load_from(None, None, vars).unwrap_err().to_string();
        assert!(message.contains("`service.poll_interval_ms`"), "{message}");
        assert!(
            message.contains("BACKORDERD__SERVICE__POLL_INTERVAL_MS"),
            "{message}"
        );
    }

    #[test]
    fn a_missing_or_malformed_file_is_named() {
        let path = Path::new("/nonexistent/backorderd-config.toml");
        let err = load_from(Some(path), None, env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::FileNotFound(_)));
        assert!(
            err.to_string()
                .contains("/nonexistent/backorderd-config.toml")
        );

        let file = toml_file("[service\n");
        let err = load_from(Some(file.path()), None, env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::File { .. }), "{err}");
        assert!(err.to_string().contains(&file.path().display().to_string()));
    }

    #[test]
    fn a_file_without_toml_extension_is_read_as_toml() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"[service]\nskus_per_batch = 7\n").unwrap();
        let settings = load_from(Some(file.path()), None, env(&[])).unwrap();
        assert_eq!(settings.service.skus_per_batch, 7);
    }

    #[test]
    fn passwords_never_appear_in_debug_or_display() {
        let url = "postgres://app:hunter2@db.internal:5432/backorders";
        let settings = load_from(None, Some(url), env(&[])).unwrap();
        assert_eq!(settings.database_url.expose(), url);
        let debug = format!("{settings:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("db.internal"), "{debug}");
        assert!(!format!("{settings:#?}").contains("hunter2"));
        assert_eq!(
            settings.database_url.to_string(),
            "postgres://app:***@db.internal:5432/backorders"
        );
    }

    #[test]
    fn database_timeouts_are_read_and_bounded() {
        let options = load_from(None, None, env(&[]))
            .unwrap()
            .database
            .open_options();
        assert_eq!(options, OpenOptions::default());
        let vars = env(&[
            ("BACKORDERD__DATABASE__CONNECT_TIMEOUT_SECS", "2"),
            ("BACKORDERD__DATABASE__STATEMENT_TIMEOUT_SECS", "0"),
            ("BACKORDERD__DATABASE__BUSY_TIMEOUT_SECS", "1"),
        ]);
        let options = load_from(None, None, vars).unwrap().database.open_options();
        assert_eq!(options.connect_timeout, Duration::from_secs(2));
        assert_eq!(options.statement_timeout, None);
        assert_eq!(options.busy_timeout, Duration::from_secs(1));
        for (key, value) in [
            ("connect_timeout_secs", "0"),
            ("connect_timeout_secs", "3601"),
            ("statement_timeout_secs", "99999999999"),
            ("busy_timeout_secs", "-1"),
            ("busy_timeout_secs", "1.5"),
        ] {
            let name = format!("BACKORDERD__DATABASE__{}", key.to_uppercase());
            let vars = vec![(name.clone(), value.to_owned())];
            let message = load_from(None, None, vars).unwrap_err().to_string();
            assert!(message.contains(&format!("`database.{key}`")), "{message}");
            assert!(message.contains(&name), "{message}");
        }
    }

    #[test]
    fn a_toml_syntax_error_names_the_line_and_key_but_never_shows_the_line() {
        for (text, at) in [
            (
                "[http]\ntoken = \"s3cret\n",
                "line 2, column 16 (key `http.token`)",
            ),
            (
                "database_url = postgres://u:s3cret@h/x\n",
                "line 1, column 16 (key `database_url`)",
            ),
            (
                "[http]\n\ntoken = \"s3cret\" s3cret\n",
                "line 3, column 18 (key `http.token`)",
            ),
            ("[service\ntoken = \"s3cret\"\n", "line 1"),
        ] {
            let file = toml_file(text);
            let message = load_from(Some(file.path()), None, env(&[]))
                .unwrap_err()
                .to_string();
            assert!(!message.contains("s3cret"), "{text:?}: {message}");
            assert!(message.contains(at), "{text:?}: {message}");
            assert!(
                message.contains(&file.path().display().to_string()),
                "{message}"
            );
        }
        // Valid TOML, a value of the wrong type: not quoted for a secret.
        let file = toml_file("[http]\ntoken = [\"s3cret\"]\n");
        let message = load_from(Some(file.path()), None, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(message.contains("`http.token`"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[test]
    fn an_unsupported_database_url_is_refused_at_load() {
        for url in [
            "mysql://u:s3cret@h/x",
            "host=h password=s3cret",
            "postgres://u:s3/cret@h/x",
            "postgres://u@h/x?passwd=s3cret",
        ] {
            let message = load_from(None, Some(url), env(&[]))
                .unwrap_err()
                .to_string();
            assert!(message.contains("`database_url`"), "{url}: {message}");
            assert!(!message.contains("s3cret"), "{url}: {message}");
        }
        let vars = env(&[("BACKORDERD__DATABASE_URL", "mysql://u:s3cret@h/x")]);
        let message = load_from(None, None, vars).unwrap_err().to_string();
        assert!(message.contains("BACKORDERD__DATABASE_URL"), "{message}");
        assert!(message.contains("`mysql`"), "{message}");
    }

    #[test]
    fn durations() {
        let service = ServiceSettings::default();
        assert_eq!(service.poll_interval(), Duration::from_millis(50));
        assert_eq!(
            service.full_recalculation_interval(),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(service.shutdown_grace(), Duration::from_secs(20));
        assert_eq!(service.heartbeat(), Duration::from_secs(5));
    }

    #[test]
    fn the_api_token_never_appears_in_debug_and_exposure_needs_it() {
        let vars = env(&[
            ("BACKORDERD__HTTP__TOKEN", "s3cret-token"),
            ("BACKORDERD__HTTP__LISTEN", "0.0.0.0:9000"),
            ("BACKORDERD__HTTP__BODY_LIMIT_BYTES", "4096"),
        ]);
        let settings = load_from(None, None, vars).unwrap();
        assert_eq!(settings.http.token.expose(), Some("s3cret-token"));
        assert_eq!(settings.http.listen.port(), 9000);
        assert_eq!(settings.http.body_limit_bytes, 4096);
        assert!(settings.http.check_exposure().is_ok());
        let debug = format!("{settings:?} {settings:#?} {}", settings.http.token);
        assert!(!debug.contains("s3cret"), "{debug}");

        let open = load_from(
            None,
            None,
            env(&[("BACKORDERD__HTTP__LISTEN", "0.0.0.0:9000")]),
        )
        .unwrap();
        let message = open.http.check_exposure().unwrap_err().to_string();
        assert!(message.contains("without a token"), "{message}");
        assert!(Settings::default().http.check_exposure().is_ok());

        let bad = env(&[("BACKORDERD__HTTP__LISTEN", "localhost")]);
        let message = load_from(None, None, bad).unwrap_err().to_string();
        assert!(message.contains("`http.listen`"), "{message}");
        let zero = env(&[("BACKORDERD__HTTP__BODY_LIMIT_BYTES", "0")]);
        let message = load_from(None, None, zero).unwrap_err().to_string();
        assert!(message.contains("`http.body_limit_bytes`"), "{message}");
    }
}
