//! The HTTP API at its edges, against the real `serve` over real TCP: event
//! bodies in any JSON layout (and `event FILE` alike), hyper's own answers
//! made JSON, slow or silent senders cut off, the connection cap, bounded
//! wait timeouts, and a wait broken by the database.

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::daemon_support::Daemon;
use crate::support::{Backend, TempDatabase, on_both_backends};

fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

/// TEA: 3 on hand, SO-1 and SO-2 want 2 each (SO-2 is short by 1).
fn book() -> Value {
    json!({
        "warehouses": [{"id": "MAIN", "kind": "normal"}],
        "inventory": [{"sku": "TEA", "warehouse": "MAIN", "on_hand": 3}],
        "orders": [
            {"id": "SO-1", "order_date": "2026-11-01T10:00:00Z",
             "lines": [{"id": "SO-1-1", "sku": "TEA", "qty": 2}]},
            {"id": "SO-2", "order_date": "2026-11-02T10:00:00Z",
             "lines": [{"id": "SO-2-1", "sku": "TEA", "qty": 2}]}
        ]
    })
}

fn serve(db: &TempDatabase, env: &[(&str, &str)]) -> (Daemon, u16) {
    let imported = db.run(&["import", "-"], Some(book().to_string().as_bytes()));
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    (
        Daemon::start_with_args(db, env, &["--listen", &listen]),
        port,
    )
}

/// An answer read off a raw connection.
struct Raw {
    status: u16,
    head: String,
    body: String,
}

impl Raw {
    /// Asserts the status and a JSON error body `{"error", "status"}`.
    fn json_error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{}\r\n\r\n{}", self.head, self.body);
        assert!(
            self.head
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{}",
            self.head
        );
        let body: Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body));
        assert_eq!(body["status"], status, "{body}");
        body["error"].as_str().expect("an error message").to_owned()
    }
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// Reads one answer: the head, then `content-length` bytes of body.
fn read_answer(stream: &mut TcpStream) -> Raw {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).expect("an answer");
        assert!(
            n > 0,
            "closed without an answer: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(bytes[..head_end].to_vec()).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = bytes[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).expect("the body");
        assert!(n > 0, "closed within the body");
        body.extend_from_slice(&chunk[..n]);
    }
    Raw {
        status: head[9..12].parse().unwrap(),
        head,
        body: String::from_utf8(body).unwrap(),
    }
}

/// Sends `request` as is on a new connection and reads the answer.
fn raw(port: u16, request: &[u8]) -> Raw {
    let mut stream = connect(port);
    stream.write_all(request).unwrap();
    read_answer(&mut stream)
}

/// A request with `Connection: close`.
fn request(method: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn post(port: u16, path: &str, body: &str) -> (u16, Value) {
    let answer = raw(port, &request("POST", path, body));
    let value = serde_json::from_str(&answer.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", answer.body));
    (answer.status, value)
}

/// How long until the server closes `stream` (reads return 0 or fail);
/// panics if it stays open for `at_most`.
fn closed_within(stream: &mut TcpStream, at_most: Duration) -> Duration {
    let started = Instant::now();
    stream.set_read_timeout(Some(at_most)).unwrap();
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return started.elapsed(),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the connection is still open after {at_most:?}")
            }
            Err(_) => return started.elapsed(),
        }
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap()
}

#[test]
fn events_in_any_json_layout_over_http_and_from_a_file() {
    let db = TempDatabase::new();
    let (daemon, port) = serve(&db, &[]);
    let receipt = json!({"id": "e1", "type": "po_received", "sku": "TEA",
                         "warehouse": "MAIN", "qty": 1});
    let count = json!({"id": "e2", "type": "inventory_adjusted", "sku": "TEA",
                       "warehouse": "MAIN", "delta": 1});
    let again = json!({"id": "e3", "type": "recalculate", "skus": ["TEA"]});

    // One event pretty-printed over several lines, waited for.
    let (status, answer) = post(port, "/v1/events?wait=true", &pretty(&receipt));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["results"],
        json!([{"id": "e1", "outcome": "accepted"}])
    );
    // A pretty array; pretty objects one after the other.
    let (status, answer) = post(port, "/v1/events", &pretty(&json!([count, receipt])));
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer["results"],
        json!([{"id": "e2", "outcome": "accepted"}, {"id": "e1", "outcome": "duplicate"}])
    );
    let (status, answer) = post(
        port,
        "/v1/events",
        &format!("{}\n\n{}\n", pretty(&again), pretty(&receipt)),
    );
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer["results"],
        json!([{"id": "e3", "outcome": "accepted"}, {"id": "e1", "outcome": "duplicate"}])
    );

    // A refused pretty batch names the event, its id and its first line;
    // broken JSON names the event and where; neither applies anything.
    let before = db.run(&["export"], None).ok_json()["inventory"].clone();
    let negative = json!({"id": "e4", "type": "po_received", "sku": "TEA",
                          "warehouse": "MAIN", "qty": -1});
    let refused = format!(
        "{}\n{}\n",
        pretty(&json!({"id": "e5", "type": "recalculate", "all": true})),
        pretty(&negative)
    );
    let line = pretty(&json!({"id": "e5", "type": "recalculate", "all": true}))
        .lines()
        .count()
        + 1;
    let (status, answer) = post(port, "/v1/events", &refused);
    assert_eq!(status, 422, "{answer}");
    let message = answer["error"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "event 2 (id \"e4\") at line {line}: qty must not be negative"
        )),
        "{message}"
    );
    let broken = "{\n  \"id\": \"e6\",\n  \"type\" \"recalculate\"\n}\n";
    let (status, answer) = post(port, "/v1/events", broken);
    assert_eq!(status, 400, "{answer}");
    let message = answer["error"].as_str().unwrap();
    assert!(
        message.contains("event 1: not valid JSON") && message.contains("line 3"),
        "{message}"
    );
    assert_eq!(db.run(&["export"], None).ok_json()["inventory"], before);
    daemon.stop_with("TERM");

    // `event FILE` reads the same layouts.
    let file = db.scratch("pretty.json");
    std::fs::write(
        &file,
        format!(
            "{}\n{}",
            pretty(&again),
            pretty(&json!([receipt, {"id": "e7", "type": "recalculate", "all": true}]))
        ),
    )
    .unwrap();
    let run = db.run(&["event", file.to_str().unwrap()], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["accepted"], json!(["e7"]), "{}", run.stdout);
    std::fs::write(&file, &refused).unwrap();
    let run = db.run(&["event", file.to_str().unwrap()], None);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("event 2 (id \"e4\") at line {line}")),
        "{}",
        run.stderr
    );
    let run = db.run(&["event", "-"], Some(broken.as_bytes()));
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("not valid JSON") && run.stderr.contains("line 3"),
        "{}",
        run.stderr
    );
    assert_eq!(db.run(&["export"], None).ok_json()["inventory"], before);
}

#[test]
fn answers_hyper_gives_by_itself_are_json() {
    let db = TempDatabase::new();
    let (daemon, port) = serve(&db, &[]);
    // A long URI: 414 from the API's own check.
    let long = format!("/v1/orders/{}", "A".repeat(9000));
    let message = raw(port, &request("GET", &long, "")).json_error(414);
    assert!(message.contains("8192"), "{message}");
    // Past hyper's limits: it answers by itself, and the answer is JSON.
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(70_000)
    );
    let message = raw(port, huge.as_bytes()).json_error(431);
    assert!(message.contains("header fields"), "{message}");
    let mut many = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for n in 0..150 {
        many.push_str(&format!("X-H{n}: v\r\n"));
    }
    many.push_str("\r\n");
    raw(port, many.as_bytes()).json_error(431);
    let very_long = format!(
        "GET /v1/orders/{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "A".repeat(70_000)
    );
    let answer = raw(port, very_long.as_bytes());
    let status = answer.status;
    assert!(status == 414 || status == 431, "{}", answer.head);
    answer.json_error(status);
    for malformed in [
        &b"NOT HTTP AT ALL\r\n\r\n"[..],
        b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n",
    ] {
        raw(port, malformed).json_error(400);
    }
    // The API's own answers are untouched, and the daemon still serves.
    let health = raw(port, &request("GET", "/healthz", ""));
    assert_eq!(health.status, 200, "{}", health.body);
    raw(port, &request("GET", "/v1/nothing", "")).json_error(404);
    daemon.stop_with("TERM");
}

#[test]
fn slow_senders_are_cut_off_and_do_not_hold_up_others() {
    let db = TempDatabase::new();
    let (daemon, port) = serve(
        &db,
        &[
            ("BACKORDERD__HTTP__HEADER_TIMEOUT_SECS", "1"),
            ("BACKORDERD__HTTP__BODY_TIMEOUT_SECS", "1"),
        ],
    );
    let limit = Duration::from_secs(6);
    // Half a head, then silence: closed once the header timeout passes.
    let mut half = connect(port);
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: loc")
        .unwrap();
    let waited = closed_within(&mut half, limit);
    assert!(
        waited >= Duration::from_millis(800),
        "closed after {waited:?}"
    );
    // A head trickled a byte at a time is cut off as well.
    let mut trickle = connect(port);
    let started = Instant::now();
    let cut = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
        .iter()
        .any(|byte| {
            std::thread::sleep(Duration::from_millis(100));
            trickle.write_all(&[*byte]).is_err()
        });
    let elapsed = started.elapsed();
    assert!(cut, "a head trickled over {elapsed:?} was taken");
    assert!(elapsed < Duration::from_secs(4), "cut after {elapsed:?}");
    // A connection that sends nothing, and one kept alive after an answer.
    closed_within(&mut connect(port), limit);
    let mut kept = connect(port);
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_answer(&mut kept).status, 200);
    closed_within(&mut kept, limit);

    // A body announced and never sent in full: 408 in the API's form.
    let mut short = connect(port);
    let started = Instant::now();
    short
        .write_all(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"id\": \"e",
        )
        .unwrap();
    let message = read_answer(&mut short).json_error(408);
    assert!(message.contains("http.body_timeout_secs"), "{message}");
    assert!(started.elapsed() < limit, "{:?}", started.elapsed());
    closed_within(&mut short, limit);

    // Two hundred slow connections do not hold up a normal request.
    let slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut stream = connect(port);
            stream.write_all(b"POST /v1/events HTTP/1.1\r\nHo").unwrap();
            stream
        })
        .collect();
    let started = Instant::now();
    let event =
        r#"{"id": "e1", "type": "po_received", "sku": "TEA", "warehouse": "MAIN", "qty": 1}"#;
    let (status, answer) = post(port, "/v1/events?wait=true", event);
    assert_eq!(status, 200, "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    for mut stream in slow {
        closed_within(&mut stream, limit);
    }
    daemon.stop_with("TERM");
}

#[test]
fn connections_over_the_cap_are_answered_503() {
    let db = TempDatabase::new();
    let (daemon, port) = serve(&db, &[("BACKORDERD__HTTP__MAX_CONNECTIONS", "4")]);
    let idle: Vec<TcpStream> = (0..4).map(|_| connect(port)).collect();
    // The daemon takes them in before the next one comes.
    std::thread::sleep(Duration::from_millis(300));
    let message = raw(port, &request("GET", "/healthz", "")).json_error(503);
    assert!(message.contains("http.max_connections"), "{message}");
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = raw(port, &request("GET", "/healthz", ""));
        if answer.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {}", answer.body);
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon.stop_with("TERM");
}

#[test]
fn wait_timeouts_are_bounded() {
    let db = TempDatabase::new();
    let (daemon, port) = serve(&db, &[]);
    let event =
        r#"{"id": "e1", "type": "po_received", "sku": "TEA", "warehouse": "MAIN", "qty": 1}"#;
    // Over the documented maximum: a usage mistake, nothing applied.
    for timeout in ["18446744073709551615", "31536001"] {
        let run = db.run(
            &["event", "-", "--wait", "--timeout", timeout],
            Some(event.as_bytes()),
        );
        assert_eq!(run.code, 1, "--timeout {timeout}: {}", run.stderr);
        assert!(run.stderr.contains("--timeout"), "{}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    let run = db.run(
        &[
            "recalc",
            "--all",
            "--wait",
            "--timeout",
            "18446744073709551615",
        ],
        None,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        db.run(&["export"], None).ok_json()["inventory"][0]["on_hand"],
        3
    );
    // At the maximum: waits as usual (the daemon runs).
    let run = db.run(
        &["event", "-", "--wait", "--timeout", "31536000"],
        Some(event.as_bytes()),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Over HTTP the timeout is capped by `http.wait_timeout_secs`.
    let again = r#"{"id": "e2", "type": "recalculate", "skus": ["TEA"]}"#;
    let (status, answer) = post(
        port,
        "/v1/events?wait=true&timeout=18446744073709551615",
        again,
    );
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post(
        port,
        "/v1/events?wait=true&timeout=18446744073709551616",
        again,
    );
    assert_eq!(status, 400, "{answer}");
    daemon.stop_with("TERM");
}

/// The database fails while a `?wait=true` waits: 503 with the results
/// (the events are applied), not a bare 500.
fn a_wait_broken_by_the_database_answers_503_with_the_results(backend: Backend) {
    let db = TempDatabase::of(backend);
    let imported = db.run(&["import", "-"], Some(book().to_string().as_bytes()));
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    // A stored value the recalculation cannot read: the marks stay, and
    // the wait goes on until the database breaks under it.
    db.execute("UPDATE orders SET status = 'bogus' WHERE id = 'SO-1'");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = Daemon::start_with_args(&db, &[], &["--listen", &listen]);
    let waiting = std::thread::spawn(move || {
        let event = r#"{"id": "w1", "type": "recalculate", "skus": ["TEA"]}"#;
        post(port, "/v1/events?wait=true&timeout=30", event)
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while db
        .fetch_all::<(String,)>("SELECT id FROM received_events WHERE id = 'w1'")
        .is_empty()
    {
        assert!(Instant::now() < deadline, "w1 was not applied");
        std::thread::sleep(Duration::from_millis(20));
    }
    let broken = Instant::now();
    db.execute("ALTER TABLE dirty_skus RENAME TO dirty_skus_aside");
    let (status, answer) = waiting.join().unwrap();
    assert_eq!(status, 503, "{answer}");
    assert!(broken.elapsed() < Duration::from_secs(10));
    assert_eq!(
        answer["results"],
        json!([{"id": "w1", "outcome": "accepted"}]),
        "{answer}"
    );
    let message = answer["error"].as_str().unwrap();
    assert!(
        message.contains("applied") && message.contains("waiting"),
        "{message}"
    );
    db.execute("ALTER TABLE dirty_skus_aside RENAME TO dirty_skus");
    daemon.stop_with("TERM");
}

on_both_backends!(a_wait_broken_by_the_database_answers_503_with_the_results);
