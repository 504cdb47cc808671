//! Delivery end to end, the way a shop runs it: events sent over HTTP to
//! `serve` cause recalculations, whose change messages reach a real
//! webhook receiver (tests/it/delivery_support.rs) that fails a share of
//! the attempts; then the same with `serve` killed with kill -9 and
//! restarted, and on PostgreSQL with three `serve` processes and the
//! database server stopped and started again with `pg_ctl`.
//!
//! What a receiver checks: every message the daemon committed arrives,
//! each signature verifies, a key's messages arrive in `seq` order (none
//! sent before the one before it was answered 2xx), and nothing is
//! delivered again after a 2xx unless a process was killed in between.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use backorderd::delivery::message::Message;
use serde_json::{Value, json};

use crate::daemon_support::{Daemon, Lcg, wait_idle};
use crate::delivery_support::*;
use crate::support::{Backend, TempDatabase, on_both_backends};

const SKUS: usize = 6;
const ORDERS: usize = 40;

fn sku(i: usize) -> String {
    format!("E2E-{i}")
}

/// A book in which no SKU has stock yet: every order waits. Imported
/// without `--notify`, so the log starts empty and every message comes
/// from an event sent over HTTP.
fn import_book(db: &TempDatabase) {
    let mut rng = Lcg::new(11);
    let orders: Vec<Value> = (0..ORDERS)
        .map(|n| {
            let lines: Vec<Value> = (0..1 + rng.below(2))
                .map(|l| {
                    json!({
                        "id": format!("O-{n:03}-{l}"),
                        "sku": sku(rng.below(SKUS)),
                        "qty": rng.range(1, 3),
                    })
                })
                .collect();
            json!({
                "id": format!("O-{n:03}"),
                "order_date": format!("2026-11-01T10:{:02}:00Z", n % 60),
                "lines": lines,
            })
        })
        .collect();
    let book = json!({
        "as_of": "2026-11-22T12:00:00Z",
        "warehouses": [{"id": "MAIN", "kind": "normal"}],
        "inventory": (0..SKUS)
            .map(|i| json!({"sku": sku(i), "warehouse": "MAIN", "on_hand": 0}))
            .collect::<Vec<_>>(),
        "orders": orders,
    });
    let path = db.scratch("book.json");
    std::fs::write(&path, book.to_string()).unwrap();
    let run = db.run(&["import", path.to_str().unwrap()], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// The shop's events: stock counts that go up and down, so that orders
/// become backordered, change and clear again. Requests of one to four
/// events as JSON Lines; returns each request's body and its event ids.
fn event_requests(rng: &mut Lcg, tag: &str, requests: usize) -> Vec<(String, Vec<String>)> {
    (0..requests)
        .map(|r| {
            let events: Vec<Value> = (0..1 + rng.below(4))
                .map(|e| {
                    json!({
                        "id": format!("{tag}-{r}-{e}"),
                        "type": "inventory_set",
                        "sku": sku(rng.below(SKUS)),
                        "warehouse": "MAIN",
                        "on_hand": rng.range(0, 14),
                    })
                })
                .collect();
            let ids = events
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned())
                .collect();
            (crate::daemon_support::jsonl(&events), ids)
        })
        .collect()
}

/// `POST /v1/events` as a shop sends it; a 503 or no answer (a daemon
/// starting, the database restarting) is sent again as it was, for up to
/// a minute. Returns the accepted status.
fn post_events(port: u16, body: &str) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let url = format!("http://127.0.0.1:{port}/v1/events");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = agent
            .post(&url)
            .header("content-type", "application/x-ndjson")
            .send(body);
        let retry = match answer {
            Ok(mut response) => {
                let status = response.status().as_u16();
                if (200..300).contains(&status) {
                    return status;
                }
                let text = response.body_mut().read_to_string().unwrap_or_default();
                assert_eq!(status, 503, "POST /v1/events refused: {text}");
                format!("503 {text}")
            }
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "POST /v1/events not accepted within a minute: {retry}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every message of the log, in commit order, as stored.
fn stored_messages(db: &TempDatabase) -> Vec<Message> {
    let rows: Vec<(String,)> = db.fetch_all("SELECT body FROM messages ORDER BY position");
    rows.iter()
        .map(|(body,)| serde_json::from_str(body).unwrap())
        .collect()
}

/// The log itself is sound: each key's `seq` runs 1, 2, 3, … in commit
/// order, and every cause is an event sent over HTTP.
fn assert_log_from_events(messages: &[Message], sent: &[String]) {
    let sent: std::collections::HashSet<&str> = sent.iter().map(String::as_str).collect();
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for m in messages {
        let seq = last.entry(m.key.as_str()).or_insert(0);
        assert_eq!(m.seq, *seq + 1, "{} of {}: seq out of line", m.id, m.key);
        *seq = m.seq;
        assert!(
            !m.causes.is_empty() && m.causes.iter().all(|c| sent.contains(c.as_str())),
            "{} has causes {:?}, not events sent",
            m.id,
            m.causes
        );
    }
}

/// How many times each id was answered 2xx.
fn successes(receiver: &Receiver) -> HashMap<String, usize> {
    let mut count = HashMap::new();
    for id in receiver.delivered() {
        *count.entry(id).or_insert(0) += 1;
    }
    count
}

/// Fails about a third of the attempts: 500, no answer within the
/// endpoint's 1 s timeout, a dropped connection.
fn flaky(n: usize) -> Answer {
    match n % 9 {
        1 => Answer::Error500,
        4 => Answer::Drop,
        7 if n % 27 == 7 => Answer::Hang,
        7 => Answer::Error500,
        _ => Answer::Ok,
    }
}

fn serve(db: &TempDatabase, config: &str, port: u16) -> Daemon {
    let listen = format!("127.0.0.1:{port}");
    Daemon::start_with_args(db, &[], &["--config", config, "--listen", &listen])
}

/// Sends `requests`, a few milliseconds apart, to the daemons' ports in turn.
fn send_all(ports: &[u16], requests: &[(String, Vec<String>)], sent: &mut Vec<String>) {
    for (n, (body, ids)) in requests.iter().enumerate() {
        post_events(ports[n % ports.len()], body);
        sent.extend(ids.iter().cloned());
        std::thread::sleep(Duration::from_millis(15));
    }
}

on_both_backends!(
    events_over_http_reach_a_flaky_receiver_signed_in_order_per_key_and_once,
    serve_killed_during_delivery_of_events_and_restarted_loses_nothing,
);

fn events_over_http_reach_a_flaky_receiver_signed_in_order_per_key_and_once(backend: Backend) {
    let db = TempDatabase::of(backend);
    import_book(&db);
    let receiver = Receiver::start(flaky);
    let config = with_retry_base(config_file(&db, &[(&receiver.url(), None)], None, 3600), 10);
    let port = free_port();
    let daemon = serve(&db, &config, port);
    let mut rng = Lcg::new(5);
    let mut sent = Vec::new();
    send_all(&[port], &event_requests(&mut rng, "shop", 60), &mut sent);
    wait_idle(&db, Duration::from_secs(60));
    let messages = stored_messages(&db);
    assert!(
        messages.len() >= 40,
        "the events changed few orders: {} messages",
        messages.len()
    );
    assert_log_from_events(&messages, &sent);
    let ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
    receiver.wait_for(&ids, Duration::from_secs(90));
    // A little longer: nothing more may come.
    std::thread::sleep(Duration::from_millis(700));
    let hits = receiver.hits();
    assert!(
        hits.iter().any(|h| h.answer != Answer::Ok),
        "the receiver failed some attempts"
    );
    assert_in_order_per_key(&hits, &messages);
    let counts = successes(&receiver);
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered again after a 2xx: {twice:?}");
    assert_eq!(counts.len(), messages.len(), "only the log's messages");
    assert_metrics(port, &receiver, &messages);
    drop(daemon);
}

/// `/metrics` counts what happened: the messages created by type, the
/// deliveries and the failed attempts of the endpoint, nothing waiting.
fn assert_metrics(port: u16, receiver: &Receiver, messages: &[Message]) {
    let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
    for m in messages {
        let kind = serde_json::to_value(m.kind).unwrap();
        *by_type
            .entry(kind.as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let text = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let destination = format!("webhook:{}", receiver.url());
    let failed = receiver
        .hits()
        .iter()
        .filter(|h| h.answer != Answer::Ok)
        .count();
    let mut want: Vec<String> = by_type
        .iter()
        .map(|(kind, n)| format!("backorderd_messages_created_total{{type=\"{kind}\"}} {n}"))
        .collect();
    want.push(format!(
        "backorderd_deliveries_total{{destination=\"{destination}\",outcome=\"delivered\"}} {}",
        messages.len()
    ));
    want.push(format!(
        "backorderd_delivery_backlog{{destination=\"{destination}\"}} 0"
    ));
    want.push(format!(
        "backorderd_oldest_undelivered_age_seconds{{destination=\"{destination}\"}} 0"
    ));
    want.push(format!(
        "backorderd_dead_messages{{destination=\"{destination}\"}} 0"
    ));
    for line in want {
        assert!(text.contains(&line), "{line} missing:\n{text}");
    }
    // Every failed attempt the receiver saw was counted as a retry (a
    // dropped or hung one may also end on the daemon's side first).
    let retries: usize = text
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "backorderd_deliveries_total{{destination=\"{destination}\",outcome=\"retry\"}}"
            ))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0);
    assert!(
        retries >= failed,
        "{retries} retries counted, {failed} seen"
    );
}

fn serve_killed_during_delivery_of_events_and_restarted_loses_nothing(backend: Backend) {
    let db = TempDatabase::of(backend);
    import_book(&db);
    // Slow answers, so that the kill lands with attempts in flight.
    let receiver = Receiver::start(|n| match n % 10 {
        2 | 7 => Answer::Error500,
        4 => Answer::Drop,
        _ => Answer::SlowOk,
    });
    let config = with_retry_base(config_file(&db, &[(&receiver.url(), None)], None, 3600), 10);
    let port = free_port();
    let daemon = serve(&db, &config, port);
    let mut rng = Lcg::new(9);
    let mut sent = Vec::new();
    send_all(&[port], &event_requests(&mut rng, "before", 50), &mut sent);
    wait_until("some deliveries", Duration::from_secs(30), || {
        receiver.delivered().len() >= 10
    });
    daemon.kill();
    let committed = stored_messages(&db).len();
    let delivered = receiver.delivered().len();
    assert!(
        delivered < committed,
        "the kill came during delivery ({delivered} of {committed} delivered)"
    );
    let daemon = serve(&db, &config, port);
    send_all(&[port], &event_requests(&mut rng, "after", 30), &mut sent);
    wait_idle(&db, Duration::from_secs(60));
    let messages = stored_messages(&db);
    assert!(
        messages.len() > committed,
        "the restarted daemon wrote more"
    );
    assert_log_from_events(&messages, &sent);
    let ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
    receiver.wait_for(&ids, Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(500));
    assert_in_order_per_key(&receiver.hits(), &messages);
    // Only an attempt in flight at the kill may be delivered twice (its
    // success was not recorded): at most `notify.concurrency` (16).
    let twice = successes(&receiver).values().filter(|n| **n > 1).count();
    assert!(twice <= 16, "{twice} messages delivered twice");
    drop(daemon);
}

#[test]
fn three_serves_on_postgres_and_a_database_restart_lose_nothing_and_send_each_message_once_at_a_time()
 {
    let own = crate::postgres::OwnServer::start();
    let db = TempDatabase::on_own_postgres(&own, "restarted");
    import_book(&db);
    // No hanging answers here: a hang outlives the sender's timeout on the
    // receiver's side and would look like two attempts at once.
    let receiver = Receiver::start(|n| match n % 7 {
        2 => Answer::Error500,
        5 => Answer::Drop,
        _ => Answer::Ok,
    });
    let config = with_retry_base(config_file(&db, &[(&receiver.url(), None)], None, 3600), 10);
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let daemons: Vec<Daemon> = ports.iter().map(|p| serve(&db, &config, *p)).collect();
    let mut rng = Lcg::new(3);
    let mut sent = Vec::new();
    send_all(&ports, &event_requests(&mut rng, "before", 45), &mut sent);
    wait_until("some deliveries", Duration::from_secs(30), || {
        receiver.delivered().len() >= 20
    });

    // The database goes away under the three daemons and comes back.
    own.stop();
    std::thread::sleep(Duration::from_secs(2));
    own.start_again();
    send_all(&ports, &event_requests(&mut rng, "after", 45), &mut sent);
    wait_idle(&db, Duration::from_secs(90));
    let messages = stored_messages(&db);
    assert_log_from_events(&messages, &sent);
    assert!(
        messages
            .iter()
            .any(|m| m.causes.iter().any(|c| c.starts_with("after"))),
        "the events after the restart wrote messages"
    );
    let ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
    receiver.wait_for(&ids, Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(500));
    let hits = receiver.hits();
    assert_in_order_per_key(&hits, &messages);
    // Never two attempts of one message at once, whichever process sent them.
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
    // The three daemons lived through the restart.
    let status = crate::daemon_support::status(&db);
    assert_eq!(
        status["workers"].as_array().map(Vec::len),
        Some(3),
        "{status}"
    );
    drop(daemons);
}
