//! Issue 9, findings 1 and 2: quantities and settings beyond their
//! documented bounds (README, "Limits") are refused with exit 2 / 422
//! naming the event or record, nothing applied, and no accepted input
//! poisons the store or panics the engine. Driven through the real binary,
//! on both databases, and over real HTTP.

use serde_json::{Value, json};
use std::time::Duration;

use crate::daemon_support::{Daemon, jsonl, send_events, wait_idle};
use crate::support::{Backend, Run, TempDatabase, backorderd, on_both_backends};

/// The bound of every quantity (and of on-hand, negated).
const MAX_QUANTITY: i64 = 1_000_000_000_000;
/// The bound of `max_days_back`.
const MAX_DAYS_BACK: u64 = 36_500;

fn book() -> Value {
    json!({
        "as_of": "2026-11-30T00:00:00Z",
        "settings": {},
        "warehouses": [{"id": "MAIN", "kind": "normal"}, {"id": "EAST", "kind": "normal"}],
        "products": [{"sku": "TEA"}, {"sku": "MUG"}],
        "inventory": [
            {"sku": "TEA", "warehouse": "MAIN", "on_hand": 5},
            {"sku": "MUG", "warehouse": "MAIN", "on_hand": 1}
        ],
        "purchase_orders": [
            {"id": "PO-1", "sku": "TEA", "warehouse": "MAIN", "qty_ordered": 10,
             "qty_received": 0, "expected_date": "2026-12-10"}
        ],
        "orders": [
            {"id": "SO-1", "order_date": "2026-11-01T10:00:00Z",
             "lines": [{"id": "SO-1-1", "sku": "TEA", "qty": 3}, {"id": "SO-1-2", "sku": "MUG", "qty": 2}]}
        ]
    })
}

fn import(db: &TempDatabase, snapshot: &Value) -> Run {
    db.run(&["import", "-"], Some(snapshot.to_string().as_bytes()))
}

/// The stored state, without its `as_of`.
fn state(db: &TempDatabase) -> Value {
    let mut export = db.run(&["export"], None).ok_json();
    export.as_object_mut().unwrap().remove("as_of");
    export
}

fn on_hand(state: &Value, sku: &str, warehouse: &str) -> i64 {
    state["inventory"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["sku"] == sku && r["warehouse"] == warehouse)
        .and_then(|r| r["on_hand"].as_i64())
        .unwrap_or_else(|| panic!("no on_hand of {sku} in {warehouse}: {state}"))
}

fn qty_received(state: &Value, po_id: &str) -> i64 {
    state["purchase_orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|po| po["id"] == po_id)
        .and_then(|po| po["qty_received"].as_i64())
        .unwrap_or_else(|| panic!("no purchase order {po_id}: {state}"))
}

/// Sends one event with `event -`; asserts it is refused with exit 2, the
/// message naming the event and saying `says`, and the state unchanged.
fn assert_event_refused(db: &TempDatabase, event: Value, says: &str) {
    let before = state(db);
    let id = event["id"].as_str().unwrap().to_owned();
    let run = send_events(db, &[event], &[]);
    assert_eq!(
        run.code, 2,
        "event {id} should be refused; stderr: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("(id \"{id}\")")) && run.stderr.contains(says),
        "the refusal should name event {id} and say {says:?}: {}",
        run.stderr
    );
    assert_eq!(state(db), before, "a refused event changed the state");
}

fn assert_accepted(db: &TempDatabase, events: &[Value]) {
    let run = send_events(db, events, &[]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
}

/// An order's stored total and status, read from its row.
fn stored_order(db: &TempDatabase, order_id: &str) -> (i64, String) {
    db.fetch_all::<(i64, String)>(&format!(
        "SELECT CAST(backorder_qty AS BIGINT), backorder_status FROM orders WHERE id = '{order_id}'"
    ))
    .pop()
    .unwrap_or_else(|| panic!("no order {order_id}"))
}

/// The repro of finding 1: quantities past the bound, and sums that would
/// grow past it, are refused; at the bound everything works, the stored
/// values stay integers and every later command still succeeds.
fn quantities_past_the_bound_are_refused_and_nothing_is_applied(backend: Backend) {
    let db = TempDatabase::of(backend);
    let imported = import(&db, &book());
    assert_eq!(imported.code, 0, "{}", imported.stderr);

    let receipt = |id: &str, qty: i64| json!({"id": id, "type": "po_received", "sku": "TEA", "warehouse": "MAIN", "qty": qty});
    assert_event_refused(&db, receipt("huge", i64::MAX), "qty is out of range");
    assert_event_refused(
        &db,
        json!({"id": "min", "type": "inventory_set", "sku": "TEA", "warehouse": "MAIN", "on_hand": i64::MIN}),
        "on_hand is out of range",
    );
    assert_event_refused(
        &db,
        json!({"id": "swing", "type": "inventory_adjusted", "sku": "TEA", "warehouse": "MAIN", "delta": i64::MIN}),
        "delta is out of range",
    );
    assert_event_refused(
        &db,
        json!({"id": "hand", "type": "backorder_override", "line_id": "SO-1-1", "backorder_qty": i64::MAX}),
        "backorder_qty is out of range",
    );
    assert_event_refused(
        &db,
        json!({"id": "wide", "type": "order_upserted", "order": {"id": "SO-2",
            "order_date": "2026-11-02T00:00:00Z",
            "lines": [{"id": "SO-2-1", "sku": "BIG", "qty": i64::MAX}, {"id": "SO-2-2", "sku": "BIG", "qty": i64::MAX}]}}),
        "line \"SO-2-1\" of order \"SO-2\": qty is out of range",
    );
    assert_event_refused(
        &db,
        json!({"id": "po", "type": "purchase_order_upserted", "purchase_order": {"id": "PO-2",
            "sku": "TEA", "warehouse": "MAIN", "qty_ordered": i64::MAX, "qty_received": 0}}),
        "purchase order \"PO-2\": qty_ordered is out of range",
    );

    // At the bound: accepted. A sum that would pass it: refused, whole.
    assert_accepted(
        &db,
        &[
            json!({"id": "count", "type": "inventory_set", "sku": "TEA", "warehouse": "MAIN", "on_hand": MAX_QUANTITY}),
        ],
    );
    assert_event_refused(&db, receipt("one-more", 1), "would become 1000000000001");
    assert_event_refused(
        &db,
        json!({"id": "adjust", "type": "inventory_adjusted", "sku": "TEA", "warehouse": "MAIN", "delta": 1}),
        "beyond the bounds",
    );
    assert_accepted(
        &db,
        &[
            json!({"id": "floor", "type": "inventory_set", "sku": "TEA", "warehouse": "MAIN", "on_hand": -MAX_QUANTITY}),
        ],
    );
    assert_event_refused(
        &db,
        json!({"id": "below", "type": "inventory_adjusted", "sku": "TEA", "warehouse": "MAIN", "delta": -1}),
        "would become -1000000000001",
    );

    // A PO's received qty grows by receipts: it keeps the bound too, and
    // the refusal undoes the on-hand the same event had moved.
    assert_accepted(
        &db,
        &[
            json!({"id": "r1", "type": "po_received", "sku": "TEA", "warehouse": "MAIN", "qty": MAX_QUANTITY, "po_id": "PO-1"}),
        ],
    );
    let after_receipt = state(&db);
    assert_eq!(on_hand(&after_receipt, "TEA", "MAIN"), 0);
    assert_eq!(qty_received(&after_receipt, "PO-1"), MAX_QUANTITY);
    assert_event_refused(
        &db,
        json!({"id": "r2", "type": "po_received", "sku": "TEA", "warehouse": "MAIN", "qty": 1, "po_id": "PO-1"}),
        "purchase order \"PO-1\" would have qty_received 1000000000001",
    );

    // Two lines at the bound: the order's total is their sum, not a wrap.
    assert_accepted(
        &db,
        &[
            json!({"id": "big", "type": "order_upserted", "order": {"id": "SO-2",
            "order_date": "2026-11-02T00:00:00Z",
            "lines": [{"id": "SO-2-1", "sku": "BIG", "qty": MAX_QUANTITY}, {"id": "SO-2-2", "sku": "BIG", "qty": MAX_QUANTITY}]}}),
        ],
    );
    let recalc = db.run(&["recalc", "--all", "--inline"], None);
    assert_eq!(recalc.code, 0, "{}", recalc.stderr);
    assert_eq!(
        stored_order(&db, "SO-2"),
        (2 * MAX_QUANTITY, "full".to_owned())
    );

    // Nothing is poisoned: every reading command still works.
    let exported = state(&db);
    assert_eq!(on_hand(&exported, "TEA", "MAIN"), 0);
    let status = db.run(&["status"], None);
    assert_eq!(status.code, 0, "{}", status.stderr);
    let again = import(&db, &exported);
    assert_eq!(again.code, 0, "an export re-imports: {}", again.stderr);
}

/// Finding 1 through `import`: a snapshot past the bounds is refused whole,
/// naming the record, and the stored state is left as it was.
fn an_import_past_the_bounds_changes_nothing(backend: Backend) {
    let db = TempDatabase::of(backend);
    assert_eq!(import(&db, &book()).code, 0);
    let before = state(&db);
    let cases: [(&str, Value, &str); 4] = [
        (
            "/orders/0/lines/0/qty",
            json!(i64::MAX),
            "line \"SO-1-1\" of order \"SO-1\": qty is out of range",
        ),
        (
            "/inventory/0/on_hand",
            json!(i64::MIN),
            "inventory row (sku \"TEA\", warehouse \"MAIN\"): on_hand is out of range",
        ),
        (
            "/purchase_orders/0/qty_received",
            json!(MAX_QUANTITY + 1),
            "purchase order \"PO-1\": qty_received is out of range",
        ),
        (
            "/settings",
            json!({"max_days_back": 4_294_967_295u64}),
            "settings: max_days_back is out of range (got 4294967295",
        ),
    ];
    for (pointer, value, says) in cases {
        let mut snapshot = book();
        *snapshot
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer} is not in the book")) = value;
        let run = import(&db, &snapshot);
        assert_eq!(run.code, 2, "{pointer}: stderr {}", run.stderr);
        assert!(run.stderr.contains(says), "{pointer}: {}", run.stderr);
        assert_eq!(
            state(&db),
            before,
            "{pointer}: a refused import changed the state"
        );
    }
    // Rows of one (sku, warehouse) are stored summed: the sum is bounded.
    let mut snapshot = book();
    snapshot["inventory"] = json!([
        {"sku": "TEA", "warehouse": "MAIN", "on_hand": MAX_QUANTITY},
        {"sku": "TEA", "warehouse": "MAIN", "on_hand": MAX_QUANTITY}
    ]);
    let run = import(&db, &snapshot);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("inventory rows of sku \"TEA\" in warehouse \"MAIN\""),
        "{}",
        run.stderr
    );
    assert_eq!(state(&db), before);
}

/// Finding 2 through events: `settings_changed` past the bound is refused
/// naming the event and the setting; at the bound it is applied and the
/// recalculation it queues runs (it once panicked the engine).
fn a_setting_past_its_bound_is_refused_and_one_at_it_works(backend: Backend) {
    let db = TempDatabase::of(backend);
    assert_eq!(import(&db, &book()).code, 0);
    for days in [4_294_967_295u64, 100_000_000, MAX_DAYS_BACK + 1] {
        assert_event_refused(
            &db,
            json!({"id": format!("days-{days}"), "type": "settings_changed",
                   "settings": {"max_days_back": days}}),
            &format!("settings.max_days_back is out of range (got {days}"),
        );
    }
    let daemon = Daemon::start(&db, &[]);
    let run = send_events(
        &db,
        &[
            json!({"id": "century", "type": "settings_changed", "settings": {"max_days_back": MAX_DAYS_BACK}}),
        ],
        &["--wait", "--timeout", "60"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    wait_idle(&db, Duration::from_secs(30));
    let exported = state(&db);
    assert_eq!(exported["settings"]["max_days_back"], MAX_DAYS_BACK);
    // Five TEA for three; one MUG for two: SO-1 is partly backordered.
    assert_eq!(stored_order(&db, "SO-1"), (1, "partial".to_owned()));
    let simulated = backorderd(
        &["simulate", "-"],
        Some(exported.to_string().as_bytes()),
        &[],
    );
    assert_eq!(simulated.code, 0, "{}", simulated.stderr);
    let stderr = daemon.stop_with("TERM");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

on_both_backends!(
    quantities_past_the_bound_are_refused_and_nothing_is_applied,
    an_import_past_the_bounds_changes_nothing,
    a_setting_past_its_bound_is_refused_and_one_at_it_works,
);

/// `simulate` refuses the out-of-range values with exit 2 naming the
/// record, and computes right at the bounds: two warehouses of the largest
/// on-hand are a big pool, not an overflowed empty one.
#[test]
fn simulate_refuses_values_past_the_bounds_and_computes_at_them() {
    let simulate = |snapshot: &Value| {
        backorderd(
            &["simulate", "-"],
            Some(snapshot.to_string().as_bytes()),
            &[],
        )
    };
    let mut two_huge = book();
    two_huge["inventory"] = json!([
        {"sku": "TEA", "warehouse": "MAIN", "on_hand": i64::MAX},
        {"sku": "TEA", "warehouse": "EAST", "on_hand": i64::MAX}
    ]);
    let run = simulate(&two_huge);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("inventory row (sku \"TEA\", warehouse \"MAIN\"): on_hand is out of range"),
        "{}",
        run.stderr
    );

    let mut two_at_bound = book();
    two_at_bound["inventory"] = json!([
        {"sku": "TEA", "warehouse": "MAIN", "on_hand": MAX_QUANTITY},
        {"sku": "TEA", "warehouse": "EAST", "on_hand": MAX_QUANTITY},
        {"sku": "MUG", "warehouse": "MAIN", "on_hand": 2}
    ]);
    two_at_bound["orders"][0]["lines"][0]["qty"] = json!(MAX_QUANTITY);
    let result = simulate(&two_at_bound).ok_json();
    let lines = result["lines"].as_array().expect("result lines");
    assert!(
        lines.iter().all(|l| l["backorder_qty"] == 0),
        "stock at the bound serves every line: {result}"
    );

    for days in [4_294_967_295u64, 100_000_000] {
        let mut snapshot = book();
        snapshot["settings"] = json!({"max_days_back": days});
        let run = simulate(&snapshot);
        assert_eq!(run.code, 2, "{days}: {}", run.stderr);
        assert!(
            run.stderr.contains("max_days_back is out of range"),
            "{days}: {}",
            run.stderr
        );
    }
    // At the bound the setting works: an order of this month is not
    // frozen, one from before the cutoff is.
    let mut century = book();
    century["settings"] = json!({"max_days_back": MAX_DAYS_BACK});
    century["orders"].as_array_mut().unwrap().push(json!({
        "id": "SO-OLD", "order_date": "1900-01-01T00:00:00Z",
        "lines": [{"id": "SO-OLD-1", "sku": "TEA", "qty": 1, "backorder_qty": 1}]
    }));
    let result = simulate(&century).ok_json();
    let scope = |id: &str| {
        result["orders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["order_id"] == id)
            .map(|o| o["scope"].clone())
            .unwrap_or_else(|| panic!("no order {id}: {result}"))
    };
    assert_eq!(scope("SO-1"), "active");
    assert_eq!(scope("SO-OLD"), "frozen");
}

/// `generate --skew` refuses NaN, infinities, negative and other nonsense
/// as a usage mistake (exit 1, naming the option), instead of panicking.
#[test]
fn generate_refuses_a_nonsense_skew() {
    for skew in ["nan", "NaN", "inf", "-inf", "-1", "11", "lots", ""] {
        let option = format!("--skew={skew}");
        let run = backorderd(
            &["generate", "--lines", "10", "--skus", "3", &option],
            None,
            &[],
        );
        assert_eq!(run.code, 1, "--skew {skew:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("--skew") && !run.stderr.contains("panicked"),
            "--skew {skew:?}: {}",
            run.stderr
        );
    }
    let run = backorderd(
        &["generate", "--lines", "18446744073709551615", "--skus", "3"],
        None,
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("--lines"), "{}", run.stderr);
    for skew in ["0", "2.5", "10"] {
        let run = backorderd(
            &["generate", "--lines", "10", "--skus", "3", "--skew", skew],
            None,
            &[],
        );
        let book = run.ok_json();
        assert_eq!(
            book["orders"].as_array().map(|o| o
                .iter()
                .map(|o| o["lines"].as_array().unwrap().len())
                .sum::<usize>()),
            Some(10),
            "--skew {skew}"
        );
    }
}

/// The same refusals over HTTP: 422 naming the event, nothing applied, and
/// the product endpoint still answers (it once answered 500 for good).
#[test]
fn http_refuses_quantities_and_settings_past_the_bounds() {
    let db = TempDatabase::new();
    assert_eq!(import(&db, &book()).code, 0);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = Daemon::start_with_args(&db, &[], &["--listen", &listen]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let base = format!("http://127.0.0.1:{port}");
    let read = |response: Result<ureq::http::Response<ureq::Body>, ureq::Error>| {
        let mut response = response.expect("the daemon answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (status, text)
    };
    let post = |events: &[Value]| {
        read(
            agent
                .post(format!("{base}/v1/events"))
                .send(jsonl(events).as_bytes()),
        )
    };

    let refusals = [
        (
            json!({"id": "huge", "type": "po_received", "sku": "TEA", "warehouse": "MAIN", "qty": i64::MAX}),
            "event 2 (id \"huge\") at line 2: qty is out of range",
        ),
        (
            json!({"id": "days", "type": "settings_changed", "settings": {"max_days_back": 4_294_967_295u64}}),
            "event 2 (id \"days\") at line 2: settings.max_days_back is out of range",
        ),
        (
            json!({"id": "past", "type": "inventory_adjusted", "sku": "TEA", "warehouse": "MAIN", "delta": MAX_QUANTITY}),
            "event 2 (id \"past\"): on_hand of sku \"TEA\" in warehouse \"MAIN\" would become 1000000000005",
        ),
    ];
    for (event, says) in refusals {
        // A harmless event first: the refusal takes the whole request back.
        let first = json!({"id": format!("before-{}", event["id"].as_str().unwrap()),
                           "type": "inventory_adjusted", "sku": "MUG", "warehouse": "MAIN", "delta": 1});
        let (status, text) = post(&[first, event]);
        assert_eq!(status, 422, "{text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert!(
            body["error"].as_str().unwrap().contains(says),
            "{says:?} not in {body}"
        );
    }
    let (status, text) = read(agent.get(format!("{base}/v1/products/MUG")).call());
    assert_eq!(status, 200, "{text}");
    let product: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(product["total"]["on_hand"], 1, "nothing applied: {product}");
    let (status, text) = read(agent.get(format!("{base}/v1/orders/SO-1")).call());
    assert_eq!(status, 200, "{text}");
    let (status, text) = read(agent.get(format!("{base}/readyz")).call());
    assert_eq!(status, 200, "{text}");
    drop(daemon);
}
