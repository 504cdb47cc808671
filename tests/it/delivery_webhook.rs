//! The webhook sender against a real HTTP receiver on 127.0.0.1 that
//! verifies every signature the Standard Webhooks way and fails a share of
//! the attempts: a 500, no answer within the timeout, a dropped connection,
//! then 410 Gone for the endpoint that asks to be disabled.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backorderd::delivery::webhook::{Attempt, Endpoint, Sender, SigningKey, verify};
use hyper::body::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How the receiver answers one request.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Ok,
    Error500,
    Hang,
    Drop,
    Gone,
}

/// What the receiver saw: per message id, each attempt's answer and
/// whether its signature verified.
#[derive(Default)]
struct Seen {
    attempts: Vec<(String, bool, Answer)>,
}

use crate::delivery_support::read_request;

/// Serves on 127.0.0.1:0; the n-th request (from 0) gets `script(n)`.
async fn receiver(script: fn(usize) -> Answer, seen: Arc<Mutex<Seen>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let key = SigningKey::parse(SECRET).unwrap();
    tokio::spawn(async move {
        let mut count = 0;
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let key = key.clone();
            let seen = seen.clone();
            let answer = script(count);
            count += 1;
            tokio::spawn(async move {
                let Some((headers, body)) = read_request(&mut stream).await else {
                    return;
                };
                let header = |name: &str| headers.get(name).cloned().unwrap_or_default();
                let now = chrono::Utc::now().timestamp();
                let verified = verify(
                    &key,
                    &header("webhook-id"),
                    &header("webhook-timestamp"),
                    &header("webhook-signature"),
                    &body,
                    now,
                    300,
                )
                .is_ok();
                seen.lock()
                    .unwrap()
                    .attempts
                    .push((header("webhook-id"), verified, answer));
                let status = match answer {
                    Answer::Ok => "200 OK",
                    Answer::Error500 => "500 Internal Server Error",
                    Answer::Gone => "410 Gone",
                    Answer::Hang => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    Answer::Drop => return,
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: 4\r\nconnection: close\r\n\r\nbusy"
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    format!("http://{address}/hooks")
}

fn endpoint(url: &str) -> Endpoint {
    Endpoint {
        url: url.parse().unwrap(),
        key: SigningKey::parse(SECRET).unwrap(),
        timeout: Duration::from_millis(700),
    }
}

fn body(id: &str, seq: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"id":"{id}","type":"order.backordered","key":"order:SO-{seq}","seq":1}}"#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_arrives_signed_through_500s_timeouts_and_dropped_connections() {
    // Of every four attempts: a 500, a hang past the timeout, a dropped
    // connection, then a 2xx; so each message needs several attempts.
    fn script(n: usize) -> Answer {
        [Answer::Error500, Answer::Hang, Answer::Drop, Answer::Ok][n % 4]
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let url = receiver(script, seen.clone()).await;
    let sender = Sender::new();
    let target = endpoint(&url);
    let mut errors = Vec::new();
    let ids: Vec<String> = (1..=12).map(|n| format!("msg_test{n:04}")).collect();
    for (n, id) in ids.iter().enumerate() {
        let mut tries = 0;
        loop {
            tries += 1;
            assert!(
                tries <= 8,
                "{id} not delivered after 8 attempts: {errors:?}"
            );
            let now = chrono::Utc::now().timestamp();
            match sender.attempt(&target, id, now, body(id, n as u64)).await {
                Attempt::Delivered { status } => {
                    assert_eq!(status, 200);
                    break;
                }
                Attempt::Retry { error } => errors.push(error),
                Attempt::Gone => panic!("no 410 in this script"),
            }
        }
    }
    let seen = seen.lock().unwrap();
    // Every attempt the receiver read carried a valid signature of its body.
    assert!(
        seen.attempts.iter().all(|(_, verified, _)| *verified),
        "{:?}",
        seen.attempts
    );
    // Each id got exactly one 2xx, and nothing after it.
    for id in &ids {
        let of_id: Vec<_> = seen.attempts.iter().filter(|(i, ..)| i == id).collect();
        let oks = of_id
            .iter()
            .filter(|(.., a)| matches!(a, Answer::Ok))
            .count();
        assert_eq!(oks, 1, "{id}: {of_id:?}");
        assert!(
            matches!(of_id.last().unwrap().2, Answer::Ok),
            "{id} was sent again after its 2xx"
        );
    }
    // The failures are told apart in the error text, and none holds the secret.
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("HTTP 500") && e.contains("busy")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("no answer within 0.7 s")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| !e.starts_with("HTTP") && !e.starts_with("no answer")),
        "a dropped connection: {errors:?}"
    );
    let key_text = SECRET.trim_start_matches("whsec_");
    assert!(errors.iter().all(|e| !e.contains(key_text)), "{errors:?}");
    assert_eq!(
        errors.len(),
        3 * ids.len(),
        "three failures per message: {errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_and_a_closed_port_is_a_retry() {
    fn script(_: usize) -> Answer {
        Answer::Gone
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let url = receiver(script, seen.clone()).await;
    let sender = Sender::new();
    let now = chrono::Utc::now().timestamp();
    assert_eq!(
        sender
            .attempt(&endpoint(&url), "msg_gone", now, body("msg_gone", 1))
            .await,
        Attempt::Gone
    );
    assert_eq!(seen.lock().unwrap().attempts.len(), 1);

    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = endpoint(&format!("http://127.0.0.1:{port}/hooks"));
    match sender
        .attempt(&closed, "msg_closed", now, body("msg_closed", 2))
        .await
    {
        Attempt::Retry { error } => assert!(error.to_lowercase().contains("connect"), "{error}"),
        other => panic!("{other:?}"),
    }
}
