//! Change messages end to end: written in the transaction of the change,
//! read back by the pull feed (`GET /v1/changes`, `backorderd changes`),
//! and the order history (`GET /v1/orders/{id}/history`, `backorderd
//! history`). docs/delivery.md.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::daemon_support::{Daemon, generate, send_events, wait_idle};
use crate::support::{Backend, TempDatabase, on_both_backends};

const IDLE: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// `(status, body)` of a GET.
fn get(port: u16, path: &str) -> (u16, Value) {
    let mut response = agent()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .call()
        .expect("the daemon answers");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, body)
}

fn import(db: &TempDatabase, book: &Value, notify: bool) {
    let mut args = vec!["import", "-"];
    if notify {
        args.push("--notify");
    }
    let run = db.run(&args, Some(book.to_string().as_bytes()));
    assert_eq!(run.code, 0, "import: {}", run.stderr);
}

/// The order messages of the feed (the product messages these books'
/// events also cause are tests/it/availability_messages.rs's).
fn feed(db: &TempDatabase) -> Vec<Value> {
    log(db)
        .into_iter()
        .filter(|m| m["key"].as_str().is_some_and(|k| k.starts_with("order:")))
        .collect()
}

/// Every message of the feed, through `backorderd changes`.
fn log(db: &TempDatabase) -> Vec<Value> {
    let run = db.run(&["changes"], None);
    assert_eq!(run.code, 0, "changes: {}", run.stderr);
    assert!(run.stderr.contains("next cursor: c"), "{}", run.stderr);
    run.stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// Asserts each key's seq runs 1, 2, 3... in feed order and every id is unique.
fn assert_contiguous(messages: &[Value]) {
    let mut last: HashMap<String, u64> = HashMap::new();
    let mut ids = std::collections::HashSet::new();
    for m in messages {
        let key = m["key"].as_str().unwrap().to_owned();
        let seq = m["seq"].as_u64().unwrap();
        let previous = last.insert(key.clone(), seq).unwrap_or(0);
        assert_eq!(seq, previous + 1, "{key}: seq {seq} after {previous}");
        assert!(ids.insert(m["id"].as_str().unwrap().to_owned()), "{m}");
        assert!(m["id"].as_str().unwrap().starts_with("msg_"), "{m}");
    }
}

/// TEA: 10 on hand. OLD wants 10, YOUNG 5, SHIP 4 (in that order of
/// date); SPLIT has a TEA line and a MUG line (no MUG in stock).
fn book() -> Value {
    json!({
        "warehouses": [{"id": "MAIN", "kind": "normal"}],
        "inventory": [{"sku": "TEA", "warehouse": "MAIN", "on_hand": 10}],
        "orders": [
            {"id": "OLD", "order_date": "2026-11-01T10:00:00Z",
             "lines": [{"id": "OLD-1", "sku": "TEA", "qty": 10}]},
            {"id": "YOUNG", "order_date": "2026-11-02T10:00:00Z",
             "customer": {"email": "ann@example.com", "name": "Ann"},
             "lines": [{"id": "YOUNG-1", "sku": "TEA", "qty": 5}]},
            {"id": "SHIP", "order_date": "2026-11-03T10:00:00Z",
             "lines": [{"id": "SHIP-1", "sku": "TEA", "qty": 4}]},
            {"id": "SPLIT", "order_date": "2026-10-01T10:00:00Z",
             "lines": [{"id": "S-1", "sku": "TEA", "qty": 0},
                       {"id": "S-2", "sku": "MUG", "qty": 3}]}]
    })
}

fn send(db: &TempDatabase, event: Value) {
    send_events(db, &[event], &["--wait", "--timeout", "30"]).ok_json();
}

/// The messages after the first `seen`.
fn new_messages(db: &TempDatabase, seen: &mut usize) -> Vec<Value> {
    let all = feed(db);
    let new = all[*seen..].to_vec();
    *seen = all.len();
    new
}

fn summary(m: &Value) -> (String, String, String, String, i64, i64, Value) {
    let d = &m["data"];
    (
        m["type"].as_str().unwrap().to_owned(),
        m["key"].as_str().unwrap().to_owned(),
        d["previous_status"].as_str().unwrap().to_owned(),
        d["status"].as_str().unwrap().to_owned(),
        d["previous_backorder_qty"].as_i64().unwrap(),
        d["backorder_qty"].as_i64().unwrap(),
        m["causes"].clone(),
    )
}

fn s(text: &str) -> String {
    text.to_owned()
}

fn events_emit_the_contracts_messages_in_order(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &book(), false);
    let _daemon = Daemon::start(&db, &[]);
    wait_idle(&db, IDLE);
    // The import's recalculation backordered YOUNG, SHIP and SPLIT: quietly.
    assert_eq!(
        feed(&db),
        Vec::<Value>::new(),
        "a plain import emits nothing"
    );
    let mut seen = 0;

    // A receipt serves YOUNG: back in stock.
    send(
        &db,
        json!({"id": "r1", "type": "po_received", "sku": "TEA", "warehouse": "MAIN", "qty": 5}),
    );
    let got = new_messages(&db, &mut seen);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        summary(&got[0]),
        (
            s("order.backorder_cleared"),
            s("order:YOUNG"),
            s("full"),
            s("none"),
            5,
            0,
            json!(["r1"])
        )
    );
    let data = &got[0]["data"];
    assert_eq!(data["closed"], false);
    assert_eq!(
        data["customer"],
        json!({"email": "ann@example.com", "name": "Ann"})
    );
    assert_eq!(
        data["lines"],
        json!([{"line_id": "YOUNG-1", "sku": "TEA", "qty": 5, "backorder_qty": 0,
                "previous_backorder_qty": 5, "eta": null, "previous_eta": null}])
    );
    assert_eq!(got[0]["seq"], 1);

    // An adjustment gives SHIP 2 of its 4: still backordered, changed.
    send(
        &db,
        json!({"id": "a1", "type": "inventory_adjusted", "sku": "TEA", "warehouse": "MAIN", "delta": 2}),
    );
    let got = new_messages(&db, &mut seen);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        summary(&got[0]),
        (
            s("order.backorder_changed"),
            s("order:SHIP"),
            s("full"),
            s("partial"),
            4,
            2,
            json!(["a1"])
        )
    );
    assert_eq!(got[0]["data"]["lines"][0]["previous_backorder_qty"], 4);
    assert_eq!(got[0]["data"]["lines"][0]["backorder_qty"], 2);

    // SHIP ships while backordered: cleared, closed.
    send(
        &db,
        json!({"id": "st1", "type": "order_status_changed", "order_id": "SHIP", "status": "shipped"}),
    );
    let got = new_messages(&db, &mut seen);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        summary(&got[0]),
        (
            s("order.backorder_cleared"),
            s("order:SHIP"),
            s("partial"),
            s("none"),
            2,
            0,
            json!(["st1"])
        )
    );
    assert_eq!(got[0]["data"]["closed"], true);
    assert_eq!(got[0]["seq"], 2);

    // The MUG line (SPLIT's only line with a qty: it was wholly
    // backordered) leaves SPLIT for a new order: SPLIT is no longer
    // backordered (the line is absent from its message), SPLIT-B starts
    // from none.
    send(
        &db,
        json!({"id": "sp1", "type": "order_split", "order_id": "SPLIT",
                     "new_order_id": "SPLIT-B", "line_ids": ["S-2"]}),
    );
    let got = new_messages(&db, &mut seen);
    let by_key: HashMap<&str, &Value> = got
        .iter()
        .map(|m| (m["key"].as_str().unwrap(), m))
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        summary(by_key["order:SPLIT"]),
        (
            s("order.backorder_cleared"),
            s("order:SPLIT"),
            s("full"),
            s("none"),
            3,
            0,
            json!(["sp1"])
        )
    );
    let lines: Vec<&str> = by_key["order:SPLIT"]["data"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line_id"].as_str().unwrap())
        .collect();
    assert_eq!(lines, ["S-1"]);
    assert_eq!(
        summary(by_key["order:SPLIT-B"]),
        (
            s("order.backordered"),
            s("order:SPLIT-B"),
            s("none"),
            s("full"),
            0,
            3,
            json!(["sp1"])
        )
    );
    assert_eq!(
        by_key["order:SPLIT-B"]["data"]["lines"][0]["previous_backorder_qty"],
        0
    );
    assert_eq!(by_key["order:SPLIT-B"]["seq"], 1);

    // An override backorders OLD by the event's own effect.
    send(
        &db,
        json!({"id": "o1", "type": "backorder_override", "line_id": "OLD-1", "backorder_qty": 3}),
    );
    let got = new_messages(&db, &mut seen);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        summary(&got[0]),
        (
            s("order.backordered"),
            s("order:OLD"),
            s("none"),
            s("partial"),
            0,
            3,
            json!(["o1"])
        )
    );

    // A recalculation that changes nothing emits nothing.
    let tea = json!({"id": "rc1", "type": "recalculate", "skus": ["MUG"]});
    send(&db, tea);
    assert_eq!(new_messages(&db, &mut seen), Vec::<Value>::new());

    // A full run emits like any other: it puts OLD back (cause: its event).
    send(
        &db,
        json!({"id": "all1", "type": "recalculate", "all": true}),
    );
    let got = new_messages(&db, &mut seen);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        summary(&got[0]),
        (
            s("order.backorder_cleared"),
            s("order:OLD"),
            s("partial"),
            s("none"),
            3,
            0,
            json!(["all1"])
        )
    );
    assert_eq!(got[0]["seq"], 2);

    let all = log(&db);
    assert_contiguous(&all);
    // Paging with the cursor gives the same messages.
    let first = db.run(&["changes", "--limit", "2"], None);
    assert_eq!(first.stdout.lines().count(), 2);
    let cursor = first.stderr.trim().rsplit(' ').next().unwrap().to_owned();
    let rest = db.run(&["changes", "--after", &cursor], None);
    let rest: Vec<Value> = rest
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rest, all[2..].to_vec());
    let bad = db.run(&["changes", "--after", "nonsense"], None);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--after"), "{}", bad.stderr);
}

fn import_notify_emits_and_plain_import_does_not(backend: Backend) {
    // 6,000 SKUs: the import's recalculation is the bulk run.
    let book = generate(12_000, 6_000, 7);
    let db = TempDatabase::of(backend);
    // The import's own recalculation, by `serve` (a `recalc --all` would
    // be a recalculation of its own, and emit).
    import(&db, &book, false);
    let daemon = Daemon::start(&db, &[]);
    wait_idle(&db, IDLE);
    drop(daemon);
    assert_eq!(feed(&db).len(), 0, "plain import");
    let history: Vec<(i64,)> =
        db.fetch_all("SELECT CAST(COUNT(*) AS BIGINT) FROM history WHERE cause = 'import'");
    assert!(
        history[0].0 > 100,
        "the import's recalculation wrote history"
    );

    let db = TempDatabase::of(backend);
    import(&db, &book, true);
    let daemon = Daemon::start(&db, &[]);
    wait_idle(&db, IDLE);
    drop(daemon);
    let messages = feed(&db);
    let exported = db.run(&["export"], None).ok_json();
    let backordered: HashMap<&str, &Value> = exported["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| {
            o["lines"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["backorder_qty"].as_i64().unwrap() > 0)
        })
        .map(|o| (o["id"].as_str().unwrap(), o))
        .collect();
    assert!(backordered.len() > 100, "{}", backordered.len());
    assert_contiguous(&messages);
    // The bulk run commits bounded batches, each with the messages of what
    // it committed: an order whose lines lie in several batches first
    // becomes backordered, then may change again; its last message is its
    // final state. From all-zero nothing clears.
    let mut last: HashMap<&str, &Value> = HashMap::new();
    for m in &messages {
        let id = m["data"]["order_id"].as_str().unwrap();
        let expected = if m["seq"] == 1 {
            "order.backordered"
        } else {
            "order.backorder_changed"
        };
        assert_eq!(m["type"], expected, "{m}");
        assert_eq!(m["causes"], json!(["import"]), "{m}");
        last.insert(id, m);
    }
    assert_eq!(
        last.len(),
        backordered.len(),
        "one key per backordered order"
    );
    for (id, order) in &backordered {
        let m = last
            .get(id)
            .unwrap_or_else(|| panic!("no message for {id}"));
        for line in order["lines"].as_array().unwrap() {
            let told = m["data"]["lines"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["line_id"] == line["id"])
                .unwrap_or_else(|| panic!("{id}: line {} not in {m}", line["id"]));
            assert_eq!(told["backorder_qty"], line["backorder_qty"], "{id}: {m}");
        }
    }
}

fn a_failed_write_back_leaves_no_message(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &book(), false);
    let _daemon = Daemon::start(&db, &[]);
    wait_idle(&db, IDLE);
    match db.backend {
        Backend::Sqlite => db.execute(
            "CREATE TRIGGER refuse_tea BEFORE UPDATE ON order_lines WHEN NEW.sku = 'TEA'
             BEGIN SELECT RAISE(ABORT, 'TEA lines are refused by the test'); END;",
        ),
        Backend::Postgres => db.execute(
            "CREATE FUNCTION refuse_tea() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'TEA lines are refused by the test'; END $$;
             CREATE TRIGGER refuse_tea BEFORE UPDATE ON order_lines
             FOR EACH ROW WHEN (NEW.sku = 'TEA') EXECUTE FUNCTION refuse_tea();",
        ),
    }
    let run = send_events(
        &db,
        &[json!({"id": "r1", "type": "po_received", "sku": "TEA", "warehouse": "MAIN", "qty": 5})],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The write-back is tried and set aside; the event's effect committed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let count: Vec<(i64,)> =
            db.fetch_all("SELECT CAST(COUNT(*) AS BIGINT) FROM set_aside_skus");
        if count[0].0 > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "TEA was never set aside");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(feed(&db), Vec::<Value>::new());
}

fn long_polls_and_follow_return_as_soon_as_a_message_commits(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &book(), false);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _daemon = Daemon::start_with_args(&db, &[], &["--listen", &listen]);
    wait_idle(&db, IDLE);

    let (status, empty) = get(port, "/v1/changes");
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty["messages"], json!([]));
    let cursor = empty["next"].as_str().unwrap().to_owned();
    for (path, name) in [
        ("/v1/changes?after=zzz", "after"),
        ("/v1/changes?limit=0", "limit"),
        ("/v1/changes?limit=abc", "limit"),
        ("/v1/changes?wait=-1", "wait"),
    ] {
        let (status, body) = get(port, path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body.to_string().contains(&format!("`{name}`")),
            "{path}: {body}"
        );
    }

    let mut follow = Command::new(env!("CARGO_BIN_EXE_backorderd"))
        .args(["--database-url", &db.url, "changes", "--follow"])
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = line_tx.send(line);
        }
    });

    let url = db.url.clone();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let run = crate::support::backorderd(
            &["--database-url", &url, "event", "-"],
            Some(br#"{"id":"r1","type":"po_received","sku":"TEA","warehouse":"MAIN","qty":5}"#),
            &[],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        Instant::now()
    });
    let asked = Instant::now();
    let (status, answer) = get(port, &format!("/v1/changes?after={cursor}&wait=5"));
    let answered = Instant::now();
    let sent = sender.join().unwrap();
    assert_eq!(status, 200, "{answer}");
    // The order's message, then TEA's new availability figures (one commit).
    assert_eq!(answer["messages"].as_array().unwrap().len(), 2, "{answer}");
    assert_eq!(answer["messages"][0]["key"], "order:YOUNG");
    assert_eq!(answer["messages"][1]["key"], "product:TEA");
    assert!(
        answered - asked >= Duration::from_millis(1000),
        "it waited for the message"
    );
    assert!(
        answered < sent + Duration::from_secs(3),
        "answered soon after the commit"
    );
    assert_ne!(answer["next"], cursor.as_str());
    // Nothing after the new cursor: an answer after `wait` passes.
    let started = Instant::now();
    let (_, later) = get(
        port,
        &format!(
            "/v1/changes?after={}&wait=1",
            answer["next"].as_str().unwrap()
        ),
    );
    assert_eq!(later["messages"], json!([]));
    assert!(started.elapsed() >= Duration::from_millis(900));

    let line = line_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("changes --follow prints the message");
    let printed: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(printed, answer["messages"][0]);
    follow.kill().unwrap();
    follow.wait().unwrap();
}

fn history_lists_every_change_of_an_order(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &book(), false);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _daemon = Daemon::start_with_args(&db, &[], &["--listen", &listen]);
    wait_idle(&db, IDLE);
    send(
        &db,
        json!({"id": "r1", "type": "po_received", "sku": "TEA", "warehouse": "MAIN", "qty": 3}),
    );
    send(
        &db,
        json!({"id": "r2", "type": "po_received", "sku": "TEA", "warehouse": "MAIN", "qty": 2}),
    );

    let (status, body) = get(port, "/v1/orders/YOUNG/history");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["order_id"], "YOUNG");
    let changes = body["changes"].as_array().unwrap();
    let rows: Vec<(Value, i64, i64, Value, Value, String)> = changes
        .iter()
        .map(|c| {
            (
                c["line_id"].clone(),
                c["old_backorder_qty"].as_i64().unwrap(),
                c["new_backorder_qty"].as_i64().unwrap(),
                c["old_status"].clone(),
                c["new_status"].clone(),
                c["cause"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // Newest first: r2 clears it, r1 makes it partial, the import backordered it.
    assert_eq!(
        rows,
        vec![
            (Value::Null, 2, 0, json!("partial"), json!("none"), s("r2")),
            (json!("YOUNG-1"), 2, 0, Value::Null, Value::Null, s("r2")),
            (Value::Null, 5, 2, json!("full"), json!("partial"), s("r1")),
            (json!("YOUNG-1"), 5, 2, Value::Null, Value::Null, s("r1")),
            (Value::Null, 0, 5, json!("none"), json!("full"), s("import")),
            (
                json!("YOUNG-1"),
                0,
                5,
                Value::Null,
                Value::Null,
                s("import")
            ),
        ],
        "{body}"
    );
    assert!(
        changes
            .iter()
            .all(|c| c["at"].as_str().unwrap().ends_with('Z'))
    );

    let cli = db.run(&["history", "YOUNG"], None).ok_json();
    assert_eq!(cli, body);
    let (status, missing) = get(port, "/v1/orders/NOPE/history");
    assert_eq!(status, 404, "{missing}");
    let cli = db.run(&["history", "NOPE"], None);
    assert_eq!(cli.code, 2, "{}", cli.stderr);
    assert!(cli.stderr.contains("NOPE"), "{}", cli.stderr);
}

fn customers_are_stored_exported_and_refused_when_malformed(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &book(), false);
    let exported = db.run(&["export"], None).ok_json();
    let customers: Vec<&Value> = exported["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["customer"])
        .collect();
    assert_eq!(
        customers[1],
        &json!({"email": "ann@example.com", "name": "Ann"})
    );
    assert_eq!(customers[0], &Value::Null);

    // An upsert sets a name only; the order's next message carries it.
    let upsert = json!({"id": "u1", "type": "order_upserted", "order": {
        "id": "NEW", "order_date": "2026-11-05T10:00:00Z", "customer": {"name": "Bo"},
        "lines": [{"id": "NEW-1", "sku": "TEA", "qty": 2, "backorder_qty": 2}]}});
    send_events(&db, &[upsert], &[]).ok_json();
    let messages = feed(&db);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["type"], "order.backordered");
    assert_eq!(messages[0]["causes"], json!(["u1"]));
    assert_eq!(
        messages[0]["data"]["customer"],
        json!({"email": null, "name": "Bo"})
    );

    for bad in [
        json!({"email": 5}),
        json!("ann@example.com"),
        json!({"phone": "1"}),
    ] {
        let mut snapshot = book();
        snapshot["orders"][2]["customer"] = bad.clone();
        let run = db.run(&["import", "-"], Some(snapshot.to_string().as_bytes()));
        assert_eq!(run.code, 2, "{bad}: {}", run.stderr);
        assert!(
            run.stderr.contains("SHIP") || run.stderr.contains("orders[2]"),
            "{bad}: {}",
            run.stderr
        );
        let event = json!({"id": "u2", "type": "order_upserted", "order": {
            "id": "NEW2", "order_date": "2026-11-05T10:00:00Z", "customer": bad,
            "lines": [{"id": "NEW2-1", "sku": "TEA", "qty": 2}]}});
        let run = send_events(&db, &[event], &[]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.contains("\"u2\""), "{}", run.stderr);
    }
}

on_both_backends!(
    customers_are_stored_exported_and_refused_when_malformed,
    events_emit_the_contracts_messages_in_order,
    import_notify_emits_and_plain_import_does_not,
    a_failed_write_back_leaves_no_message,
    long_polls_and_follow_return_as_soon_as_a_message_commits,
    history_lists_every_change_of_an_order,
);

/// Three `serve` processes on PostgreSQL, events on overlapping orders sent
/// to all three at once, a reader following the feed meanwhile: it sees
/// every message (none committed below its cursor after it passed), each
/// key's `seq` runs without gaps in position order, and each message's
/// `previous_*` are the values of the key's message before it.
#[test]
fn three_serve_processes_on_postgres_keep_the_feed_in_commit_order() {
    let db = TempDatabase::of(Backend::Postgres);
    // Few SKUs, orders with several lines: batches share orders.
    let book = generate(1500, 12, 11);
    import(&db, &book, false);
    let settings = [("BACKORDERD__SERVICE__SKUS_PER_BATCH", "2")];
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let _daemons: Vec<Daemon> = ports
        .iter()
        .map(|port| {
            Daemon::start_with_args(&db, &settings, &["--listen", &format!("127.0.0.1:{port}")])
        })
        .collect();
    wait_idle(&db, IDLE);
    let skus: Vec<String> = {
        let mut skus: Vec<String> = book["orders"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|o| {
                o["lines"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l["sku"].as_str().unwrap().to_owned())
            })
            .collect();
        skus.sort();
        skus.dedup();
        skus
    };
    let warehouse = book["warehouses"][0]["id"].as_str().unwrap().to_owned();

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        let port = ports[0];
        std::thread::spawn(move || {
            let mut seen: Vec<Value> = Vec::new();
            let mut cursor = String::new();
            let mut quiet_after_done = 0;
            loop {
                let (status, page) =
                    get(port, &format!("/v1/changes?after={cursor}&limit=50&wait=1"));
                assert_eq!(status, 200, "{page}");
                let messages = page["messages"].as_array().unwrap().clone();
                cursor = page["next"].as_str().unwrap().to_owned();
                if messages.is_empty() && done.load(std::sync::atomic::Ordering::SeqCst) {
                    quiet_after_done += 1;
                    if quiet_after_done >= 2 {
                        return seen;
                    }
                }
                seen.extend(messages);
            }
        })
    };

    let senders: Vec<_> = ports
        .iter()
        .enumerate()
        .map(|(n, &port)| {
            let skus = skus.clone();
            let warehouse = warehouse.clone();
            std::thread::spawn(move || {
                for i in 0..40 {
                    let sku = &skus[(i * 7 + n * 3) % skus.len()];
                    let delta = if (i + n) % 2 == 0 { 3 } else { -2 };
                    let body = json!({"id": format!("d{n}-{i}"), "type": "inventory_adjusted",
                                      "sku": sku, "warehouse": warehouse, "delta": delta});
                    let mut response = agent()
                        .post(format!("http://127.0.0.1:{port}/v1/events"))
                        .send(body.to_string())
                        .unwrap();
                    assert!(
                        response.status().as_u16() < 300,
                        "{}",
                        response.body_mut().read_to_string().unwrap()
                    );
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    wait_idle(&db, IDLE);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let followed = reader.join().unwrap();

    let all = log(&db);
    assert!(all.len() > 20, "only {} messages", all.len());
    assert_eq!(followed, all, "the follower missed or reordered messages");
    assert_contiguous(&all);
    let mut last: HashMap<String, &Value> = HashMap::new();
    for m in all
        .iter()
        .filter(|m| m["type"] != "product.availability_changed")
    {
        let key = m["key"].as_str().unwrap().to_owned();
        if let Some(before) = last.get(&key) {
            let (old, new) = (&before["data"], &m["data"]);
            assert_eq!(
                new["previous_status"], old["status"],
                "{key}: {before} then {m}"
            );
            assert_eq!(
                new["previous_backorder_qty"], old["backorder_qty"],
                "{key}: {before} then {m}"
            );
        }
        last.insert(key, m);
    }
    let positions: Vec<(i64,)> = db.fetch_all("SELECT position FROM messages ORDER BY position");
    assert_eq!(positions.len(), all.len());
}

fn messages_past_the_retention_are_pruned(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &book(), false);
    let daemon = Daemon::start(&db, &[]);
    wait_idle(&db, IDLE);
    send(
        &db,
        json!({"id": "r1", "type": "po_received", "sku": "TEA", "warehouse": "MAIN", "qty": 5}),
    );
    send(
        &db,
        json!({"id": "a1", "type": "inventory_adjusted", "sku": "TEA", "warehouse": "MAIN", "delta": 2}),
    );
    drop(daemon);
    let before = feed(&db);
    assert_eq!(before.len(), 2, "{before:?}");
    // The first message was created long ago.
    let old = before[0]["id"].as_str().unwrap();
    db.execute(&format!(
        "UPDATE messages SET created_at = '2020-01-01T00:00:00.000000Z' WHERE id = '{old}'"
    ));
    let _daemon = Daemon::start(&db, &[("BACKORDERD__NOTIFY__RETENTION_SECS", "3600")]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = feed(&db);
        if now.len() == 1 {
            assert_eq!(now[0], before[1], "the recent message stays");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old message was not pruned: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

on_both_backends!(messages_past_the_retention_are_pruned);
