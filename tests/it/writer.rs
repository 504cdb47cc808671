//! The writer (docs/architecture.md, "The writer"): concurrent senders on
//! one hot SKU through the real `serve`, every request answered 2xx, every
//! event applied once, the stored results those of `simulate`, the queue
//! worker alive; two `serve` processes on one PostgreSQL with overlapping
//! and disjoint SKUs; a CLI command that meets another process's lock.

use serde_json::{Value, json};
use std::time::{Duration, Instant};

use crate::daemon::{export, import};
use crate::daemon_support::{Daemon, assert_matches_simulate, status, wait_idle};
use crate::support::{Backend, TempDatabase, on_both_backends};

fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

/// A book with one hot SKU (many waiting lines) and a few quiet ones.
fn book() -> Value {
    let mut orders = Vec::new();
    for n in 0..300 {
        let sku = if n % 3 == 0 {
            format!("Q{}", n % 4)
        } else {
            "HOT".to_owned()
        };
        orders.push(json!({
            "id": format!("O{n:04}"),
            "order_date": format!("2026-11-{:02}T10:00:00Z", 1 + n % 28),
            "payment_status": "paid",
            "status": "in_process",
            "lines": [{"id": format!("L{n:04}"), "sku": sku, "qty": 1 + n % 5, "backorder_qty": 0}]
        }));
    }
    json!({
        "settings": {},
        "warehouses": [{"id": "MAIN", "kind": "normal"}],
        "inventory": [
            {"sku": "HOT", "warehouse": "MAIN", "on_hand": 100},
            {"sku": "Q0", "warehouse": "MAIN", "on_hand": 5},
            {"sku": "Q1", "warehouse": "MAIN", "on_hand": 5},
            {"sku": "Q2", "warehouse": "MAIN", "on_hand": 5},
            {"sku": "Q3", "warehouse": "MAIN", "on_hand": 5}
        ],
        "orders": orders
    })
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Posts one event; the status and body.
fn post(agent: &ureq::Agent, port: u16, path: &str, event: &Value) -> (u16, String) {
    let mut response = agent
        .post(format!("http://127.0.0.1:{port}{path}"))
        .send(event.to_string())
        .unwrap_or_else(|e| panic!("the daemon on port {port} answers: {e}"));
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

/// `senders` threads, each sending `per_sender` events one per request to
/// the ports in turn: an inventory move on `sku_of(sender, k)`, every fourth
/// with `?wait=true`, every seventh refused. Returns the net move per SKU
/// and how many were accepted; panics on any other answer than 2xx (422
/// for the refused ones).
fn send_concurrently(
    ports: &[u16],
    senders: usize,
    per_sender: usize,
    sku_of: fn(usize, usize) -> String,
) -> (std::collections::BTreeMap<String, i64>, i64) {
    let threads: Vec<_> = (0..senders)
        .map(|sender| {
            let ports = ports.to_vec();
            std::thread::spawn(move || {
                let agent = agent();
                let mut moved = std::collections::BTreeMap::<String, i64>::new();
                let mut accepted = 0;
                for k in 0..per_sender {
                    let sku = sku_of(sender, k);
                    let delta = if k % 3 == 0 { -1 } else { 2 };
                    // Every seventh names an unknown warehouse: refused
                    // alone, whatever it is committed with.
                    let refused = k % 7 == 6;
                    let event = json!({
                        "id": format!("s{sender}-e{k}"),
                        "type": "inventory_adjusted",
                        "sku": sku,
                        "warehouse": if refused { "NOWHERE" } else { "MAIN" },
                        "delta": delta
                    });
                    let path = if k % 4 == 0 {
                        "/v1/events?wait=true"
                    } else {
                        "/v1/events"
                    };
                    let port = ports[(sender + k) % ports.len()];
                    let (code, body) = post(&agent, port, path, &event);
                    assert!(!body.contains("locked"), "{body}");
                    if refused {
                        assert_eq!(code, 422, "sender {sender} event {k}: {body}");
                        assert!(body.contains("NOWHERE"), "{body}");
                        continue;
                    }
                    assert!(
                        (200..300).contains(&code),
                        "sender {sender} event {k}: {code} {body}"
                    );
                    *moved.entry(sku).or_default() += delta;
                    accepted += 1;
                }
                (moved, accepted)
            })
        })
        .collect();
    let mut moved = std::collections::BTreeMap::new();
    let mut accepted = 0;
    for thread in threads {
        let (theirs, count) = thread.join().expect("a sender thread");
        accepted += count;
        for (sku, delta) in theirs {
            *moved.entry(sku).or_default() += delta;
        }
    }
    (moved, accepted)
}

fn on_hand(export: &Value, sku: &str) -> i64 {
    export["inventory"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["sku"] == sku)
        .map(|row| row["on_hand"].as_i64().unwrap())
        .sum()
}

fn ready(port: u16) -> (u16, String) {
    let mut response = agent()
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .call()
        .unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

fn concurrent_senders_on_one_hot_sku(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &book());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    // Small batches: the worker's recalculations interleave with ingest.
    let daemon = Daemon::start_with_args(
        &db,
        &[("BACKORDERD__SERVICE__SKUS_PER_BATCH", "2")],
        &["--listen", &listen],
    );
    wait_idle(&db, Duration::from_secs(30));
    let before = export(&db);

    let (moved, accepted) = send_concurrently(&[port], 6, 60, |_, k| {
        if k % 5 == 4 {
            format!("Q{}", k % 4)
        } else {
            "HOT".to_owned()
        }
    });
    wait_idle(&db, Duration::from_secs(60));

    // Every event applied exactly once.
    let after = export(&db);
    for (sku, delta) in &moved {
        assert_eq!(
            on_hand(&after, sku),
            on_hand(&before, sku) + delta,
            "on hand of {sku}"
        );
    }
    let received: Vec<(i64,)> =
        db.fetch_all("SELECT COUNT(*) FROM received_events WHERE id LIKE 's%-e%'");
    assert_eq!(received[0].0, accepted);
    assert!(accepted > 300, "{accepted}");
    assert_matches_simulate(&db, &after, &[], &[]);

    // The worker is alive: ready, listed, and it never died on a lock.
    let (code, body) = ready(port);
    assert_eq!(code, 200, "{body}");
    let log = daemon.stderr();
    assert!(!log.contains("locked"), "{log}");
    assert!(!log.contains("stopped on its own"), "{log}");
    assert_eq!(status(&db)["workers"].as_array().map(Vec::len), Some(1));
    daemon.stop_with("TERM");
}

on_both_backends!(concurrent_senders_on_one_hot_sku);

/// Two `serve` processes on one PostgreSQL, senders on overlapping (the hot
/// SKU, through both) and disjoint SKUs (each sender its own): the finer
/// event locks let the disjoint ones through and never deadlock.
#[test]
fn two_daemons_on_postgres_overlapping_and_disjoint_skus() {
    let db = TempDatabase::postgres();
    import(&db, &book());
    let ports = [free_port(), free_port()];
    let daemons: Vec<Daemon> = ports
        .iter()
        .map(|port| {
            let listen = format!("127.0.0.1:{port}");
            Daemon::start_with_args(
                &db,
                &[("BACKORDERD__SERVICE__SKUS_PER_BATCH", "2")],
                &["--listen", &listen],
            )
        })
        .collect();
    wait_idle(&db, Duration::from_secs(30));
    let before = export(&db);
    let started = Instant::now();
    let (moved, _) = send_concurrently(&ports, 4, 50, |sender, k| {
        if k % 2 == 0 {
            "HOT".to_owned()
        } else {
            format!("Q{sender}")
        }
    });
    eprintln!("200 events through two daemons in {:?}", started.elapsed());
    wait_idle(&db, Duration::from_secs(60));
    let after = export(&db);
    for (sku, delta) in &moved {
        assert_eq!(
            on_hand(&after, sku),
            on_hand(&before, sku) + delta,
            "on hand of {sku}"
        );
    }
    assert_matches_simulate(&db, &after, &[], &[]);
    for daemon in daemons {
        let log = daemon.stderr();
        assert!(!log.contains("deadlock"), "{log}");
        daemon.stop_with("TERM");
    }
}

/// A CLI command while another process holds SQLite's write lock longer
/// than `database.busy_timeout_secs`: exit 1, a message that says so and
/// names the setting, nothing applied.
#[test]
fn a_command_that_meets_another_process_lock_says_which_setting_to_raise() {
    let db = TempDatabase::new();
    import(&db, &book());
    let holder = rusqlite::Connection::open(&db.path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let event = json!({"id": "blocked-1", "type": "inventory_adjusted", "sku": "HOT", "warehouse": "MAIN", "delta": 1});
    let started = Instant::now();
    let run = crate::support::backorderd(
        &["--database-url", &db.url, "event", "-"],
        Some(event.to_string().as_bytes()),
        &[("BACKORDERD__DATABASE__BUSY_TIMEOUT_SECS", "1")],
    );
    let waited = started.elapsed();
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("another process holds the database")
            && run.stderr.contains("database.busy_timeout_secs"),
        "{}",
        run.stderr
    );
    assert!(waited >= Duration::from_secs(1), "it waited {waited:?}");
    let received: Vec<(i64,)> =
        db.fetch_all("SELECT COUNT(*) FROM received_events WHERE id = 'blocked-1'");
    assert_eq!(received[0].0, 0, "nothing applied");
}

/// The stored backorder of every line of `sku`.
fn backorders_of(db: &TempDatabase, sku: &str) -> Vec<(String, i64)> {
    db.fetch_all(&format!(
        "SELECT id, CAST(backorder_qty AS BIGINT) FROM order_lines WHERE sku = '{sku}' ORDER BY id"
    ))
}

/// `?wait=true` on a SKU that other senders keep marking dirty: it waits
/// for a recalculation that includes its own event, not for a quiet moment
/// (which never comes), and the stored values then reflect that event.
/// On PostgreSQL the stream and the waiter go through two `serve`
/// processes, so the recalculation may be the other process's.
fn a_wait_on_a_sku_that_never_rests_returns_with_its_own_event(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &book());
    let daemons = match backend {
        Backend::Sqlite => 1,
        Backend::Postgres => 2,
    };
    let ports: Vec<u16> = (0..daemons).map(|_| free_port()).collect();
    let running: Vec<Daemon> = ports
        .iter()
        .map(|port| {
            let listen = format!("127.0.0.1:{port}");
            Daemon::start_with_args(&db, &[], &["--listen", &listen])
        })
        .collect();
    wait_idle(&db, Duration::from_secs(30));
    let short: i64 = backorders_of(&db, "HOT").iter().map(|l| l.1).sum();
    assert!(short > 0, "HOT starts short of stock");

    // Three senders mark HOT again and again (+1, -1: the stock stays
    // within one unit of where it was), through the last daemon.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stream_port = *ports.last().unwrap();
    let streams: Vec<_> = (0..3)
        .map(|sender| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let agent = agent();
                let mut sent = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let event = json!({"id": format!("stream{sender}-{sent}"),
                        "type": "inventory_adjusted", "sku": "HOT", "warehouse": "MAIN",
                        "delta": if sent % 2 == 0 { 1 } else { -1 }});
                    let (code, body) = post(&agent, stream_port, "/v1/events", &event);
                    assert_eq!(code, 202, "{body}");
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    // Enough stock for every HOT line: once recalculated with this event,
    // no HOT line is short, whatever the stream did around it.
    let plenty = json!({"id": "plenty", "type": "inventory_adjusted", "sku": "HOT",
                        "warehouse": "MAIN", "delta": 100_000});
    let started = Instant::now();
    let (code, body) = post(
        &agent(),
        ports[0],
        "/v1/events?wait=true&timeout=30",
        &plenty,
    );
    let waited = started.elapsed();
    let right_after = backorders_of(&db, "HOT");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent: usize = streams.into_iter().map(|t| t.join().unwrap()).sum();
    eprintln!("the wait took {waited:?} while the stream sent {sent} events");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"written_back\":true"), "{body}");
    assert!(sent > 10, "the stream ran ({sent} events)");
    let still_short: Vec<_> = right_after.iter().filter(|l| l.1 > 0).collect();
    assert!(
        still_short.is_empty(),
        "answered before its event was recalculated: {still_short:?}"
    );

    wait_idle(&db, Duration::from_secs(60));
    assert_matches_simulate(&db, &export(&db), &[], &[]);
    for daemon in running {
        daemon.stop_with("TERM");
    }
}

on_both_backends!(a_wait_on_a_sku_that_never_rests_returns_with_its_own_event);
