//! `import` as an operator runs it: what it prints on a pipe and on a
//! terminal, and a failure half-way through (SQLite, whose import drops and
//! re-creates the tables' indexes and pool triggers inside its transaction).

use crate::support::{TempDatabase, backorderd, examples};

/// The schema's indexes and triggers, as stored.
fn schema(db: &TempDatabase) -> Vec<(String, String, Option<String>)> {
    db.fetch_all(
        "SELECT type, name, sql FROM sqlite_schema
         WHERE type IN ('index', 'trigger') ORDER BY type, name",
    )
}

/// A generated book of `lines` lines, written into the database's scratch
/// directory.
fn book(db: &TempDatabase, lines: &str) -> std::path::PathBuf {
    let generated = backorderd(&["generate", "--lines", lines, "--skus", "300"], None, &[]);
    assert_eq!(generated.code, 0, "{}", generated.stderr);
    let path = db.scratch("book.json");
    std::fs::write(&path, generated.stdout).unwrap();
    path
}

#[test]
fn an_import_that_fails_half_way_changes_neither_the_rows_nor_the_schema() {
    let db = TempDatabase::new();
    let (first, _) = &examples()[0];
    assert_eq!(db.run(&["import", first.to_str().unwrap()], None).code, 0);
    let before = db.run(&["export"], None).ok_json();
    let path = book(&db, "3000");
    let snapshot: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let last = snapshot["orders"].as_array().unwrap().last().unwrap();
    let line = last["lines"][0]["id"].as_str().unwrap();
    // The database refuses one line, once every order and some of the
    // lines are in: a failure the snapshot's checks cannot see.
    db.execute(&format!(
        "CREATE TRIGGER refuse_one_line BEFORE INSERT ON order_lines
         WHEN NEW.id = '{line}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    ));
    let schema_before = schema(&db);

    let failed = db.run(&["import", path.to_str().unwrap()], None);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed
            .stderr
            .contains("import failed; the stored state is unchanged")
            && failed.stderr.contains("refused by the test"),
        "{}",
        failed.stderr
    );
    let mut after = db.run(&["export"], None).ok_json();
    after["as_of"] = before["as_of"].clone();
    assert_eq!(after, before);
    assert_eq!(schema(&db), schema_before);

    // Without the obstacle the same book imports, and the tables, their
    // rebuilt indexes and the foreign keys are sound.
    db.execute("DROP TRIGGER refuse_one_line");
    let imported = db.run(&["import", path.to_str().unwrap()], None);
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    let check: Vec<(String,)> = db.fetch_all("PRAGMA integrity_check");
    assert_eq!(check, [("ok".to_owned(),)]);
    let dangling: Vec<(String,)> = db.fetch_all("SELECT \"table\" FROM pragma_foreign_key_check");
    assert_eq!(dangling, []);
    let mut rebuilt = schema_before;
    rebuilt.retain(|(_, name, _)| name != "refuse_one_line");
    assert_eq!(schema(&db), rebuilt);
    let lines: Vec<(i64,)> =
        db.fetch_all("SELECT COUNT(*) FROM order_lines INDEXED BY order_lines_by_order");
    assert_eq!(lines, [(3000,)]);
}

#[test]
fn on_a_pipe_import_prints_its_summary_only() {
    let db = TempDatabase::new();
    let path = book(&db, "2000");
    let imported = db.run(&["import", path.to_str().unwrap()], None);
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    assert_eq!(imported.stdout, "");
    let lines: Vec<&str> = imported.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", imported.stderr);
    assert!(
        lines[0].starts_with("imported ") && lines[0].ends_with(" SKUs queued for recalculation"),
        "{}",
        imported.stderr
    );
    assert!(!imported.stderr.contains('\x1b'), "{:?}", imported.stderr);
}

/// Under a pseudo-terminal (`script`, util-linux) the import draws its
/// progress: the stage, then the rows written.
#[test]
fn on_a_terminal_import_shows_its_progress() {
    let db = TempDatabase::new();
    let path = book(&db, "40000");
    let command = format!(
        "'{}' --database-url '{}' import '{}'",
        env!("CARGO_BIN_EXE_backorderd"),
        db.url,
        path.display()
    );
    let run = std::process::Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("`script` (util-linux) runs");
    let shown = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{shown}");
    assert!(shown.contains("reading "), "{shown:?}");
    assert!(shown.contains(" rows ("), "no bar of rows: {shown:?}");
    assert!(shown.contains("SKUs queued for recalculation"), "{shown:?}");
}
