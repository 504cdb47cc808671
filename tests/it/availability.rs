//! The availability feed and the purchasing report, end to end on both
//! databases: the real binary's `import`, `event --wait` through `serve`,
//! the HTTP API and the `availability` / `purchasing` commands.

use std::time::Duration;

use backorderd::engine::Snapshot;
use backorderd::feed::{self, FeedSource};
use serde_json::{Value, json};

use crate::daemon_support::{Daemon, send_events};
use crate::support::{Backend, TempDatabase, on_both_backends};

on_both_backends!(
    the_feed_and_the_report_follow_receipts_adjustments_and_thresholds,
    a_changed_replacement_sku_recalculates_both_skus,
    bad_thresholds_filters_and_vendors_are_refused_naming_them,
);

fn order(id: &str, day: u32, ship_from: &str, lines: Value) -> Value {
    json!({
        "id": id,
        "order_date": format!("2026-11-{day:02}T10:00:00Z"),
        "ship_from": ship_from,
        "lines": lines,
    })
}

/// TEA: 4 on hand in MAIN, 2 on order, orders for 9 (6 shipping from MAIN,
/// 3 from EAST), thresholds MAIN 5 and EAST 2. CUP: 10 on hand, 17 ordered.
pub(crate) fn book() -> Value {
    json!({
        "as_of": "2026-11-22T12:00:00Z",
        "warehouses": [
            {"id": "MAIN", "kind": "normal"},
            {"id": "EAST", "kind": "normal"},
            {"id": "DROP", "kind": "dropship"}
        ],
        "products": [
            {"sku": "TEA", "vendor": "Leafy", "backorder_thresholds": {"MAIN": 5, "EAST": 2}},
            {"sku": "CUP"}
        ],
        "inventory": [
            {"sku": "TEA", "warehouse": "MAIN", "on_hand": 4},
            {"sku": "CUP", "warehouse": "MAIN", "on_hand": 10}
        ],
        "purchase_orders": [
            {"id": "PO-1", "sku": "TEA", "warehouse": "MAIN", "qty_ordered": 2,
             "qty_received": 0, "expected_date": "2026-12-01"}
        ],
        "orders": [
            order("SO-1", 1, "MAIN", json!([{"id": "SO-1-1", "sku": "TEA", "qty": 3}])),
            order("SO-2", 2, "MAIN", json!([
                {"id": "SO-2-1", "sku": "TEA", "qty": 3},
                {"id": "SO-2-2", "sku": "CUP", "qty": 2}
            ])),
            order("SO-3", 3, "EAST", json!([{"id": "SO-3-1", "sku": "TEA", "qty": 3}])),
            order("SO-4", 4, "MAIN", json!([{"id": "SO-4-1", "sku": "CUP", "qty": 15}])),
        ]
    })
}

pub(crate) fn import(db: &TempDatabase, snapshot: &Value) {
    let file = db.scratch("book.json");
    std::fs::write(&file, snapshot.to_string()).unwrap();
    let imported = db.run(&["import", file.to_str().unwrap()], None);
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    let run = db.run(&["recalc", "--all", "--inline"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

pub(crate) fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

/// `(status, content type, body)` of a GET, with an `Accept` header when given.
fn get(port: u16, path: &str, accept: Option<&str>) -> (u16, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut request = agent.get(format!("http://127.0.0.1:{port}{path}"));
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let mut response = request.call().expect("the daemon answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (
        status,
        content_type,
        response.body_mut().read_to_string().unwrap(),
    )
}

pub(crate) fn get_json(port: u16, path: &str) -> (u16, Value) {
    let (status, _, text) = get(port, path, None);
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn warehouse<'a>(entry: &'a Value, id: &str) -> &'a Value {
    entry["warehouses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["warehouse"] == id)
        .unwrap_or_else(|| panic!("no {id} in {entry}"))
}

/// The served feed is the pure function of `export`'s snapshot, every way
/// it is served.
fn assert_feed_is_the_exports(db: &TempDatabase, port: u16) -> Vec<Value> {
    let exported = db.run(&["export"], None);
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    let snapshot: Snapshot = serde_json::from_str(&exported.stdout).unwrap();
    let expected: Vec<Value> =
        feed::entries(&FeedSource::from_stored(&snapshot, chrono::Utc::now()))
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect();
    let (status, content_type, text) = get(port, "/v1/availability", Some("application/x-ndjson"));
    assert_eq!(status, 200, "{text}");
    assert_eq!(content_type, "application/x-ndjson");
    assert_eq!(lines(&text), expected);
    let (_, _, text) = get(port, "/v1/availability?format=jsonl", None);
    assert_eq!(lines(&text), expected);
    let (status, page) = get_json(port, "/v1/availability?limit=1000");
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["entries"].as_array().unwrap(), &expected);
    let cli = db.run(&["availability", "--jsonl"], None);
    assert_eq!(cli.code, 0, "{}", cli.stderr);
    assert_eq!(lines(&cli.stdout), expected);
    for entry in &expected {
        let sku = entry["sku"].as_str().unwrap();
        let (status, one) = get_json(port, &format!("/v1/availability/{sku}"));
        assert_eq!(status, 200, "{one}");
        assert_eq!(&one, entry, "{sku} alone");
    }
    expected
}

fn the_feed_and_the_report_follow_receipts_adjustments_and_thresholds(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &book());
    let port = free_port();
    let _daemon = Daemon::start_with_args(&db, &[], &["--listen", &format!("127.0.0.1:{port}")]);

    assert_feed_is_the_exports(&db, port);
    let (status, tea) = get_json(port, "/v1/availability/TEA");
    assert_eq!(status, 200, "{tea}");
    assert_eq!(
        [
            &tea["on_hand"],
            &tea["allocated"],
            &tea["backordered"],
            &tea["free"],
            &tea["on_order"]
        ],
        [4, 4, 5, 0, 2],
        "{tea}"
    );
    assert_eq!(tea["next_eta"], "2026-12-01");
    assert_eq!(tea["vendor"], "Leafy");
    // MAIN may take 5 - 2 more, EAST none (3 > 2: over its threshold).
    assert_eq!(tea["sellable"], 3, "{tea}");
    assert_eq!(tea["over_threshold"], true);
    assert_eq!(warehouse(&tea, "EAST")["backordered"], 3);
    assert_eq!(warehouse(&tea, "EAST")["over_threshold"], true);
    assert_eq!(warehouse(&tea, "MAIN")["backordered"], 2);
    let (_, cup) = get_json(port, "/v1/availability/CUP");
    assert_eq!(cup["backordered"], 7, "{cup}");
    assert_eq!(cup["sellable"], Value::Null, "no threshold: unlimited");

    // Sellercloud's filter: backordered between bounds, per warehouse.
    let skus = |path: &str| -> Vec<String> {
        let (status, page) = get_json(port, path);
        assert_eq!(status, 200, "{page}");
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["sku"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        skus("/v1/availability?backordered_min=3&warehouse=EAST"),
        ["TEA"]
    );
    assert_eq!(skus("/v1/availability?backordered_min=6"), ["CUP"]);
    assert_eq!(
        skus("/v1/availability?backordered_min=1&backordered_max=5"),
        ["TEA"]
    );
    assert_eq!(skus("/v1/availability?limit=1"), ["CUP"]);
    assert_eq!(skus("/v1/availability?limit=1&after=CUP"), ["TEA"]);
    let cli = db.run(
        &[
            "availability",
            "--backordered-min",
            "3",
            "--warehouse",
            "EAST",
        ],
        None,
    );
    assert_eq!(cli.code, 0, "{}", cli.stderr);
    assert_eq!(cli.json().as_array().unwrap().len(), 1, "{}", cli.stdout);

    // Purchasing: TEA is 3 short (5 waiting, 2 on order), CUP 7.
    let (status, report) = get_json(port, "/v1/purchasing");
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["vendors"][0]["vendor"], "Leafy", "{report}");
    let tea_short = &report["vendors"][0]["skus"][0];
    assert_eq!(
        [
            &tea_short["shortfall"],
            &tea_short["backordered"],
            &tea_short["on_order"],
            &tea_short["waiting_orders"]
        ],
        [3, 5, 2, 2],
        "{report}"
    );
    assert_eq!(tea_short["oldest_waiting_order"], "2026-11-02T10:00:00Z");
    assert_eq!(report["vendors"][1]["vendor"], Value::Null);
    assert_eq!(report["vendors"][1]["skus"][0]["sku"], "CUP");
    assert_eq!(report["vendors"][1]["skus"][0]["shortfall"], 7);
    let (status, content_type, csv) = get(port, "/v1/purchasing", Some("text/csv"));
    assert_eq!(status, 200, "{csv}");
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    assert_eq!(
        csv,
        "vendor,sku,shortfall,backordered,on_order,oldest_waiting_order,waiting_orders\r\n\
         Leafy,TEA,3,5,2,2026-11-02T10:00:00Z,2\r\n\
         ,CUP,7,7,0,2026-11-04T10:00:00Z,1\r\n"
    );
    let cli = db.run(&["purchasing", "--vendor", "Leafy"], None);
    assert_eq!(cli.code, 0, "{}", cli.stderr);
    assert_eq!(cli.json()["vendors"].as_array().unwrap().len(), 1);
    let cli = db.run(&["purchasing", "--csv"], None);
    assert_eq!(cli.stdout, csv);

    // The PO arrives, a unit turns up in EAST.
    let sent = send_events(
        &db,
        &[
            json!({"id": "r1", "type": "po_received", "sku": "TEA", "warehouse": "MAIN", "qty": 2, "po_id": "PO-1"}),
            json!({"id": "a1", "type": "inventory_adjusted", "sku": "TEA", "warehouse": "EAST", "delta": 1}),
        ],
        &["--wait", "--timeout", "60"],
    );
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    assert_feed_is_the_exports(&db, port);
    let (_, tea) = get_json(port, "/v1/availability/TEA");
    assert_eq!(
        [
            &tea["on_hand"],
            &tea["allocated"],
            &tea["backordered"],
            &tea["on_order"]
        ],
        [7, 7, 2, 0],
        "{tea}"
    );
    assert_eq!(tea["next_eta"], Value::Null);
    assert_eq!(tea["over_threshold"], false, "EAST: 2 of 2");
    assert_eq!(tea["sellable"], 5, "{tea}");
    let (_, report) = get_json(port, "/v1/purchasing?vendor=Leafy");
    assert_eq!(report["vendors"][0]["skus"][0]["shortfall"], 2, "{report}");
    assert_eq!(report["vendors"][0]["skus"][0]["waiting_orders"], 1);

    // A tighter threshold, by event: EAST is over it now.
    let sent = send_events(
        &db,
        &[json!({"id": "p1", "type": "product_upserted", "product":
            {"sku": "TEA", "vendor": "Leafy", "backorder_thresholds": {"MAIN": 0, "EAST": 1}}})],
        &["--wait", "--timeout", "60"],
    );
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    let (_, tea) = get_json(port, "/v1/availability/TEA");
    assert_eq!(tea["over_threshold"], true, "{tea}");
    assert_eq!(warehouse(&tea, "EAST")["threshold"], 1);
    assert_eq!(tea["sellable"], 0);
    // No backorders allowed at all: only free stock is sellable.
    let sent = send_events(
        &db,
        &[json!({"id": "p2", "type": "product_upserted", "product":
            {"sku": "CUP", "allow_backorders": false, "vendor": "Potter"}})],
        &["--wait", "--timeout", "60"],
    );
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    let (_, cup) = get_json(port, "/v1/availability/CUP");
    assert_eq!(cup["sellable"], 0, "{cup}");
    assert_eq!(cup["vendor"], "Potter");
    let expected = assert_feed_is_the_exports(&db, port);
    assert_eq!(expected.len(), 2);
    let exported: Value = db.run(&["export"], None).json();
    assert_eq!(
        exported["products"],
        json!([
            {"sku": "TEA", "replacement_sku": null, "vendor": "Leafy",
             "backorder_thresholds": {"EAST": 1, "MAIN": 0}},
            {"sku": "CUP", "replacement_sku": null, "vendor": "Potter", "allow_backorders": false}
        ])
    );
}

fn a_changed_replacement_sku_recalculates_both_skus(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(
        &db,
        &json!({
            "settings": {"consider_replacement_sku": true},
            "warehouses": [{"id": "MAIN", "kind": "normal"}],
            "products": [{"sku": "TEA"}],
            "inventory": [{"sku": "TEA-V2", "warehouse": "MAIN", "on_hand": 5}],
            "orders": [order("SO-1", 1, "MAIN", json!([{"id": "SO-1-1", "sku": "TEA", "qty": 3}]))]
        }),
    );
    let port = free_port();
    let _daemon = Daemon::start_with_args(&db, &[], &["--listen", &format!("127.0.0.1:{port}")]);
    let (_, tea) = get_json(port, "/v1/availability/TEA");
    assert_eq!(tea["backordered"], 3, "{tea}");
    let (_, v2) = get_json(port, "/v1/availability/TEA-V2");
    assert_eq!(v2["free"], 5, "{v2}");

    let upsert = |id: &str, replacement: Value| {
        let sent = send_events(
            &db,
            &[json!({"id": id, "type": "product_upserted",
                     "product": {"sku": "TEA", "replacement_sku": replacement}})],
            &["--wait", "--timeout", "60"],
        );
        assert_eq!(sent.code, 0, "{}", sent.stderr);
    };
    // TEA's lines now draw on TEA-V2's stock, without a re-import.
    upsert("p1", json!("TEA-V2"));
    let (_, tea) = get_json(port, "/v1/availability/TEA");
    assert_eq!([&tea["backordered"], &tea["allocated"]], [0, 3], "{tea}");
    let (_, v2) = get_json(port, "/v1/availability/TEA-V2");
    assert_eq!(v2["free"], 2, "3 of 5 cover TEA: {v2}");
    assert_feed_is_the_exports(&db, port);
    // And back.
    upsert("p2", Value::Null);
    let (_, tea) = get_json(port, "/v1/availability/TEA");
    assert_eq!(tea["backordered"], 3, "{tea}");
    let (_, v2) = get_json(port, "/v1/availability/TEA-V2");
    assert_eq!(v2["free"], 5, "{v2}");
}

fn bad_thresholds_filters_and_vendors_are_refused_naming_them(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &book());
    // The stored state, without the export's own time.
    let stored = || {
        let mut exported = db.run(&["export"], None).json();
        exported.as_object_mut().unwrap().remove("as_of");
        exported
    };
    let before = stored();

    // By event: an unknown warehouse, a negative threshold.
    let sent = send_events(
        &db,
        &[json!({"id": "p1", "type": "product_upserted", "product":
            {"sku": "TEA", "backorder_thresholds": {"NOPE": 1}}})],
        &[],
    );
    assert_eq!(sent.code, 2, "{}", sent.stderr);
    assert!(
        sent.stderr.contains("TEA") && sent.stderr.contains("\"NOPE\""),
        "{}",
        sent.stderr
    );
    let sent = send_events(
        &db,
        &[json!({"id": "p2", "type": "product_upserted", "product":
            {"sku": "TEA", "backorder_thresholds": {"MAIN": -1}}})],
        &[],
    );
    assert_eq!(sent.code, 2, "{}", sent.stderr);
    assert!(
        sent.stderr.contains("backorder_thresholds"),
        "{}",
        sent.stderr
    );
    assert!(sent.stderr.contains("TEA"), "{}", sent.stderr);
    // By import: refused whole, naming the product and the warehouse.
    let mut bad = book();
    bad["products"][0]["backorder_thresholds"] = json!({"NOPE": 3});
    let file = db.scratch("bad.json");
    std::fs::write(&file, bad.to_string()).unwrap();
    let imported = db.run(&["import", file.to_str().unwrap()], None);
    assert_eq!(imported.code, 2, "{}", imported.stderr);
    assert!(
        imported.stderr.contains("product \"TEA\"") && imported.stderr.contains("\"NOPE\""),
        "{}",
        imported.stderr
    );
    assert_eq!(stored(), before, "nothing changed");

    // Filters and vendors, on the command line (exit 2) and over HTTP (400).
    for (args, named) in [
        (
            vec![
                "availability",
                "--warehouse",
                "NOPE",
                "--backordered-min",
                "1",
            ],
            "warehouse",
        ),
        (
            vec![
                "availability",
                "--backordered-min",
                "3",
                "--backordered-max",
                "1",
            ],
            "backordered_min",
        ),
        (
            vec!["availability", "--backordered-max", "-1"],
            "backordered_max",
        ),
        (vec!["purchasing", "--vendor", "Nobody"], "vendor"),
    ] {
        let run = db.run(&args, None);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(named), "{args:?}: {}", run.stderr);
    }
    let missing = db.run(&["availability", "NO-SUCH-SKU"], None);
    assert_eq!(missing.code, 1, "{}", missing.stderr);

    let port = free_port();
    let _daemon = Daemon::start_with_args(&db, &[], &["--listen", &format!("127.0.0.1:{port}")]);
    for (path, named) in [
        ("/v1/availability?warehouse=NOPE", "warehouse"),
        (
            "/v1/availability?backordered_min=3&backordered_max=1",
            "backordered_min",
        ),
        ("/v1/availability?backordered_min=-2", "backordered_min"),
        ("/v1/availability?format=xml", "format"),
        ("/v1/purchasing?vendor=Nobody", "vendor"),
        ("/v1/purchasing?format=xls", "format"),
    ] {
        let (status, body) = get_json(port, path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(named),
            "{path}: {body}"
        );
    }
    let (status, body) = get_json(port, "/v1/availability/NO-SUCH-SKU");
    assert_eq!(status, 404, "{body}");
}
