//! The delivery loop through the real binary: `serve` sends the message
//! log to real HTTP receivers (tests/it/delivery_support.rs) that fail a
//! share of the attempts, across kill -9 and, on PostgreSQL, three daemons
//! and a database outage; 410 disables an endpoint until re-enabled; a dead
//! endpoint does not hold up another; messages die after the retry window,
//! are listed and redelivered by hand.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon_support::Daemon;
use crate::delivery_support::*;
use crate::support::{Backend, TempDatabase, on_both_backends};

fn serve(db: &TempDatabase, config: &str, port: u16) -> Daemon {
    let listen = format!("127.0.0.1:{port}");
    Daemon::start_with_args(db, &[], &["--config", config, "--listen", &listen])
}

fn http(method: &str, port: u16, path: &str) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut response = match method {
        "POST" => agent.post(&url).send_empty(),
        _ => agent.get(&url).call(),
    }
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// How many times each id was answered 200.
fn successes(receiver: &Receiver) -> HashMap<String, usize> {
    let mut count = HashMap::new();
    for id in receiver.delivered() {
        *count.entry(id).or_insert(0) += 1;
    }
    count
}

/// A receiver failing about a third of the attempts: 500, no answer
/// within the timeout, a dropped connection.
fn flaky(n: usize) -> Answer {
    match n % 9 {
        1 => Answer::Error500,
        4 => Answer::Drop,
        7 if n % 27 == 7 => Answer::Hang,
        7 => Answer::Error500,
        _ => Answer::Ok,
    }
}

on_both_backends!(
    every_message_arrives_signed_in_order_per_key_once_through_failures,
    serve_killed_during_delivery_loses_nothing_and_keeps_each_key_in_order,
    a_dead_endpoint_does_not_delay_another_then_its_messages_die_and_are_redelivered,
    gone_disables_the_endpoint_across_restarts_until_enabled_by_hand,
);

fn every_message_arrives_signed_in_order_per_key_once_through_failures(backend: Backend) {
    let db = TempDatabase::of(backend);
    let receiver = Receiver::start(flaky);
    let config = config_file(&db, &[(&receiver.url(), None)], None, 3600);
    let daemon = serve(&db, &config, free_port());
    let mut messages = Vec::new();
    for round in 0..4 {
        messages.extend(append_many(&db, &format!("r{round}-"), 40, 8, 7));
        std::thread::sleep(Duration::from_millis(100));
    }
    let ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
    receiver.wait_for(&ids, Duration::from_secs(90));
    // A little longer: nothing more may come.
    std::thread::sleep(Duration::from_millis(500));
    let hits = receiver.hits();
    assert!(
        hits.iter().any(|h| h.answer != Answer::Ok),
        "the receiver failed some attempts"
    );
    assert_in_order_per_key(&hits, &messages);
    let twice: Vec<_> = successes(&receiver)
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(twice.is_empty(), "delivered again after a 2xx: {twice:?}");
    assert_eq!(successes(&receiver).len(), messages.len());
    drop(daemon);
}

fn serve_killed_during_delivery_loses_nothing_and_keeps_each_key_in_order(backend: Backend) {
    let db = TempDatabase::of(backend);
    // Slow enough that a kill lands with attempts in flight.
    let receiver = Receiver::start(|n| {
        if n % 5 == 2 {
            Answer::Error500
        } else {
            Answer::Ok
        }
    });
    let config = config_file(&db, &[(&receiver.url(), None)], None, 3600);
    let port = free_port();
    let daemon = serve(&db, &config, port);
    let messages = append_many(&db, "k", 300, 30, 50);
    wait_until("some deliveries", Duration::from_secs(30), || {
        receiver.delivered().len() >= 20
    });
    daemon.kill();
    let before = receiver.delivered().len();
    assert!(before < messages.len(), "the kill came before the end");
    let more = append_many(&db, "k", 60, 30, 20);
    let daemon = serve(&db, &config, port);
    let all: Vec<_> = messages.into_iter().chain(more).collect();
    let ids: Vec<String> = all.iter().map(|m| m.id.clone()).collect();
    receiver.wait_for(&ids, Duration::from_secs(120));
    assert_in_order_per_key(&receiver.hits(), &all);
    drop(daemon);
}

fn a_dead_endpoint_does_not_delay_another_then_its_messages_die_and_are_redelivered(
    backend: Backend,
) {
    let db = TempDatabase::of(backend);
    let good = Receiver::start(|_| Answer::Ok);
    // Nothing listens there.
    let dead_port = free_port();
    let dead_url = format!("http://127.0.0.1:{dead_port}/hook");
    let config = config_file(&db, &[(&good.url(), None), (&dead_url, None)], None, 3);
    let port = free_port();
    let daemon = serve(&db, &config, port);
    let started = Instant::now();
    let messages = append_many(&db, "d", 20, 4, 20);
    let ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
    good.wait_for(&ids, Duration::from_secs(10));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the good endpoint waited for the dead one: {:?}",
        started.elapsed()
    );
    assert_in_order_per_key(&good.hits(), &messages);

    // After the 3 s window the dead endpoint's messages are dead, listed
    // by the CLI and the API with the last error.
    let destination = format!("webhook:{dead_url}");
    wait_until("the messages dead", Duration::from_secs(30), || {
        let run = cli(&db, &config, &["dead", "--destination", &destination]);
        run.json()["dead"].as_array().unwrap().len() == messages.len()
    });
    let (status, listed) = http("GET", port, "/v1/dead");
    assert_eq!(status, 200);
    let dead = listed["dead"].as_array().unwrap();
    assert_eq!(dead.len(), messages.len(), "{listed}");
    assert!(
        dead.iter()
            .all(|d| d["destination"] == destination.as_str())
    );
    let error = dead[0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("onnect") || error.contains("refused"),
        "{error}"
    );
    assert!(dead[0]["attempts"].as_i64().unwrap() >= 2, "{listed}");
    let status_now = cli(&db, &config, &["status"]).json();
    let entry = status_now["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["destination"] == destination.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["dead"], messages.len() as i64, "{status_now}");
    assert_eq!(entry["backlog"], 0, "{status_now}");
    let (_, metrics) = http("GET", port, "/metrics");
    let metrics = metrics.as_str().unwrap().to_owned();
    for part in [
        format!(
            "backorderd_deliveries_total{{destination=\"webhook:{}\",outcome=\"delivered\"}} {}",
            good.url(),
            messages.len()
        ),
        format!(
            "backorderd_deliveries_total{{destination=\"{destination}\",outcome=\"dead\"}} {}",
            messages.len()
        ),
        format!(
            "backorderd_dead_messages{{destination=\"{destination}\"}} {}",
            messages.len()
        ),
        "backorderd_delivery_lag_seconds_bucket".to_owned(),
    ] {
        assert!(metrics.contains(&part), "{part} missing:\n{metrics}");
    }

    // The endpoint comes back: one message by HTTP, the rest by the CLI.
    let back = Receiver::start_on(dead_port, |_| Answer::Ok);
    let first = &messages[0].id;
    let (status, answer) = http(
        "POST",
        port,
        &format!("/v1/dead/{first}/redeliver?destination={destination}"),
    );
    assert_eq!(status, 200, "{answer}");
    back.wait_for(std::slice::from_ref(first), Duration::from_secs(10));
    let (status, _) = http("POST", port, "/v1/dead/msg_unknown/redeliver");
    assert_eq!(status, 404);
    let run = cli(
        &db,
        &config,
        &["redeliver", "--all", "--destination", &destination],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["redelivered"], (messages.len() - 1) as i64);
    back.wait_for(&ids, Duration::from_secs(20));
    let run = cli(&db, &config, &["dead"]);
    assert_eq!(run.json()["dead"], serde_json::json!([]));
    let unknown = cli(&db, &config, &["redeliver", "msg_unknown"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    // The good endpoint got each message once.
    assert!(successes(&good).values().all(|n| *n == 1));
    drop(daemon);
}

fn gone_disables_the_endpoint_across_restarts_until_enabled_by_hand(backend: Backend) {
    let db = TempDatabase::of(backend);
    let receiver = Receiver::start(|n| if n == 0 { Answer::Gone } else { Answer::Ok });
    let config = config_file(&db, &[(&receiver.url(), None)], None, 3600);
    let port = free_port();
    let daemon = serve(&db, &config, port);
    let messages = append_many(&db, "g", 3, 1, 3);
    wait_until("the 410", Duration::from_secs(10), || {
        !receiver.hits().is_empty()
    });
    let destination = format!("webhook:{}", receiver.url());
    let (status, answer) = http("GET", port, "/v1/status");
    assert_eq!(status, 200);
    let entry = &answer["destinations"][0];
    assert_eq!(entry["destination"], destination.as_str(), "{answer}");
    assert!(entry["disabled_at"].is_string(), "{answer}");
    assert_eq!(entry["backlog"], 3, "{answer}");
    // Disabled across a restart: nothing more is sent.
    daemon.stop_with("TERM");
    let daemon = serve(&db, &config, port);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(receiver.hits().len(), 1, "sent while disabled");
    let disabled = cli(&db, &config, &["status"]).json();
    assert!(
        disabled["destinations"][0]["disabled_at"].is_string(),
        "{disabled}"
    );

    let unknown = cli(
        &db,
        &config,
        &["enable-destination", "webhook:http://nowhere/"],
    );
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    let (status, answer) = http(
        "POST",
        port,
        &format!("/v1/destinations/enable?destination={destination}"),
    );
    assert_eq!(status, 200, "{answer}");
    let ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
    receiver.wait_for(&ids, Duration::from_secs(10));
    assert_in_order_per_key(&receiver.hits(), &messages);
    let enabled = cli(&db, &config, &["status"]).json();
    assert!(
        enabled["destinations"][0]["disabled_at"].is_null(),
        "{enabled}"
    );
    drop(daemon);
}

#[test]
fn three_serves_on_postgres_and_a_database_outage_lose_nothing_and_send_each_message_once_at_a_time()
 {
    let db = TempDatabase::postgres();
    // No hanging answers here: a hang outlives the sender's timeout on the
    // receiver's side and would look like two attempts at once.
    let receiver = Receiver::start(|n| match n % 7 {
        2 => Answer::Error500,
        5 => Answer::Drop,
        _ => Answer::Ok,
    });
    let config = config_file(&db, &[(&receiver.url(), None)], None, 3600);
    let daemons: Vec<Daemon> = (0..3).map(|_| serve(&db, &config, free_port())).collect();
    let mut messages = append_many(&db, "p", 150, 25, 25);
    wait_until("some deliveries", Duration::from_secs(30), || {
        receiver.delivered().len() >= 30
    });
    db.postgres_refuse_connections(true);
    std::thread::sleep(Duration::from_secs(3));
    db.postgres_refuse_connections(false);
    messages.extend(append_many(&db, "p", 150, 25, 25));
    let ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
    receiver.wait_for(&ids, Duration::from_secs(120));
    let hits = receiver.hits();
    assert_in_order_per_key(&hits, &messages);
    // Never two attempts of one message at once.
    let mut by_id: HashMap<&str, Vec<(Instant, Instant)>> = HashMap::new();
    for hit in &hits {
        by_id.entry(&hit.id).or_default().push((hit.start, hit.end));
    }
    for (id, mut spans) in by_id {
        spans.sort();
        for pair in spans.windows(2) {
            assert!(pair[1].0 >= pair[0].1, "{id} was sent twice at once");
        }
    }
    drop(daemons);
}

fn email_table(port: u16) -> String {
    format!(
        "[email]\nsmtp_url = \"smtp://127.0.0.1:{port}?tls=none\"\nfrom = \"Thirsty Tea <backorders@thirstytea.example>\"\ntimeout_secs = 5\n"
    )
}

on_both_backends!(mails_reach_the_customers_and_a_refusing_server_leads_to_retries_then_dead,);

fn mails_reach_the_customers_and_a_refusing_server_leads_to_retries_then_dead(backend: Backend) {
    use backorderd::delivery::message::MessageType;
    let db = TempDatabase::of(backend);
    let sink = crate::delivery_mail::Sink::start(None);
    let config = config_file(&db, &[], Some(&email_table(sink.port)), 3600);
    let port = free_port();
    let daemon = serve(&db, &config, port);
    let stored = append(
        &db,
        vec![
            order_draft(
                "SO-1",
                MessageType::OrderBackordered,
                Some(("ada@example.com", "Ada Lovelace")),
            ),
            // No address: no mail.
            order_draft("SO-2", MessageType::OrderBackordered, None),
            // Not a mailed type by default.
            order_draft(
                "SO-1",
                MessageType::OrderBackorderChanged,
                Some(("ada@example.com", "Ada Lovelace")),
            ),
            order_draft(
                "SO-3",
                MessageType::OrderBackorderCleared,
                Some(("bob@example.com", "Bob")),
            ),
        ],
    );
    let mails = sink.mails(2);
    assert_eq!(mails.len(), 2, "{mails:?}");
    let text: Vec<String> = mails
        .iter()
        .map(|m| m.replace("=\r\n", "").replace("=3D", "="))
        .collect();
    let ada = text
        .iter()
        .find(|m| m.contains("X-Envelope-To: ada@example.com"))
        .expect("Ada's mail");
    for part in [
        "Subject: Your order SO-1 is waiting for stock",
        &format!("Message-ID: <{}@thirstytea.example>", stored[0].id),
        "- TEA-01: 3 of 5 waiting, expected 2026-12-24",
    ] {
        assert!(ada.contains(part), "{part:?} missing:\n{ada}");
    }
    let bob = text
        .iter()
        .find(|m| m.contains("X-Envelope-To: bob@example.com"))
        .expect("Bob's mail");
    assert!(
        bob.contains(&format!(
            "Message-ID: <{}@thirstytea.example>",
            stored[3].id
        )),
        "{bob}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.mails(2).len(), 2, "no more mail");
    let status = cli(&db, &config, &["status"]).json();
    assert_eq!(
        status["destinations"][0]["destination"], "email",
        "{status}"
    );
    assert_eq!(status["destinations"][0]["backlog"], 0, "{status}");
    drop(daemon);

    // A server that refuses every mail: retried, then dead after the window.
    let refusing = crate::delivery_mail::Sink::start(Some("451"));
    let config = config_file(&db, &[], Some(&email_table(refusing.port)), 2);
    let daemon = serve(&db, &config, port);
    let stored = append(
        &db,
        vec![order_draft(
            "SO-9",
            MessageType::OrderBackordered,
            Some(("eve@example.com", "Eve")),
        )],
    );
    wait_until("the mail dead", Duration::from_secs(30), || {
        !cli(&db, &config, &["dead"]).json()["dead"]
            .as_array()
            .unwrap()
            .is_empty()
    });
    let dead = cli(&db, &config, &["dead", "--destination", "email"]).json();
    let entry = &dead["dead"][0];
    assert_eq!(entry["id"], stored[0].id.as_str(), "{dead}");
    assert!(entry["attempts"].as_i64().unwrap() >= 2, "{dead}");
    assert!(
        entry["last_error"].as_str().unwrap().contains("451"),
        "{dead}"
    );
    drop(daemon);
}
