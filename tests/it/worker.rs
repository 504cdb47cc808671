//! The queue worker under failure and signals, and how fast it reacts: a
//! SKU whose recalculation fails is set aside while the others go on;
//! SIGHUP stops `serve` in order; an accepted event is written back at
//! once, not at the worker's next heartbeat.

use serde_json::{Value, json};
use std::time::{Duration, Instant};

use crate::daemon_support::{Daemon, send_events, status, wait_idle};
use crate::support::{Backend, TempDatabase, on_both_backends};

/// A port nobody listens on now (the daemon binds it a moment later).
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

/// (status, body) of a request to the daemon on `port`.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let url = format!("http://127.0.0.1:{port}{path}");
    let agent = agent();
    let response = match (method, body) {
        ("POST", Some(body)) => agent.post(&url).send(body.to_string().as_bytes()),
        ("GET", None) => agent.get(&url).call(),
        other => panic!("no such request: {other:?}"),
    };
    let mut response = response.expect("the daemon answers");
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

/// One sample of `/metrics`, 0 when absent.
fn metric(port: u16, sample: &str) -> f64 {
    let (code, text) = http(port, "GET", "/metrics", None);
    assert_eq!(code, 200, "{text}");
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().unwrap())
}

/// Two SKUs without stock: every line wholly backordered.
fn two_sku_book() -> Value {
    json!({
        "warehouses": [{"id": "MAIN", "kind": "normal"}],
        "inventory": [
            {"sku": "TEA", "warehouse": "MAIN", "on_hand": 0},
            {"sku": "MUG", "warehouse": "MAIN", "on_hand": 0}
        ],
        "purchase_orders": [],
        "orders": [
            {"id": "A", "order_date": "2026-11-01T10:00:00Z",
             "lines": [{"id": "A-1", "sku": "TEA", "qty": 100}]},
            {"id": "B", "order_date": "2026-11-01T11:00:00Z",
             "lines": [{"id": "B-1", "sku": "MUG", "qty": 100}]}
        ]
    })
}

fn import(db: &TempDatabase, book: &Value) {
    let run = db.run(&["import", "-"], Some(book.to_string().as_bytes()));
    assert_eq!(run.code, 0, "{}", run.stderr);
}

fn line_backorder(db: &TempDatabase, line: &str) -> i64 {
    let rows: Vec<(i64,)> = db.fetch_all(&format!(
        "SELECT CAST(backorder_qty AS BIGINT) FROM order_lines WHERE id = '{line}'"
    ));
    rows[0].0
}

/// Polls until `line`'s stored backorder qty is `want`; how long it took.
fn wait_for_backorder(db: &TempDatabase, line: &str, want: i64, timeout: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let now = line_backorder(db, line);
        if now == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "{line} still has backorder qty {now}, not {want}, after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A database rule that refuses every write-back to TEA's lines: a real
/// failure of that SKU's recalculation, from outside the daemon.
fn refuse_tea_writes(db: &TempDatabase) {
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
}

fn receipt(id: &str, sku: &str, qty: i64) -> Value {
    json!({"id": id, "type": "po_received", "sku": sku, "warehouse": "MAIN", "qty": qty})
}

fn a_sku_whose_recalculation_fails_is_set_aside_and_the_others_go_on(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &two_sku_book());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = Daemon::start_with_args(&db, &[], &["--listen", &listen]);
    wait_idle(&db, Duration::from_secs(30));
    assert_eq!(line_backorder(&db, "A-1"), 100);

    refuse_tea_writes(&db);
    // One batch for both SKUs: TEA's write-back fails, MUG's must not wait.
    send_events(
        &db,
        &[receipt("t1", "TEA", 10), receipt("m1", "MUG", 10)],
        &[],
    )
    .ok_json();
    wait_for_backorder(&db, "B-1", 90, Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    let shown = loop {
        let now = status(&db);
        if now["set_aside"].as_array().is_some_and(|s| !s.is_empty()) {
            break now;
        }
        assert!(Instant::now() < deadline, "nothing set aside: {now}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let set_aside = shown["set_aside"].as_array().unwrap();
    assert_eq!(set_aside.len(), 1, "{shown}");
    assert_eq!(set_aside[0]["sku"], "TEA", "{shown}");
    assert_eq!(set_aside[0]["cause"], "t1", "{shown}");
    assert!(
        set_aside[0]["error"]
            .as_str()
            .unwrap()
            .contains("refused by the test"),
        "{shown}"
    );
    assert_eq!(set_aside[0]["attempts"], 1, "{shown}");
    // Still waiting: a set-aside SKU is not written back.
    assert_eq!(shown["dirty_skus"], 1, "{shown}");
    assert_eq!(line_backorder(&db, "A-1"), 100);
    assert_eq!(metric(port, "backorderd_set_aside_skus"), 1.0);
    assert!(metric(port, "backorderd_skus_set_aside_total") >= 1.0);
    assert!(metric(port, "backorderd_jobs_total{outcome=\"failed\"}") >= 1.0);
    // The worker itself is fine and goes on.
    let (code, ready) = http(port, "GET", "/readyz", None);
    assert_eq!(code, 200, "{ready}");
    send_events(&db, &[receipt("m2", "MUG", 5)], &[]).ok_json();
    wait_for_backorder(&db, "B-1", 85, Duration::from_secs(10));
    let log = daemon.stderr();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("set aside") && l.contains("TEA")),
        "no error names the set-aside SKU:\n{log}"
    );

    // Once the database takes TEA's write-back again, its retry succeeds.
    db.execute(match backend {
        Backend::Sqlite => "DROP TRIGGER refuse_tea",
        Backend::Postgres => "DROP TRIGGER refuse_tea ON order_lines",
    });
    wait_for_backorder(&db, "A-1", 90, Duration::from_secs(40));
    let after = wait_idle(&db, Duration::from_secs(10));
    assert_eq!(after["set_aside"], json!([]), "{after}");
    daemon.stop_with("TERM");
}

/// A panic in the recalculation is a failure like any other: see the unit
/// tests of `worker::guarded`. Here: SIGHUP during a `?wait=true` request
/// and a running full recalculation stops `serve` in order, exit 0.
fn sighup_stops_serve_in_order(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &crate::daemon_support::generate(30_000, 300, 5));
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let small_batches = [
        ("BACKORDERD__SERVICE__SKUS_PER_BATCH", "2"),
        ("BACKORDERD__SERVICE__BULK_FROM_SKUS", "1000000"),
    ];
    let mut daemon = Daemon::start_with_args(&db, &small_batches, &["--listen", &listen]);
    let waiting = std::thread::spawn(move || {
        http(
            port,
            "POST",
            "/v1/recalculate?wait=true",
            Some(&json!({"all": true})),
        )
    });
    // The job is in hand: SKUs get written back.
    let total = crate::daemon_support::dirty_skus(&status(&db));
    let deadline = Instant::now() + Duration::from_secs(30);
    while crate::daemon_support::dirty_skus(&status(&db)) >= total {
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    daemon.signal("HUP");
    let exit = daemon.wait_exit(Duration::from_secs(30));
    let log = daemon.stderr();
    assert_eq!(
        exit.code(),
        Some(0),
        "serve did not exit 0 on SIGHUP: {exit:?}\n{log}"
    );
    assert!(log.contains("stopping"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    let (code, body) = waiting.join().unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("stopping"), "{body}");
    let after = status(&db);
    assert_eq!(
        after["queue"]["running"], 0,
        "a job was left running: {after}"
    );
    assert_eq!(after["workers"], json!([]), "{after}");
    assert!(crate::daemon_support::dirty_skus(&after) > 0, "{after}");

    // The next start finishes the work.
    let daemon = Daemon::start(&db, &[]);
    wait_idle(&db, Duration::from_secs(90));
    daemon.stop_with("TERM");
}

/// With a heartbeat far longer than the bound, every event is written back
/// well within a second or two of its acceptance, whether it came from
/// another process (`event`) or over HTTP to the serving process.
fn events_are_written_back_at_once_not_at_the_next_heartbeat(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &two_sku_book());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let slow_heartbeat = [
        ("BACKORDERD__SERVICE__HEARTBEAT_SECS", "30"),
        ("BACKORDERD__SERVICE__POLL_INTERVAL_MS", "50"),
    ];
    let daemon = Daemon::start_with_args(&db, &slow_heartbeat, &["--listen", &listen]);
    wait_for_backorder(&db, "A-1", 100, Duration::from_secs(30));
    let bound = Duration::from_millis(1500);
    let mut took = Vec::new();
    for k in 0..10i64 {
        // Long enough for the worker to go idle and poll empty several times.
        std::thread::sleep(Duration::from_millis(400));
        let event = receipt(&format!("e{k}"), "TEA", 1);
        let started = Instant::now();
        if k % 2 == 0 {
            send_events(&db, &[event], &[]).ok_json();
        } else {
            let (code, body) = http(port, "POST", "/v1/events", Some(&event));
            assert_eq!(code, 202, "{body}");
        }
        wait_for_backorder(&db, "A-1", 99 - k, Duration::from_secs(40));
        took.push(started.elapsed());
    }
    let log = daemon.stop_with("TERM");
    let slow: Vec<_> = took.iter().filter(|t| **t > bound).collect();
    assert!(
        slow.is_empty(),
        "written back after {took:?} (bound {bound:?}); log:\n{log}"
    );
}

on_both_backends!(
    a_sku_whose_recalculation_fails_is_set_aside_and_the_others_go_on,
    sighup_stops_serve_in_order,
    events_are_written_back_at_once_not_at_the_next_heartbeat,
);
