//! migrate, import and export on the embedded SQLite default.

use serde_json::{Value, json};

use crate::support::{TempDatabase, backorderd, examples, read_json};

/// What `simulate` says of a snapshot given as JSON.
fn simulate(snapshot: &Value) -> Value {
    backorderd(
        &["simulate", "-"],
        Some(snapshot.to_string().as_bytes()),
        &[],
    )
    .ok_json()
}

#[test]
fn every_example_survives_import_then_export() {
    for (input, _) in examples() {
        let db = TempDatabase::new();
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

#[test]
fn a_refused_import_changes_nothing() {
    let db = TempDatabase::new();
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

#[test]
fn a_new_database_is_created_on_first_use_and_exports_empty() {
    let db = TempDatabase::new();
    assert!(!db.path.exists());
    let migrated = db.run(&["migrate"], None);
    assert_eq!(migrated.code, 0, "{}", migrated.stderr);
    assert!(db.path.exists());
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
