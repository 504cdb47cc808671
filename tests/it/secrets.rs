//! Secrets never reach any output, database URLs the daemon does not
//! support are refused before anything is created, and a PostgreSQL server
//! that never answers fails a command within the configured timeout.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::daemon_support::Daemon;
use crate::support::{Run, TempDatabase};

/// Runs `backorderd ARGS` in `dir` (so that a stray file would land there).
fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_backorderd"))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("the backorderd binary runs");
    Run {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn assert_secret_absent(run: &Run, secret: &str, what: &str) {
    for (name, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(
            !text.contains(secret),
            "{what}: {name} shows the secret:\n{text}"
        );
    }
    assert!(!run.stderr.contains("panicked"), "{what}: {}", run.stderr);
}

fn assert_empty_dir(dir: &Path, what: &str) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "{what} created {left:?} in the working directory"
    );
}

/// A loopback port where nothing listens: connections are refused at once.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---- the configuration file ---------------------------------------------

#[test]
fn a_toml_syntax_error_never_echoes_the_line() {
    let secret = "s3cret-Token-9f2";
    let db = TempDatabase::new();
    let cases = [
        // An unterminated string on the token line.
        (
            format!("[http]\nlisten = \"127.0.0.1:0\"\ntoken = \"{secret}\n"),
            3,
            "`http.token`",
        ),
        // A bare (unquoted) URL with a password.
        (
            format!("database_url = postgres://app:{secret}@db/x\n[service]\n"),
            1,
            "`database_url`",
        ),
        // A stray character after the value.
        (
            format!("[http]\ntoken = \"{secret}\" x\n"),
            2,
            "`http.token`",
        ),
    ];
    for (text, line, key) in cases {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("backorderd.toml");
        std::fs::write(&file, &text).unwrap();
        for command in ["check-config", "serve", "status"] {
            let run = run_in(
                dir.path(),
                &["--config", file.to_str().unwrap(), command],
                &[("DATABASE_URL", db.url.as_str())],
            );
            let what = format!("{command} on {text:?}");
            assert_eq!(run.code, 1, "{what}: {}", run.stderr);
            assert_secret_absent(&run, secret, &what);
            for part in [
                file.display().to_string(),
                format!("line {line}"),
                key.to_owned(),
            ] {
                assert!(
                    run.stderr.contains(&part),
                    "{what}: no {part}: {}",
                    run.stderr
                );
            }
        }
    }
}

#[test]
fn a_mistyped_secret_value_is_not_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backorderd.toml");
    std::fs::write(&file, "[http]\ntoken = [\"s3cret-in-a-list\"]\n").unwrap();
    let run = run_in(
        dir.path(),
        &["--config", file.to_str().unwrap(), "check-config"],
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_secret_absent(&run, "s3cret-in-a-list", "check-config");
    assert!(run.stderr.contains("`http.token`"), "{}", run.stderr);
}

// ---- database URLs --------------------------------------------------------

/// Forms the daemon does not read: each command refuses them with exit 1,
/// the reason named, the password nowhere, and no file created.
#[test]
fn unsupported_database_urls_are_refused_without_a_trace() {
    let secret = "hunter2-Pw";
    let port = closed_port();
    let cases = [
        (
            format!("mysql://app:{secret}@127.0.0.1:{port}/x"),
            "`mysql`",
        ),
        (
            format!("MySQL://app:{secret}@127.0.0.1:{port}/x"),
            "`MySQL`",
        ),
        (
            format!("host=127.0.0.1 port={port} user=app password={secret} dbname=x"),
            "key=value",
        ),
        (format!("password={secret}"), "key=value"),
        // An unencoded `/` in the password: not a URL that parses.
        (
            format!("postgres://app:{secret}/x@127.0.0.1:{port}/x"),
            "percent-encoded",
        ),
        // A query parameter sqlx would log with its value.
        (
            format!("postgres://app@127.0.0.1:{port}/x?passwd={secret}"),
            "`passwd`",
        ),
    ];
    for (url, reason) in &cases {
        for command in ["check-config", "status", "migrate", "serve", "export"] {
            let dir = tempfile::tempdir().unwrap();
            let what = format!("{command} with {url}");
            for env_name in ["DATABASE_URL", "BACKORDERD__DATABASE_URL"] {
                let run = run_in(dir.path(), &[command], &[(env_name, url.as_str())]);
                assert_eq!(run.code, 1, "{what}: {}", run.stderr);
                assert_secret_absent(&run, secret, &what);
                assert!(run.stderr.contains(reason), "{what}: {}", run.stderr);
                assert!(
                    run.stderr.contains("`database_url`"),
                    "{what}: {}",
                    run.stderr
                );
                assert!(run.stderr.contains(env_name), "{what}: {}", run.stderr);
            }
            assert_empty_dir(dir.path(), &what);
        }
    }
}

/// Forms that do name PostgreSQL (a scheme in capitals, a password as a
/// query parameter, a percent-encoded `/`): read as PostgreSQL, so a
/// refused connection fails, naming no password and creating no file.
#[test]
fn postgres_url_forms_never_become_sqlite_files() {
    let secret = "hunter2-Pw";
    let port = closed_port();
    for url in [
        format!("Postgres://app:{secret}@127.0.0.1:{port}/x"),
        format!("POSTGRESQL://app:{secret}@127.0.0.1:{port}/x"),
        format!("postgres://app@127.0.0.1:{port}/x?password={secret}"),
        format!("postgres://app:{}%2Fx@127.0.0.1:{port}/x", secret),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let check = run_in(
            dir.path(),
            &["check-config"],
            &[("DATABASE_URL", url.as_str())],
        );
        assert_eq!(check.code, 0, "{url}: {}", check.stderr);
        assert!(
            check.stderr.contains("PostgreSQL; not contacted"),
            "{}",
            check.stderr
        );
        assert_secret_absent(&check, secret, &url);
        for command in ["status", "migrate"] {
            let run = run_in(dir.path(), &[command], &[("DATABASE_URL", url.as_str())]);
            assert_eq!(run.code, 1, "{command} {url}: {}", run.stderr);
            assert!(
                run.stderr.contains(&format!("127.0.0.1:{port}")),
                "{command} {url}: {}",
                run.stderr
            );
            assert_secret_absent(&run, secret, &format!("{command} {url}"));
        }
        assert_empty_dir(dir.path(), &url);
    }
}

/// The same forms on a real server (it trusts loopback, so any password
/// connects): every command works, and the password shows nowhere, the
/// daemon's debug log and /readyz included.
#[test]
fn postgres_passwords_in_any_form_stay_hidden_on_a_real_server() {
    let db = TempDatabase::postgres();
    let secret = "hunter2-Qy";
    let in_query = format!("{}?password={secret}&sslmode=disable", db.url);
    let encoded = db
        .url
        .replacen("postgres@", &format!("postgres:{secret}%2Fx@"), 1);
    let capital = db.url.replacen(
        "postgres://postgres@",
        &format!("Postgres://postgres:{secret}@"),
        1,
    );
    for url in [&in_query, &encoded, &capital] {
        let dir = tempfile::tempdir().unwrap();
        for command in ["migrate", "status", "export", "check-config"] {
            let run = run_in(
                dir.path(),
                &["--database-url", url, command],
                &[("BACKORDERD__LOG__FILTER", "debug")],
            );
            assert_eq!(run.code, 0, "{command} {url}: {}", run.stderr);
            assert_secret_absent(&run, secret, &format!("{command} {url}"));
        }
        assert_empty_dir(dir.path(), url);
    }
    let port = closed_port();
    let daemon = Daemon::start_on_url(
        &in_query,
        &[
            ("BACKORDERD__LOG__FILTER", "debug"),
            ("BACKORDERD__HTTP__LISTEN", &format!("127.0.0.1:{port}")),
        ],
    );
    let ready = ureq::get(&format!("http://127.0.0.1:{port}/readyz"))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert!(!ready.contains(secret), "/readyz: {ready}");
    let log = daemon.stop_with("TERM");
    assert!(!log.contains(secret), "the log shows the password:\n{log}");
}

// ---- timeouts -------------------------------------------------------------

/// A "server" that takes connections and never says a word.
struct SilentServer {
    port: u16,
}

impl SilentServer {
    fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            // Bounded: the test's commands open a handful of connections.
            for stream in listener.incoming().take(64) {
                match stream {
                    Ok(stream) => held.push(stream),
                    Err(_) => break,
                }
            }
        });
        SilentServer { port }
    }
}

#[test]
fn a_postgres_server_that_never_answers_fails_within_the_connect_timeout() {
    let server = SilentServer::start();
    let secret = "hunter2-Zz";
    let url = format!("postgres://app:{secret}@127.0.0.1:{}/x", server.port);
    let dir = tempfile::tempdir().unwrap();
    for command in ["status", "migrate", "export"] {
        let started = Instant::now();
        let run = run_in(
            dir.path(),
            &[command],
            &[
                ("DATABASE_URL", url.as_str()),
                ("BACKORDERD__DATABASE__CONNECT_TIMEOUT_SECS", "1"),
            ],
        );
        let took = started.elapsed();
        assert_eq!(run.code, 1, "{command}: {}", run.stderr);
        assert!(took < Duration::from_secs(8), "{command} took {took:?}");
        for part in [
            format!("127.0.0.1:{}", server.port),
            "within 1 s".to_owned(),
            "database.connect_timeout_secs".to_owned(),
        ] {
            assert!(
                run.stderr.contains(&part),
                "{command}: no {part}: {}",
                run.stderr
            );
        }
        assert_secret_absent(&run, secret, command);
    }
    // Out of range: refused, naming the key.
    let run = run_in(
        dir.path(),
        &["status"],
        &[
            ("DATABASE_URL", url.as_str()),
            ("BACKORDERD__DATABASE__CONNECT_TIMEOUT_SECS", "0"),
        ],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("`database.connect_timeout_secs`"),
        "{}",
        run.stderr
    );
    assert_empty_dir(dir.path(), "the commands");
}

/// A statement that waits on a lock held elsewhere is cancelled by the
/// server after `database.statement_timeout_secs`, instead of hanging.
#[test]
fn a_postgres_statement_stuck_on_a_lock_is_cancelled_after_the_statement_timeout() {
    let db = TempDatabase::postgres();
    assert_eq!(db.run(&["migrate"], None).code, 0);
    let url = db.url.clone();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        crate::daemon_support::block_on(async move {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::raw_sql("BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
                .execute(&mut conn)
                .await
                .unwrap();
            locked_tx.send(()).unwrap();
            let _ = tokio::task::spawn_blocking(move || {
                release_rx.recv_timeout(Duration::from_secs(60))
            })
            .await;
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut conn).await;
        })
    });
    locked_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let started = Instant::now();
    let run = crate::support::backorderd(
        &["--database-url", &db.url, "export"],
        None,
        &[("BACKORDERD__DATABASE__STATEMENT_TIMEOUT_SECS", "1")],
    );
    let took = started.elapsed();
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(took < Duration::from_secs(15), "export took {took:?}");
    assert!(run.stderr.contains("statement timeout"), "{}", run.stderr);
}

/// SQLite: a writer waits `database.busy_timeout_secs` for another
/// process's transaction, then fails saying the database is locked.
#[test]
fn sqlite_busy_timeout_is_configurable() {
    let db = TempDatabase::new();
    assert_eq!(db.run(&["migrate"], None).code, 0);
    let lock = rusqlite::Connection::open(&db.path).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let event = br#"{"id":"e1","type":"recalculate","all":true}"#;
    let started = Instant::now();
    let run = crate::support::backorderd(
        &["--database-url", &db.url, "event", "-"],
        Some(event),
        &[("BACKORDERD__DATABASE__BUSY_TIMEOUT_SECS", "1")],
    );
    let took = started.elapsed();
    lock.execute_batch("ROLLBACK").unwrap();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("locked"), "{}", run.stderr);
    assert!(took < Duration::from_secs(6), "event took {took:?}");
}

// ---- check-config agrees with serve ---------------------------------------

#[test]
fn check_config_refuses_what_serve_refuses_and_shows_whether_a_token_is_set() {
    let db = TempDatabase::new();
    let open = [
        ("DATABASE_URL", db.url.as_str()),
        ("BACKORDERD__HTTP__LISTEN", "0.0.0.0:0"),
    ];
    let check = run_in(db.scratch("").as_path(), &["check-config"], &open);
    assert_eq!(check.code, 1, "{}", check.stdout);
    for part in [
        "without a token",
        "`http.listen`",
        "BACKORDERD__HTTP__LISTEN",
    ] {
        assert!(check.stderr.contains(part), "{part}: {}", check.stderr);
    }
    let serve = run_in(db.scratch("").as_path(), &["serve"], &open);
    assert_eq!(serve.code, 1, "{}", serve.stderr);
    assert!(serve.stderr.contains("without a token"), "{}", serve.stderr);

    // No token on loopback: fine, and shown as not set.
    let check = run_in(
        db.scratch("").as_path(),
        &["check-config"],
        &[("DATABASE_URL", db.url.as_str())],
    );
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(
        check.stdout.contains("token = \"\"  # not set"),
        "{}",
        check.stdout
    );
    assert!(!check.stdout.contains("***"), "{}", check.stdout);

    // A token: the exposed address is accepted, the token shown redacted.
    let token = "tok-s3cret-77";
    let check = run_in(
        db.scratch("").as_path(),
        &["check-config"],
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("BACKORDERD__HTTP__LISTEN", "0.0.0.0:0"),
            ("BACKORDERD__HTTP__TOKEN", token),
        ],
    );
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(
        check
            .stdout
            .contains("token = \"***\"  # environment variable BACKORDERD__HTTP__TOKEN"),
        "{}",
        check.stdout
    );
    assert_secret_absent(&check, token, "check-config with a token");
}
