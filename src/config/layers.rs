//! The layers merged (the `config` crate keeps each value's origin), read
//! into [`Settings`], and every refusal turned into an error naming the key
//! and where it was set.

use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat, Source, Value, ValueKind};

use super::{ConfigError, Settings};

/// The embedded lowest layer.
pub(super) const DEFAULTS: &str = include_str!("../../config/default.toml");
/// How the `config` crate names the origin of environment values.
const ENV_ORIGIN: &str = "the environment";

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
    load_from_with_origins(file, database_url, env).map(|loaded| loaded.settings)
}

/// [`load`], keeping where each value was set: what `check-config` shows.
pub fn load_with_origins(
    file: Option<&Path>,
    database_url: Option<&str>,
) -> Result<Loaded, ConfigError> {
    load_from_with_origins(file, database_url, process_env()?)
}

/// Settings with where each value was set.
pub struct Loaded {
    pub settings: Settings,
    pub origins: Origins,
}

/// Where each value was set: the merged tree of every layer, each value
/// with its origin.
pub struct Origins {
    tree: config::Map<String, Value>,
    file: Option<PathBuf>,
    database_url_given: bool,
}

impl Origins {
    /// Where `key` (dotted) was set, as the errors name it: a file, an
    /// environment variable, or `--database-url` / `DATABASE_URL`; `None`
    /// for a built-in default.
    pub fn of(&self, key: &str) -> Option<String> {
        if key == "database_url" && self.database_url_given {
            return Some("--database-url / DATABASE_URL".to_owned());
        }
        match value_at(&self.tree, key)?.origin()? {
            ENV_ORIGIN => Some(format!(
                "environment variable {}",
                env_name(&key.replace('.', "__"))
            )),
            _ => self.file.as_ref().map(|path| path.display().to_string()),
        }
    }

    /// The error for a bad value at `key`, naming where it was set.
    pub fn invalid(&self, key: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_owned(),
            origin: self.of(key),
            message,
        }
    }
}

/// `BACKORDERD__` and `rest`, upper case: how settings are named in the
/// environment.
fn env_name(rest: &str) -> String {
    format!("BACKORDERD__{rest}").to_uppercase()
}

/// [`load_from`], keeping where each value was set.
pub fn load_from_with_origins(
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
    let env: config::Map<String, String> = env
        .into_iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case(&env_name("")))
        .collect();
    builder = builder.add_source(
        Environment::with_prefix("BACKORDERD")
            .separator("__")
            .ignore_empty(true)
            .source(Some(env)),
    );
    if let Some(url) = database_url {
        builder = builder
            .set_override("database_url", url)
            .map_err(|err| ConfigError::Other(err.to_string()))?;
    }
    let config = builder.build().map_err(|err| match (err, file) {
        (config::ConfigError::FileParse { cause, .. }, Some(path)) => ConfigError::File {
            path: path.to_owned(),
            message: super::syntax::describe(path, cause.as_ref()),
        },
        // Other errors of the builder carry no value of ours.
        (err, _) => ConfigError::Other(err.to_string()),
    })?;
    let origins = Origins {
        tree: config
            .collect()
            .map_err(|err| ConfigError::Other(err.to_string()))?,
        file: file.map(Path::to_owned),
        database_url_given: database_url.is_some(),
    };
    let settings = serde_path_to_error::deserialize(config)
        .map_err(|err| origins.invalid(&key(err.path()), without_origin(err.inner())))?;
    super::delivery::check_templates(&settings, &origins)?;
    super::purchasing::check(&settings, &origins)?;
    Ok(Loaded { settings, origins })
}

/// The process environment's `BACKORDERD__*` variables. Others are skipped
/// whatever they contain; ours must be UTF-8.
fn process_env() -> Result<Vec<(String, String)>, ConfigError> {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value)))
        .filter(|(name, _)| name.to_uppercase().starts_with(&env_name("")))
        .map(|(name, value)| match value.into_string() {
            Ok(value) => Ok((name, value)),
            Err(_) => Err(ConfigError::NotUnicode { name }),
        })
        .collect()
}

/// The merged value at `key` (dotted), with its origin.
fn value_at<'t>(tree: &'t config::Map<String, Value>, key: &str) -> Option<&'t Value> {
    let mut segments = key.split('.');
    let (first, index) = indexed(segments.next()?);
    let mut value = element(tree.get(first)?, index)?;
    for segment in segments {
        let ValueKind::Table(table) = &value.kind else {
            return None;
        };
        let (name, index) = indexed(segment);
        value = element(table.get(name)?, index)?;
    }
    Some(value)
}

/// `webhooks[0]` as (`webhooks`, Some(0)), as serde_path_to_error names
/// an array's item.
fn indexed(segment: &str) -> (&str, Option<usize>) {
    match segment.strip_suffix(']').and_then(|s| s.split_once('[')) {
        Some((name, index)) => (name, index.parse().ok()),
        None => (segment, None),
    }
}

fn element(value: &Value, index: Option<usize>) -> Option<&Value> {
    match (index, &value.kind) {
        (None, _) => Some(value),
        (Some(i), ValueKind::Array(items)) => items.get(i),
        (Some(_), _) => None,
    }
}

/// The message of a deserialization error without the "for key ... in ..."
/// that the `config` crate appends (the key and origin are named apart).
fn without_origin(err: &config::ConfigError) -> String {
    match err {
        config::ConfigError::Type {
            unexpected,
            expected,
            ..
        } => format!("invalid type: {unexpected}, expected {expected}"),
        config::ConfigError::At { error, .. } => without_origin(error),
        other => other.to_string(),
    }
}

/// The path as `section.key` (`.` is the top level).
fn key(path: &serde_path_to_error::Path) -> String {
    path.to_string()
}
