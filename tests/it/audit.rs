//! Drift (stored values changed behind the daemon's back) and the audit:
//! tampering with plain SQL on the real database, then the real binary's
//! `recalc --all`, `audit [--repair]`, `serve` and its HTTP API.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

use crate::daemon_support::{Daemon, assert_matches_simulate, send_events, simulate};
use crate::support::{Backend, TempDatabase, on_both_backends};

on_both_backends!(
    the_full_run_repairs_an_order_whose_line_was_changed_behind_its_back,
    the_audit_reports_exactly_the_tampered_records_and_repairs_them,
    serve_repairs_drift_and_answers_the_audit_over_http,
    an_override_writes_a_history_row_for_its_line,
    the_audit_of_a_fresh_import_is_the_answer_of_simulate,
);

/// A small book with backorders: 4 units of TEA for three orders of 3.
fn book() -> Value {
    let order = |id: &str, day: u32, lines: Value| {
        json!({
            "id": id,
            "order_date": format!("2026-11-{day:02}T10:00:00Z"),
            "lines": lines,
        })
    };
    json!({
        "settings": {},
        "warehouses": [{"id": "MAIN", "kind": "normal"}],
        "products": [{"sku": "TEA"}, {"sku": "CUP"}],
        "inventory": [
            {"sku": "TEA", "warehouse": "MAIN", "on_hand": 4},
            {"sku": "CUP", "warehouse": "MAIN", "on_hand": 10}
        ],
        "purchase_orders": [],
        "orders": [
            order("SO-1", 1, json!([{"id": "SO-1-1", "sku": "TEA", "qty": 3, "backorder_qty": 0}])),
            order("SO-2", 2, json!([
                {"id": "SO-2-1", "sku": "TEA", "qty": 3, "backorder_qty": 0},
                {"id": "SO-2-2", "sku": "CUP", "qty": 2, "backorder_qty": 0}
            ])),
            order("SO-3", 3, json!([
                {"id": "SO-3-1", "sku": "TEA", "qty": 3, "backorder_qty": 0},
                {"id": "SO-3-2", "sku": "CUP", "qty": 1, "backorder_qty": 0}
            ])),
        ]
    })
}

/// A database holding `book()`, recalculated.
fn recalculated_book(backend: Backend) -> TempDatabase {
    let db = TempDatabase::of(backend);
    let file = db.scratch("book.json");
    std::fs::write(&file, book().to_string()).unwrap();
    let imported = db.run(&["import", file.to_str().unwrap()], None);
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    full_run(&db);
    db
}

/// `recalc --all --inline`: (lines changed, orders changed).
fn full_run(db: &TempDatabase) -> (i64, i64) {
    full_run_with(db, &[])
}

/// `recalc --all --inline` with `env`: (lines changed, orders changed).
fn full_run_with(db: &TempDatabase, env: &[(&str, &str)]) -> (i64, i64) {
    let run = crate::support::backorderd(
        &["--database-url", &db.url, "recalc", "--all", "--inline"],
        None,
        env,
    );
    let report = run.ok_json();
    (
        report["recalculated"]["lines_changed"].as_i64().unwrap(),
        report["recalculated"]["orders_changed"].as_i64().unwrap(),
    )
}

/// `(backorder_qty, lines_open, lines_backordered, lines_whole, status)` of an order.
fn order_totals(db: &TempDatabase, id: &str) -> (i64, i64, i64, i64, String) {
    db.fetch_all(&format!(
        "SELECT CAST(backorder_qty AS BIGINT), CAST(lines_open AS BIGINT),
                CAST(lines_backordered AS BIGINT), CAST(lines_whole AS BIGINT), backorder_status
         FROM orders WHERE id = '{id}'"
    ))
    .pop()
    .unwrap()
}

/// `(line_id or "", old, new, cause)` of the history rows of an order, oldest first.
fn history(db: &TempDatabase, order_id: &str) -> Vec<(String, i64, i64, String)> {
    db.fetch_all(&format!(
        "SELECT COALESCE(line_id, ''), CAST(old_backorder_qty AS BIGINT),
                CAST(new_backorder_qty AS BIGINT), cause
         FROM history WHERE order_id = '{order_id}' ORDER BY seq"
    ))
}

fn export(db: &TempDatabase) -> Value {
    db.run(&["export"], None).ok_json()
}

/// Runs `audit ARGS`: (exit code, report).
fn audit(db: &TempDatabase, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    let run = db.run(&all, None);
    assert!(
        run.code == 0 || run.code == 3,
        "audit failed ({}): {}",
        run.code,
        run.stderr
    );
    (run.code, run.json())
}

fn ids(report: &Value, key: &str, field: &str) -> BTreeSet<String> {
    report[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[field].as_str().unwrap().to_owned())
        .collect()
}

/// TEA: SO-1 gets 3, SO-2 gets 1 (backorder 2), SO-3 gets none (3).
fn assert_book_answer(db: &TempDatabase) {
    assert_eq!(order_totals(db, "SO-2"), (2, 2, 1, 0, "partial".into()));
    assert_eq!(order_totals(db, "SO-3"), (3, 2, 1, 1, "partial".into()));
    assert_matches_simulate(db, &export(db), &[], &[]);
}

fn the_full_run_repairs_an_order_whose_line_was_changed_behind_its_back(backend: Backend) {
    let db = recalculated_book(backend);
    assert_book_answer(&db);
    // A line edited by hand: its order's stored totals still say 3.
    db.execute("UPDATE order_lines SET backorder_qty = 0 WHERE id = 'SO-3-1'");
    // An order's totals edited by hand, its lines left alone.
    db.execute("UPDATE orders SET backorder_qty = 7, lines_whole = 2 WHERE id = 'SO-2'");

    let (lines, orders) = full_run(&db);
    assert_eq!((lines, orders), (1, 1), "the line and SO-2's totals");
    assert_book_answer(&db);
    // The line's repair moved nothing on SO-3 (its totals were right);
    // SO-2's repair has its history row.
    let so3 = history(&db, "SO-3");
    assert_eq!(so3.last().unwrap().0, "SO-3-1");
    assert_eq!((so3.last().unwrap().1, so3.last().unwrap().2), (0, 3));
    let so2 = history(&db, "SO-2");
    let last = so2.last().unwrap();
    assert_eq!((last.0.as_str(), last.1, last.2), ("", 7, 2));

    assert_eq!(full_run(&db), (0, 0), "nothing left to repair");

    // The same through the bulk transaction (which reads every header
    // once and sums each order's lines over its batches), one SKU a batch
    // so that SO-3's lines are seen in two batches.
    let bulk = [
        ("BACKORDERD__SERVICE__BULK_FROM_SKUS", "1"),
        ("BACKORDERD__SERVICE__SKUS_PER_BATCH", "1"),
    ];
    db.execute("UPDATE order_lines SET backorder_qty = 0 WHERE id = 'SO-3-1'");
    db.execute("UPDATE orders SET backorder_qty = 7, lines_whole = 2 WHERE id = 'SO-2'");
    let (lines, _) = full_run_with(&db, &bulk);
    assert_eq!(lines, 1);
    assert_book_answer(&db);
    assert_eq!(full_run_with(&db, &bulk), (0, 0), "nothing left to repair");
}

fn the_audit_reports_exactly_the_tampered_records_and_repairs_them(backend: Backend) {
    let db = recalculated_book(backend);
    let (code, report) = audit(&db, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["drift"], false);
    assert_eq!(report["lines_checked"], 5);
    assert_eq!(report["orders_checked"], 3);

    db.execute("UPDATE order_lines SET backorder_qty = 1 WHERE id = 'SO-2-1'");
    db.execute("UPDATE order_lines SET eta = '2027-01-01' WHERE id = 'SO-1-1'");
    db.execute("UPDATE orders SET backorder_qty = 0, lines_backordered = 0 WHERE id = 'SO-3'");

    let (code, report) = audit(&db, &[]);
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["drift"], true);
    assert_eq!(report["repaired"], false);
    assert_eq!(
        ids(&report, "lines", "line_id"),
        BTreeSet::from(["SO-1-1".to_owned(), "SO-2-1".to_owned()])
    );
    assert_eq!(
        ids(&report, "orders", "order_id"),
        BTreeSet::from(["SO-3".to_owned()])
    );
    let so3 = &report["orders"][0];
    assert_eq!(so3["stored"]["backorder_qty"], 0);
    assert_eq!(so3["stored"]["backorder_status"], "none");
    assert_eq!(so3["expected"]["backorder_qty"], 3);
    assert_eq!(so3["expected"]["backorder_status"], "partial");

    // The lines it names are the ones where `simulate` of `export` differs.
    let exported = export(&db);
    let result = simulate(&exported);
    let stored: std::collections::HashMap<String, i64> = exported["orders"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|o| o["lines"].as_array().unwrap().iter())
        .map(|l| {
            (
                l["id"].as_str().unwrap().to_owned(),
                l["backorder_qty"].as_i64().unwrap(),
            )
        })
        .collect();
    let qty_differs: BTreeSet<String> = result["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| stored[l["line_id"].as_str().unwrap()] != l["backorder_qty"].as_i64().unwrap())
        .map(|l| l["line_id"].as_str().unwrap().to_owned())
        .collect();
    let reported_qty: BTreeSet<String> = report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["stored"]["backorder_qty"] != l["expected"]["backorder_qty"])
        .map(|l| l["line_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reported_qty, qty_differs);
    for line in report["lines"].as_array().unwrap() {
        let want = result["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["line_id"] == line["line_id"])
            .unwrap();
        assert_eq!(line["expected"]["backorder_qty"], want["backorder_qty"]);
        assert_eq!(line["expected"]["eta"], want["eta"]);
    }

    // Without --repair nothing was written: the same findings again.
    let (code, again) = audit(&db, &[]);
    assert_eq!(code, 3);
    assert_eq!(again["lines"], report["lines"]);
    assert_eq!(again["orders"], report["orders"]);

    let (code, repaired) = audit(&db, &["--repair"]);
    assert_eq!(code, 3, "drift was found (and repaired)");
    assert_eq!(repaired["repaired"], true);
    assert_eq!(repaired["lines"], report["lines"]);
    assert_eq!(repaired["orders"], report["orders"]);
    assert_book_answer(&db);
    let causes: Vec<(String, String)> = db.fetch_all(
        "SELECT COALESCE(line_id, order_id), cause FROM history WHERE cause = 'audit' ORDER BY 1",
    );
    assert_eq!(
        causes,
        [
            ("SO-1-1".to_owned(), "audit".to_owned()),
            ("SO-2-1".to_owned(), "audit".to_owned()),
            ("SO-3".to_owned(), "audit".to_owned()),
        ]
    );

    let (code, clean) = audit(&db, &[]);
    assert_eq!(code, 0, "{clean}");
    assert_eq!(full_run(&db), (0, 0));
}

fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

fn http_get(port: u16, path: &str) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut response = agent
        .get(format!("http://127.0.0.1:{port}{path}"))
        .call()
        .expect("the daemon answers");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap())
}

fn serve_repairs_drift_and_answers_the_audit_over_http(backend: Backend) {
    let db = recalculated_book(backend);
    db.execute("UPDATE order_lines SET backorder_qty = 0 WHERE id = 'SO-3-1'");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = Daemon::start_with_args(&db, &[], &["--listen", &listen]);

    let (status, report) = http_get(port, "/v1/audit");
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["drift"], true);
    assert_eq!(
        ids(&report, "lines", "line_id"),
        BTreeSet::from(["SO-3-1".to_owned()])
    );
    assert_eq!(report["orders"], json!([]), "SO-3's totals are right");

    // The full run through the daemon.
    let run = db.run(&["recalc", "--all", "--wait", "--timeout", "60"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (status, order) = http_get(port, "/v1/orders/SO-3");
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["backorder_qty"], 3, "{order}");
    assert_eq!(order["backorder_status"], "partial", "{order}");
    let (status, report) = http_get(port, "/v1/audit");
    assert_eq!(status, 200);
    assert_eq!(report["drift"], false, "{report}");
    drop(daemon);
    assert_book_answer(&db);
}

fn an_override_writes_a_history_row_for_its_line(backend: Backend) {
    let db = recalculated_book(backend);
    let sent = send_events(
        &db,
        &[
            json!({"id": "ov-1", "type": "backorder_override", "line_id": "SO-3-1", "backorder_qty": 1}),
        ],
        &[],
    );
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    let rows = history(&db, "SO-3");
    let cause_rows: Vec<&(String, i64, i64, String)> =
        rows.iter().filter(|r| r.3 == "ov-1").collect();
    assert_eq!(
        cause_rows,
        [
            &("SO-3-1".to_owned(), 3, 1, "ov-1".to_owned()),
            &(String::new(), 3, 1, "ov-1".to_owned()),
        ]
    );
    // The override stands until the next recalculation of TEA, which the
    // audit reports as a difference from the contract's answer.
    let (code, report) = audit(&db, &[]);
    assert_eq!(code, 3);
    assert_eq!(
        ids(&report, "lines", "line_id"),
        BTreeSet::from(["SO-3-1".to_owned()])
    );
}

/// A generated book made to use every part of the stored state the audit
/// reads: replacement SKUs (in the generator's products), a warehouse
/// whose stock does not count, warehouse-based pools, frozen orders whose
/// stored backorder stands, purchase orders for ETAs, and orders whose
/// lines' SKUs are not in position order (the lines are read by SKU).
fn mixed_book() -> Value {
    let mut book = crate::daemon_support::generate(3000, 120, 7);
    book["settings"] = json!({
        "consider_replacement_sku": true,
        "warehouse_based": true,
        "prioritize_rush": true,
        "include_on_hold": false,
    });
    book["warehouses"][2]["kind"] = json!("dropship");
    let statuses = ["on_hold", "shipped", "quote", "cancelled"];
    for (i, order) in book["orders"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        if i % 17 == 0 {
            order["status"] = json!(statuses[(i / 17) % statuses.len()]);
            for line in order["lines"].as_array_mut().unwrap() {
                line["backorder_qty"] = json!(line["qty"].as_i64().unwrap() / 2);
            }
        }
    }
    book
}

/// `(backorder_qty, eta)` of every line and `(status, backorder_qty)` of
/// every order, as `simulate` says or as the audit says (its expected
/// values where it reports one, else the stored ones).
type Answers = (
    std::collections::BTreeMap<String, (i64, Value)>,
    std::collections::BTreeMap<String, (String, i64)>,
);

fn simulate_answers(snapshot: &Value) -> Answers {
    let result = simulate(snapshot);
    let lines = result["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let id = l["line_id"].as_str().unwrap().to_owned();
            (id, (l["backorder_qty"].as_i64().unwrap(), l["eta"].clone()))
        })
        .collect();
    let orders = result["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let id = o["order_id"].as_str().unwrap().to_owned();
            let status = o["status"].as_str().unwrap().to_owned();
            (id, (status, o["backorder_qty"].as_i64().unwrap()))
        })
        .collect();
    (lines, orders)
}

fn audit_answers(db: &TempDatabase, report: &Value) -> Answers {
    let (mut lines, mut orders): Answers = Default::default();
    let stored_lines: Vec<(String, i64, Option<String>)> =
        db.fetch_all("SELECT id, CAST(backorder_qty AS BIGINT), eta FROM order_lines");
    for (id, qty, eta) in stored_lines {
        lines.insert(id, (qty, eta.map_or(Value::Null, Value::from)));
    }
    let stored_orders: Vec<(String, String, i64)> =
        db.fetch_all("SELECT id, backorder_status, CAST(backorder_qty AS BIGINT) FROM orders");
    for (id, status, qty) in stored_orders {
        orders.insert(id, (status, qty));
    }
    for l in report["lines"].as_array().unwrap() {
        let expected = &l["expected"];
        lines.insert(
            l["line_id"].as_str().unwrap().to_owned(),
            (
                expected["backorder_qty"].as_i64().unwrap(),
                expected["eta"].clone(),
            ),
        );
    }
    for o in report["orders"].as_array().unwrap() {
        let expected = &o["expected"];
        orders.insert(
            o["order_id"].as_str().unwrap().to_owned(),
            (
                expected["backorder_status"].as_str().unwrap().to_owned(),
                expected["backorder_qty"].as_i64().unwrap(),
            ),
        );
    }
    (lines, orders)
}

fn the_audit_of_a_fresh_import_is_the_answer_of_simulate(backend: Backend) {
    let db = TempDatabase::of(backend);
    let file = db.scratch("book.json");
    let book = mixed_book();
    std::fs::write(&file, book.to_string()).unwrap();
    let imported = db.run(&["import", file.to_str().unwrap()], None);
    assert_eq!(imported.code, 0, "{}", imported.stderr);

    // Nothing recalculated yet: every stored value is the import's.
    let (code, report) = audit(&db, &[]);
    assert_eq!(code, 3, "the import's values are not the answer");
    assert!(
        report["dirty_skus"].as_i64().unwrap() > 0,
        "{}",
        report["dirty_skus"]
    );
    assert_eq!(report["lines_checked"], 3000);
    let mut at_audit = export(&db);
    at_audit["as_of"] = report["as_of"].clone();
    let want = simulate_answers(&at_audit);
    let got = audit_answers(&db, &report);
    assert_eq!(got.0.len(), 3000);
    let wrong_lines: Vec<_> = got
        .0
        .iter()
        .filter(|(id, v)| want.0.get(*id) != Some(v))
        .collect();
    assert!(
        wrong_lines.is_empty(),
        "lines: {:?}",
        &wrong_lines[..wrong_lines.len().min(10)]
    );
    let wrong_orders: Vec<_> = got
        .1
        .iter()
        .filter(|(id, v)| want.1.get(*id) != Some(v))
        .collect();
    assert!(
        wrong_orders.is_empty(),
        "orders: {:?}",
        &wrong_orders[..wrong_orders.len().min(10)]
    );
    assert_eq!(got.1.len(), want.1.len());

    // The repair writes exactly that and clears the marks: the SKUs are
    // recalculated, nothing is left for the worker.
    let (code, repaired) = audit(&db, &["--repair"]);
    assert_eq!(code, 3);
    assert_eq!(repaired["lines"], report["lines"]);
    let status = db.run(&["status"], None).ok_json();
    assert_eq!(status["dirty_skus"], 0, "{status}");
    let (code, clean) = audit(&db, &[]);
    assert_eq!(code, 0, "{clean}");
    assert_eq!(clean["dirty_skus"], 0);
    assert_eq!(full_run(&db), (0, 0));
}
