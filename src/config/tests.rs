use super::layers::DEFAULTS;
use super::*;
use std::io::Write;
use std::path::Path;

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// Everything settings hold, secrets included, to compare two.
fn all(settings: &Settings) -> (String, String, String) {
    (
        serde_json::to_string(settings).unwrap(),
        settings.database_url.expose_secret().to_owned(),
        settings.http.token.expose_secret().to_owned(),
    )
}

fn toml_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

#[test]
fn defaults_load_with_no_file_and_no_env() {
    let settings = load_from(None, None, env(&[])).unwrap();
    assert_eq!(all(&settings), all(&Settings::default()));
    assert_eq!(
        settings.database_url.expose_secret(),
        "sqlite://backorderd.db"
    );
    assert!(settings.service.recalculate_on_status_change);
    assert!(!settings.service.defer_new_orders);
    assert_eq!(
        settings.service.full_recalculation_interval,
        Some(Duration::from_secs(3600))
    );
    assert_eq!(settings.service.poll_interval, Duration::from_millis(50));
    assert_eq!(settings.service.shutdown_grace, Duration::from_secs(20));
    assert_eq!(settings.service.skus_per_batch.get(), 2000);
    assert_eq!(settings.service.heartbeat, Duration::from_secs(5));
    assert_eq!(settings.log.format, LogFormat::Text);
    assert_eq!(settings.log.filter, "info");
}

/// Every key with its default as `check-config` shows it (strings
/// unquoted), from the embedded file.
fn defaults() -> Vec<(String, String)> {
    fn flatten(prefix: &str, value: serde_json::Value, out: &mut Vec<(String, String)>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    flatten(&format!("{prefix}{key}."), value, out);
                }
            }
            serde_json::Value::String(text) => {
                out.push((prefix.trim_end_matches('.').to_owned(), text))
            }
            other => out.push((prefix.trim_end_matches('.').to_owned(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    flatten(
        "",
        serde_json::to_value(Settings::default()).unwrap(),
        &mut out,
    );
    out
}

fn env_name(key: &str) -> String {
    format!("BACKORDERD__{}", key.replace('.', "__").to_uppercase())
}

#[test]
fn the_embedded_file_sets_every_key_and_names_its_variable() {
    // Deserializing the embedded file alone fails if a key is missing.
    let config = config::Config::builder()
        .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
        .build()
        .unwrap();
    let settings: Settings = config.try_deserialize().unwrap();
    assert_eq!(all(&settings), all(&Settings::default()));
    for (key, _) in defaults() {
        let name = env_name(&key);
        assert!(
            DEFAULTS.contains(&name),
            "default.toml does not mention {name}"
        );
    }
}

#[test]
fn the_readme_table_says_every_key_its_default_and_variable() {
    let readme = include_str!("../../README.md");
    let table = readme
        .split("| key | default | env | meaning |\n|---|---|---|---|\n")
        .nth(1)
        .expect("the README has the configuration table");
    let rows: Vec<(String, String, String)> = table
        .lines()
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let bare = |cell: &str| cell.trim_matches('`').to_owned();
            let default = match cells[2] {
                "empty (none)" => String::new(),
                cell => bare(cell),
            };
            (bare(cells[1]), default, bare(cells[3]))
        })
        .collect();
    let keys = defaults();
    for (key, default) in &keys {
        let row = rows.iter().find(|(k, ..)| k == key);
        let Some((_, shown, env)) = row else {
            panic!("the README has no row for `{key}`");
        };
        assert_eq!(shown, default, "README default of `{key}`");
        assert_eq!(env, &env_name(key), "README variable of `{key}`");
    }
    assert_eq!(
        rows.len(),
        keys.len(),
        "the README has rows for unknown keys"
    );
}

#[test]
fn every_whole_number_refuses_a_fraction_a_negative_and_text() {
    let numeric = defaults()
        .into_iter()
        .filter(|(_, default)| default.parse::<u64>().is_ok());
    let mut count = 0;
    for (key, _) in numeric {
        count += 1;
        let (section, name) = key.split_once('.').unwrap();
        for value in ["1.5", "-1", "\"many\""] {
            let file = toml_file(&format!("[{section}]\n{name} = {value}\n"));
            let message = load_from(Some(file.path()), None, env(&[]))
                .unwrap_err()
                .to_string();
            assert!(message.contains(&format!("`{key}`")), "{value}: {message}");
        }
        for value in ["1.5", "-1", "many", "99999999999999999999999"] {
            let vars = env(&[(&env_name(&key), value)]);
            let message = load_from(None, None, vars).unwrap_err().to_string();
            assert!(message.contains(&env_name(&key)), "{value}: {message}");
        }
    }
    assert!(count > 10, "{count} numeric keys");
}

#[test]
fn a_secret_that_is_no_text_is_not_quoted() {
    for text in [
        "[http]\ntoken = { a = \"s3cret\" }\n",
        "database_url = [\"postgres://u:s3cret@h/x\"]\n",
    ] {
        let file = toml_file(text);
        let message = load_from(Some(file.path()), None, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(!message.contains("s3cret"), "{message}");
        assert!(message.contains("not shown"), "{message}");
    }
}

#[test]
fn a_file_overrides_defaults() {
    let file = toml_file(
        "[service]\npoll_interval_ms = 10\ndefer_new_orders = true\n\
         full_recalculation_interval_secs = 0\n[log]\nformat = \"json\"\n",
    );
    let settings = load_from(Some(file.path()), None, env(&[])).unwrap();
    assert_eq!(settings.service.poll_interval, Duration::from_millis(10));
    assert!(settings.service.defer_new_orders);
    assert_eq!(settings.service.full_recalculation_interval, None);
    assert_eq!(settings.log.format, LogFormat::Json);
    // Untouched keys keep their defaults.
    assert_eq!(settings.service.skus_per_batch.get(), 2000);
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
    assert_eq!(settings.service.poll_interval, Duration::from_millis(25));
    assert_eq!(settings.service.heartbeat, Duration::from_secs(7));
    assert!(!settings.service.recalculate_on_status_change);
    assert_eq!(settings.log.format, LogFormat::Json);
    assert_eq!(settings.log.filter, "warn,backorderd=debug");
    assert_eq!(
        settings.database_url.expose_secret(),
        "sqlite://from-env.db"
    );

    let settings = load_from(Some(file.path()), Some("sqlite://flag.db"), vars).unwrap();
    assert_eq!(settings.database_url.expose_secret(), "sqlite://flag.db");
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
    assert_eq!(
        all(&load_from(None, None, vars).unwrap()),
        all(&Settings::default())
    );
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
    assert_eq!(settings.service.skus_per_batch.get(), 7);
}

#[test]
fn passwords_never_appear_in_debug_or_serialized() {
    let url = "postgres://app:hunter2@db.internal:5432/backorders";
    let settings = load_from(None, Some(url), env(&[])).unwrap();
    assert_eq!(settings.database_url.expose_secret(), url);
    let debug = format!("{settings:?} {settings:#?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    let shown = serde_json::to_string(&settings).unwrap();
    assert!(
        shown.contains("\"postgres://app:***@db.internal:5432/backorders\""),
        "{shown}"
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
fn the_api_token_never_appears_in_debug_and_exposure_needs_it() {
    let vars = env(&[
        ("BACKORDERD__HTTP__TOKEN", "s3cret-token"),
        ("BACKORDERD__HTTP__LISTEN", "0.0.0.0:9000"),
        ("BACKORDERD__HTTP__BODY_LIMIT_BYTES", "4096"),
    ]);
    let settings = load_from(None, None, vars).unwrap();
    assert_eq!(settings.http.token(), Some("s3cret-token"));
    assert_eq!(settings.http.listen.port(), 9000);
    assert_eq!(settings.http.body_limit_bytes.get(), 4096);
    assert!(settings.http.check_exposure().is_ok());
    let debug = format!(
        "{settings:?} {settings:#?} {}",
        serde_json::to_string(&settings).unwrap()
    );
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
