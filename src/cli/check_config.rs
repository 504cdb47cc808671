//! `check-config`: loads the configuration as `serve` would (every layer),
//! checks it and the database location without opening the database, and
//! prints the effective configuration with secrets redacted. The systemd
//! unit runs it as `ExecStartPre`, so a bad key is named in the journal
//! before the daemon starts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;
use serde_json::Value;

use crate::config::{ConfigError, Loaded};
use crate::store::{Location, locate, redact_url};

pub fn run(file: Option<&Path>, database_url: Option<&str>) -> anyhow::Result<()> {
    let loaded = crate::config::load_with_origins(file, database_url)?;
    check_exposure(&loaded)?;
    let database = check_database(&loaded)?;
    print!("{}", render(&loaded));
    eprintln!("configuration is valid; database: {database}");
    Ok(())
}

/// `serve` refuses to expose the API beyond this machine without a token
/// (at the configured address; `serve --listen` is checked when it starts).
fn check_exposure(loaded: &Loaded) -> Result<(), ConfigError> {
    loaded
        .settings
        .http
        .check_exposure()
        .map_err(|err| match err {
            ConfigError::Other(message) => loaded.origins.invalid("http.listen", message),
            other => other,
        })
}

/// What the database check found, for the closing message.
fn check_database(loaded: &Loaded) -> Result<String, ConfigError> {
    const KEY: &str = "database_url";
    let url = loaded.settings.database_url.expose_secret();
    let shown = redact_url(url);
    // Read as every command reads it (the loader has refused other forms).
    let options = match locate(url).map_err(|err| loaded.origins.invalid(KEY, err.to_string()))? {
        // Parsed, not contacted: the server may legitimately start later.
        Location::Postgres(_) => return Ok(format!("{shown} (PostgreSQL; not contacted)")),
        Location::Sqlite(options) => options,
    };
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(format!("{shown} (in memory: nothing is kept)"));
    }
    let path = options.get_filename().to_owned();
    let directory = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let bad = |problem: String| loaded.origins.invalid(KEY, format!("{shown}: {problem}"));
    if !directory.is_dir() {
        let what = if directory.exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        return Err(bad(format!("the directory {} {what}", directory.display())));
    }
    // SQLite creates the file and its -wal and -shm files beside it: the
    // directory must be writable, not only the file.
    let probe = directory.join(format!(".backorderd-check-config-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|err| {
            bad(format!(
                "the directory {} is not writable: {err}",
                directory.display()
            ))
        })?;
    let _ = std::fs::remove_file(&probe);
    if path.is_dir() {
        return Err(bad(format!("{} is a directory", path.display())));
    }
    if path.exists() {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|err| bad(format!("cannot open {} for writing: {err}", path.display())))?;
        Ok(format!("{shown} (the file exists and is writable)"))
    } else {
        Ok(format!(
            "{shown} (created at the first start in {})",
            directory.display()
        ))
    }
}

/// The effective configuration as TOML: the settings as the daemon reads
/// them (their `Serialize` redacts the secrets), each key set outside the
/// defaults followed by where it was set.
fn render(loaded: &Loaded) -> String {
    let mut out = String::from(
        "# backorderd: the effective configuration, secrets redacted.\n\
         # Layers, lowest first: built-in defaults, --config FILE, BACKORDERD__SECTION__KEY\n\
         # environment variables, --database-url / DATABASE_URL.\n",
    );
    let Ok(Value::Object(top)) = serde_json::to_value(&loaded.settings) else {
        unreachable!("the settings are a table")
    };
    let is_table_array = |value: &Value| {
        value
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_object))
    };
    let (tables, keys): (Vec<_>, Vec<_>) = top
        .iter()
        .partition(|(_, value)| value.is_object() || is_table_array(value));
    render_keys(loaded, "", keys, &mut out);
    for (section, table) in tables {
        match table {
            Value::Object(table) => {
                let _ = writeln!(out, "\n[{section}]");
                render_keys(
                    loaded,
                    &format!("{section}."),
                    table.iter().collect(),
                    &mut out,
                );
            }
            // `[[webhooks]]`: one table per item.
            Value::Array(items) => {
                for item in items.iter().filter_map(Value::as_object) {
                    let _ = writeln!(out, "\n[[{section}]]");
                    render_keys(
                        loaded,
                        &format!("{section}[]."),
                        item.iter().collect(),
                        &mut out,
                    );
                }
            }
            _ => {}
        }
    }
    out
}

fn render_keys(loaded: &Loaded, prefix: &str, keys: Vec<(&String, &Value)>, out: &mut String) {
    for (key, value) in keys {
        // A JSON scalar is written as TOML writes it.
        let _ = match loaded.origins.of(&format!("{prefix}{key}")) {
            _ if value.as_str() == Some("") => writeln!(out, "{key} = \"\"  # not set"),
            Some(origin) => writeln!(out, "{key} = {value}  # {origin}"),
            None => writeln!(out, "{key} = {value}"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(file: &str, env: &[(&str, &str)]) -> (String, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.toml");
        std::fs::write(&path, file).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let loaded = crate::config::load_from_with_origins(Some(&path), None, env).unwrap();
        (render(&loaded), dir)
    }

    #[test]
    fn the_rendering_is_typed_redacted_and_says_where_each_value_was_set() {
        let (out, dir) = loaded(
            "database_url = \"postgres://app:hunter2@db/x\"\n[http]\ntoken = \"s3cret\"\n",
            &[
                ("BACKORDERD__SERVICE__POLL_INTERVAL_MS", "25"),
                ("BACKORDERD__SERVICE__DEFER_NEW_ORDERS", "TRUE"),
                ("BACKORDERD__LOG__FORMAT", "JSON"),
            ],
        );
        let file = dir.path().join("b.toml").display().to_string();
        for line in [
            format!("database_url = \"postgres://app:***@db/x\"  # {file}"),
            format!("token = \"***\"  # {file}"),
            "poll_interval_ms = 25  # environment variable BACKORDERD__SERVICE__POLL_INTERVAL_MS"
                .to_owned(),
            "defer_new_orders = true  # environment variable BACKORDERD__SERVICE__DEFER_NEW_ORDERS"
                .to_owned(),
            "format = \"json\"  # environment variable BACKORDERD__LOG__FORMAT".to_owned(),
            "full_recalculation_interval_secs = 3600".to_owned(),
            "[service]".to_owned(),
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing:\n{out}");
        }
        assert!(!out.contains("hunter2") && !out.contains("s3cret"), "{out}");
        let (out, _dir) = loaded("", &[]);
        assert!(out.contains("\ntoken = \"\"  # not set\n"), "{out}");
    }
}
