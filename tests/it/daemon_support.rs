//! Running `backorderd serve` as a child process, and reading what the
//! daemon wrote back straight from its database.

use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{Run, TempDatabase, backorderd};

/// Settings that keep the daemon quick to react in tests; the periodic full
/// run is off so that only the events decide what is recalculated.
pub const FAST: &[(&str, &str)] = &[
    ("BACKORDERD__SERVICE__POLL_INTERVAL_MS", "10"),
    ("BACKORDERD__SERVICE__HEARTBEAT_SECS", "1"),
    ("BACKORDERD__SERVICE__FULL_RECALCULATION_INTERVAL_SECS", "0"),
    ("BACKORDERD__SERVICE__SHUTDOWN_GRACE_SECS", "20"),
    // Settings changes (every SKU dirty) take the bulk path, single events
    // the batch path: the tests see both.
    ("BACKORDERD__SERVICE__BULK_FROM_SKUS", "20"),
    // Any free port: daemons of concurrent tests must not meet on 8080.
    ("BACKORDERD__HTTP__LISTEN", "127.0.0.1:0"),
];

/// The line the daemon logs once its queue worker runs.
const READY: &str = "backorderd is ready";

/// A running `backorderd serve`; killed (SIGKILL) if still running when dropped.
pub struct Daemon {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Daemon {
    /// Starts `serve` on `db` with the [`FAST`] settings overridden by `env`,
    /// and waits (at most 30 s) until it logs that it is ready.
    pub fn start(db: &TempDatabase, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_wrapped(db, env, &[])
    }

    /// [`Daemon::start`] through `wrapper`, a program and its arguments that
    /// end up `exec`ing the daemon's command line appended to them (so the
    /// child's pid is the daemon's), e.g. `sh -c 'exec "$@"' sh`.
    pub fn start_wrapped(db: &TempDatabase, env: &[(&str, &str)], wrapper: &[&str]) -> Daemon {
        Daemon::launch(&db.url, env, wrapper, &[])
    }

    /// [`Daemon::start`] on a database URL of its own (e.g. with a password).
    pub fn start_on_url(url: &str, env: &[(&str, &str)]) -> Daemon {
        Daemon::launch(url, env, &[], &[])
    }

    /// [`Daemon::start`] with `args` after `serve` (e.g. `--listen ADDR`).
    pub fn start_with_args(db: &TempDatabase, env: &[(&str, &str)], args: &[&str]) -> Daemon {
        Daemon::launch(&db.url, env, &[], args)
    }

    fn launch(url: &str, env: &[(&str, &str)], wrapper: &[&str], args: &[&str]) -> Daemon {
        let daemon = env!("CARGO_BIN_EXE_backorderd");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(daemon);
                cmd
            }
            None => Command::new(daemon),
        };
        cmd.args(["--database-url", url, "serve"])
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("RUST_LOG")
            .envs(FAST.iter().copied())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("backorderd serve starts");
        let pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let lines = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if line.contains(READY) {
                    let _ = ready_tx.send(());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let mut daemon = Daemon {
            child,
            stderr,
            reader: Some(reader),
            status: None,
        };
        if ready_rx.recv_timeout(Duration::from_secs(30)).is_err() {
            let status = daemon.child.try_wait().unwrap();
            panic!(
                "serve did not log {READY:?} within 30 s (exit: {status:?}); stderr:\n{}",
                daemon.stderr()
            );
        }
        daemon
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the daemon logged so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`) with the `kill` command.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("the kill command runs");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// Waits (at most `timeout`) for the daemon to exit; panics if it does not.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "serve did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.status = Some(status);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        status
    }

    /// SIGTERM (or SIGINT), then asserts a clean exit 0 within 30 s.
    pub fn stop_with(mut self, signal: &str) -> String {
        self.signal(signal);
        let status = self.wait_exit(Duration::from_secs(30));
        let log = self.stderr();
        assert_eq!(
            status.code(),
            Some(0),
            "serve did not exit 0 on SIG{signal} ({status:?}); stderr:\n{log}"
        );
        assert!(!log.contains("panicked"), "serve panicked:\n{log}");
        log
    }

    /// SIGKILL: the daemon dies at whatever instant it is in.
    pub fn kill(mut self) {
        self.signal("KILL");
        let status = self.wait_exit(Duration::from_secs(10));
        assert_eq!(status.code(), None, "killed by a signal, not exited");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.status.is_none() && self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `backorderd status` as JSON.
pub fn status(db: &TempDatabase) -> Value {
    db.run(&["status"], None).ok_json()
}

fn count(status: &Value, pointer: &str) -> i64 {
    status
        .pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("status has no integer at {pointer}: {status}"))
}

pub fn dirty_skus(status: &Value) -> i64 {
    count(status, "/dirty_skus")
}

/// Polls `status` until nothing is pending, running or dirty; panics after `timeout`.
pub fn wait_idle(db: &TempDatabase, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let now = status(db);
        let idle = count(&now, "/queue/pending") == 0
            && count(&now, "/queue/running") == 0
            && dirty_skus(&now) == 0;
        if idle {
            return now;
        }
        if Instant::now() >= deadline {
            panic!("the queue is not idle after {timeout:?}: {now}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends a batch of events as JSON Lines on standard input.
pub fn send_events(db: &TempDatabase, events: &[Value], extra_args: &[&str]) -> Run {
    let mut args = vec!["event", "-"];
    args.extend_from_slice(extra_args);
    db.run(&args, Some(jsonl(events).as_bytes()))
}

pub fn jsonl(events: &[Value]) -> String {
    let mut text = String::new();
    for event in events {
        text.push_str(&event.to_string());
        text.push('\n');
    }
    text
}

/// What `simulate` computes for a snapshot.
pub fn simulate(snapshot: &Value) -> Value {
    backorderd(
        &["simulate", "-"],
        Some(snapshot.to_string().as_bytes()),
        &[],
    )
    .ok_json()
}

/// A generated book (`backorderd generate`).
pub fn generate(lines: usize, skus: usize, seed: u64) -> Value {
    let (lines, skus, seed) = (lines.to_string(), skus.to_string(), seed.to_string());
    backorderd(
        &[
            "generate", "--lines", &lines, "--skus", &skus, "--seed", &seed,
        ],
        None,
        &[],
    )
    .ok_json()
}

/// What the daemon stored for one line: backorder qty and ETA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLine {
    pub order_id: String,
    pub backorder_qty: i64,
    pub eta: Option<String>,
}

/// What the daemon stored for one order: backorder status and qty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrder {
    pub status: String,
    pub backorder_qty: i64,
}

/// Runs `work` on a fresh single-threaded tokio runtime.
pub fn block_on<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(work)
}

/// Reads the written-back line and order results from the database
/// (the snapshot format has no place for ETAs and order statuses).
pub fn stored_results(
    db: &TempDatabase,
) -> (HashMap<String, StoredLine>, HashMap<String, StoredOrder>) {
    let lines: Vec<(String, String, i64, Option<String>)> =
        db.fetch_all("SELECT id, order_id, CAST(backorder_qty AS BIGINT), eta FROM order_lines");
    let orders: Vec<(String, String, i64)> =
        db.fetch_all("SELECT id, backorder_status, CAST(backorder_qty AS BIGINT) FROM orders");
    (
        lines
            .into_iter()
            .map(|(id, order_id, backorder_qty, eta)| {
                (
                    id,
                    StoredLine {
                        order_id,
                        backorder_qty,
                        eta,
                    },
                )
            })
            .collect(),
        orders
            .into_iter()
            .map(|(id, status, backorder_qty)| {
                (
                    id,
                    StoredOrder {
                        status,
                        backorder_qty,
                    },
                )
            })
            .collect(),
    )
}

/// Asserts that what the daemon stored equals what `simulate` computes on
/// `export` (stored quantities in the export's lines, ETAs and order
/// statuses in the database), except for the lines and orders in `skip`.
/// Returns how many lines were compared.
pub fn assert_matches_simulate(
    db: &TempDatabase,
    export: &Value,
    skip_lines: &[String],
    skip_orders: &[String],
) -> usize {
    let result = simulate(export);
    let (lines, orders) = stored_results(db);
    let mut exported: HashMap<&str, i64> = HashMap::new();
    for order in export["orders"].as_array().unwrap() {
        for line in order["lines"].as_array().unwrap() {
            exported.insert(
                line["id"].as_str().unwrap(),
                line["backorder_qty"].as_i64().unwrap(),
            );
        }
    }
    let mut wrong = Vec::new();
    let mut compared = 0;
    let result_lines = result["lines"].as_array().unwrap();
    assert_eq!(result_lines.len(), lines.len(), "line count");
    for line in result_lines {
        let id = line["line_id"].as_str().unwrap();
        if skip_lines.iter().any(|s| s == id) {
            continue;
        }
        compared += 1;
        let stored = &lines[id];
        let want_qty = line["backorder_qty"].as_i64().unwrap();
        let want_eta = line["eta"].as_str().map(str::to_owned);
        assert_eq!(exported[id], stored.backorder_qty, "export vs database");
        if stored.backorder_qty != want_qty || stored.eta != want_eta {
            wrong.push(format!(
                "line {id} (order {}, sku {}, qty {}): stored backorder {} eta {:?}, simulate says {want_qty} eta {want_eta:?}",
                stored.order_id, line["sku"], line["qty"], stored.backorder_qty, stored.eta
            ));
        }
    }
    for order in result["orders"].as_array().unwrap() {
        let id = order["order_id"].as_str().unwrap();
        if skip_orders.iter().any(|s| s == id) {
            continue;
        }
        let stored = &orders[id];
        let want = StoredOrder {
            status: order["status"].as_str().unwrap().to_owned(),
            backorder_qty: order["backorder_qty"].as_i64().unwrap(),
        };
        if *stored != want {
            let own: Vec<String> = lines
                .iter()
                .filter(|(_, line)| line.order_id == id)
                .map(|(line_id, line)| format!("{line_id}: {}", line.backorder_qty))
                .collect();
            wrong.push(format!(
                "order {id} ({}): stored {stored:?}, simulate says {want:?}; its stored lines' backorder qty: {}",
                order["scope"],
                own.join(", ")
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of the stored results differ from simulate on the export:\n{}",
        wrong.len(),
        wrong
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    compared
}

/// A small deterministic generator (the tests need no `rand` API).
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Lcg {
        Lcg(seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407))
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}
