//! `product.availability_changed` and `purchasing.digest` end to end on
//! both databases: events through the real `serve`, the messages read back
//! with `backorderd changes` and compared with the served feed, and the
//! digest on a short schedule reaching a webhook receiver and the SMTP
//! sink, once per slot with two `serve` processes on one database.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::availability::{book, free_port, get_json, import};
use crate::daemon_support::{Daemon, send_events};
use crate::delivery_mail::Sink;
use crate::delivery_support::{Answer, Receiver, config_file};
use crate::support::{Backend, TempDatabase, on_both_backends};

on_both_backends!(
    availability_messages_carry_the_new_figures_after_receipts_adjustments_and_thresholds,
    the_purchasing_digest_fires_on_its_schedule_once_per_slot_and_reaches_webhook_and_mail,
);

/// Every message in the log of `kind`, in commit order.
fn messages_of(db: &TempDatabase, kind: &str) -> Vec<Value> {
    let run = db.run(&["changes"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|m| m["type"] == kind)
        .collect()
}

const AVAILABILITY: &str = "product.availability_changed";

fn without_previous(data: &Value) -> Value {
    let mut data = data.clone();
    data.as_object_mut().unwrap().remove("previous");
    data
}

fn wait_events(db: &TempDatabase, events: &[Value]) {
    let sent = send_events(db, events, &["--wait", "--timeout", "60"]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
}

fn availability_messages_carry_the_new_figures_after_receipts_adjustments_and_thresholds(
    backend: Backend,
) {
    let db = TempDatabase::of(backend);
    // The helper's `recalc --all` after the quiet import is a recalculation
    // of its own: each SKU's first message, `previous` null.
    import(&db, &book());
    let first = messages_of(&db, AVAILABILITY);
    let keys: Vec<&Value> = first.iter().map(|m| &m["key"]).collect();
    assert_eq!(keys, [&json!("product:CUP"), &json!("product:TEA")]);
    let port = free_port();
    let _daemon = Daemon::start_with_args(&db, &[], &["--listen", &format!("127.0.0.1:{port}")]);
    let (_, tea_before) = get_json(port, "/v1/availability/TEA");
    let (_, cup_before) = get_json(port, "/v1/availability/CUP");
    for (m, entry) in first.iter().zip([&cup_before, &tea_before]) {
        assert_eq!(m["seq"], 1);
        assert_eq!(m["data"]["previous"], Value::Null);
        assert_eq!(&without_previous(&m["data"]), entry);
    }
    let new = |db: &TempDatabase| messages_of(db, AVAILABILITY)[first.len()..].to_vec();

    // The PO arrives and a unit turns up in EAST: one message for TEA, its
    // data the served entry, `previous` the entry before; CUP is unchanged.
    wait_events(
        &db,
        &[
            json!({"id": "r1", "type": "po_received", "sku": "TEA", "warehouse": "MAIN", "qty": 2, "po_id": "PO-1"}),
            json!({"id": "a1", "type": "inventory_adjusted", "sku": "TEA", "warehouse": "EAST", "delta": 1}),
        ],
    );
    let got = new(&db);
    assert_eq!(got.len(), 1, "{got:#?}");
    let (_, tea) = get_json(port, "/v1/availability/TEA");
    assert_eq!(got[0]["key"], "product:TEA");
    assert_eq!(got[0]["seq"], 2);
    assert_eq!(without_previous(&got[0]["data"]), tea);
    assert_eq!(got[0]["data"]["previous"], tea_before);
    assert_eq!(
        [&tea["on_hand"], &tea["backordered"], &tea["on_order"]],
        [7, 2, 0]
    );
    assert_eq!(got[0]["data"]["previous"]["on_order"], 2);
    let causes = got[0]["causes"].as_array().unwrap();
    assert!(
        causes.contains(&json!("r1")) || causes.contains(&json!("a1")),
        "{causes:?}"
    );

    // A tighter threshold changes no allocation, only the figures: TEA is
    // over its threshold in EAST now, and the message says so.
    wait_events(
        &db,
        &[json!({"id": "p1", "type": "product_upserted", "product":
            {"sku": "TEA", "vendor": "Leafy", "backorder_thresholds": {"MAIN": 0, "EAST": 1}}})],
    );
    let got = new(&db);
    assert_eq!(got.len(), 2, "{got:#?}");
    let (_, tea_now) = get_json(port, "/v1/availability/TEA");
    assert_eq!(got[1]["seq"], 3);
    assert_eq!(got[1]["causes"], json!(["p1"]));
    assert_eq!(without_previous(&got[1]["data"]), tea_now);
    assert_eq!(got[1]["data"]["over_threshold"], true);
    assert_eq!(got[1]["data"]["previous"]["over_threshold"], false);
    assert_eq!(got[1]["data"]["previous"], tea);

    // An adjustment on CUP moves CUP's figures alone.
    wait_events(
        &db,
        &[
            json!({"id": "a2", "type": "inventory_adjusted", "sku": "CUP", "warehouse": "MAIN", "delta": -3}),
        ],
    );
    let got = new(&db);
    assert_eq!(got.len(), 3, "{got:#?}");
    assert_eq!(got[2]["key"], "product:CUP");
    assert_eq!(got[2]["seq"], 2);
    assert_eq!(got[2]["data"]["previous"], cup_before);
    assert_eq!(got[2]["data"]["on_hand"], 7);
    assert_eq!(got[2]["data"]["backordered"], 10);

    // A recalculation that changes nothing emits nothing, nor does an
    // upsert that leaves the product as it was.
    let run = db.run(
        &[
            "recalc",
            "--sku",
            "TEA",
            "--sku",
            "CUP",
            "--wait",
            "--timeout",
            "60",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    wait_events(
        &db,
        &[json!({"id": "p2", "type": "product_upserted", "product":
            {"sku": "TEA", "vendor": "Leafy", "backorder_thresholds": {"MAIN": 0, "EAST": 1}}})],
    );
    assert_eq!(new(&db).len(), 3);
}

/// Waits until the log holds `count` digests.
fn wait_digests(db: &TempDatabase, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let digests = messages_of(db, "purchasing.digest");
        if digests.len() >= count {
            return digests;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} digests after 30 s",
            digests.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn the_purchasing_digest_fires_on_its_schedule_once_per_slot_and_reaches_webhook_and_mail(
    backend: Backend,
) {
    let db = TempDatabase::of(backend);
    import(&db, &book());
    let receiver = Receiver::start(|_| Answer::Ok);
    let sink = Sink::start(None);
    let email = format!(
        "[email]\nsmtp_url = \"smtp://127.0.0.1:{}?tls=none\"\n\
         from = \"Thirsty Tea <backorders@thirstytea.example>\"\n\n\
         [purchasing]\ndigest_schedule = \"every 2s\"\n\
         digest_email = \"Purchasing <buy@thirstytea.example>\"\n",
        sink.port
    );
    let config = config_file(
        &db,
        &[(&receiver.url(), Some(&["purchasing.digest"]))],
        Some(&email),
        3600,
    );
    let checked = db.run(&["--config", &config, "check-config"], None);
    assert_eq!(checked.code, 0, "{}", checked.stderr);
    assert!(
        checked.stdout.contains("digest_schedule = \"every 2s\""),
        "{}",
        checked.stdout
    );
    // Two processes on one database: one digest per slot.
    let start = |db: &TempDatabase| {
        let listen = format!("127.0.0.1:{}", free_port());
        Daemon::start_with_args(db, &[], &["--config", &config, "--listen", &listen])
    };
    let first = start(&db);
    let second = start(&db);
    wait_digests(&db, 3);
    drop((first, second));
    let digests = messages_of(&db, "purchasing.digest");

    let mut slots: Vec<&str> = digests
        .iter()
        .map(|d| d["data"]["scheduled_for"].as_str().unwrap())
        .collect();
    let all = slots.len();
    slots.dedup();
    assert_eq!(slots.len(), all, "a slot sent twice: {slots:?}");
    let seqs: Vec<i64> = digests.iter().map(|d| d["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=all as i64).collect::<Vec<_>>());
    // The report of section 4: TEA 3 short for Leafy, CUP 7 without vendor.
    let data = &digests[0]["data"];
    assert_eq!(digests[0]["key"], "purchasing:digest");
    assert_eq!(data["vendors"][0]["vendor"], "Leafy", "{data}");
    assert_eq!(data["vendors"][0]["skus"][0]["sku"], "TEA");
    assert_eq!(data["vendors"][0]["skus"][0]["shortfall"], 3);
    assert_eq!(data["vendors"][1]["vendor"], Value::Null);
    assert_eq!(data["vendors"][1]["skus"][0]["shortfall"], 7);

    let first_id = digests[0]["id"].as_str().unwrap().to_owned();
    receiver.wait_for(std::slice::from_ref(&first_id), Duration::from_secs(20));
    let mails = sink.mails(1);
    assert!(!mails.is_empty(), "no digest mail");
    let mail = &mails[0];
    assert!(mail.contains("buy@thirstytea.example"), "{mail}");
    assert!(mail.contains("2 SKUs to order (10 units short)"), "{mail}");
    assert!(mail.contains("TEA: 3 short"), "{mail}");
}

#[test]
fn a_bad_digest_schedule_or_address_is_refused_by_check_config_and_serve_naming_the_key() {
    let db = TempDatabase::new();
    for (table, key, says) in [
        (
            "[purchasing]\ndigest_schedule = \"Mondayz 08:00 UTC\"\n",
            "purchasing.digest_schedule",
            "not a day of the week",
        ),
        (
            "[purchasing]\ndigest_schedule = \"every 0s\"\n",
            "purchasing.digest_schedule",
            "from 1 second to a year",
        ),
        (
            "[purchasing]\ndigest_schedule = \"weekly\"\ndigest_email = \"buy@shop.example\"\n",
            "purchasing.digest_email",
            "[email]",
        ),
        (
            "[purchasing]\ndigest_schedul = \"weekly\"\n",
            "digest_schedul",
            "unknown",
        ),
    ] {
        let config = config_file(&db, &[], Some(table), 3600);
        for command in [&["check-config"][..], &["serve", "--listen", "127.0.0.1:0"]] {
            let mut args = vec!["--config", config.as_str()];
            args.extend_from_slice(command);
            let run = db.run(&args, None);
            assert_eq!(run.code, 1, "{command:?} {table}: {}", run.stderr);
            assert!(
                run.stderr.contains(key) && run.stderr.contains(says),
                "{command:?} {table}: {}",
                run.stderr
            );
        }
    }
}
