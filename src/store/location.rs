//! Which database a `database_url` names, and how it may be shown: the one
//! place that reads the URL. `config` validates with it, `check-config`
//! inspects the SQLite file it names, and [`super::AnyStore::open`] connects
//! with it, so the three can never disagree.
//!
//! The forms read (schemes in any case):
//! - `postgres://…` or `postgresql://…`: PostgreSQL;
//! - `sqlite://PATH` or `sqlite:PATH`: SQLite;
//! - a plain path with no scheme and no `=`: SQLite.
//!
//! Anything else is refused before any file is created: another scheme
//! (`mysql://`, `file:`, …), and a libpq `key=value` string. No message
//! built here shows a password: a URL is shown by [`redact`] only.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

/// The database a URL names, with the options to open it.
#[derive(Debug)]
pub enum Location {
    Sqlite(SqliteConnectOptions),
    Postgres(PgConnectOptions),
}

/// Why a database URL is refused. The messages never hold a password.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("the database URL is empty")]
    Empty,
    #[error(
        "unsupported database URL scheme `{scheme}`: use sqlite://PATH or \
         postgres://USER@HOST/DATABASE{}",
        if *.maybe_file { " (a file whose name has a colon: write sqlite://NAME or ./NAME)" } else { "" }
    )]
    UnsupportedScheme { scheme: String, maybe_file: bool },
    #[error(
        "a key=value connection string is not supported (not shown: it may hold a password): \
         use postgres://USER:PASSWORD@HOST:PORT/DATABASE, or sqlite://PATH for a file \
         whose name has a `=`"
    )]
    KeyValueString,
    #[error("{shown} is not a valid PostgreSQL URL: {problem}")]
    InvalidPostgres { shown: String, problem: String },
    #[error("{shown} is not a valid SQLite URL: {problem}")]
    InvalidSqlite { shown: String, problem: String },
}

/// How the text of a `database_url` reads, before any parsing.
enum Form<'u> {
    Postgres,
    Sqlite,
    Other(&'u str),
    KeyValue,
    Path,
}

fn form(url: &str) -> Form<'_> {
    match scheme(url) {
        Some(s) if s.eq_ignore_ascii_case("postgres") || s.eq_ignore_ascii_case("postgresql") => {
            Form::Postgres
        }
        Some(s) if s.eq_ignore_ascii_case("sqlite") => Form::Sqlite,
        Some(s) => Form::Other(s),
        // libpq's `host=db user=app password=…`, or a single `dbname=x`.
        // `://` after something that is no scheme is a mistyped URL, not a
        // file name; what stands before it is not shown (it may hold a
        // password).
        None if url.contains("://") => Form::Other("(not a valid scheme)"),
        None if url.contains('=') => Form::KeyValue,
        None => Form::Path,
    }
}

/// The URL's scheme as RFC 3986 defines it (a letter, then letters, digits,
/// `+`, `-` or `.`, up to the first `:`); `None` for a plain path.
fn scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// Reads `url`: which backend, with what options. Touches neither the
/// network nor the file system.
pub fn locate(url: &str) -> Result<Location, UrlError> {
    if url.trim().is_empty() {
        return Err(UrlError::Empty);
    }
    match form(url) {
        Form::Postgres => postgres(url).map(Location::Postgres),
        Form::Sqlite => {
            // sqlx strips only a lowercase scheme.
            let rest = &url["sqlite:".len()..];
            sqlite(&format!("sqlite:{rest}"), url).map(Location::Sqlite)
        }
        Form::Path => sqlite(url, url).map(Location::Sqlite),
        Form::Other(scheme) => Err(UrlError::UnsupportedScheme {
            scheme: scheme.to_owned(),
            // `backup:1.db` reads as the scheme `backup`.
            maybe_file: !url.contains("://"),
        }),
        Form::KeyValue => Err(UrlError::KeyValueString),
    }
}

fn sqlite(url: &str, given: &str) -> Result<SqliteConnectOptions, UrlError> {
    let options = SqliteConnectOptions::from_str(url).map_err(|err| UrlError::InvalidSqlite {
        shown: redact(given),
        problem: err.to_string(),
    })?;
    if options.get_filename().as_os_str().is_empty() {
        return Err(UrlError::InvalidSqlite {
            shown: redact(given),
            problem: "it names no file".to_owned(),
        });
    }
    Ok(options)
}

/// Connection parameters sqlx reads from a PostgreSQL URL's query. sqlx
/// logs any other parameter with its value, which may be a secret (a
/// mistyped `passwd=`): those are refused first, by name only.
const PG_PARAMETERS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

fn postgres(url: &str) -> Result<PgConnectOptions, UrlError> {
    let invalid = |problem: String| UrlError::InvalidPostgres {
        shown: redact(url),
        problem,
    };
    let parsed = url::Url::parse(url).map_err(|err| {
        let hint = if url.contains('@') {
            " (a user name or password with / ? # @ : or % must be percent-encoded, e.g. / as %2F)"
        } else {
            ""
        };
        invalid(format!("{err}{hint}"))
    })?;
    if parsed.fragment().is_some() {
        return Err(invalid(
            "it holds a `#` (a user name or password with / ? # @ : or % must be percent-encoded, e.g. # as %23)"
                .to_owned(),
        ));
    }
    for (key, _) in parsed.query_pairs() {
        let known =
            PG_PARAMETERS.contains(&&*key) || (key.starts_with("options[") && key.ends_with(']'));
        if !known {
            return Err(invalid(format!("unknown connection parameter `{key}`")));
        }
    }
    // The parsed URL: its scheme is lowercase, which sqlx needs. sqlx's
    // message quotes the value it refused (`unknown value "…" for
    // ssl_mode`), which may be a mistyped secret: values are cut out.
    PgConnectOptions::from_str(parsed.as_str()).map_err(|err| {
        let mut problem = err.to_string();
        let values = parsed.query_pairs().map(|(_, value)| value.into_owned());
        let user = [
            parsed.username().to_owned(),
            parsed.password().unwrap_or("").to_owned(),
        ];
        for value in values.chain(user).filter(|v| !v.is_empty()) {
            problem = problem.replace(&value, "…");
        }
        invalid(problem)
    })
}

/// `url` as messages, logs and `check-config` may show it: a password, in
/// the user part or in a query parameter, is replaced by `***`; a URL that
/// cannot be read safely shows its scheme only.
pub fn redact(url: &str) -> String {
    match form(url) {
        Form::Postgres => match url::Url::parse(url) {
            // Without `//` there is no user part to mask, yet the rest may
            // still be a mistyped `user:password@host`: show none of it.
            Ok(parsed) if !parsed.has_host() => format!("{}://…", parsed.scheme()),
            // An `@` past the host means a mistyped URL whose real password
            // may sit in the path or the query: show none of it either.
            // A `#` starts a fragment, which a database URL never has: an
            // unencoded `#` in a user name or password hides the rest there.
            // A libpq string pasted into the database name
            // (`/app host=db password=…`) keeps its password in the path.
            Ok(parsed)
                if parsed.path().contains('@')
                    || parsed.query().is_some_and(|q| q.contains('@'))
                    || parsed.fragment().is_some()
                    || names_a_secret(parsed.path()) =>
            {
                format!("{}://…", parsed.scheme())
            }
            Ok(mut parsed) => {
                if parsed.password().is_some() {
                    let _ = parsed.set_password(Some("***"));
                }
                redact_query(parsed.as_str())
            }
            // Where a password ends in a URL that does not parse is a guess.
            Err(_) => format!("{}://…", scheme(url).unwrap_or("postgres")),
        },
        Form::Sqlite | Form::Path => redact_query(url),
        Form::Other(scheme) => format!("{scheme}:…"),
        Form::KeyValue => "(a key=value string)".to_owned(),
    }
}

/// Replaces the value of every query parameter whose name says it is
/// secret (`password`, `sslpassword`, `token`, `secret`, `…key`), and of
/// every parameter whose value holds such a `name=` itself: a libpq string
/// pasted into a URL (`?host=db password=…`) keeps its password there.
fn redact_query(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if is_secret_name(name) || names_a_secret(value) => {
                format!("{name}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

/// Whether a (percent-encoded) parameter value holds `secret_name=`.
fn names_a_secret(value: &str) -> bool {
    let decoded: String = url::form_urlencoded::parse(format!("v={value}").as_bytes())
        .map(|(_, v)| v.into_owned())
        .collect();
    decoded
        .split(|c: char| c.is_whitespace() || c == ';' || c == ',')
        .filter_map(|word| word.split_once('=').map(|(name, _)| name))
        .any(is_secret_name)
}

/// Whether a setting or parameter of this name holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["token", "pass", "secret"]
        .iter()
        .any(|word| name.contains(word))
        || name == "key"
        || name.ends_with("_key")
        || name.ends_with("-key")
        || name.ends_with("sslkey")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "hunter2";

    fn refused(url: &str) -> String {
        let message = locate(url).unwrap_err().to_string();
        assert!(!message.contains(SECRET), "{url}: {message}");
        message
    }

    #[test]
    fn each_form_names_one_backend() {
        for url in [
            "postgres://app:pw@db/x",
            "postgresql://app@db:5433/x",
            "Postgres://app@db/x",
            "POSTGRESQL://app@db/x",
            "postgres:///x?host=/run/postgresql",
        ] {
            assert!(matches!(locate(url), Ok(Location::Postgres(_))), "{url}");
        }
        for url in [
            "sqlite://backorderd.db",
            "sqlite:backorderd.db",
            "SQLite:///var/lib/b.db",
            "sqlite::memory:",
            "backorderd.db",
            "/var/lib/backorderd/b.db",
            "./my:db",
            "data/2024:01.db",
            "a file.db",
        ] {
            assert!(matches!(locate(url), Ok(Location::Sqlite(_))), "{url}");
        }
        let Ok(Location::Postgres(options)) = locate("Postgres://app@db.internal:6543/x") else {
            panic!()
        };
        assert_eq!(options.get_host(), "db.internal");
        assert_eq!(options.get_port(), 6543);
    }

    #[test]
    fn other_forms_are_refused_without_showing_a_password() {
        for (url, scheme) in [
            ("mysql://app:hunter2@db/x", "`mysql`"),
            ("MySQL://app:hunter2@db/x", "`MySQL`"),
            ("file:hunter2.db", "`file`"),
            ("redis://:hunter2@cache", "`redis`"),
        ] {
            let message = refused(url);
            assert!(message.contains(scheme), "{message}");
        }
        for url in [
            "host=db user=app password=hunter2 dbname=x",
            "dbname=x password=hunter2",
        ] {
            assert!(refused(url).contains("key=value"), "{url}");
        }
        assert!(matches!(locate("  "), Err(UrlError::Empty)));
        assert!(refused("postgres://app:hun/ter2@db/x").contains("percent-encoded"));
        assert!(refused("postgres://app@db/x?passwd=hunter2").contains("`passwd`"));
        assert!(refused("postgres://app@db:notaport/x").contains("postgres://"));
        assert!(refused("sqlite://x.db?key=hunter2").contains("`key`"));
        // sqlx quotes a refused value; a mistyped secret must not show.
        assert!(refused("postgres://app@db/x?sslmode=dis:hunter2@able").contains("ssl"));
        assert!(refused("postgres://a#pp:hunter2@db/x").contains("%23"));
    }

    #[test]
    fn passwords_never_appear_in_redacted_urls() {
        for (url, shown) in [
            (
                "postgres://app:s3cr:et@db:5432/x",
                "postgres://app:***@db:5432/x",
            ),
            ("postgres://app@db/x", "postgres://app@db/x"),
            ("Postgres://app:pw@db/x", "postgres://app:***@db/x"),
            ("sqlite://backorderd.db", "sqlite://backorderd.db"),
            ("backorderd.db", "backorderd.db"),
            ("postgres://u:p@h/db?x=a@b", "postgres://…"),
            ("postgres://h:/x//u:hunter2@db/x", "postgres://…"),
            ("postgres:u:hunter2@db/x", "postgres://…"),
            ("postgres://a#pp:hunter2@db/x", "postgres://…"),
            (
                "postgres://app@db/x?password=hunter2&sslmode=require",
                "postgres://app@db/x?password=***&sslmode=require",
            ),
            (
                "postgres://app@db/x?sslpassword=hunter2",
                "postgres://app@db/x?sslpassword=***",
            ),
            ("Postgres://app:hun/ter2@db/x", "Postgres://…"),
            ("mysql://app:hunter2@db/x", "mysql:…"),
            ("p*stgres://app:hunter2@db/x", "(not a valid scheme):…"),
            ("host=db password=hunter2", "(a key=value string)"),
            (
                "postgres://app@db/x?host=db%20password=hunter2=x&sslmode=disable",
                "postgres://app@db/x?host=***&sslmode=disable",
            ),
            (
                "postgres://app@db/x?options=-c%20statement_timeout=5",
                "postgres://app@db/x?options=-c%20statement_timeout=5",
            ),
            (
                "postgres://app@db/x host=db password=hunter2",
                "postgres://…",
            ),
        ] {
            assert_eq!(redact(url), shown, "{url}");
        }
        assert!(!redact("postgres://app:p@ss@db/x").contains("ss@"));
    }
}
