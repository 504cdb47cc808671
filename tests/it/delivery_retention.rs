//! Retention of the message log with destinations (docs/contract-notes.md,
//! "Retention and delivery"): a message past `notify.retention_secs` is
//! kept while a live destination has yet to take it, and `serve` says so
//! in its log; it goes once delivered, or once no `serve` has that
//! destination configured for 12 heartbeats.

use std::time::Duration;

use backorderd::delivery::message::MessageType;

use crate::daemon_support::Daemon;
use crate::delivery_support::*;
use crate::support::{Backend, TempDatabase, on_both_backends};

fn serve(db: &TempDatabase, config: &str) -> Daemon {
    Daemon::start_with_args(
        db,
        &[("BACKORDERD__NOTIFY__RETENTION_SECS", "60")],
        &["--config", config, "--listen", "127.0.0.1:0"],
    )
}

fn positions(db: &TempDatabase) -> Vec<i64> {
    let rows: Vec<(i64,)> =
        db.fetch_all("SELECT CAST(position AS BIGINT) FROM messages ORDER BY position");
    rows.into_iter().map(|r| r.0).collect()
}

/// Messages created two hours ago: far past a 60 s retention, well within
/// the 24 h retry window.
fn old_messages(db: &TempDatabase, prefix: &str, count: usize) -> Vec<i64> {
    let drafts = (0..count)
        .map(|i| order_draft(&format!("{prefix}{i}"), MessageType::OrderBackordered, None))
        .collect();
    let at = chrono::Utc::now() - chrono::Duration::hours(2);
    append_at(db, drafts, at);
    let all = positions(db);
    all[all.len() - count..].to_vec()
}

on_both_backends!(messages_past_retention_are_kept_until_every_live_destination_has_them,);

fn messages_past_retention_are_kept_until_every_live_destination_has_them(backend: Backend) {
    let db = TempDatabase::of(backend);
    assert_eq!(db.run(&["migrate"], None).code, 0);
    // Committed before any destination existed: nobody needs them.
    let unneeded = old_messages(&db, "early-", 3);
    let good = Receiver::start(|_| Answer::Ok);
    let down_port = free_port();
    let down = format!("http://127.0.0.1:{down_port}/hook");
    // Retries every 7.2 s at most: the endpoint that comes back gets its
    // messages soon.
    let both = with_retry_base(
        config_file(&db, &[(&good.url(), None), (&down, None)], None, 86_400),
        10,
    );
    let daemon = serve(&db, &both);
    let held = old_messages(&db, "held-", 4);
    let ids: Vec<String> = {
        let rows: Vec<(String,)> = db.fetch_all(&format!(
            "SELECT id FROM messages WHERE position >= {} ORDER BY position",
            held[0]
        ));
        rows.into_iter().map(|r| r.0).collect()
    };
    assert_eq!(ids.len(), 4);
    good.wait_for(&ids, Duration::from_secs(10));
    wait_until("the unneeded ones pruned", Duration::from_secs(10), || {
        !positions(&db).contains(&unneeded[0])
    });
    // Three heartbeats more: the endpoint that is down still needs them.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(positions(&db), held, "kept for the endpoint that is down");
    let destination = format!("webhook:{down}");
    let status = cli(&db, &both, &["status"]).json();
    let entry = status["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["destination"] == destination.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["backlog"], 4, "{status}");
    assert!(
        entry["oldest_undelivered_age_secs"].as_f64().unwrap() > 7000.0,
        "{status}"
    );
    assert!(
        daemon
            .stderr()
            .contains("older than notify.retention_secs are kept"),
        "the daemon says so:\n{}",
        daemon.stderr()
    );

    // The endpoint comes back: once it has them, they go.
    let back = Receiver::start_on(down_port, |_| Answer::Ok);
    back.wait_for(&ids, Duration::from_secs(30));
    wait_until("the delivered ones pruned", Duration::from_secs(10), || {
        positions(&db).is_empty()
    });
    drop(back);
    drop(daemon);

    // Down again and removed from the configuration: its messages are
    // held only while a serve has it configured, then 12 heartbeats more.
    let good_only = config_file(&db, &[(&good.url(), None)], None, 86_400);
    let daemon = serve(&db, &both);
    let held = old_messages(&db, "again-", 2);
    std::thread::sleep(Duration::from_secs(2));
    daemon.kill();
    assert_eq!(positions(&db), held, "held while configured");
    let daemon = serve(&db, &good_only);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        positions(&db),
        held,
        "still held: seen 12 heartbeats ago at most"
    );
    wait_until(
        "pruned once no serve has the destination",
        Duration::from_secs(20),
        || positions(&db).is_empty(),
    );
    drop(daemon);
}
