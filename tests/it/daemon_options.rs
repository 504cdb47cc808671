//! The daemon's own options (defer new orders, status changes, the periodic
//! full run), its history and change messages, and `recalc --inline` / `--sku --wait`.

use serde_json::{Value, json};
use std::time::{Duration, Instant};

use crate::daemon_support::{
    Daemon, assert_matches_simulate, generate, send_events, stored_results, wait_idle,
};
use crate::support::{Backend, TempDatabase, on_both_backends};

const IDLE: Duration = Duration::from_secs(30);

fn import(db: &TempDatabase, book: &Value) {
    let run = db.run(&["import", "-"], Some(book.to_string().as_bytes()));
    assert_eq!(run.code, 0, "import: {}", run.stderr);
}

fn export(db: &TempDatabase) -> Value {
    db.run(&["export"], None).ok_json()
}

fn line_backorder(db: &TempDatabase, line_id: &str) -> i64 {
    stored_results(db).0[line_id].backorder_qty
}

/// 10 units of TEA; OLD (older) wants 10, YOUNG wants 5.
fn small_book() -> Value {
    json!({
        "warehouses": [{"id": "MAIN", "kind": "normal"}],
        "inventory": [{"sku": "TEA", "warehouse": "MAIN", "on_hand": 10}],
        "orders": [
            {"id": "OLD", "order_date": "2026-11-01T10:00:00Z",
             "lines": [{"id": "OLD-1", "sku": "TEA", "qty": 10}]},
            {"id": "YOUNG", "order_date": "2026-11-02T10:00:00Z",
             "lines": [{"id": "YOUNG-1", "sku": "TEA", "qty": 5}]}]
    })
}

/// `(order_id, line_id, old, new, old_status, new_status, cause)` rows.
type HistoryRow = (
    String,
    Option<String>,
    i64,
    i64,
    Option<String>,
    Option<String>,
    String,
);

fn history(db: &TempDatabase) -> Vec<HistoryRow> {
    db.fetch_all(
        "SELECT order_id, line_id, CAST(old_backorder_qty AS BIGINT), CAST(new_backorder_qty AS BIGINT),
                old_status, new_status, cause
         FROM history ORDER BY seq",
    )
}

/// `(type, key, previous_status, status)` of every change message.
fn messages(db: &TempDatabase) -> Vec<(String, String, String, String)> {
    let run = db.run(&["changes"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|m| m["type"] != "product.availability_changed")
        .map(|m| {
            let field = |v: &Value| v.as_str().unwrap().to_owned();
            (
                field(&m["type"]),
                field(&m["key"]),
                field(&m["data"]["previous_status"]),
                field(&m["data"]["status"]),
            )
        })
        .collect()
}

fn every_change_has_a_history_row_and_a_change_message(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &small_book());
    let daemon = Daemon::start(&db, &[("BACKORDERD__LOG__FORMAT", "json")]);
    wait_idle(&db, IDLE);
    let receipt = json!({"id": "r1", "type": "po_received", "sku": "TEA",
                         "warehouse": "MAIN", "qty": 5});
    send_events(&db, &[receipt], &["--wait", "--timeout", "30"]).ok_json();
    let log = daemon.stop_with("TERM");

    // The job's span names the SKUs and the events it recalculated.
    let job = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|entry| {
            entry["fields"]["message"] == "recalculated"
                && entry["span"]["events"]
                    .as_str()
                    .unwrap_or("")
                    .contains("r1")
        })
        .unwrap_or_else(|| panic!("no recalculation logged for r1:\n{log}"));
    assert_eq!(job["span"]["name"], "recalculate");
    assert!(
        job["span"]["skus"].as_str().unwrap().contains("TEA"),
        "{job}"
    );

    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        history(&db),
        vec![
            (
                "YOUNG".into(),
                s("YOUNG-1"),
                0,
                5,
                None,
                None,
                "import".into()
            ),
            (
                "YOUNG".into(),
                None,
                0,
                5,
                s("none"),
                s("full"),
                "import".into()
            ),
            ("YOUNG".into(), s("YOUNG-1"), 5, 0, None, None, "r1".into()),
            (
                "YOUNG".into(),
                None,
                5,
                0,
                s("full"),
                s("none"),
                "r1".into()
            ),
        ]
    );
    // The import's recalculation is quiet (no --notify); r1's is not.
    assert_eq!(
        messages(&db),
        vec![(
            "order.backorder_cleared".into(),
            "order:YOUNG".into(),
            "full".into(),
            "none".into()
        )]
    );
}

fn with_defer_new_orders_a_new_order_waits_for_a_full_run(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &small_book());
    let daemon = Daemon::start(&db, &[("BACKORDERD__SERVICE__DEFER_NEW_ORDERS", "true")]);
    wait_idle(&db, IDLE);
    let new_order = json!({"id": "n1", "type": "order_upserted", "order": {
        "id": "LATE", "order_date": "2026-11-03T10:00:00Z",
        "lines": [{"id": "LATE-1", "sku": "TEA", "qty": 3}]}});
    let report = send_events(&db, &[new_order], &["--wait", "--timeout", "30"]).ok_json();
    assert_eq!(report["marked_skus"], json!([]), "nothing marked: {report}");
    // Not recalculated: still the stored 0, though no stock is left for it.
    assert_eq!(line_backorder(&db, "LATE-1"), 0);

    // A change to an existing order still recalculates at once.
    let changed = json!({"id": "n2", "type": "order_upserted", "order": {
        "id": "YOUNG", "order_date": "2026-11-02T10:00:00Z",
        "lines": [{"id": "YOUNG-1", "sku": "TEA", "qty": 4}]}});
    send_events(&db, &[changed], &["--wait", "--timeout", "30"]).ok_json();
    assert_eq!(line_backorder(&db, "YOUNG-1"), 4);

    let run = db.run(&["recalc", "--all", "--wait", "--timeout", "30"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    daemon.stop_with("TERM");
    assert_eq!(line_backorder(&db, "LATE-1"), 3);
    assert_matches_simulate(&db, &export(&db), &[], &[]);
}

fn with_status_changes_left_to_the_full_run_a_hold_frees_no_stock_at_once(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &small_book());
    let daemon = Daemon::start(
        &db,
        &[("BACKORDERD__SERVICE__RECALCULATE_ON_STATUS_CHANGE", "false")],
    );
    wait_idle(&db, IDLE);
    assert_eq!(line_backorder(&db, "YOUNG-1"), 5);
    let hold = json!({"id": "h1", "type": "order_status_changed",
                      "order_id": "OLD", "status": "on_hold"});
    let report = send_events(&db, &[hold], &["--wait", "--timeout", "30"]).ok_json();
    assert_eq!(report["marked_skus"], json!([]));
    assert_eq!(line_backorder(&db, "YOUNG-1"), 5, "not recalculated yet");

    let run = db.run(
        &["recalc", "--sku", "TEA", "--wait", "--timeout", "30"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    daemon.stop_with("TERM");
    // OLD is excluded now: YOUNG gets its 5.
    assert_eq!(line_backorder(&db, "YOUNG-1"), 0);
    assert_matches_simulate(&db, &export(&db), &[], &[]);
}

fn the_periodic_full_run_repairs_what_no_event_recalculated(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &small_book());
    let daemon = Daemon::start(
        &db,
        &[("BACKORDERD__SERVICE__FULL_RECALCULATION_INTERVAL_SECS", "1")],
    );
    wait_idle(&db, IDLE);
    // An override of an active line stands until its SKU is recalculated.
    let mark = json!({"id": "o1", "type": "backorder_override",
                      "line_id": "YOUNG-1", "backorder_qty": 0});
    send_events(&db, &[mark], &[]).ok_json();
    assert_eq!(line_backorder(&db, "YOUNG-1"), 0);

    let deadline = Instant::now() + Duration::from_secs(20);
    while line_backorder(&db, "YOUNG-1") != 5 {
        assert!(
            Instant::now() < deadline,
            "the periodic run did not come: {}",
            daemon.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon.stop_with("TERM");
    let causes: Vec<String> = history(&db).into_iter().map(|h| h.6).collect();
    assert!(
        causes
            .iter()
            .any(|c| c.starts_with("periodic-full-recalculation-")),
        "{causes:?}"
    );
}

fn recalc_inline_recalculates_in_the_calling_process(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &generate(3000, 60, 11));
    let run = db.run(&["recalc", "--all", "--inline"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["recalculated"]["lines_seen"], 3000, "{report}");
    assert!(run.stderr.contains("recalculated"), "{}", run.stderr);
    assert_matches_simulate(&db, &export(&db), &[], &[]);

    // Nothing left to do: a second run changes nothing.
    let again = db.run(&["recalc", "--all", "--inline"], None).ok_json();
    assert_eq!(again["recalculated"]["lines_changed"], 0);
    assert_eq!(again["recalculated"]["orders_changed"], 0);
}

fn recalc_inline_shows_progress_on_a_terminal(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &generate(3000, 60, 12));
    // `script` gives the command a terminal; many small batches give the
    // bar time to draw.
    let command = format!(
        "{} --database-url {} recalc --all --inline",
        env!("CARGO_BIN_EXE_backorderd"),
        db.url
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("BACKORDERD__SERVICE__SKUS_PER_BATCH", "1")
        .env("BACKORDERD__SERVICE__BULK_FROM_SKUS", "1000000")
        .output()
        .expect("script (util-linux) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(" SKUs ("), "no progress bar in: {text:?}");
    assert!(text.contains("recalculated 60 SKUs"), "{text:?}");
}

fn a_burst_of_events_on_one_sku_is_one_recalculation(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &small_book());
    let daemon = Daemon::start(&db, &[("BACKORDERD__LOG__FORMAT", "json")]);
    wait_idle(&db, IDLE);
    let burst: Vec<Value> = (0..100)
        .map(|k| {
            json!({"id": format!("b{k}"), "type": "inventory_adjusted", "sku": "TEA",
                   "warehouse": "MAIN", "delta": if k % 2 == 0 { 1 } else { -1 }})
        })
        .chain([
            json!({"id": "b-last", "type": "inventory_adjusted", "sku": "TEA",
                       "warehouse": "MAIN", "delta": 5}),
        ])
        .collect();
    send_events(&db, &burst, &["--wait", "--timeout", "30"]).ok_json();
    let log = daemon.stop_with("TERM");

    let recalculations: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| {
            entry["fields"]["message"] == "recalculated"
                && entry["span"]["events"]
                    .as_str()
                    .unwrap_or("")
                    .contains("b-last")
        })
        .collect();
    assert_eq!(recalculations.len(), 1, "{log}");
    assert_eq!(recalculations[0]["fields"]["batches"], 1);
    // One write-back: YOUNG's line went from 5 to 0 once, not 101 times.
    let young: Vec<HistoryRow> = history(&db)
        .into_iter()
        .filter(|h| h.1.as_deref() == Some("YOUNG-1"))
        .collect();
    assert_eq!(young.len(), 2, "{young:?}");
    assert_eq!(line_backorder(&db, "YOUNG-1"), 0);
}

/// Events sent one command at a time while no worker runs: one job waits,
/// naming every event, and the worker's one drain applies them all.
fn events_sent_while_no_worker_runs_share_one_waiting_job(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &small_book());
    let queued = crate::daemon_support::status(&db);
    assert_eq!(queued["queue"]["pending"], 1, "{queued}");
    for k in 0..5 {
        let receipt = json!({"id": format!("w{k}"), "type": "po_received", "sku": "TEA",
                             "warehouse": "MAIN", "qty": 1});
        send_events(&db, &[receipt], &[]).ok_json();
    }
    let waiting = crate::daemon_support::status(&db);
    assert_eq!(waiting["queue"]["pending"], 1, "{waiting}");
    assert!(waiting["dirty_skus"].as_i64().unwrap() > 0, "{waiting}");

    let daemon = Daemon::start(&db, &[("BACKORDERD__LOG__FORMAT", "json")]);
    let idle = wait_idle(&db, IDLE);
    assert_eq!(idle["dirty_skus"], 0, "{idle}");
    let log = daemon.stop_with("TERM");
    let jobs: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["fields"]["message"] == "recalculated")
        .collect();
    assert_eq!(jobs.len(), 1, "{log}");
    let named = jobs[0]["span"]["events"].as_str().unwrap();
    for cause in ["import", "w0", "w1", "w2", "w3", "w4"] {
        assert!(named.contains(cause), "{cause} not in {named}");
    }
    // 5 more units of TEA cover YOUNG's 5.
    assert_eq!(line_backorder(&db, "YOUNG-1"), 0);
}

on_both_backends!(
    events_sent_while_no_worker_runs_share_one_waiting_job,
    every_change_has_a_history_row_and_a_change_message,
    with_defer_new_orders_a_new_order_waits_for_a_full_run,
    with_status_changes_left_to_the_full_run_a_hold_frees_no_stock_at_once,
    the_periodic_full_run_repairs_what_no_event_recalculated,
    recalc_inline_recalculates_in_the_calling_process,
    recalc_inline_shows_progress_on_a_terminal,
    a_burst_of_events_on_one_sku_is_one_recalculation,
);
