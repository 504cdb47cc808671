//! The read paths' kept pools (src/store/pool_reads.rs): a `serve` that
//! keeps a hot pool's state for `GET /v1/products/{sku}` and
//! `GET /v1/orders/{id}` (and the console's pages) brings it up to date
//! from the pool log after each change, whoever makes it: an event it
//! recalculates, an override the `event` command writes behind its back
//! (it marks nothing), hand-written UPDATEs of a line's order and of the
//! stock. After each, its answers must be exactly those of a `serve`
//! started afresh on the same database, which reads the pool whole.

use serde_json::{Value, json};
use std::time::Duration;

use crate::console_support::{agent, free_port};
use crate::daemon::import;
use crate::daemon_support::{Daemon, generate, send_events, wait_idle};
use crate::support::TempDatabase;

const HOT: &str = "SKU-000000";

fn start(db: &TempDatabase) -> (Daemon, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let env = [
        ("BACKORDERD__HTTP__LISTEN", listen.as_str()),
        ("RUST_LOG", "info,backorderd::store=debug"),
    ];
    (Daemon::start(db, &env), format!("http://{listen}"))
}

fn get(base: &str, path: &str) -> Value {
    let mut answer = agent().get(format!("{base}{path}")).call().unwrap();
    assert_eq!(answer.status().as_u16(), 200, "{path}");
    serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap()
}

/// The product and order answers of the kept daemon equal a fresh one's.
fn assert_as_read_whole(db: &TempDatabase, kept: &str, order: &str, step: &str) {
    let paths = [format!("/v1/products/{HOT}"), format!("/v1/orders/{order}")];
    let served: Vec<Value> = paths.iter().map(|p| get(kept, p)).collect();
    let (fresh, base) = start(db);
    let whole: Vec<Value> = paths.iter().map(|p| get(&base, p)).collect();
    drop(fresh);
    for ((path, served), whole) in paths.iter().zip(&served).zip(&whole) {
        assert_eq!(served, whole, "{path} after {step}");
    }
}

fn event(db: &TempDatabase, event: Value) {
    let sent = send_events(db, &[event], &[]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
}

#[test]
fn a_kept_pool_read_is_patched_to_exactly_what_a_whole_read_gives() {
    let db = TempDatabase::new();
    // The hottest SKU gets about two thirds of the lines: kept (2,000 or more).
    let book = generate(6000, 2, 7);
    import(&db, &book);
    let (daemon, base) = start(&db);
    wait_idle(&db, Duration::from_secs(60));
    let lines: Vec<(String, String)> = book["orders"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|o| {
            let order = o["id"].as_str().unwrap().to_owned();
            o["lines"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|l| l["sku"] == HOT && l["qty"].as_i64().unwrap() > 0)
                .map(move |l| (order.clone(), l["id"].as_str().unwrap().to_owned()))
        })
        .collect();
    assert!(lines.len() >= 2_000, "{} lines of {HOT}", lines.len());
    let (order, line) = lines[lines.len() / 2].clone();
    assert_as_read_whole(&db, &base, &order, "the first read");

    event(
        &db,
        json!({"id": "ov-1", "type": "backorder_override", "line_id": line, "backorder_qty": 1}),
    );
    assert_as_read_whole(&db, &base, &order, "an override no recalculation saw");

    db.execute(&format!(
        "UPDATE inventory SET on_hand = on_hand + 40 WHERE sku = '{HOT}'"
    ));
    assert_as_read_whole(&db, &base, &order, "a hand-written stock change");

    event(
        &db,
        json!({"id": "inv-1", "type": "inventory_adjusted", "sku": HOT, "warehouse": "MAIN", "delta": -25}),
    );
    wait_idle(&db, Duration::from_secs(60));
    assert_as_read_whole(&db, &base, &order, "a recalculated event");

    db.execute(&format!("UPDATE orders SET rush = 1 WHERE id = '{order}'"));
    db.execute(&format!(
        "UPDATE order_lines SET qty = qty + 2 WHERE id = '{}'",
        lines[3].1
    ));
    assert_as_read_whole(&db, &base, &order, "hand-written order changes");

    let log = daemon.stderr();
    assert!(
        log.contains("pool reads: patched"),
        "the kept state was patched, not only read whole:\n{}",
        log.lines()
            .filter(|l| l.contains("pool reads"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
