//! Scale-out: three `serve` processes on one database share the work. A
//! thousand events reach them through the `event` command and the HTTP
//! API of different daemons (some ids repeated); one daemon is killed
//! with SIGKILL in the middle of a full recalculation; the others finish.
//! The same events sent through three channels at once are accepted once.
//! Then every event has taken effect exactly once (the export against a
//! model), every stored result is what `simulate` computes on the export,
//! and `status` lists the live workers only.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::daemon::{Batch, Model, compare_state, export, import, report_ids, str_of};
use crate::daemon_support::{
    Daemon, Lcg, assert_matches_simulate, dirty_skus, generate, send_events, status, wait_idle,
};
use crate::support::{Backend, TempDatabase, on_both_backends};

/// Events sent in all, repeats included.
const EVENTS: usize = 1000;

/// Many small transactions, so that the daemons share a full run and a
/// kill lands between commits of one.
const SETTINGS: &[(&str, &str)] = &[
    ("BACKORDERD__SERVICE__SKUS_PER_BATCH", "4"),
    ("BACKORDERD__SERVICE__BULK_FROM_SKUS", "1000000"),
];

fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

/// A daemon and its HTTP port.
struct Serve {
    daemon: Daemon,
    port: u16,
}

impl Serve {
    fn start(db: &TempDatabase) -> Serve {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let daemon = Daemon::start_with_args(db, SETTINGS, &["--listen", &listen]);
        Serve { daemon, port }
    }
}

/// How a batch reaches the daemons.
#[derive(Clone, Copy, Debug)]
enum Channel {
    /// `backorderd event -` (JSON Lines on standard input).
    Command,
    /// `POST /v1/events` of one daemon, as a JSON array.
    HttpArray(u16),
    /// `POST /v1/events` of one daemon, as JSON Lines.
    HttpLines(u16),
}

fn post_events(port: u16, body: String) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut response = agent
        .post(format!("http://127.0.0.1:{port}/v1/events"))
        .send(body)
        .unwrap_or_else(|e| panic!("the daemon on port {port} answers: {e}"));
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

/// Sends `events` in one request; returns each event's id and whether it
/// was accepted (else reported a duplicate).
fn outcomes(db: &TempDatabase, events: &[Value], channel: Channel) -> Vec<(String, bool)> {
    let port = match channel {
        Channel::Command => {
            let report = send_events(db, events, &[]).ok_json();
            let accepted = report_ids(&report, "accepted");
            let duplicates = report_ids(&report, "duplicates");
            assert_eq!(accepted.len() + duplicates.len(), events.len(), "{report}");
            // The report lists ids, not positions: a repeat within the
            // batch is its later occurrences.
            let mut seen = std::collections::HashSet::new();
            return events
                .iter()
                .map(|e| {
                    let id = str_of(&e["id"]);
                    let first = seen.insert(id.clone());
                    let accepted = first && accepted.contains(&id);
                    (id, accepted)
                })
                .collect();
        }
        Channel::HttpArray(port) | Channel::HttpLines(port) => port,
    };
    let body = match channel {
        Channel::HttpArray(_) => Value::Array(events.to_vec()).to_string(),
        _ => crate::daemon_support::jsonl(events),
    };
    let (code, text) = post_events(port, body);
    assert_eq!(code, 202, "{channel:?}: {text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), events.len(), "{channel:?}: {answer}");
    results
        .iter()
        .zip(events)
        .map(|(result, event)| {
            assert_eq!(result["id"], event["id"], "{channel:?}: {answer}");
            let accepted = match result["outcome"].as_str() {
                Some("accepted") => true,
                Some("duplicate") => false,
                _ => panic!("{channel:?}: {answer}"),
            };
            (str_of(&result["id"]), accepted)
        })
        .collect()
}

/// Sends `batch` and checks that the daemons report the model's accepted
/// and duplicate ids.
fn send(db: &TempDatabase, batch: &Batch, channel: Channel) {
    if let Channel::Command = channel {
        return batch.send(db, &[]);
    }
    let (mut accepted, mut duplicates) = (Vec::new(), Vec::new());
    for (id, is_new) in outcomes(db, &batch.events, channel) {
        if is_new {
            accepted.push(id);
        } else {
            duplicates.push(id);
        }
    }
    assert_eq!(accepted, batch.accepted, "{channel:?}: accepted ids");
    assert_eq!(duplicates, batch.duplicates, "{channel:?}: duplicate ids");
}

/// The same new events sent at the same moment through the command and
/// the HTTP API of two daemons: each is accepted exactly once. (Stock
/// adjustments: the model's result does not depend on which request won.)
fn race(db: &TempDatabase, ports: &[u16], model: &mut Model, rng: &mut Lcg, skus: &[String]) {
    let events: Vec<Value> = (0..40)
        .map(|k| {
            json!({"id": format!("race-{k}"), "type": "inventory_adjusted",
                   "sku": rng.pick(skus), "warehouse": rng.pick(&["MAIN", "EAST", "WEST"]),
                   "delta": rng.range(-3, 6)})
        })
        .collect();
    let channels = [
        Channel::Command,
        Channel::HttpArray(ports[0]),
        Channel::HttpLines(ports[ports.len() - 1]),
    ];
    let results: Vec<Vec<(String, bool)>> = std::thread::scope(|scope| {
        let running: Vec<_> = channels
            .iter()
            .map(|&channel| {
                let events = &events;
                scope.spawn(move || outcomes(db, events, channel))
            })
            .collect();
        running.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for (k, event) in events.iter().enumerate() {
        let winners: Vec<Channel> = channels
            .iter()
            .zip(&results)
            .filter(|(_, result)| result[k].1)
            .map(|(channel, _)| *channel)
            .collect();
        assert_eq!(
            winners.len(),
            1,
            "event {} accepted by {winners:?}",
            event["id"]
        );
        assert!(model.apply(event));
    }
}

/// The pids `status` lists as workers, or why it lists none.
fn worker_pids(status: &Value) -> Result<BTreeSet<u64>, String> {
    let workers = status["workers"]
        .as_array()
        .ok_or_else(|| format!("status has no \"workers\" array: {status}"))?;
    let mut pids = BTreeSet::new();
    for worker in workers {
        for key in ["name", "host", "started_at", "last_seen", "doing"] {
            if !worker[key].is_string() {
                return Err(format!("a worker has no string {key:?}: {worker}"));
            }
        }
        let pid = worker["pid"]
            .as_u64()
            .ok_or_else(|| format!("a worker has no integer \"pid\": {worker}"))?;
        pids.insert(pid);
    }
    Ok(pids)
}

/// Polls `status` (at most `timeout`) until it lists exactly `want` as
/// workers, and all of them idle if `idle`; else says what it saw.
fn expect_workers(
    db: &TempDatabase,
    want: &BTreeSet<u64>,
    idle: bool,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let now = status(db);
        let seen = worker_pids(&now);
        if now.get("workers").is_none() {
            // Nothing to wait for.
            return Err(seen.unwrap_err());
        }
        let matches = seen.as_ref().is_ok_and(|pids| pids == want)
            && (!idle
                || now["workers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|w| w["doing"] == "idle"));
        if matches {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "after {timeout:?}, status does not list the workers {want:?}{}: {}",
                if idle { " (all idle)" } else { "" },
                match seen {
                    Ok(_) => now.to_string(),
                    Err(e) => e,
                }
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The daemon to kill: one that `status` says is recalculating, if it
/// says so, else the first.
fn busy_one(db: &TempDatabase, serves: &[Serve]) -> usize {
    let now = status(db);
    now["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["doing"].is_string() && w["doing"] != "idle")
        .find_map(|w| {
            let pid = w["pid"].as_u64()?;
            serves.iter().position(|s| u64::from(s.daemon.pid()) == pid)
        })
        .unwrap_or(0)
}

fn three_daemons_share_the_work_and_survive_a_kill(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &generate(40_000, 4_000, 31));
    let initial = export(&db);
    let mut model = Model::new(&initial, "");
    let mut rng = Lcg::new(4242);

    let mut serves: Vec<Serve> = (0..3).map(|_| Serve::start(&db)).collect();
    let mut worker_problems = Vec::new();
    let pids: BTreeSet<u64> = serves.iter().map(|s| u64::from(s.daemon.pid())).collect();
    if let Err(e) = expect_workers(&db, &pids, false, Duration::from_secs(10)) {
        worker_problems.push(format!("with three daemons running: {e}"));
    }

    let mut sent: Vec<Value> = Vec::new();
    let mut killed = false;
    let mut batch_no = 0;
    while sent.len() < EVENTS {
        let mut batch = Batch::default();
        let size = (rng.range(1, 30) as usize).min(EVENTS - sent.len());
        for k in 0..size {
            let event = if !sent.is_empty() && rng.chance(8) {
                // An event of an earlier batch, sent again.
                rng.pick(&sent).clone()
            } else if !batch.events.is_empty() && rng.chance(4) {
                rng.pick(&batch.events).clone()
            } else {
                model.random_event(&mut rng, format!("s{batch_no}-{k}"))
            };
            batch.push(&mut model, event);
        }
        let kill_now = !killed && sent.len() >= EVENTS / 2;
        if kill_now {
            // Every SKU dirty: a full recalculation in many transactions,
            // shared by the daemons; one of them dies in the middle of it.
            batch.push(
                &mut model,
                json!({"id": "mid-settings", "type": "settings_changed",
                       "settings": {"prioritize_rush": true, "consider_replacement_sku": true,
                                    "warehouse_based": true}}),
            );
        }
        let live: Vec<u16> = serves.iter().map(|s| s.port).collect();
        let channel = match batch_no % 3 {
            0 => Channel::Command,
            1 => Channel::HttpArray(live[(batch_no / 3) % live.len()]),
            _ => Channel::HttpLines(live[(batch_no / 3 + 1) % live.len()]),
        };
        send(&db, &batch, channel);
        sent.extend(batch.events);
        batch_no += 1;

        if kill_now {
            let total = dirty_skus(&status(&db));
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let dirty = dirty_skus(&status(&db));
                assert!(
                    dirty > 0,
                    "the full recalculation finished before the kill ({total} dirty after the settings change): make the book bigger"
                );
                if dirty < total {
                    break;
                }
                assert!(Instant::now() < deadline, "no progress: {dirty} dirty");
                std::thread::sleep(Duration::from_millis(5));
            }
            let victim = busy_one(&db, &serves);
            serves.remove(victim).daemon.kill();
            killed = true;
        }
    }
    assert!(killed);
    let skus: Vec<String> = initial["inventory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| str_of(&row["sku"]))
        .collect();
    let ports: Vec<u16> = serves.iter().map(|s| s.port).collect();
    race(&db, &ports, &mut model, &mut rng, &skus);

    // Overrides stand until their SKU is recalculated: have the last ones
    // overwritten, so that everything must equal simulate.
    let skus: BTreeSet<String> = model
        .pending_overrides
        .values()
        .map(|(sku, _)| sku.clone())
        .collect();
    if !skus.is_empty() {
        let mut last = Batch::default();
        last.push(
            &mut model,
            json!({"id": "overwrite-overrides", "type": "recalculate", "skus": skus}),
        );
        send(&db, &last, Channel::HttpArray(serves[1].port));
    }
    assert!(model.pending_overrides.is_empty());

    let idle = wait_idle(&db, Duration::from_secs(300));
    assert_eq!(idle["queue"]["failed"], 0, "{idle}");

    // (a) Every event took effect exactly once.
    let last = export(&db);
    compare_state(&model, &last);
    // (b) Every stored result is what simulate computes on the export.
    let compared = assert_matches_simulate(&db, &last, &[], &[]);
    assert!(compared >= 40_000, "{compared} lines compared");

    // (c) The dead daemon's worker is gone from status once its heartbeat
    // expired; the two live ones are listed, idle.
    let live: BTreeSet<u64> = serves.iter().map(|s| u64::from(s.daemon.pid())).collect();
    if let Err(e) = expect_workers(&db, &live, true, Duration::from_secs(60)) {
        worker_problems.push(format!("after the kill: {e}"));
    }
    for serve in serves {
        serve.daemon.stop_with("TERM");
    }
    if let Err(e) = expect_workers(&db, &BTreeSet::new(), false, Duration::from_secs(30)) {
        worker_problems.push(format!("after a clean stop of the others: {e}"));
    }
    assert!(
        worker_problems.is_empty(),
        "status does not list the live workers:\n{}",
        worker_problems.join("\n")
    );
}

on_both_backends!(three_daemons_share_the_work_and_survive_a_kill);
