//! What the delivery loop's tests share: a webhook receiver on 127.0.0.1
//! that verifies every signature and answers as its script says (200,
//! 500, no answer, a dropped connection, 410), messages appended to the
//! log through the store's `append_on_sqlite` / `append_on_postgres` (the write-back's own append), and
//! the daemon's configuration file.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backorderd::delivery::message::{
    Customer, Data, Draft, LineData, Message, MessageType, OrderData,
};
use backorderd::delivery::webhook::{SigningKey, verify};
use backorderd::engine::BackorderStatus;
use backorderd::store::messages::PendingMessage;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{Backend, TempDatabase};

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How the receiver answers one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Ok,
    /// 200 after 100 ms.
    SlowOk,
    Error500,
    /// No answer: longer than the endpoint's timeout, then the connection closes.
    Hang,
    /// The connection closes without an answer.
    Drop,
    Gone,
}

/// One request the receiver took.
#[derive(Clone, Debug)]
pub struct Hit {
    pub id: String,
    pub key: String,
    pub seq: u64,
    pub verified: bool,
    pub answer: Answer,
    pub start: Instant,
    pub end: Instant,
}

type Script = dyn Fn(usize) -> Answer + Send + Sync;

/// A webhook receiver; stops when dropped.
pub struct Receiver {
    pub port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Receiver {
    /// On a free port; the n-th request (from 0) gets `script(n)`.
    pub fn start(script: impl Fn(usize) -> Answer + Send + Sync + 'static) -> Receiver {
        Receiver::start_on(0, script)
    }

    pub fn start_on(
        port: u16,
        script: impl Fn(usize) -> Answer + Send + Sync + 'static,
    ) -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(TcpListener::bind(("127.0.0.1", port)))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let seen = hits.clone();
        runtime.spawn(async move {
            let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let key = SigningKey::parse(SECRET).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (key, seen, script, count) =
                    (key.clone(), seen.clone(), script.clone(), count.clone());
                tokio::spawn(async move { serve(stream, key, seen, script, count).await });
            }
        });
        Receiver {
            port,
            hits,
            runtime: Some(runtime),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// The ids answered 200, each once per 2xx.
    pub fn delivered(&self) -> Vec<String> {
        self.hits()
            .into_iter()
            .filter(|h| h.answer == Answer::Ok)
            .map(|h| h.id)
            .collect()
    }

    /// Waits until every id of `ids` was answered 200.
    pub fn wait_for(&self, ids: &[String], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let delivered: std::collections::HashSet<String> =
                self.delivered().into_iter().collect();
            let missing = ids.iter().filter(|id| !delivered.contains(*id)).count();
            if missing == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{missing} of {} messages not delivered within {timeout:?}",
                ids.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn serve(
    mut stream: TcpStream,
    key: SigningKey,
    seen: Arc<Mutex<Vec<Hit>>>,
    script: Arc<Script>,
    count: Arc<std::sync::atomic::AtomicUsize>,
) {
    let start = Instant::now();
    let Some((headers, body)) = read_request(&mut stream).await else {
        return;
    };
    let answer = script(count.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    let header = |name: &str| headers.get(name).cloned().unwrap_or_default();
    let id = header("webhook-id");
    let verified = verify(
        &key,
        &id,
        &header("webhook-timestamp"),
        &header("webhook-signature"),
        &body,
        chrono::Utc::now().timestamp(),
        300,
    )
    .is_ok();
    let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if answer == Answer::SlowOk {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Before the answer leaves: the sender's next request comes after.
    let end = Instant::now();
    let reply: &[u8] = match answer {
        Answer::Ok | Answer::SlowOk => b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        Answer::Error500 => {
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\nconnection: close\r\n\r\noops"
        }
        Answer::Gone => b"HTTP/1.1 410 Gone\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            b""
        }
        Answer::Drop => b"",
    };
    if !reply.is_empty() {
        let _ = stream.write_all(reply).await;
        let _ = stream.flush().await;
    }
    drop(stream);
    seen.lock().unwrap().push(Hit {
        id: message["id"].as_str().unwrap_or_default().to_owned(),
        key: message["key"].as_str().unwrap_or_default().to_owned(),
        seq: message["seq"].as_u64().unwrap_or_default(),
        verified: verified && message["id"].as_str() == Some(id.as_str()),
        answer: if answer == Answer::SlowOk {
            Answer::Ok
        } else {
            answer
        },
        start,
        end,
    });
}

/// A request's head and body, read by hand so a receiver can also hang
/// or drop the connection.
pub async fn read_request(stream: &mut TcpStream) -> Option<(HashMap<String, String>, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers.get("content-length")?.parse().ok()?;
    while buffer.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    Some((headers, buffer[head_end..head_end + length].to_vec()))
}

/// An order message of `kind` for `order_id`, mailed to `customer`.
pub fn order_draft(order_id: &str, kind: MessageType, customer: Option<(&str, &str)>) -> Draft {
    let cleared = kind == MessageType::OrderBackorderCleared;
    let (status, previous) = if cleared {
        (BackorderStatus::None, BackorderStatus::Full)
    } else {
        (BackorderStatus::Full, BackorderStatus::None)
    };
    Draft {
        kind,
        key: format!("order:{order_id}"),
        data: Data::Order(OrderData {
            order_id: order_id.to_owned(),
            status,
            previous_status: previous,
            backorder_qty: if cleared { 0 } else { 3 },
            previous_backorder_qty: if cleared { 3 } else { 0 },
            customer: customer.map(|(email, name)| Customer {
                email: Some(email.to_owned()),
                name: Some(name.to_owned()),
            }),
            closed: false,
            lines: vec![LineData {
                line_id: format!("{order_id}-1"),
                sku: "TEA-01".to_owned(),
                qty: 5,
                backorder_qty: if cleared { 0 } else { 3 },
                previous_backorder_qty: if cleared { 3 } else { 0 },
                eta: "2026-12-24".parse().ok(),
                previous_eta: None,
            }],
        }),
    }
}

/// Appends `drafts` to the log in one transaction, the way the write-back
/// does; returns them as stored.
pub fn append(db: &TempDatabase, drafts: Vec<Draft>) -> Vec<Message> {
    append_at(db, drafts, chrono::Utc::now())
}

/// [`append`] with `created_at` set to `now` (in the past: messages as old
/// as a retention test needs).
pub fn append_at(
    db: &TempDatabase,
    drafts: Vec<Draft>,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<Message> {
    use sqlx::Connection;
    let messages: Vec<PendingMessage> = drafts
        .into_iter()
        .map(|draft| PendingMessage {
            draft,
            causes: vec!["test".to_owned()],
        })
        .collect();
    crate::daemon_support::block_on(async {
        match db.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
                let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
                let stored = backorderd::store::messages::append_on_sqlite(&mut tx, messages, now)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                conn.close().await.unwrap();
                stored
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
                let mut tx = conn.begin().await.unwrap();
                let stored =
                    backorderd::store::messages::append_on_postgres(&mut tx, messages, now)
                        .await
                        .unwrap();
                tx.commit().await.unwrap();
                conn.close().await.unwrap();
                stored
            }
        }
    })
}

/// `count` messages over `keys` order keys, appended in batches of `batch`.
pub fn append_many(
    db: &TempDatabase,
    prefix: &str,
    count: usize,
    keys: usize,
    batch: usize,
) -> Vec<Message> {
    let mut all = Vec::new();
    let drafts: Vec<Draft> = (0..count)
        .map(|i| {
            let kind = if i % 2 == 0 {
                MessageType::OrderBackordered
            } else {
                MessageType::OrderBackorderCleared
            };
            order_draft(&format!("{prefix}{}", i % keys), kind, None)
        })
        .collect();
    for chunk in drafts.chunks(batch.max(1)) {
        all.extend(append(db, chunk.to_vec()));
    }
    all
}

/// The configuration file of a test daemon: `webhooks` (URL, types), an
/// optional `[email]` table's text, and the retry settings.
pub fn config_file(
    db: &TempDatabase,
    webhooks: &[(&str, Option<&[&str]>)],
    email: Option<&str>,
    retry_window_secs: u64,
) -> String {
    let mut text = String::new();
    for (url, types) in webhooks {
        text.push_str(&format!(
            "[[webhooks]]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\ntimeout_secs = 1\n"
        ));
        if let Some(types) = types {
            let list: Vec<String> = types.iter().map(|t| format!("\"{t}\"")).collect();
            text.push_str(&format!("types = [{}]\n", list.join(", ")));
        }
        text.push('\n');
    }
    if let Some(email) = email {
        text.push_str(email);
        text.push('\n');
    }
    text.push_str(&format!(
        "[notify]\nretry_window_secs = {retry_window_secs}\nretry_base_ms = 50\n"
    ));
    let path = db.scratch(&format!("delivery-{}.toml", rand_suffix()));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `config` (a file of [`config_file`]) with `notify.retry_base_ms` set to
/// `ms`: 10 makes the pauses 10 ms, 60 ms, 240 ms, 1.2 s, 3.6 s, then
/// 7.2 s, so that a message unlucky several times in a row (a receiver
/// failing a third of the attempts) still arrives within seconds.
pub fn with_retry_base(config: String, ms: u64) -> String {
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace("retry_base_ms = 50", &format!("retry_base_ms = {ms}"));
    std::fs::write(&config, text).unwrap();
    config
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Checks the contract's per-key order on what a receiver saw: no attempt
/// of a key's message starts before every earlier message of the key was
/// answered 200 (at least once); every message verified.
pub fn assert_in_order_per_key(hits: &[Hit], messages: &[Message]) {
    assert!(
        hits.iter().all(|h| h.verified),
        "a signature did not verify"
    );
    let stored: HashMap<&str, (&str, u64)> = messages
        .iter()
        .map(|m| (m.id.as_str(), (m.key.as_str(), m.seq)))
        .collect();
    for hit in hits {
        if let Some((key, seq)) = stored.get(hit.id.as_str()) {
            assert_eq!(
                (hit.key.as_str(), hit.seq),
                (*key, *seq),
                "the body of {}",
                hit.id
            );
        }
    }
    let mut first_success: HashMap<String, Instant> = HashMap::new();
    for hit in hits.iter().filter(|h| h.answer == Answer::Ok) {
        let at = first_success.entry(hit.id.clone()).or_insert(hit.end);
        if hit.end < *at {
            *at = hit.end;
        }
    }
    let mut by_key: BTreeMap<&str, Vec<&Message>> = BTreeMap::new();
    for m in messages {
        by_key.entry(m.key.as_str()).or_default().push(m);
    }
    for (key, list) in by_key {
        for pair in list.windows(2) {
            let (earlier, later) = (pair[0], pair[1]);
            let done = first_success
                .get(&earlier.id)
                .unwrap_or_else(|| panic!("{} (seq {}) never delivered", earlier.id, earlier.seq));
            for attempt in hits.iter().filter(|h| h.id == later.id) {
                assert!(
                    attempt.start >= *done,
                    "{key}: seq {} was sent before seq {} was delivered",
                    later.seq,
                    earlier.seq
                );
            }
        }
    }
}

/// `backorderd --config FILE ARGS` on `db`.
pub fn cli(db: &TempDatabase, config: &str, args: &[&str]) -> crate::support::Run {
    let mut all = vec!["--config", config];
    all.extend_from_slice(args);
    db.run(&all, None)
}

pub fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

/// Waits until `check` holds, polling.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
