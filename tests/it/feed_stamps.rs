//! The availability feed read from the entries recalculations stored
//! (store/feed_stamps.rs): whatever changes after the last recalculation
//! (an event not yet recalculated, an override that marks nothing, a
//! settings change, a hand-written UPDATE, a new SKU), the served feed,
//! each SKU's entry and the purchasing report stay exactly what the stored
//! state gives; and while nothing changed, the stored entry is what is
//! served. No `serve` runs, so nothing is recalculated behind the test.

use backorderd::engine::Snapshot;
use backorderd::feed::{self, FeedSource, purchasing};
use serde_json::{Value, json};

use crate::availability::{book, import};
use crate::support::{Backend, TempDatabase, on_both_backends};

on_both_backends!(the_feed_is_the_stored_states_after_changes_no_recalculation_saw);

fn event(db: &TempDatabase, event: Value) {
    let file = db.scratch("event.json");
    std::fs::write(&file, event.to_string()).unwrap();
    let sent = db.run(&["event", file.to_str().unwrap()], None);
    assert_eq!(sent.code, 0, "{event}: {}", sent.stderr);
}

/// The feed and the report as the pure functions compute them from
/// `export`'s snapshot.
fn expected(db: &TempDatabase) -> (Vec<Value>, Value) {
    let exported = db.run(&["export"], None);
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    let snapshot: Snapshot = serde_json::from_str(&exported.stdout).unwrap();
    let source = FeedSource::from_stored(&snapshot, chrono::Utc::now());
    let entries = feed::entries(&source)
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    let report = serde_json::to_value(purchasing::report(&source, None).unwrap()).unwrap();
    (entries, report)
}

/// What the `availability` and `purchasing` commands serve.
fn served(db: &TempDatabase) -> (Vec<Value>, Value) {
    let whole = db.run(&["availability", "--jsonl"], None);
    assert_eq!(whole.code, 0, "{}", whole.stderr);
    let entries: Vec<Value> = whole
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let report = db.run(&["purchasing"], None);
    assert_eq!(report.code, 0, "{}", report.stderr);
    (entries, report.json())
}

fn assert_served_is_the_stored_states(db: &TempDatabase, after: &str) {
    let (entries, report) = expected(db);
    let (served_entries, served_report) = served(db);
    assert_eq!(served_entries, entries, "the whole feed after {after}");
    assert_eq!(served_report, report, "the report after {after}");
    // A search by backordered units reads only the stamps within its
    // bounds and the stale SKUs (store/sqlite/feed_stamps.rs): the same
    // entries as the whole feed filtered.
    for (min, max, warehouse) in [
        (Some(1), None, None),
        (Some(2), Some(5), None),
        (Some(1), None, Some("MAIN")),
        (Some(3), Some(3), Some("EAST")),
        (None, Some(2), None),
    ] {
        let filter = feed::FeedFilter {
            backordered_min: min,
            backordered_max: max,
            warehouse: warehouse.map(str::to_owned),
        };
        let wanted: Vec<&Value> = entries
            .iter()
            .filter(|e| filter.matches(&serde_json::from_value((*e).clone()).unwrap()))
            .collect();
        let mut args = vec!["availability".to_owned(), "--jsonl".to_owned()];
        for (flag, value) in [("--backordered-min", min), ("--backordered-max", max)] {
            if let Some(v) = value {
                args.extend([flag.to_owned(), v.to_string()]);
            }
        }
        if let Some(w) = warehouse {
            args.extend(["--warehouse".to_owned(), w.to_owned()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let found = db.run(&args, None);
        assert_eq!(found.code, 0, "{}", found.stderr);
        let found: Vec<Value> = found
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let found: Vec<&Value> = found.iter().collect();
        assert_eq!(found, wanted, "{args:?} after {after}");
    }
    for entry in &entries {
        let sku = entry["sku"].as_str().unwrap();
        let one = db.run(&["availability", sku], None);
        assert_eq!(one.code, 0, "{}", one.stderr);
        assert_eq!(&one.json(), entry, "{sku} alone after {after}");
    }
}

fn the_feed_is_the_stored_states_after_changes_no_recalculation_saw(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &book());
    assert_served_is_the_stored_states(&db, "the recalculation");

    // An active line's override marks nothing: its SKU's stored value moves.
    event(
        &db,
        json!({"id": "o1", "type": "backorder_override", "line_id": "SO-1-1", "backorder_qty": 0}),
    );
    assert_served_is_the_stored_states(&db, "an override");
    // Marked, not recalculated: the new stock beside the old allocation.
    event(
        &db,
        json!({"id": "a1", "type": "inventory_adjusted", "sku": "CUP", "warehouse": "MAIN", "delta": 3}),
    );
    assert_served_is_the_stored_states(&db, "an adjustment");
    // A SKU no recalculation has seen yet.
    event(
        &db,
        json!({"id": "s1", "type": "inventory_set", "sku": "MUG", "warehouse": "EAST", "on_hand": 5}),
    );
    assert_served_is_the_stored_states(&db, "a new SKU");
    // Every SKU's eligible stock changes with a setting.
    event(
        &db,
        json!({"id": "c1", "type": "settings_changed", "settings": {"exclude_dropship": false}}),
    );
    assert_served_is_the_stored_states(&db, "a settings change");
    db.execute("UPDATE inventory SET on_hand = on_hand + 2 WHERE sku = 'TEA'");
    assert_served_is_the_stored_states(&db, "a hand-written UPDATE");

    let run = db.run(&["recalc", "--all", "--inline"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_served_is_the_stored_states(&db, "the next recalculation");
}

/// SQLite keeps the pool versions the stamps need: a current stamp serves
/// the stored entry as it is (here made visibly different by hand), and a
/// change of the SKU's stock retires it.
#[test]
fn a_current_stamp_serves_the_stored_entry_and_a_change_retires_it() {
    let db = TempDatabase::of(Backend::Sqlite);
    import(&db, &book());
    db.execute(
        "UPDATE availability_figures SET entry = json_set(entry, '$.free', 999) WHERE sku = 'CUP'",
    );
    let free_served = |db: &TempDatabase| {
        let one = db.run(&["availability", "CUP"], None);
        assert_eq!(one.code, 0, "{}", one.stderr);
        let (whole, _) = served(db);
        let cup = whole.iter().find(|e| e["sku"] == "CUP").unwrap().clone();
        (one.json()["free"].clone(), cup["free"].clone())
    };
    assert_eq!(
        free_served(&db),
        (json!(999), json!(999)),
        "the stored entry is served"
    );

    event(
        &db,
        json!({"id": "a1", "type": "inventory_adjusted", "sku": "CUP", "warehouse": "MAIN", "delta": 1}),
    );
    let (entries, _) = expected(&db);
    let cup = entries.iter().find(|e| e["sku"] == "CUP").unwrap();
    assert_ne!(cup["free"], 999);
    assert_eq!(
        free_served(&db),
        (cup["free"].clone(), cup["free"].clone()),
        "computed once the stock changed"
    );
}

/// A search by backordered units finds the stale stamps from
/// `pool_versions`, so every SKU with lines needs a version row, also
/// those an import loaded without its triggers: right after the import,
/// a settings change retires every stamp, and the search must still list
/// the imported SKUs (computed).
#[test]
fn a_search_finds_the_imported_skus_once_every_stamp_is_retired() {
    let db = TempDatabase::of(Backend::Sqlite);
    import(&db, &book());
    event(
        &db,
        json!({"id": "c1", "type": "settings_changed", "settings": {"exclude_dropship": false}}),
    );
    let (entries, _) = expected(&db);
    assert!(
        entries.iter().any(|e| e["backordered"].as_i64() > Some(0)),
        "the book has backordered SKUs"
    );
    assert_served_is_the_stored_states(&db, "a settings change right after the import");
}
