//! migrate, import and export, on SQLite (the embedded default) and PostgreSQL.

use serde_json::{Value, json};

use crate::support::{Backend, TempDatabase, backorderd, examples, on_both_backends, read_json};

/// What `simulate` says of a snapshot given as JSON.
fn simulate(snapshot: &Value) -> Value {
    backorderd(
        &["simulate", "-"],
        Some(snapshot.to_string().as_bytes()),
        &[],
    )
    .ok_json()
}

fn every_example_survives_import_then_export(backend: Backend) {
    for (input, _) in examples() {
        let db = TempDatabase::of(backend);
        let imported = db.run(&["import", input.to_str().unwrap()], None);
        assert_eq!(imported.code, 0, "{}: {}", input.display(), imported.stderr);
        let exported = db.run(&["export"], None).ok_json();

        let mut original = read_json(&input);
        // The export is as of the moment it was taken; compare as of the same instant.
        original["as_of"] = exported["as_of"].clone();
        assert_eq!(
            simulate(&exported),
            simulate(&original),
            "{}",
            input.display()
        );
        assert_eq!(
            exported["orders"],
            normalized_orders(&original),
            "{}",
            input.display()
        );
    }
}

/// The orders as export writes them: every field present, defaults filled in.
fn normalized_orders(snapshot: &Value) -> Value {
    let orders = snapshot["orders"].as_array().unwrap().iter().map(|o| {
        let field = |k: &str, default: Value| o.get(k).cloned().unwrap_or(default);
        json!({
            "id": o["id"], "order_date": o["order_date"],
            "payment_date": field("payment_date", Value::Null),
            "payment_status": field("payment_status", json!("paid")),
            "status": field("status", json!("in_process")),
            "rush": field("rush", json!(false)), "picked": field("picked", json!(false)),
            "ship_from": field("ship_from", Value::Null),
            "lines": o["lines"].as_array().unwrap().iter().map(|l| json!({
                "id": l["id"], "sku": l["sku"], "qty": l["qty"],
                "backorder_qty": l.get("backorder_qty").cloned().unwrap_or(json!(0)),
            })).collect::<Vec<_>>(),
        })
    });
    Value::Array(orders.collect())
}

fn a_refused_import_changes_nothing(backend: Backend) {
    let db = TempDatabase::of(backend);
    let (first, _) = &examples()[0];
    assert_eq!(db.run(&["import", first.to_str().unwrap()], None).code, 0);
    let before = db.run(&["export"], None).ok_json();

    let mut bad = read_json(first);
    bad["orders"][0]["lines"][0]["qty"] = json!(-5);
    let refused = db.run(&["import", "-"], Some(bad.to_string().as_bytes()));
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("qty must not be negative"),
        "{}",
        refused.stderr
    );

    let mut after = db.run(&["export"], None).ok_json();
    after["as_of"] = before["as_of"].clone();
    assert_eq!(after, before);
}

/// SQLite: the file is created on first use. PostgreSQL: the database
/// exists but is empty; `migrate` creates the schema.
fn a_new_database_is_created_on_first_use_and_exports_empty(backend: Backend) {
    let db = TempDatabase::of(backend);
    let tables = || -> Vec<(String,)> {
        db.fetch_all(
            "SELECT table_name FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_name = 'orders'",
        )
    };
    match backend {
        Backend::Sqlite => assert!(!db.path.exists()),
        Backend::Postgres => assert_eq!(tables(), []),
    }
    let migrated = db.run(&["migrate"], None);
    assert_eq!(migrated.code, 0, "{}", migrated.stderr);
    match backend {
        Backend::Sqlite => assert!(db.path.exists()),
        Backend::Postgres => assert_eq!(tables(), [("orders".to_owned(),)]),
    }
    // Migrating again changes nothing and succeeds.
    let again = db.run(&["migrate"], None);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let exported = db.run(&["export"], None).ok_json();
    assert_eq!(exported["orders"], json!([]));
    assert_eq!(exported["warehouses"], json!([]));
    assert_eq!(exported["settings"]["exclude_dropship"], json!(true));
}

#[test]
fn a_database_that_cannot_be_opened_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_database = dir.path().join("notes.txt");
    std::fs::write(
        &not_a_database,
        "these are not the tables you are looking for",
    )
    .unwrap();
    let missing_dir = dir.path().join("no/such/dir/backorderd.db");
    for path in [not_a_database, missing_dir] {
        let url = format!("sqlite://{}", path.display());
        let run = backorderd(&["--database-url", &url, "export"], None, &[]);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(
            run.stderr.starts_with("error: cannot open the database"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}

#[test]
fn database_passwords_never_reach_the_output() {
    let run = backorderd(
        &["export"],
        None,
        &[("DATABASE_URL", "postgres://app:hunter2@127.0.0.1:1/db")],
    );
    assert_eq!(run.code, 1);
    assert!(
        !run.stderr.contains("hunter2") && !run.stdout.contains("hunter2"),
        "{}",
        run.stderr
    );
    let help = backorderd(
        &["--help"],
        None,
        &[("DATABASE_URL", "sqlite://hunter2.db")],
    );
    assert!(!help.stdout.contains("hunter2"), "{}", help.stdout);
}

/// A PostgreSQL URL with a password (the test server trusts loopback, so
/// any password connects): the daemon runs, and the password appears in
/// none of the output nor the log.
#[test]
fn postgres_passwords_never_reach_the_output_or_the_log() {
    let db = TempDatabase::postgres();
    let secret = "hunter2-s3cret";
    let url = db
        .url
        .replacen("postgres@", &format!("postgres:{secret}@"), 1);
    for args in [
        &["migrate"][..],
        &["status"][..],
        &["export"][..],
        &["check-config"][..],
    ] {
        let mut all = vec!["--database-url", url.as_str()];
        all.extend_from_slice(args);
        let run = backorderd(&all, None, &[("BACKORDERD__LOG__FILTER", "debug")]);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        assert!(
            !run.stderr.contains(secret) && !run.stdout.contains(secret),
            "{args:?} shows the password:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
    let daemon =
        crate::daemon_support::Daemon::start_on_url(&url, &[("BACKORDERD__LOG__FILTER", "debug")]);
    let log = daemon.stop_with("TERM");
    assert!(!log.contains(secret), "the log shows the password:\n{log}");
}

/// No server at the URL: every command fails with exit 1 and a message
/// that names the cause, without a panic, and does not hang.
#[test]
fn an_unreachable_postgres_fails_cleanly() {
    let port = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap().port()
    };
    let url = format!("postgres://postgres@127.0.0.1:{port}/nowhere");
    let event = json!({"id": "e1", "type": "recalculate", "all": true}).to_string();
    let commands = [
        &["status"][..],
        &["export"][..],
        &["event", "-"][..],
        &["serve"][..],
    ];
    // At once: a command may wait out its connection timeout.
    let runs: Vec<_> = commands
        .iter()
        .map(|args| {
            let mut all = vec!["--database-url".to_owned(), url.clone()];
            all.extend(args.iter().map(|a| a.to_string()));
            let event = event.clone();
            std::thread::spawn(move || {
                let all: Vec<&str> = all.iter().map(String::as_str).collect();
                let started = std::time::Instant::now();
                let run = backorderd(&all, Some(event.as_bytes()), &[]);
                (run, started.elapsed())
            })
        })
        .collect();
    for (args, run) in commands.iter().zip(runs) {
        let (run, took) = run.join().unwrap();
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.starts_with("error: "),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.to_lowercase().contains("refused"),
            "{args:?}: the message does not say the connection was refused: {}",
            run.stderr
        );
        assert!(
            took < std::time::Duration::from_secs(45),
            "{args:?} took {took:?}"
        );
    }
}

on_both_backends!(
    every_example_survives_import_then_export,
    a_refused_import_changes_nothing,
    a_new_database_is_created_on_first_use_and_exports_empty,
);
