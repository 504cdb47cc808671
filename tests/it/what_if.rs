//! The what-if preview (`backorderd what-if`, `POST /v1/what-if`): it
//! writes nothing, and what it answers is exactly what applying the
//! settings change, then recalculating, writes.

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::daemon_support::{Daemon, generate, send_events};
use crate::support::{Backend, TempDatabase, on_both_backends};

on_both_backends!(
    the_preview_names_the_orders_a_setting_moves_and_writes_nothing,
    the_preview_is_exactly_what_applying_the_change_writes,
    a_bad_setting_or_event_is_refused_by_name,
    serve_answers_the_preview_over_http,
);

const TOKEN: &str = "what-if-token-81c2";

/// 4 TEA on hand and 2 on a purchase order for three orders of 3; SO-2 is
/// a rush order placed after SO-1.
fn book() -> Value {
    let order = |id: &str, day: u32, rush: bool, lines: Value| json!({"id": id, "order_date": format!("2026-11-{day:02}T10:00:00Z"), "rush": rush, "lines": lines});
    json!({
        "settings": {},
        "warehouses": [{"id": "MAIN", "kind": "normal"}],
        "products": [{"sku": "TEA"}, {"sku": "CUP"}],
        "inventory": [
            {"sku": "TEA", "warehouse": "MAIN", "on_hand": 4},
            {"sku": "CUP", "warehouse": "MAIN", "on_hand": 10}
        ],
        "purchase_orders": [{"id": "PO-1", "sku": "TEA", "warehouse": "MAIN",
            "qty_ordered": 2, "qty_received": 0, "expected_date": "2026-12-20"}],
        "orders": [
            order("SO-1", 1, false, json!([{"id": "SO-1-1", "sku": "TEA", "qty": 3, "backorder_qty": 0}])),
            order("SO-2", 2, true, json!([{"id": "SO-2-1", "sku": "TEA", "qty": 3, "backorder_qty": 0}])),
            order("SO-3", 3, false, json!([
                {"id": "SO-3-1", "sku": "TEA", "qty": 3, "backorder_qty": 0},
                {"id": "SO-3-2", "sku": "CUP", "qty": 1, "backorder_qty": 0}
            ])),
        ]
    })
}

fn imported(backend: Backend, snapshot: &Value) -> TempDatabase {
    let db = TempDatabase::of(backend);
    let file = db.scratch("book.json");
    std::fs::write(&file, snapshot.to_string()).unwrap();
    let run = db.run(&["import", file.to_str().unwrap()], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = db.run(&["recalc", "--all", "--inline"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    db
}

/// Every line's `(backorder_qty, eta)` and every order's `(status, qty)`,
/// straight from the tables, and the number of events received.
type LineValues = (i64, Option<String>);
type OrderValues = (String, i64);
type Lines = BTreeMap<String, LineValues>;
type Orders = BTreeMap<String, OrderValues>;
/// Before and after, by id.
type LineMoves = BTreeMap<String, (LineValues, LineValues)>;
type OrderMoves = BTreeMap<String, (OrderValues, OrderValues)>;

fn stored(db: &TempDatabase) -> (Lines, Orders, i64) {
    let lines: Vec<(String, i64, Option<String>)> =
        db.fetch_all("SELECT id, CAST(backorder_qty AS BIGINT), eta FROM order_lines");
    let orders: Vec<(String, String, i64)> =
        db.fetch_all("SELECT id, backorder_status, CAST(backorder_qty AS BIGINT) FROM orders");
    let events: Vec<(i64,)> = db.fetch_all("SELECT CAST(COUNT(*) AS BIGINT) FROM received_events");
    (
        lines.into_iter().map(|(id, q, e)| (id, (q, e))).collect(),
        orders.into_iter().map(|(id, s, q)| (id, (s, q))).collect(),
        events[0].0,
    )
}

fn what_if(db: &TempDatabase, args: &[&str]) -> Value {
    let mut all = vec!["what-if"];
    all.extend_from_slice(args);
    db.run(&all, None).ok_json()
}

/// The preview's lines as `line id -> ((qty, eta) before, (qty, eta) after)`.
fn preview_lines(report: &Value) -> LineMoves {
    let eta = |v: &Value| v.as_str().map(str::to_owned);
    report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["line_id"].as_str().unwrap().to_owned(),
                (
                    (
                        l["backorder_qty_before"].as_i64().unwrap(),
                        eta(&l["eta_before"]),
                    ),
                    (
                        l["backorder_qty_after"].as_i64().unwrap(),
                        eta(&l["eta_after"]),
                    ),
                ),
            )
        })
        .collect()
}

fn preview_orders(report: &Value) -> OrderMoves {
    report["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let s = |k: &str| o[k].as_str().unwrap().to_owned();
            let q = |k: &str| o[k].as_i64().unwrap();
            (
                s("order_id"),
                (
                    (s("status_before"), q("backorder_qty_before")),
                    (s("status_after"), q("backorder_qty_after")),
                ),
            )
        })
        .collect()
}

/// What changed between two reads of the tables.
fn line_diff(before: &Lines, after: &Lines) -> LineMoves {
    after
        .iter()
        .filter(|(id, v)| before.get(*id) != Some(v))
        .map(|(id, v)| (id.clone(), (before[id].clone(), v.clone())))
        .collect()
}

fn order_diff(before: &Orders, after: &Orders) -> OrderMoves {
    after
        .iter()
        .filter(|(id, v)| before.get(*id) != Some(v))
        .map(|(id, v)| (id.clone(), (before[id].clone(), v.clone())))
        .collect()
}

fn the_preview_names_the_orders_a_setting_moves_and_writes_nothing(backend: Backend) {
    let db = imported(backend, &book());
    let before = stored(&db);
    // Now: SO-1 gets 3, SO-2 1 (short 2, covered by PO-1), SO-3 nothing.
    assert_eq!(before.0["SO-2-1"], (2, Some("2026-12-20".to_owned())));
    let report = what_if(&db, &["--settings", r#"{"prioritize_rush": true}"#]);
    // Rush first: SO-2 gets 3, SO-1 1 (short 2, now on PO-1); SO-3 as it was.
    assert_eq!(report["lines_changed"], 2, "{report}");
    assert_eq!(report["orders_changed"], 2, "{report}");
    assert_eq!(report["orders_newly_backordered"], 1, "{report}");
    assert_eq!(report["orders_cleared"], 1, "{report}");
    assert_eq!(report["backorder_qty_delta"], 0, "{report}");
    assert_eq!(report["lines_checked"], 4, "{report}");
    assert_eq!(report["truncated"], false);
    assert_eq!(
        report["lines"][0],
        json!({"order_id": "SO-1", "line_id": "SO-1-1", "sku": "TEA",
               "backorder_qty_before": 0, "backorder_qty_after": 2,
               "eta_before": null, "eta_after": "2026-12-20",
               "status_before": "none", "status_after": "partial"}),
        "{report}"
    );
    assert_eq!(report["lines"][1]["line_id"], "SO-2-1");
    assert_eq!(report["lines"][1]["status_after"], "none");
    assert_eq!(stored(&db), before, "the preview wrote nothing");

    // With an extra event: one more TEA received leaves SO-1 short 1 only.
    let events = db.scratch("events.jsonl");
    std::fs::write(
        &events,
        r#"{"id": "r1", "type": "po_received", "sku": "TEA", "warehouse": "MAIN", "qty": 1}"#,
    )
    .unwrap();
    let report = what_if(
        &db,
        &[
            "--settings",
            r#"{"prioritize_rush": true}"#,
            "--events",
            events.to_str().unwrap(),
            "--limit",
            "1",
        ],
    );
    assert_eq!(report["lines_changed"], 2, "{report}");
    assert_eq!(report["lines"].as_array().unwrap().len(), 1, "bounded list");
    assert_eq!(report["truncated"], true);
    assert_eq!(report["lines"][0]["backorder_qty_after"], 1, "{report}");
    assert_eq!(stored(&db), before, "the preview with events wrote nothing");
    // The event id was not recorded: sending it for real applies it.
    let sent = send_events(
        &db,
        &[json!({"id": "r1", "type": "po_received", "sku": "TEA", "warehouse": "MAIN", "qty": 1})],
        &[],
    );
    assert_eq!(sent.ok_json()["accepted"], json!(["r1"]));
}

fn the_preview_is_exactly_what_applying_the_change_writes(backend: Backend) {
    let db = imported(backend, &generate(3000, 60, 11));
    for (n, settings) in [
        json!({"warehouse_based": true, "prioritize_rush": true}),
        json!({"prioritize_fully_shippable": true, "max_days_back": 20}),
    ]
    .into_iter()
    .enumerate()
    {
        let before = stored(&db);
        let extra = json!({"id": format!("extra-{n}"), "type": "inventory_adjusted",
                           "sku": "SKU-000001", "warehouse": "MAIN", "delta": 7});
        let events = db.scratch(&format!("extra-{n}.jsonl"));
        std::fs::write(&events, extra.to_string()).unwrap();
        let report = what_if(
            &db,
            &[
                "--settings",
                &settings.to_string(),
                "--events",
                events.to_str().unwrap(),
                "--limit",
                "100000",
            ],
        );
        assert_eq!(stored(&db), before, "the preview wrote nothing");
        assert!(
            report["lines_changed"].as_u64().unwrap() > 0,
            "{settings}: a change that moves something"
        );

        // For real: the same batch, then the recalculation it calls for.
        let change =
            json!({"id": format!("apply-{n}"), "type": "settings_changed", "settings": settings});
        let sent = send_events(&db, &[change, extra], &[]);
        assert_eq!(sent.code, 0, "{}", sent.stderr);
        let run = db.run(&["recalc", "--all", "--inline"], None);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let after = stored(&db);

        let written = line_diff(&before.0, &after.0);
        assert_eq!(
            report["lines_changed"].as_u64().unwrap() as usize,
            written.len()
        );
        assert_eq!(preview_lines(&report), written, "{settings}: lines");
        let written = order_diff(&before.1, &after.1);
        let previewed = preview_orders(&report);
        // An order can change only its line counts (same status and qty):
        // listed by the preview, invisible in this diff.
        let moved: OrderMoves = previewed
            .iter()
            .filter(|(_, (b, a))| b != a)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(moved, written, "{settings}: orders");
        let skus: BTreeSet<&str> = report["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["sku"].as_str().unwrap())
            .collect();
        assert!(skus.iter().all(|s| s.starts_with("SKU-")), "{skus:?}");
    }
}

fn a_bad_setting_or_event_is_refused_by_name(backend: Backend) {
    let db = imported(backend, &book());
    let before = stored(&db);
    let run = db.run(
        &["what-if", "--settings", r#"{"prioritise_rush": true}"#],
        None,
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("prioritise_rush"), "{}", run.stderr);
    let run = db.run(&["what-if", "--settings", r#"{"max_days_back": -1}"#], None);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("max_days_back"), "{}", run.stderr);
    // Refused by the stored state: the override names a line there is not.
    let events = db.scratch("bad.jsonl");
    std::fs::write(
        &events,
        r#"{"id": "ov-9", "type": "backorder_override", "line_id": "NOPE", "backorder_qty": 1}"#,
    )
    .unwrap();
    let run = db.run(
        &[
            "what-if",
            "--settings",
            "{}",
            "--events",
            events.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("ov-9") && run.stderr.contains("NOPE"),
        "{}",
        run.stderr
    );
    assert_eq!(stored(&db), before);
}

fn post(port: u16, token: Option<&str>, body: &str) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut request = agent.post(format!("http://127.0.0.1:{port}/v1/what-if"));
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let mut response = request.send(body.as_bytes()).expect("the daemon answers");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn serve_answers_the_preview_over_http(backend: Backend) {
    let db = imported(backend, &book());
    let before = stored(&db);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = Daemon::start_with_args(
        &db,
        &[("BACKORDERD__HTTP__TOKEN", TOKEN)],
        &["--listen", &listen],
    );

    let body = r#"{"settings": {"prioritize_rush": true}, "limit": 10}"#;
    let (status, report) = post(port, Some(TOKEN), body);
    assert_eq!(status, 200, "{report}");
    let mut cli = what_if(&db, &["--settings", r#"{"prioritize_rush": true}"#]);
    let mut http = report.clone();
    cli["as_of"] = Value::Null;
    http["as_of"] = Value::Null;
    assert_eq!(http, cli, "the API and the command answer alike");
    assert_eq!(report["orders_changed"], 2);

    let (status, _) = post(port, None, body);
    assert_eq!(status, 401);
    let (status, err) = post(port, Some(TOKEN), r#"{"settings": {"rush_first": true}}"#);
    assert_eq!(status, 422, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("rush_first"),
        "{err}"
    );
    let (status, err) = post(
        port,
        Some(TOKEN),
        r#"{"settings": {}, "events": [{"id": "ov-1", "type": "backorder_override", "line_id": "NOPE", "backorder_qty": 1}]}"#,
    );
    assert_eq!(status, 422, "{err}");
    assert!(err["error"].as_str().unwrap().contains("NOPE"), "{err}");
    let (status, _) = post(port, Some(TOKEN), "{not json");
    assert_eq!(status, 400);
    let (status, err) = post(port, Some(TOKEN), r#"{"settings": {}, "limit": 100001}"#);
    assert_eq!(status, 422, "{err}");
    drop(daemon);
    assert_eq!(stored(&db), before, "nothing written over HTTP either");
}
