//! `check-config`: loads the configuration as `serve` would (every layer),
//! checks it and the database location without opening the database, and
//! prints the effective configuration with secrets redacted. The systemd
//! unit runs it as `ExecStartPre`, so a bad key is named in the journal
//! before the daemon starts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use config::{Value, ValueKind};

use crate::config::{ConfigError, Loaded, is_secret_key};
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
            ConfigError::Other(message) => loaded.invalid("http.listen", message),
            other => other,
        })
}

/// What the database check found, for the closing message.
fn check_database(loaded: &Loaded) -> Result<String, ConfigError> {
    const KEY: &str = "database_url";
    let url = loaded.settings.database_url.expose();
    let shown = redact_url(url);
    // Read as every command reads it (the loader has refused other forms).
    let options = match locate(url).map_err(|err| loaded.invalid(KEY, err.to_string()))? {
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
    let bad = |problem: String| loaded.invalid(KEY, format!("{shown}: {problem}"));
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

/// The effective configuration as TOML, each value typed as its default
/// (environment variables arrive as text), secrets replaced by `***` and
/// passwords cut out of URLs, each key set outside the defaults followed by
/// where it was set.
fn render(loaded: &Loaded) -> String {
    let mut out = String::from(
        "# backorderd: the effective configuration, secrets redacted.\n\
         # Layers, lowest first: built-in defaults, --config FILE, BACKORDERD__SECTION__KEY\n\
         # environment variables, --database-url / DATABASE_URL.\n",
    );
    render_table(loaded, &loaded.tree, "", &mut out);
    out
}

fn render_table(
    loaded: &Loaded,
    table: &config::Map<String, Value>,
    prefix: &str,
    out: &mut String,
) {
    let mut keys: Vec<&String> = table.keys().collect();
    keys.sort();
    let is_table = |key: &String| matches!(table[key].kind, ValueKind::Table(_));
    for key in keys.iter().copied().filter(|k| !is_table(k)) {
        let dotted = format!("{prefix}{key}");
        let value = render_value(&dotted, &table[key]);
        let unset = is_secret_key(&dotted) && value == "\"\"";
        let _ = match loaded.origin(&dotted) {
            _ if unset => writeln!(out, "{key} = {value}  # not set"),
            Some(origin) => writeln!(out, "{key} = {value}  # {origin}"),
            None => writeln!(out, "{key} = {value}"),
        };
    }
    for key in keys.into_iter().filter(|k| is_table(k)) {
        let dotted = format!("{prefix}{key}");
        if let ValueKind::Table(inner) = &table[key].kind {
            let _ = writeln!(out, "\n[{dotted}]");
            render_table(loaded, inner, &format!("{dotted}."), out);
        }
    }
}

fn render_value(key: &str, value: &Value) -> String {
    let quoted = |text: &str| serde_json::to_string(text).unwrap_or_default();
    match &value.kind {
        ValueKind::String(text) if key.ends_with("url") => quoted(&redact_url(text)),
        // Unset shows as unset: `""`, as in the defaults.
        ValueKind::String(text) if is_secret_key(key) && text.is_empty() => quoted(""),
        ValueKind::Nil => quoted(""),
        _ if is_secret_key(key) => quoted("***"),
        ValueKind::String(text) => {
            // Set by an environment variable: show it as the type the key has.
            let typed = matches!(
                Loaded::default_at(key).map(|d| d.kind),
                Some(
                    ValueKind::Boolean(_)
                        | ValueKind::I64(_)
                        | ValueKind::U64(_)
                        | ValueKind::I128(_)
                        | ValueKind::U128(_)
                        | ValueKind::Float(_)
                )
            );
            let bare = typed
                && (text.parse::<f64>().is_ok()
                    || text.eq_ignore_ascii_case("true")
                    || text.eq_ignore_ascii_case("false"));
            if bare {
                text.to_ascii_lowercase()
            } else {
                quoted(text)
            }
        }
        ValueKind::Boolean(v) => v.to_string(),
        ValueKind::I64(v) => v.to_string(),
        ValueKind::I128(v) => v.to_string(),
        ValueKind::U64(v) => v.to_string(),
        ValueKind::U128(v) => v.to_string(),
        ValueKind::Float(v) => v.to_string(),
        ValueKind::Array(items) => {
            let items: Vec<String> = items.iter().map(|item| render_value(key, item)).collect();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Table(_) => quoted("(table)"),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::is_secret_key as is_secret;

    #[test]
    fn secret_keys() {
        for key in [
            "http.token",
            "auth.api_key",
            "db.password",
            "x.client_secret",
            "key",
        ] {
            assert!(is_secret(key), "{key}");
        }
        for key in ["http.listen", "service.skus_per_batch", "log.keyword"] {
            assert!(!is_secret(key), "{key}");
        }
    }
}
